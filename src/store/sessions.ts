// A session's durable state in Deno KV: one value under ["session", id], written only with a
// versionstamp check so that two writers can never silently overwrite each other.
import { ConflictError } from "./errors.ts";
import { sessionKey } from "./keys.ts";

/** What KV holds for one session. */
export interface SessionRecord {
  /** The model the session started on. */
  model: string;
  /** The model version it is pinned to: publishing a new one never changes this session. */
  version: number;
  /** Tokens applied so far (the seq of the last applied token). */
  seq: number;
  /** The recurrent state of every layer, float32 little-endian bytes (S·L·H floats). */
  hidden: Uint8Array;
  /** Model-specific facts fixed at the first request (e.g. the class a generator was given). */
  context: Record<string, string>;
  /** ISO 8601 times. */
  createdAt: string;
  updatedAt: string;
}

/** A record and the versionstamp it was read (or written) at. */
export interface StoredSession {
  record: SessionRecord;
  versionstamp: string;
}

/**
 * Reads a session.
 *
 * @param kv the store
 * @param id a validated session id
 * @returns the record and its versionstamp, or null when there is none (never created, deleted
 *   or expired)
 */
export async function readSession(kv: Deno.Kv, id: string): Promise<StoredSession | null> {
  const entry = await kv.get<SessionRecord>(sessionKey(id));
  if (entry.versionstamp === null || entry.value === null) return null;
  return { record: entry.value, versionstamp: entry.versionstamp };
}

/**
 * Writes a session if nobody else wrote it since `expected` (null: only if it does not exist).
 *
 * @param kv the store
 * @param id a validated session id
 * @param record the new state
 * @param expected the versionstamp this writer last saw, or null for a new session
 * @param expireInMs idle expiry: the session disappears this long after its last write
 * @returns the new versionstamp
 * @throws {ConflictError} when another writer got there first
 */
export async function writeSession(
  kv: Deno.Kv,
  id: string,
  record: SessionRecord,
  expected: string | null,
  expireInMs: number,
): Promise<string> {
  const key = sessionKey(id);
  const res = await kv.atomic()
    .check({ key, versionstamp: expected })
    .set(key, record, { expireIn: expireInMs })
    .commit();
  if (!res.ok) {
    throw new ConflictError(
      `session ${id} was changed by another writer; read its state (GET /session/${id}) and resend from its seq + 1`,
    );
  }
  return res.versionstamp;
}

/**
 * Deletes a session if nobody wrote it since `expected`.
 *
 * @param kv the store
 * @param id a validated session id
 * @param expected the versionstamp last seen
 * @throws {ConflictError} when another writer changed it meanwhile
 */
export async function deleteSession(kv: Deno.Kv, id: string, expected: string): Promise<void> {
  const key = sessionKey(id);
  const res = await kv.atomic().check({ key, versionstamp: expected }).delete(key).commit();
  if (!res.ok) {
    throw new ConflictError(`session ${id} was changed by another writer while deleting it`);
  }
}

/**
 * Float32 state as bytes for KV (a copy).
 *
 * @param state the state floats
 * @returns little-endian bytes (this runtime's platforms are all little-endian)
 */
export function stateToBytes(state: Float32Array): Uint8Array {
  return new Uint8Array(state.buffer.slice(state.byteOffset, state.byteOffset + state.byteLength));
}

/**
 * Bytes from KV back into a float32 state.
 *
 * @param bytes what {@linkcode stateToBytes} wrote
 * @param expected the number of floats the model's state has
 * @returns a fresh Float32Array
 * @throws {ConflictError} if the size does not match the model (the record is not this model's)
 */
export function bytesToState(bytes: Uint8Array, expected: number): Float32Array {
  if (bytes.byteLength !== expected * 4) {
    throw new ConflictError(
      `stored state has ${bytes.byteLength} bytes; the model's state has ${expected * 4}`,
    );
  }
  const out = new Float32Array(expected);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}
