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
  const k4 = k & ~3;
  for (let i = 0; i < m; i++) {
    const row = i * k;
    // Four independent accumulators break the add dependency chain.
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    let j = 0;
    for (; j < k4; j += 4) {
      s0 += w[row + j] * x[xOff + j];
      s1 += w[row + j + 1] * x[xOff + j + 1];
      s2 += w[row + j + 2] * x[xOff + j + 2];
      s3 += w[row + j + 3] * x[xOff + j + 3];
    }
    for (; j < k; j++) s0 += w[row + j] * x[xOff + j];
    y[i] = (b === null ? 0 : b[i]) + ((s0 + s1) + (s2 + s3));
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
  const k4 = k & ~3;
  for (let r = 0; r < m; r++) {
    const xr = r * k;
    const yr = r * n;
    for (let i = 0; i < n; i++) {
      const wr = i * k;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      let j = 0;
      for (; j < k4; j += 4) {
        s0 += w[wr + j] * x[xr + j];
        s1 += w[wr + j + 1] * x[xr + j + 1];
        s2 += w[wr + j + 2] * x[xr + j + 2];
        s3 += w[wr + j + 3] * x[xr + j + 3];
      }
      for (; j < k; j++) s0 += w[wr + j] * x[xr + j];
      const s = (b === null ? 0 : b[i]) + ((s0 + s1) + (s2 + s3));
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
  for (let r = 0; r < m; r++) {
    const ar = r * k;
    const yr = r * n;
    for (let j = 0; j < k; j++) {
      const s = a[ar + j];
      if (s === 0) continue;
      const br = j * n;
      for (let i = 0; i < n; i++) y[yr + i] += s * bm[br + i];
    }
  }
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
  for (let r = 0; r < k; r++) {
    const ar = r * m;
    const br = r * n;
    for (let i = 0; i < m; i++) {
      const s = a[ar + i];
      if (s === 0) continue;
      const yr = i * n;
      for (let j = 0; j < n; j++) y[yr + j] += s * bm[br + j];
    }
  }
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
