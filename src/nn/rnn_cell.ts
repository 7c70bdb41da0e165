// T steps, B streams, I input, H hidden. The seed's Elman cell, as torch.nn.RNN:
//   h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),  f = tanh or relu.
import {
  activateInPlace,
  type FloatArray,
  matmulAB,
  matmulABt,
  type Nonlinearity,
  reluGrad,
  tanhGrad,
} from "../math/mod.ts";
import { accumulateLayerGrads } from "./_layer_grads.ts";
import type { LayerCache } from "./layer_cache.ts";
import type { LayerParams } from "./params.ts";

/**
 * Forward pass of an Elman layer over a window, keeping what backward needs.
 * Reads `c.x` (T, B, I) and `c.h[0]` (B, H); writes `c.h[1..T]` and `c.gates` (= h).
 *
 * @param c the layer's cache
 * @param p the layer's parameters
 * @param f the nonlinearity
 * @param t steps T
 * @param b streams B
 * @param i input width I
 * @param h hidden size H
 * @example
 * ```ts
 * import { rnnForward } from "./rnn_cell.ts";
 * import { createLayerCache } from "./layer_cache.ts";
 * const c = createLayerCache("rnn", 1, 1, 1, 1, Float32Array, null);
 * c.x[0] = 1;
 * const one = new Float32Array([1]), zero = new Float32Array([0]);
 * rnnForward(c, { wIh: one, wHh: one, bIh: zero, bHh: zero }, "relu", 1, 1, 1, 1);
 * // c.h = [0, 1]
 * ```
 */
export function rnnForward(
  c: LayerCache,
  p: LayerParams,
  f: Nonlinearity,
  t: number,
  b: number,
  i: number,
  h: number,
): void {
  const bh = b * h;
  // Input projections for the whole window at once: (T*B, I) x (H, I)^T.
  matmulABt(c.gates, c.x, p.wIh, p.bIh, t * b, h, i, false);
  for (let s = 0; s < t; s++) {
    // forward: pre = W_ih x + b_ih + W_hh h_{t-1} + b_hh
    matmulABt(c.gh, c.h.subarray(s * bh, (s + 1) * bh), p.wHh, p.bHh, b, h, h, false);
    const g = s * bh;
    for (let k = 0; k < bh; k++) c.gates[g + k] += c.gh[k];
    activateInPlace(c.gates, g, bh, f);
    c.h.set(c.gates.subarray(g, g + bh), (s + 1) * bh);
  }
}

/**
 * Backward through time of an Elman layer over the window of the last {@linkcode rnnForward}.
 * Accumulates parameter gradients into `g` and, if `dx` is given, writes `dL/dx` (T, B, I).
 *
 * @param c the cache filled by forward
 * @param p the layer's parameters
 * @param g gradient views (accumulated with +=)
 * @param f the nonlinearity
 * @param dy `dL/dh_t` from above for t = 1..T (T, B, H)
 * @param dhT `dL/dh_T` arriving from beyond the window (B, H), or null for zero
 * @param dx receives `dL/dx` (T, B, I), or null when nothing needs it
 * @param dh0 receives `dL/dh_0` (B, H)
 * @param t steps T
 * @param b streams B
 * @param i input width I
 * @param h hidden size H
 */
export function rnnBackward(
  c: LayerCache,
  p: LayerParams,
  g: LayerParams,
  f: Nonlinearity,
  dy: FloatArray,
  dhT: FloatArray | null,
  dx: FloatArray | null,
  dh0: FloatArray,
  t: number,
  b: number,
  i: number,
  h: number,
): void {
  const bh = b * h;
  const dh = c.dh;
  if (dhT === null) dh.fill(0, 0, bh);
  else dh.set(dhT.subarray(0, bh));
  const dgl = c.dGates;
  const act = f === "tanh" ? tanhGrad : reluGrad;
  for (let s = t - 1; s >= 0; s--) {
    const o = s * bh;
    // forward: h_t = f(pre), so dpre = (dh_t from above + from the future) * f'(pre)
    for (let k = 0; k < bh; k++) dgl[o + k] = (dh[k] + dy[o + k]) * act(c.gates[o + k]);
    // forward: pre += W_hh h_{t-1}, so dh_{t-1} = dpre W_hh
    dh.fill(0, 0, bh);
    matmulAB(dh, dgl.subarray(o, o + bh), p.wHh, b, h, h);
  }
  dh0.set(dh.subarray(0, bh));
  const dG = dgl.subarray(0, t * bh);
  accumulateLayerGrads(c, p, g, dG, dG, dx, t * b, h, i, h);
}

/**
 * One inference step of an Elman layer for a single stream, in place:
 * `h = f(gi + gh)` where `gi = W_ih x + b_ih` and `gh = W_hh h + b_hh` are precomputed.
 *
 * @param hs state buffer holding h (H) at `hOff`
 * @param hOff offset of h
 * @param gi input projection, read at `giOff`
 * @param giOff offset of the projection
 * @param gh recurrent projection (H)
 * @param h hidden size H
 * @param f the nonlinearity
 */
export function rnnStep(
  hs: FloatArray,
  hOff: number,
  gi: FloatArray,
  giOff: number,
  gh: FloatArray,
  h: number,
  f: Nonlinearity,
): void {
  if (f === "tanh") {
    for (let j = 0; j < h; j++) hs[hOff + j] = Math.tanh(gi[giOff + j] + gh[j]);
  } else {
    for (let j = 0; j < h; j++) {
      const v = gi[giOff + j] + gh[j];
      hs[hOff + j] = v > 0 ? v : 0;
    }
  }
}
