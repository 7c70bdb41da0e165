// A seeded PRNG: xoshiro128** (Blackman & Vigna) seeded through splitmix32.
// Same seed, same sequence, bit for bit, on every platform: only 32-bit integer ops are used.

/**
 * A seeded pseudo-random generator whose whole state can be saved and restored, so training
 * runs are reproducible and resumable.
 *
 * @example
 * ```ts
 * import { Rng } from "./rng.ts";
 * const a = new Rng(42), b = new Rng(42);
 * a.uniform() === b.uniform(); // true
 * ```
 */
export class Rng {
  #s = new Uint32Array(4);

  /**
   * Creates a generator from a seed.
   *
   * @param seed any integer; equal seeds give equal sequences
   */
  constructor(seed: number) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      // splitmix32 spreads a small seed over the 128-bit state and never yields all zeros.
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.#s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }

  /**
   * The next 32 random bits.
   *
   * @returns an integer in [0, 2^32)
   */
  nextUint32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /**
   * A uniform draw from [0, 1) with 53 bits of resolution.
   *
   * @returns a number in [0, 1)
   */
  uniform(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /**
   * A standard normal draw (Box–Muller; one draw per call, so the state stays four words).
   *
   * @returns a sample of N(0, 1)
   */
  normal(): number {
    const u = 1 - this.uniform(); // (0, 1]: log(0) cannot happen
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /**
   * A uniform integer in [0, n).
   *
   * @param n exclusive upper bound, 1 ≤ n ≤ 2^32
   * @returns an integer in [0, n)
   */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /**
   * A copy of the whole state, for checkpoints.
   *
   * @returns four 32-bit words
   */
  getState(): Uint32Array {
    return this.#s.slice();
  }

  /**
   * Restores a state saved by {@linkcode Rng.getState}.
   *
   * @param state four 32-bit words, not all zero
   */
  setState(state: Uint32Array): void {
    if (state.length !== 4 || state.every((w) => w === 0)) {
      throw new RangeError("an Rng state is four 32-bit words, not all zero");
    }
    this.#s.set(state);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
