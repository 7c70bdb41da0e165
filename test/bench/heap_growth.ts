// V vocabulary, H hidden; batch 1. Shows that the per-token path keeps nothing: steps a million
// tokens (or the count given as the first argument) through Stepper, SimdStepper and SimdStepper's
// batched stepMany, and reports
// the JavaScript heap before and after, with a full garbage collection at both ends.
// Run: deno task bench:heap [STEPS]
import { Network, SimdStepper, Stepper, type StreamStepper } from "../../src/nn/mod.ts";

const STEPS = Number(Deno.args[0] ?? 1_000_000);
const V = 83;
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc (deno task bench:heap)");

const rows: string[] = [];
for (const cell of ["rnn", "gru", "lstm"] as const) {
  const net = Network.create({
    cell,
    nonlinearity: "tanh",
    input: "embedding",
    vocabSize: V,
    inputSize: 256,
    hiddenSize: 256,
    layers: 1,
    outputSize: V,
  }, 1);
  // Each variant steps STEPS tokens; stepMany takes eight streams a call (batched serving).
  const simd = new SimdStepper(net);
  const states = Array.from({ length: 8 }, () => simd.newState());
  const tokens = new Int32Array(8);
  const variants: [string, StreamStepper, (t: number) => number][] = [
    ["Stepper", new Stepper(net), () => 1],
    ["SimdStepper", simd, () => 1],
    ["SimdStepper.stepMany (8 streams)", simd, () => 8],
  ];
  for (const [name, stepper, per] of variants) {
    const state = stepper.newState();
    let sink = 0;
    const step = (t: number) => {
      if (per(t) === 1) return stepper.step(state, (t * 31) % V)[0];
      for (let s = 0; s < 8; s++) tokens[s] = (t * 31 + s) % V;
      return stepper.stepMany(states, tokens, 8)[0];
    };
    for (let t = 0; t < 1000; t++) sink += step(t); // warm up the JIT
    gc();
    const before = Deno.memoryUsage().heapUsed;
    const start = performance.now();
    for (let t = 0; t < STEPS; t += per(t)) sink += step(t);
    const seconds = (performance.now() - start) / 1000;
    gc();
    const after = Deno.memoryUsage().heapUsed;
    if (!Number.isFinite(sink)) throw new Error("a step produced a non-finite probability");
    rows.push(
      `| ${cell} | ${name} | ${STEPS.toLocaleString("en")} | ${(before / 1024).toFixed(0)} KiB | ` +
        `${(after / 1024).toFixed(0)} KiB | ${after - before} B | ${
          (STEPS / seconds).toFixed(0)
        } |`,
    );
  }
}
console.log("| cell | stepper | steps | heap before | heap after | growth | steps/s |");
console.log("|---|---|---:|---:|---:|---:|---:|");
for (const row of rows) console.log(row);
