// L layers, H hidden, I embedding width, V vocabulary, O outputs.
// The benchmark's plain baseline (test/bench/_naive_step.ts) must compute what Stepper computes,
// or the timings compare different work.
import assert from "node:assert/strict";
import { maxAbsDiff } from "./_close.ts";
import type { Nonlinearity } from "../src/math/mod.ts";
import { type CellKind, Network, Stepper } from "../src/nn/mod.ts";
import { naiveStep } from "./bench/_naive_step.ts";

const STEPS = 50;
const TOLERANCE = 1e-5;

const cases: [CellKind, Nonlinearity][] = [
  ["rnn", "tanh"],
  ["rnn", "relu"],
  ["gru", "tanh"],
  ["lstm", "tanh"],
];

for (const [cell, nonlinearity] of cases) {
  for (const layers of [1, 2]) {
    const name = cell === "rnn" ? `rnn ${nonlinearity}` : cell;
    Deno.test(`naiveStep() matches Stepper.step() for ${name}, ${layers} layer(s)`, () => {
      const V = 11, I = 6, H = 9, O = 11;
      const net = Network.create(
        {
          cell,
          nonlinearity,
          input: "embedding",
          vocabSize: V,
          inputSize: I,
          hiddenSize: H,
          layers,
          outputSize: O,
        },
        17 + layers,
      );
      const stepper = new Stepper(net);
      const fast = stepper.newState(); // (S, L, H)
      const plain = stepper.newState(); // (S, L, H)
      let worstProbs = 0, worstState = 0, worstAt = -1;
      for (let t = 0; t < STEPS; t++) {
        const token = (t * 7 + 3) % V;
        const pFast = stepper.step(fast, token);
        const pPlain = naiveStep(net, plain, token);
        const dp = maxAbsDiff(pFast, pPlain);
        const ds = maxAbsDiff(fast, plain);
        if (Math.max(dp, ds) > Math.max(worstProbs, worstState)) worstAt = t;
        worstProbs = Math.max(worstProbs, dp);
        worstState = Math.max(worstState, ds);
      }
      assert.ok(
        worstProbs < TOLERANCE && worstState < TOLERANCE,
        `largest difference over ${STEPS} steps: probabilities ${worstProbs}, state ${worstState} ` +
          `(worst at step ${worstAt}); tolerance ${TOLERANCE}`,
      );
    });
  }
}
