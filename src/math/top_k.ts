// The k largest of a row of probabilities, for the top-k list of a step event: a short
// insertion list, allocating nothing per call. (SimdStepper.topK gives the same in WebAssembly.)
/**
 * The k largest of `probs[at .. at + length)`, largest first (ties by index).
 *
 * @param probs values
 * @param k how many
 * @param at where the values start
 * @param length how many values
 * @returns their indices, counted from `at`
 */
export function topK(
  probs: ArrayLike<number>,
  k: number,
  at = 0,
  length: number = probs.length - at,
): number[] {
  const best = new Int32Array(Math.max(0, k));
  return Array.from(best.subarray(0, topKInto(best, probs, at, length)));
}

/**
 * {@linkcode topK} into a given array, allocating nothing (the per-token path).
 *
 * @param best receives the indices (its length is k)
 * @param probs values
 * @param at where the values start
 * @param length how many values
 * @returns how many indices were written: min(k, length)
 */
export function topKInto(
  best: Int32Array,
  probs: ArrayLike<number>,
  at: number,
  length: number,
): number {
  // Insertion into a short sorted list; most values lose to the k-th best at once.
  const k = best.length;
  if (k === 0) return 0;
  let n = 0;
  let floor = -Infinity; // the k-th best so far, once there are k
  for (let j = 0; j < length; j++) {
    const v = probs[at + j];
    if (n === k && !(v > floor)) continue;
    let i = n < k ? n++ : k - 1;
    while (i > 0 && probs[at + best[i - 1]] < v) {
      best[i] = best[i - 1];
      i--;
    }
    best[i] = j;
    if (n === k) floor = probs[at + best[k - 1]];
  }
  return n;
}
