// V vocabulary, I embedding width, H hidden, O outputs; batch 1, one layer.
// Per-token latency of one streaming step at the size of a small character model
// (V = O = 83, I = H = 256), one group per cell, four contenders measured side by side:
// the plain nested-loop baseline, Stepper (TypeScript), SimdStepper (WebAssembly SIMD) and,
// as the peer, onnxruntime-node running the same weights exported as ONNX (skipped, with a
// message, when it cannot load). Each reads its probabilities back, as a caller would.
import type { FloatArray } from "../../src/math/mod.ts";
import { SimdStepper, Stepper, type StreamStepper } from "../../src/nn/mod.ts";
import { naiveStep } from "./_naive_step.ts";
import { loadOrt, openCheckedPeer } from "./_ort_peer.ts";
import { CELLS, O, stepNetwork, TOKENS } from "./_step_setup.ts";

/**
 * onnxruntime's intra-op threads here: one was faster than its default (a thread per core) in
 * most runs on the 2-core build machine (12 of 15 cell-by-cell comparisons, under load from other
 * work); `deno task bench:step` measures both.
 */
const ORT_THREADS = 1;

const ort = await loadOrt();
if (!ort.ok) console.log(`onnxruntime-node skipped: it did not load (${ort.reason})`);

/** Reads one probability per step, so no step's output is dead code. */
let sink = 0;

for (const cell of CELLS) {
  const net = stepNetwork(cell);
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
  if (ort.ok) {
    // Throws, failing the run, if the peer does not compute what Stepper computes.
    const peer = await openCheckedPeer(ort.ort, net, TOKENS, { intraOpNumThreads: ORT_THREADS });
    let t = 0;
    Deno.bench({ name: `${cell} step (onnxruntime-node)`, group: cell }, async () => {
      const probs = await peer.step(TOKENS[t]);
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
