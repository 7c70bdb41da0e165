// API keys: configured as `name:sha256` pairs (the secret itself is never stored or configured,
// only its SHA-256), presented by clients as `Authorization: Bearer <key>`. A key's name is its
// public id: it is what a session records as its owner.

/** One configured key: its public name and the SHA-256 of its secret. */
export interface ApiKey {
  /** The key's id (`^[A-Za-z0-9_.-]{1,64}$`): a session's owner, shown in logs. Not secret. */
  name: string;
  /** SHA-256 of the secret, 64 lowercase hex digits. */
  sha256: string;
}

/** What a key name may look like. */
export const KEY_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/** Prefix of the keys {@linkcode newApiKey} makes, so a leaked one is easy to recognise. */
export const KEY_PREFIX = "erk_";

/**
 * Parses `API_KEYS`: comma-separated `name:sha256hex` entries (spaces around them ignored).
 *
 * @param value the variable's value; unset or blank means no keys (access control off)
 * @returns the keys, in the order given
 * @throws {RangeError} naming the entry that is malformed, a repeated name or a repeated hash
 * @example
 * ```ts
 * import { parseApiKeys } from "./api_keys.ts";
 * parseApiKeys(`alice:${"ab".repeat(32)}`)[0].name; // "alice"
 * ```
 */
export function parseApiKeys(value: string | undefined): ApiKey[] {
  if (value === undefined || value.trim() === "") return [];
  const keys: ApiKey[] = [];
  const names = new Set<string>(), hashes = new Set<string>();
  value.split(",").forEach((raw, k) => {
    const entry = raw.trim();
    const m = /^([^:]*):([0-9A-Fa-f]{64})$/.exec(entry);
    if (m === null || !KEY_NAME_PATTERN.test(m[1])) {
      // The entry is not echoed: a secret pasted by mistake must not reach a log.
      throw new RangeError(
        `API_KEYS entry ${k + 1} is not name:sha256 (a name of 1 to 64 letters, digits, ".", ` +
          `"_" or "-", a colon, and the key's SHA-256 as 64 hex digits; deno task apikey NAME ` +
          `makes one)`,
      );
    }
    const key = { name: m[1], sha256: m[2].toLowerCase() };
    if (names.has(key.name)) throw new RangeError(`API_KEYS names ${key.name} twice`);
    if (hashes.has(key.sha256)) {
      throw new RangeError(`API_KEYS has the same key hash twice (entry ${k + 1})`);
    }
    names.add(key.name);
    hashes.add(key.sha256);
    keys.push(key);
  });
  return keys;
}

/**
 * SHA-256 of a text's UTF-8 bytes, as lowercase hex.
 *
 * @param text the text
 * @returns 64 hex digits
 */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The configured keys, looked up by the hash of what a client presents.
 *
 * A lookup by hash instead of a comparison of secrets: how long it takes depends on the
 * presented key's hash, which tells a guesser nothing about any configured secret.
 *
 * @example
 * ```ts
 * import { KeyRing, sha256Hex } from "./api_keys.ts";
 * const ring = new KeyRing([{ name: "alice", sha256: await sha256Hex("s3cret") }]);
 * await ring.identify("s3cret"); // "alice"
 * await ring.identify("guess"); // null
 * ```
 */
export class KeyRing {
  readonly #byHash: Map<string, string>;

  /**
   * @param keys the configured keys
   */
  constructor(keys: readonly ApiKey[]) {
    this.#byHash = new Map(keys.map((k) => [k.sha256, k.name]));
  }

  /** How many keys there are. */
  get size(): number {
    return this.#byHash.size;
  }

  /**
   * The name of the key a client presented.
   *
   * @param secret the bearer token
   * @returns the key's name, or null when it is not a configured key
   */
  async identify(secret: string): Promise<string | null> {
    return this.#byHash.get(await sha256Hex(secret)) ?? null;
  }
}

/**
 * A new random key: {@linkcode KEY_PREFIX} and 32 random bytes in base64url (no padding).
 *
 * @returns the secret, to give to a client
 * @example
 * ```ts
 * import { newApiKey } from "./api_keys.ts";
 * newApiKey().startsWith("erk_"); // true
 * ```
 */
export function newApiKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const b64 = btoa(String.fromCharCode(...bytes));
  return KEY_PREFIX + b64.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}
