// V vocabulary, I embedding width, H hidden, O outputs; batch 1, one layer.
// Per-token latency of SimdStepper.step() (WebAssembly SIMD) against Stepper.step() (the
// TypeScript baseline), one group per cell, at the size of a small character model:
// V = O = 83, I = H = 256. Both read their probabilities back, as a caller would.
import type { FloatArray } from "../../src/math/mod.ts";
import { SimdStepper } from "../../src/nn/simd_stepper.ts";
import { type CellKind, Network, Stepper } from "../../src/nn/mod.ts";

const V = 83, I = 256, H = 256, O = 83;

// A fixed cycle of token ids, so both contenders see the same inputs in the same order.
const TOKENS = Int32Array.from({ length: 97 }, (_, t) => (t * 31 + 5) % V); // (97)

/** Reads one probability per step, so no step's output is dead code. */
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
  const contenders = [
    { name: "Stepper", stepper: new Stepper(net), baseline: true },
    { name: "SimdStepper", stepper: new SimdStepper(net), baseline: false },
  ];
  for (const { name, stepper, baseline } of contenders) {
    const state: FloatArray = stepper.newState(); // (S, 1, H)
    let t = 0;
    Deno.bench({ name: `${cell} step (${name})`, group: cell, baseline }, () => {
      const probs = stepper.step(state, TOKENS[t]);
      t = t + 1 === TOKENS.length ? 0 : t + 1;
      sink += probs[t % O];
    });
  }
}

// Probabilities sum to 1, so the sink stays finite; a NaN means a step went wrong and its timing
// means nothing.
globalThis.addEventListener("unload", () => {
  if (!Number.isFinite(sink)) throw new Error(`a benchmarked step produced ${sink}`);
});
