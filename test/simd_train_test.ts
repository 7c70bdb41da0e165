// M rows, N columns, K reduced, T steps, B streams, L layers, H hidden, I embedding, V vocabulary.
// The WebAssembly training kernels must compute what the TypeScript kernels compute: the
// committed train.wasm is what train.wat assembles to, the products match matmul.ts, and a
// whole window (forward, cross-entropy, backward, carried state) matches Workspace, on one
// thread or two with bit-identical results.
import assert from "node:assert/strict";
import { assertClose } from "./_close.ts";
import {
  crossEntropy,
  matmulAB,
  matmulABt,
  NO_TARGET,
  outerAccumulate,
  Rng,
} from "../src/math/mod.ts";
import {
  type CellKind,
  Network,
  type NetworkConfig,
  simdTrainKernels,
  simdTrainSupported,
  SimdTrainWorkspace,
  Workspace,
} from "../src/nn/mod.ts";
import type { TrainKernels } from "../src/nn/_simd_shard.ts";
import {
  assembleTarget,
  TRAIN_RELAXED_TARGET,
  TRAIN_TARGET,
  type WasmTarget,
} from "../src/math/simd/build.ts";
import { createOptimizer, TbpttTrainer } from "../src/train/mod.ts";

/** float32 products over K ≤ 300 terms of size ~1: rounding stays well under this. */
const GEMM_TOLERANCE = 2e-5;
/** A window in float32 both ways, summed in different orders. */
const GRAD_ATOL = 1e-6, GRAD_RTOL = 1e-4;
const LOSS_TOLERANCE = 1e-6;
const ACTIVATION_TOLERANCE = 1e-6;

function kernels(
  bytes: number,
  target: WasmTarget = TRAIN_TARGET,
): { k: TrainKernels; f32: Float32Array } {
  const module = new WebAssembly.Module(Deno.readFileSync(target.wasm));
  const pages = Math.ceil(bytes / 65536);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const k = new WebAssembly.Instance(module, { env: { memory } })
    .exports as unknown as TrainKernels;
  return { k, f32: new Float32Array(memory.buffer) };
}

for (const target of [TRAIN_TARGET, TRAIN_RELAXED_TARGET]) {
  const name = target.wasm.pathname.split("/").at(-1);
  Deno.test(`${name} is what train.wat assembles to`, async () => {
    const built = await assembleTarget(target);
    const committed = await Deno.readFile(target.wasm);
    assert.ok(
      built.length === committed.length && built.every((b, k) => b === committed[k]),
      `${name} is stale: run \`deno task build:simd\` and commit the result`,
    );
  });
}

Deno.test("training uses the relaxed-SIMD kernels where V8 accepts them", () => {
  const relaxed = WebAssembly.validate(Deno.readFileSync(TRAIN_RELAXED_TARGET.wasm));
  assert.equal(simdTrainKernels(), relaxed ? "train_relaxed.wasm" : "train.wasm");
});

Deno.test("train.wasm sigmoid and tanh are within 1e-6 of Math's", () => {
  const xs: number[] = [0, -0, 3.4e38, -3.4e38, 1e-30, -1e-30];
  for (let x = -20; x <= 20; x += 1 / 512) xs.push(x);
  for (let x = 1e-8; x < 3e38; x *= 1.05) xs.push(x, -x);
  while (xs.length % 4 !== 0) xs.push(0);
  const n = xs.length;
  const { k, f32 } = kernels(8 * n + 64);
  f32.set(xs, 0);
  for (
    const [name, fn, ref] of [
      ["sigmoid", k.sigmoid, (v: number) => 1 / (1 + Math.exp(-v))],
      ["tanh", k.tanh, Math.tanh],
    ] as const
  ) {
    fn(4 * n, 0, n);
    const want = Array.from(f32.subarray(0, n), ref);
    assertClose(name, f32.subarray(n, 2 * n), want, ACTIVATION_TOLERANCE);
  }
});

for (const target of [TRAIN_TARGET, TRAIN_RELAXED_TARGET]) {
  const name = target.wasm.pathname.split("/").at(-1);
  Deno.test(`${name} gemm matches matmulABt, matmulAB and outerAccumulate, with partial blocks`, () => {
    if (!WebAssembly.validate(Deno.readFileSync(target.wasm))) return; // no relaxed SIMD here
    gemmMatchesTypeScript(target);
  });
}

/** (M, N, K): tails in every dimension, and the shapes of an H = 256 step and head. */
const GEMM_SHAPES = [[1, 1, 1], [3, 5, 7], [4, 8, 16], [17, 12, 33], [32, 768, 256], [5, 90, 64]];

function gemmMatchesTypeScript(target: WasmTarget) {
  const rng = new Rng(7);
  const { k, f32 } = kernels(1 << 22, target);
  const fill = (at: number, len: number) => {
    const v = Float32Array.from({ length: len }, () => rng.uniform() * 2 - 1);
    f32.set(v, at >> 2);
    return v;
  };
  const A = 1024, B = 1 << 20, C = 2 << 20, PACK = 3 << 20, SCRATCH = 64;
  for (const [m, n, kk] of GEMM_SHAPES) {
    const a = fill(A, m * kk); // (M, K)
    const w = fill(B, n * kk); // (N, K)
    // C = A W^T, W packed
    k.pack_t(PACK, B, n, kk);
    const want = new Float32Array(m * n);
    matmulABt(want, a, w, null, m, n, kk, false);
    k.gemm(C, 4 * n, A, 4 * kk, 4, PACK, 32, 32 * kk, m, n, kk, 0, SCRATCH);
    assertClose(
      `A W^T (${m}, ${n}, ${kk})`,
      f32.subarray(C >> 2, (C >> 2) + m * n),
      want,
      GEMM_TOLERANCE,
    );
    // C += A W^T accumulates
    k.gemm(C, 4 * n, A, 4 * kk, 4, PACK, 32, 32 * kk, m, n, kk, 1, SCRATCH);
    assertClose(
      `A W^T twice (${m}, ${n}, ${kk})`,
      f32.subarray(C >> 2, (C >> 2) + m * n),
      want.map((x) => 2 * x),
      2 * GEMM_TOLERANCE,
    );
    // C = A Wn with Wn (K, N) read in place
    const wn = fill(B, kk * n);
    const want2 = new Float32Array(m * n);
    matmulAB(want2, a, wn, m, n, kk);
    k.gemm(C, 4 * n, A, 4 * kk, 4, B, 4 * n, 32, m, n, kk, 0, SCRATCH);
    assertClose(
      `A W (${m}, ${n}, ${kk})`,
      f32.subarray(C >> 2, (C >> 2) + m * n),
      want2,
      GEMM_TOLERANCE,
    );
    // C += A'^T X with A' (K, M) and X (K, N): a weight gradient
    const at = fill(A, kk * m);
    const x = fill(B, kk * n);
    const prior = fill(C, m * n);
    const want3 = Float32Array.from(prior);
    outerAccumulate(want3, at, x, m, n, kk);
    k.gemm(C, 4 * n, A, 4, 4 * m, B, 4 * n, 32, m, n, kk, 1, SCRATCH);
    assertClose(
      `A^T X (${m}, ${n}, ${kk})`,
      f32.subarray(C >> 2, (C >> 2) + m * n),
      want3,
      GEMM_TOLERANCE,
    );
  }
}

function config(cell: CellKind, layers: number, h: number, relu = false): NetworkConfig {
  return {
    cell,
    nonlinearity: relu ? "relu" : "tanh",
    input: "embedding",
    vocabSize: 7,
    inputSize: 5,
    hiddenSize: h,
    layers,
    outputSize: 7,
  };
}

const CASES: [CellKind, number, number, number, boolean][] = [
  // cell, layers, H, B, relu
  ["rnn", 1, 8, 1, false],
  ["rnn", 2, 12, 3, true],
  ["rnn", 2, 12, 5, false],
  ["gru", 1, 4, 2, false],
  ["gru", 2, 12, 3, false],
  ["lstm", 1, 8, 4, false],
  ["lstm", 2, 12, 5, false],
];

for (const [cell, layers, h, b, relu] of CASES) {
  Deno.test(`SimdTrainWorkspace.run() matches Workspace and crossEntropy (${cell}${relu ? " relu" : ""}, L=${layers}, H=${h}, B=${b})`, () => {
    const T = 6;
    const net = Network.create(config(cell, layers, h, relu), 3);
    const rng = new Rng(11);
    const ids = Int32Array.from({ length: T * b }, () => rng.int(7));
    // The first step's targets are re-run tokens, as in TBPTT with k2 > k1.
    const targets = Int32Array.from({ length: T * b }, (_, k) => k < b ? NO_TARGET : rng.int(7));
    const state0 = Float32Array.from({ length: net.stateSize * b }, () => 0.5 * rng.normal());

    const ws = new Workspace(net, T, b);
    ws.forward(ids, state0, T, b);
    const dlogits = new Float32Array(T * b * 7);
    const ce = crossEntropy(ws.logits, targets, T * b, 7, dlogits);
    const grads = new Float32Array(net.params.length);
    ws.backward(dlogits, null, grads, null);

    const simd = new SimdTrainWorkspace(net, T, b);
    const r = simd.run(ids, targets, state0, T);
    assert.equal(r.count, ce.count);
    assert.ok(Math.abs(r.loss - ce.loss) <= LOSS_TOLERANCE, `loss ${r.loss} vs ${ce.loss}`);
    assertClose("grads", simd.grads, grads, GRAD_ATOL, GRAD_RTOL);
    for (const j of [0, 3, T]) {
      const want = new Float32Array(state0.length), got = new Float32Array(state0.length);
      ws.stateAt(j, want);
      simd.stateAt(j, got);
      assertClose(`state after ${j} steps`, got, want, GRAD_ATOL, GRAD_RTOL);
    }
  });
}

Deno.test("SimdTrainWorkspace gives bit-identical gradients on one thread and on two", () => {
  for (const cell of ["rnn", "gru", "lstm"] as const) {
    const T = 5, b = 4;
    const net = Network.create(config(cell, 2, 8), 5);
    const rng = new Rng(2);
    const ids = Int32Array.from({ length: T * b }, () => rng.int(7));
    const targets = Int32Array.from({ length: T * b }, () => rng.int(7));
    const state0 = new Float32Array(net.stateSize * b);
    const one = new SimdTrainWorkspace(net, T, b, { threads: 1 });
    const two = new SimdTrainWorkspace(net, T, b, { threads: 2 });
    try {
      for (let round = 0; round < 2; round++) {
        const a = one.run(ids, targets, state0, T), c = two.run(ids, targets, state0, T);
        assert.equal(a.loss, c.loss);
        assert.ok(
          one.grads.every((g, k) => Object.is(g, two.grads[k])),
          `${cell}: gradients differ`,
        );
      }
    } finally {
      two.close();
    }
  }
});

Deno.test("TbpttTrainer takes the wasm path for float32 networks with H a multiple of 4, else TypeScript", () => {
  const data = Int32Array.from({ length: 100 }, (_, k) => k % 7);
  const trainer = (net: Network) =>
    new TbpttTrainer(
      net,
      data,
      { k1: 4, k2: 4, batch: 2 },
      createOptimizer("sgd", net.params.length, {}),
    );
  assert.equal(trainer(Network.create(config("gru", 1, 8), 1)).simd, true);
  assert.equal(trainer(Network.create(config("gru", 1, 6), 1)).simd, false);
  assert.equal(trainer(Network.create(config("gru", 1, 8), 1, Float64Array)).simd, false);
  assert.equal(simdTrainSupported(Network.create(config("lstm", 2, 16), 1)), true);
});
