// L layers, H hidden, G gates, I input to layer 0, V vocabulary, O outputs.
// The inference path: one stream, one token at a time, nothing allocated per step.
import { type FloatArray, matmulABt, matvec, softmaxRow, topKInto } from "../math/mod.ts";
import { gatesOf } from "./config.ts";
import { gruStep } from "./gru_cell.ts";
import { lstmStep } from "./lstm_cell.ts";
import type { Network } from "./network.ts";
import { rnnStep } from "./rnn_cell.ts";

/**
 * What serving needs from a single-stream stepper: {@linkcode Stepper} (TypeScript) and the
 * WebAssembly SIMD `SimdStepper` (src/math/simd) both provide it.
 */
export interface StreamStepper {
  /** The network stepped (read only). */
  readonly net: Network;
  /** Output probabilities of the last step or readout (O). */
  readonly probs: FloatArray;
  /** Head scores of the last step or readout (O). */
  readonly logits: FloatArray;
  /** A zero state for a new stream. */
  newState(): FloatArray;
  /** One step; returns the probabilities. */
  step(state: FloatArray, input: number | FloatArray): FloatArray;
  /** One step; scores only. */
  advance(state: FloatArray, input: number | FloatArray): void;
  /** The distribution for the current state, without stepping. */
  readout(state: FloatArray): FloatArray;
  /** Most streams one {@linkcode StreamStepper.stepMany} call takes. */
  readonly maxBatch: number;
  /** Floats between one stream's probabilities and the next's in what `stepMany` returns. */
  readonly probsStride: number;
  /**
   * One step of each of n streams on token ids, bit for bit what n calls of `step` give.
   * Returns the probabilities, stream s's at `s * probsStride`; valid until the next call.
   */
  stepMany(states: readonly FloatArray[], tokens: ArrayLike<number>, n: number): FloatArray;
  /**
   * The indices of the `best.length` largest of `probs[at .. at + length)` into `best`, as
   * `topKInto` (math/top_k.ts) lists them; returns how many were written.
   */
  topK(best: Int32Array, probs: FloatArray, at: number, length: number): number;
}

/** Batch size of the steppers here: enough to share each weight load, small enough to keep
 * one batch's buffers in cache. */
export const MAX_BATCH = 32;

/**
 * Refuses a batch the stepper cannot take, before any state is touched (shared by both
 * steppers).
 *
 * @param net the network
 * @param n streams asked for
 * @param states their states
 * @param tokens their token ids
 */
export function checkBatch(
  net: Network,
  n: number,
  states: readonly FloatArray[],
  tokens: ArrayLike<number>,
): void {
  if (net.config.input !== "embedding") throw new TypeError("a dense network steps on vectors");
  if (!(Number.isInteger(n) && n >= 0 && n <= MAX_BATCH)) {
    throw new RangeError(`a batch has 0..${MAX_BATCH} streams, not ${n}`);
  }
  if (states.length < n || tokens.length < n) {
    throw new RangeError(`a batch of ${n} needs ${n} states and ${n} tokens`);
  }
  const v = net.config.vocabSize;
  for (let s = 0; s < n; s++) {
    const id = tokens[s];
    if (!(Number.isInteger(id) && id >= 0 && id < v)) {
      throw new RangeError(`token id ${id} is outside 0..${v - 1}`);
    }
    if (states[s].length !== net.stateSize) {
      throw new RangeError(
        `state has ${states[s].length} floats; the network keeps ${net.stateSize}`,
      );
    }
  }
}

/**
 * Applies a network one step at a time to a single stream whose state the caller owns (a
 * session's hidden state, say). For embedding inputs the embedding is folded into layer 0's
 * input projection once, at construction: a step starts with a row lookup instead of a
 * matrix-vector product.
 *
 * @example
 * ```ts
 * import { Network } from "./network.ts";
 * import { Stepper } from "./stepper.ts";
 * const net = Network.create({ cell: "lstm", nonlinearity: "tanh", input: "embedding",
 *   vocabSize: 5, inputSize: 4, hiddenSize: 8, layers: 2, outputSize: 5 }, 7);
 * const stepper = new Stepper(net);
 * const state = stepper.newState();
 * const probs = stepper.step(state, 3); // next-token distribution (5)
 * ```
 */
export class Stepper implements StreamStepper {
  readonly net: Network;
  /** Output probabilities of the last step (O); overwritten by every step. */
  readonly probs: FloatArray;
  /** Head scores of the last step (O). */
  readonly logits: FloatArray;
  /** Layer 0's input projection for every token, `embed W_ih0^T + b_ih0` (V, G·H); null for dense. */
  readonly #table: FloatArray | null;
  readonly #gi: FloatArray; // (G*H) input projection of the current layer
  readonly #gh: FloatArray; // (G*H) recurrent projection of the current layer
  readonly #many: FloatArray; // (MAX_BATCH, O) what stepMany returns
  readonly maxBatch: number = MAX_BATCH;
  readonly probsStride: number;

  /**
   * Prepares a stepper (and, for embedding networks, the folded input table).
   *
   * @param net the network; its parameters are read, never written
   */
  constructor(net: Network) {
    const { inputSize: i, hiddenSize: h, outputSize: o, vocabSize: v } = net.config;
    const gh = gatesOf(net.config.cell) * h;
    const F = net.dtype;
    this.net = net;
    this.probs = new F(o);
    this.logits = new F(o);
    this.#gi = new F(gh);
    this.#gh = new F(gh);
    this.#many = new F(MAX_BATCH * o);
    this.probsStride = o;
    if (net.config.input === "embedding") {
      const l0 = net.p.layers[0];
      this.#table = new F(v * gh);
      matmulABt(this.#table, net.p.embed!, l0.wIh, l0.bIh, v, gh, i, false);
    } else {
      this.#table = null;
    }
  }

  /**
   * A zero state for a new stream (S·L·H: every layer's h, then for LSTM every layer's c).
   *
   * @returns a fresh state buffer
   */
  newState(): FloatArray {
    return new (this.net.dtype)(this.net.stateSize);
  }

  /**
   * Applies one step: updates `state` in place and returns the output distribution.
   *
   * @param state the stream's state (S·L·H), updated in place
   * @param input a token id (embedding networks) or a vector (I) (dense networks)
   * @returns {@linkcode Stepper.probs}, the softmax of the head (O); valid until the next step
   */
  step(state: FloatArray, input: number | FloatArray): FloatArray {
    this.advance(state, input);
    softmaxRow(this.probs, this.logits, 0, this.logits.length);
    return this.probs;
  }

  /**
   * The largest probabilities' indices, by {@linkcode topKInto}.
   *
   * @param best receives the indices (its length is k)
   * @param probs values
   * @param at where the values start
   * @param length how many values
   * @returns how many indices were written: min(k, length)
   */
  topK(best: Int32Array, probs: FloatArray, at: number, length: number): number {
    return topKInto(best, probs, at, length);
  }

  /**
   * Steps n streams, one after another (this stepper has no batched kernel).
   *
   * @param states the streams' states, updated in place
   * @param tokens one token id per stream
   * @param n how many streams (at most {@linkcode MAX_BATCH})
   * @returns the probabilities, stream s's at `s * probsStride`
   */
  stepMany(states: readonly FloatArray[], tokens: ArrayLike<number>, n: number): FloatArray {
    checkBatch(this.net, n, states, tokens);
    for (let s = 0; s < n; s++) {
      this.#many.set(this.step(states[s], tokens[s]), s * this.probsStride);
    }
    return this.#many;
  }

  /**
   * Computes the output distribution for the current state without stepping: the head on the
   * top layer's h (what generation samples its next token from).
   *
   * @param state the stream's state (S·L·H), read only
   * @returns {@linkcode Stepper.probs}; {@linkcode Stepper.logits} holds the scores
   */
  readout(state: FloatArray): FloatArray {
    const { hiddenSize: h, layers, outputSize: o } = this.net.config;
    matvec(this.logits, this.net.p.headW, state, (layers - 1) * h, this.net.p.headB, o, h);
    softmaxRow(this.probs, this.logits, 0, o);
    return this.probs;
  }

  /**
   * Applies one step and computes the head's scores into {@linkcode Stepper.logits}, without
   * the softmax (for callers that sample or classify from scores).
   *
   * @param state the stream's state (S·L·H), updated in place
   * @param input a token id or a vector (I)
   */
  advance(state: FloatArray, input: number | FloatArray): void {
    const { cell, nonlinearity, inputSize, hiddenSize: h, layers, outputSize: o, vocabSize } =
      this.net.config;
    const p = this.net.p;
    const g = gatesOf(cell) * h;
    const gi = this.#gi, gh = this.#gh;
    const cBase = layers * h;
    for (let l = 0; l < layers; l++) {
      const lp = p.layers[l];
      let src: FloatArray = gi;
      let srcOff = 0;
      if (l === 0) {
        if (typeof input === "number") {
          if (this.#table === null) throw new TypeError("a dense network steps on vectors");
          if (!(Number.isInteger(input) && input >= 0 && input < vocabSize)) {
            throw new RangeError(`token id ${input} is outside 0..${vocabSize - 1}`);
          }
          src = this.#table;
          srcOff = input * g;
        } else {
          if (input.length !== inputSize) {
            throw new RangeError(
              `input has ${input.length} floats; the network takes ${inputSize}`,
            );
          }
          matvec(gi, lp.wIh, input, 0, lp.bIh, g, inputSize);
        }
      } else {
        matvec(gi, lp.wIh, state, (l - 1) * h, lp.bIh, g, h);
      }
      matvec(gh, lp.wHh, state, l * h, lp.bHh, g, h);
      if (cell === "rnn") rnnStep(state, l * h, src, srcOff, gh, h, nonlinearity);
      else if (cell === "gru") gruStep(state, l * h, src, srcOff, gh, h);
      else lstmStep(state, l * h, cBase + l * h, src, srcOff, gh, h);
    }
    matvec(this.logits, p.headW, state, (layers - 1) * h, p.headB, o, h);
  }
}
