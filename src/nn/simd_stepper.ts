// L layers, H hidden, G gates, I input to layer 0, V vocabulary, O outputs, S state parts,
// P = 16 rows per weight panel (see `pack` in step.wat). Offsets into wasm memory are in bytes.
// The inference step of src/nn/stepper.ts on WebAssembly SIMD kernels (step.wat): the network's
// weights are copied into one wasm memory at construction, packed for the kernel, and a step
// makes a handful of wasm calls and two copies of the state, allocating nothing.
import { type FloatArray, topKInto } from "../math/mod.ts";
import { gatesOf } from "./config.ts";
import type { Network } from "./network.ts";
import { checkBatch, MAX_BATCH, type StreamStepper } from "./stepper.ts";

/** The functions step.wat exports; every pointer is a byte offset into the shared memory. */
export interface StepKernels {
  /** `y = W x + b`, W row-major (M, K). */
  matvec(y: number, w: number, x: number, b: number, m: number, k: number): void;
  /** Lays W (M, K) out in panels of 16 rows for `matvec_packed`. */
  pack(dst: number, src: number, m: number, k: number): void;
  /** `y = W x + b` with W packed; b and y padded to a multiple of 16 floats. */
  matvec_packed(y: number, w: number, x: number, b: number, m: number, k: number): void;
  /** `matvec_packed` for n streams at once; x's rows `xs` floats apart, y's padded to 16. */
  matmul_packed(
    y: number,
    w: number,
    x: number,
    xs: number,
    b: number,
    m: number,
    k: number,
    n: number,
  ): void;
  /** `h = tanh(gi + gh)` (H). Like every cell, reads gi and uses gh as scratch. */
  rnn_tanh(h: number, gi: number, gh: number, n: number): void;
  /** `h = relu(gi + gh)` (H). */
  rnn_relu(h: number, gi: number, gh: number, n: number): void;
  /** The GRU update of h (H) from gi, gh (3H). */
  gru(h: number, gi: number, gh: number, n: number): void;
  /** The LSTM update of h and c (H) from gi, gh (4H). */
  lstm(h: number, c: number, gi: number, gh: number, n: number): void;
  /** `y = softmax(x)` (N). */
  softmax(y: number, x: number, n: number): void;
  /**
   * The indices of the k ≤ N largest of N floats into best, as topKInto lists them, using
   * scratch (N rounded up to 16 floats); -1 when a value is NaN or -∞ (nothing is listed then).
   */
  top_k(best: number, p: number, n: number, k: number, scratch: number): number;
  /** `y = σ(x)` (N). */
  sigmoid(y: number, x: number, n: number): void;
  /** `y = tanh(x)` (N). */
  tanh(y: number, x: number, n: number): void;
}

let bytes: Uint8Array<ArrayBuffer> | null = null;
let compiled: WebAssembly.Module | null = null;

/** step.wasm's bytes, read on first use (every task that serves or predicts may read src/). */
function stepBytes(): Uint8Array<ArrayBuffer> {
  bytes ??= Deno.readFileSync(new URL("../math/simd/step.wasm", import.meta.url));
  return bytes;
}

/**
 * Whether this runtime runs step.wasm (WebAssembly SIMD with relaxed SIMD's fused multiply-add,
 * as V8 has since 2023) and so {@linkcode SimdStepper}; callers fall back to `Stepper` when it
 * does not. Asks the runtime to validate the module itself, so any feature it uses is covered.
 *
 * @returns true when step.wasm validates
 * @example
 * ```ts
 * import { simdAvailable } from "./simd_stepper.ts";
 * simdAvailable(); // true on Deno 2
 * ```
 */
export function simdAvailable(): boolean {
  return typeof WebAssembly === "object" && WebAssembly.validate(stepBytes());
}

/**
 * The compiled step.wasm, compiled on first use and shared by every instance.
 *
 * @returns the module
 */
export function stepModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(stepBytes());
  return compiled;
}

/**
 * Instantiates the kernels over a fresh memory of at least `bytes` bytes.
 *
 * @param bytes the memory the caller will lay out
 * @returns the kernels and their memory
 * @example
 * ```ts
 * import { instantiateKernels } from "./simd_stepper.ts";
 * const { kernels, memory } = instantiateKernels(64);
 * const f = new Float32Array(memory.buffer);
 * f.set([1, 2, 3], 0); // x at byte 0
 * kernels.softmax(16, 0, 3); // y at byte 16
 * ```
 */
export function instantiateKernels(bytes: number): {
  kernels: StepKernels;
  memory: WebAssembly.Memory;
} {
  const pages = Math.max(1, Math.ceil(bytes / 65536));
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  const instance = new WebAssembly.Instance(stepModule(), { env: { memory } });
  return { kernels: instance.exports as unknown as StepKernels, memory };
}

/** Floats rounded up to a whole panel (16), so padded kernel writes stay in their buffer. */
function pad16(n: number): number {
  return Math.ceil(n / 16) * 16;
}

/** Where one layer's packed weights and padded biases sit (byte offsets). */
interface LayerPtrs {
  wIh: number; // (ceil16(G*H), I_l) packed, or -1 when folded into the table
  bIh: number; // (ceil16(G*H))
  wHh: number; // (ceil16(G*H), H) packed
  bHh: number; // (ceil16(G*H))
}

/**
 * {@linkcode Stepper}'s single-stream step on WebAssembly SIMD: same surface, same state layout
 * (S·L·H: every layer's h, then for LSTM every layer's c), results within 1e-5 of it. The weights
 * (and, for embedding networks, the folded input table) are copied in at construction, so later
 * changes to the network are not seen; build a new stepper after training. Float32 networks only.
 *
 * @example
 * ```ts
 * import { Network } from "./network.ts";
 * import { SimdStepper, simdAvailable } from "./simd_stepper.ts";
 * const net = Network.create({ cell: "gru", nonlinearity: "tanh", input: "embedding",
 *   vocabSize: 5, inputSize: 4, hiddenSize: 8, layers: 2, outputSize: 5 }, 7);
 * if (simdAvailable()) {
 *   const stepper = new SimdStepper(net);
 *   const state = stepper.newState();
 *   const probs = stepper.step(state, 3); // next-token distribution (5)
 * }
 * ```
 */
export class SimdStepper implements StreamStepper {
  readonly net: Network;
  /** Output probabilities of the last step (O), a view of wasm memory; overwritten by every step. */
  readonly probs: Float32Array;
  /** Head scores of the last step (O), a view of wasm memory. */
  readonly logits: Float32Array;
  readonly #k: StepKernels;
  readonly #state: Float32Array; // (S*L*H) the stream's state while a step runs
  readonly #input: Float32Array | null; // (I) a dense input while a step runs; null for embedding
  readonly #layers: LayerPtrs[];
  readonly #statePtr: number; // (S*L*H)
  readonly #inputPtr: number; // (I), dense only
  readonly #tablePtr: number; // (V, G*H) embedding only
  readonly #giPtr: number; // (ceil16(G*H))
  readonly #ghPtr: number; // (ceil16(G*H))
  readonly #logitsPtr: number; // (ceil16(O))
  readonly #probsPtr: number; // (ceil16(O))
  readonly #headW: number; // (ceil16(O), H) packed
  readonly #headB: number; // (ceil16(O))
  readonly #f32: Float32Array; // the whole memory (fixed size, so never detached)
  readonly #manyStates: number; // (MAX_BATCH, S*L*H)
  readonly #manyGi: number; // (MAX_BATCH, ceil16(G*H))
  readonly #manyGh: number; // (MAX_BATCH, ceil16(G*H))
  readonly #manyLogits: number; // (MAX_BATCH, ceil16(O))
  readonly #manyProbs: Float32Array; // (MAX_BATCH, ceil16(O)), a view of wasm memory
  readonly #manyViews: Float32Array[]; // stream s's state in #manyStates, made once
  readonly #bestPtr: number; // (ceil16(O)) int32: top_k's indices
  readonly #topScratch: number; // (ceil16(O)): top_k's copy of the values
  readonly #i32: Int32Array; // the whole memory
  readonly maxBatch: number = MAX_BATCH;
  readonly probsStride: number;

  /**
   * Copies the network's weights into wasm memory, packed for the kernels.
   *
   * @param net a float32 network; its parameters are read once, never written
   */
  constructor(net: Network) {
    if (net.dtype !== Float32Array) {
      throw new TypeError("SimdStepper runs float32 networks; this one is float64");
    }
    const { cell, inputSize: i, hiddenSize: h, layers, outputSize: o, vocabSize: v } = net.config;
    const g = gatesOf(cell) * h;
    const embedding = net.config.input === "embedding";
    const p = net.p;

    // Lay the buffers out one after another, each on a 16-byte boundary.
    let top = 0;
    const take = (floats: number) => {
      const at = top;
      top += Math.ceil(floats / 4) * 16;
      return at;
    };
    this.#statePtr = take(net.stateSize);
    this.#inputPtr = embedding ? -1 : take(i);
    this.#giPtr = take(pad16(g));
    this.#ghPtr = take(pad16(g));
    this.#logitsPtr = take(pad16(o));
    this.#probsPtr = take(pad16(o));
    this.#tablePtr = embedding ? take(v * g) : -1;
    this.#layers = [];
    for (let l = 0; l < layers; l++) {
      const inl = l === 0 ? i : h;
      this.#layers.push({
        wIh: l === 0 && embedding ? -1 : take(pad16(g) * inl),
        bIh: take(pad16(g)),
        wHh: take(pad16(g) * h),
        bHh: take(pad16(g)),
      });
    }
    this.#headW = take(pad16(o) * h);
    this.#headB = take(pad16(o));
    this.#manyStates = take(MAX_BATCH * net.stateSize);
    this.#manyGi = take(MAX_BATCH * pad16(g));
    this.#manyGh = take(MAX_BATCH * pad16(g));
    this.#manyLogits = take(MAX_BATCH * pad16(o));
    const manyProbs = take(MAX_BATCH * pad16(o));
    this.#bestPtr = take(pad16(o));
    this.#topScratch = take(pad16(o));
    // Row-major matrices are copied here, then packed into place by the kernel that reads them;
    // for the embedding fold, W_ih of layer 0 (G, I) and the embedding table (V, I).
    const scratch = take(Math.max(g * Math.max(i, h), o * h, embedding ? (g + v) * i : 0));

    const { kernels, memory } = instantiateKernels(top);
    const f32 = new Float32Array(memory.buffer);
    const put = (ptr: number, src: FloatArray) => f32.set(src, ptr / 4);
    const packInto = (ptr: number, w: FloatArray, m: number, k: number) => {
      put(scratch, w);
      kernels.pack(ptr, scratch, m, k);
    };
    for (let l = 0; l < layers; l++) {
      const lp = p.layers[l], ptr = this.#layers[l];
      if (ptr.wIh >= 0) packInto(ptr.wIh, lp.wIh, g, l === 0 ? i : h);
      put(ptr.bIh, lp.bIh);
      packInto(ptr.wHh, lp.wHh, g, h);
      put(ptr.bHh, lp.bHh);
    }
    packInto(this.#headW, p.headW, o, h);
    put(this.#headB, p.headB);
    if (embedding) {
      // Fold the embedding into layer 0's input product, one wasm matvec per token:
      // table[t] = W_ih e_t + b_ih (G), so a step reads its gi instead of computing it.
      const embedAt = scratch + g * i * 4;
      put(scratch, p.layers[0].wIh);
      put(embedAt, p.embed!);
      for (let t = 0; t < v; t++) {
        kernels.matvec(
          this.#tablePtr + t * g * 4,
          scratch,
          embedAt + t * i * 4,
          this.#layers[0].bIh,
          g,
          i,
        );
      }
    }
    f32.fill(0, scratch / 4, top / 4);

    this.net = net;
    this.#k = kernels;
    this.#state = f32.subarray(this.#statePtr / 4, this.#statePtr / 4 + net.stateSize);
    this.#input = embedding ? null : f32.subarray(this.#inputPtr / 4, this.#inputPtr / 4 + i);
    this.logits = f32.subarray(this.#logitsPtr / 4, this.#logitsPtr / 4 + o);
    this.probs = f32.subarray(this.#probsPtr / 4, this.#probsPtr / 4 + o);
    this.#f32 = f32;
    this.#i32 = new Int32Array(memory.buffer);
    this.probsStride = pad16(o);
    this.#manyProbs = f32.subarray(manyProbs / 4, manyProbs / 4 + MAX_BATCH * pad16(o));
    const sl = net.stateSize;
    this.#manyViews = Array.from(
      { length: MAX_BATCH },
      (_, s) => f32.subarray(this.#manyStates / 4 + s * sl, this.#manyStates / 4 + (s + 1) * sl),
    );
  }

  /**
   * A zero state for a new stream (S·L·H: every layer's h, then for LSTM every layer's c).
   *
   * @returns a fresh state buffer
   */
  newState(): Float32Array {
    return new Float32Array(this.net.stateSize);
  }

  /**
   * Applies one step: updates `state` in place and returns the output distribution.
   *
   * @param state the stream's state (S·L·H), updated in place
   * @param input a token id (embedding networks) or a vector (I) (dense networks)
   * @returns {@linkcode SimdStepper.probs}, the softmax of the head (O); valid until the next step
   */
  step(state: FloatArray, input: number | FloatArray): Float32Array {
    this.advance(state, input);
    this.#k.softmax(this.#probsPtr, this.#logitsPtr, this.probs.length);
    return this.probs;
  }

  /**
   * Steps n streams on token ids at once: the weights are read once per pair of streams
   * (matmul_packed) instead of once per stream, and each stream gets the same bits as from
   * {@linkcode SimdStepper.step}. Embedding networks only.
   *
   * @param states the streams' states (S·L·H each), updated in place
   * @param tokens one token id per stream
   * @param n how many streams (at most {@linkcode MAX_BATCH})
   * @returns the probabilities, stream s's at `s * probsStride`, a view of wasm memory valid
   *   until the next step
   */
  stepMany(states: readonly FloatArray[], tokens: ArrayLike<number>, n: number): Float32Array {
    checkBatch(this.net, n, states, tokens);
    const { cell, nonlinearity, hiddenSize: h, layers, outputSize: o } = this.net.config;
    const k = this.#k, f32 = this.#f32;
    const g = gatesOf(cell) * h, gp = pad16(g) * 4, op = pad16(o) * 4;
    const sl = this.net.stateSize, base = this.#manyStates;
    for (let s = 0; s < n; s++) f32.set(states[s], base / 4 + s * sl);
    for (let l = 0; l < layers; l++) {
      const ptr = this.#layers[l];
      const hl = base + l * h * 4;
      if (l > 0) k.matmul_packed(this.#manyGi, ptr.wIh, hl - h * 4, sl, ptr.bIh, g, h, n);
      k.matmul_packed(this.#manyGh, ptr.wHh, hl, sl, ptr.bHh, g, h, n);
      for (let s = 0; s < n; s++) {
        const hs = hl + s * sl * 4;
        const src = l === 0 ? this.#tablePtr + tokens[s] * g * 4 : this.#manyGi + s * gp;
        const gh = this.#manyGh + s * gp;
        if (cell === "lstm") k.lstm(hs, hs + layers * h * 4, src, gh, h);
        else if (cell === "gru") k.gru(hs, src, gh, h);
        else if (nonlinearity === "tanh") k.rnn_tanh(hs, src, gh, h);
        else k.rnn_relu(hs, src, gh, h);
      }
    }
    const top = base + (layers - 1) * h * 4;
    k.matmul_packed(this.#manyLogits, this.#headW, top, sl, this.#headB, o, h, n);
    const probs = this.#manyProbs.byteOffset;
    for (let s = 0; s < n; s++) {
      k.softmax(probs + s * op, this.#manyLogits + s * op, o);
      states[s].set(this.#manyViews[s]);
    }
    return this.#manyProbs;
  }

  /**
   * The largest probabilities' indices, as {@linkcode topKInto} lists them, computed in
   * WebAssembly (top_k in step.wat: the largest found k times, four lanes at a time, with no
   * branch on the values' order) when `probs` is this stepper's output, as `step` and
   * `stepMany` return it; otherwise, or for a NaN or -∞ among the values, by topKInto.
   *
   * @param best receives the indices (its length is k)
   * @param probs values
   * @param at where the values start
   * @param length how many values
   * @returns how many indices were written: min(k, length)
   */
  topK(best: Int32Array, probs: FloatArray, at: number, length: number): number {
    // (top_k's buffers hold probsStride values)
    if (
      !(probs instanceof Float32Array) || probs.buffer !== this.#f32.buffer ||
      length > this.probsStride || at + length > probs.length
    ) {
      return topKInto(best, probs, at, length);
    }
    const k = Math.min(best.length, length);
    const n = this.#k.top_k(this.#bestPtr, probs.byteOffset + at * 4, length, k, this.#topScratch);
    if (n < 0) return topKInto(best, probs, at, length);
    const from = this.#bestPtr / 4;
    for (let r = 0; r < n; r++) best[r] = this.#i32[from + r];
    return n;
  }

  /**
   * Computes the output distribution for the current state without stepping.
   *
   * @param state the stream's state (S·L·H), read only
   * @returns {@linkcode SimdStepper.probs}; {@linkcode SimdStepper.logits} holds the scores
   */
  readout(state: FloatArray): Float32Array {
    this.#load(state);
    const { hiddenSize: h, layers, outputSize: o } = this.net.config;
    const top = this.#statePtr + (layers - 1) * h * 4;
    this.#k.matvec_packed(this.#logitsPtr, this.#headW, top, this.#headB, o, h);
    this.#k.softmax(this.#probsPtr, this.#logitsPtr, o);
    return this.probs;
  }

  /**
   * Applies one step and computes the head's scores into {@linkcode SimdStepper.logits},
   * without the softmax.
   *
   * @param state the stream's state (S·L·H), updated in place
   * @param input a token id or a vector (I)
   */
  advance(state: FloatArray, input: number | FloatArray): void {
    const { cell, nonlinearity, inputSize, hiddenSize: h, layers, outputSize: o, vocabSize } =
      this.net.config;
    const k = this.#k;
    const g = gatesOf(cell) * h;
    let src: number; // where layer 0's gi is read
    if (typeof input === "number") {
      if (this.#input !== null) throw new TypeError("a dense network steps on vectors");
      if (!(Number.isInteger(input) && input >= 0 && input < vocabSize)) {
        throw new RangeError(`token id ${input} is outside 0..${vocabSize - 1}`);
      }
      src = this.#tablePtr + input * g * 4;
    } else {
      if (this.#input === null) throw new TypeError("an embedding network steps on token ids");
      if (input.length !== inputSize) {
        throw new RangeError(`input has ${input.length} floats; the network takes ${inputSize}`);
      }
      this.#input.set(input);
      const l0 = this.#layers[0];
      k.matvec_packed(this.#giPtr, l0.wIh, this.#inputPtr, l0.bIh, g, inputSize);
      src = this.#giPtr;
    }
    this.#load(state);
    const hBase = this.#statePtr, cBase = this.#statePtr + layers * h * 4;
    for (let l = 0; l < layers; l++) {
      const ptr = this.#layers[l];
      const hl = hBase + l * h * 4;
      if (l > 0) {
        k.matvec_packed(this.#giPtr, ptr.wIh, hl - h * 4, ptr.bIh, g, h);
        src = this.#giPtr;
      }
      k.matvec_packed(this.#ghPtr, ptr.wHh, hl, ptr.bHh, g, h);
      if (cell === "lstm") k.lstm(hl, cBase + l * h * 4, src, this.#ghPtr, h);
      else if (cell === "gru") k.gru(hl, src, this.#ghPtr, h);
      else if (nonlinearity === "tanh") k.rnn_tanh(hl, src, this.#ghPtr, h);
      else k.rnn_relu(hl, src, this.#ghPtr, h);
    }
    k.matvec_packed(this.#logitsPtr, this.#headW, hBase + (layers - 1) * h * 4, this.#headB, o, h);
    state.set(this.#state);
  }

  /** Copies a stream's state into wasm memory, refusing a buffer of the wrong size. */
  #load(state: FloatArray): void {
    if (state.length !== this.#state.length) {
      throw new RangeError(
        `state has ${state.length} floats; the network keeps ${this.#state.length}`,
      );
    }
    this.#state.set(state);
  }
}
