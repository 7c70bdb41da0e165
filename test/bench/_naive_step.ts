// L layers, H hidden, G gates, I input to layer 0 (embedding width), V vocabulary, O outputs.
// The baseline the benchmark measures Stepper against: the same math written the way one first
// writes it. Nested loops over the parameter views with one accumulator per row, the embedding
// row looked up and multiplied by W_ih in full every step (no folding), a loop per gate, and
// small temporaries allocated every step.
import type { FloatArray } from "../../src/math/mod.ts";
import { gatesOf, type Network } from "../../src/nn/mod.ts";

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/**
 * Applies one token to one stream, plainly: updates `state` in place (every layer's h (L, H),
 * then for LSTM every layer's c (L, H), the layout of `Stepper`) and returns the softmax of
 * the head in a fresh array.
 *
 * @param net an embedding network
 * @param state the stream's state (S·L·H), updated in place
 * @param token a token id in 0..V-1
 * @returns the next-token probabilities (O)
 * @example
 * ```ts
 * import { Network } from "../../src/nn/mod.ts";
 * import { naiveStep } from "./_naive_step.ts";
 * const net = Network.create({ cell: "gru", nonlinearity: "tanh", input: "embedding",
 *   vocabSize: 5, inputSize: 4, hiddenSize: 8, layers: 1, outputSize: 5 }, 7);
 * const state = new Float32Array(net.stateSize);
 * naiveStep(net, state, 3).length; // 5
 * ```
 */
export function naiveStep(net: Network, state: FloatArray, token: number): FloatArray {
  const { cell, nonlinearity, vocabSize: V, inputSize: I, hiddenSize: H, layers: L } = net.config;
  const O = net.config.outputSize;
  const G = gatesOf(cell);
  const p = net.p;
  if (p.embed === null) throw new TypeError("naiveStep() needs an embedding network");
  if (!(Number.isInteger(token) && token >= 0 && token < V)) {
    throw new RangeError(`token id ${token} is outside 0..${V - 1}`);
  }
  if (state.length !== net.stateSize) {
    throw new RangeError(`state has ${state.length} floats; the network needs ${net.stateSize}`);
  }
  const F = net.dtype;

  let x: FloatArray = p.embed.slice(token * I, (token + 1) * I); // (I) the embedding row
  let xSize = I;
  for (let l = 0; l < L; l++) {
    const { wIh, wHh, bIh, bHh } = p.layers[l];
    const h = state.slice(l * H, (l + 1) * H); // (H) h_{t-1} of this layer

    // gi = W_ih x + b_ih, gh = W_hh h + b_hh
    const gi = new F(G * H); // (G*H)
    for (let r = 0; r < G * H; r++) {
      let sum = bIh[r];
      for (let k = 0; k < xSize; k++) sum += wIh[r * xSize + k] * x[k];
      gi[r] = sum;
    }
    const gh = new F(G * H); // (G*H)
    for (let r = 0; r < G * H; r++) {
      let sum = bHh[r];
      for (let k = 0; k < H; k++) sum += wHh[r * H + k] * h[k];
      gh[r] = sum;
    }

    const hNew = new F(H); // (H)
    if (cell === "rnn") {
      // h' = f(W_ih x + b_ih + W_hh h + b_hh)
      for (let j = 0; j < H; j++) {
        const a = gi[j] + gh[j];
        hNew[j] = nonlinearity === "tanh" ? Math.tanh(a) : Math.max(0, a);
      }
    } else if (cell === "gru") {
      const r = new F(H); // (H)
      const z = new F(H); // (H)
      const n = new F(H); // (H)
      // r = σ(W_ir x + b_ir + W_hr h + b_hr)
      for (let j = 0; j < H; j++) r[j] = sigmoid(gi[j] + gh[j]);
      // z = σ(W_iz x + b_iz + W_hz h + b_hz)
      for (let j = 0; j < H; j++) z[j] = sigmoid(gi[H + j] + gh[H + j]);
      // n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
      for (let j = 0; j < H; j++) n[j] = Math.tanh(gi[2 * H + j] + r[j] * gh[2 * H + j]);
      // h' = (1 - z) n + z h
      for (let j = 0; j < H; j++) hNew[j] = (1 - z[j]) * n[j] + z[j] * h[j];
    } else {
      const c = state.slice((L + l) * H, (L + l + 1) * H); // (H) c_{t-1} of this layer
      const ig = new F(H); // (H)
      const fg = new F(H); // (H)
      const gg = new F(H); // (H)
      const og = new F(H); // (H)
      for (let j = 0; j < H; j++) ig[j] = sigmoid(gi[j] + gh[j]);
      for (let j = 0; j < H; j++) fg[j] = sigmoid(gi[H + j] + gh[H + j]);
      for (let j = 0; j < H; j++) gg[j] = Math.tanh(gi[2 * H + j] + gh[2 * H + j]);
      for (let j = 0; j < H; j++) og[j] = sigmoid(gi[3 * H + j] + gh[3 * H + j]);
      // c' = f c + i g; h' = o tanh(c')
      const cNew = new F(H); // (H)
      for (let j = 0; j < H; j++) cNew[j] = fg[j] * c[j] + ig[j] * gg[j];
      for (let j = 0; j < H; j++) hNew[j] = og[j] * Math.tanh(cNew[j]);
      state.set(cNew, (L + l) * H);
    }

    state.set(hNew, l * H);
    x = hNew; // the next layer reads this layer's new h
    xSize = H;
  }

  // logits = W_head h + b_head
  const logits = new F(O); // (O)
  for (let o = 0; o < O; o++) {
    let sum = p.headB[o];
    for (let k = 0; k < H; k++) sum += p.headW[o * H + k] * x[k];
    logits[o] = sum;
  }
  // softmax, the maximum subtracted first
  let max = -Infinity;
  for (let o = 0; o < O; o++) if (logits[o] > max) max = logits[o];
  const probs = new F(O); // (O)
  let total = 0;
  for (let o = 0; o < O; o++) {
    probs[o] = Math.exp(logits[o] - max);
    total += probs[o];
  }
  for (let o = 0; o < O; o++) probs[o] /= total;
  return probs;
}
