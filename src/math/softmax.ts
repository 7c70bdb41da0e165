// N rows, C classes; flat row-major (N, C) buffers.
import type { FloatArray } from "./types.ts";

/** A target that contributes no loss, as PyTorch's `ignore_index` (e.g. steps of a many-to-one sequence before its end). */
export const NO_TARGET = -1;

/**
 * Index of the largest of `n` values starting at `from` (the first one on ties).
 *
 * @param values the buffer
 * @param from offset of the first value
 * @param n how many values
 * @returns the index, relative to `from`
 * @example
 * ```ts
 * import { argmax } from "./softmax.ts";
 * argmax(new Float32Array([0, 3, 3]), 0, 3); // 1
 * ```
 */
export function argmax(values: ArrayLike<number>, from: number, n: number): number {
  let best = 0;
  for (let j = 1; j < n; j++) if (values[from + j] > values[from + best]) best = j;
  return best;
}

/**
 * Softmax of one row, numerically stable (the maximum is subtracted first).
 *
 * @param out probabilities (C), written
 * @param logits scores; the row starts at `from`
 * @param from offset of the row in `logits`
 * @param c classes C
 * @example
 * ```ts
 * import { softmaxRow } from "./softmax.ts";
 * const p = new Float32Array(2);
 * softmaxRow(p, new Float32Array([0, 0]), 0, 2); // p = [0.5, 0.5]
 * ```
 */
export function softmaxRow(out: FloatArray, logits: FloatArray, from: number, c: number): void {
  let max = -Infinity;
  for (let j = 0; j < c; j++) if (logits[from + j] > max) max = logits[from + j];
  let sum = 0;
  for (let j = 0; j < c; j++) {
    const e = Math.exp(logits[from + j] - max);
    out[j] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let j = 0; j < c; j++) out[j] *= inv;
}

/**
 * Log-softmax of every row: `out[r, j] = x[r, j] - log Σ_k e^{x[r, k]}`.
 *
 * @param out log-probabilities (N, C), written (may alias `logits`)
 * @param logits scores (N, C)
 * @param n rows N
 * @param c classes C
 * @example
 * ```ts
 * import { logSoftmax } from "./softmax.ts";
 * const lp = new Float32Array(2);
 * logSoftmax(lp, new Float32Array([0, 0]), 1, 2); // lp = [-0.693..., -0.693...]
 * ```
 */
export function logSoftmax(out: FloatArray, logits: FloatArray, n: number, c: number): void {
  for (let r = 0; r < n; r++) {
    const o = r * c;
    let max = -Infinity;
    for (let j = 0; j < c; j++) if (logits[o + j] > max) max = logits[o + j];
    let sum = 0;
    for (let j = 0; j < c; j++) sum += Math.exp(logits[o + j] - max);
    const lse = max + Math.log(sum);
    for (let j = 0; j < c; j++) out[o + j] = logits[o + j] - lse;
  }
}

/**
 * Mean cross-entropy of rows of logits against target classes, as `F.cross_entropy` (mean over
 * the rows whose target is not {@linkcode NO_TARGET}), optionally writing its gradient.
 *
 * @param logits scores (N, C)
 * @param targets class per row (N); NO_TARGET rows are skipped
 * @param n rows N
 * @param c classes C
 * @param dlogits if given, receives `d loss / d logits` (N, C) = (softmax - onehot) / count,
 *   zero on skipped rows
 * @returns the mean loss in nats (0 when no row has a target) and the number of rows counted
 * @example
 * ```ts
 * import { crossEntropy } from "./softmax.ts";
 * crossEntropy(new Float32Array([0, 0]), new Int32Array([1]), 1, 2, null).loss; // 0.693...
 * ```
 */
export function crossEntropy(
  logits: FloatArray,
  targets: Int32Array,
  n: number,
  c: number,
  dlogits: FloatArray | null,
): { loss: number; count: number } {
  let count = 0;
  for (let r = 0; r < n; r++) if (targets[r] !== NO_TARGET) count++;
  const scale = count > 0 ? 1 / count : 0;
  let total = 0;
  for (let r = 0; r < n; r++) {
    const o = r * c;
    const t = targets[r];
    if (t === NO_TARGET) {
      if (dlogits !== null) dlogits.fill(0, o, o + c);
      continue;
    }
    if (!(t >= 0 && t < c)) throw new RangeError(`target ${t} at row ${r} is outside 0..${c - 1}`);
    let max = -Infinity;
    for (let j = 0; j < c; j++) if (logits[o + j] > max) max = logits[o + j];
    let sum = 0;
    for (let j = 0; j < c; j++) sum += Math.exp(logits[o + j] - max);
    const lse = max + Math.log(sum);
    total += lse - logits[o + t];
    if (dlogits !== null) {
      for (let j = 0; j < c; j++) dlogits[o + j] = Math.exp(logits[o + j] - lse) * scale;
      dlogits[o + t] -= scale;
    }
  }
  return { loss: total * scale, count };
}
