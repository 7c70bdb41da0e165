// Every Deno KV key this project uses, built in one place so that no other module spells a key
// by hand and a key's shape can be searched for.
//
//   ["model", name, "current"]                    number: the version new sessions get
//   ["model", name, "latest"]                     number: the highest version ever allocated
//   ["model", name, "v", version, "manifest"]     ModelManifest
//   ["model", name, "v", version, "chunk", i]     Uint8Array, under 64 KiB: model file bytes
//   ["models", name]                              { versions: number[] }: kept, published, ascending
//   ["session", id]                               SessionRecord: a session's durable state
import { InvalidNameError } from "./errors.ts";

/** What a model name may look like: letters, digits, `_` and `-`, 1 to 64 of them. */
export const MODEL_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Checks a model name where it enters the store, before any key is built from it.
 *
 * @param name the candidate (anything: it may come straight from a request or a command line)
 * @returns the same name, typed as a string
 * @throws {InvalidNameError} naming the value and the rule
 * @example
 * ```ts
 * import { validateModelName } from "./keys.ts";
 * validateModelName("names-gru_2"); // "names-gru_2"
 * ```
 */
export function validateModelName(name: unknown): string {
  if (typeof name !== "string" || !MODEL_NAME_PATTERN.test(name)) {
    const shown = typeof name === "string" ? JSON.stringify(name.slice(0, 80)) : typeof name;
    throw new InvalidNameError(
      `invalid model name ${shown}: use 1 to 64 letters, digits, "_" or "-"`,
    );
  }
  return name;
}

/**
 * The key of the version new sessions of a model get.
 *
 * @param name a valid model name
 * @returns `["model", name, "current"]`
 * @example
 * ```ts
 * import { modelCurrentKey } from "./keys.ts";
 * modelCurrentKey("names"); // ["model", "names", "current"]
 * ```
 */
export function modelCurrentKey(name: string) {
  return ["model", name, "current"] as const;
}

/**
 * The key of a model's version counter: the highest version number ever allocated.
 *
 * @param name a valid model name
 * @returns `["model", name, "latest"]`
 * @example
 * ```ts
 * import { modelLatestKey } from "./keys.ts";
 * modelLatestKey("names"); // ["model", "names", "latest"]
 * ```
 */
export function modelLatestKey(name: string) {
  return ["model", name, "latest"] as const;
}

/**
 * The prefix of every key of one model version (its manifest and its chunks).
 *
 * @param name a valid model name
 * @param version the version number
 * @returns `["model", name, "v", version]`
 * @example
 * ```ts
 * import { modelVersionPrefix } from "./keys.ts";
 * modelVersionPrefix("names", 3); // ["model", "names", "v", 3]
 * ```
 */
export function modelVersionPrefix(name: string, version: number) {
  return ["model", name, "v", version] as const;
}

/**
 * The key of one version's manifest.
 *
 * @param name a valid model name
 * @param version the version number
 * @returns `["model", name, "v", version, "manifest"]`
 * @example
 * ```ts
 * import { modelManifestKey } from "./keys.ts";
 * modelManifestKey("names", 3); // ["model", "names", "v", 3, "manifest"]
 * ```
 */
export function modelManifestKey(name: string, version: number) {
  return ["model", name, "v", version, "manifest"] as const;
}

/**
 * The key of one chunk of a version's model file.
 *
 * @param name a valid model name
 * @param version the version number
 * @param index the chunk number, from 0
 * @returns `["model", name, "v", version, "chunk", index]`
 * @example
 * ```ts
 * import { modelChunkKey } from "./keys.ts";
 * modelChunkKey("names", 3, 0); // ["model", "names", "v", 3, "chunk", 0]
 * ```
 */
export function modelChunkKey(name: string, version: number, index: number) {
  return ["model", name, "v", version, "chunk", index] as const;
}

/** The prefix of every model's index entry: listing it lists the models. */
export const MODEL_INDEX_PREFIX = ["models"] as const;

/**
 * The key of a model's index entry: its kept, fully published versions.
 *
 * @param name a valid model name
 * @returns `["models", name]`
 * @example
 * ```ts
 * import { modelIndexKey } from "./keys.ts";
 * modelIndexKey("names"); // ["models", "names"]
 * ```
 */
export function modelIndexKey(name: string) {
  return ["models", name] as const;
}

/** What a session id may look like (DESIGN.md): letters, digits, `_` and `-`, 1 to 128. */
export const SESSION_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * Checks a session id where it enters, before any key is built from it.
 *
 * @param id the candidate
 * @returns the same id
 * @throws {InvalidNameError} naming the rule
 * @example
 * ```ts
 * import { validateSessionId } from "./keys.ts";
 * validateSessionId("chat-42"); // "chat-42"
 * ```
 */
export function validateSessionId(id: unknown): string {
  if (typeof id !== "string" || !SESSION_ID_PATTERN.test(id)) {
    throw new InvalidNameError(`invalid session id: use 1 to 128 letters, digits, "_" or "-"`);
  }
  return id;
}

/**
 * The key of a session's durable state.
 *
 * @param id a valid session id
 * @returns `["session", id]`
 * @example
 * ```ts
 * import { sessionKey } from "./keys.ts";
 * sessionKey("chat-42"); // ["session", "chat-42"]
 * ```
 */
export function sessionKey(id: string) {
  return ["session", id] as const;
}

/** The prefix of every session's key: listing it lists the sessions. */
export const SESSION_PREFIX = ["session"] as const;
