// End to end: the four RNN shapes from a real server process on loopback, read as a browser
// would (fetch, then eventsource-parser). Each server starts on a fresh KV file, so it publishes
// the fixture models itself; every event's id must be its seq.
import assert from "node:assert/strict";
import {
  getSession,
  openStream,
  postText,
  ServerProcess,
  type SseEvent,
  SseReader,
  withTimeout,
} from "./_server.ts";

/** A server on a fresh KV file in a temporary directory; stopped and removed afterwards. */
async function withServer(fn: (server: ServerProcess) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shapes-e2e-" });
  let server: ServerProcess | null = null;
  try {
    server = await ServerProcess.start({ kvPath: `${dir}/kv.sqlite3` });
    assert.match(
      server.log,
      /published fixture models: moby, names-classify, names-generate, names-single/,
    );
    await fn(server);
  } catch (err) {
    if (server !== null) console.error(server.log);
    throw err;
  } finally {
    await server?.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Asserts every event's id is its data's seq. */
function assertIdsAreSeqs(events: SseEvent[]) {
  for (const e of events) assert.equal(e.id, String(e.json.seq), `${e.event}: ${e.data}`);
}

function names(events: SseEvent[]): string[] {
  return events.map((e) => e.event);
}

Deno.test("many to many over SSE: moby answers each character with a step, then checkpoint and done", async () => {
  await withServer(async (server) => {
    const r = await postText(server.base, "lm1", "The whale", { query: "model=moby" });
    assert.equal(r.status, 200);
    assert.deepEqual(names(r.events), [...Array(9).fill("step"), "checkpoint", "done"]);
    assertIdsAreSeqs(r.events);
    r.events.slice(0, 9).forEach((e, j) => {
      assert.equal(e.json.seq, j + 1);
      assert.equal(e.json.token, "The whale"[j]);
      assert.equal(e.json.top.length, 5);
      const ps = e.json.top.map((t: { p: number }) => t.p);
      assert.ok(ps.every((p: number, k: number) => p > 0 && (k === 0 || p <= ps[k - 1])), e.data);
    });
    assert.deepEqual(r.events.at(-1)!.json, { seq: 9, durable_seq: 9 });
    assert.equal((await getSession(server.base, "lm1")).body.seq, 9);
  });
});

Deno.test("many to one over SSE: names-classify streams running probabilities as the name arrives, then result", async () => {
  await withServer(async (server) => {
    const s = await openStream(server.base, "cls1", { query: "model=names-classify" });
    try {
      assert.equal(s.res.status, 200);
      const seen: SseEvent[] = [];
      s.body.write("Em");
      // The first two steps arrive before the body ends.
      for (let k = 0; k < 2; k++) seen.push((await s.events.next())!);
      s.body.write("ma");
      s.body.close();
      seen.push(...await s.events.rest());
      assert.deepEqual(names(seen), [...Array(4).fill("step"), "result", "checkpoint", "done"]);
      assertIdsAreSeqs(seen);
      assert.deepEqual(seen.slice(0, 4).map((e) => e.json.token), ["E", "m", "m", "a"]);
      for (const e of seen.slice(0, 4)) {
        const { female, male } = e.json.probs;
        assert.ok(Math.abs(female + male - 1) < 1e-6, e.data);
      }
      const result = seen[4].json;
      assert.equal(result.seq, 4);
      assert.deepEqual(result.probs, seen[3].json.probs, "the last step's probabilities");
      assert.equal(result.label, "female", seen[4].data);
      assert.deepEqual(seen.at(-1)!.json, { seq: 4, durable_seq: 4 });
    } finally {
      await s.close();
    }
  });
});

Deno.test("one to many over SSE: names-generate writes a name from a class, one token per character, then a newline", async () => {
  await withServer(async (server) => {
    const generate = async (id: string, options: Record<string, unknown>) => {
      const res = await fetch(`${server.base}/session/${id}/generate`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(options),
        signal: AbortSignal.timeout(20_000),
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "text/event-stream");
      const reader = new SseReader(res.body!);
      try {
        return await withTimeout(reader.rest(), 20_000, `generate ${id}`);
      } finally {
        await reader.cancel();
      }
    };
    for (const [id, cls, seed] of [["gen1", "female", 1], ["gen2", "male", 2]] as const) {
      const events = await generate(id, { model: "names-generate", class: cls, seed });
      const tokens = events.filter((e) => e.event === "token");
      assert.deepEqual(names(events), [...tokens.map(() => "token"), "checkpoint", "done"]);
      assertIdsAreSeqs(events);
      assert.deepEqual(
        tokens.map((e) => e.json.seq),
        tokens.map((_, k) => k + 2),
        "class is seq 1",
      );
      const text = tokens.map((e) => e.json.token).join("");
      assert.match(text, /^[A-Z][a-z]{1,14}\n$/, `a plausible name: ${JSON.stringify(text)}`);
      const seq = tokens.length + 1;
      assert.deepEqual(events.at(-1)!.json, { seq, durable_seq: seq, finish_reason: "stop" });
      assert.equal((await getSession(server.base, id)).body.seq, seq);
      const again = await generate(`${id}-again`, { model: "names-generate", class: cls, seed });
      assert.deepEqual(again.map((e) => e.data), events.map((e) => e.data), "same seed, same name");
    }
  });
});

Deno.test("one to one over SSE: names-single answers one character with result, checkpoint, done", async () => {
  await withServer(async (server) => {
    for (const [ch, seq] of [["a", 1], ["o", 2]] as const) {
      const r = await postText(server.base, "one1", ch, { query: "model=names-single" });
      assert.equal(r.status, 200);
      assert.deepEqual(names(r.events), ["result", "checkpoint", "done"]);
      assertIdsAreSeqs(r.events);
      const { label, probs } = r.events[0].json;
      assert.deepEqual(Object.keys(probs), ["female", "male"]);
      assert.equal(label, probs.female >= probs.male ? "female" : "male");
      assert.deepEqual(r.events[2].json, { seq, durable_seq: seq });
    }
    const wrong = await postText(server.base, "one1", "ab");
    assert.equal(wrong.status, 400);
    assert.equal((wrong.json as { error: { code: string } }).error.code, "wrong_task");
    assert.equal((await getSession(server.base, "one1")).body.seq, 2);
  });
});
