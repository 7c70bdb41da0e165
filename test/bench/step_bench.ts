// V vocabulary, I embedding width, H hidden, O outputs; batch 1, one layer.
// Per-token latency of Stepper.step() against the plain nested-loop baseline, one group per
// cell, at the size of a small character model: V = O = 83, I = H = 256.
import type { FloatArray } from "../../src/math/mod.ts";
import { type CellKind, Network, Stepper } from "../../src/nn/mod.ts";
import { naiveStep } from "./_naive_step.ts";

const V = 83, I = 256, H = 256, O = 83;

// A fixed cycle of token ids, so both contenders see the same inputs in the same order.
const TOKENS = Int32Array.from({ length: 97 }, (_, t) => (t * 31 + 5) % V); // (97)

/** Reads one probability per step, as a caller would, so no step's output is dead code. */
let sink = 0;

for (const cell of ["rnn", "gru", "lstm"] as CellKind[]) {
  const net = Network.create(
    {
      cell,
      nonlinearity: "tanh",
      input: "embedding",
      vocabSize: V,
      inputSize: I,
      hiddenSize: H,
      layers: 1,
      outputSize: O,
    },
    1234,
  );
  const stepper = new Stepper(net);

  const fastState: FloatArray = stepper.newState(); // (S, 1, H)
  let fastT = 0;
  Deno.bench({ name: `${cell} step (Stepper)`, group: cell }, () => {
    const probs = stepper.step(fastState, TOKENS[fastT]);
    fastT = fastT + 1 === TOKENS.length ? 0 : fastT + 1;
    sink += probs[0];
  });

  const plainState: FloatArray = stepper.newState(); // (S, 1, H)
  let plainT = 0;
  Deno.bench({ name: `${cell} step (plain nested loops)`, group: cell, baseline: true }, () => {
    const probs = naiveStep(net, plainState, TOKENS[plainT]);
    plainT = plainT + 1 === TOKENS.length ? 0 : plainT + 1;
    sink += probs[0];
  });
}

// Both contenders produce probabilities that sum to 1, so the sink stays finite; a NaN here means
// a step went wrong and its timing means nothing.
globalThis.addEventListener("unload", () => {
  if (!Number.isFinite(sink)) throw new Error(`a benchmarked step produced ${sink}`);
});
