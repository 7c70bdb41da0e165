// M, N, K matrix sizes (output rows, output columns, reduced); C classes; N rows of logits.
// Unit tests for src/math/: every kernel against a plain reference loop, activations and the
// cross-entropy gradient against central finite differences, and the seeded generator.
import assert from "node:assert/strict";
import {
  activateInPlace,
  crossEntropy,
  type FloatArray,
  logSoftmax,
  matmulAB,
  matmulABt,
  matvec,
  NO_TARGET,
  outerAccumulate,
  relu,
  reluGrad,
  Rng,
  sigmoid,
  sigmoidGrad,
  sigmoidInPlace,
  softmaxRow,
  sumRowsAccumulate,
  tanhGrad,
  tanhInPlace,
} from "../src/math/mod.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

/** Shapes [M, N, K] covering size-1 dimensions, K below, at and past multiples of 4. */
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 1, 4],
  [1, 7, 1],
  [6, 1, 3],
  [2, 3, 5],
  [3, 2, 8],
  [4, 5, 11],
  [5, 4, 13],
  [7, 9, 37],
];

/** SHAPES plus a few drawn at random (seeded, so failures reproduce). */
function shapes(seed: number): [number, number, number][] {
  const rng = new Rng(seed);
  const drawn: [number, number, number][] = [];
  for (let i = 0; i < 6; i++) drawn.push([1 + rng.int(8), 1 + rng.int(8), 1 + rng.int(23)]);
  return [...SHAPES, ...drawn];
}

/** A Float64Array of uniform values in [-1, 1), with about one in eight exactly zero. */
function rand(rng: Rng, n: number): Float64Array {
  return Float64Array.from({ length: n }, () => (rng.int(8) === 0 ? 0 : 2 * rng.uniform() - 1));
}

/**
 * Asserts |actual - expected| ≤ tol · max(1, |expected|) everywhere, printing the worst entry.
 */
function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
  what: string,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = { err: 0, index: -1 };
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) / Math.max(1, Math.abs(expected[i]));
    // NaN fails this comparison, so it is always reported.
    if (!(err <= worst.err)) worst = { err, index: i };
  }
  assert.ok(
    worst.err <= tol,
    `${what}: largest difference ${worst.err} at ${worst.index} ` +
      `(got ${actual[worst.index]}, expected ${expected[worst.index]}), tolerance ${tol}`,
  );
}

/** Float64 inputs are summed in a different order than the reference: only rounding differs. */
const TOL64 = 1e-12;
/** Float32 outputs are rounded on every store; a few ulps of float32 over these sizes. */
const TOL32 = 1e-5;

// ---------------------------------------------------------------------------------------------
// Reference loops: the definitions, written as plainly as possible.

function refMatvec(
  w: FloatArray,
  x: FloatArray,
  xOff: number,
  b: FloatArray | null,
  m: number,
  k: number,
) {
  const y = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    let s = b === null ? 0 : b[i];
    for (let j = 0; j < k; j++) s += w[i * k + j] * x[xOff + j];
    y[i] = s;
  }
  return y;
}

/** Y[r, i] = Σ_j X[r, j] W[i, j] + b[i] */
function refABt(
  x: FloatArray,
  w: FloatArray,
  b: FloatArray | null,
  m: number,
  n: number,
  k: number,
) {
  const y = new Float64Array(m * n);
  for (let r = 0; r < m; r++) {
    for (let i = 0; i < n; i++) {
      let s = b === null ? 0 : b[i];
      for (let j = 0; j < k; j++) s += x[r * k + j] * w[i * k + j];
      y[r * n + i] = s;
    }
  }
  return y;
}

/** Y[r, i] = Σ_j A[r, j] B[j, i] */
function refAB(a: FloatArray, bm: FloatArray, m: number, n: number, k: number) {
  const y = new Float64Array(m * n);
  for (let r = 0; r < m; r++) {
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < k; j++) s += a[r * k + j] * bm[j * n + i];
      y[r * n + i] = s;
    }
  }
  return y;
}

/** Y[i, j] = Σ_r A[r, i] B[r, j] */
function refAtB(a: FloatArray, bm: FloatArray, m: number, n: number, k: number) {
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let r = 0; r < k; r++) s += a[r * m + i] * bm[r * n + j];
      y[i * n + j] = s;
    }
  }
  return y;
}

function plus(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: a.length }, (_, i) => a[i] + b[i]);
}

// ---------------------------------------------------------------------------------------------
// Kernels

Deno.test("matvec() agrees with a plain double loop", async (t) => {
  const rng = new Rng(1);
  for (const [m, , k] of shapes(11)) {
    await t.step(`M=${m} K=${k}`, () => {
      const w = rand(rng, m * k); // (M, K)
      const b = rand(rng, m); // (M)
      // The input sits at an offset inside a larger buffer whose other entries are NaN, so a
      // read outside [xOff, xOff + K) poisons the result.
      const xOff = 1 + rng.int(5);
      const x = new Float64Array(xOff + k + 3).fill(NaN);
      x.set(rand(rng, k), xOff);
      for (const bias of [null, b]) {
        const y = new Float64Array(m).fill(123); // overwritten, not accumulated into
        matvec(y, w, x, xOff, bias, m, k);
        assertClose(y, refMatvec(w, x, xOff, bias, m, k), TOL64, `bias ${bias !== null}`);
      }
    });
  }
  await t.step("float32 buffers, rounded once on store", () => {
    const [m, k] = [9, 23];
    const w = Float32Array.from(rand(rng, m * k));
    const x = Float32Array.from(rand(rng, k + 2));
    const b = Float32Array.from(rand(rng, m));
    const y = new Float32Array(m);
    matvec(y, w, x, 2, b, m, k);
    assertClose(y, refMatvec(w, x, 2, b, m, k), TOL32, "float32");
  });
});

Deno.test("matmulABt() agrees with a plain triple loop, with and without bias and accumulate", async (t) => {
  const rng = new Rng(2);
  for (const [m, n, k] of shapes(12)) {
    await t.step(`M=${m} N=${n} K=${k}`, () => {
      const x = rand(rng, m * k); // (M, K)
      const w = rand(rng, n * k); // (N, K)
      const b = rand(rng, n); // (N)
      const y0 = rand(rng, m * n); // (M, N)
      for (const bias of [null, b]) {
        const expected = refABt(x, w, bias, m, n, k);
        const over = new Float64Array(m * n).fill(123);
        matmulABt(over, x, w, bias, m, n, k, false);
        assertClose(over, expected, TOL64, `overwrite, bias ${bias !== null}`);
        const acc = y0.slice();
        matmulABt(acc, x, w, bias, m, n, k, true);
        assertClose(acc, plus(y0, expected), TOL64, `accumulate, bias ${bias !== null}`);
      }
    });
  }
  await t.step("float32 buffers", () => {
    const [m, n, k] = [5, 6, 19];
    const x = Float32Array.from(rand(rng, m * k));
    const w = Float32Array.from(rand(rng, n * k));
    const b = Float32Array.from(rand(rng, n));
    const y = new Float32Array(m * n);
    matmulABt(y, x, w, b, m, n, k, false);
    assertClose(y, refABt(x, w, b, m, n, k), TOL32, "float32");
  });
});

Deno.test("matmulAB() accumulates A·B as a plain triple loop does", async (t) => {
  const rng = new Rng(3);
  for (const [m, n, k] of shapes(13)) {
    await t.step(`M=${m} N=${n} K=${k}`, () => {
      const a = rand(rng, m * k); // (M, K)
      const bm = rand(rng, k * n); // (K, N)
      const y0 = rand(rng, m * n); // (M, N)
      const y = y0.slice();
      matmulAB(y, a, bm, m, n, k);
      assertClose(y, plus(y0, refAB(a, bm, m, n, k)), TOL64, "Y += A B");
    });
  }
  await t.step("float32 buffers", () => {
    const [m, n, k] = [4, 7, 21];
    const a = Float32Array.from(rand(rng, m * k));
    const bm = Float32Array.from(rand(rng, k * n));
    const y = new Float32Array(m * n);
    matmulAB(y, a, bm, m, n, k);
    assertClose(y, refAB(a, bm, m, n, k), TOL32, "float32");
  });
});

Deno.test("outerAccumulate() adds Aᵀ·B as a sum of outer products", async (t) => {
  const rng = new Rng(4);
  for (const [m, n, k] of shapes(14)) {
    await t.step(`M=${m} N=${n} K=${k}`, () => {
      const a = rand(rng, k * m); // (K, M)
      const bm = rand(rng, k * n); // (K, N)
      const y0 = rand(rng, m * n); // (M, N)
      const y = y0.slice();
      outerAccumulate(y, a, bm, m, n, k);
      assertClose(y, plus(y0, refAtB(a, bm, m, n, k)), TOL64, "Y += Aᵀ B");
    });
  }
  await t.step("float32 buffers", () => {
    const [m, n, k] = [6, 5, 17];
    const a = Float32Array.from(rand(rng, k * m));
    const bm = Float32Array.from(rand(rng, k * n));
    const y = new Float32Array(m * n);
    outerAccumulate(y, a, bm, m, n, k);
    assertClose(y, refAtB(a, bm, m, n, k), TOL32, "float32");
  });
});

Deno.test("sumRowsAccumulate() adds the column sums", async (t) => {
  const rng = new Rng(5);
  for (const [m, n] of shapes(15)) {
    await t.step(`M=${m} N=${n}`, () => {
      const a = rand(rng, m * n); // (M, N)
      const y0 = rand(rng, n); // (N)
      const expected = y0.slice();
      for (let r = 0; r < m; r++) for (let j = 0; j < n; j++) expected[j] += a[r * n + j];
      const y = y0.slice();
      sumRowsAccumulate(y, a, m, n);
      assertClose(y, expected, TOL64, "y += Σ rows");
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Activations

/** Central difference of f at x. */
function numericGrad(f: (x: number) => number, x: number, h = 1e-5): number {
  return (f(x + h) - f(x - h)) / (2 * h);
}

/** Points in [-6, 6] plus a few near 0, where the curvature of sigmoid and tanh is largest. */
const POINTS = [-6, -3.7, -2, -1.1, -0.5, -0.13, 0, 0.07, 0.3, 0.9, 1.6, 2.5, 4.2, 6];

Deno.test("sigmoidGrad() of sigmoid's output matches central finite differences", () => {
  const got = POINTS.map((x) => sigmoidGrad(sigmoid(x)));
  const want = POINTS.map((x) => numericGrad(sigmoid, x));
  assertClose(got, want, 1e-8, "sigmoid'");
  assert.equal(sigmoid(0), 0.5);
  assert.equal(sigmoid(-1000), 0); // no NaN from exp overflow
  assert.equal(sigmoid(1000), 1);
});

Deno.test("tanhGrad() of tanh's output matches central finite differences", () => {
  const got = POINTS.map((x) => tanhGrad(Math.tanh(x)));
  const want = POINTS.map((x) => numericGrad(Math.tanh, x));
  assertClose(got, want, 1e-8, "tanh'");
});

Deno.test("reluGrad() of relu's output matches finite differences away from 0, and is 0 at 0", () => {
  const away = POINTS.filter((x) => Math.abs(x) > 0.01);
  const got = away.map((x) => reluGrad(relu(x)));
  const want = away.map((x) => numericGrad(relu, x));
  assertClose(got, want, 1e-8, "relu'");
  assert.deepEqual(
    [-2, -0.5, 0, 0.5, 2].map(relu),
    [0, 0, 0, 0.5, 2],
  );
  assert.equal(reluGrad(0), 0, "PyTorch takes the derivative at the kink as 0");
});

Deno.test("the in-place activations transform exactly the range [from, from + n)", async (t) => {
  const input = [-2, -0.5, 0, 0.25, 1, 3, -4];
  const from = 2, n = 4; // entries 2..5
  const expectRange = (f: (x: number) => number) =>
    input.map((x, i) => (i >= from && i < from + n ? f(x) : x));
  await t.step("sigmoidInPlace", () => {
    const a = Float64Array.from(input);
    sigmoidInPlace(a, from, n);
    assertClose(a, expectRange(sigmoid), 1e-15, "sigmoid");
  });
  await t.step("tanhInPlace", () => {
    const a = Float64Array.from(input);
    tanhInPlace(a, from, n);
    assertClose(a, expectRange(Math.tanh), 1e-15, "tanh");
  });
  await t.step("activateInPlace tanh and relu", () => {
    const a = Float64Array.from(input);
    activateInPlace(a, from, n, "tanh");
    assertClose(a, expectRange(Math.tanh), 1e-15, "tanh");
    const r = Float64Array.from(input);
    activateInPlace(r, 0, input.length, "relu");
    assert.deepEqual([...r], input.map(relu));
  });
});

// ---------------------------------------------------------------------------------------------
// Softmax and cross-entropy

function refSoftmax(row: number[]): number[] {
  const e = row.map(Math.exp);
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

Deno.test("softmaxRow() sums to 1 and matches exp(x) / Σ exp(x)", () => {
  const rng = new Rng(6);
  for (const c of [1, 2, 5, 13]) {
    const row = Array.from({ length: c }, () => 4 * rng.normal());
    // The row starts at an offset; the entries around it would change the result if read.
    const logits = Float64Array.from([50, ...row, -50]);
    const p = new Float64Array(c);
    softmaxRow(p, logits, 1, c);
    assertClose(p, refSoftmax(row), 1e-14, `C=${c}`);
    const sum = p.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-14, `C=${c}: probabilities sum to ${sum}`);
  }
});

Deno.test("softmaxRow() is stable for large logits like [1000, 1001]", () => {
  const e = Math.E;
  const expected = [1 / (1 + e), e / (1 + e)];
  for (const shift of [1000, -1001, 700]) {
    const p = new Float32Array(2);
    softmaxRow(p, new Float32Array([shift, shift + 1]), 0, 2);
    assertClose(p, expected, 1e-6, `logits [${shift}, ${shift + 1}]`);
  }
});

Deno.test("logSoftmax() equals the log of softmax, row by row, also in place", () => {
  const rng = new Rng(7);
  const n = 4, c = 6;
  const logits = Float64Array.from({ length: n * c }, () => 5 * rng.normal());
  logits[c] = 1000; // a row with a huge logit stays finite
  logits[c + 1] = 1001;
  const out = new Float64Array(n * c);
  logSoftmax(out, logits, n, c);
  const expected = new Float64Array(n * c);
  const p = new Float64Array(c);
  for (let r = 0; r < n; r++) {
    softmaxRow(p, logits, r * c, c);
    for (let j = 0; j < c; j++) expected[r * c + j] = Math.log(p[j]);
  }
  // An entry whose probability underflows is -Infinity in log(softmax); compare the rest.
  for (let i = 0; i < expected.length; i++) {
    if (!Number.isFinite(expected[i])) expected[i] = out[i];
  }
  assertClose(out, expected, 1e-12, "log softmax");
  assert.ok(out.every(Number.isFinite), "no -Infinity or NaN for large logits");
  const aliased = logits.slice();
  logSoftmax(aliased, aliased, n, c);
  assert.deepEqual(aliased, out);
});

Deno.test("crossEntropy() matches a hand computation", () => {
  // Row 0: logits [1, 2, 3], target 0; row 1: logits [0, 0, 0], target 2.
  const logits = new Float64Array([1, 2, 3, 0, 0, 0]);
  const { loss, count } = crossEntropy(logits, new Int32Array([0, 2]), 2, 3, null);
  const row0 = Math.log(Math.E + Math.E ** 2 + Math.E ** 3) - 1;
  const row1 = Math.log(3);
  assert.equal(count, 2);
  assertClose([loss], [(row0 + row1) / 2], 1e-14, "mean loss");
  assertClose(
    [crossEntropy(new Float64Array([0, 0]), new Int32Array([1]), 1, 2, null).loss],
    [Math.LN2],
    1e-15,
    "uniform over two classes",
  );
});

Deno.test("crossEntropy() dlogits match finite differences of the loss", () => {
  const rng = new Rng(8);
  const n = 5, c = 4;
  const logits = Float64Array.from({ length: n * c }, () => 2 * rng.normal());
  const targets = new Int32Array([3, NO_TARGET, 0, 2, 1]);
  const dlogits = new Float64Array(n * c).fill(7);
  crossEntropy(logits, targets, n, c, dlogits);
  const numeric = new Float64Array(n * c);
  const h = 1e-6;
  for (let i = 0; i < n * c; i++) {
    const keep = logits[i];
    logits[i] = keep + h;
    const up = crossEntropy(logits, targets, n, c, null).loss;
    logits[i] = keep - h;
    const down = crossEntropy(logits, targets, n, c, null).loss;
    logits[i] = keep;
    numeric[i] = (up - down) / (2 * h);
  }
  assertClose(dlogits, numeric, 1e-8, "dlogits");
});

Deno.test("crossEntropy() skips NO_TARGET rows: no loss, no count, zero gradient", () => {
  const rng = new Rng(9);
  const c = 3;
  const rows = [
    [0.3, -1.2, 2.0],
    [5.0, 1.0, -3.0],
    [0.1, 0.2, 0.3],
  ];
  const logits = Float64Array.from(rows.flat());
  const targets = new Int32Array([1, NO_TARGET, 2]);
  const dlogits = Float64Array.from({ length: 9 }, () => rng.normal()); // stale values
  const { loss, count } = crossEntropy(logits, targets, 3, c, dlogits);
  assert.equal(count, 2);
  // The same two rows without the skipped one give the same mean.
  const kept = crossEntropy(
    Float64Array.from([...rows[0], ...rows[2]]),
    new Int32Array([1, 2]),
    2,
    c,
    null,
  );
  assertClose([loss], [kept.loss], 1e-15, "loss without the skipped row");
  assert.deepEqual([...dlogits.subarray(3, 6)], [0, 0, 0]);

  const none = new Float64Array(9).fill(7);
  const all = crossEntropy(logits, new Int32Array(3).fill(NO_TARGET), 3, c, none);
  assert.deepEqual(all, { loss: 0, count: 0 });
  assert.ok(none.every((v) => v === 0), "every row of the gradient is zeroed");
});

Deno.test("crossEntropy() refuses a target outside 0..C-1", () => {
  const logits = new Float64Array(6);
  for (const bad of [3, -2, 100]) {
    assert.throws(
      () => crossEntropy(logits, new Int32Array([0, bad]), 2, 3, null),
      (err: unknown) =>
        err instanceof RangeError && err.message.includes(`target ${bad}`) &&
        err.message.includes("row 1"),
      `target ${bad}`,
    );
  }
});

// ---------------------------------------------------------------------------------------------
// Rng

/** A mixed sequence touching every kind of draw. */
function draws(rng: Rng, count: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    out.push(rng.uniform(), rng.normal(), rng.int(1000), rng.nextUint32());
  }
  return out;
}

Deno.test("Rng with the same seed gives identical sequences of every kind of draw", () => {
  for (const seed of [0, 1, 42, 0xdeadbeef]) {
    assert.deepEqual(draws(new Rng(seed), 50), draws(new Rng(seed), 50), `seed ${seed}`);
  }
});

Deno.test("Rng with different seeds gives different sequences", () => {
  const seqs = [0, 1, 2, 42].map((seed) => {
    const rng = new Rng(seed);
    return Array.from({ length: 8 }, () => rng.nextUint32());
  });
  for (let i = 0; i < seqs.length; i++) {
    for (let j = i + 1; j < seqs.length; j++) {
      const same = seqs[i].filter((v, k) => v === seqs[j][k]).length;
      assert.equal(same, 0, `seeds ${i} and ${j} share ${same} of 8 words`);
    }
  }
});

Deno.test("Rng getState()/setState() resume the exact sequence", () => {
  const a = new Rng(123);
  draws(a, 10);
  const saved = a.getState();
  const continued = draws(a, 30);
  const b = new Rng(999);
  b.setState(saved);
  assert.deepEqual(draws(b, 30), continued);

  // The saved state is a copy: neither the generator nor later edits to the array change it.
  const c = new Rng(5);
  const state = c.getState();
  c.nextUint32();
  const d = new Rng(6);
  d.setState(state);
  state.fill(1);
  assert.deepEqual(draws(d, 5), draws(new Rng(5), 5));
});

Deno.test("Rng setState() refuses a state that is not four words, not all zero", () => {
  const rng = new Rng(1);
  const before = rng.getState();
  for (const bad of [new Uint32Array(3).fill(1), new Uint32Array(5).fill(1), new Uint32Array(4)]) {
    assert.throws(() => rng.setState(bad), RangeError, `length ${bad.length}`);
  }
  assert.deepEqual(rng.getState(), before, "a refused state leaves the generator unchanged");
});

Deno.test("Rng uniform() stays in [0, 1) with mean 1/2", () => {
  const rng = new Rng(2024);
  const n = 100_000;
  let sum = 0, min = 1, max = 0;
  for (let i = 0; i < n; i++) {
    const u = rng.uniform();
    assert.ok(u >= 0 && u < 1, `draw ${i} is ${u}`);
    sum += u;
    if (u < min) min = u;
    if (u > max) max = u;
  }
  // Standard error of the mean is 0.29 / √n ≈ 0.0009.
  assert.ok(Math.abs(sum / n - 0.5) < 0.005, `mean ${sum / n}`);
  assert.ok(min < 0.001 && max > 0.999, `range [${min}, ${max}] should nearly fill [0, 1)`);
});

Deno.test("Rng normal() has mean near 0 and variance near 1 over 100k draws", () => {
  const rng = new Rng(7);
  const n = 100_000;
  let sum = 0, sumSq = 0;
  for (let i = 0; i < n; i++) {
    const z = rng.normal();
    assert.ok(Number.isFinite(z), `draw ${i} is ${z}`);
    sum += z;
    sumSq += z * z;
  }
  const mean = sum / n;
  const variance = sumSq / n - mean * mean;
  // Standard errors: mean 1/√n ≈ 0.003, variance √(2/n) ≈ 0.0045.
  assert.ok(Math.abs(mean) < 0.02, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1) < 0.03, `variance ${variance}`);
});

Deno.test("Rng int(n) stays in [0, n) and reaches every value", () => {
  const rng = new Rng(77);
  for (const n of [1, 2, 7, 1000]) {
    const seen = new Set<number>();
    for (let i = 0; i < 20 * n + 100; i++) {
      const v = rng.int(n);
      assert.ok(Number.isInteger(v) && v >= 0 && v < n, `int(${n}) gave ${v}`);
      seen.add(v);
    }
    if (n <= 7) assert.equal(seen.size, n, `int(${n}) reached ${[...seen]}`);
  }
  for (let i = 0; i < 1000; i++) {
    const v = rng.int(2 ** 32);
    assert.ok(Number.isInteger(v) && v >= 0 && v < 2 ** 32, `int(2^32) gave ${v}`);
  }
});

Deno.test("Rng nextUint32() yields 32-bit unsigned integers", () => {
  const rng = new Rng(3);
  let high = 0;
  for (let i = 0; i < 10_000; i++) {
    const v = rng.nextUint32();
    assert.ok(Number.isInteger(v) && v >= 0 && v < 2 ** 32, `draw ${i} is ${v}`);
    if (v >= 2 ** 31) high++;
  }
  assert.ok(high > 4500 && high < 5500, `${high} of 10000 draws had the top bit set`);
});
