// Shared by the reliability tests (fault, load, bad input, concurrency): the scale factor, seeded
// texts, the durable sessions of a KV file read directly with the store's own helpers, the
// uninterrupted reference state computed in this process, and a server's memory from /proc.
import assert from "node:assert/strict";
import { Rng } from "../src/math/mod.ts";
import { simdAvailable, SimdStepper, Stepper, type StreamStepper } from "../src/nn/mod.ts";
import { loadModel } from "../src/store/registry.ts";
import { bytesToState, listSessions, type StoredSession } from "../src/store/sessions.ts";
import { CharVocab } from "../src/text/char_vocab.ts";

/**
 * `RELIABILITY_SCALE` (1): the reliability tests multiply their counts (sessions, kills, rounds,
 * requests) by it, so `RELIABILITY_SCALE=10 deno task test` runs ten times as much.
 */
export const SCALE: number = (() => {
  const raw = Deno.env.get("RELIABILITY_SCALE") ?? "1";
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(
      `RELIABILITY_SCALE must be a whole number ≥ 1, not ${JSON.stringify(raw)}`,
    );
  }
  return n;
})();

/** The characters of the small test model's vocabulary (besides <unk>). */
export const SMALL_LM_CHARS = " .abcdefghijklmnopqrstuvwxyz";

/**
 * A seeded random text over `chars`.
 *
 * @param rng the generator
 * @param length characters
 * @param chars the alphabet
 * @returns the text
 */
export function randomText(rng: Rng, length: number, chars = SMALL_LM_CHARS): string {
  let out = "";
  for (let k = 0; k < length; k++) out += chars[rng.int(chars.length)];
  return out;
}

/**
 * Every session stored in a KV file, read directly (the server must have stopped).
 *
 * @param kvPath the KV file
 * @returns id -> record and versionstamp
 */
export async function storedSessions(kvPath: string): Promise<Map<string, StoredSession>> {
  const kv = await Deno.openKv(kvPath);
  try {
    const out = new Map<string, StoredSession>();
    for await (const s of listSessions(kv)) {
      out.set(s.id, { record: s.record, versionstamp: s.versionstamp });
    }
    return out;
  } finally {
    kv.close();
  }
}

/**
 * A session record as comparable text: every field, the hidden state as its bytes, and the
 * versionstamp (which changes with every write, even one that stores the same bytes).
 *
 * @param s a stored session
 * @returns JSON
 */
export function snapshotOf(s: StoredSession): string {
  return JSON.stringify({ ...s.record, hidden: [...s.record.hidden], vs: s.versionstamp });
}

/** The in-process, uninterrupted run of a model version read from a KV file. */
export class ReferenceRun {
  readonly stepper: StreamStepper;
  readonly vocab: CharVocab;
  readonly stateSize: number;

  private constructor(stepper: StreamStepper, vocab: CharVocab) {
    this.stepper = stepper;
    this.vocab = vocab;
    this.stateSize = stepper.net.stateSize;
  }

  /**
   * Loads a model version from a KV file (checksum verified) and builds the stepper the server
   * builds for it: the WebAssembly SIMD one where the platform has SIMD, else TypeScript's.
   *
   * @param kvPath the KV file
   * @param name the model name
   * @param version the version
   * @returns the reference
   */
  static async load(kvPath: string, name: string, version: number): Promise<ReferenceRun> {
    const kv = await Deno.openKv(kvPath);
    try {
      return await ReferenceRun.fromStore(kv, name, version);
    } finally {
      kv.close();
    }
  }

  /**
   * {@linkcode ReferenceRun.load} from an open store.
   *
   * @param kv the store
   * @param name the model name
   * @param version the version
   * @returns the reference
   */
  static async fromStore(kv: Deno.Kv, name: string, version: number): Promise<ReferenceRun> {
    const { model } = await loadModel(kv, name, version);
    const stepper = simdAvailable() ? new SimdStepper(model.network) : new Stepper(model.network);
    return new ReferenceRun(stepper, new CharVocab(model.meta.vocabulary!));
  }

  /**
   * The state after every character of `text`, from a zero state, one token at a time.
   *
   * @param text the session's whole input
   * @returns the state as float32 bytes
   */
  stateAfter(text: string): Uint8Array {
    const state = this.stepper.newState();
    for (const id of this.vocab.encode(text)) this.stepper.step(state, id);
    const f32 = Float32Array.from(state);
    return new Uint8Array(f32.buffer);
  }
}

/**
 * Asserts that a stored session is exactly the uninterrupted run over `text`: seq is the number
 * of tokens, and the hidden state (decoded with the store's own helper) equals the reference bit
 * for bit.
 *
 * @param id the session id, for messages
 * @param stored what KV holds
 * @param ref the reference run
 * @param text every token the client sent, in order
 */
export function assertSameAsReference(
  id: string,
  stored: StoredSession | undefined,
  ref: ReferenceRun,
  text: string,
): void {
  assert.ok(stored !== undefined, `session ${id} is in KV`);
  const tokens = [...text].length;
  assert.equal(stored.record.seq, tokens, `session ${id}: seq is the number of tokens sent`);
  const state = bytesToState(stored.record.hidden, ref.stateSize);
  const got = new Uint8Array(state.buffer);
  const want = ref.stateAfter(text);
  let first = -1;
  for (let k = 0; k < want.length && first < 0; k++) if (got[k] !== want[k]) first = k;
  assert.equal(
    first,
    -1,
    `session ${id}: hidden state differs from the uninterrupted run from byte ${first} ` +
      `(float ${Math.floor(first / 4)}: ${state[Math.floor(first / 4)]} vs ${
        new Float32Array(want.buffer)[Math.floor(first / 4)]
      })`,
  );
}

/** A temp dir for one test's KV file, removed afterwards. */
export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Runs `fn` for each item with at most `limit` running at once.
 *
 * @param items the work
 * @param limit the concurrency
 * @param fn the worker
 */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
