// T steps, B streams, L layers, I input to layer 0, H hidden, V vocabulary, O outputs,
// S state parts (1, or 2 for LSTM). State buffers for B streams are (S, L, B, H).
import {
  type FloatArray,
  type FloatArrayConstructor,
  matmulAB,
  matmulABt,
  outerAccumulate,
  sumRowsAccumulate,
} from "../math/mod.ts";
import { type NetworkConfig, stateSize, validateConfig } from "./config.ts";
import { gruBackward, gruForward } from "./gru_cell.ts";
import { createLayerCache, type LayerCache } from "./layer_cache.ts";
import { lstmBackward, lstmForward } from "./lstm_cell.ts";
import { initParams, type NetworkParams, paramCount, paramViews } from "./params.ts";
import { rnnBackward, rnnForward } from "./rnn_cell.ts";

/**
 * A network: an input (embedding or dense), L stacked recurrent layers and a linear head,
 * with every parameter in one flat buffer.
 *
 * @example
 * ```ts
 * import { Network } from "./network.ts";
 * const net = Network.create({ cell: "gru", nonlinearity: "tanh", input: "embedding",
 *   vocabSize: 10, inputSize: 8, hiddenSize: 16, layers: 2, outputSize: 10 }, 42);
 * net.params.length; // every weight and bias, PyTorch order
 * ```
 */
export class Network {
  /** The shapes. */
  readonly config: NetworkConfig;
  /** All parameters, flat, in {@linkcode paramLayout} order. */
  readonly params: FloatArray;
  /** Named views into `params`. */
  readonly p: NetworkParams;

  /**
   * Wraps an existing flat parameter buffer (not copied).
   *
   * @param config the shapes
   * @param params the flat buffer; its length must match the config
   */
  constructor(config: NetworkConfig, params: FloatArray) {
    this.config = validateConfig({ ...config });
    this.params = params;
    this.p = paramViews(this.config, params);
  }

  /**
   * A network with freshly initialised parameters.
   *
   * @param config the shapes
   * @param seed random seed
   * @param dtype Float32Array (default) or Float64Array
   * @returns the network
   */
  static create(
    config: NetworkConfig,
    seed: number,
    dtype: FloatArrayConstructor = Float32Array,
  ): Network {
    return new Network(config, initParams(config, seed, dtype));
  }

  /** The float type of the parameters. */
  get dtype(): FloatArrayConstructor {
    return this.params instanceof Float64Array ? Float64Array : Float32Array;
  }

  /** Number of parameters. */
  get size(): number {
    return paramCount(this.config);
  }

  /** Floats of state per stream (S·L·H). */
  get stateSize(): number {
    return stateSize(this.config);
  }
}

/** Inputs for a window: token ids (T, B) for embedding networks, or vectors (T, B, I). */
export type WindowInput = Int32Array | FloatArray;

/**
 * Buffers for training on windows of up to `maxT` steps of `maxB` streams: the forward cache,
 * logits and the backward scratch. Allocate once, reuse for every window.
 *
 * @example
 * ```ts
 * import { Network, Workspace } from "./network.ts";
 * const net = Network.create({ cell: "rnn", nonlinearity: "tanh", input: "embedding",
 *   vocabSize: 5, inputSize: 4, hiddenSize: 8, layers: 1, outputSize: 5 }, 1);
 * const ws = new Workspace(net, 16, 4);
 * ws.forward(new Int32Array(16 * 4), new Float32Array(net.stateSize * 4), 16, 4);
 * ws.logits.length; // 16 * 4 * 5
 * ```
 */
export class Workspace {
  readonly net: Network;
  readonly maxT: number;
  readonly maxB: number;
  /** One cache per layer. */
  readonly layers: LayerCache[];
  /** Head outputs of the last forward (T, B, O). */
  readonly logits: FloatArray;
  /** State after the last step of the last forward (S, L, B, H). */
  readonly stateOut: FloatArray;
  #ids: Int32Array; // (T, B) token ids of the last forward (embedding input)
  #dtop: FloatArray; // (T, B, H) gradient flowing down between layers
  #dbelow: FloatArray; // (T, B, H)
  #dx0: FloatArray | null; // (T, B, I) gradient at the embedding output
  #dstate0: FloatArray; // (S, L, B, H) scratch when the caller does not want dL/dstate0
  #t = 0;
  #b = 0;

  /**
   * Allocates the buffers.
   *
   * @param net the network (its dtype is used)
   * @param maxT the longest window T
   * @param maxB the most streams B
   */
  constructor(net: Network, maxT: number, maxB: number) {
    if (!Number.isInteger(maxT) || maxT < 1 || !Number.isInteger(maxB) || maxB < 1) {
      throw new RangeError(`a workspace needs T ≥ 1 and B ≥ 1, not T=${maxT}, B=${maxB}`);
    }
    const { cell, inputSize, hiddenSize: h, layers, outputSize } = net.config;
    const F = net.dtype;
    this.net = net;
    this.maxT = maxT;
    this.maxB = maxB;
    this.layers = [];
    for (let l = 0; l < layers; l++) {
      // Layer l+1 reads layer l's outputs h[1..T] in place, no copy.
      const below = l === 0 ? null : this.layers[l - 1].h.subarray(maxB * h);
      this.layers.push(
        createLayerCache(cell, maxT, maxB, l === 0 ? inputSize : h, h, F, below),
      );
    }
    this.logits = new F(maxT * maxB * outputSize);
    this.stateOut = new F(net.stateSize * maxB);
    this.#ids = new Int32Array(maxT * maxB);
    this.#dtop = new F(maxT * maxB * h);
    this.#dbelow = new F(maxT * maxB * h);
    this.#dstate0 = new F(net.stateSize * maxB);
    this.#dx0 = net.config.input === "embedding" ? new F(maxT * maxB * inputSize) : null;
  }

  /**
   * Runs the network over a window of T steps for B streams from the given initial state,
   * filling {@linkcode Workspace.logits}, {@linkcode Workspace.stateOut} and the caches.
   *
   * @param input token ids (T, B) or vectors (T, B, I)
   * @param state0 initial state (S, L, B, H)
   * @param t steps T ≤ maxT
   * @param b streams B ≤ maxB
   */
  forward(input: WindowInput, state0: FloatArray, t: number, b: number): void {
    const { config, p } = this.net;
    const { cell, nonlinearity, inputSize: iSize, hiddenSize: h, layers, outputSize: o } = config;
    if (t < 1 || t > this.maxT || b < 1 || b > this.maxB) {
      throw new RangeError(
        `window T=${t}, B=${b} exceeds the workspace (${this.maxT}, ${this.maxB})`,
      );
    }
    const bh = b * h;
    if (state0.length < this.net.stateSize * b) {
      throw new RangeError(`state has ${state0.length} floats; ${this.net.stateSize * b} needed`);
    }
    const x0 = this.layers[0].x;
    if (config.input === "embedding") {
      if (!(input instanceof Int32Array) || input.length < t * b) {
        throw new RangeError(`an embedding network needs ${t * b} token ids (Int32Array)`);
      }
      const embed = p.embed!;
      for (let k = 0; k < t * b; k++) {
        const id = input[k];
        if (!(id >= 0 && id < config.vocabSize)) {
          throw new RangeError(`token id ${id} is outside 0..${config.vocabSize - 1}`);
        }
        this.#ids[k] = id;
        x0.set(embed.subarray(id * iSize, (id + 1) * iSize), k * iSize);
      }
    } else {
      if (input instanceof Int32Array || input.length < t * b * iSize) {
        throw new RangeError(`a dense network needs ${t * b * iSize} input floats`);
      }
      x0.set(input.subarray(0, t * b * iSize));
    }
    const cOff = layers * bh; // c of layer l sits at cOff + l * bh in (S, L, B, H)
    for (let l = 0; l < layers; l++) {
      const c = this.layers[l];
      const i = l === 0 ? iSize : h;
      c.h.set(state0.subarray(l * bh, (l + 1) * bh));
      if (cell === "rnn") rnnForward(c, p.layers[l], nonlinearity, t, b, i, h);
      else if (cell === "gru") gruForward(c, p.layers[l], t, b, i, h);
      else {
        c.c.set(state0.subarray(cOff + l * bh, cOff + (l + 1) * bh));
        lstmForward(c, p.layers[l], t, b, i, h);
      }
      this.stateOut.set(c.h.subarray(t * bh, (t + 1) * bh), l * bh);
      if (cell === "lstm") this.stateOut.set(c.c.subarray(t * bh, (t + 1) * bh), cOff + l * bh);
    }
    const top = this.layers[layers - 1].h.subarray(bh, (t + 1) * bh);
    matmulABt(this.logits, top, p.headW, p.headB, t * b, o, h, false);
    this.#t = t;
    this.#b = b;
  }

  /**
   * Copies the state after the first `j` steps of the last forward (j = 0 is its initial state)
   * into `out` (S, L, B, H). Truncated BPTT with k2 > k1 restarts the next window from there.
   *
   * @param j steps into the window, 0 ≤ j ≤ T
   * @param out receives the state of every layer for the window's B streams
   */
  stateAt(j: number, out: FloatArray): void {
    const t = this.#t, b = this.#b;
    if (!(Number.isInteger(j) && j >= 0 && j <= t)) {
      throw new RangeError(`step ${j} is outside 0..${t}`);
    }
    const { cell, hiddenSize: h, layers } = this.net.config;
    const bh = b * h;
    for (let l = 0; l < layers; l++) {
      const c = this.layers[l];
      out.set(c.h.subarray(j * bh, (j + 1) * bh), l * bh);
      if (cell === "lstm") out.set(c.c.subarray(j * bh, (j + 1) * bh), (layers + l) * bh);
    }
  }

  /**
   * Backward through the window of the last {@linkcode Workspace.forward}: accumulates every
   * parameter gradient into `grads` and writes the gradient with respect to the window's
   * initial state, which truncated BPTT carries into the previous window.
   *
   * @param dlogits `dL/dlogits` (T, B, O)
   * @param dStateT `dL/d stateOut` from beyond the window (S, L, B, H), or null for zero
   * @param grads a flat gradient buffer laid out like the parameters (accumulated with +=)
   * @param dState0 receives `dL/d state0` (S, L, B, H), or null if not needed
   */
  backward(
    dlogits: FloatArray,
    dStateT: FloatArray | null,
    grads: FloatArray,
    dState0: FloatArray | null,
  ): void {
    const t = this.#t, b = this.#b;
    if (t === 0) throw new Error("backward() needs a forward() first");
    const { config, p } = this.net;
    const { cell, nonlinearity, inputSize: iSize, hiddenSize: h, layers, outputSize: o } = config;
    const g = paramViews(config, grads);
    const bh = b * h;
    const n = t * b;
    const top = this.layers[layers - 1].h.subarray(bh, (t + 1) * bh);
    // forward: logits = H_top W_head^T + b_head
    outerAccumulate(g.headW, dlogits, top, o, h, n);
    sumRowsAccumulate(g.headB, dlogits, n, o);
    let dy = this.#dtop;
    dy.fill(0, 0, n * h);
    matmulAB(dy, dlogits, p.headW, n, h, o);
    const cOff = layers * bh;
    const dh0 = dState0 ?? this.#dstate0;
    for (let l = layers - 1; l >= 0; l--) {
      const c = this.layers[l];
      const i = l === 0 ? iSize : h;
      const dx = l > 0 ? this.#dbelow : this.#dx0;
      const dhT = dStateT === null ? null : dStateT.subarray(l * bh, (l + 1) * bh);
      const dh0l = dh0.subarray(l * bh, (l + 1) * bh);
      if (cell === "rnn") {
        rnnBackward(c, p.layers[l], g.layers[l], nonlinearity, dy, dhT, dx, dh0l, t, b, i, h);
      } else if (cell === "gru") {
        gruBackward(c, p.layers[l], g.layers[l], dy, dhT, dx, dh0l, t, b, i, h);
      } else {
        const dcT = dStateT === null ? null : dStateT.subarray(cOff + l * bh, cOff + (l + 1) * bh);
        const dc0l = dh0.subarray(cOff + l * bh, cOff + (l + 1) * bh);
        lstmBackward(c, p.layers[l], g.layers[l], dy, dhT, dcT, dx, dh0l, dc0l, t, b, i, h);
      }
      if (l > 0) {
        // The layer below now receives this layer's dL/dx; swap the two buffers.
        const tmp = dy;
        dy = this.#dbelow;
        this.#dbelow = tmp;
      }
    }
    if (config.input === "embedding") {
      // forward: x_t = embed[id_t], so dembed[id_t] += dx_t
      const dx0 = this.#dx0!;
      const dEmbed = g.embed!;
      for (let k = 0; k < n; k++) {
        const row = this.#ids[k] * iSize;
        for (let j = 0; j < iSize; j++) dEmbed[row + j] += dx0[k * iSize + j];
      }
    }
  }
}
