// T window steps, B streams, k1 new tokens per update, k2 steps backpropagated, O outputs,
// S·L·H state per stream. Truncated backpropagation through time over a token sequence.
import { clipGradNorm, type Optimizer } from "./optimizers.ts";
import { crossEntropy, NO_TARGET } from "../math/mod.ts";
import { type Network, simdTrainSupported, SimdTrainWorkspace, Workspace } from "../nn/mod.ts";

/** TBPTT sizes. */
export interface TbpttOptions {
  /** New tokens per update (k1). */
  k1: number;
  /** Steps gradients flow back (k2 ≥ k1): each update re-runs the last k2 - k1 tokens. */
  k2: number;
  /** Parallel streams B: the sequence is cut into B contiguous segments. */
  batch: number;
  /**
   * Threads for the WebAssembly path: 2 runs half the streams on a worker (call
   * {@linkcode TbpttTrainer.close} when done). The result does not depend on it.
   * @default 1
   */
  threads?: number;
}

/** What one update did. */
export interface StepResult {
  /** Mean cross-entropy of the new tokens (nats per token). */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Tokens trained on (new tokens × streams). */
  tokens: number;
}

/** The data position and carried state, everything a checkpoint needs besides weights and optimizer. */
export interface TbpttPosition {
  /** Position p of the next new token within each stream's segment. */
  p: number;
  /** Completed passes over the data. */
  epoch: number;
  /** Hidden state at the next window's start (S, L, B, H). */
  state: Float32Array;
}

/**
 * Trains a network on one long token sequence with TBPTT(k1, k2): the sequence is cut into B
 * contiguous streams whose hidden states are carried from update to update; every update feeds
 * k1 new tokens per stream, re-running up to k2 - k1 tokens before them so gradients flow back
 * k2 steps, and counts the loss of the new tokens only. The carried state is the one the
 * forward pass computed, with the weights before the update (as a PyTorch loop that detaches
 * the state does). At the end of the data the streams restart from the beginning with a zero
 * state.
 *
 * @example
 * ```ts
 * import { Network } from "../nn/mod.ts";
 * import { createOptimizer } from "./optimizers.ts";
 * import { TbpttTrainer } from "./tbptt.ts";
 * const net = Network.create({ cell: "gru", nonlinearity: "tanh", input: "embedding",
 *   vocabSize: 4, inputSize: 4, hiddenSize: 8, layers: 1, outputSize: 4 }, 1);
 * const data = Int32Array.from({ length: 200 }, (_, k) => k % 4);
 * const trainer = new TbpttTrainer(net, data, { k1: 8, k2: 8, batch: 2 },
 *   createOptimizer("adam", net.params.length, {}));
 * trainer.step(0.01, 1).loss; // about ln 4 at first, falling as it learns the cycle
 * ```
 */
export class TbpttTrainer {
  readonly net: Network;
  readonly options: TbpttOptions;
  readonly optimizer: Optimizer;
  /** Tokens per stream segment. */
  readonly segment: number;
  #data: Int32Array;
  /** The TypeScript path (float64 networks, H not a multiple of 4, no wasm SIMD), or null. */
  #ws: Workspace | null;
  /** The WebAssembly SIMD path, used for float32 training wherever it runs, or null. */
  #simd: SimdTrainWorkspace | null;
  #inputs: Int32Array; // (T, B)
  #targets: Int32Array; // (T, B)
  #dlogits: Float32Array; // (T, B, O)
  #grads: Float32Array; // (P)
  #p = 0;
  #epoch = 0;
  #state: Float32Array; // (S, L, B, H) at the window start

  /**
   * Sets up the streams and buffers.
   *
   * @param net the network to train (parameters updated in place; float32)
   * @param data the token ids of the training text
   * @param options k1, k2 and B
   * @param optimizer the update rule
   */
  constructor(net: Network, data: Int32Array, options: TbpttOptions, optimizer: Optimizer) {
    const { k1, k2, batch } = options;
    if (!(Number.isInteger(k1) && k1 >= 1)) {
      throw new RangeError(`k1 must be a positive integer, not ${k1}`);
    }
    if (!(Number.isInteger(k2) && k2 >= k1)) {
      throw new RangeError(`k2 must be an integer ≥ k1 = ${k1}, not ${k2}`);
    }
    if (!(Number.isInteger(batch) && batch >= 1)) {
      throw new RangeError(`batch must be a positive integer, not ${batch}`);
    }
    if (net.config.input !== "embedding") {
      throw new RangeError("TBPTT on text needs an embedding network");
    }
    this.segment = Math.floor(data.length / batch);
    if (this.segment < 2) {
      throw new RangeError(
        `${data.length} tokens cannot fill ${batch} streams of at least 2 tokens`,
      );
    }
    for (let k = 0; k < data.length; k++) {
      if (!(data[k] >= 0 && data[k] < net.config.vocabSize)) {
        throw new RangeError(
          `token id ${data[k]} at ${k} is outside the vocabulary 0..${net.config.vocabSize - 1}`,
        );
      }
    }
    this.net = net;
    this.options = { ...options };
    this.optimizer = optimizer;
    this.#data = data;
    if (simdTrainSupported(net)) {
      this.#simd = new SimdTrainWorkspace(net, k2, batch, { threads: options.threads ?? 1 });
      this.#ws = null;
      this.#dlogits = new Float32Array(0);
      this.#grads = this.#simd.grads;
    } else {
      this.#simd = null;
      this.#ws = new Workspace(net, k2, batch);
      this.#dlogits = new Float32Array(k2 * batch * net.config.outputSize);
      this.#grads = new Float32Array(net.params.length);
    }
    this.#inputs = new Int32Array(k2 * batch);
    this.#targets = new Int32Array(k2 * batch);
    this.#state = new Float32Array(net.stateSize * batch);
  }

  /** True when updates run on the WebAssembly SIMD path. */
  get simd(): boolean {
    return this.#simd !== null;
  }

  /** Stops the worker thread of the WebAssembly path, if any (updates still work after). */
  close(): void {
    this.#simd?.close();
  }

  /** The gradient of the last update (after clipping). */
  get grads(): Float32Array {
    return this.#grads;
  }

  /** Where training stands in the data, and the carried state (shared, not a copy). */
  get position(): TbpttPosition {
    return { p: this.#p, epoch: this.#epoch, state: this.#state };
  }

  /**
   * Restores a position saved from {@linkcode TbpttTrainer.position}.
   *
   * @param pos the saved position
   */
  restore(pos: TbpttPosition): void {
    if (!(Number.isInteger(pos.p) && pos.p >= 0 && pos.p < this.segment)) {
      throw new RangeError(`position ${pos.p} is outside the stream segment of ${this.segment}`);
    }
    if (pos.state.length !== this.#state.length) {
      throw new RangeError(
        `carried state has ${pos.state.length} floats; ${this.#state.length} expected`,
      );
    }
    this.#p = pos.p;
    this.#epoch = pos.epoch;
    this.#state.set(pos.state);
  }

  /**
   * One TBPTT update: forward over the window, loss of the new tokens, backward, clipping,
   * optimizer step, and the carried state moved forward by k1.
   *
   * @param lr learning rate of this update
   * @param clip largest global gradient norm (Infinity: no clipping)
   * @returns loss, gradient norm and token count
   */
  step(lr: number, clip: number): StepResult {
    const { k1, k2, batch: b } = this.options;
    const seg = this.segment;
    if (this.#p + 1 >= seg) {
      this.#p = 0;
      this.#epoch++;
      this.#state.fill(0);
    }
    const p = this.#p;
    const n = Math.min(k1, seg - 1 - p);
    const w = Math.max(0, p - (k2 - k1));
    const t = p + n - w;
    const data = this.#data;
    for (let s = 0; s < t; s++) {
      for (let bb = 0; bb < b; bb++) {
        const at = bb * seg + w + s;
        this.#inputs[s * b + bb] = data[at];
        // Tokens before p were trained on by earlier updates: re-run, not re-counted.
        this.#targets[s * b + bb] = w + s < p ? NO_TARGET : data[at + 1];
      }
    }
    let loss: number;
    const ws = this.#ws, simd = this.#simd;
    if (simd !== null) {
      ({ loss } = simd.run(this.#inputs, this.#targets, this.#state, t));
    } else {
      const o = this.net.config.outputSize;
      ws!.forward(this.#inputs, this.#state, t, b);
      ({ loss } = crossEntropy(ws!.logits, this.#targets, t * b, o, this.#dlogits));
      this.#grads.fill(0);
      ws!.backward(this.#dlogits, null, this.#grads, null);
    }
    const gradNorm = clipGradNorm(this.#grads, clip);
    this.optimizer.step(this.net.params, this.#grads, lr);
    const wNext = Math.max(0, p + n - (k2 - k1));
    if (wNext > w) {
      if (simd !== null) simd.stateAt(wNext - w, this.#state);
      else ws!.stateAt(wNext - w, this.#state);
    }
    this.#p = p + n;
    return { loss, gradNorm, tokens: n * b };
  }
}

/**
 * Mean cross-entropy (nats per token) of next-token prediction over a token sequence, read as
 * B parallel streams with carried state, in windows of T steps; no gradients.
 *
 * @param net the network
 * @param data token ids
 * @param batch streams B
 * @param window steps T per forward
 * @returns the mean loss over every predicted token, and how many there were
 * @example
 * ```ts
 * import { Network } from "../nn/mod.ts";
 * import { evaluateLoss } from "./tbptt.ts";
 * const net = Network.create({ cell: "rnn", nonlinearity: "tanh", input: "embedding",
 *   vocabSize: 3, inputSize: 2, hiddenSize: 4, layers: 1, outputSize: 3 }, 1);
 * evaluateLoss(net, new Int32Array([0, 1, 2, 0, 1, 2]), 1, 4).loss; // ≈ ln 3 untrained
 * ```
 */
export function evaluateLoss(
  net: Network,
  data: Int32Array,
  batch: number,
  window: number,
): { loss: number; tokens: number } {
  const b = Math.max(1, Math.min(batch, Math.floor(data.length / 2)));
  const seg = Math.floor(data.length / b);
  if (seg < 2) return { loss: NaN, tokens: 0 };
  const ws = new Workspace(net, window, b);
  const inputs = new Int32Array(window * b);
  const targets = new Int32Array(window * b);
  const state = new Float32Array(net.stateSize * b);
  const o = net.config.outputSize;
  let total = 0, count = 0;
  for (let p = 0; p + 1 < seg;) {
    const n = Math.min(window, seg - 1 - p);
    for (let s = 0; s < n; s++) {
      for (let bb = 0; bb < b; bb++) {
        inputs[s * b + bb] = data[bb * seg + p + s];
        targets[s * b + bb] = data[bb * seg + p + s + 1];
      }
    }
    ws.forward(inputs, state, n, b);
    const r = crossEntropy(ws.logits, targets, n * b, o, null);
    total += r.loss * r.count;
    count += r.count;
    state.set(ws.stateOut.subarray(0, state.length));
    p += n;
  }
  return { loss: total / count, tokens: count };
}
