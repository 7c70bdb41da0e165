// V vocabulary, I embedding width, H hidden, O outputs; batch 1, one layer.
// Per-token latency of one streaming step at the size of a small character model
// (V = O = 83, I = H = 256), one group per cell, three contenders measured side by side:
// the plain nested-loop baseline, Stepper (TypeScript) and SimdStepper (WebAssembly SIMD).
// Each reads its probabilities back, as a caller would.
import type { FloatArray } from "../../src/math/mod.ts";
import {
  type CellKind,
  Network,
  SimdStepper,
  Stepper,
  type StreamStepper,
} from "../../src/nn/mod.ts";
import { naiveStep } from "./_naive_step.ts";

const V = 83, I = 256, H = 256, O = 83;

// A fixed cycle of token ids, so every contender sees the same inputs in the same order.
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
  const plain: StreamStepper["step"] = (state, token) => naiveStep(net, state, token as number);
  const contenders: { name: string; step: StreamStepper["step"]; state: FloatArray }[] = [
    { name: "plain nested loops", step: plain, state: new Float32Array(net.stateSize) },
  ];
  for (
    const [name, stepper] of [["Stepper", new Stepper(net)], [
      "SimdStepper",
      new SimdStepper(net),
    ]] as const
  ) {
    contenders.push({ name, step: (s, x) => stepper.step(s, x), state: stepper.newState() });
  }
  for (const { name, step, state } of contenders) {
    let t = 0;
    Deno.bench({
      name: `${cell} step (${name})`,
      group: cell,
      baseline: name === "plain nested loops",
    }, () => {
      const probs = step(state, TOKENS[t]);
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
