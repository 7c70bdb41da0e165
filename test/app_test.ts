// End-to-end tests of the HTTP app (createApp) through `app.request`, no network: the exact SSE
// bytes of a session stream, the three body types, durable sessions and exactly-once resends,
// version pinning, concurrent writers, client aborts, the error paths and generation. Expected
// outputs come from an independent Stepper over the same model file, never from the server.
import assert from "node:assert/strict";
import { assertClose } from "./_close.ts";
import { withTimeout } from "./_server.ts";
import type { Hono } from "hono";
import { createApp } from "../src/app.ts";
import { decodeModel, encodeModel, type Model, readModelFile } from "../src/format/mod.ts";
import { Stepper } from "../src/nn/mod.ts";
import { ModelCache } from "../src/store/model_cache.ts";
import { publishModel } from "../src/store/registry.ts";
import { readSession, type StoredSession } from "../src/store/sessions.ts";
import { DEFAULT_LIMITS, type Limits, MAX_RUN, SessionManager } from "../src/stream/mod.ts";
import { CharVocab } from "../src/text/char_vocab.ts";
import {
  ControlledBody,
  EventReader,
  formatWire,
  parseWire,
  type WireEvent,
  wireEvents,
} from "./_sse.ts";

// ---------------------------------------------------------------------------------------------
// Fixtures and helpers

const TRAIN = new URL("../fixtures/golden/train/", import.meta.url);
/** 2-layer GRU, H = 16, vocabulary "<unk>", " ", ".", "a".."z". */
const GRU: Model = await readModelFile(new URL("train_gru.safetensors", TRAIN).pathname);
/** 2-layer Elman RNN with the same vocabulary. */
const RNN: Model = await readModelFile(new URL("train_rnn.safetensors", TRAIN).pathname);

/** The GRU with every weight scaled and shifted: a second version that answers differently. */
function perturbed(model: Model): Model {
  const copy = decodeModel(encodeModel(model));
  const p = copy.network.params;
  for (let k = 0; k < p.length; k++) p[k] = p[k] * 1.5 + (k % 7 === 0 ? 0.25 : -0.05);
  return copy;
}

const TOL = 1e-6;

/** Asserts |actual - expected| <= TOL everywhere, naming the worst entry. */
const near = (actual: ArrayLike<number>, expected: ArrayLike<number>, what: string) =>
  assertClose(what, actual, expected, TOL);

/** An independent run of a model: a Stepper of its own and a state the test owns. */
class Reference {
  readonly stepper: Stepper;
  readonly vocab: CharVocab;
  readonly state: Float32Array;

  constructor(model: Model) {
    this.stepper = new Stepper(model.network);
    this.vocab = new CharVocab(model.meta.vocabulary!);
    this.state = this.stepper.newState() as Float32Array;
  }

  /** Steps one token id; returns a copy of the output distribution. */
  step(id: number): Float32Array {
    return Float32Array.from(this.stepper.step(this.state, id));
  }

  /** Steps every character of a text; returns each step's distribution. */
  feed(text: string): Float32Array[] {
    return [...this.vocab.encode(text)].map((id) => this.step(id));
  }

  /** Steps a sequence of tokens (as the server names them). */
  feedTokens(tokens: string[]): Float32Array[] {
    return tokens.map((t) => {
      const id = this.vocab.tokens.indexOf(t);
      assert.ok(id >= 0, `token ${t} in the vocabulary`);
      return this.step(id);
    });
  }
}

/** The k largest entries, largest first, ties by index: computed here, not by the server. */
function topIndices(probs: ArrayLike<number>, k: number): number[] {
  return [...Array(probs.length).keys()].sort((a, b) => probs[b] - probs[a] || a - b).slice(0, k);
}

function argmax(probs: ArrayLike<number>): number {
  return topIndices(probs, 1)[0];
}

/**
 * Asserts that step events are the reference's steps: seq, token, and the top-k outputs with
 * their probabilities within 1e-6.
 */
function assertSteps(
  steps: WireEvent[],
  expected: Float32Array[],
  tokens: string[],
  firstSeq: number,
  k: number,
  vocab: readonly string[],
) {
  assert.deepEqual(steps.map((e) => e.event), expected.map(() => "step"));
  steps.forEach((e, j) => {
    const seq = firstSeq + j;
    assert.equal(e.id, String(seq), `id of step ${seq}`);
    assert.equal(e.data.seq, seq);
    assert.equal(e.data.token, tokens[j], `token of step ${seq}`);
    assert.deepEqual(Object.keys(e.data), ["seq", "token", "top"]);
    const top = e.data.top as { token: string; p: number }[];
    const want = topIndices(expected[j], k);
    assert.deepEqual(top.map((t) => t.token), want.map((i) => vocab[i]), `top of step ${seq}`);
    near(top.map((t) => t.p), want.map((i) => expected[j][i]), `probs of step ${seq}`);
  });
}

/** The session's durable hidden state as floats. */
function stateOf(stored: StoredSession | null): Float32Array {
  assert.ok(stored !== null, "the session is in KV");
  const b = stored.record.hidden;
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** The durable record as bytes-comparable JSON (hidden state as a byte list), or null. */
async function snapshot(kv: Deno.Kv, id: string): Promise<string | null> {
  const s = await readSession(kv, id);
  if (s === null) return null;
  return JSON.stringify({ ...s.record, hidden: [...s.record.hidden], vs: s.versionstamp });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `check` is true, polling; fails after `ms`. */
async function waitFor(check: () => boolean | Promise<boolean>, what: string, ms = 2000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** A clock that moves one second per reading, so created/updated times differ. */
function steppingClock(): () => Date {
  let t = Date.UTC(2030, 0, 1);
  return () => new Date(t += 1000);
}

interface Env {
  kv: Deno.Kv;
  models: ModelCache;
  app: Hono;
  sessions: SessionManager;
  limits: Limits;
}

/**
 * An in-memory KV with the GRU published as "moby" (version 1), and an app over it; closes
 * the model cache (its KV watches) and the KV afterwards.
 */
async function withApp(
  limits: Partial<Limits>,
  fn: (env: Env) => Promise<void>,
): Promise<void> {
  const kv = await Deno.openKv(":memory:");
  const models = new ModelCache(kv);
  try {
    await publishModel(kv, "moby", GRU);
    const full = { ...DEFAULT_LIMITS, ...limits };
    const clock = steppingClock();
    const sessions = new SessionManager({ kv, models, clock, limits: full, defaultModel: "moby" });
    const app = createApp({ kv, models, limits, clock, sessions });
    await fn({ kv, models, app, sessions, limits: full });
  } finally {
    models.close();
    kv.close();
  }
}

/** POST /session/:id with a body. */
function post(
  app: Hono,
  id: string,
  body: BodyInit | null,
  opts: { type?: string; query?: string; headers?: Record<string, string> } = {},
): Promise<Response> {
  return Promise.resolve(app.request(`/session/${id}${opts.query ?? ""}`, {
    method: "POST",
    body,
    headers: { "content-type": opts.type ?? "text/plain", ...opts.headers },
  }));
}

/** POST and read the whole SSE response, parsed strictly. */
async function stream(
  app: Hono,
  id: string,
  body: BodyInit | null,
  opts: { type?: string; query?: string; headers?: Record<string, string> } = {},
): Promise<{ text: string; events: WireEvent[] }> {
  const res = await post(app, id, body, opts);
  assert.equal(res.status, 200, `POST /session/${id}`);
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  const text = await res.text();
  return { text, events: wireEvents(text) };
}

function steps(events: WireEvent[]): WireEvent[] {
  return events.filter((e) => e.event === "step");
}

/** Asserts a JSON error response: status and `{"error":{"code","message"}}`, nothing else. */
async function assertError(res: Response, status: number, code: string): Promise<string> {
  const body = await res.text();
  assert.equal(res.status, status, `status (body ${body})`);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  const parsed = JSON.parse(body);
  assert.deepEqual(Object.keys(parsed), ["error"]);
  assert.deepEqual(Object.keys(parsed.error), ["code", "message"]);
  assert.equal(parsed.error.code, code, body);
  assert.equal(typeof parsed.error.message, "string");
  assert.ok(parsed.error.message.length > 0);
  return parsed.error.message;
}

/** Asserts a stream ended in exactly one `error` event with `code` (and nothing after it). */
function assertErrorEvent(events: WireEvent[], code: string, durableSeq: number) {
  const last = events.at(-1);
  assert.ok(
    last !== undefined && last.event === "error",
    `ends in error: ${JSON.stringify(events)}`,
  );
  assert.equal(events.filter((e) => e.event === "error").length, 1);
  assert.equal(events.filter((e) => e.event === "done").length, 0);
  assert.deepEqual(Object.keys(last.data), ["code", "message", "durable_seq"]);
  assert.equal(last.data.code, code, JSON.stringify(last.data));
  assert.equal(last.data.durable_seq, durableSeq);
  assert.equal(last.id, String(durableSeq));
}

/** POST /session/:id/generate with JSON options. */
function generate(app: Hono, id: string, options: unknown): Promise<Response> {
  return Promise.resolve(app.request(`/session/${id}/generate`, {
    method: "POST",
    body: typeof options === "string" ? options : JSON.stringify(options),
    headers: { "content-type": "application/json" },
  }));
}

/** Generate and return the tokens and the final `done` data. */
async function generated(app: Hono, id: string, options: Record<string, unknown>) {
  const res = await generate(app, id, options);
  assert.equal(res.status, 200);
  const events = wireEvents(await res.text());
  const done = events.at(-1)!;
  assert.equal(done.event, "done", JSON.stringify(events.slice(-2)));
  const tokens = events.filter((e) => e.event === "token").map((e) => e.data.token as string);
  events.filter((e) => e.event === "token").forEach((e) => {
    assert.deepEqual(Object.keys(e.data), ["seq", "token"]);
    assert.equal(e.id, String(e.data.seq));
  });
  return { tokens, done: done.data, events };
}

const VOCAB = GRU.meta.vocabulary!;

// ---------------------------------------------------------------------------------------------
// 1. The bytes on the wire

Deno.test("POST /session/:id streams step, step, checkpoint, done with exact SSE framing", async () => {
  await withApp({ checkpointEvery: 64, topK: 2 }, async ({ app, kv }) => {
    const res = await post(app, "wire", "ab");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    assert.equal(res.headers.get("cache-control"), "no-cache");
    const text = await res.text();

    // Framing: every frame is `event:`, `data:`, `id:`, blank line, in that order, and the
    // text is exactly those frames written back (so the JSON is canonical too).
    const frames = parseWire(text);
    assert.equal(formatWire(frames), text);
    const events = wireEvents(text);
    assert.deepEqual(events.map((e) => [e.event, e.id]), [
      ["step", "1"],
      ["step", "2"],
      ["checkpoint", "2"],
      ["done", "2"],
    ]);

    // The numbers, from an independent Stepper over the same file.
    const ref = new Reference(GRU);
    const probs = ref.feed("ab");
    assertSteps(events.slice(0, 2), probs, ["a", "b"], 1, 2, VOCAB);

    // Byte for byte: the expected frames, with the server's probabilities (checked above).
    const p = (j: number, r: number) => (events[j].data.top as { p: number }[])[r].p;
    const top = (j: number) =>
      topIndices(probs[j], 2).map((i, r) => ({ token: VOCAB[i], p: p(j, r) }));
    const expected = [
      `event: step\ndata: ${JSON.stringify({ seq: 1, token: "a", top: top(0) })}\nid: 1\n\n`,
      `event: step\ndata: ${JSON.stringify({ seq: 2, token: "b", top: top(1) })}\nid: 2\n\n`,
      `event: checkpoint\ndata: {"seq":2}\nid: 2\n\n`,
      `event: done\ndata: {"seq":2,"durable_seq":2}\nid: 2\n\n`,
    ].join("");
    assert.equal(text, expected);

    // And the durable state is the reference's state after "ab".
    near(stateOf(await readSession(kv, "wire")), ref.state, "state after ab");
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Body types

Deno.test("POST /session/:id reads text/plain, NDJSON and SSE bodies to the same steps", async (t) => {
  await withApp({ checkpointEvery: 64, topK: 3 }, async ({ app, kv }) => {
    // "Z" and "é" are outside the vocabulary: they are <unk>.
    const chars = "hi Zé.x";
    const tokens = ["h", "i", " ", "<unk>", "<unk>", ".", "x"];
    const ref = new Reference(GRU);
    const probs = ref.feedTokens(tokens);
    const enc = new TextEncoder();

    const results = new Map<string, WireEvent[]>();
    await t.step("text/plain, in pieces that split a UTF-8 character", async () => {
      const bytes = enc.encode(chars);
      const cut = bytes.indexOf(0xc3) + 1; // inside "é"
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(bytes.slice(0, 2));
          c.enqueue(bytes.slice(2, cut));
          c.enqueue(bytes.slice(cut));
          c.close();
        },
      });
      const { events } = await stream(app, "plain", body);
      results.set("plain", events);
    });

    await t.step("application/x-ndjson: text and token lines, CRLF, an empty line", async () => {
      const body = [
        `{"text": "hi"}`,
        ``,
        `{"token": " "}`,
        `{"token": "<unk>"}`,
        `{"text": "é."}`,
        `  `,
        `{"text":"x"}`,
      ].join("\r\n") + "\r\n";
      const { events } = await stream(app, "ndjson", body, { type: "application/x-ndjson" });
      results.set("ndjson", events);
    });

    await t.step("text/event-stream: JSON data, plain-text data, [DONE] ignored", async () => {
      const body = [
        `data: {"text": "hi "}\n\n`,
        `event: token\ndata: {"token": "<unk>"}\n\n`,
        `data: é.\n\n`,
        `: a comment\n\n`,
        `id: 7\ndata: x\n\n`,
        `data: [DONE]\n\n`,
      ].join("");
      const { events } = await stream(app, "sse", body, { type: "text/event-stream" });
      results.set("sse", events);
    });

    await t.step("all three give the reference's steps and the same durable state", async () => {
      for (const [name, events] of results) {
        assertSteps(steps(events), probs, tokens, 1, 3, VOCAB);
        assert.deepEqual(events.slice(-2).map((e) => [e.event, e.id]), [
          ["checkpoint", "7"],
          ["done", "7"],
        ], name);
        near(stateOf(await readSession(kv, name)), ref.state, `state of ${name}`);
      }
      assert.deepEqual(results.get("ndjson"), results.get("plain"));
      assert.deepEqual(results.get("sse"), results.get("plain"));
    });

    await t.step("charset parameters: utf-8 is accepted", async () => {
      const { events } = await stream(app, "charset", "hi", { type: "text/plain; charset=UTF-8" });
      assert.deepEqual(steps(events), results.get("plain")!.slice(0, 2));
    });
  });
});

// ---------------------------------------------------------------------------------------------
// 3. Sessions

Deno.test("GET and DELETE /session/:id: inspect, continue, delete", async (t) => {
  await withApp({ checkpointEvery: 64, topK: 2 }, async ({ app, kv }) => {
    await t.step("GET of an unknown session is 404; so is DELETE", async () => {
      await assertError(await app.request("/session/nobody"), 404, "not_found");
      await assertError(
        await app.request("/session/nobody", { method: "DELETE" }),
        404,
        "not_found",
      );
    });

    let created = "";
    await t.step("GET reports model, version, seq, durable_seq and timestamps", async () => {
      await stream(app, "s", "abc");
      const res = await app.request("/session/s");
      assert.equal(res.status, 200);
      const info = await res.json();
      assert.deepEqual(
        { ...info, created_at: typeof info.created_at, updated_at: typeof info.updated_at },
        {
          id: "s",
          model: "moby",
          version: 1,
          seq: 3,
          durable_seq: 3,
          created_at: "string",
          updated_at: "string",
        },
      );
      assert.ok(!Number.isNaN(Date.parse(info.created_at)));
      assert.ok(info.updated_at >= info.created_at);
      created = info.created_at;
    });

    await t.step("a second request continues from the state the first left", async () => {
      const second = await stream(app, "s", "def");
      const whole = await stream(app, "whole", "abcdef");
      assert.deepEqual(steps(second.events), steps(whole.events).slice(3));
      assert.deepEqual(
        (await readSession(kv, "s"))!.record.hidden,
        (await readSession(kv, "whole"))!.record.hidden,
      );
      const ref = new Reference(GRU);
      assertSteps(steps(second.events), ref.feed("abcdef").slice(3), [..."def"], 4, 2, VOCAB);
      const info = await (await app.request("/session/s")).json();
      assert.equal(info.seq, 6);
      assert.equal(info.durable_seq, 6);
      assert.equal(info.created_at, created);
      assert.ok(info.updated_at > created, "updated_at moves on");
    });

    await t.step("DELETE is 204, then GET is 404 and a new request starts afresh", async () => {
      const res = await app.request("/session/s", { method: "DELETE" });
      assert.equal(res.status, 204);
      assert.equal(await res.text(), "");
      assert.equal(await readSession(kv, "s"), null);
      await assertError(await app.request("/session/s"), 404, "not_found");
      const again = await stream(app, "s", "d");
      assert.equal(steps(again.events)[0].data.seq, 1);
      const ref = new Reference(GRU);
      ref.feed("d");
      near(stateOf(await readSession(kv, "s")), ref.state, "fresh state");
    });
  });
});

// ---------------------------------------------------------------------------------------------
// 4. Exactly once

Deno.test("POST /session/:id resumes after ?from= or Last-Event-ID without applying a token twice", async (t) => {
  await withApp({ checkpointEvery: 64, topK: 2 }, async ({ app, kv }) => {
    const straight = await stream(app, "straight", "abcdef");
    const final = (await readSession(kv, "straight"))!.record.hidden;

    const resend = async (
      id: string,
      opts: { query?: string; headers?: Record<string, string> },
    ) => {
      await stream(app, id, "abcd");
      // The client saw up to seq 2 and resends from seq 3: "cd" are applied already.
      const { events } = await stream(app, id, "cdef", opts);
      assert.deepEqual(steps(events), steps(straight.events).slice(4));
      assert.deepEqual(events.slice(-1)[0].data, { seq: 6, durable_seq: 6 });
      assert.deepEqual((await readSession(kv, id))!.record.hidden, final);
      assert.equal((await readSession(kv, id))!.record.seq, 6);
    };

    await t.step("?from=3", () => resend("q", { query: "?from=3" }));
    await t.step("Last-Event-ID: 2", () => resend("h", { headers: { "last-event-id": "2" } }));

    await t.step("a resend entirely inside what was applied changes nothing", async () => {
      const before = await snapshot(kv, "q");
      const { events } = await stream(app, "q", "bcd", { query: "?from=2" });
      assert.deepEqual(events.map((e) => e.event), ["checkpoint", "done"]);
      assert.deepEqual(events[1].data, { seq: 6, durable_seq: 6 });
      assert.equal(await snapshot(kv, "q"), before);
    });

    await t.step("from = seq + 1 applies everything", async () => {
      const { events } = await stream(app, "straight", "g", { query: "?from=7" });
      assert.equal(steps(events).length, 1);
      assert.equal(steps(events)[0].data.seq, 7);
    });

    await t.step("from beyond seq + 1 is a 409; nothing changes", async () => {
      const before = await snapshot(kv, "q");
      const msg = await assertError(
        await post(app, "q", "xyz", { query: "?from=8" }),
        409,
        "conflict",
      );
      assert.match(msg, /seq 6/);
      await assertError(
        await post(app, "q", "xyz", { headers: { "last-event-id": "7" } }),
        409,
        "conflict",
      );
      assert.equal(await snapshot(kv, "q"), before);
      // A new session is at seq 0: from=2 would leave a gap, and creates nothing.
      await assertError(await post(app, "new", "x", { query: "?from=2" }), 409, "conflict");
      assert.equal(await readSession(kv, "new"), null);
    });

    await t.step(
      "from=0, a non-number or a fraction is a 400; so is a bad Last-Event-ID",
      async () => {
        const before = await snapshot(kv, "q");
        for (const query of ["?from=0", "?from=abc", "?from=1.5", "?from=-1", "?from="]) {
          await assertError(await post(app, "q", "xyz", { query }), 400, "bad_request");
        }
        for (const id of ["x", "-1", "1.5", "1e3"]) {
          await assertError(
            await post(app, "q", "xyz", { headers: { "last-event-id": id } }),
            400,
            "bad_request",
          );
        }
        assert.equal(await snapshot(kv, "q"), before);
      },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// 5. Version pinning

Deno.test("a session stays on the model version it started on; new sessions get the current one", async (t) => {
  await withApp({ checkpointEvery: 64, topK: 3 }, async ({ app, kv, models }) => {
    const V2 = perturbed(GRU);
    await stream(app, "old", "the");

    await t.step("publishing version 2 reaches the server's model cache", async () => {
      await publishModel(kv, "moby", V2);
      await waitFor(async () => (await models.currentVersion("moby")) === 2, "current = 2");
      const listing = await (await app.request("/models")).json();
      assert.equal(listing.models[0].current, 2);
      assert.deepEqual(listing.models[0].versions.map((v: { version: number }) => v.version), [
        1,
        2,
      ]);
    });

    await t.step("the old session keeps version 1", async () => {
      assert.equal((await (await app.request("/session/old")).json()).version, 1);
      const { events } = await stream(app, "old", " cat");
      const ref = new Reference(GRU);
      const probs = ref.feed("the cat");
      assertSteps(steps(events), probs.slice(3), [..." cat"], 4, 3, VOCAB);
      assert.equal((await readSession(kv, "old"))!.record.version, 1);
      near(stateOf(await readSession(kv, "old")), ref.state, "v1 state");
    });

    await t.step("a new session gets version 2", async () => {
      const { events } = await stream(app, "new", "the cat");
      const ref = new Reference(V2);
      const probs = ref.feed("the cat");
      assertSteps(steps(events), probs, [..."the cat"], 1, 3, VOCAB);
      assert.equal((await (await app.request("/session/new")).json()).version, 2);
      // The versions really differ, so the comparison above means something.
      const v1 = new Reference(GRU).feed("the cat");
      assert.ok(v1.some((p, j) => p.some((x, i) => Math.abs(x - probs[j][i]) > 1e-3)));
      assert.notDeepEqual(
        (await readSession(kv, "new"))!.record.hidden,
        (await readSession(kv, "old"))!.record.hidden,
      );
    });

    await t.step(
      "?model= names the model of a new session; must match an existing one",
      async () => {
        await publishModel(kv, "other", RNN);
        const { events } = await stream(app, "rnn", "ab", { query: "?model=other" });
        assertSteps(steps(events), new Reference(RNN).feed("ab"), ["a", "b"], 1, 3, VOCAB);
        const info = await (await app.request("/session/rnn")).json();
        assert.equal(info.model, "other");

        const before = await snapshot(kv, "old");
        await assertError(await post(app, "old", "x", { query: "?model=other" }), 409, "conflict");
        await assertError(
          await generate(app, "old", { max_tokens: 2, model: "other" }),
          409,
          "conflict",
        );
        assert.equal(await snapshot(kv, "old"), before);
        // The same model named explicitly is fine.
        await stream(app, "old", "", { query: "?model=moby" });
      },
    );

    await t.step(
      "an unknown model is a 404, an invalid name a 400; no session is made",
      async () => {
        await assertError(await post(app, "nm", "x", { query: "?model=nope" }), 404, "not_found");
        await assertError(await generate(app, "nm", { model: "nope" }), 404, "not_found");
        await assertError(
          await post(app, "nm", "x", { query: "?model=a%24b" }),
          400,
          "invalid_name",
        );
        assert.equal(await readSession(kv, "nm"), null);
      },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// 6. Concurrent writers

Deno.test("one request at a time per session: a second gets 409 at once, then succeeds", async () => {
  await withApp({ checkpointEvery: 64, topK: 2 }, async ({ app, kv }) => {
    const body = new ControlledBody();
    const first = await post(app, "busy", body.stream);
    assert.equal(first.status, 200);
    const reader = new EventReader(first.body!);
    body.send("ab");
    assert.deepEqual((await reader.next())!.data.seq, 1);
    assert.deepEqual((await reader.next())!.data.seq, 2);

    // While it is open: a second stream, a generate, a delete are refused with the error body.
    await assertError(await post(app, "busy", "cd"), 409, "conflict");
    await assertError(await generate(app, "busy", { max_tokens: 1 }), 409, "conflict");
    await assertError(await app.request("/session/busy", { method: "DELETE" }), 409, "conflict");
    // GET shows the tokens applied in memory and what is durable (nothing yet).
    const info = await (await app.request("/session/busy")).json();
    assert.equal(info.seq, 2);
    assert.equal(info.durable_seq, 0);
    assert.equal(await readSession(kv, "busy"), null);

    body.send("c");
    body.close();
    const rest = await reader.rest();
    assert.deepEqual(rest.map((e) => [e.event, e.id]), [
      ["step", "3"],
      ["checkpoint", "3"],
      ["done", "3"],
    ]);
    const { events } = await stream(app, "busy", "d");
    assert.deepEqual(steps(events).map((e) => e.data.seq), [4]);
    const ref = new Reference(GRU);
    ref.feed("abcd");
    near(stateOf(await readSession(kv, "busy")), ref.state, "state after abcd");
  });
});

Deno.test("two servers writing one session: exactly one wins, the other gets a conflict event", async () => {
  const kv = await Deno.openKv(":memory:");
  const models1 = new ModelCache(kv);
  const models2 = new ModelCache(kv);
  try {
    await publishModel(kv, "moby", GRU);
    const limits = { checkpointEvery: 4, topK: 1 };
    const apps = [
      createApp({ kv, models: models1, limits, clock: steppingClock() }),
      createApp({ kv, models: models2, limits, clock: steppingClock() }),
    ];
    const texts = ["the quick brown", "a lazy dog jumps"]; // both longer than checkpointEvery
    const bodies = [new ControlledBody(), new ControlledBody()];
    const responses = await Promise.all(
      apps.map((app, k) => post(app, "shared", bodies[k].stream)),
    );
    responses.forEach((r) => assert.equal(r.status, 200));
    const collected = responses.map((r) => r.text());
    // Both stream at once: one character each in turn, as the network would interleave them.
    for (let j = 0; j < Math.max(...texts.map((s) => s.length)); j++) {
      for (let k = 0; k < 2; k++) if (j < texts[k].length) bodies[k].send(texts[k][j]);
      await sleep(1);
    }
    bodies.forEach((b) => b.close());
    const events = (await Promise.all(collected)).map(wireEvents);
    const ends = events.map((e) => e.at(-1)!.event);
    assert.deepEqual([...ends].sort(), ["done", "error"], JSON.stringify(ends));
    const winner = ends.indexOf("done");
    const loser = 1 - winner;
    assertErrorEvent(events[loser], "conflict", 0);
    const stored = await readSession(kv, "shared");
    assert.equal(stored!.record.seq, texts[winner].length);
    const ref = new Reference(GRU);
    ref.feed(texts[winner]);
    near(stateOf(stored), ref.state, "the winner's state, nothing of the loser's");
  } finally {
    models1.close();
    models2.close();
    kv.close();
  }
});

/**
 * A store whose commits wait while the test holds them: a slow KV under the test's control.
 * Everything but `atomic().commit()` goes straight to `kv`.
 */
function gatedKv(kv: Deno.Kv): { kv: Deno.Kv; hold(): void; release(): void } {
  let gate: Promise<void> = Promise.resolve();
  let open = () => {};
  const wrap = (op: Deno.AtomicOperation): Deno.AtomicOperation => {
    const proxy: Deno.AtomicOperation = new Proxy(op, {
      get(target, key) {
        if (key === "commit") return async () => (await gate, target.commit());
        const value = Reflect.get(target, key);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          const out = value.apply(target, args);
          return out === target ? proxy : out;
        };
      },
    });
    return proxy;
  };
  const gated = new Proxy(kv, {
    get(target, key) {
      if (key === "atomic") return () => wrap(target.atomic());
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return {
    kv: gated,
    hold: () => gate = new Promise((resolve) => open = resolve),
    release: () => open(),
  };
}

/**
 * Runs `fn` with an app on a store whose commits the test holds (see {@linkcode gatedKv}),
 * `checkpointEvery` 4 and `topK` 1, the GRU published as `moby`. Commits are held from the start.
 */
async function withGatedApp(
  fn: (env: { app: Hono; store: Deno.Kv; models: ModelCache; release(): void }) => Promise<void>,
): Promise<void> {
  const store = await Deno.openKv(":memory:");
  const models = new ModelCache(store);
  try {
    await publishModel(store, "moby", GRU);
    const { kv, hold, release } = gatedKv(store);
    const app = createApp({ kv, models, limits: { checkpointEvery: 4, topK: 1 } });
    hold();
    await fn({ app, store, models, release });
  } finally {
    models.close();
    store.close();
  }
}

/** POSTs a body the test feeds by hand, sends `text`, and reads the events. */
async function heldStream(app: Hono, id: string, text: string) {
  const body = new ControlledBody();
  const res = await post(app, id, body.stream);
  const reader = new EventReader(res.body!);
  body.send(text);
  return { body, reader };
}

Deno.test("a checkpoint event that lands between writes leaves with the next steps, or alone soon after", async () => {
  await withGatedApp(async ({ app, release }) => {
    const body = new ControlledBody();
    const res = await post(app, "held", body.stream);
    const chunks = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    /** Reads the response chunk by chunk (each one enqueue of the server) up to `last`. */
    const upTo = async (last: RegExp, label: string) => {
      const seen: string[] = [];
      while (!seen.some((c) => last.test(c))) {
        const { done, value } = await withTimeout(chunks.read(), 5000, label);
        if (done) throw new Error(`the stream ended before ${label}`);
        seen.push(value);
      }
      return seen;
    };
    const checkpoint = (seq: number) => `event: checkpoint\ndata: {"seq":${seq}}\nid: ${seq}\n\n`;
    body.send("abcd");
    await upTo(/id: 4\n/, "step 4");
    // The checkpoint of seq 4 is held at the store: 5..8 are stepped, then the next one waits.
    body.send("efghij");
    await upTo(/id: 8\n/, "step 8");
    release();
    // It lands while the client is quiet, and the stepping goes on at once (9 and 10): the
    // event leaves in the same chunk as those steps, before them.
    const [together, ...more] = await upTo(/id: 10\n/, "step 10");
    assert.deepEqual(more, [], "one chunk");
    assert.ok(together.startsWith(checkpoint(4) + "event: step\n"), together);
    // The checkpoint of seq 8 lands with nothing after it: it leaves alone, within HOLD_MS.
    const alone = await upTo(/event: checkpoint/, "checkpoint 8");
    assert.deepEqual(alone, [checkpoint(8)]);
    body.close();
    let rest = "";
    for (let r = await chunks.read(); !r.done; r = await chunks.read()) rest += r.value;
    assert.ok(rest.startsWith(checkpoint(10) + "event: done\n"), rest);
  });
});

Deno.test("a checkpoint is written while stepping goes on, and its event follows when it lands", async () => {
  await withGatedApp(async ({ app, store, release }) => {
    const { body, reader } = await heldStream(app, "behind", "abcdefghij");
    // The checkpoint of seq 4 cannot land, yet tokens 5..8 are stepped; at 8 the next checkpoint
    // is due and waits for that one, so nothing more comes.
    const first: WireEvent[] = [];
    while (first.length < 8) {
      first.push((await withTimeout(reader.next(), 5000, `step ${first.length + 1}`))!);
    }
    assert.deepEqual(
      first.map((e) => [e.event, e.id]),
      [1, 2, 3, 4, 5, 6, 7, 8].map((k) => ["step", `${k}`]),
    );
    const pending = reader.next();
    const quiet = await Promise.race([pending, sleep(100).then(() => "quiet")]);
    assert.equal(quiet, "quiet", "nothing may pass the second checkpoint while the first is held");
    assert.equal(await readSession(store, "behind"), null, "nothing is durable yet");
    release();
    const landed = await pending;
    assert.deepEqual([landed?.event, landed?.data], ["checkpoint", { seq: 4 }]);
    // What landed is the state after its seq's token, copied between two tokens of a run that
    // went on (seq 8 may have landed too by now: either must match its own seq).
    const early = await readSession(store, "behind");
    const upTo = new Reference(GRU);
    upTo.feed("abcdefghij".slice(0, early!.record.seq));
    assert.ok([4, 8].includes(early!.record.seq), `durable seq ${early!.record.seq}`);
    near(stateOf(early), upTo.state, `state after ${early!.record.seq} tokens`);
    body.close();
    const rest = await reader.rest();
    assert.deepEqual(rest.filter((e) => e.event !== "checkpoint").map((e) => [e.event, e.id]), [
      ["step", "9"],
      ["step", "10"],
      ["done", "10"],
    ]);
    assert.deepEqual(rest.filter((e) => e.event === "checkpoint").map((e) => e.data.seq), [8, 10]);
    const ref = new Reference(GRU);
    ref.feed("abcdefghij");
    const stored = await readSession(store, "behind");
    assert.equal(stored!.record.seq, 10);
    near(stateOf(stored), ref.state, "state after abcdefghij");
  });
});

Deno.test("a lone session's checkpoints do not wait for company that never comes", async () => {
  // A checkpoint taken behind may wait up to checkpointGatherMs for other sessions' writes to
  // share its commit, but one that the session then has to wait for is hurried: with a minute
  // of gathering, a body crossing six checkpoints still streams through at once.
  await withApp(
    { checkpointEvery: 4, topK: 1, checkpointGatherMs: 60_000 },
    async ({ app, kv }) => {
      const text = "the quick brown fox jumps";
      const { events } = await withTimeout(stream(app, "lone", text), 20_000, "the lone session");
      assert.equal(events.filter((e) => e.event === "step").length, text.length);
      assert.deepEqual(events.at(-1)?.data, { seq: text.length, durable_seq: text.length });
      assert.equal((await readSession(kv, "lone"))!.record.seq, text.length);
    },
  );
});

Deno.test("a long body is applied MAX_RUN tokens per turn of the event loop, however far apart checkpoints are", async () => {
  await withApp({ checkpointEvery: 1_000_000, topK: 1 }, async ({ app }) => {
    const text = "the quick brown fox jumps over a lazy dog ".repeat(100); // 4,200 characters
    const res = await post(app, "long", text);
    assert.equal(res.status, 200);
    const counts: number[] = []; // step events per chunk of the response
    let turned = false; // whether other work of the isolate (a timer due at once) has run
    let stepsAfterTurn = 0;
    const decoder = new TextDecoder();
    for await (const chunk of res.body!) {
      const steps = decoder.decode(chunk).split("event: step\n").length - 1;
      if (counts.length === 0) setTimeout(() => turned = true, 0); // once the stream flows
      else if (turned) stepsAfterTurn += steps;
      counts.push(steps);
    }
    assert.equal(counts.reduce((a, b) => a + b, 0), text.length);
    assert.ok(Math.max(...counts) <= MAX_RUN, `step events per chunk: ${counts}`);
    assert.ok(stepsAfterTurn > 0, "the timer had to wait until the whole body was applied");
  });
});

Deno.test("a checkpoint that fails behind the stepping ends the request with a conflict", async () => {
  await withGatedApp(async ({ app, store, models, release }) => {
    const { body, reader } = await heldStream(app, "raced", "abcdef");
    await reader.until("step"); // the request holds the session
    for (let e = await reader.next(); e?.id !== "6"; e = await reader.next()) {
      assert.ok(e !== null, "the stream ended before step 6");
    }
    // Another writer (another isolate) commits the session meanwhile: the held checkpoint's
    // versionstamp check must fail when it goes through.
    const other = createApp({ kv: store, models, limits: { checkpointEvery: 4, topK: 1 } });
    const won = await stream(other, "raced", "zz");
    assert.equal(won.events.at(-1)!.event, "done");
    release();
    body.send("gh");
    const rest = await reader.rest();
    assertErrorEvent(rest, "conflict", 0);
    const stored = await readSession(store, "raced");
    assert.equal(stored!.record.seq, 2, "the other writer's state stands");
  });
});

// ---------------------------------------------------------------------------------------------
// 7. Client abort

Deno.test("a client that goes away: the server stops, checkpoints what it applied, frees the session", async () => {
  // What is guaranteed once the session is free again: every token the server applied is
  // durable, so durable_seq >= the step events the client received (more when the server had
  // already applied tokens whose events the client never read, e.g. the rest of a chunk) and
  // <= the tokens sent; the server reads no more of the body.
  await withApp({ checkpointEvery: 64, topK: 2 }, async ({ app, kv, sessions }) => {
    const body = new ControlledBody();
    const res = await post(app, "gone", body.stream);
    const reader = new EventReader(res.body!);
    body.send("a");
    body.send("b");
    body.send("cd"); // one chunk: applied as a whole before its events go out
    const received = [await reader.next(), await reader.next(), await reader.next()];
    assert.deepEqual(received.map((e) => e!.data.seq), [1, 2, 3]);
    await reader.cancel();

    await waitFor(() => !sessions.busy("gone"), "the session to be free");
    await waitFor(() => body.cancelled, "the body to be cancelled");
    body.send("ef"); // after the server went: never read
    const stored = await readSession(kv, "gone");
    assert.equal(stored!.record.seq, 4, "3 events received, 4 tokens applied and durable");
    const ref = new Reference(GRU);
    ref.feed("abcd");
    near(stateOf(stored), ref.state, "state after abcd");
    const info = await (await app.request("/session/gone")).json();
    assert.deepEqual([info.seq, info.durable_seq], [4, 4]);

    // The session is free: the client resends from what it saw + 1; "d" is not applied twice.
    const { events } = await stream(app, "gone", "de", { headers: { "last-event-id": "3" } });
    assert.deepEqual(steps(events).map((e) => e.data.seq), [5]);
    ref.feed("e");
    near(stateOf(await readSession(kv, "gone")), ref.state, "state after abcde");
  });
});

Deno.test("a client that goes away mid-chunk: nothing is written once the session is free", async () => {
  // One body chunk of many tokens, a checkpoint after each: the client cancels while the
  // server is still applying that chunk. Once the server says the session is free, its
  // durable state must not move any more and a new request must succeed.
  await withApp({ checkpointEvery: 1, topK: 1 }, async ({ app, kv, sessions }) => {
    const body = new ControlledBody();
    const res = await post(app, "midway", body.stream);
    const reader = new EventReader(res.body!);
    body.send("a".repeat(1500));
    await waitFor(async () => ((await readSession(kv, "midway"))?.record.seq ?? 0) >= 1, "work");
    await reader.cancel();
    await waitFor(() => !sessions.busy("midway"), "the session to be free");
    const seqNow = async () => (await readSession(kv, "midway"))!.record.seq;
    try {
      const atFree = await seqNow();
      await sleep(20);
      const later = await seqNow();
      const next = await stream(app, "midway", "b");
      const end = next.events.at(-1)!;
      assert.deepEqual(
        { later, end: end.event },
        { later: atFree, end: "done" },
        `durable seq ${atFree} when the session was freed, ${later} 20 ms later; the next ` +
          `request ended with ${JSON.stringify(end)}`,
      );
      assert.equal(await seqNow(), atFree + 1);
    } finally {
      // Let the server's leftover work end before the KV closes.
      await waitFor(() => body.cancelled, "the body to be cancelled", 10_000);
      await sleep(20);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 8. Errors

Deno.test("errors: status, JSON body, and no change to the durable state", async (t) => {
  await withApp(
    { checkpointEvery: 64, topK: 2, maxBodyBytes: 32, maxTokensPerRequest: 8 },
    async ({ app, kv }) => {
      await stream(app, "e", "abc");
      const before = await snapshot(kv, "e");
      assert.ok(before !== null);
      const unchanged = async () => assert.equal(await snapshot(kv, "e"), before);

      await t.step("invalid session ids are a 400 before anything is touched", async () => {
        const bad = ["a$b", "x".repeat(129), "..%2Fx", "%C3%A9t%C3%A9", "a%20b", "a.b"];
        for (const id of bad) {
          await assertError(await post(app, id, "abc"), 400, "invalid_name");
          await assertError(await app.request(`/session/${id}`), 400, "invalid_name");
          await assertError(await generate(app, id, {}), 400, "invalid_name");
          await assertError(
            await app.request(`/session/${id}`, { method: "DELETE" }),
            400,
            "invalid_name",
          );
        }
        // 128 characters is fine.
        await stream(app, "x".repeat(128), "");
        // An empty id, and a literal "../x" (which URL parsing resolves away), match no route.
        await assertError(await post(app, "", "abc"), 404, "not_found");
        await assertError(await post(app, "../x", "abc"), 404, "not_found");
        const keys = [];
        for await (const e of kv.list({ prefix: ["session"] })) keys.push(e.key[1]);
        assert.deepEqual(keys.sort(), ["e", "x".repeat(128)]);
      });

      await t.step("a content type other than the three is a 415", async () => {
        for (
          const type of ["application/json", "text/html", "", "text/plain; charset=latin1"]
        ) {
          await assertError(await post(app, "e", "abc", { type }), 415, "unsupported_media_type");
        }
        await unchanged();
      });

      await t.step("a body over maxBodyBytes by Content-Length is a 413", async () => {
        const text = "a".repeat(33);
        await assertError(
          await post(app, "e", text, { headers: { "content-length": "33" } }),
          413,
          "too_large",
        );
        await unchanged();
      });

      await t.step("a streamed body over maxBodyBytes ends in a too_large event", async () => {
        const chunks = ["a".repeat(20), "b".repeat(20)];
        const body = new ReadableStream<Uint8Array>({
          start(c) {
            for (const s of chunks) c.enqueue(new TextEncoder().encode(s));
            c.close();
          },
        });
        const { text, events } = await stream(app, "e", body);
        assert.equal(formatWire(parseWire(text)), text);
        assertErrorEvent(events, "too_large", 3);
        await unchanged();
      });

      await t.step("more tokens than maxTokensPerRequest end in a too_large event", async () => {
        const { events } = await stream(app, "e", "abcdefghi");
        // Whether the steps of the 8 tokens before the fault are seen depends on chunking (see
        // the test of that below); the error event and the durable state do not.
        assert.ok(steps(events).length <= 8);
        assertErrorEvent(events, "too_large", 3);
        await unchanged();
      });

      await t.step("invalid UTF-8 ends in a bad_input event", async () => {
        const { events } = await stream(app, "e", new Uint8Array([0x61, 0xff, 0x62]));
        assertErrorEvent(events, "bad_input", 3);
        await unchanged();
      });

      await t.step("a malformed first NDJSON line: error event, no session created", async () => {
        const { text, events } = await stream(app, "fresh", "{oops\n", {
          type: "application/x-ndjson",
        });
        assertErrorEvent(events, "bad_input", 0);
        assert.equal(
          text,
          `event: error\ndata: ${
            JSON.stringify({
              code: "bad_input",
              message: "line 1 is not valid JSON",
              durable_seq: 0,
            })
          }\nid: 0\n\n`,
        );
        assert.equal(await readSession(kv, "fresh"), null);
        await assertError(await app.request("/session/fresh"), 404, "not_found");
      });

      await t.step(
        "bad NDJSON later on: earlier steps, then an error; nothing durable",
        async () => {
          const body = `{"text":"de"}\n{"token":"zz"}\n`; // under maxBodyBytes
          const { events } = await stream(app, "e", body, { type: "application/x-ndjson" });
          assert.deepEqual(
            steps(events).map((e) => e.data.token),
            ["d", "e"].slice(0, steps(events).length),
          );
          assertErrorEvent(events, "bad_input", 3);
          assert.match(events.at(-1)!.data.message as string, /"zz" is not in the vocabulary/);
          for (const line of [`{"text":5}`, `{"text":"a","token":"a"}`, `[1]`, `"a"`]) {
            const r = await stream(app, "e", line + "\n", { type: "application/x-ndjson" });
            assertErrorEvent(r.events, "bad_input", 3);
          }
          const sse = await stream(app, "e", `data: {"foo":1}\n\n`, { type: "text/event-stream" });
          assertErrorEvent(sse.events, "bad_input", 3);
          await unchanged();
        },
      );

      await t.step("generate: bad options are a 400, a wrong content type a 415", async () => {
        await assertError(await generate(app, "e", "{bad"), 400, "bad_request");
        await assertError(
          await app.request("/session/e/generate", {
            method: "POST",
            body: "{}",
            headers: { "content-type": "text/plain" },
          }),
          415,
          "unsupported_media_type",
        );
        const bad = [
          `{"max_tokens": 0}`,
          `{"max_tokens": 2001}`,
          `{"max_tokens": 2.5}`,
          `{"max_tokens": "5"}`,
          `{"temperature": -1}`,
          `{"top_p": 0}`,
          `{"top_p": 1.5}`,
          `{"top_k": -1}`,
          `{"seed": -1}`,
          `{"unknown": 1}`,
          `{"max_tokens": 1e999}`,
          `{"temperature": 1e999}`,
          `{"seed": 1e999}`,
          `{"stop": 5}`,
          `[]`,
          `null`,
          ``,
        ];
        for (const json of bad) {
          const res = await generate(app, "e", json);
          assert.equal(res.status, 400, json);
          await assertError(res, 400, "bad_request");
        }
        await unchanged();
      });
    },
  );
});

Deno.test("the events before a fault do not depend on how the body was chunked", async (t) => {
  // The same bytes, once in one chunk and once a piece at a time: good tokens, then a fault.
  // Every step is deterministic, so what the client sees should not depend on chunking.
  await withApp({ checkpointEvery: 64, topK: 1, maxTokensPerRequest: 4 }, async ({ app }) => {
    const run = async (id: string, pieces: string[], type: string) => {
      const whole = await stream(app, `${id}-1`, pieces.join(""), { type });
      const body = new ControlledBody();
      const res = await post(app, `${id}-n`, body.stream, { type });
      const reader = new EventReader(res.body!);
      const slow: WireEvent[] = [];
      for (const piece of pieces.slice(0, -1)) {
        body.send(piece);
        slow.push((await reader.next())!);
      }
      body.send(pieces.at(-1)!);
      slow.push(...await reader.rest());
      return { whole: whole.events, slow };
    };

    await t.step("NDJSON: two good lines, then a token outside the vocabulary", async () => {
      const pieces = [`{"text":"d"}\n`, `{"text":"e"}\n`, `{"token":"zz"}\n`];
      const { whole, slow } = await run("nd", pieces, "application/x-ndjson");
      assertErrorEvent(whole, "bad_input", 0);
      assertErrorEvent(slow, "bad_input", 0);
      assert.deepEqual(whole.map((e) => e.event), slow.map((e) => e.event));
    });

    await t.step("text/plain: four good tokens, then one over maxTokensPerRequest", async () => {
      const { whole, slow } = await run("tp", [..."abcde"], "text/plain");
      assertErrorEvent(whole, "too_large", 0);
      assertErrorEvent(slow, "too_large", 0);
      assert.deepEqual(
        whole.map((e) => e.event),
        slow.map((e) => e.event),
        "events for the body in one chunk vs one character per chunk",
      );
    });
  });
});

// ---------------------------------------------------------------------------------------------
// 9. Generate

Deno.test("POST /session/:id/generate: seeded, greedy at temperature 0, stops, extends the session", async (t) => {
  await withApp({ checkpointEvery: 64, topK: 2 }, async ({ app, kv }) => {
    const prime = "the ";

    await t.step("the same seed and state give the same text", async () => {
      await stream(app, "g1", prime);
      await stream(app, "g2", prime);
      const opts = { max_tokens: 40, seed: 7 };
      const a = await generated(app, "g1", opts);
      const b = await generated(app, "g2", opts);
      assert.equal(a.tokens.length, 40);
      assert.deepEqual(a.tokens, b.tokens);
      assert.deepEqual(a.done, { seq: 44, durable_seq: 44, finish_reason: "length" });
      assert.deepEqual(
        (await readSession(kv, "g1"))!.record.hidden,
        (await readSession(kv, "g2"))!.record.hidden,
      );
    });

    await t.step("different seeds give different texts", async () => {
      const texts = new Set<string>();
      for (const seed of [1, 2, 3, 4]) {
        const id = `seed${seed}`;
        await stream(app, id, prime);
        texts.add((await generated(app, id, { max_tokens: 40, seed })).tokens.join(""));
      }
      assert.ok(texts.size >= 2, `4 seeds gave ${texts.size} distinct texts`);
    });

    await t.step("temperature 0 is greedy: the argmax of each step", async () => {
      await stream(app, "greedy", prime);
      const got = await generated(app, "greedy", { max_tokens: 12, temperature: 0, seed: 9 });
      const ref = new Reference(GRU);
      let probs = ref.feed(prime).at(-1)!;
      const want: string[] = [];
      for (let k = 0; k < 12; k++) {
        const id = argmax(probs);
        want.push(VOCAB[id]);
        probs = ref.step(id);
      }
      assert.deepEqual(got.tokens, want);
      near(stateOf(await readSession(kv, "greedy")), ref.state, "state after greedy");
    });

    await t.step(
      "stop ends generation with finish_reason stop, the stop text at the end",
      async () => {
        // A two-token stop text taken from the greedy continuation, at its first occurrence.
        const ref = new Reference(GRU);
        let probs = ref.feed(prime).at(-1)!;
        let text = "";
        const ends: number[] = [];
        for (let k = 0; k < 12; k++) {
          const id = argmax(probs);
          text += VOCAB[id];
          ends.push(text.length);
          probs = ref.step(id);
        }
        const k = 4;
        const stop = text.slice(ends[k - 2], ends[k]);
        const first = text.indexOf(stop) + stop.length;
        await stream(app, "stop", prime);
        const got = await generated(app, "stop", {
          max_tokens: 50,
          temperature: 0,
          stop: ["never-seen", stop],
        });
        const out = got.tokens.join("");
        assert.equal(got.done.finish_reason, "stop");
        assert.ok(out.endsWith(stop), `${JSON.stringify(out)} ends with ${JSON.stringify(stop)}`);
        assert.equal(out, text.slice(0, first));
        assert.equal(got.done.seq, prime.length + got.tokens.length);
      },
    );

    await t.step("generated tokens become part of the session", async () => {
      await stream(app, "ext", prime);
      const got = await generated(app, "ext", { max_tokens: 10, seed: 3 });
      const info = await (await app.request("/session/ext")).json();
      assert.equal(info.seq, prime.length + 10);
      assert.equal(info.durable_seq, prime.length + 10);
      const { events } = await stream(app, "ext", "x");
      assert.deepEqual(steps(events).map((e) => e.data.seq), [prime.length + 11]);
      const ref = new Reference(GRU);
      ref.feed(prime);
      ref.feedTokens(got.tokens);
      const probs = ref.feed("x");
      assertSteps(steps(events), probs, ["x"], prime.length + 11, 2, VOCAB);
      near(stateOf(await readSession(kv, "ext")), ref.state, "state after generate + x");
    });
  });
});

Deno.test("generate is not disturbed by another session stepping the same model meanwhile", async () => {
  await withApp({ checkpointEvery: 1000, topK: 1 }, async ({ app }) => {
    const opts = { max_tokens: 20, temperature: 0 };
    const alone = (await generated(app, "alone", opts)).tokens;
    const res = await generate(app, "shared", opts);
    const reader = new EventReader(res.body!);
    const tokens = [];
    for (let k = 0; k < 3; k++) tokens.push((await reader.next())!.data.token);
    // While that generation waits for its client, another session of the same version steps.
    await stream(app, "other", "zzzzqqqq");
    for (const e of await reader.rest()) if (e.event === "token") tokens.push(e.data.token);
    assert.deepEqual(tokens, alone);
  });
});

// ---------------------------------------------------------------------------------------------
// 10. Keep-alive

Deno.test("a quiet stream gets `: keep-alive` comments", async () => {
  await withApp({ checkpointEvery: 64, topK: 1, keepAliveMs: 50 }, async ({ app }) => {
    const body = new ControlledBody();
    const res = await post(app, "quiet", body.stream);
    const text = res.text();
    body.send("a");
    await sleep(200);
    body.send("b");
    body.close();
    const wire = await text;
    const frames = parseWire(wire);
    assert.equal(formatWire(frames), wire);
    const kinds = frames.map((f) => f.kind === "comment" ? f.text : f.event.event);
    const between = kinds.slice(kinds.indexOf("step") + 1, kinds.lastIndexOf("step"));
    assert.ok(between.length >= 1, JSON.stringify(kinds));
    assert.ok(between.every((k) => k === ": keep-alive"), JSON.stringify(kinds));
    assert.ok(wire.includes("\n\n: keep-alive\n\n"));
    assert.deepEqual(kinds.filter((k) => k !== ": keep-alive"), [
      "step",
      "step",
      "checkpoint",
      "done",
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// 11. The rest of the API

Deno.test("GET /healthz, /models, /models/:name and unknown routes", async (t) => {
  await withApp({}, async ({ app }) => {
    await t.step("/healthz is 200", async () => {
      const res = await app.request("/healthz");
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { status: "ok" });
    });

    await t.step("an unknown route is a 404 with the error body", async () => {
      const msg = await assertError(await app.request("/nope"), 404, "not_found");
      assert.equal(msg, "no route GET /nope");
      await assertError(await app.request("/session/x/y"), 404, "not_found");
      await assertError(await app.request("/healthz", { method: "POST" }), 404, "not_found");
    });

    await t.step("GET /models lists names, current and version summaries", async () => {
      const res = await app.request("/models");
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.deepEqual(Object.keys(body), ["models"]);
      assert.equal(body.models.length, 1);
      const [m] = body.models;
      assert.deepEqual([m.name, m.current, m.versions.length], ["moby", 1, 1]);
      const v = m.versions[0];
      assert.equal(v.version, 1);
      assert.equal(v.cell, "gru");
      assert.equal(v.layers, 2);
      assert.equal(v.hiddenSize, 16);
      assert.equal(v.vocabSize, 29);
      assert.equal(v.task, "lm");
      assert.equal(v.val_loss, null);
      assert.equal(typeof v.sha256, "string");
      assert.equal("vocabulary" in v, false, "listings leave the vocabulary out");
    });

    await t.step("GET /models/:name has the full manifests", async () => {
      const res = await app.request("/models/moby");
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.deepEqual(Object.keys(body).sort(), ["current", "name", "versions"]);
      assert.equal(body.name, "moby");
      assert.equal(body.current, 1);
      assert.deepEqual(body.versions[0].vocabulary, VOCAB);
    });

    await t.step("an unknown model is 404, an invalid name 400", async () => {
      await assertError(await app.request("/models/nope"), 404, "not_found");
      await assertError(await app.request("/models/a$b"), 400, "invalid_name");
      await assertError(await app.request(`/models/${"m".repeat(65)}`), 400, "invalid_name");
    });
  });
});
