// T·B = N rows, G·H gate rows, I input, H hidden. The half of a layer's backward that every
// cell shares: once the gates' pre-activation gradients are known for the whole window, the
// weight, bias and input gradients are batched products over all N rows at once.
import { type FloatArray, matmulAB, outerAccumulate, sumRowsAccumulate } from "../math/mod.ts";
import type { LayerCache } from "./layer_cache.ts";
import type { LayerParams } from "./params.ts";

/**
 * Accumulates `dW_ih`, `dW_hh`, `db_ih`, `db_hh` and writes `dx` from the gate gradients.
 * forward: pre = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh (per gate block; the GRU's n gate scales
 * its recurrent part by r, which is why the recurrent side has its own gradient `dGh`).
 *
 * @param c the layer cache (its `x` (N, I) and `h` (N+B, H), rows 0..N-1 being h_{t-1})
 * @param p the layer's parameters
 * @param g gradient views, accumulated with +=
 * @param dGi gradient of the input-side pre-activations (N, G·H)
 * @param dGh gradient of the recurrent-side pre-activations (N, G·H)
 * @param dx receives dL/dx (N, I), or null
 * @param n rows N = T·B
 * @param gh gate rows G·H
 * @param i input width I
 * @param h hidden size H
 */
export function accumulateLayerGrads(
  c: LayerCache,
  p: LayerParams,
  g: LayerParams,
  dGi: FloatArray,
  dGh: FloatArray,
  dx: FloatArray | null,
  n: number,
  gh: number,
  i: number,
  h: number,
): void {
  outerAccumulate(g.wIh, dGi, c.x, gh, i, n);
  outerAccumulate(g.wHh, dGh, c.h, gh, h, n);
  sumRowsAccumulate(g.bIh, dGi, n, gh);
  sumRowsAccumulate(g.bHh, dGh, n, gh);
  if (dx !== null) {
    dx.fill(0, 0, n * i);
    matmulAB(dx, dGi, p.wIh, n, i, gh);
  }
}
