// T steps, B streams, I input of this layer, H hidden, G gates.
import type { FloatArray, FloatArrayConstructor } from "../math/mod.ts";
import type { CellKind } from "./config.ts";

/**
 * What one layer's forward pass over a window keeps for its backward pass, plus the scratch
 * that backward needs. Sized for at most `maxT` steps and `maxB` streams; a window may use less.
 */
export interface LayerCache {
  /** Input of this layer (T, B, I): embeddings or dense inputs for layer 0, else a view of the
   * layer below's `h` from step 1. */
  x: FloatArray;
  /** Hidden states (T+1, B, H); `h[0]` is the window's initial state, `h[1..T]` the outputs. */
  h: FloatArray;
  /** LSTM cell states (T+1, B, H); empty for other cells. */
  c: FloatArray;
  /** Gates after their activations (T, B, G*H); before that, the input projections. */
  gates: FloatArray;
  /** Recurrent projections `W_hh h + b_hh` of the current step (B, G*H). */
  gh: FloatArray;
  /** GRU: `W_hn h + b_hn` per step (T, B, H); LSTM: `tanh(c_t)` per step (T, B, H). */
  aux: FloatArray;
  /** Gradient of the loss with respect to the gates' pre-activations, input side (T, B, G*H). */
  dGates: FloatArray;
  /** GRU only: the recurrent side, which differs in the n gate (T, B, G*H); else empty. */
  dGatesHh: FloatArray;
  /** Running gradient with respect to h_t (B, H), and for LSTM to c_t (B, H). */
  dh: FloatArray;
  dc: FloatArray;
}

/**
 * Allocates a layer cache for windows of up to `maxT` steps of `maxB` streams.
 *
 * @param cell the cell kind (decides which buffers are needed)
 * @param maxT steps T
 * @param maxB streams B
 * @param inputSize this layer's input width I
 * @param hiddenSize H
 * @param dtype the float type of the network
 * @param x the input buffer to use (a view of the layer below), or null to allocate one
 * @returns a fresh cache
 * @example
 * ```ts
 * import { createLayerCache } from "./layer_cache.ts";
 * createLayerCache("gru", 4, 2, 3, 5, Float32Array, null).gates.length; // 4 * 2 * 15
 * ```
 */
export function createLayerCache(
  cell: CellKind,
  maxT: number,
  maxB: number,
  inputSize: number,
  hiddenSize: number,
  dtype: FloatArrayConstructor,
  x: FloatArray | null,
): LayerCache {
  const gh = (cell === "rnn" ? 1 : cell === "gru" ? 3 : 4) * hiddenSize;
  const bh = maxB * hiddenSize;
  return {
    x: x ?? new dtype(maxT * maxB * inputSize),
    h: new dtype((maxT + 1) * bh),
    c: new dtype(cell === "lstm" ? (maxT + 1) * bh : 0),
    gates: new dtype(maxT * maxB * gh),
    gh: new dtype(maxB * gh),
    aux: new dtype(cell === "rnn" ? 0 : maxT * bh),
    dGates: new dtype(maxT * maxB * gh),
    dGatesHh: new dtype(cell === "gru" ? maxT * maxB * gh : 0),
    dh: new dtype(bh),
    dc: new dtype(cell === "lstm" ? bh : 0),
  };
}
