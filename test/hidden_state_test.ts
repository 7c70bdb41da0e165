// The opt-in hidden state of session streams: `?hidden=1` on POST /session/:id adds `"h"` (h_t
// of every layer, rounded) to each step event, `"hidden": true` does the same for generated
// tokens; without the option the bytes on the wire are what they were. Expected states come
// from an independent Stepper over the same model file, never from the server.
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createApp } from "../src/app.ts";
import { type Model, readModelFile } from "../src/format/mod.ts";
import { Stepper } from "../src/nn/mod.ts";
import { ModelCache } from "../src/store/model_cache.ts";
import { publishModel } from "../src/store/registry.ts";
import { readSession } from "../src/store/sessions.ts";
import { HIDDEN_DECIMALS, hiddenJson, hiddenValues } from "../src/stream/mod.ts";
import { CharVocab } from "../src/text/char_vocab.ts";
import { type WireEvent, wireEvents } from "./_sse.ts";

const TRAIN = new URL("../fixtures/golden/train/", import.meta.url);
const MODELS = new URL("../fixtures/models/", import.meta.url);
/** 2-layer GRU, H = 16. */
const GRU: Model = await readModelFile(new URL("train_gru.safetensors", TRAIN).pathname);
/** 2-layer LSTM, H = 16: its state is h and c of both layers (64 floats), of which h is 32. */
const LSTM: Model = await readModelFile(new URL("train_lstm.safetensors", TRAIN).pathname);
/** The many-to-one classifier (1-layer GRU, H = 64). */
const CLASSIFY: Model = await readModelFile(
  new URL("names-classify.safetensors", MODELS).pathname,
);

/** Rounding to HIDDEN_DECIMALS moves a value by at most half a step; float noise on top. */
const TOL = 0.5 * 10 ** -HIDDEN_DECIMALS + 1e-6;

/** h_t of every layer after each character of `text`, from a Stepper of the test's own. */
function referenceHidden(model: Model, text: string): Float32Array[] {
  const stepper = new Stepper(model.network);
  const vocab = new CharVocab(model.meta.vocabulary!);
  const state = stepper.newState();
  const { layers, hiddenSize } = model.network.config;
  return [...vocab.encode(text)].map((id) => {
    stepper.step(state, id);
    return Float32Array.from(state.subarray(0, layers * hiddenSize));
  });
}

function assertHidden(actual: unknown, expected: Float32Array, what: string) {
  assert.ok(Array.isArray(actual), `${what}: h is an array`);
  assert.equal(actual.length, expected.length, `${what}: h has L·H values`);
  let worst = 0, at = -1;
  for (let j = 0; j < expected.length; j++) {
    const d = Math.abs((actual[j] as number) - expected[j]);
    if (!(d <= worst)) [worst, at] = [d, j];
  }
  assert.ok(worst <= TOL, `${what}: |h - reference| is ${worst} at ${at} (tolerance ${TOL})`);
  for (const v of actual as number[]) {
    assert.equal(v, Math.round(v * 10 ** HIDDEN_DECIMALS) / 10 ** HIDDEN_DECIMALS, `${v} rounded`);
  }
}

/** An app over an in-memory KV with `models` published; closed afterwards. */
async function withApp(
  models: Record<string, Model>,
  fn: (app: Hono, kv: Deno.Kv) => Promise<void>,
): Promise<void> {
  const kv = await Deno.openKv(":memory:");
  const cache = new ModelCache(kv);
  try {
    for (const [name, model] of Object.entries(models)) await publishModel(kv, name, model);
    await fn(createApp({ kv, models: cache, defaultModel: "gru" }), kv);
  } finally {
    cache.close();
    kv.close();
  }
}

async function post(app: Hono, path: string, body: string, type = "text/plain") {
  return await app.request(path, { method: "POST", body, headers: { "content-type": type } });
}

/** POST text and return the response text, asserting a 200 SSE stream. */
async function streamText(app: Hono, path: string, text: string): Promise<string> {
  const res = await post(app, path, text);
  assert.equal(res.status, 200, path);
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  return await res.text();
}

const steps = (events: WireEvent[]) => events.filter((e) => e.event === "step");

Deno.test("hiddenJson() rounds to 3 decimals, writes -0 as 0 and non-finite values as null", () => {
  assert.equal(hiddenJson(new Float32Array([0.12345, -0.00049, -0.5, 1]), 4), "[0.123,0,-0.5,1]");
  assert.equal(hiddenJson(new Float64Array([NaN, Infinity, 0.9996]), 3), "[null,null,1]");
  assert.equal(hiddenJson(new Float32Array([1, 2, 3]), 2), "[1,2]", "only the first L·H values");
  assert.equal(hiddenJson(new Float32Array(0), 0), "[]");
  assert.throws(() => hiddenJson(new Float32Array(3), 4), RangeError);
  assert.throws(() => hiddenValues(new Float32Array(3), 4), RangeError);
  // hiddenValues() gives the same numbers, for events made as objects.
  const state = new Float32Array([0.12345, -0.00049, -0.5, 1, NaN, 2.0005, -1e-9]);
  assert.equal(JSON.stringify(hiddenValues(state, 7)), hiddenJson(state, 7));
});

Deno.test("POST /session/:id?hidden=1 adds each token's hidden state to its step event", async (t) => {
  const text = "the whale.";
  await withApp({ gru: GRU, lstm: LSTM, names: CLASSIFY }, async (app) => {
    await t.step("GRU: h is h_t of both layers (2 x 16), after each token", async () => {
      const events = wireEvents(await streamText(app, "/session/g1?hidden=1", text));
      const want = referenceHidden(GRU, text);
      assert.equal(steps(events).length, want.length);
      steps(events).forEach((e, j) => {
        assert.deepEqual(Object.keys(e.data), ["seq", "token", "top", "h"]);
        assertHidden(e.data.h, want[j], `step ${j + 1}`);
      });
      // Only step events carry it.
      for (const e of events.filter((e) => e.event !== "step")) assert.equal("h" in e.data, false);
    });

    await t.step("LSTM: h leaves the cell state c out", async () => {
      const events = wireEvents(await streamText(app, "/session/l1?model=lstm&hidden=1", text));
      const want = referenceHidden(LSTM, text);
      assert.equal(want[0].length, 32);
      steps(events).forEach((e, j) => assertHidden(e.data.h, want[j], `step ${j + 1}`));
    });

    await t.step("classifier: h follows the class probabilities", async () => {
      const events = wireEvents(await streamText(app, "/session/c1?model=names&hidden=1", "Emma"));
      const want = referenceHidden(CLASSIFY, "Emma");
      assert.deepEqual(events.map((e) => e.event), [
        ...Array(4).fill("step"),
        "result",
        "checkpoint",
        "done",
      ]);
      steps(events).forEach((e, j) => {
        assert.deepEqual(Object.keys(e.data), ["seq", "token", "probs", "h"]);
        assertHidden(e.data.h, want[j], `step ${j + 1}`);
      });
    });

    await t.step(
      "the option lasts one request: a resumed session without it has no h",
      async () => {
        const events = wireEvents(await streamText(app, "/session/g1", " and"));
        assert.deepEqual(Object.keys(steps(events)[0].data), ["seq", "token", "top"]);
        assert.equal(steps(events)[0].data.seq, text.length + 1);
      },
    );
  });
});

Deno.test("POST /session/:id without ?hidden=1 sends the same bytes as before the option", async () => {
  const text = "call me ishmael. some years ago";
  await withApp({ gru: GRU }, async (app) => {
    const plain = await streamText(app, "/session/a", text);
    const zero = await streamText(app, "/session/b?hidden=0", text);
    const withH = await streamText(app, "/session/c?hidden=1", text);
    assert.equal(zero, plain, "hidden=0 is the default");
    assert.doesNotMatch(plain, /"h":\[/);
    // Take "h" out of every step and what is left is the default stream, byte for byte.
    const stripped = withH.replace(/,"h":\[[^\]]*\]\}/g, "}");
    assert.notEqual(stripped, withH);
    assert.equal(stripped, plain);
  });
});

Deno.test("POST /session/:id?hidden=<not 0 or 1> is a 400 before any state is touched", async (t) => {
  await withApp({ gru: GRU }, async (app, kv) => {
    for (const bad of ["yes", "true", "2", ""]) {
      await t.step(`hidden=${JSON.stringify(bad)}`, async () => {
        const res = await post(app, `/session/bad?hidden=${bad}`, "the");
        const body = await res.json();
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.equal(body.error.code, "bad_request");
        assert.match(body.error.message, /^hidden: /);
        assert.equal(await readSession(kv, "bad"), null);
      });
    }
  });
});

Deno.test('POST /session/:id/generate with "hidden": true adds h to each token event', async (t) => {
  await withApp({ gru: GRU }, async (app, kv) => {
    const options = { max_tokens: 12, temperature: 0.8, seed: 5 };
    const gen = async (id: string, extra: Record<string, unknown>) => {
      const res = await post(
        app,
        `/session/${id}/generate`,
        JSON.stringify({ ...options, ...extra }),
        "application/json",
      );
      assert.equal(res.status, 200);
      return await res.text();
    };

    await t.step(
      "h after each generated token matches a reference fed the same tokens",
      async () => {
        const events = wireEvents(await gen("gen-h", { hidden: true }));
        const tokens = events.filter((e) => e.event === "token");
        assert.equal(tokens.length, 12);
        const want = referenceHidden(GRU, tokens.map((e) => e.data.token as string).join(""));
        tokens.forEach((e, j) => {
          assert.deepEqual(Object.keys(e.data), ["seq", "token", "h"]);
          assertHidden(e.data.h, want[j], `token ${j + 1}`);
        });
        assert.deepEqual(Object.keys(events.at(-1)!.data), ["seq", "durable_seq", "finish_reason"]);
      },
    );

    await t.step("without it (or false), the same tokens and bytes as before", async () => {
      const plain = await gen("gen-a", {});
      const off = await gen("gen-b", { hidden: false });
      const on = await gen("gen-c", { hidden: true });
      assert.equal(off, plain);
      assert.doesNotMatch(plain, /"h":\[/);
      assert.equal(on.replace(/,"h":\[[^\]]*\]\}/g, "}"), plain);
    });

    await t.step('"hidden": "yes" is a 400 and no session is made', async () => {
      const res = await post(
        app,
        "/session/gen-bad/generate",
        JSON.stringify({ hidden: "yes" }),
        "application/json",
      );
      const body = await res.json();
      assert.equal(res.status, 400);
      assert.match(body.error.message, /^hidden: /);
      assert.equal(await readSession(kv, "gen-bad"), null);
    });
  });
});
