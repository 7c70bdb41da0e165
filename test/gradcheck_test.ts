// Finite-difference checks of Workspace.backward(): every parameter and every entry of the
// initial state, for each cell, 1 and 2 layers, B > 1, embedding and dense input, in float64.
import assert from "node:assert/strict";
import { crossEntropy, Rng } from "../src/math/mod.ts";
import { type CellKind, Network, type NetworkConfig, Workspace } from "../src/nn/mod.ts";

const T = 4, B = 3;

interface Problem {
  net: Network;
  ws: Workspace;
  input: Int32Array | Float64Array;
  targets: Int32Array;
  state0: Float64Array;
  /** Weights of a linear term on the final state, so the dL/dstate_T path is checked too. */
  wState: Float64Array;
}

function makeProblem(config: NetworkConfig, seed: number): Problem {
  const rng = new Rng(seed);
  const net = Network.create(config, seed, Float64Array);
  // Larger weights than the default init make every gate and path matter.
  for (let k = 0; k < net.params.length; k++) net.params[k] = rng.uniform() - 0.5;
  const ws = new Workspace(net, T, B);
  const input = config.input === "embedding"
    ? Int32Array.from({ length: T * B }, () => rng.int(config.vocabSize))
    : Float64Array.from({ length: T * B * config.inputSize }, () => rng.normal());
  const targets = Int32Array.from({ length: T * B }, () => rng.int(config.outputSize));
  const state0 = Float64Array.from({ length: net.stateSize * B }, () => 0.5 * rng.normal());
  const wState = Float64Array.from({ length: net.stateSize * B }, () => rng.normal());
  return { net, ws, input, targets, state0, wState };
}

function loss(pr: Problem): number {
  const { net, ws } = pr;
  ws.forward(pr.input, pr.state0, T, B);
  const ce = crossEntropy(ws.logits, pr.targets, T * B, net.config.outputSize, null).loss;
  let lin = 0;
  for (let k = 0; k < pr.wState.length; k++) lin += pr.wState[k] * ws.stateOut[k];
  return ce + lin;
}

function analytic(pr: Problem): { grads: Float64Array; dState0: Float64Array } {
  const { net, ws } = pr;
  ws.forward(pr.input, pr.state0, T, B);
  const dlogits = new Float64Array(T * B * net.config.outputSize);
  crossEntropy(ws.logits, pr.targets, T * B, net.config.outputSize, dlogits);
  const grads = new Float64Array(net.params.length);
  const dState0 = new Float64Array(pr.state0.length);
  ws.backward(dlogits, pr.wState, grads, dState0);
  return { grads, dState0 };
}

/** Largest |analytic - numeric| over a buffer, perturbing each entry of `x` by ±eps. */
function compare(pr: Problem, x: Float64Array, analyticGrad: Float64Array) {
  const eps = 1e-6;
  let worst = { diff: 0, index: -1, a: 0, n: 0 };
  for (let k = 0; k < x.length; k++) {
    const keep = x[k];
    x[k] = keep + eps;
    const up = loss(pr);
    x[k] = keep - eps;
    const down = loss(pr);
    x[k] = keep;
    const n = (up - down) / (2 * eps);
    const diff = Math.abs(analyticGrad[k] - n) / Math.max(1, Math.abs(n));
    if (diff > worst.diff) worst = { diff, index: k, a: analyticGrad[k], n };
  }
  return worst;
}

const cells: [CellKind, "tanh" | "relu"][] = [
  ["rnn", "tanh"],
  ["rnn", "relu"],
  ["gru", "tanh"],
  ["lstm", "tanh"],
];

for (const [cell, nonlinearity] of cells) {
  Deno.test(`${cell}${cell === "rnn" ? `(${nonlinearity})` : ""} backward matches finite differences`, async (t) => {
    for (const layers of [1, 2]) {
      for (const input of ["embedding", "dense"] as const) {
        await t.step(`${layers} layer(s), ${input} input, B=${B}, T=${T}`, () => {
          const config: NetworkConfig = {
            cell,
            nonlinearity,
            input,
            vocabSize: input === "embedding" ? 5 : 0,
            inputSize: 3,
            hiddenSize: 4,
            layers,
            outputSize: 5,
          };
          const pr = makeProblem(config, 1000 + layers);
          const { grads, dState0 } = analytic(pr);
          const params = pr.net.params as Float64Array;
          const wp = compare(pr, params, grads);
          assert.ok(
            wp.diff < 1e-6,
            `parameter ${wp.index}: analytic ${wp.a}, numeric ${wp.n} (difference ${wp.diff})`,
          );
          const ws = compare(pr, pr.state0, dState0);
          assert.ok(
            ws.diff < 1e-6,
            `initial state ${ws.index}: analytic ${ws.a}, numeric ${ws.n} (difference ${ws.diff})`,
          );
          // A check that cannot fail proves nothing: the gradients must not be all zero.
          assert.ok(grads.some((g) => Math.abs(g) > 1e-3), "parameter gradients are all ~0");
          assert.ok(dState0.some((g) => Math.abs(g) > 1e-3), "state gradients are all ~0");
        });
      }
    }
  });
}

Deno.test("backward accumulates into the gradient buffer instead of overwriting it", () => {
  const config: NetworkConfig = {
    cell: "gru",
    nonlinearity: "tanh",
    input: "embedding",
    vocabSize: 5,
    inputSize: 3,
    hiddenSize: 4,
    layers: 2,
    outputSize: 5,
  };
  const pr = makeProblem(config, 7);
  const once = analytic(pr).grads;
  const { net, ws } = pr;
  const twice = new Float64Array(net.params.length);
  for (let r = 0; r < 2; r++) {
    ws.forward(pr.input, pr.state0, T, B);
    const dlogits = new Float64Array(T * B * config.outputSize);
    crossEntropy(ws.logits, pr.targets, T * B, config.outputSize, dlogits);
    ws.backward(dlogits, pr.wState, twice, null);
  }
  for (let k = 0; k < once.length; k++) {
    assert.ok(Math.abs(twice[k] - 2 * once[k]) < 1e-12, `gradient ${k} did not accumulate`);
  }
});
