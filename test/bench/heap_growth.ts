// V vocabulary, H hidden; batch 1. Shows that the per-token path keeps nothing: steps a million
// tokens (or the count given as the first argument) through Stepper, SimdStepper and
// SimdStepper's batched stepMany, and reports the JavaScript heap before and after, with a full
// garbage collection at both ends, and the bytes allocated meanwhile (V8's running total,
// `total_allocated_bytes` of node:v8's heap statistics), which counts garbage that the
// collections would hide from the heap's growth.
// Run: deno task bench:heap [STEPS]
import { getHeapStatistics } from "node:v8";
import { Network, SimdStepper, Stepper, type StreamStepper } from "../../src/nn/mod.ts";

const STEPS = Number(Deno.args[0] ?? 1_000_000);
const V = 83;
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc (deno task bench:heap)");

/** V8's running total of bytes allocated (Deno's node:v8 reports it; Node's types leave it out). */
function allocatedBytes(): number {
  const total = (getHeapStatistics() as unknown as { total_allocated_bytes?: number })
    .total_allocated_bytes;
  if (typeof total !== "number") throw new Error("this runtime does not report allocated bytes");
  return total;
}

// What reading the counter adds by itself (two reads back to back, smallest of five): the
// floor under the "allocated" columns.
const reads: number[] = [];
for (let k = 0; k < 5; k++) {
  const a = allocatedBytes();
  reads.push(allocatedBytes() - a);
}
const floor = Math.min(...reads);
console.log(
  `Reading V8's allocation counter adds ${floor} B by itself (two reads back to back, smallest ` +
    "of five); per step is the second half's allocation over that floor, per step (it moves " +
    "by a few hundred KB between runs, so values within ±1 B per step are noise).\n",
);
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
    // The probabilities are summed into a typed array: a float returned from a call that is not
    // inlined is boxed, and the harness's allocations are not the stepper's.
    const sink = new Float64Array(1);
    const step = (t: number): void => {
      if (per(t) === 1) sink[0] += stepper.step(state, (t * 31) % V)[0];
      else {
        for (let s = 0; s < 8; s++) tokens[s] = (t * 31 + s) % V;
        sink[0] += stepper.stepMany(states, tokens, 8)[0];
      }
    };
    for (let t = 0; t < 20_000; t += per(t)) step(t); // warm up: the JIT compiles meanwhile
    gc();
    const before = Deno.memoryUsage().heapUsed;
    // Allocation is read at the start, half way and at the end: the first half's includes what
    // V8 itself allocates while it finishes compiling (a fixed amount, whatever the step count);
    // the second half's is what stepping allocates.
    const allocated = [allocatedBytes()];
    const start = performance.now();
    for (let t = 0; t < STEPS / 2; t += per(t)) step(t);
    allocated.push(allocatedBytes());
    for (let t = STEPS / 2; t < STEPS; t += per(t)) step(t);
    allocated.push(allocatedBytes());
    const seconds = (performance.now() - start) / 1000;
    const [first, second] = [allocated[1] - allocated[0], allocated[2] - allocated[1]];
    gc();
    const after = Deno.memoryUsage().heapUsed;
    if (!Number.isFinite(sink[0])) throw new Error("a step produced a non-finite probability");
    rows.push(
      `| ${cell} | ${name} | ${STEPS.toLocaleString("en")} | ${(before / 1024).toFixed(0)} KiB | ` +
        `${(after / 1024).toFixed(0)} KiB | ${after - before} B | ${first} B | ${second} B | ` +
        `${((second - floor) / (STEPS / 2)).toFixed(2)} B | ${(STEPS / seconds).toFixed(0)} |`,
    );
  }
}
console.log(
  "| cell | stepper | steps | heap before | heap after | growth | allocated, first half | " +
    "allocated, second half | per step (second half) | steps/s |",
);
console.log("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const row of rows) console.log(row);
