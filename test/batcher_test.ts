// Batched stepping: concurrent streams of one model are stepped together, and nobody can tell —
// every stream gets the bits it would get alone, cancellation and faults stay per stream.
import assert from "node:assert/strict";
import { createApp } from "../src/app.ts";
import { readModelFile } from "../src/format/mod.ts";
import { Network, SimdStepper, Stepper, type StreamStepper } from "../src/nn/mod.ts";
import { ModelCache } from "../src/store/model_cache.ts";
import { publishModel } from "../src/store/registry.ts";
import { batcherFor, StepBatcher } from "../src/stream/batcher.ts";
import { topK } from "../src/math/top_k.ts";
import { type WireEvent, wireEvents } from "./_sse.ts";

const NET = Network.create({
  cell: "gru",
  nonlinearity: "tanh",
  input: "embedding",
  vocabSize: 13,
  inputSize: 8,
  hiddenSize: 24,
  layers: 2,
  outputSize: 13,
}, 5);

/** Token ids of stream s: different lengths, different tokens. */
const runOf = (s: number) => Array.from({ length: 5 + 3 * s }, (_, t) => (s * 5 + t * 7) % 13);

/** What stream s gives stepped alone: its probabilities after each token, and its final state. */
function alone(stepper: StreamStepper, ids: number[]): { probs: number[][]; state: number[] } {
  const state = stepper.newState();
  const probs = ids.map((id) => Array.from(stepper.step(state, id)));
  return { probs, state: Array.from(state) };
}

for (const make of [() => new SimdStepper(NET), () => new Stepper(NET)]) {
  const kind = make().constructor.name;
  Deno.test(`StepBatcher (${kind}): runs queued together are batched, each with its own bits`, async () => {
    const stepper = make();
    const batcher = new StepBatcher(stepper);
    const o = NET.config.outputSize;
    const runs = Array.from({ length: 40 }, (_, s) => runOf(s)); // more than one call's worth
    const states = runs.map(() => stepper.newState());
    const seen = runs.map(() => [] as number[][]);
    const applied = await Promise.all(
      runs.map((ids, s) =>
        batcher.run(states[s], ids, 0, ids.length, (probs, at) => {
          seen[s].push(Array.from(probs.slice(at, at + o)));
        })
      ),
    );
    const reference = make();
    for (let s = 0; s < runs.length; s++) {
      const want = alone(reference, runs[s]);
      assert.equal(applied[s], runs[s].length);
      assert.deepEqual(seen[s], want.probs, `stream ${s}'s probabilities`);
      assert.deepEqual(Array.from(states[s]), want.state, `stream ${s}'s state`);
    }
    const total = runs.reduce((a, r) => a + r.length, 0);
    assert.equal(batcher.stats.tokens, total);
    assert.ok(batcher.stats.batched > total / 2, `batched ${batcher.stats.batched} of ${total}`);
    assert.ok(batcher.stats.calls < total / 2, `${batcher.stats.calls} calls for ${total} tokens`);
  });
}

Deno.test("StepBatcher: a cancelled run stops between tokens; the others finish", async () => {
  const stepper = new SimdStepper(NET);
  const batcher = new StepBatcher(stepper);
  const a = stepper.newState(), b = stepper.newState();
  let stepsA = 0;
  const ids = runOf(6);
  const [na, nb] = await Promise.all([
    batcher.run(a, ids, 0, ids.length, () => stepsA++, () => stepsA >= 3),
    batcher.run(b, ids, 2, ids.length, () => {}),
  ]);
  assert.equal(na, 3);
  assert.equal(nb, ids.length - 2);
  assert.deepEqual(Array.from(a), alone(new SimdStepper(NET), ids.slice(0, 3)).state);
  assert.deepEqual(Array.from(b), alone(new SimdStepper(NET), ids.slice(2)).state);
});

Deno.test("StepBatcher: a bad token is refused when queued; the others are not disturbed", async () => {
  const stepper = new SimdStepper(NET);
  const batcher = new StepBatcher(stepper);
  const badState = stepper.newState();
  const bad = batcher.run(badState, [1, 99], 0, 2, () => {});
  const state = stepper.newState();
  const good = batcher.run(state, [1, 2, 3], 0, 3, () => {});
  await assert.rejects(bad, RangeError);
  assert.equal(await good, 3);
  assert.deepEqual(Array.from(badState), Array.from(stepper.newState()), "nothing applied");
  assert.deepEqual(Array.from(state), alone(new SimdStepper(NET), [1, 2, 3]).state);
});

Deno.test("concurrent sessions through the app get the events each gets alone", async () => {
  const model = await readModelFile(
    new URL("../fixtures/golden/train/train_gru.safetensors", import.meta.url).pathname,
  );
  const texts = Array.from(
    { length: 12 },
    (_, s) => "the sea was calm and the ship sailed on. ".slice(s % 7).repeat(2 + (s % 3)),
  );
  const run = async (concurrent: boolean) => {
    const kv = await Deno.openKv(":memory:");
    const models = new ModelCache(kv);
    try {
      await publishModel(kv, "moby", model);
      const app = createApp({ kv, models });
      const one = async (text: string, s: number) => {
        const res = await app.request(`/session/s${s}`, {
          method: "POST",
          body: text,
          headers: { "content-type": "text/plain" },
        });
        assert.equal(res.status, 200);
        return wireEvents(await res.text());
      };
      let events;
      if (concurrent) events = await Promise.all(texts.map(one));
      else {
        events = [];
        for (const [s, text] of texts.entries()) events.push(await one(text, s));
      }
      const stepper = (await models.load("moby")).stepper;
      return { events, stats: { ...batcherFor(stepper).stats } };
    } finally {
      models.close();
      kv.close();
    }
  };
  const together = await run(true);
  const apart = await run(false);
  // Step and done events, in order, byte for byte; checkpoint events may come a few steps
  // later or earlier (each lands when its commit does), so they are compared on their own.
  const split = (events: WireEvent[][]) =>
    events.map((e) => [
      e.filter((x) => x.event !== "checkpoint"),
      e.filter((x) => x.event === "checkpoint"),
    ]);
  assert.deepEqual(split(together.events), split(apart.events));
  assert.ok(
    together.stats.batched > 0,
    `no tokens were batched: ${JSON.stringify(together.stats)}`,
  );
  assert.equal(apart.stats.batched, 0, "sessions one after another have nobody to batch with");
});

Deno.test("topK gives the k largest, largest first, ties by index, at an offset", () => {
  const rng = (seed: number) => () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const next = rng(7);
  for (let trial = 0; trial < 200; trial++) {
    const length = 1 + Math.floor(next() * 40), at = Math.floor(next() * 5);
    // Few distinct values, so ties are common.
    const probs = Array.from({ length: at + length + 3 }, () => Math.floor(next() * 6) / 6);
    for (const k of [0, 1, 3, 5, length, length + 2]) {
      const want = Array.from({ length }, (_, j) => j)
        .sort((a, b) => probs[at + b] - probs[at + a] || a - b)
        .slice(0, k);
      assert.deepEqual(topK(probs, k, at, length), want, `k=${k} of ${length} at ${at}`);
    }
  }
});
