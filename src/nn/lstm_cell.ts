// T steps, B streams, I input, H hidden; gates in PyTorch's order i, f, g, o (rows of 4H).
//   i = σ(·), f = σ(·), g = tanh(·), o = σ(·)   of   W_ih x + b_ih + W_hh h + b_hh
//   c' = f ⊙ c + i ⊙ g,   h' = o ⊙ tanh(c')
import { type FloatArray, matmulAB, matmulABt } from "../math/mod.ts";
import { accumulateLayerGrads } from "./_layer_grads.ts";
import type { LayerCache } from "./layer_cache.ts";
import type { LayerParams } from "./params.ts";

/**
 * Forward pass of an LSTM layer over a window, keeping what backward needs.
 * Reads `c.x` (T, B, I), `c.h[0]` and `c.c[0]` (B, H); writes `c.h[1..T]`, `c.c[1..T]`, the
 * gates i, f, g, o (T, B, 4H) and `c.aux` = tanh(c_t) (T, B, H).
 *
 * @param c the layer's cache
 * @param p the layer's parameters
 * @param t steps T
 * @param b streams B
 * @param i input width I
 * @param h hidden size H
 * @example
 * ```ts
 * import { lstmForward } from "./lstm_cell.ts";
 * import { createLayerCache } from "./layer_cache.ts";
 * const c = createLayerCache("lstm", 1, 1, 1, 1, Float32Array, null);
 * const z = () => new Float32Array(4);
 * c.c[0] = 2;
 * lstmForward(c, { wIh: z(), wHh: z(), bIh: z(), bHh: z() }, 1, 1, 1, 1);
 * // f = 0.5, i = 0.5, g = 0: c_1 = 1
 * ```
 */
export function lstmForward(
  c: LayerCache,
  p: LayerParams,
  t: number,
  b: number,
  i: number,
  h: number,
): void {
  const h4 = 4 * h;
  const bh = b * h;
  matmulABt(c.gates, c.x, p.wIh, p.bIh, t * b, h4, i, false);
  const gh = c.gh;
  for (let s = 0; s < t; s++) {
    matmulABt(gh, c.h.subarray(s * bh, (s + 1) * bh), p.wHh, p.bHh, b, h4, h, false);
    for (let bb = 0; bb < b; bb++) {
      const g = (s * b + bb) * h4;
      const q = bb * h4;
      const prev = s * bh + bb * h;
      const next = (s + 1) * bh + bb * h;
      for (let j = 0; j < h; j++) {
        const ig = 1 / (1 + Math.exp(-(c.gates[g + j] + gh[q + j])));
        const fg = 1 / (1 + Math.exp(-(c.gates[g + h + j] + gh[q + h + j])));
        const gg = Math.tanh(c.gates[g + 2 * h + j] + gh[q + 2 * h + j]);
        const og = 1 / (1 + Math.exp(-(c.gates[g + 3 * h + j] + gh[q + 3 * h + j])));
        c.gates[g + j] = ig;
        c.gates[g + h + j] = fg;
        c.gates[g + 2 * h + j] = gg;
        c.gates[g + 3 * h + j] = og;
        const ct = fg * c.c[prev + j] + ig * gg;
        c.c[next + j] = ct;
        const tc = Math.tanh(ct);
        c.aux[prev + j] = tc; // aux is (T, B, H): step s sits where h_{t-1} sits in h
        c.h[next + j] = og * tc;
      }
    }
  }
}

/**
 * Backward through time of an LSTM layer over the window of the last {@linkcode lstmForward}.
 * Accumulates parameter gradients into `g` and, if `dx` is given, writes `dL/dx` (T, B, I).
 *
 * @param c the cache filled by forward
 * @param p the layer's parameters
 * @param g gradient views (accumulated with +=)
 * @param dy `dL/dh_t` from above for t = 1..T (T, B, H)
 * @param dhT `dL/dh_T` from beyond the window (B, H), or null for zero
 * @param dcT `dL/dc_T` from beyond the window (B, H), or null for zero
 * @param dx receives `dL/dx` (T, B, I), or null
 * @param dh0 receives `dL/dh_0` (B, H)
 * @param dc0 receives `dL/dc_0` (B, H)
 * @param t steps T
 * @param b streams B
 * @param i input width I
 * @param h hidden size H
 */
export function lstmBackward(
  c: LayerCache,
  p: LayerParams,
  g: LayerParams,
  dy: FloatArray,
  dhT: FloatArray | null,
  dcT: FloatArray | null,
  dx: FloatArray | null,
  dh0: FloatArray,
  dc0: FloatArray,
  t: number,
  b: number,
  i: number,
  h: number,
): void {
  const h4 = 4 * h;
  const bh = b * h;
  const dh = c.dh;
  const dc = c.dc;
  if (dhT === null) dh.fill(0, 0, bh);
  else dh.set(dhT.subarray(0, bh));
  if (dcT === null) dc.fill(0, 0, bh);
  else dc.set(dcT.subarray(0, bh));
  const dG = c.dGates;
  for (let s = t - 1; s >= 0; s--) {
    for (let bb = 0; bb < b; bb++) {
      const gOff = (s * b + bb) * h4;
      const prev = s * bh + bb * h;
      const k0 = bb * h;
      for (let j = 0; j < h; j++) {
        const ig = c.gates[gOff + j];
        const fg = c.gates[gOff + h + j];
        const gg = c.gates[gOff + 2 * h + j];
        const og = c.gates[gOff + 3 * h + j];
        const tc = c.aux[prev + j];
        const dht = dh[k0 + j] + dy[prev + j];
        // forward: h' = o tanh(c')
        const dog = dht * tc;
        const dct = dc[k0 + j] + dht * og * (1 - tc * tc);
        // forward: c' = f c + i g
        dG[gOff + j] = dct * gg * ig * (1 - ig);
        dG[gOff + h + j] = dct * c.c[prev + j] * fg * (1 - fg);
        dG[gOff + 2 * h + j] = dct * ig * (1 - gg * gg);
        dG[gOff + 3 * h + j] = dog * og * (1 - og);
        dc[k0 + j] = dct * fg;
      }
    }
    dh.fill(0, 0, bh);
    matmulAB(dh, dG.subarray(s * b * h4, (s + 1) * b * h4), p.wHh, b, h, h4);
  }
  dh0.set(dh.subarray(0, bh));
  dc0.set(dc.subarray(0, bh));
  const n = t * b;
  const dGv = dG.subarray(0, n * h4);
  accumulateLayerGrads(c, p, g, dGv, dGv, dx, n, h4, i, h);
}

/**
 * One inference step of an LSTM layer for a single stream, in place, given the precomputed
 * projections `gi = W_ih x + b_ih` (4H) and `gh = W_hh h + b_hh` (4H).
 *
 * @param st state buffer holding h (H) at `hOff` and c (H) at `cOff`
 * @param hOff offset of h
 * @param cOff offset of c
 * @param gi input projection, read at `giOff`
 * @param giOff offset of the projection
 * @param gh recurrent projection (4H)
 * @param h hidden size H
 */
export function lstmStep(
  st: FloatArray,
  hOff: number,
  cOff: number,
  gi: FloatArray,
  giOff: number,
  gh: FloatArray,
  h: number,
): void {
  for (let j = 0; j < h; j++) {
    const ig = 1 / (1 + Math.exp(-(gi[giOff + j] + gh[j])));
    const fg = 1 / (1 + Math.exp(-(gi[giOff + h + j] + gh[h + j])));
    const gg = Math.tanh(gi[giOff + 2 * h + j] + gh[2 * h + j]);
    const og = 1 / (1 + Math.exp(-(gi[giOff + 3 * h + j] + gh[3 * h + j])));
    const ct = fg * st[cOff + j] + ig * gg;
    st[cOff + j] = ct;
    st[hOff + j] = og * Math.tanh(ct);
  }
}
