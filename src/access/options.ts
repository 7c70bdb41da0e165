// What the app is told about access control.
import type { ApiKey } from "./api_keys.ts";
import type { RateLimits } from "./rate_limit.ts";

/** Access control as the app is given it. With no keys, every request is served as before. */
export interface AccessOptions {
  /** The keys; none means access control is off. */
  keys: readonly ApiKey[];
  /** Per-key limits. @default DEFAULT_RATE_LIMITS */
  limits?: Partial<RateLimits>;
  /** The limiter's clock, in milliseconds. @default performance.now */
  now?: () => number;
}
