// T steps, R streams of a shard, B streams in all, L layers, I embedding width, H hidden,
// G gates, V vocabulary, O outputs (Op padded to a multiple of 8), P parameters.
// The memory plan of the WebAssembly training path and the work of one shard: forward, loss and
// backward of a TBPTT window over R of the B streams, on one shared wasm memory. The main thread
// and the worker both run `runShard`; they only differ in which shard they are given.
import type { CellKind } from "./config.ts";

/** The exports of train.wasm (offsets in bytes, sizes in elements; see train.wat). */
export interface TrainKernels {
  gemm(
    c: number,
    ldc: number,
    a: number,
    sa: number,
    ska: number,
    b: number,
    skb: number,
    spb: number,
    m: number,
    n: number,
    k: number,
    acc: number,
    scratch: number,
  ): void;
  pack_t(dst: number, w: number, n: number, k: number): void;
  add(y: number, x: number, n: number): void;
  colsum(y: number, a: number, m: number, n: number): void;
  sigmoid(y: number, x: number, n: number): void;
  tanh(y: number, x: number, n: number): void;
  rnn_fwd(
    g: number,
    gh: number,
    bi: number,
    bh: number,
    hn: number,
    rows: number,
    h: number,
    relu: number,
  ): void;
  rnn_bwd(dg: number, g: number, dh: number, dy: number, n: number, relu: number): void;
  gru_fwd(
    g: number,
    gh: number,
    bi: number,
    bh: number,
    hp: number,
    hn: number,
    aux: number,
    rows: number,
    h: number,
  ): void;
  gru_bwd(
    dgi: number,
    dgh: number,
    g: number,
    aux: number,
    hp: number,
    dh: number,
    dy: number,
    rows: number,
    h: number,
  ): void;
  lstm_fwd(
    g: number,
    gh: number,
    bi: number,
    bh: number,
    cp: number,
    cn: number,
    hn: number,
    aux: number,
    rows: number,
    h: number,
  ): void;
  lstm_bwd(
    dg: number,
    g: number,
    aux: number,
    cp: number,
    dh: number,
    dc: number,
    dy: number,
    rows: number,
    h: number,
  ): void;
}

/** Byte offsets of one layer's parameters (or of their gradients, at the same distances). */
export interface LayerOffsets {
  wIh: number; // (G·H, I_l)
  wHh: number; // (G·H, H)
  bIh: number; // (G·H)
  bHh: number; // (G·H)
}

/** One layer's buffers in a shard (byte offsets). */
export interface ShardLayer {
  h: number; // (T+1, R, H); h[0] the window's initial state
  c: number; // (T+1, R, H), LSTM only
  gates: number; // (T, R, G·H) activated gates
  gh: number; // (R, G·H) recurrent products of the current step
  aux: number; // (T, R, H): GRU W_hn h + b_hn, LSTM tanh(c_t)
  dGates: number; // (T, R, G·H)
  dGatesHh: number; // (T, R, G·H), GRU only
  dh: number; // (R, H)
  dc: number; // (R, H), LSTM only
}

/** The buffers of one shard: streams b0 .. b0+R of the batch (byte offsets). */
export interface ShardPlan {
  b0: number;
  rows: number; // R
  grads: number; // (P) this shard's gradient
  dTable: number; // (V, G·H) gradient of layer 0's input projection table
  dHeadB: number; // (Op) scratch for the head bias gradient
  ids: number; // Int32 (T, R)
  targets: number; // Int32 (T, R)
  logits: number; // (T·R, Op), then dL/dlogits in place
  dtop: number; // (T·R, H)
  dbelow: number; // (T·R, H)
  scratch: number; // 128 bytes for the gemm's partial blocks
  loss: number; // one f64: the summed loss of the shard's counted targets
  layers: ShardLayer[];
}

/** Where everything lives in the memory; plain data, so it can be posted to a worker. */
export interface TrainPlan {
  cell: CellKind;
  relu: boolean;
  layers: number; // L
  inputSize: number; // I
  hidden: number; // H
  gates: number; // G·H
  vocab: number; // V
  outputs: number; // O
  outputsPadded: number; // Op
  maxT: number;
  batch: number; // B
  paramCount: number; // P
  params: number; // (P) a copy of the network's parameters
  grads: number; // (P) the summed gradient
  embed: number; // (V, I) inside params
  headW: number; // (O, H) inside params
  headB: number; // (O) inside params
  layerParams: LayerOffsets[];
  wihT: number[]; // per layer: W_ih packed as 8-column panels of W_ih^T (K = I_l)
  whhT: number[]; // per layer: W_hh packed likewise (K = H)
  headT: number; // W_head packed likewise (K = H)
  table: number; // (V, G·H): embed W_ih0^T + b_ih0, layer 0's input projection of every token
  zeros: number; // (G·H) zeros: layer 0's b_ih is already in the table
  ctrl: number; // Int32 control words shared with the worker
  shards: ShardPlan[];
  bytes: number; // total
}

/** Control words (Int32 indices from `ctrl`). */
export const CTRL = {
  /** Incremented by the main thread to start a window. */
  go: 0,
  /** Set by the worker to the `go` value it finished. */
  done: 1,
  /** Steps T of the window. */
  steps: 2,
  /** 1 after the worker failed; the message is on its error event. */
  failed: 3,
  /** 1 once the worker has instantiated the kernels. */
  ready: 4,
  /** Set to 1 to make the worker return. */
  quit: 5,
  /** Byte offset in the block of the loss scale 1/count, an f64. */
  scaleByte: 24,
  /** Words in the block. */
  size: 8,
} as const;

/** Sentinel of a target that counts for nothing (as NO_TARGET in math/softmax.ts). */
const NO_TARGET = -1;

/** Rows per slice of a weight-gradient product: 64 rows of both operands stay in cache, which
 * measured twice as fast as one pass over all T·R rows at H = 256. */
const ROW_BLOCK = 64;

/**
 * C (M, N) += D^T X over `rows` rows, D (rows, ≥ M; row stride `ldd` floats) and X (rows, N)
 * row-major: a weight gradient, in slices of {@linkcode ROW_BLOCK} rows (a fixed order, so the
 * sum is reproducible).
 */
function gemmTransposedA(
  k: TrainKernels,
  c: number,
  d: number,
  ldd: number,
  m: number,
  x: number,
  n: number,
  rows: number,
  scratch: number,
): void {
  for (let r0 = 0; r0 < rows; r0 += ROW_BLOCK) {
    const kc = Math.min(ROW_BLOCK, rows - r0);
    const dr = d + 4 * r0 * ldd, xr = x + 4 * r0 * n;
    k.gemm(c, 4 * n, dr, 4, 4 * ldd, xr, 4 * n, 32, m, n, kc, 1, scratch);
  }
}

/**
 * Runs forward, loss and backward of one shard over a window of T steps: fills the shard's
 * gradient, its layer-0 table gradient and its summed loss. The inputs, targets and initial
 * state must already be in the shard's buffers, and the parameters, packed weights and table
 * in theirs.
 *
 * @param k the kernels
 * @param buf the wasm memory's buffer
 * @param plan the memory plan
 * @param s the shard
 * @param t steps T
 * @param scale 1 / (counted targets of the whole window)
 */
export function runShard(
  k: TrainKernels,
  buf: ArrayBufferLike,
  plan: TrainPlan,
  s: ShardPlan,
  t: number,
  scale: number,
): void {
  const { cell, hidden: h, gates: gh, layers: nl, outputs: o, outputsPadded: op } = plan;
  const f32 = new Float32Array(buf);
  const i32 = new Int32Array(buf);
  const u8 = new Uint8Array(buf);
  const r = s.rows;
  const n = t * r; // rows of the window
  const h4 = 4 * h, g4 = 4 * gh;
  const relu = plan.relu ? 1 : 0;
  const sc = s.scratch;
  f32.fill(0, s.grads >> 2, (s.grads >> 2) + plan.paramCount);
  f32.fill(0, s.dTable >> 2, (s.dTable >> 2) + plan.vocab * gh);
  const gradOf = (at: number) => s.grads + (at - plan.params);

  // ---- forward, layer by layer
  for (let l = 0; l < nl; l++) {
    const c = s.layers[l];
    const p = plan.layerParams[l];
    if (l === 0) {
      // forward: gates_in = W_ih embed[id] + b_ih = table[id], a row gather
      const ids = s.ids >> 2;
      for (let q = 0; q < n; q++) {
        const src = plan.table + i32[ids + q] * g4;
        u8.copyWithin(c.gates + q * g4, src, src + g4);
      }
    } else {
      // forward: gates_in = X W_ih^T for all T·R rows at once (b_ih added by the cell)
      const x = s.layers[l - 1].h + r * h4;
      k.gemm(c.gates, g4, x, h4, 4, plan.wihT[l], 32, 32 * h, n, gh, h, 0, sc);
    }
    const bi = l === 0 ? plan.zeros : p.bIh;
    for (let st = 0; st < t; st++) {
      const hp = c.h + st * r * h4, hn = hp + r * h4;
      const g = c.gates + st * r * g4;
      const aux = c.aux + st * r * h4;
      // forward: gh = W_hh h_{t-1} (b_hh added by the cell)
      k.gemm(c.gh, g4, hp, h4, 4, plan.whhT[l], 32, 32 * h, r, gh, h, 0, sc);
      if (cell === "rnn") k.rnn_fwd(g, c.gh, bi, p.bHh, hn, r, h, relu);
      else if (cell === "gru") k.gru_fwd(g, c.gh, bi, p.bHh, hp, hn, aux, r, h);
      else {
        const cp = c.c + st * r * h4;
        k.lstm_fwd(g, c.gh, bi, p.bHh, cp, cp + r * h4, hn, aux, r, h);
      }
    }
  }

  // ---- head and loss: logits = H_top W_head^T + b_head over all T·R rows
  const top = s.layers[nl - 1].h + r * h4;
  const op4 = 4 * op;
  k.gemm(s.logits, op4, top, h4, 4, plan.headT, 32, 32 * h, n, op, h, 0, sc);
  const lg = s.logits >> 2, tg = s.targets >> 2, hb = plan.headB >> 2;
  let loss = 0;
  for (let q = 0; q < n; q++) {
    const row = lg + q * op;
    const target = i32[tg + q];
    if (target === NO_TARGET) {
      f32.fill(0, row, row + op);
      continue;
    }
    let max = -Infinity;
    for (let j = 0; j < o; j++) {
      const z = f32[row + j] + f32[hb + j];
      f32[row + j] = z;
      if (z > max) max = z;
    }
    let sum = 0;
    for (let j = 0; j < o; j++) sum += Math.exp(f32[row + j] - max);
    const lse = max + Math.log(sum);
    loss += lse - f32[row + target];
    // dL/dlogits = (softmax - onehot) / count
    for (let j = 0; j < o; j++) f32[row + j] = Math.exp(f32[row + j] - lse) * scale;
    f32[row + target] -= scale;
  }
  new Float64Array(buf, s.loss, 1)[0] = loss;

  // ---- backward of the head
  // forward: logits = H_top W_head^T + b_head, so dH_top = dlogits W_head,
  // dW_head += dlogits^T H_top, db_head += Σ dlogits
  k.gemm(s.dtop, h4, s.logits, op4, 4, plan.headW, h4, 32, n, h, o, 0, sc);
  gemmTransposedA(k, gradOf(plan.headW), s.logits, op, o, top, h, n, sc);
  f32.fill(0, s.dHeadB >> 2, (s.dHeadB >> 2) + op);
  k.colsum(s.dHeadB, s.logits, n, op);
  k.add(gradOf(plan.headB), s.dHeadB, o);

  // ---- backward through time, top layer first
  let dy = s.dtop, dx = s.dbelow;
  for (let l = nl - 1; l >= 0; l--) {
    const c = s.layers[l];
    const p = plan.layerParams[l];
    f32.fill(0, c.dh >> 2, (c.dh >> 2) + r * h);
    if (cell === "lstm") f32.fill(0, c.dc >> 2, (c.dc >> 2) + r * h);
    for (let st = t - 1; st >= 0; st--) {
      const g = c.gates + st * r * g4;
      const dg = c.dGates + st * r * g4;
      const dys = dy + st * r * h4;
      const aux = c.aux + st * r * h4;
      // forward: gh = W_hh h_{t-1}, so dh_{t-1} (+)= dgh W_hh
      if (cell === "rnn") {
        k.rnn_bwd(dg, g, c.dh, dys, r * h, relu);
        k.gemm(c.dh, h4, dg, g4, 4, p.wHh, h4, 32, r, h, gh, 0, sc);
      } else if (cell === "gru") {
        const dgh = c.dGatesHh + st * r * g4;
        k.gru_bwd(dg, dgh, g, aux, c.h + st * r * h4, c.dh, dys, r, h);
        k.gemm(c.dh, h4, dgh, g4, 4, p.wHh, h4, 32, r, h, gh, 1, sc);
      } else {
        k.lstm_bwd(dg, g, aux, c.c + st * r * h4, c.dh, c.dc, dys, r, h);
        k.gemm(c.dh, h4, dg, g4, 4, p.wHh, h4, 32, r, h, gh, 0, sc);
      }
    }
    // forward: pre = W_ih x + b_ih + W_hh h_{t-1} + b_hh, over all T·R rows at once
    const dGh = cell === "gru" ? c.dGatesHh : c.dGates;
    gemmTransposedA(k, gradOf(p.wHh), dGh, gh, gh, c.h, h, n, sc);
    k.colsum(gradOf(p.bHh), dGh, n, gh);
    if (l > 0) {
      const x = s.layers[l - 1].h + r * h4;
      gemmTransposedA(k, gradOf(p.wIh), c.dGates, gh, gh, x, h, n, sc);
      k.colsum(gradOf(p.bIh), c.dGates, n, gh);
      k.gemm(dx, h4, c.dGates, g4, 4, p.wIh, h4, 32, n, h, gh, 0, sc);
      const tmp = dy;
      dy = dx;
      dx = tmp;
    } else {
      // forward: gates_in = table[id], so dtable[id] += dgates_in
      const ids = s.ids >> 2;
      for (let q = 0; q < n; q++) k.add(s.dTable + i32[ids + q] * g4, c.dGates + q * g4, gh);
    }
  }
}
