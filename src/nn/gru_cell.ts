// T steps, B streams, I input, H hidden; gates in PyTorch's order r, z, n (rows [0,H), [H,2H), [2H,3H)).
//   r = σ(W_ir x + b_ir + W_hr h + b_hr)
//   z = σ(W_iz x + b_iz + W_hz h + b_hz)
//   n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
//   h' = (1 - z) ⊙ n + z ⊙ h
import { type FloatArray, matmulAB, matmulABt } from "../math/mod.ts";
import { accumulateLayerGrads } from "./_layer_grads.ts";
import type { LayerCache } from "./layer_cache.ts";
import type { LayerParams } from "./params.ts";

/**
 * Forward pass of a GRU layer over a window, keeping what backward needs.
 * Reads `c.x` (T, B, I) and `c.h[0]` (B, H); writes `c.h[1..T]`, the gates r, z, n (T, B, 3H)
 * and `c.aux` = `W_hn h + b_hn` (T, B, H).
 *
 * @param c the layer's cache
 * @param p the layer's parameters
 * @param t steps T
 * @param b streams B
 * @param i input width I
 * @param h hidden size H
 * @example
 * ```ts
 * import { gruForward } from "./gru_cell.ts";
 * import { createLayerCache } from "./layer_cache.ts";
 * const c = createLayerCache("gru", 1, 1, 1, 1, Float32Array, null);
 * const z = () => new Float32Array(3);
 * gruForward(c, { wIh: z(), wHh: z(), bIh: z(), bHh: z() }, 1, 1, 1, 1);
 * // all-zero weights: r = z = 0.5, n = 0, so h_1 = 0.5 * h_0 = 0
 * ```
 */
export function gruForward(
  c: LayerCache,
  p: LayerParams,
  t: number,
  b: number,
  i: number,
  h: number,
): void {
  const h3 = 3 * h;
  const bh = b * h;
  matmulABt(c.gates, c.x, p.wIh, p.bIh, t * b, h3, i, false);
  const gh = c.gh;
  for (let s = 0; s < t; s++) {
    matmulABt(gh, c.h.subarray(s * bh, (s + 1) * bh), p.wHh, p.bHh, b, h3, h, false);
    for (let bb = 0; bb < b; bb++) {
      const g = (s * b + bb) * h3; // this stream's gates at step s
      const q = bb * h3; // its recurrent projections
      const hp = s * bh + bb * h; // h_{t-1}
      const hn = (s + 1) * bh + bb * h; // h_t
      const a = s * bh + bb * h;
      for (let j = 0; j < h; j++) {
        const r = 1 / (1 + Math.exp(-(c.gates[g + j] + gh[q + j])));
        const z = 1 / (1 + Math.exp(-(c.gates[g + h + j] + gh[q + h + j])));
        const ghn = gh[q + 2 * h + j];
        const n = Math.tanh(c.gates[g + 2 * h + j] + r * ghn);
        c.gates[g + j] = r;
        c.gates[g + h + j] = z;
        c.gates[g + 2 * h + j] = n;
        c.aux[a + j] = ghn;
        c.h[hn + j] = (1 - z) * n + z * c.h[hp + j];
      }
    }
  }
}

/**
 * Backward through time of a GRU layer over the window of the last {@linkcode gruForward}.
 * Accumulates parameter gradients into `g` and, if `dx` is given, writes `dL/dx` (T, B, I).
 *
 * @param c the cache filled by forward
 * @param p the layer's parameters
 * @param g gradient views (accumulated with +=)
 * @param dy `dL/dh_t` from above for t = 1..T (T, B, H)
 * @param dhT `dL/dh_T` arriving from beyond the window (B, H), or null for zero
 * @param dx receives `dL/dx` (T, B, I), or null
 * @param dh0 receives `dL/dh_0` (B, H)
 * @param t steps T
 * @param b streams B
 * @param i input width I
 * @param h hidden size H
 */
export function gruBackward(
  c: LayerCache,
  p: LayerParams,
  g: LayerParams,
  dy: FloatArray,
  dhT: FloatArray | null,
  dx: FloatArray | null,
  dh0: FloatArray,
  t: number,
  b: number,
  i: number,
  h: number,
): void {
  const h3 = 3 * h;
  const bh = b * h;
  const dh = c.dh;
  if (dhT === null) dh.fill(0, 0, bh);
  else dh.set(dhT.subarray(0, bh));
  const dgi = c.dGates;
  const dgh = c.dGatesHh;
  for (let s = t - 1; s >= 0; s--) {
    for (let bb = 0; bb < b; bb++) {
      const gOff = (s * b + bb) * h3;
      const hp = s * bh + bb * h;
      const a = s * bh + bb * h;
      const k0 = bb * h;
      for (let j = 0; j < h; j++) {
        const r = c.gates[gOff + j];
        const z = c.gates[gOff + h + j];
        const n = c.gates[gOff + 2 * h + j];
        const dht = dh[k0 + j] + dy[a + j];
        // forward: h' = (1 - z) n + z h
        const dn = dht * (1 - z);
        const dz = dht * (c.h[hp + j] - n);
        // forward: n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        // so: dn_raw = dn (1 - n²), dr = dn_raw * (W_hn h + b_hn)
        const dnRaw = dn * (1 - n * n);
        const drRaw = dnRaw * c.aux[a + j] * r * (1 - r);
        const dzRaw = dz * z * (1 - z);
        dgi[gOff + j] = drRaw;
        dgi[gOff + h + j] = dzRaw;
        dgi[gOff + 2 * h + j] = dnRaw;
        dgh[gOff + j] = drRaw;
        dgh[gOff + h + j] = dzRaw;
        dgh[gOff + 2 * h + j] = dnRaw * r;
        dh[k0 + j] = dht * z; // the direct path z ⊙ h
      }
    }
    // forward: gh = W_hh h + b_hh feeds r, z and (through r) n
    matmulAB(dh, dgh.subarray(s * b * h3, (s + 1) * b * h3), p.wHh, b, h, h3);
  }
  dh0.set(dh.subarray(0, bh));
  const n = t * b;
  const dGi = dgi.subarray(0, n * h3);
  const dGh = dgh.subarray(0, n * h3);
  accumulateLayerGrads(c, p, g, dGi, dGh, dx, n, h3, i, h);
}

/**
 * One inference step of a GRU layer for a single stream, in place, given the precomputed
 * projections `gi = W_ih x + b_ih` (3H) and `gh = W_hh h + b_hh` (3H).
 *
 * @param hs state buffer holding h (H) at `hOff`
 * @param hOff offset of h
 * @param gi input projection, read at `giOff`
 * @param giOff offset of the projection
 * @param gh recurrent projection (3H)
 * @param h hidden size H
 */
export function gruStep(
  hs: FloatArray,
  hOff: number,
  gi: FloatArray,
  giOff: number,
  gh: FloatArray,
  h: number,
): void {
  for (let j = 0; j < h; j++) {
    const r = 1 / (1 + Math.exp(-(gi[giOff + j] + gh[j])));
    const z = 1 / (1 + Math.exp(-(gi[giOff + h + j] + gh[h + j])));
    const n = Math.tanh(gi[giOff + 2 * h + j] + r * gh[2 * h + j]);
    hs[hOff + j] = (1 - z) * n + z * hs[hOff + j];
  }
}
