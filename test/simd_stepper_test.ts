// L layers, H hidden, I embedding width, V vocabulary, O outputs, M rows, K columns.
// The WebAssembly SIMD step must compute what Stepper computes (and what PyTorch recorded), and
// the committed step.wasm must be what step.wat assembles to.
import assert from "node:assert/strict";
import { maxAbsDiff } from "./_close.ts";
import type { FloatArray, Nonlinearity } from "../src/math/mod.ts";
import { matvec, topKInto } from "../src/math/mod.ts";
import { type CellKind, Network, Stepper } from "../src/nn/mod.ts";
import { instantiateKernels, simdAvailable, SimdStepper } from "../src/nn/simd_stepper.ts";
import { readModelFile } from "../src/format/mod.ts";
import { assemble, WASM_URL, WAT_URL } from "../src/math/simd/build.ts";
import type { Golden } from "./_golden.ts";

const STEPS = 200;
const TOLERANCE = 1e-5;
const ACTIVATION_TOLERANCE = 1e-6;

/** An embedding network of the given shape (nonlinearity tanh unless given). */
function embeddingNet(
  cell: CellKind,
  shape: { v: number; i: number; h: number; layers: number; o: number },
  seed: number,
  nonlinearity: Nonlinearity = "tanh",
): Network {
  const { v, i, h, layers, o } = shape;
  return Network.create({
    cell,
    nonlinearity,
    input: "embedding",
    vocabSize: v,
    inputSize: i,
    hiddenSize: h,
    layers,
    outputSize: o,
  }, seed);
}

Deno.test("simdAvailable() is true on Deno", () => {
  assert.equal(simdAvailable(), true);
});

Deno.test("step.wasm is what step.wat assembles to", async () => {
  const built = await assemble(await Deno.readTextFile(WAT_URL));
  const committed = await Deno.readFile(WASM_URL);
  assert.ok(
    built.length === committed.length && built.every((b, k) => b === committed[k]),
    "step.wasm is stale: run `deno run -A src/math/simd/build.ts` and commit the result",
  );
});

Deno.test("wasm sigmoid and tanh are within 1e-6 of Math's over the f32 range", () => {
  // Dense over where the functions bend, then geometric out to the largest floats, both signs,
  // plus the infinities.
  const xs: number[] = [0, -0, Infinity, -Infinity, 3.4e38, -3.4e38, 1e-30, -1e-30];
  for (let x = -20; x <= 20; x += 1 / 1024) xs.push(x);
  for (let x = 1e-8; x < 3e38; x *= 1.01) xs.push(x, -x);
  const n = xs.length;
  const { kernels, memory } = instantiateKernels(8 * n + 64);
  const f = new Float32Array(memory.buffer);
  const x32 = f.subarray(0, n);
  x32.set(xs);
  const y = f.subarray(n, 2 * n);
  for (
    const [name, fn, ref] of [
      ["sigmoid", kernels.sigmoid, (v: number) => 1 / (1 + Math.exp(-v))],
      ["tanh", kernels.tanh, Math.tanh],
    ] as const
  ) {
    fn(4 * n, 0, n);
    let worst = 0, worstX = 0;
    for (let j = 0; j < n; j++) {
      const d = Math.abs(y[j] - ref(x32[j]));
      if (!(d <= worst)) worst = d, worstX = x32[j];
    }
    console.log(`${name}: largest difference ${worst} at x = ${worstX} over ${n} points`);
    assert.ok(worst <= ACTIVATION_TOLERANCE, `${name}(${worstX}) is off by ${worst}`);
  }
});

Deno.test("wasm matvec and matvec_packed match matvec() when M and K are off multiples of 4 and 16", () => {
  let worst = 0;
  for (const [m, k] of [[1, 1], [3, 5], [4, 4], [7, 9], [16, 16], [17, 33], [83, 256], [40, 3]]) {
    const w = Float32Array.from({ length: m * k }, (_, j) => Math.sin(j * 0.37) * 0.5); // (M, K)
    const x = Float32Array.from({ length: k }, (_, j) => Math.cos(j * 0.11)); // (K)
    const b = Float32Array.from({ length: m }, (_, j) => j * 0.01 - 0.1); // (M)
    const ref = new Float32Array(m); // (M)
    matvec(ref, w, x, 0, b, m, k);
    const mp = Math.ceil(m / 16) * 16;
    // x | b (padded) | w | packed w | y (padded), 16-byte aligned
    const xAt = 0, bAt = xAt + Math.ceil(k / 4) * 16, wAt = bAt + mp * 4;
    const pAt = wAt + Math.ceil((m * k) / 4) * 16, yAt = pAt + mp * k * 4;
    const { kernels, memory } = instantiateKernels(yAt + mp * 4);
    const f = new Float32Array(memory.buffer);
    f.set(x, xAt / 4), f.set(b, bAt / 4), f.set(w, wAt / 4);
    kernels.matvec(yAt, wAt, xAt, bAt, m, k);
    const d1 = maxAbsDiff(f.subarray(yAt / 4, yAt / 4 + m), ref);
    f.fill(0, yAt / 4);
    kernels.pack(pAt, wAt, m, k);
    kernels.matvec_packed(yAt, pAt, xAt, bAt, m, k);
    const d2 = maxAbsDiff(f.subarray(yAt / 4, yAt / 4 + m), ref);
    assert.ok(d1 < 1e-5 && d2 < 1e-5, `M=${m} K=${k}: matvec off by ${d1}, packed by ${d2}`);
    worst = Math.max(worst, d1, d2);
  }
  console.log(`largest difference ${worst}`);
});

const cases: [CellKind, Nonlinearity][] = [
  ["rnn", "tanh"],
  ["rnn", "relu"],
  ["gru", "tanh"],
  ["lstm", "tanh"],
];

for (const [cell, nonlinearity] of cases) {
  for (const layers of [1, 2]) {
    for (const H of [9, 32]) {
      const name = cell === "rnn" ? `rnn ${nonlinearity}` : cell;
      Deno.test(`SimdStepper matches Stepper for ${name}, ${layers} layer(s), H=${H}`, () => {
        const V = 23, I = 6, O = 19;
        const net = embeddingNet(
          cell,
          { v: V, i: I, h: H, layers, o: O },
          31 + layers + H,
          nonlinearity,
        );
        const ts = new Stepper(net), wasm = new SimdStepper(net);
        const a = ts.newState(), b = wasm.newState(); // (S, L, H)
        let worstProbs = 0, worstState = 0, worstLogits = 0;
        for (let t = 0; t < STEPS; t++) {
          const token = (t * 7 + 3) % V;
          const pa = ts.step(a, token), pb = wasm.step(b, token);
          worstProbs = Math.max(worstProbs, maxAbsDiff(pa, pb));
          worstState = Math.max(worstState, maxAbsDiff(a, b));
          worstLogits = Math.max(worstLogits, maxAbsDiff(ts.logits, wasm.logits));
        }
        const ra = ts.readout(a), rb = wasm.readout(b);
        worstProbs = Math.max(worstProbs, maxAbsDiff(ra, rb));
        console.log(
          `largest difference over ${STEPS} steps: probabilities ${worstProbs}, ` +
            `state ${worstState}, logits ${worstLogits}`,
        );
        assert.ok(
          worstProbs < TOLERANCE && worstState < TOLERANCE,
          `probabilities ${worstProbs}, state ${worstState} (tolerance ${TOLERANCE})`,
        );
      });
    }
  }
}

Deno.test("SimdStepper matches Stepper on dense input (gru, 2 layers, H=13)", () => {
  const I = 5;
  const net = Network.create(
    {
      cell: "gru",
      nonlinearity: "tanh",
      input: "dense",
      vocabSize: 0,
      inputSize: I,
      hiddenSize: 13,
      layers: 2,
      outputSize: 4,
    },
    5,
  );
  const ts = new Stepper(net), wasm = new SimdStepper(net);
  const a = ts.newState(), b = wasm.newState();
  const x = new Float32Array(I); // (I)
  let worst = 0;
  for (let t = 0; t < STEPS; t++) {
    for (let j = 0; j < I; j++) x[j] = Math.sin(t * 0.3 + j);
    worst = Math.max(worst, maxAbsDiff(ts.step(a, x), wasm.step(b, x)), maxAbsDiff(a, b));
  }
  console.log(`largest difference over ${STEPS} steps: ${worst}`);
  assert.ok(worst < TOLERANCE, `largest difference ${worst}`);
});

Deno.test("SimdStepper refuses what Stepper refuses", () => {
  const net = embeddingNet("lstm", { v: 5, i: 3, h: 4, layers: 1, o: 5 }, 1);
  const wasm = new SimdStepper(net);
  const state = wasm.newState();
  assert.throws(() => wasm.step(state, 5), RangeError);
  assert.throws(() => wasm.step(state, 1.5), RangeError);
  assert.throws(() => wasm.step(new Float32Array(3), 1), RangeError);
  assert.throws(() => wasm.step(state, new Float32Array(3)), TypeError);
  const f64 = Network.create(net.config, 1, Float64Array);
  assert.throws(() => new SimdStepper(f64), TypeError);
});

Deno.test("SimdStepper gives PyTorch's per-step probabilities for lstm_l2_h32", async () => {
  const dir = new URL("../fixtures/golden/", import.meta.url);
  const golden: Golden = JSON.parse(await Deno.readTextFile(new URL("lstm_l2_h32.json", dir)));
  const { network } = await readModelFile(new URL("lstm_l2_h32.safetensors", dir).pathname);
  const wasm = new SimdStepper(network);
  const state: FloatArray = wasm.newState();
  const { hiddenSize: h, layers, outputSize: o } = network.config;
  const p = golden.predict;
  const ids = p.ids!;
  let worstProbs = 0, worstState = 0;
  for (let s = 0; s < ids.length; s++) {
    const probs = wasm.step(state, ids[s]);
    worstProbs = Math.max(worstProbs, maxAbsDiff(probs, p.probs.slice(s * o, (s + 1) * o)));
    worstState = Math.max(
      worstState,
      maxAbsDiff(
        state.subarray(0, layers * h),
        p.hidden.slice(s * layers * h, (s + 1) * layers * h),
      ),
      maxAbsDiff(state.subarray(layers * h), p.cell!.slice(s * layers * h, (s + 1) * layers * h)),
    );
  }
  console.log(
    `largest difference over ${ids.length} steps: probabilities ${worstProbs}, state ${worstState}`,
  );
  assert.ok(
    worstProbs < TOLERANCE && worstState < TOLERANCE,
    `probabilities ${worstProbs}, state ${worstState} (tolerance ${TOLERANCE})`,
  );
});

Deno.test("stepMany gives every stream the same bits as stepping it alone", async (t) => {
  for (const cell of ["rnn", "gru", "lstm"] as const) {
    for (const layers of [1, 2]) {
      await t.step(`${cell}, ${layers} layer(s)`, () => {
        // H = 21: off a multiple of 4 and 16
        const net = embeddingNet(cell, { v: 11, i: 6, h: 21, layers, o: 11 }, 3);
        for (const make of [() => new SimdStepper(net), () => new Stepper(net)]) {
          const stepper = make(), alone = make();
          for (const n of [1, 2, 3, 5, stepper.maxBatch]) {
            const states = Array.from({ length: n }, () => stepper.newState());
            const copies = Array.from({ length: n }, () => alone.newState());
            for (let round = 0; round < 4; round++) {
              const tokens = Array.from({ length: n }, (_, s) => (s * 7 + round * 3) % 11);
              const many = stepper.stepMany(states, tokens, n);
              for (let s = 0; s < n; s++) {
                const probs = alone.step(copies[s], tokens[s]);
                const at = s * stepper.probsStride;
                assert.deepEqual(many.slice(at, at + 11), probs.slice(), `stream ${s} of ${n}`);
                assert.deepEqual(states[s], copies[s], `state of stream ${s} of ${n}`);
              }
            }
          }
          assert.throws(() => stepper.stepMany([], [], stepper.maxBatch + 1), RangeError);
          assert.throws(() => stepper.stepMany([stepper.newState()], [11], 1), RangeError);
        }
      });
    }
  }
});

Deno.test("SimdStepper.topK (WebAssembly) lists what topKInto lists: ties, ±0, NaN, -∞, every k and length", () => {
  const o = 23;
  const net = embeddingNet("rnn", { v: 5, i: 3, h: 4, layers: 1, o }, 3);
  const simd = new SimdStepper(net);
  const probs = simd.step(simd.newState(), 1); // a view of the stepper's memory
  let seed = 11;
  const next = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const odd = [NaN, -Infinity, -0, 0, Infinity];
  for (let trial = 0; trial < 500; trial++) {
    // few distinct values, so that ties are common; now and then an odd one
    for (let j = 0; j < o; j++) {
      probs[j] = trial % 10 === 3 && j % 7 === 2
        ? odd[(trial / 10 + j) % odd.length | 0]
        : Math.floor(next() * 6) / 8;
    }
    for (const k of [0, 1, 2, 5, 9, o, o + 4]) {
      const at = trial % 3, length = o - at - (trial % 5);
      const want = new Int32Array(k), got = new Int32Array(k);
      const n = topKInto(want, probs, at, length);
      assert.equal(simd.topK(got, probs, at, length), n, `trial ${trial}, k ${k}`);
      assert.deepEqual([...got.subarray(0, n)], [...want.subarray(0, n)], `trial ${trial}, k ${k}`);
    }
  }
});
