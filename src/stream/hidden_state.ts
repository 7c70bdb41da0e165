// L layers, H hidden. The opt-in `"h"` field of step and token events (`?hidden=1` on
// POST /session/:id, `"hidden": true` on generate): the hidden state h_t of every layer after the
// token, rounded, for clients that draw it (the demo page's heatmap). Off by default, and then
// nothing here runs, so the per-token path costs what it did.
import type { FloatArray } from "../math/mod.ts";

/** Decimals kept per value: enough for a picture, and about 6 bytes of JSON per value. */
export const HIDDEN_DECIMALS = 3;

const SCALE = 10 ** HIDDEN_DECIMALS;

/**
 * The hidden state h_t of every layer as a JSON array, layer 0 first (L·H numbers), each rounded
 * to {@linkcode HIDDEN_DECIMALS} decimals. A state is laid out (S, L, H): the first L·H floats
 * are h; an LSTM's cell state c (the next L·H) is left out.
 *
 * @param state a session's state (S, L, H)
 * @param units how many values to write: L·H
 * @returns the JSON text, e.g. `[0.125,-0.5,0]`
 * @throws {RangeError} when the state holds fewer than `units` values
 * @example
 * ```ts
 * import { hiddenJson } from "./hidden_state.ts";
 * hiddenJson(new Float32Array([0.12345, -0.5, 0, 9]), 3); // "[0.123,-0.5,0]"
 * ```
 */
export function hiddenJson(state: FloatArray, units: number): string {
  // JSON writes -0 as "0" and the nulls as null.
  return JSON.stringify(hiddenValues(state, units));
}

/**
 * The hidden state h_t of every layer as numbers rounded to {@linkcode HIDDEN_DECIMALS}
 * decimals (null where not finite), for events made as objects; {@linkcode hiddenJson} writes
 * them as JSON.
 *
 * @param state a session's state (S, L, H)
 * @param units how many values: L·H
 * @returns the rounded values
 * @throws {RangeError} when the state holds fewer than `units` values
 * @example
 * ```ts
 * import { hiddenValues } from "./hidden_state.ts";
 * hiddenValues(new Float32Array([0.12345, -0.5]), 2); // [0.123, -0.5]
 * ```
 */
export function hiddenValues(state: FloatArray, units: number): (number | null)[] {
  if (units > state.length) {
    throw new RangeError(`the state has ${state.length} values, not ${units}`);
  }
  const out: (number | null)[] = new Array(units);
  for (let j = 0; j < units; j++) {
    const v = Math.round(state[j] * SCALE) / SCALE;
    out[j] = Number.isFinite(v) ? v : null;
  }
  return out;
}
