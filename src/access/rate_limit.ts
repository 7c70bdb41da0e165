// Per-key limits, kept in this isolate's memory: a token bucket for requests (a sustained rate
// with bursts) and a cap on streams open at once. Several isolates (Deno Deploy runs many)
// each apply them on their own.

/** The limits every key gets. */
export interface RateLimits {
  /** Requests per second a key may make, sustained. @default 20 */
  ratePerSecond: number;
  /** Requests a key may make at once after a quiet spell (the bucket's size). @default 40 */
  burst: number;
  /** Session streams (POST /session/:id and /generate) a key may have open at once. @default 32 */
  maxStreams: number;
}

/** The default limits. */
export const DEFAULT_RATE_LIMITS: RateLimits = { ratePerSecond: 20, burst: 40, maxStreams: 32 };

/** One key's bucket: tokens left and when they were counted. */
interface Bucket {
  tokens: number;
  at: number;
}

/**
 * The per-key limits of one isolate.
 *
 * @example
 * ```ts
 * import { KeyLimiter } from "./rate_limit.ts";
 * let now = 0;
 * const limiter = new KeyLimiter({ ratePerSecond: 1, burst: 2, maxStreams: 1 }, () => now);
 * limiter.take("alice"); // 0: allowed
 * limiter.take("alice"); // 0
 * limiter.take("alice"); // 1: refused, retry after 1 s
 * now += 1000;
 * limiter.take("alice"); // 0
 * ```
 */
export class KeyLimiter {
  readonly limits: RateLimits;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();
  readonly #streams = new Map<string, number>();

  /**
   * @param limits rate, burst and stream cap
   * @param now the clock, in milliseconds
   */
  constructor(limits: RateLimits, now: () => number = () => performance.now()) {
    this.limits = limits;
    this.#now = now;
  }

  /**
   * Takes one request from a key's bucket.
   *
   * @param key the key's name
   * @returns 0 when the request may go on, else the whole seconds until it may be retried
   */
  take(key: string): number {
    const { ratePerSecond, burst } = this.limits;
    const now = this.#now();
    const b = this.#buckets.get(key) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + (Math.max(0, now - b.at) / 1000) * ratePerSecond);
    b.at = now;
    this.#buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / ratePerSecond));
  }

  /**
   * Counts a stream a key opens, if it is under its cap.
   *
   * @param key the key's name
   * @returns a function that ends the stream's count (call it once, when the stream ends), or
   *   null when the key has as many streams open as it may
   */
  openStream(key: string): (() => void) | null {
    const open = this.#streams.get(key) ?? 0;
    if (open >= this.limits.maxStreams) return null;
    this.#streams.set(key, open + 1);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      const left = (this.#streams.get(key) ?? 1) - 1;
      if (left > 0) this.#streams.set(key, left);
      else this.#streams.delete(key);
    };
  }

  /**
   * Streams a key has open.
   *
   * @param key the key's name
   * @returns the count
   */
  streams(key: string): number {
    return this.#streams.get(key) ?? 0;
  }
}
