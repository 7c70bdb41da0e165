// Server configuration from environment variables, the same locally and on Deno Deploy.
import { type ApiKey, DEFAULT_RATE_LIMITS, parseApiKeys, type RateLimits } from "./access/mod.ts";
import { validateModelName } from "./store/keys.ts";
import { DEFAULT_LIMITS, type Limits } from "./stream/session.ts";

/** Everything the server reads from its environment. */
export interface ServerConfig {
  /** `PORT` (8000): where `deno task start` listens. */
  port: number;
  /** `HOST` (0.0.0.0). */
  host: string;
  /**
   * `WORKERS` (1): isolates `deno task start` serves from, each on its own thread, sharing the
   * port (SO_REUSEPORT; Linux spreads connections over them) and the KV store.
   */
  workers: number;
  /**
   * `KV_PATH`: a SQLite file, `:memory:`, or a KV Connect URL. Unset: `./data/kv.sqlite3`
   * locally, the managed KV on Deno Deploy (`DENO_DEPLOYMENT_ID` is set there).
   */
  kvPath: string | undefined;
  /** `DEFAULT_MODEL` (moby): the model a new session gets when it names none. */
  defaultModel: string;
  /** The limits; each has an environment variable (see {@linkcode LIMIT_ENV}). */
  limits: Limits;
  /** Access control: off (no keys) unless `API_KEYS` is set. */
  access: {
    /** `API_KEYS`: comma-separated `name:sha256` pairs. */
    keys: ApiKey[];
    /** Per key: `RATE_LIMIT_RPS` (20), `RATE_LIMIT_BURST` (40), `MAX_STREAMS_PER_KEY` (32). */
    limits: RateLimits;
  };
}

/** Environment variable of each per-key limit. */
export const RATE_LIMIT_ENV = {
  ratePerSecond: "RATE_LIMIT_RPS",
  burst: "RATE_LIMIT_BURST",
  maxStreams: "MAX_STREAMS_PER_KEY",
} as const satisfies Record<keyof RateLimits, string>;

/** Environment variable of each limit, with its unit. */
export const LIMIT_ENV = {
  maxBodyBytes: ["MAX_BODY_BYTES", 1],
  maxTokensPerRequest: ["MAX_TOKENS_PER_REQUEST", 1],
  maxGenerateTokens: ["MAX_GENERATE_TOKENS", 1],
  checkpointEvery: ["CHECKPOINT_EVERY", 1],
  checkpointGatherMs: ["CHECKPOINT_GATHER_MS", 1],
  sessionTtlMs: ["SESSION_TTL_SECONDS", 1000],
  keepAliveMs: ["KEEPALIVE_SECONDS", 1000],
  topK: ["TOP_K", 1],
} as const satisfies Record<keyof Limits, readonly [string, number]>;

/**
 * Reads the configuration.
 *
 * @param env a variable lookup (Deno.env.get by default)
 * @returns the configuration
 * @throws {RangeError} naming a variable whose value is not a positive number (a whole number
 *   for counts), an empty HOST, a malformed API_KEYS; InvalidNameError for a DEFAULT_MODEL that
 *   cannot be a model name
 * @example
 * ```ts
 * import { loadConfig } from "./config.ts";
 * loadConfig((name) => ({ PORT: "9000" } as Record<string, string>)[name]).port; // 9000
 * ```
 */
export function loadConfig(
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): ServerConfig {
  const positive = (name: string, fallback: number) => {
    const raw = env(name);
    if (raw === undefined || raw === "") return fallback;
    const v = Number(raw);
    if (!Number.isFinite(v) || v <= 0) {
      throw new RangeError(`${name} must be a positive number, not ${JSON.stringify(raw)}`);
    }
    return v;
  };
  const limits = { ...DEFAULT_LIMITS };
  for (const [field, [name, unit]] of Object.entries(LIMIT_ENV)) {
    const key = field as keyof Limits;
    const value = positive(name, DEFAULT_LIMITS[key] / unit);
    // Counts are whole numbers; durations in seconds may have fractions.
    if (unit === 1 && !Number.isInteger(value)) {
      throw new RangeError(`${name} must be a whole number, not ${JSON.stringify(env(name))}`);
    }
    limits[key] = value * unit;
  }
  const host = env("HOST") ?? "0.0.0.0";
  if (host.trim() === "") throw new RangeError("HOST must not be empty");
  const onDeploy = env("DENO_DEPLOYMENT_ID") !== undefined;
  const workers = positive("WORKERS", 1);
  if (!Number.isInteger(workers) || workers > 64) {
    throw new RangeError(`WORKERS must be a whole number from 1 to 64, not ${env("WORKERS")}`);
  }
  const rateLimits = { ...DEFAULT_RATE_LIMITS };
  for (const [field, name] of Object.entries(RATE_LIMIT_ENV)) {
    const key = field as keyof RateLimits;
    rateLimits[key] = positive(name, DEFAULT_RATE_LIMITS[key]);
  }
  if (!Number.isInteger(rateLimits.burst) || !Number.isInteger(rateLimits.maxStreams)) {
    throw new RangeError("RATE_LIMIT_BURST and MAX_STREAMS_PER_KEY must be whole numbers");
  }
  return {
    port: positive("PORT", 8000),
    host,
    workers,
    kvPath: env("KV_PATH") || (onDeploy ? undefined : "./data/kv.sqlite3"),
    defaultModel: validateModelName(env("DEFAULT_MODEL") ?? "moby"),
    limits,
    access: { keys: parseApiKeys(env("API_KEYS")), limits: rateLimits },
  };
}
