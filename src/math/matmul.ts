// M rows of the output, N columns of the output, K the shared (reduced) dimension.
// Flat row-major buffers; JavaScript numbers accumulate in float64 and are rounded once on store.
import type { FloatArray } from "./types.ts";

/**
 * Matrix-vector product: `y = W x (+ b)`, the step kernel of a single stream.
 *
 * @param y output (M), overwritten
 * @param w weights (M, K)
 * @param x buffer holding the input (K) at `xOff`
 * @param xOff offset of the input in `x` (a layer's slice of a state buffer, say)
 * @param b bias (M), or null for none
 * @param m rows M
 * @param k columns K
 * @example
 * ```ts
 * import { matvec } from "./matmul.ts";
 * const y = new Float32Array(2);
 * matvec(y, new Float32Array([1, 2, 3, 4]), new Float32Array([1, 1]), 0, null, 2, 2);
 * // y = [3, 7]
 * ```
 */
export function matvec(
  y: FloatArray,
  w: FloatArray,
  x: FloatArray,
  xOff: number,
  b: FloatArray | null,
  m: number,
  k: number,
): void {
  // Four rows at a time: each x[j] is loaded once for four independent accumulators.
  let i = 0;
  for (; i + 4 <= m; i += 4) {
    const r0 = i * k, r1 = r0 + k, r2 = r1 + k, r3 = r2 + k;
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (let j = 0; j < k; j++) {
      const xj = x[xOff + j];
      s0 += w[r0 + j] * xj;
      s1 += w[r1 + j] * xj;
      s2 += w[r2 + j] * xj;
      s3 += w[r3 + j] * xj;
    }
    if (b === null) {
      y[i] = s0, y[i + 1] = s1, y[i + 2] = s2, y[i + 3] = s3;
    } else {
      y[i] = b[i] + s0,
        y[i + 1] = b[i + 1] + s1,
        y[i + 2] = b[i + 2] + s2,
        y[i + 3] = b[i + 3] + s3;
    }
  }
  for (; i < m; i++) {
    const r = i * k;
    let s = 0;
    for (let j = 0; j < k; j++) s += w[r + j] * x[xOff + j];
    y[i] = (b === null ? 0 : b[i]) + s;
  }
}

/**
 * Batched linear map: `Y (+)= X W^T (+ b)`, i.e. every row of X through the same weights.
 *
 * @param y output (M, N); overwritten unless `accumulate`
 * @param x input rows (M, K)
 * @param w weights (N, K), PyTorch's `nn.Linear` layout
 * @param b bias (N), or null
 * @param m rows M
 * @param n outputs N
 * @param k inputs K
 * @param accumulate add into `y` instead of overwriting it
 * @example
 * ```ts
 * import { matmulABt } from "./matmul.ts";
 * const y = new Float32Array(2);
 * matmulABt(y, new Float32Array([1, 2]), new Float32Array([1, 0, 0, 1]), null, 1, 2, 2, false);
 * // y = [1, 2]
 * ```
 */
export function matmulABt(
  y: FloatArray,
  x: FloatArray,
  w: FloatArray,
  b: FloatArray | null,
  m: number,
  n: number,
  k: number,
  accumulate: boolean,
): void {
  // Register blocking: four rows of X against two rows of W keep eight sums in registers and
  // load each element once per eight multiply-adds.
  let r = 0;
  for (; r + 4 <= m; r += 4) {
    const xa = r * k, xb = xa + k, xc = xb + k, xd = xc + k;
    const ya = r * n, yb = ya + n, yc = yb + n, yd = yc + n;
    let i = 0;
    for (; i + 2 <= n; i += 2) {
      const w0 = i * k, w1 = w0 + k;
      let a0 = 0, a1 = 0, b0 = 0, b1 = 0, c0 = 0, c1 = 0, d0 = 0, d1 = 0;
      for (let j = 0; j < k; j++) {
        const p = w[w0 + j], q = w[w1 + j];
        const u = x[xa + j], v = x[xb + j], s = x[xc + j], t = x[xd + j];
        a0 += p * u, a1 += q * u, b0 += p * v, b1 += q * v;
        c0 += p * s, c1 += q * s, d0 += p * t, d1 += q * t;
      }
      if (b !== null) {
        const e = b[i], f = b[i + 1];
        a0 += e, a1 += f, b0 += e, b1 += f, c0 += e, c1 += f, d0 += e, d1 += f;
      }
      if (accumulate) {
        y[ya + i] += a0, y[ya + i + 1] += a1, y[yb + i] += b0, y[yb + i + 1] += b1;
        y[yc + i] += c0, y[yc + i + 1] += c1, y[yd + i] += d0, y[yd + i + 1] += d1;
      } else {
        y[ya + i] = a0, y[ya + i + 1] = a1, y[yb + i] = b0, y[yb + i + 1] = b1;
        y[yc + i] = c0, y[yc + i + 1] = c1, y[yd + i] = d0, y[yd + i + 1] = d1;
      }
    }
    if (i < n) {
      const wr = i * k;
      let a0 = 0, b0 = 0, c0 = 0, d0 = 0;
      for (let j = 0; j < k; j++) {
        const p = w[wr + j];
        a0 += p * x[xa + j], b0 += p * x[xb + j], c0 += p * x[xc + j], d0 += p * x[xd + j];
      }
      if (b !== null) a0 += b[i], b0 += b[i], c0 += b[i], d0 += b[i];
      if (accumulate) y[ya + i] += a0, y[yb + i] += b0, y[yc + i] += c0, y[yd + i] += d0;
      else y[ya + i] = a0, y[yb + i] = b0, y[yc + i] = c0, y[yd + i] = d0;
    }
  }
  for (; r < m; r++) {
    const xr = r * k;
    const yr = r * n;
    // A lone row: four weight rows at a time, as in matvec.
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const w0 = i * k, w1 = w0 + k, w2 = w1 + k, w3 = w2 + k;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let j = 0; j < k; j++) {
        const xj = x[xr + j];
        s0 += w[w0 + j] * xj;
        s1 += w[w1 + j] * xj;
        s2 += w[w2 + j] * xj;
        s3 += w[w3 + j] * xj;
      }
      if (b !== null) s0 += b[i], s1 += b[i + 1], s2 += b[i + 2], s3 += b[i + 3];
      if (accumulate) {
        y[yr + i] += s0, y[yr + i + 1] += s1, y[yr + i + 2] += s2, y[yr + i + 3] += s3;
      } else {
        y[yr + i] = s0, y[yr + i + 1] = s1, y[yr + i + 2] = s2, y[yr + i + 3] = s3;
      }
    }
    for (; i < n; i++) {
      const wr = i * k;
      let s = b === null ? 0 : b[i];
      for (let j = 0; j < k; j++) s += w[wr + j] * x[xr + j];
      y[yr + i] = accumulate ? y[yr + i] + s : s;
    }
  }
}

/**
 * Matrix product accumulated into the output: `Y += A B`. Backward uses it for `dX += dY W`.
 *
 * @param y output (M, N), accumulated into
 * @param a left (M, K)
 * @param bm right (K, N)
 * @param m rows M
 * @param n columns N
 * @param k shared K
 * @example
 * ```ts
 * import { matmulAB } from "./matmul.ts";
 * const y = new Float32Array(2);
 * matmulAB(y, new Float32Array([1, 2]), new Float32Array([1, 0, 0, 1]), 1, 2, 2);
 * // y = [1, 2]
 * ```
 */
export function matmulAB(
  y: FloatArray,
  a: FloatArray,
  bm: FloatArray,
  m: number,
  n: number,
  k: number,
): void {
  // Dot products beat row updates (two loads and a store per multiply-add): transpose B once.
  const bt = scratch(bm, 0, n * k);
  transpose(bt, bm, k, n);
  matmulABt(y, a, bt, null, m, n, k, true);
}

/**
 * Sum of outer products accumulated into the output: `Y += A^T B`, i.e. for every row r,
 * `Y += a_r ⊗ b_r`. Backward uses it for weight gradients, `dW += dY^T X`.
 *
 * @param y output (M, N), accumulated into
 * @param a left rows (K, M)
 * @param bm right rows (K, N)
 * @param m columns of `a` (rows of the output) M
 * @param n columns of `bm` N
 * @param k rows of both K
 * @example
 * ```ts
 * import { outerAccumulate } from "./matmul.ts";
 * const y = new Float32Array(4);
 * outerAccumulate(y, new Float32Array([1, 2]), new Float32Array([3, 4]), 2, 2, 1);
 * // y = [3, 4, 6, 8]
 * ```
 */
export function outerAccumulate(
  y: FloatArray,
  a: FloatArray,
  bm: FloatArray,
  m: number,
  n: number,
  k: number,
): void {
  // As dot products over the K rows: Y += (A^T) (B^T)^T with both operands transposed once.
  const at = scratch(a, 0, m * k);
  const bt = scratch(bm, 1, n * k);
  transpose(at, a, k, m);
  transpose(bt, bm, k, n);
  matmulABt(y, at, bt, null, m, n, k, true);
}

/**
 * Transpose: `out (C, R) = a (R, C)^T`.
 *
 * @param out output (C, R), overwritten
 * @param a input (R, C)
 * @param rows R
 * @param cols C
 * @example
 * ```ts
 * import { transpose } from "./matmul.ts";
 * const t = new Float32Array(6);
 * transpose(t, new Float32Array([1, 2, 3, 4, 5, 6]), 2, 3); // t = [1, 4, 2, 5, 3, 6]
 * ```
 */
export function transpose(out: FloatArray, a: FloatArray, rows: number, cols: number): void {
  // Tiles keep both the reads and the writes within a few cache lines.
  const tile = 32;
  for (let r0 = 0; r0 < rows; r0 += tile) {
    const r1 = Math.min(rows, r0 + tile);
    for (let c0 = 0; c0 < cols; c0 += tile) {
      const c1 = Math.min(cols, c0 + tile);
      for (let r = r0; r < r1; r++) {
        const ar = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = a[ar + c];
      }
    }
  }
}

// Scratch buffers for the transposes, one pair per float type, grown on demand and reused:
// the products run single-threaded and never re-enter each other.
const scratch32: Float32Array[] = [new Float32Array(0), new Float32Array(0)];
const scratch64: Float64Array[] = [new Float64Array(0), new Float64Array(0)];

function scratch(like: FloatArray, slot: 0 | 1, size: number): FloatArray {
  if (like instanceof Float64Array) {
    if (scratch64[slot].length < size) scratch64[slot] = new Float64Array(size);
    return scratch64[slot];
  }
  if (scratch32[slot].length < size) scratch32[slot] = new Float32Array(size);
  return scratch32[slot];
}

/**
 * Column sums accumulated into the output: `y += Σ_r A[r, :]`, the gradient of a bias.
 *
 * @param y output (N), accumulated into
 * @param a rows (M, N)
 * @param m rows M
 * @param n columns N
 * @example
 * ```ts
 * import { sumRowsAccumulate } from "./matmul.ts";
 * const y = new Float32Array(2);
 * sumRowsAccumulate(y, new Float32Array([1, 2, 3, 4]), 2, 2);
 * // y = [4, 6]
 * ```
 */
export function sumRowsAccumulate(y: FloatArray, a: FloatArray, m: number, n: number): void {
  for (let r = 0; r < m; r++) {
    const ar = r * n;
    for (let j = 0; j < n; j++) y[j] += a[ar + j];
  }
}
