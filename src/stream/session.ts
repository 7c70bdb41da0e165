// O outputs, S·L·H state. A session at work: its hidden state in memory while a request runs,
// the recurrent step applied per token, checkpoints to KV with a versionstamp check, and the
// events a client sees. Exactly once: every token has a seq; a request may start from any
// seq ≤ durable seq + 1 and tokens at or below the session's seq are skipped, never re-applied.
import { setImmediate } from "node:timers";
import { argmax, type FloatArray, Rng } from "../math/mod.ts";
import { Sampler, type SamplingOptions } from "../nn/mod.ts";
import { ConflictError, NotFoundError, TooLargeError } from "../store/errors.ts";
import type { LoadedModel, ModelCache } from "../store/model_cache.ts";
import {
  bytesToState,
  hurrySession,
  mayAccess,
  readSession,
  type SessionRecord,
  stateToBytes,
  writeSession,
} from "../store/sessions.ts";
import { errorInfo } from "../errors.ts";
import { InputError, type InputItem } from "./decode.ts";
import { batcherFor } from "./batcher.ts";
import { type FrameBuffer, roundProb, utf8 } from "./frames.ts";
import { hiddenJson, hiddenValues } from "./hidden_state.ts";

/** Server limits; each is configurable (see src/config.ts) and documented in the README. */
export interface Limits {
  /** Largest request body, bytes. @default 1_048_576 */
  maxBodyBytes: number;
  /** Most tokens one request may apply. @default 100_000 */
  maxTokensPerRequest: number;
  /** Most tokens one generate request may produce. @default 2_000 */
  maxGenerateTokens: number;
  /** Checkpoint to KV after this many tokens (and at the end of every request). @default 64 */
  checkpointEvery: number;
  /**
   * How long a checkpoint taken while its session steps on may wait for other sessions'
   * checkpoints to share its KV commit, ms (see writeSession). At 70,000 tokens/s over two
   * isolates, checkpointing every 64 tokens, 10 ms took the groups from 13–38 writes per
   * commit to 40–47 (counted in one run each way, when every checkpoint gathered; measured
   * before checkpoints that a session waits for stopped gathering). @default 10
   */
  checkpointGatherMs: number;
  /** Idle sessions expire this long after their last write, ms. @default 7 days */
  sessionTtlMs: number;
  /** A `:` comment is sent when a stream has been quiet this long, ms. @default 15_000 */
  keepAliveMs: number;
  /** Outputs listed in a step event. @default 5 */
  topK: number;
}

/**
 * Most tokens of one item applied in one go (one batcher run, within one turn of the event
 * loop): the item's events so far leave, and the isolate turns to other work, at least this
 * often. Without it, a body read as one 16 KiB chunk would be stepped whole (a third of a
 * second) before its first event left, and every other session on the isolate would wait.
 */
export const MAX_RUN = 64;

/** Resolves at the next turn of the event loop, after pending I/O and timers. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The largest hidden state a session keeps (a KV value is at most 64 KiB, record included). */
export const MAX_STATE_BYTES = 60_000;

/** The default limits. */
export const DEFAULT_LIMITS: Limits = {
  maxBodyBytes: 1_048_576,
  maxTokensPerRequest: 100_000,
  maxGenerateTokens: 2_000,
  checkpointEvery: 64,
  checkpointGatherMs: 10,
  sessionTtlMs: 7 * 24 * 3600 * 1000,
  keepAliveMs: 15_000,
  topK: 5,
};

/** One server-sent event: `event`, `id` (the session seq) and a JSON `data` object. */
export interface SessionEvent {
  event: "step" | "token" | "checkpoint" | "result" | "done" | "error";
  id: number;
  data: Record<string, unknown>;
}

/**
 * The per-token pieces of a model's step frames, as bytes made once per loaded version:
 * `tokens[id]` is `,"token":"…"` for input token `id`; `first[k]` opens the list with output k's
 * entry and `later[k]` follows the previous entry with it: `,"top":[{"token":"…","p":` and
 * `},{"token":"…","p":` for a language model's top-k, `,"probs":{"label":` and `,"label":` for a
 * classifier's probabilities; `close` ends a list (`}]`, `}`) and `empty` is one with no entry
 * (`,"top":[]`, `,"probs":{}`). A frame is then a few copies and the numbers.
 */
interface StepPieces {
  tokens: Uint8Array[];
  first: Uint8Array[];
  later: Uint8Array[];
  close: Uint8Array;
  empty: Uint8Array;
}

const stepPieces = new WeakMap<LoadedModel, StepPieces>();

function piecesOf(loaded: LoadedModel): StepPieces {
  let cached = stepPieces.get(loaded);
  if (cached === undefined) {
    const { labels, vocabulary } = loaded.model.meta;
    const names = (labels ?? vocabulary ?? []).map((n) => JSON.stringify(n));
    cached = {
      tokens: (loaded.vocab?.tokens ?? []).map((t) => utf8(`,"token":${JSON.stringify(t)}`)),
      first: names.map((n) =>
        utf8(labels !== null ? `,"probs":{${n}:` : `,"top":[{"token":${n},"p":`)
      ),
      later: names.map((n) => utf8(labels !== null ? `,${n}:` : `},{"token":${n},"p":`)),
      close: utf8(labels !== null ? "}" : "}]"),
      empty: utf8(labels !== null ? ',"probs":{}' : ',"top":[]'),
    };
    stepPieces.set(loaded, cached);
  }
  return cached;
}

// The fixed parts of a step frame: event: step, data: {"seq":…,"token":…,"top":[{"token":…,
// "p":…},…]} (or "probs":{label:p,…}), id: seq.
const STEP_HEAD = utf8('event: step\ndata: {"seq":');
const ID_LINE = utf8("}\nid: ");
const BLANK_LINE = utf8("\n\n");

/** A session's state copied at a seq, for a checkpoint written while the session steps on. */
interface StateSnapshot {
  seq: number;
  hidden: Uint8Array;
}

/** What a session runner needs from the app. */
export interface SessionDeps {
  kv: Deno.Kv;
  models: ModelCache;
  clock: () => Date;
  limits: Limits;
  /** The model a new session gets when the request names none. */
  defaultModel: string;
}

/** Options of one request on a session. */
export interface OpenOptions {
  /** The model for a new session (`?model=`); must match an existing session's. */
  model?: string;
  /** Seq of the first token in this request's body (`?from=`, or Last-Event-ID + 1). */
  from?: number;
  /** The request's API key name: a new session belongs to it; another key's is not found. */
  owner?: string;
}

/** A public view of a session (GET /session/:id). */
export interface SessionInfo {
  id: string;
  model: string;
  version: number;
  seq: number;
  durable_seq: number;
  created_at: string;
  updated_at: string;
}

/**
 * One request's hold on a session: the state in memory, applied token by token, checkpointed.
 * Create with {@linkcode SessionManager.open}; always {@linkcode SessionRunner.close} it.
 */
export class SessionRunner {
  readonly id: string;
  readonly loaded: LoadedModel;
  readonly state: Float32Array;
  #deps: SessionDeps;
  #record: SessionRecord;
  #versionstamp: string | null;
  #seq: number;
  #durable: number;
  #skip: number;
  #applied = 0;
  readonly #pieces: StepPieces; // the frame pieces of this model
  readonly #top: Int32Array; // each step's top-k, reused
  #closed = false;
  #cancelled = false;
  #failed = false;
  #inflight: Promise<void> = Promise.resolve();
  #writing: Promise<void> = Promise.resolve();
  #behind: Promise<void> | null = null; // a checkpoint apply started and does not wait for
  #fault: unknown = null; // how that checkpoint failed
  #hurried = false; // someone waits for the checkpoint in flight: no waiting for company
  #taken = 0; // the seq of the last checkpoint apply started
  #ids = new Int32Array(64); // the token ids of the item being applied
  #out: FrameBuffer | null = null; // where the item's events go
  /**
   * Add the hidden state (`"h"`, see hidden_state.ts) to each `step` and `token` event.
   * @default false
   */
  includeHidden = false;

  /** @internal use {@linkcode SessionManager.open} */
  constructor(
    deps: SessionDeps,
    id: string,
    loaded: LoadedModel,
    record: SessionRecord,
    versionstamp: string | null,
    skip: number,
  ) {
    this.#deps = deps;
    this.id = id;
    this.loaded = loaded;
    this.#record = record;
    this.#versionstamp = versionstamp;
    this.#seq = record.seq;
    this.#durable = versionstamp === null ? 0 : record.seq;
    this.#skip = skip;
    this.state = bytesToState(record.hidden, loaded.model.network.stateSize);
    this.#pieces = piecesOf(loaded);
    this.#top = new Int32Array(deps.limits.topK);
  }

  /** Tokens applied so far. */
  get seq(): number {
    return this.#seq;
  }

  /** The seq that is safe in KV. */
  get durableSeq(): number {
    return this.#durable;
  }

  /** How many values the `"h"` field holds: h of every layer (L·H). */
  get #hiddenUnits(): number {
    const { layers, hiddenSize } = this.loaded.model.network.config;
    return layers * hiddenSize;
  }

  /** The name of the API key the session belongs to, if any. */
  get owner(): string | undefined {
    return this.#record.owner;
  }

  /** Public view, counting tokens applied in memory but not yet checkpointed. */
  info(): SessionInfo {
    return {
      id: this.id,
      model: this.#record.model,
      version: this.#record.version,
      seq: this.#seq,
      durable_seq: this.#durable,
      created_at: this.#record.createdAt,
      updated_at: this.#record.updatedAt,
    };
  }

  /**
   * Applies one input item (a text's characters, or one token), writing each event into `out`
   * as soon as it exists: a `step` per applied token, a `checkpoint` whenever one is written.
   * Stops early, between tokens, once the request is cancelled.
   *
   * @param item the input
   * @param out the response's pending bytes
   * @throws {InputError} for a character or token outside the vocabulary, or too many tokens
   * @throws {ConflictError} when another writer changed the session
   */
  async apply(item: InputItem, out: FrameBuffer): Promise<void> {
    const work = this.#apply(item, out);
    this.#inflight = work.catch(() => {});
    await work;
  }

  async #apply(item: InputItem, out: FrameBuffer): Promise<void> {
    const vocab = this.loaded.vocab;
    if (vocab === null) {
      throw new InputError("bad_input", "this model reads dense vectors, not text");
    }
    // The item's token ids, in a buffer this runner reuses (an item is applied to the end
    // before the next one starts).
    let n = 0;
    if ("token" in item) {
      const id = vocab.tokenId(item.token);
      if (id < 0) {
        throw new InputError(
          "bad_input",
          `token ${JSON.stringify(item.token)} is not in the vocabulary`,
        );
      }
      this.#ids[n++] = id;
    } else {
      if (this.#ids.length < item.text.length) this.#ids = new Int32Array(item.text.length);
      for (const ch of item.text) {
        const id = vocab.id(ch);
        if (id < 0) {
          throw new InputError(
            "bad_input",
            `character ${JSON.stringify(ch)} is not in the vocabulary (which has no <unk>)`,
          );
        }
        this.#ids[n++] = id;
      }
    }
    const ids = this.#ids;
    const limits = this.#deps.limits;
    let pos = 0;
    if (this.#skip > 0) {
      // Already applied before: the resend overlaps what the session has.
      pos = Math.min(this.#skip, n);
      this.#skip -= pos;
    }
    const batcher = batcherFor(this.loaded.stepper);
    this.#out = out;
    while (pos < n && !this.#cancelled) {
      const allowed = limits.maxTokensPerRequest - this.#applied;
      if (allowed <= 0) {
        throw new InputError(
          "too_large",
          `a request may apply at most ${limits.maxTokensPerRequest} tokens`,
        );
      }
      // A run goes on past a checkpoint that falls due inside it: the state is copied between
      // two of its tokens and written while the run goes on (#onStep); the run stops there only
      // when the last checkpoint is still in flight (#isCancelled), to wait for it here. (Ending
      // the run there instead split the item in two batches, the second often alone.)
      const end = pos + Math.min(n - pos, allowed, MAX_RUN);
      const applied = await batcher.run(this.state, ids, pos, end, this.#onStep, this.#isCancelled);
      pos += applied;
      this.#applied += applied;
      if (this.#checkpointDue()) await this.#checkpointBehind(out);
      // More of this item to come: let the events so far leave and the isolate's other work
      // (other sessions, timers) run first. Runs and checkpoints settle within one turn of the
      // event loop, so without this a long item would be applied whole in one turn.
      if (pos < n) await nextTurn();
    }
    if (this.#fault !== null) throw this.#fault;
  }

  /** Tokens applied since the last checkpoint taken (landed or still in flight). */
  #sinceCheckpoint(): number {
    return this.#seq - Math.max(this.#durable, this.#taken);
  }

  /** Whether a checkpoint is due: `checkpointEvery` tokens applied since the last one taken. */
  #checkpointDue(): boolean {
    return this.#sinceCheckpoint() >= this.#deps.limits.checkpointEvery;
  }

  /**
   * The batcher's callback after each token of this runner: writes its step event, and starts
   * a checkpoint that has fallen due, of the state as it is after this token.
   */
  readonly #onStep = (probs: FloatArray, at: number, k: number): void => {
    this.#stepped(this.#out!, this.#ids[k], probs, at);
    if (this.#behind === null && this.#fault === null && this.#checkpointDue()) {
      this.#startCheckpoint(this.#out!, { seq: this.#seq, hidden: stateToBytes(this.state) });
    }
  };

  /**
   * Polled by the batcher before each token: stops the run when the request is cancelled, or
   * when a checkpoint is due that #onStep could not start (the last one is still in flight, or
   * failed), for #apply to wait for it or to fail.
   */
  readonly #isCancelled = (): boolean =>
    this.#cancelled ||
    ((this.#behind !== null || this.#fault !== null) && this.#checkpointDue());

  /**
   * Takes a checkpoint that is due after a run, where #onStep could not start it between two
   * tokens because the previous one was still in flight: waits for that one first, and hurries
   * it (it stops waiting for company), so at most two checkpoints' worth of tokens are ever
   * waiting to be durable. A failed checkpoint (a conflict) fails the request here, or at the
   * next item or at its end.
   */
  async #checkpointBehind(out: FrameBuffer): Promise<void> {
    if (this.#behind !== null) {
      this.#hurry();
      await this.#behind;
    }
    if (this.#fault !== null) throw this.#fault;
    if (!this.#checkpointDue()) return; // the one waited for covered these tokens
    this.#startCheckpoint(out);
  }

  /**
   * Starts a checkpoint that the stepping does not wait for (none may be in flight): the next
   * tokens are applied while KV commits it. It is of `snapshot` when given (the state copied
   * between two tokens of a run), else of the state when the write begins. Its `checkpoint`
   * event, whose id is the seq it made durable, is written when it has landed and leaves with
   * the next step events ({@linkcode FrameBuffer.eventLater}), so it may follow the `step`
   * events of a few later tokens. Since nothing waits for it, its write may wait a little for
   * other sessions' writes to share a commit ({@linkcode Limits.checkpointGatherMs}).
   */
  #startCheckpoint(out: FrameBuffer, snapshot?: StateSnapshot): void {
    this.#taken = snapshot?.seq ?? this.#seq;
    this.#behind = this.#write(this.#deps.limits.checkpointGatherMs, snapshot).then(
      (event) => out.eventLater(event),
      (err) => this.#fault ??= err,
    ).then(() => {
      this.#behind = null;
    });
  }

  /**
   * Resolves when no checkpoint started by {@linkcode SessionRunner.apply} is in flight, its
   * event written: then {@linkcode SessionRunner.durableSeq} is where the session stands in KV.
   */
  async settled(): Promise<void> {
    if (this.#behind === null) return;
    this.#hurry();
    await this.#behind;
  }

  /**
   * Someone waits for this runner's checkpoint in flight: its write stops waiting for company
   * (see {@linkcode writeSession}).
   */
  #hurry(): void {
    this.#hurried = true;
    hurrySession(this.#deps.kv, this.id);
  }

  /** Stops the work of this request between tokens (the client went away). */
  cancel(): void {
    this.#cancelled = true;
  }

  /** Resolves when no {@linkcode SessionRunner.apply} is running. */
  async idle(): Promise<void> {
    await this.#inflight;
    await this.#writing;
  }

  /**
   * The `error` event for a fault, with where the session durably stands; marks the request
   * failed, so closing it drops what it applied since its last checkpoint.
   *
   * @param err the fault
   * @returns the event
   */
  fail(err: unknown): SessionEvent {
    this.#failed = true;
    const info = errorInfo(err);
    if (info.status >= 500) console.error(err);
    return {
      event: "error",
      id: this.#durable,
      data: { code: info.code, message: info.message, durable_seq: this.#durable },
    };
  }

  /** Whether this request ended in an error. */
  get failed(): boolean {
    return this.#failed;
  }

  /**
   * Writes the `step` event of token `id`, just applied, whose probabilities are at `at`:
   * `{"seq", "token", "top": [{"token", "p"}, ...]}` (or `"probs": {label: p}` for a
   * classifier), framed straight into bytes since it is made for every token.
   */
  #stepped(out: FrameBuffer, id: number, probs: FloatArray, at: number): void {
    const { tokens, first, later, close, empty } = this.#pieces;
    const seq = ++this.#seq;
    out.bytes(STEP_HEAD);
    out.uint(seq);
    out.bytes(tokens[id]);
    let n: number; // entries listed
    if (this.loaded.model.meta.labels !== null) {
      n = first.length;
      for (let k = 0; k < n; k++) {
        out.bytes(k === 0 ? first[k] : later[k]);
        out.probAt(probs, at + k);
      }
    } else {
      const best = this.#top;
      n = this.loaded.stepper.topK(best, probs, at, first.length);
      for (let r = 0; r < n; r++) {
        out.bytes(r === 0 ? first[best[r]] : later[best[r]]);
        out.probAt(probs, at + best[r]);
      }
    }
    out.bytes(n > 0 ? close : empty);
    if (this.includeHidden) out.text(`,"h":${hiddenJson(this.state, this.#hiddenUnits)}`);
    out.bytes(ID_LINE);
    out.uint(seq);
    out.bytes(BLANK_LINE);
    out.end();
  }

  /**
   * Samples tokens from the session's state and applies each (they become part of it).
   *
   * @param count how many to generate
   * @param options temperature, top-k, top-p
   * @param seed random seed: the same seed and state give the same text
   * @param stop strings that end generation once generated (they are included)
   * @param emit receives each `token` (and `checkpoint`) event as it is made
   * @param aborted polled between tokens; true stops generation
   * @returns why it stopped: "length" or "stop" (or "aborted")
   */
  async generate(
    count: number,
    options: SamplingOptions,
    seed: number,
    stop: string[],
    emit: (event: SessionEvent) => Promise<void>,
    aborted: () => boolean,
  ): Promise<"length" | "stop" | "aborted"> {
    const { stepper, vocab, model } = this.loaded;
    if (vocab === null || model.meta.vocabulary === null || model.meta.labels !== null) {
      throw new InputError("bad_input", `a ${model.meta.task} model does not generate tokens`);
    }
    const sampler = new Sampler(model.network.config.outputSize);
    const rng = new Rng(seed);
    // The stepper is shared by every session of this model version and this loop awaits
    // between tokens: keep this session's next-token scores in a private copy.
    stepper.readout(this.state);
    const logits = Float32Array.from(stepper.logits);
    const markerIds = vocab.markers.map((m) => vocab.tokenId(m));
    let text = "";
    const longest = Math.max(0, ...stop.map((s) => s.length));
    for (let k = 0; k < count; k++) {
      if (aborted()) return "aborted";
      // Never generate <unk> or a class marker: they are inputs, not text.
      if (vocab.unkId >= 0) logits[vocab.unkId] = -Infinity;
      for (const m of markerIds) logits[m] = -Infinity;
      const id = sampler.sample(logits, options, rng);
      stepper.advance(this.state, id);
      logits.set(stepper.logits);
      this.#seq++;
      const token = vocab.tokens[id];
      const data: Record<string, unknown> = { seq: this.#seq, token };
      if (this.includeHidden) data.h = hiddenValues(this.state, this.#hiddenUnits);
      await emit({ event: "token", id: this.#seq, data });
      if (this.#seq - this.#durable >= this.#deps.limits.checkpointEvery) {
        await emit(await this.checkpoint());
      }
      text = (text + token).slice(-Math.max(1, 2 * longest));
      if (stop.some((s) => s !== "" && text.endsWith(s))) {
        // A generator that wrote its end marker is done: a further generate would run on past it.
        if (vocab.markers.length > 0 && token === "\n") this.#setContext("complete", "true");
        return "stop";
      }
    }
    return "length";
  }

  /**
   * Writes the state to KV (if anything changed) with a versionstamp check.
   *
   * @returns a `checkpoint` event with the durable seq
   * @throws {ConflictError} when another writer changed the session meanwhile
   */
  async checkpoint(): Promise<SessionEvent> {
    this.#hurry();
    return await this.#write(0);
  }

  /**
   * Queues a checkpoint behind the one in flight. One write at a time per runner: a second
   * checkpoint (the request's close, SIGTERM) waits for the one in flight and then writes only
   * if tokens were applied meanwhile.
   *
   * @param gatherMs how long its write may wait for company unless hurried
   * @param snapshot the state to write and its seq, copied earlier; by default the state as it
   *   is when the write begins
   */
  #write(gatherMs: number, snapshot?: StateSnapshot): Promise<SessionEvent> {
    const run = this.#writing.then(() => this.#checkpoint(gatherMs, snapshot));
    this.#writing = run.then(() => {}, () => {});
    return run;
  }

  async #checkpoint(gatherMs: number, snapshot?: StateSnapshot): Promise<SessionEvent> {
    try {
      const seq = snapshot?.seq ?? this.#seq;
      // (a snapshot is never behind what is durable: writes go in the order they were started)
      if (this.#versionstamp === null || seq > this.#durable) {
        const now = this.#deps.clock().toISOString();
        const record: SessionRecord = {
          ...this.#record,
          seq,
          hidden: snapshot?.hidden ?? stateToBytes(this.state),
          updatedAt: now,
        };
        this.#versionstamp = await writeSession(
          this.#deps.kv,
          this.id,
          record,
          this.#versionstamp,
          this.#deps.limits.sessionTtlMs,
          this.#hurried ? 0 : gatherMs,
        );
        this.#record = record;
        this.#durable = record.seq;
      }
      return { event: "checkpoint", id: this.#durable, data: { seq: this.#durable } };
    } finally {
      this.#hurried = false;
    }
  }

  /** The closing events of a request: a final checkpoint and `done`. */
  async finish(reason?: string): Promise<SessionEvent[]> {
    await this.settled();
    if (this.#fault !== null) throw this.#fault;
    const cp = await this.checkpoint();
    const data: Record<string, unknown> = { seq: this.#seq, durable_seq: this.#durable };
    if (reason !== undefined) data.finish_reason = reason;
    const done: SessionEvent = { event: "done", id: this.#seq, data };
    // A classifier's answer for the sequence so far (many to one, one to one).
    return this.loaded.model.meta.labels === null ? [cp, done] : [this.result(), cp, done];
  }

  /**
   * A classifier's `result` event: the class probabilities of the state as it stands.
   *
   * @returns the event
   */
  result(): SessionEvent {
    const labels = this.loaded.model.meta.labels ?? [];
    const probs = this.loaded.stepper.readout(this.state);
    const best = argmax(probs, 0, labels.length);
    const out: Record<string, number> = {};
    labels.forEach((n, k) => out[n] = roundProb(probs[k]));
    return {
      event: "result",
      id: this.#seq,
      data: { seq: this.#seq, label: labels[best], probs: out },
    };
  }

  /**
   * One to one: the model reads exactly one token, from a zero state (no recurrence), and the
   * answer is a `result` event.
   *
   * @param token the input token (a character or a special token)
   * @returns result, checkpoint and done
   * @throws {InputError} for a token outside the vocabulary
   */
  async single(token: string): Promise<SessionEvent[]> {
    const vocab = this.loaded.vocab!;
    const id = [...token].length === 1 ? vocab.id(token) : vocab.tokenId(token);
    if (id < 0) {
      throw new InputError("bad_input", `token ${JSON.stringify(token)} is not in the vocabulary`);
    }
    if (this.#skip > 1) {
      throw new ConflictError(
        `session ${this.id} is at seq ${this.#seq}: a one-to-one session can answer again only its last token (from=${this.#seq})`,
      );
    }
    if (this.#skip === 1) {
      // A resend of the token this session last answered: answer again, apply nothing.
      this.#skip = 0;
      return await this.finish();
    }
    this.state.fill(0);
    this.loaded.stepper.advance(this.state, id);
    this.#seq++;
    return await this.finish();
  }

  /**
   * Starts a one-to-many session: applies the class marker as its first token.
   *
   * @param label the class, e.g. "female" (or "<female>")
   * @throws {InputError} when the model has no such class
   * @throws {ConflictError} when the session has started already
   */
  startWithClass(label: string): void {
    const vocab = this.loaded.vocab!;
    const marker = label.startsWith("<") ? label : `<${label}>`;
    if (!vocab.markers.includes(marker)) {
      throw new InputError(
        "bad_input",
        `class ${JSON.stringify(label)} is not one of ${
          vocab.markers.map((m) => m.slice(1, -1)).join(", ")
        }`,
      );
    }
    if (this.#seq !== 0) {
      throw new ConflictError(
        `session ${this.id} has started already; a class is given on its first request`,
      );
    }
    this.loaded.stepper.advance(this.state, vocab.tokenId(marker));
    this.#seq++;
    this.#setContext("class", marker.slice(1, -1));
  }

  /** Facts fixed for the session (the class a generator was started with, ...). */
  get context(): Readonly<Record<string, string>> {
    return this.#record.context;
  }

  #setContext(key: string, value: string): void {
    this.#record = { ...this.#record, context: { ...this.#record.context, [key]: value } };
  }

  /** @internal */
  markClosed(): boolean {
    const was = this.#closed;
    this.#closed = true;
    return !was;
  }
}

/**
 * Sessions open in this isolate: at most one request per session at a time (a second gets a
 * conflict at once), and a list to checkpoint when the process is told to stop.
 */
export class SessionManager {
  readonly deps: SessionDeps;
  readonly #active = new Map<string, SessionRunner | "opening">();

  /**
   * @param deps KV, model cache, clock, limits, default model
   */
  constructor(deps: SessionDeps) {
    this.deps = deps;
  }

  /**
   * Opens a session for one request: reads (or starts) it, pins its model version, and decides
   * which tokens of the request to skip.
   *
   * @param id a validated session id
   * @param options model for a new session, seq of the body's first token
   * @returns the runner; close it when the request ends
   * @throws {ConflictError} when the session is busy here, or its model differs from `model`,
   *   or `from` would leave a gap
   * @throws {NotFoundError} for an unknown model
   */
  async open(id: string, options: OpenOptions = {}): Promise<SessionRunner> {
    if (this.#active.has(id)) {
      throw new ConflictError(`session ${id} is busy with another request; retry when it ends`);
    }
    this.#active.set(id, "opening");
    try {
      const runner = await this.#open(id, options);
      this.#active.set(id, runner);
      return runner;
    } catch (err) {
      this.#active.delete(id);
      throw err;
    }
  }

  async #open(id: string, options: OpenOptions): Promise<SessionRunner> {
    const { kv, models, clock } = this.deps;
    const stored = await readSession(kv, id);
    let loaded: LoadedModel;
    let record: SessionRecord;
    if (stored !== null) {
      record = stored.record;
      // Another key's session is missing, as far as this request can tell.
      if (!mayAccess(record.owner, options.owner)) throw new NotFoundError(`no session ${id}`);
      // A session made while access control was off goes to the first key that writes it.
      if (record.owner === undefined && options.owner !== undefined) {
        record = { ...record, owner: options.owner };
      }
      if (options.model !== undefined && options.model !== record.model) {
        throw new ConflictError(`session ${id} runs model ${record.model}, not ${options.model}`);
      }
      try {
        loaded = await models.load(record.model, record.version);
      } catch (err) {
        if (err instanceof NotFoundError) {
          throw new NotFoundError(
            `session ${id} is pinned to ${record.model} version ${record.version}, which is no longer kept`,
          );
        }
        throw err;
      }
    } else {
      loaded = await models.load(options.model ?? this.deps.defaultModel);
      // A session's state is one KV value (at most 64 KiB with the rest of the record).
      if (loaded.model.network.stateSize * 4 > MAX_STATE_BYTES) {
        throw new TooLargeError(
          `model ${loaded.name} has ${
            loaded.model.network.stateSize * 4
          } bytes of state; a session stores at most ${MAX_STATE_BYTES}`,
        );
      }
      const now = clock().toISOString();
      record = {
        model: loaded.name,
        version: loaded.version,
        seq: 0,
        hidden: new Uint8Array(loaded.model.network.stateSize * 4),
        context: {},
        createdAt: now,
        updatedAt: now,
      };
      if (options.owner !== undefined) record.owner = options.owner;
    }
    let skip = 0;
    if (options.from !== undefined) {
      if (options.from > record.seq + 1) {
        throw new ConflictError(
          `session ${id} is at seq ${record.seq}: resend from ${
            record.seq + 1
          }, not ${options.from}`,
        );
      }
      skip = record.seq + 1 - options.from;
    }
    return new SessionRunner(this.deps, id, loaded, record, stored?.versionstamp ?? null, skip);
  }

  /**
   * Ends a request's hold: checkpoints what it applied (unless told not to) and frees the id.
   *
   * @param runner the runner from {@linkcode SessionManager.open}
   * @param keep checkpoint the tokens applied since the last checkpoint; false after bad input,
   *   so a malformed request leaves the durable state at its last checkpoint
   */
  async close(runner: SessionRunner, keep = true): Promise<void> {
    if (!runner.markClosed()) return;
    runner.cancel();
    try {
      // A chunk may still be in the middle of being applied: let it stop first.
      await runner.idle();
      if (keep && !runner.failed && runner.seq !== runner.durableSeq) await runner.checkpoint();
    } finally {
      this.#active.delete(runner.id);
    }
  }

  /**
   * The runner holding a session in this isolate, if any.
   *
   * @param id a session id
   * @returns the runner, or undefined
   */
  active(id: string): SessionRunner | undefined {
    const r = this.#active.get(id);
    return r === "opening" ? undefined : r;
  }

  /** Whether a request holds the session in this isolate. */
  busy(id: string): boolean {
    return this.#active.has(id);
  }

  /**
   * Checkpoints every open session (SIGINT/SIGTERM): what was applied becomes durable.
   *
   * @returns how many sessions were written and how many failed
   */
  async checkpointAll(): Promise<{ written: number; failed: number }> {
    let written = 0, failed = 0;
    for (const r of this.#active.values()) {
      // A failed request told its client its durable seq: what it applied since is dropped.
      if (r === "opening" || r.failed) continue;
      r.cancel();
      await r.idle(); // a checkpoint may be under way: let it land first
      if (r.seq === r.durableSeq) continue;
      try {
        await r.checkpoint();
        written++;
      } catch {
        failed++;
      }
    }
    return { written, failed };
  }
}
