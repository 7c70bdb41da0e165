// O outputs. Drawing the next token from a head's scores: temperature, top-k, top-p, seeded.
import { argmax, type FloatArray, type Rng } from "../math/mod.ts";

/** How to draw from a distribution. */
export interface SamplingOptions {
  /** Divides the logits; 0 means greedy (always the most likely output). @default 1 */
  temperature?: number;
  /** Keep only the k most likely outputs; 0 keeps all. @default 0 */
  topK?: number;
  /** Keep the smallest set of most likely outputs whose probability reaches p; 1 keeps all. @default 1 */
  topP?: number;
}

/** Defaults of {@linkcode SamplingOptions}. */
export const SAMPLING_DEFAULTS: Required<SamplingOptions> = { temperature: 1, topK: 0, topP: 1 };

/**
 * Draws outputs from logits. Keeps its scratch buffers, so drawing allocates nothing.
 *
 * @example
 * ```ts
 * import { Rng } from "../math/mod.ts";
 * import { Sampler } from "./sampling.ts";
 * const sampler = new Sampler(3);
 * sampler.sample(new Float32Array([0, 5, 0]), { temperature: 0 }, new Rng(1)); // 1
 * ```
 */
export class Sampler {
  #probs: Float64Array; // (O)
  #order: Int32Array; // (O) output indices, most likely first after sorting

  /**
   * @param size outputs O
   */
  constructor(size: number) {
    this.#probs = new Float64Array(size);
    this.#order = new Int32Array(size);
  }

  /**
   * Draws one output index.
   *
   * @param logits head scores (O)
   * @param options temperature, top-k, top-p
   * @param rng the random source (one uniform draw per call, unless greedy)
   * @returns the index drawn
   */
  sample(logits: FloatArray, options: SamplingOptions, rng: Rng): number {
    const { temperature, topK, topP } = { ...SAMPLING_DEFAULTS, ...options };
    const o = this.#probs.length;
    if (logits.length !== o) {
      throw new RangeError(`sampler is for ${o} outputs, not ${logits.length}`);
    }
    const best = argmax(logits, 0, o);
    if (temperature === 0 || topK === 1) return best;
    const probs = this.#probs;
    let sum = 0;
    for (let j = 0; j < o; j++) {
      const e = Math.exp((logits[j] - logits[best]) / temperature);
      probs[j] = e;
      sum += e;
    }
    let keep = o;
    const order = this.#order;
    if ((topK > 0 && topK < o) || topP < 1) {
      for (let j = 0; j < o; j++) order[j] = j;
      // Ties break by index so the same logits always give the same order.
      order.sort((a, b) => probs[b] - probs[a] || a - b);
      if (topK > 0 && topK < o) keep = topK;
      if (topP < 1) {
        let mass = 0;
        for (let r = 0; r < keep; r++) {
          mass += probs[order[r]] / sum;
          if (mass >= topP) {
            keep = r + 1;
            break;
          }
        }
      }
      let kept = 0;
      for (let r = 0; r < keep; r++) kept += probs[order[r]];
      let u = rng.uniform() * kept;
      for (let r = 0; r < keep; r++) {
        u -= probs[order[r]];
        if (u < 0) return order[r];
      }
      return order[keep - 1];
    }
    let u = rng.uniform() * sum;
    for (let j = 0; j < o; j++) {
      u -= probs[j];
      if (u < 0) return j;
    }
    return best;
  }
}
