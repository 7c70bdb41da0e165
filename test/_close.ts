// Closeness of float buffers for tests: the worst entry is named on failure, and a NaN anywhere
// counts as the worst (it fails every comparison).
import assert from "node:assert/strict";

/** Asserts |actual - expected| ≤ atol + rtol·|expected| everywhere, naming the worst entry. */
export function assertClose(
  what: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  atol: number,
  rtol = 0,
) {
  assert.equal(
    actual.length,
    expected.length,
    `${what}: length ${actual.length} ≠ ${expected.length}`,
  );
  let worst = -1, worstExcess = 0, worstDiff = 0;
  for (let k = 0; k < expected.length; k++) {
    const diff = Math.abs(actual[k] - expected[k]);
    const excess = diff - (atol + rtol * Math.abs(expected[k]));
    if (!(excess <= worstExcess)) {
      worst = k;
      worstExcess = excess;
      worstDiff = diff;
    }
  }
  assert.ok(
    worst < 0,
    `${what}[${worst}]: ${actual[worst]} vs expected ${
      expected[worst]
    } (difference ${worstDiff}, tolerance ${atol} + ${rtol}·|ref|)`,
  );
}

/**
 * The largest |a[k] - b[k]|; NaN if any difference is NaN.
 *
 * @param a one buffer
 * @param b another of the same length
 * @returns the largest absolute difference
 */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, `lengths ${a.length} ≠ ${b.length}`);
  let worst = 0;
  for (let k = 0; k < a.length; k++) {
    const d = Math.abs(a[k] - b[k]);
    if (!(d <= worst)) worst = d;
  }
  return worst;
}
