// A session's durable state in Deno KV: one value under ["session", id], written only with a
// versionstamp check so that two writers can never silently overwrite each other.
import { ConflictError } from "./errors.ts";
import { SESSION_PREFIX, sessionKey } from "./keys.ts";

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
  /**
   * The name of the API key the session belongs to: the key that created it, or the first key
   * that wrote to it. Absent for a session made while access control was off.
   */
  owner?: string;
}

/**
 * Whether a request may see a session: always when it has no key (access control off) or the
 * session has no owner (made while access control was off), else only with the owner's key.
 *
 * @param owner the session's owner
 * @param key the name of the request's key
 * @returns true when the session is the request's to read and write
 * @example
 * ```ts
 * import { mayAccess } from "./sessions.ts";
 * mayAccess("alice", "bob"); // false
 * mayAccess(undefined, "bob"); // true
 * ```
 */
export function mayAccess(owner: string | undefined, key: string | undefined): boolean {
  return key === undefined || owner === undefined || owner === key;
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
 * Every stored session, in id order (for tools and tests that inspect a store; serving reads
 * one session at a time).
 *
 * @param kv the store
 * @returns the ids with their records and versionstamps
 */
export async function* listSessions(
  kv: Deno.Kv,
): AsyncGenerator<{ id: string } & StoredSession> {
  for await (const entry of kv.list<SessionRecord>({ prefix: SESSION_PREFIX })) {
    yield { id: String(entry.key[1]), record: entry.value, versionstamp: entry.versionstamp };
  }
}

/**
 * Writes a session if nobody else wrote it since `expected` (null: only if it does not exist).
 *
 * Writes are grouped: while one commit to a store is in flight, the writes that arrive wait and
 * then go together in one atomic operation, each with its own versionstamp check (a group
 * commit). A commit costs the store far more than a write in it (on the local SQLite store,
 * about 300 µs of CPU for a commit of one write against about 30 µs per write in a commit of
 * 64: `deno task bench:kv`), so a thousand sessions checkpointing at once cost a few dozen
 * commits, not a thousand. A write whose caller goes on without its result (a checkpoint taken
 * while the session keeps stepping) may also wait up to `gatherMs` for company while writes
 * keep coming (until `gatherMs` after the last commit started), so that a busy server's groups
 * grow; a write to an idle store, a write with no `gatherMs`, and a write someone has started to
 * wait on ({@linkcode hurrySession}) go with the next commit. If a group's commit fails a check,
 * its writes are retried one by one, so only the write that lost its race gets the conflict.
 *
 * @param kv the store
 * @param id a validated session id
 * @param record the new state
 * @param expected the versionstamp this writer last saw, or null for a new session
 * @param expireInMs idle expiry: the session disappears this long after its last write
 * @param gatherMs how long the write may wait for others to share its commit (ms): 0 when the
 *   caller waits for it; a few ms (Limits.checkpointGatherMs) for a checkpoint taken while the
 *   session steps on
 * @returns the new versionstamp
 * @throws {ConflictError} when another writer got there first
 */
export function writeSession(
  kv: Deno.Kv,
  id: string,
  record: SessionRecord,
  expected: string | null,
  expireInMs: number,
  gatherMs = 0,
): Promise<string> {
  let group = groups.get(kv);
  if (group === undefined) {
    group = new GroupCommit(kv);
    groups.set(kv, group);
  }
  return group.write({ id, record, expected, expireInMs, gatherMs });
}

/**
 * Ends the wait for company of a session's queued write (see {@linkcode writeSession}): its
 * writer has started to wait for it, so it goes with the next commit. Without one, nothing
 * happens.
 *
 * @param kv the store
 * @param id the session
 */
export function hurrySession(kv: Deno.Kv, id: string): void {
  groups.get(kv)?.hurry(id);
}

/** One session write waiting for its commit. */
interface PendingWrite {
  id: string;
  record: SessionRecord;
  expected: string | null;
  expireInMs: number;
  /** How long after the last commit started this write may still wait for company (ms). */
  gatherMs: number;
  resolve?: (versionstamp: string) => void;
  reject?: (err: unknown) => void;
}

/** Most writes in one atomic operation (Deno KV allows 100 checks and 1,000 mutations). */
const GROUP_WRITES = 64;
/** Most state bytes in one atomic operation (Deno KV allows 800 KiB of mutations). */
const GROUP_BYTES = 400_000;

const groups = new WeakMap<Deno.Kv, GroupCommit>();

/** The group commit of one store (see {@linkcode writeSession}). */
class GroupCommit {
  readonly #kv: Deno.Kv;
  #queue: PendingWrite[] = [];
  #busy = false; // a commit in flight, or writes waiting for company
  #lastCommit = -Infinity; // when the last group's commit started (performance.now())
  #until = Infinity; // while waiting for company: when the wait ends (performance.now())
  #wake: (() => void) | null = null; // ends the wait for company now

  constructor(kv: Deno.Kv) {
    this.#kv = kv;
  }

  write(w: PendingWrite): Promise<string> {
    return new Promise((resolve, reject) => {
      w.resolve = resolve;
      w.reject = reject;
      this.#queue.push(w);
      if (!this.#busy) {
        this.#busy = true;
        this.#run();
      } else if (
        this.#lastCommit + w.gatherMs < this.#until || this.#queue.length >= GROUP_WRITES
      ) {
        this.#wake?.(); // the group is due sooner now
      }
    });
  }

  hurry(id: string): void {
    let found = false;
    for (const w of this.#queue) {
      if (w.id === id && w.gatherMs > 0) {
        w.gatherMs = 0;
        found = true;
      }
    }
    if (found) this.#wake?.();
  }

  /** When the queued writes are due: the earliest any of them stops waiting for company. */
  #due(): number {
    if (this.#queue.length >= GROUP_WRITES) return -Infinity;
    let due = Infinity;
    for (const w of this.#queue) due = Math.min(due, this.#lastCommit + w.gatherMs);
    return due;
  }

  /** Waits until `until`, or less if woken. */
  #sleep(until: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = null;
        this.#until = Infinity;
        resolve();
      };
      const timer = setTimeout(done, until - performance.now());
      this.#wake = done;
      this.#until = until;
    });
  }

  async #run(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        for (let due = this.#due(); due > performance.now(); due = this.#due()) {
          await this.#sleep(due);
        }
        // Take writes in order, at most one per session, within the limits.
        const group: PendingWrite[] = [];
        const ids = new Set<string>();
        let bytes = 0;
        const rest: PendingWrite[] = [];
        for (const w of this.#queue) {
          const size = w.record.hidden.byteLength + 512;
          if (
            group.length < GROUP_WRITES && !ids.has(w.id) &&
            (group.length === 0 || bytes + size <= GROUP_BYTES)
          ) {
            group.push(w);
            ids.add(w.id);
            bytes += size;
          } else rest.push(w);
        }
        this.#queue = rest;
        this.#lastCommit = performance.now();
        await this.#commit(group);
      }
    } finally {
      this.#busy = false;
    }
  }

  async #commit(group: PendingWrite[]): Promise<void> {
    if (group.length > 1) {
      try {
        const op = this.#kv.atomic();
        for (const w of group) {
          const key = sessionKey(w.id);
          op.check({ key, versionstamp: w.expected }).set(key, w.record, {
            expireIn: w.expireInMs,
          });
        }
        const res = await op.commit();
        if (res.ok) {
          for (const w of group) w.resolve!(res.versionstamp);
          return;
        }
      } catch {
        // retried one by one below, where each write gets its own outcome
      }
    }
    await Promise.all(group.map(async (w) => {
      try {
        w.resolve!(await writeOne(this.#kv, w));
      } catch (err) {
        w.reject!(err);
      }
    }));
  }
}

async function writeOne(kv: Deno.Kv, w: PendingWrite): Promise<string> {
  const key = sessionKey(w.id);
  const res = await kv.atomic()
    .check({ key, versionstamp: w.expected })
    .set(key, w.record, { expireIn: w.expireInMs })
    .commit();
  if (!res.ok) {
    throw new ConflictError(
      `session ${w.id} was changed by another writer; read its state (GET /session/${w.id}) and resend from its seq + 1`,
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
