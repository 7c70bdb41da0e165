// Batched stepping: sessions on the same model version that have tokens waiting at the same
// moment are stepped together, one token each per round, with one read of the weights per round
// (StreamStepper.stepMany) instead of one per session. A session alone is stepped directly.
import { setImmediate } from "node:timers";
import type { FloatArray } from "../math/mod.ts";
import type { StreamStepper } from "../nn/mod.ts";

/**
 * Receives a stream's probabilities after each of its tokens: `probs[at .. at + O)` after
 * `ids[index]`.
 */
export type OnStep = (probs: FloatArray, at: number, index: number) => void;

interface Job {
  state: FloatArray;
  ids: ArrayLike<number>;
  pos: number;
  end: number;
  onStep: OnStep;
  cancelled: () => boolean;
  resolve: (applied: number) => void;
  reject: (err: unknown) => void;
  start: number;
}

/** Counters of one batcher, for benchmarks and `/healthz`. */
export interface BatchStats {
  /** Tokens stepped. */
  tokens: number;
  /** Stepper calls (a call steps one token of each stream in it). */
  calls: number;
  /** Tokens stepped in calls of more than one stream. */
  batched: number;
}

/**
 * Steps runs of tokens for many streams of one stepper. {@linkcode StepBatcher.run} queues a
 * run. When the batcher is busy (its last drain, less than {@linkcode BUSY_MS} ago, had more
 * than one run), the drain waits for the next turn of the event loop (`setImmediate`: after the
 * I/O that is ready has been handled), so that every session whose input has arrived meanwhile
 * joins it. (A zero timeout would do the same but waits for the timer's tick, 1-2 ms in
 * Deno.) Otherwise the queue is drained in a microtask: a lone session waits for nothing. A
 * drain steps its runs in rounds of one token per run, up to the stepper's batch size per call,
 * until every run is done; runs that arrive meanwhile wait for the next drain. A drain with
 * one run steps it token by token, exactly as the stepper alone would (stepMany gives the same
 * bits, so batching never changes a result).
 *
 * @example
 * ```ts
 * import { Network, Stepper } from "../nn/mod.ts";
 * import { StepBatcher } from "./batcher.ts";
 * const net = Network.create({ cell: "gru", nonlinearity: "tanh", input: "embedding",
 *   vocabSize: 5, inputSize: 4, hiddenSize: 8, layers: 1, outputSize: 5 }, 7);
 * const stepper = new Stepper(net);
 * const batcher = new StepBatcher(stepper);
 * const [a, b] = [stepper.newState(), stepper.newState()];
 * await Promise.all([
 *   batcher.run(a, [1, 2, 3], 0, 3, (probs, at) => console.log("a", probs[at])),
 *   batcher.run(b, [4, 0], 0, 2, (probs, at) => console.log("b", probs[at])),
 * ]);
 * ```
 */
export class StepBatcher {
  readonly stepper: StreamStepper;
  readonly stats: BatchStats = { tokens: 0, calls: 0, batched: 0 };
  #queue: Job[] = [];
  #scheduled = false;
  #lastDrain = -Infinity;
  #lastJobs = 0; // runs in the last drain
  // Reused between rounds: nothing is allocated per token.
  readonly #states: FloatArray[] = [];
  readonly #tokens: Int32Array;
  readonly #round: Job[] = [];

  /**
   * @param stepper the stepper every run of this batcher uses
   */
  constructor(stepper: StreamStepper) {
    this.stepper = stepper;
    this.#tokens = new Int32Array(stepper.maxBatch);
  }

  /**
   * Steps `ids[pos .. end)` on `state`, calling `onStep` after each token.
   *
   * @param state the stream's state, updated in place
   * @param ids token ids
   * @param pos the first to apply
   * @param end one past the last
   * @param onStep receives each token's probabilities (valid only during the call)
   * @param cancelled polled before each token: true ends the run early
   * @returns how many tokens were applied
   */
  run(
    state: FloatArray,
    ids: ArrayLike<number>,
    pos: number,
    end: number,
    onStep: OnStep,
    cancelled: () => boolean = () => false,
  ): Promise<number> {
    const v = this.stepper.net.config.vocabSize;
    for (let k = pos; k < end; k++) {
      const id = ids[k];
      if (!(Number.isInteger(id) && id >= 0 && id < v)) {
        return Promise.reject(new RangeError(`token id ${id} is outside 0..${v - 1}`));
      }
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ state, ids, pos, end, onStep, cancelled, resolve, reject, start: pos });
      if (!this.#scheduled) {
        this.#scheduled = true;
        const busy = this.#lastJobs > 1 && performance.now() - this.#lastDrain < BUSY_MS;
        if (busy) setImmediate(() => this.#drain());
        else queueMicrotask(() => this.#drain());
      }
    });
  }

  #drain(): void {
    this.#scheduled = false;
    this.#lastDrain = performance.now();
    this.#lastJobs = this.#queue.length;
    const jobs = this.#queue;
    this.#queue = [];
    const stepper = this.stepper, stats = this.stats, max = stepper.maxBatch;
    // Runs still going are kept at jobs[0 .. live): compacted in place after each round, so a
    // round allocates nothing.
    let live = jobs.length;
    while (live > 0) {
      for (let from = 0; from < live; from += max) {
        const round = this.#round;
        round.length = 0;
        const to = Math.min(from + max, live);
        for (let j = from; j < to; j++) {
          const job = jobs[j];
          if (job.pos < job.end && !job.cancelled()) round.push(job);
        }
        try {
          if (round.length === 1) {
            const job = round[0];
            job.onStep(stepper.step(job.state, job.ids[job.pos]), 0, job.pos);
            job.pos++;
          } else if (round.length > 1) {
            for (let s = 0; s < round.length; s++) {
              this.#states[s] = round[s].state;
              this.#tokens[s] = round[s].ids[round[s].pos];
            }
            const probs = stepper.stepMany(this.#states, this.#tokens, round.length);
            stats.batched += round.length;
            for (let s = 0; s < round.length; s++) {
              round[s].onStep(probs, s * stepper.probsStride, round[s].pos);
              round[s].pos++;
            }
          }
        } catch (err) {
          // Tokens are checked when queued, so this is a bug; fail the runs of this call only.
          for (const job of round) {
            job.end = job.pos; // done: settled below
            job.reject(err);
          }
        }
        stats.calls += round.length > 0 ? 1 : 0;
        stats.tokens += round.length;
      }
      let kept = 0;
      for (let j = 0; j < live; j++) {
        const job = jobs[j];
        if (job.pos < job.end && !job.cancelled()) jobs[kept++] = job;
        else job.resolve(job.pos - job.start); // no effect after a reject
      }
      live = kept;
    }
    this.#states.length = 0;
  }
}

/** A batcher whose last drain, this recent (ms), had several runs is busy: its next drain
 * waits a turn. */
export const BUSY_MS = 1;

const batchers = new WeakMap<StreamStepper, StepBatcher>();

/**
 * The batcher of a stepper (one per model version in memory), made on first use.
 *
 * @param stepper the stepper
 * @returns its batcher
 */
export function batcherFor(stepper: StreamStepper): StepBatcher {
  let batcher = batchers.get(stepper);
  if (batcher === undefined) {
    batcher = new StepBatcher(stepper);
    batchers.set(stepper, batcher);
  }
  return batcher;
}
