// T steps, B streams, R streams of a shard, L layers, I embedding width, H hidden, G gates,
// V vocabulary, O outputs (Op padded to 8), P parameters, S state parts (1, or 2 for LSTM).
// Float32 training windows in WebAssembly SIMD: forward, cross-entropy and backward of a whole
// TBPTT window run on one shared wasm memory that holds the parameters, the packed weights,
// the caches and the gradients, so nothing is copied per step. The batch is cut into two
// shards whose gradients are summed in a fixed order, so the result is the same bit for bit
// whether one thread runs both shards or a worker runs the second.
import { NO_TARGET } from "../math/mod.ts";
import {
  CTRL,
  type LayerOffsets,
  runShard,
  type ShardLayer,
  type ShardPlan,
  type TrainKernels,
  type TrainPlan,
} from "./_simd_shard.ts";
import { gatesOf } from "./config.ts";
import type { Network } from "./network.ts";
import { paramLayout } from "./params.ts";

/** How the workspace may run. */
export interface SimdTrainOptions {
  /** Threads to use: 1 runs both shards on the calling thread, 2 adds a worker. @default 1 */
  threads?: number;
}

/** The kernels with fused multiply-adds (relaxed SIMD), then the plain SIMD ones. */
const WASM_URLS = [
  new URL("../math/simd/train_relaxed.wasm", import.meta.url),
  new URL("../math/simd/train.wasm", import.meta.url),
];
/** Most shards a batch is cut into (one per thread of a two-core machine). */
const SHARDS = 2;
const PAGE = 65536;
/** How long the first window waits for a worker to start before running without it. */
const WORKER_START_MS = 30_000;

let compiled: { module: WebAssembly.Module; url: URL } | null | undefined;

/** The first train.wasm variant this runtime accepts, or null where none can run (no SIMD or
 * shared memory, or the files are not readable). */
function trainModule(): WebAssembly.Module | null {
  if (compiled === undefined) {
    compiled = null;
    if (typeof SharedArrayBuffer === "function") {
      for (const url of WASM_URLS) {
        try {
          const bytes = Deno.readFileSync(url);
          if (WebAssembly.validate(bytes)) {
            compiled = { module: new WebAssembly.Module(bytes), url };
            break;
          }
        } catch {
          // not readable: try the next, then fall back to TypeScript
        }
      }
    }
  }
  return compiled?.module ?? null;
}

/**
 * Which training kernels this runtime uses: `train_relaxed.wasm` (FMA), `train.wasm`, or none.
 *
 * @returns the file name, or null when training runs in TypeScript
 * @example
 * ```ts
 * import { simdTrainKernels } from "./simd_train_workspace.ts";
 * simdTrainKernels(); // "train_relaxed.wasm" on Deno 2 on x64
 * ```
 */
export function simdTrainKernels(): string | null {
  trainModule();
  return compiled?.url.pathname.split("/").at(-1) ?? null;
}

/**
 * Whether a network can train on the WebAssembly path: float32 parameters, embedding input,
 * H a multiple of 4, and a runtime with wasm SIMD and shared memory.
 *
 * @param net the network
 * @returns true if {@linkcode SimdTrainWorkspace} accepts it
 * @example
 * ```ts
 * import { Network } from "./network.ts";
 * import { simdTrainSupported } from "./simd_train_workspace.ts";
 * const net = Network.create({ cell: "gru", nonlinearity: "tanh", input: "embedding",
 *   vocabSize: 5, inputSize: 4, hiddenSize: 8, layers: 1, outputSize: 5 }, 1);
 * simdTrainSupported(net); // true on Deno
 * ```
 */
export function simdTrainSupported(net: Network): boolean {
  const c = net.config;
  return net.params instanceof Float32Array && c.input === "embedding" &&
    c.hiddenSize % 4 === 0 && trainModule() !== null;
}

/** Offsets handed out in order, each buffer 64-byte aligned with slack after it. */
class Allocator {
  at = 64; // offset 0 stays unused, so a zero offset is never a live buffer
  take(bytes: number): number {
    const at = this.at;
    // 64 bytes of slack: the gemm reads up to 32 bytes past the columns it keeps.
    this.at = Math.ceil((at + bytes + 64) / 64) * 64;
    return at;
  }
}

function planFor(net: Network, maxT: number, maxB: number): TrainPlan {
  const { cell, nonlinearity, layers: nl, inputSize: ni, hiddenSize: h, outputSize: o } =
    net.config;
  const v = net.config.vocabSize;
  const gh = gatesOf(cell) * h;
  const ghp = Math.ceil(gh / 8) * 8;
  const op = Math.ceil(o / 8) * 8;
  const P = net.params.length;
  const a = new Allocator();
  const ctrl = a.take(4 * CTRL.size);
  const params = a.take(4 * P);
  const grads = a.take(4 * P);
  const at = new Map(paramLayout(net.config).map((s) => [s.name, params + 4 * s.offset]));
  const layerParams: LayerOffsets[] = [];
  const wihT: number[] = [];
  const whhT: number[] = [];
  for (let l = 0; l < nl; l++) {
    layerParams.push({
      wIh: at.get(`rnn.weight_ih_l${l}`)!,
      wHh: at.get(`rnn.weight_hh_l${l}`)!,
      bIh: at.get(`rnn.bias_ih_l${l}`)!,
      bHh: at.get(`rnn.bias_hh_l${l}`)!,
    });
    wihT.push(a.take(4 * ghp * (l === 0 ? ni : h)));
    whhT.push(a.take(4 * ghp * h));
  }
  const headT = a.take(4 * op * h);
  const table = a.take(4 * v * gh);
  const zeros = a.take(4 * gh);
  const shards: ShardPlan[] = [];
  const count = Math.min(SHARDS, maxB);
  for (let sh = 0; sh < count; sh++) {
    const b0 = Math.floor(sh * maxB / count);
    const r = Math.floor((sh + 1) * maxB / count) - b0;
    const n = maxT * r;
    const layers: ShardLayer[] = [];
    for (let l = 0; l < nl; l++) {
      layers.push({
        h: a.take(4 * (maxT + 1) * r * h),
        c: cell === "lstm" ? a.take(4 * (maxT + 1) * r * h) : 0,
        gates: a.take(4 * n * gh),
        gh: a.take(4 * r * gh),
        aux: cell === "rnn" ? 0 : a.take(4 * n * h),
        dGates: a.take(4 * n * gh),
        dGatesHh: cell === "gru" ? a.take(4 * n * gh) : 0,
        dh: a.take(4 * r * h),
        dc: cell === "lstm" ? a.take(4 * r * h) : 0,
      });
    }
    shards.push({
      b0,
      rows: r,
      grads: a.take(4 * P),
      dTable: a.take(4 * v * gh),
      dHeadB: a.take(4 * op),
      ids: a.take(4 * n),
      targets: a.take(4 * n),
      logits: a.take(4 * n * op),
      dtop: a.take(4 * n * h),
      dbelow: a.take(4 * n * h),
      scratch: a.take(128),
      loss: a.take(8),
      layers,
    });
  }
  return {
    cell,
    relu: nonlinearity === "relu",
    layers: nl,
    inputSize: ni,
    hidden: h,
    gates: gh,
    vocab: v,
    outputs: o,
    outputsPadded: op,
    maxT,
    batch: maxB,
    paramCount: P,
    params,
    grads,
    embed: at.get("embed.weight")!,
    headW: at.get("head.weight")!,
    headB: at.get("head.bias")!,
    layerParams,
    wihT,
    whhT,
    headT,
    table,
    zeros,
    ctrl,
    shards,
    bytes: a.at,
  };
}

/**
 * Buffers and kernels for float32 training windows in WebAssembly SIMD, for one network and
 * windows of up to `maxT` steps of exactly `maxB` streams. {@linkcode SimdTrainWorkspace.run}
 * does what `Workspace.forward`, `crossEntropy` and `Workspace.backward` do together.
 *
 * @example
 * ```ts
 * import { Network } from "./network.ts";
 * import { SimdTrainWorkspace } from "./simd_train_workspace.ts";
 * const net = Network.create({ cell: "lstm", nonlinearity: "tanh", input: "embedding",
 *   vocabSize: 5, inputSize: 4, hiddenSize: 8, layers: 1, outputSize: 5 }, 1);
 * const ws = new SimdTrainWorkspace(net, 3, 2);
 * const ids = new Int32Array([1, 2, 3, 4, 0, 1]); // (T, B)
 * const loss = ws.run(ids, new Int32Array([2, 3, 4, 0, 1, 2]), new Float32Array(32), 3);
 * ws.grads.length; // every parameter's gradient
 * ws.close();
 * ```
 */
export class SimdTrainWorkspace {
  readonly net: Network;
  /** Gradient of the last window (P), a view of wasm memory: summed over the shards. */
  readonly grads: Float32Array;
  #plan: TrainPlan;
  #memory: WebAssembly.Memory;
  #k: TrainKernels;
  #f32: Float32Array;
  #i32: Int32Array;
  #ctrl: Int32Array;
  #scale: Float64Array;
  #threads: number;
  #worker: Worker | null = null;
  #workerFailed = false;
  #t = 0;

  /**
   * Lays out the memory and instantiates the kernels.
   *
   * @param net the network (float32, embedding input, H a multiple of 4)
   * @param maxT the longest window T
   * @param batch the streams B of every window
   * @param options threads
   */
  constructor(net: Network, maxT: number, batch: number, options: SimdTrainOptions = {}) {
    const module = trainModule();
    if (!simdTrainSupported(net) || module === null) {
      throw new RangeError(
        "the wasm training path needs float32 parameters, embedding input, H a multiple of 4 " +
          "and wasm SIMD with shared memory",
      );
    }
    if (!Number.isInteger(maxT) || maxT < 1 || !Number.isInteger(batch) || batch < 1) {
      throw new RangeError(`a workspace needs T ≥ 1 and B ≥ 1, not T=${maxT}, B=${batch}`);
    }
    this.net = net;
    this.#plan = planFor(net, maxT, batch);
    const pages = Math.ceil(this.#plan.bytes / PAGE);
    this.#memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    this.#k = new WebAssembly.Instance(module, { env: { memory: this.#memory } })
      .exports as unknown as TrainKernels;
    const buf = this.#memory.buffer;
    this.#f32 = new Float32Array(buf);
    this.#i32 = new Int32Array(buf);
    this.#ctrl = new Int32Array(buf, this.#plan.ctrl, CTRL.size);
    this.#scale = new Float64Array(buf, this.#plan.ctrl + CTRL.scaleByte, 1);
    this.grads = new Float32Array(buf, this.#plan.grads, this.#plan.paramCount);
    this.#threads = Math.max(1, Math.min(options.threads ?? 1, this.#plan.shards.length));
  }

  /**
   * One window: forward from `state0`, mean cross-entropy over the counted targets, backward.
   * Leaves the gradient in {@linkcode SimdTrainWorkspace.grads} and the states for
   * {@linkcode SimdTrainWorkspace.stateAt}. Reads the network's parameters afresh.
   *
   * @param inputs token ids (T, B)
   * @param targets next-token ids (T, B); NO_TARGET rows count for nothing
   * @param state0 initial state (S, L, B, H)
   * @param t steps T ≤ maxT
   * @returns the mean loss of the counted targets (0 if none), and how many there were
   */
  run(
    inputs: Int32Array,
    targets: Int32Array,
    state0: Float32Array,
    t: number,
  ): { loss: number; count: number } {
    const plan = this.#plan;
    const { batch: b, hidden: h, layers: nl, vocab } = plan;
    if (!(Number.isInteger(t) && t >= 1 && t <= plan.maxT)) {
      throw new RangeError(`window T=${t} exceeds the workspace (${plan.maxT})`);
    }
    if (inputs.length < t * b || targets.length < t * b) {
      throw new RangeError(`a window of T=${t}, B=${b} needs ${t * b} inputs and targets`);
    }
    const sSize = this.net.stateSize * b;
    if (state0.length < sSize) {
      throw new RangeError(`state has ${state0.length} floats; ${sSize} needed`);
    }
    const f32 = this.#f32, i32 = this.#i32;
    let count = 0;
    for (let q = 0; q < t * b; q++) {
      const id = inputs[q];
      if (!(id >= 0 && id < vocab)) {
        throw new RangeError(`token id ${id} is outside 0..${vocab - 1}`);
      }
      const tg = targets[q];
      if (tg !== NO_TARGET) {
        if (!(tg >= 0 && tg < plan.outputs)) {
          throw new RangeError(`target ${tg} at row ${q} is outside 0..${plan.outputs - 1}`);
        }
        count++;
      }
    }
    const scale = count > 0 ? 1 / count : 0;
    this.#prepareWeights();
    for (const s of plan.shards) {
      const r = s.rows;
      for (let st = 0; st < t; st++) {
        for (let j = 0; j < r; j++) {
          i32[(s.ids >> 2) + st * r + j] = inputs[st * b + s.b0 + j];
          i32[(s.targets >> 2) + st * r + j] = targets[st * b + s.b0 + j];
        }
      }
      for (let l = 0; l < nl; l++) {
        const from = l * b * h + s.b0 * h;
        f32.set(state0.subarray(from, from + r * h), s.layers[l].h >> 2);
        if (plan.cell === "lstm") {
          const cFrom = (nl + l) * b * h + s.b0 * h;
          f32.set(state0.subarray(cFrom, cFrom + r * h), s.layers[l].c >> 2);
        }
      }
    }
    this.#runShards(t, scale);
    this.#reduce();
    let loss = 0;
    for (const s of plan.shards) loss += new Float64Array(this.#memory.buffer, s.loss, 1)[0];
    this.#t = t;
    return { loss: loss * scale, count };
  }

  /**
   * Copies the state after the first `j` steps of the last window (j = 0: its initial state)
   * into `out` (S, L, B, H).
   *
   * @param j steps into the window, 0 ≤ j ≤ T
   * @param out receives the state of every layer for all B streams
   */
  stateAt(j: number, out: Float32Array): void {
    if (!(Number.isInteger(j) && j >= 0 && j <= this.#t)) {
      throw new RangeError(`step ${j} is outside 0..${this.#t}`);
    }
    const { batch: b, hidden: h, layers: nl, cell } = this.#plan;
    for (const s of this.#plan.shards) {
      const r = s.rows;
      for (let l = 0; l < nl; l++) {
        const c = s.layers[l];
        const from = (c.h >> 2) + j * r * h;
        out.set(this.#f32.subarray(from, from + r * h), l * b * h + s.b0 * h);
        if (cell === "lstm") {
          const cFrom = (c.c >> 2) + j * r * h;
          out.set(this.#f32.subarray(cFrom, cFrom + r * h), (nl + l) * b * h + s.b0 * h);
        }
      }
    }
  }

  /** Stops the worker thread, if one was started. The workspace can still run on one thread. */
  close(): void {
    if (this.#worker !== null) {
      Atomics.store(this.#ctrl, CTRL.quit, 1);
      Atomics.add(this.#ctrl, CTRL.go, 1);
      Atomics.notify(this.#ctrl, CTRL.go);
      this.#worker.terminate();
      this.#worker = null;
    }
    this.#threads = 1;
  }

  /** Copies the parameters in, packs the weights for the kernels and builds layer 0's table. */
  #prepareWeights(): void {
    const plan = this.#plan, k = this.#k;
    const { hidden: h, gates: gh, inputSize: ni, vocab: v, outputs: o } = plan;
    this.#f32.set(this.net.params, plan.params >> 2);
    for (let l = 0; l < plan.layers; l++) {
      const p = plan.layerParams[l];
      k.pack_t(plan.wihT[l], p.wIh, gh, l === 0 ? ni : h);
      k.pack_t(plan.whhT[l], p.wHh, gh, h);
    }
    k.pack_t(plan.headT, plan.headW, o, h);
    // forward: layer 0's input projection of token v is embed[v] W_ih0^T + b_ih0, one row of
    // the table: a window gathers rows instead of multiplying T·B embeddings.
    const p0 = plan.layerParams[0];
    const sc = plan.shards[0].scratch;
    k.gemm(plan.table, 4 * gh, plan.embed, 4 * ni, 4, plan.wihT[0], 32, 32 * ni, v, gh, ni, 0, sc);
    for (let id = 0; id < v; id++) k.add(plan.table + 4 * id * gh, p0.bIh, gh);
  }

  /** Runs every shard, the second on the worker when there is one. */
  #runShards(t: number, scale: number): void {
    const plan = this.#plan;
    const buf = this.#memory.buffer;
    const worker = this.#threads > 1 ? this.#startWorker() : null;
    if (worker === null) {
      for (const s of plan.shards) runShard(this.#k, buf, plan, s, t, scale);
      return;
    }
    const ctrl = this.#ctrl;
    ctrl[CTRL.steps] = t;
    this.#scale[0] = scale;
    const go = Atomics.add(ctrl, CTRL.go, 1) + 1;
    Atomics.notify(ctrl, CTRL.go);
    try {
      runShard(this.#k, buf, plan, plan.shards[0], t, scale);
    } finally {
      // Never leave the worker writing into buffers the caller may read next.
      for (
        let done = Atomics.load(ctrl, CTRL.done);
        done !== go;
        done = Atomics.load(ctrl, CTRL.done)
      ) {
        Atomics.wait(ctrl, CTRL.done, done);
      }
    }
    if (Atomics.load(ctrl, CTRL.failed) === 1) {
      this.close();
      throw new Error("the training worker failed (its error is printed above)");
    }
  }

  /** The worker, started on first use; null if it cannot start (then one thread does all). */
  #startWorker(): Worker | null {
    if (this.#worker !== null || this.#workerFailed) return this.#worker;
    const ctrl = this.#ctrl;
    try {
      const worker = new Worker(new URL("./_simd_train_worker.ts", import.meta.url), {
        type: "module",
      });
      // A worker that cannot load reports here once the event loop runs; the window has been
      // computed on this thread by then, so the error only needs to stay out of the way.
      worker.onerror = (e) => e.preventDefault();
      worker.postMessage({ module: trainModule(), memory: this.#memory, plan: this.#plan });
      const waited = Atomics.wait(ctrl, CTRL.ready, 0, WORKER_START_MS);
      if (waited === "timed-out" || Atomics.load(ctrl, CTRL.failed) === 1) {
        worker.terminate();
        this.#workerFailed = true;
        return null;
      }
      this.#worker = worker;
      return worker;
    } catch {
      this.#workerFailed = true;
      return null;
    }
  }

  /** Sums the shards' gradients in shard order, then turns layer 0's table gradient into
   * gradients of the embedding, W_ih0 and b_ih0. */
  #reduce(): void {
    const plan = this.#plan, k = this.#k, f32 = this.#f32;
    const { gates: gh, inputSize: ni, vocab: v, paramCount: P } = plan;
    const [first, ...rest] = plan.shards;
    f32.copyWithin(plan.grads >> 2, first.grads >> 2, (first.grads >> 2) + P);
    for (const s of rest) {
      k.add(plan.grads, s.grads, P);
      k.add(first.dTable, s.dTable, v * gh);
    }
    const dTable = first.dTable;
    const p0 = plan.layerParams[0];
    const g = (at: number) => plan.grads + (at - plan.params);
    const sc = first.scratch;
    // forward: table[v] = embed[v] W_ih0^T + b_ih0, so
    // dW_ih0 += dtable^T embed, db_ih0 += Σ_v dtable[v], dembed += dtable W_ih0
    k.gemm(g(p0.wIh), 4 * ni, dTable, 4, 4 * gh, plan.embed, 4 * ni, 32, gh, ni, v, 1, sc);
    k.colsum(g(p0.bIh), dTable, v, gh);
    k.gemm(g(plan.embed), 4 * ni, dTable, 4 * gh, 4, p0.wIh, 4 * ni, 32, v, ni, gh, 1, sc);
  }
}
