// V vocabulary, I embedding width, H hidden, O outputs; batch 1, one layer.
// The step benchmark's contenders side by side in one process: plain nested loops, Stepper,
// SimdStepper and onnxruntime-node (with its default intra-op threads, and with one), in
// interleaved rounds (each round runs every contender once, in a rotated order, so load that
// comes and goes on the machine falls on all of them). Prints the median µs per token of each
// and a markdown table of the ratios.
// Run: deno task bench:step [--rounds 7] [--ms 100]
import { parseArgs } from "node:util";
import { SimdStepper, Stepper } from "../../src/nn/mod.ts";
import { naiveStep } from "./_naive_step.ts";
import { loadOrt, openCheckedPeer, type OrtStepper } from "./_ort_peer.ts";
import { CELLS, O, stepNetwork, TOKENS } from "./_step_setup.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "7" },
    ms: { type: "string", default: "100" },
  },
});
const ROUNDS = Number(values.rounds);
const ROUND_MS = Number(values.ms);
if (!(Number.isInteger(ROUNDS) && ROUNDS >= 1)) {
  throw new RangeError(`--rounds must be a whole number ≥ 1, not ${values.rounds}`);
}
if (!(ROUND_MS > 0)) throw new RangeError(`--ms must be a positive number, not ${values.ms}`);

/** A contender steps `n` tokens, reading one probability of each. */
interface Contender {
  name: string;
  run(n: number): void | Promise<void>;
}

const ORT_DEFAULT = "onnxruntime-node (default threads)";
const ORT_ONE = "onnxruntime-node (1 thread)";

let sink = 0;
let t = 0; // position in TOKENS, shared: every contender sees the same cycle
const next = () => (t = t + 1 === TOKENS.length ? 0 : t + 1);

/** µs per token of one timed run of `n` steps. */
async function time(c: Contender, n: number): Promise<number> {
  const start = performance.now();
  await c.run(n);
  return (performance.now() - start) * 1000 / n;
}

/** Steps that take about `ms` milliseconds, from a warm-up run of at least 30 ms. */
async function calibrate(c: Contender, ms: number): Promise<number> {
  let n = 8, elapsed = 0;
  while (elapsed < 30) {
    n *= 2;
    const start = performance.now();
    await c.run(n);
    elapsed = performance.now() - start;
  }
  return Math.max(10, Math.round(n * ms / elapsed));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const ort = await loadOrt();
if (!ort.ok) console.log(`onnxruntime-node skipped: it did not load (${ort.reason})`);

const results = new Map<string, Map<string, number>>(); // cell -> contender -> median µs/token
const peers: OrtStepper[] = [];
for (const cell of CELLS) {
  const net = stepNetwork(cell);
  const stepper = new Stepper(net), simd = new SimdStepper(net);
  const plainState = new Float32Array(net.stateSize);
  const stepperState = stepper.newState(), simdState = simd.newState();
  const contenders: Contender[] = [
    {
      name: "plain",
      run(n) {
        for (let k = 0; k < n; k++) sink += naiveStep(net, plainState, TOKENS[next()])[k % O];
      },
    },
    {
      name: "Stepper",
      run(n) {
        for (let k = 0; k < n; k++) sink += stepper.step(stepperState, TOKENS[next()])[k % O];
      },
    },
    {
      name: "SimdStepper",
      run(n) {
        for (let k = 0; k < n; k++) sink += simd.step(simdState, TOKENS[next()])[k % O];
      },
    },
  ];
  if (ort.ok) {
    for (const [name, threads] of [[ORT_DEFAULT, undefined], [ORT_ONE, 1]] as const) {
      const peer = await openCheckedPeer(ort.ort, net, TOKENS, { intraOpNumThreads: threads });
      peers.push(peer);
      contenders.push({
        name,
        async run(n) {
          for (let k = 0; k < n; k++) sink += (await peer.step(TOKENS[next()]))[k % O];
        },
      });
    }
  }
  const steps = new Map<Contender, number>();
  for (const c of contenders) steps.set(c, await calibrate(c, ROUND_MS));
  const samples = new Map<Contender, number[]>(contenders.map((c) => [c, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < contenders.length; k++) {
      const c = contenders[(k + r) % contenders.length];
      samples.get(c)!.push(await time(c, steps.get(c)!));
    }
  }
  results.set(cell, new Map(contenders.map((c) => [c.name, median(samples.get(c)!)])));
  console.log(
    `${cell}: ${
      contenders.map((c) => `${c.name} ${results.get(cell)!.get(c.name)!.toFixed(1)} µs`).join(", ")
    }`,
  );
}
for (const peer of peers) await peer.release();
if (!Number.isFinite(sink)) throw new Error(`a timed step produced ${sink}`);

const us = (x: number | undefined) => x === undefined ? "—" : x.toFixed(1);
const ratio = (x: number | undefined) => x === undefined ? "—" : `${x.toFixed(2)}×`;
console.log(
  `\nMedian of ${ROUNDS} interleaved rounds of about ${ROUND_MS} ms per contender; µs per token ` +
    `(batch 1: token → Embedding(83, 256) → cell, H = 256 → Linear(256, 83) → softmax, ` +
    `probabilities read back). Bold: the faster onnxruntime setting, which the ratio uses.\n`,
);
console.log(
  "| cell | plain (µs) | Stepper (µs) | SimdStepper (µs) | ORT, default threads (µs) " +
    "| ORT, 1 thread (µs) | SimdStepper vs ORT | SimdStepper vs plain |",
);
console.log("| ---- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const [cell, r] of results) {
  const simd = r.get("SimdStepper")!;
  const ortDefault = r.get(ORT_DEFAULT), ortOne = r.get(ORT_ONE);
  const best = ortDefault === undefined || ortOne === undefined
    ? undefined
    : Math.min(ortDefault, ortOne);
  const mark = (x: number | undefined) => x !== undefined && x === best ? `**${us(x)}**` : us(x);
  console.log(
    `| ${cell.toUpperCase()} | ${us(r.get("plain"))} | ${us(r.get("Stepper"))} | ${us(simd)} ` +
      `| ${mark(ortDefault)} | ${mark(ortOne)} | ${
        ratio(best === undefined ? undefined : best / simd)
      } ` +
      `| ${ratio(r.get("plain")! / simd)} |`,
  );
}
