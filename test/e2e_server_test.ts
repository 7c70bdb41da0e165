// End to end: a real server process (`src/start.ts`) on 127.0.0.1, real sockets, a real KV file.
// Streaming per token, SSE framing, resume without duplicates, concurrent writers, kill -9,
// SIGTERM, and seeding a fresh store. Each test starts its own server on a KV file in a temp dir
// (a small GRU language model published as `moby` before the server starts) and removes both.
import assert from "node:assert/strict";
import {
  getSession,
  MOBY_FIXTURE,
  type OpenStream,
  openStream,
  postText,
  publishFile,
  ServerProcess,
  sleep,
  type SseEvent,
  stepsBySeq,
  withTimeout,
} from "./_server.ts";

/** 299 characters, every one in the small model's vocabulary. */
const TEXT = "call me ishmael. some years ago never mind how long precisely having little or no " +
  "money in my purse and nothing particular to interest me on shore i thought i would sail " +
  "about a little and see the watery part of the world. it is a way i have of driving off the " +
  "spleen and regulating the circulation.";

/** A temp dir with a KV file that serves the small model as `moby`. */
async function withKv<T>(fn: (kvPath: string, dir: string) => Promise<T>, publish = true) {
  const dir = await Deno.makeTempDir({ prefix: "e2e_server_" });
  try {
    const kvPath = `${dir}/kv.sqlite3`;
    if (publish) await publishFile(kvPath);
    return await fn(kvPath, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs `fn` with a server on a fresh KV; the server is stopped (or killed) afterwards. */
function withServer<T>(env: Record<string, string>, fn: (s: ServerProcess) => Promise<T>) {
  return withKv(async (kvPath) => {
    const server = await ServerProcess.start({ kvPath, env });
    try {
      return await fn(server);
    } finally {
      await server.stop();
    }
  });
}

/** The step events (by seq, raw data) of an uninterrupted session over `text`. */
async function reference(base: string, id: string, text: string): Promise<Map<number, string>> {
  const { status, events } = await postText(base, id, text);
  assert.equal(status, 200);
  assert.equal(events.at(-1)?.event, "done");
  const steps = stepsBySeq(events);
  assert.equal(steps.size, [...text].length);
  return steps;
}

/**
 * Writes `text` one character at a time, each only after the previous character's step event
 * arrived; returns every event read. Stops early when `stop(stepsSoFar)` says so.
 */
async function pingPong(
  s: OpenStream,
  text: string,
  into: SseEvent[],
  stop: (steps: number) => boolean = () => false,
): Promise<number> {
  let steps = 0;
  for (const ch of text) {
    if (stop(steps)) break;
    s.body.write(ch);
    const e = await s.events.until((e) => e.event === "step" || e.event === "error", into, 5000);
    assert.ok(e !== null, "the stream ended before the step event");
    assert.equal(e.event, "step", `expected a step event, got ${e.event}: ${e.data}`);
    steps++;
  }
  return steps;
}

/** Asserts every seq 1..n occurs exactly once among `steps` and equals the reference. */
function assertExactlyOnce(steps: SseEvent[], ref: Map<number, string>, n: number) {
  const count = new Map<number, number>();
  for (const e of steps) {
    assert.equal(e.event, "step");
    const seq = e.json.seq as number;
    count.set(seq, (count.get(seq) ?? 0) + 1);
    assert.equal(e.data, ref.get(seq), `step ${seq} differs from the uninterrupted session`);
  }
  const wrong = [...Array(n).keys()].map((k) => k + 1).filter((seq) => count.get(seq) !== 1);
  assert.deepEqual(
    wrong.map((seq) => [seq, count.get(seq) ?? 0]),
    [],
    "seqs received other than exactly once ([seq, times])",
  );
  assert.equal(count.size, n);
}

/** Polls GET /session/:id until no request holds the session (seq = durable_seq). */
async function settled(base: string, id: string) {
  const deadline = Date.now() + 5000;
  while (true) {
    const { status, body } = await getSession(base, id);
    assert.equal(status, 200, JSON.stringify(body));
    if (body.seq === body.durable_seq) return body;
    if (Date.now() > deadline) assert.fail(`session ${id} never settled: ${JSON.stringify(body)}`);
    await sleep(20);
  }
}

/** POST with retries while the previous request still holds the session (409). */
async function postWhenFree(
  base: string,
  id: string,
  text: string,
  options: Parameters<typeof postText>[3],
) {
  const deadline = Date.now() + 5000;
  while (true) {
    const r = await postText(base, id, text, options);
    if (r.status !== 409 || Date.now() > deadline) return r;
    await sleep(50);
  }
}

Deno.test({
  name: "e2e: each step event arrives before the next token is sent",
  async fn() {
    await withServer({}, async (server) => {
      const s = await openStream(server.base, "pingpong");
      try {
        assert.equal(s.res.status, 200);
        assert.match(s.res.headers.get("content-type") ?? "", /^text\/event-stream/);
        const events: SseEvent[] = [];
        const chars = [..."moby "];
        for (const [k, ch] of chars.entries()) {
          s.body.write(ch);
          const step = await s.events.until((e) => e.event === "step", events, 5000);
          assert.ok(step !== null, `no step event for ${JSON.stringify(ch)}`);
          // The body is still open: the output came back before anything else was sent.
          assert.equal(s.body.closed, false);
          assert.equal(step.json.seq, k + 1);
          assert.equal(step.id, String(k + 1));
          assert.equal(step.json.token, ch);
        }
        s.body.close();
        const rest = await s.events.rest(5000);
        assert.deepEqual(rest.map((e) => e.event), ["checkpoint", "done"]);
        assert.equal(rest[0].json.seq, 5);
        assert.deepEqual(rest[1].json, { seq: 5, durable_seq: 5 });
      } finally {
        await s.close();
      }
    });
  },
});

Deno.test({
  name: "e2e: SSE framing — ids are session seqs (eventsource-parser and Deno's EventSource)",
  async fn(t) {
    await withServer({ CHECKPOINT_EVERY: "4" }, async (server) => {
      await t.step("eventsource-parser: every event's id is its seq", async () => {
        const text = TEXT.slice(0, 10);
        const { status, events } = await postText(server.base, "framing", text);
        assert.equal(status, 200);
        // Checkpoints are written while stepping goes on: each checkpoint event follows the step
        // of the seq it made durable, perhaps after later steps too; the last comes before done.
        const kinds = events.map((e) => e.event);
        assert.deepEqual(kinds.filter((k) => k !== "checkpoint"), [
          ...Array(10).fill("step"),
          "done",
        ]);
        const checkpoints = events.filter((e) => e.event === "checkpoint").map((e) => e.json.seq);
        assert.deepEqual(checkpoints, [4, 8, 10]);
        for (const seq of checkpoints) {
          const at = events.findIndex((e) => e.event === "checkpoint" && e.json.seq === seq);
          const step = events.findIndex((e) => e.event === "step" && e.json.seq === seq);
          assert.ok(step < at, `checkpoint ${seq} comes after step ${seq}: ${kinds}`);
        }
        assert.deepEqual(kinds.slice(-2), ["checkpoint", "done"]);
        for (const e of events) {
          assert.match(e.id ?? "", /^\d+$/, `${e.event} has no numeric id`);
          assert.equal(Number(e.id), e.json.seq, `${e.event} ${e.data}`);
        }
        assert.deepEqual(
          events.filter((e) => e.event === "step").map((e) => e.json.token).join(""),
          text,
        );
        // A second request continues the numbering.
        const more = await postText(server.base, "framing", "ab");
        assert.deepEqual(more.events.map((e) => Number(e.id)), [11, 12, 12, 12]);
      });

      await t.step("Deno's EventSource reads the stream (through a GET proxy)", async () => {
        // EventSource only sends GET and the API streams on POST, so a tiny proxy in this
        // process turns GET /sse/:id into POST /session/:id with a fixed text and passes the
        // response bytes through untouched: what EventSource parses is the server's framing.
        const text = TEXT.slice(0, 9);
        const proxy = Deno.serve(
          { hostname: "127.0.0.1", port: 0, onListen: () => {} },
          async (req) => {
            const id = new URL(req.url).pathname.split("/").at(-1)!;
            const upstream = await fetch(`${server.base}/session/${id}`, {
              method: "POST",
              headers: { "content-type": "text/plain" },
              body: text,
              signal: AbortSignal.timeout(10_000),
            });
            return new Response(upstream.body, {
              status: upstream.status,
              headers: { "content-type": upstream.headers.get("content-type") ?? "" },
            });
          },
        );
        const es = new EventSource(`http://127.0.0.1:${proxy.addr.port}/sse/es1`);
        try {
          const seen: { type: string; lastEventId: string; seq: number; token?: string }[] = [];
          await withTimeout(
            new Promise<void>((resolve, reject) => {
              const on = (e: MessageEvent) => {
                const data = JSON.parse(e.data);
                seen.push({ type: e.type, lastEventId: e.lastEventId, seq: data.seq, ...data });
                if (e.type === "done") {
                  es.close();
                  resolve();
                }
              };
              for (const type of ["step", "checkpoint", "done", "error"]) {
                es.addEventListener(type, on as EventListener);
              }
              es.onerror = () => {
                es.close();
                reject(new Error("EventSource failed before done"));
              };
            }),
            10_000,
            "EventSource events",
          );
          assert.equal(seen.filter((e) => e.type === "step").length, 9);
          for (const e of seen) assert.equal(e.lastEventId, String(e.seq), JSON.stringify(e));
          assert.equal(
            seen.filter((e) => e.type === "step").map((e) => e.token).join(""),
            text,
          );
          assert.deepEqual(seen.map((e) => e.type).slice(-2), ["checkpoint", "done"]);
        } finally {
          es.close();
          await proxy.shutdown();
        }
      });
    });
  },
});

Deno.test({
  name: "e2e: resume after a cut connection gives every seq exactly once, identical outputs",
  async fn(t) {
    const text = TEXT.slice(0, 200);
    await withServer({ CHECKPOINT_EVERY: "16" }, async (server) => {
      const ref = await reference(server.base, "ref", text);

      /** Streams ~50 characters, one per step event, then cuts the connection. */
      const firstPart = async (id: string) => {
        const s = await openStream(server.base, id);
        const events: SseEvent[] = [];
        try {
          assert.equal(s.res.status, 200);
          await pingPong(s, text, events, (n) => n >= 50);
          s.abort.abort();
        } finally {
          await s.close();
        }
        const steps = events.filter((e) => e.event === "step");
        assert.equal(steps.length, 50);
        const checkpoints = events.filter((e) => e.event === "checkpoint").map((e) => e.json.seq);
        // A checkpoint's event follows when its commit lands, so 48's may come after step 50.
        assert.deepEqual(checkpoints, [16, 32, 48].slice(0, checkpoints.length));
        assert.ok(checkpoints.length >= 2, `checkpoints ${checkpoints}`);
        return steps;
      };

      /** Cuts after 50 steps, learns the durable seq, resends the rest from durable + 1. */
      const cutAndResume = async (id: string, how: "header" | "query") => {
        const first = await firstPart(id);
        const info = await settled(server.base, id);
        const durable = info.durable_seq as number;
        assert.ok(durable >= 48 && durable <= 50, `durable seq ${durable}`);
        const second = await postWhenFree(
          server.base,
          id,
          text.slice(durable),
          how === "header"
            ? { headers: { "last-event-id": String(durable) } }
            : { query: `from=${durable + 1}` },
        );
        assert.equal(second.status, 200, JSON.stringify(second.json));
        assert.deepEqual(second.events.at(-1)?.json, { seq: 200, durable_seq: 200 });
        const resent = second.events.filter((e) => e.event === "step");
        assert.equal(resent[0]?.json.seq, durable + 1);
        // Every output, before and after the cut, is the uninterrupted session's.
        for (const e of [...first, ...resent]) {
          assert.equal(e.data, ref.get(e.json.seq), `step ${e.json.seq}`);
        }
        // The cut ended the request: what it applied (and the client received) is durable, so
        // the resend repeats nothing.
        assert.equal(
          durable,
          50,
          `the client received steps 1..50, but the durable seq after the cut is ${durable}: ` +
            `steps ${durable + 1}..50 were dropped and are sent again`,
        );
        assertExactlyOnce([...first, ...resent], ref, 200);
      };

      await t.step("cut, then Last-Event-ID: <durable seq>", () => cutAndResume("cut-h", "header"));
      await t.step("cut, then ?from=<durable seq + 1>", () => cutAndResume("cut-q", "query"));

      await t.step("an overlapping resend (?from=) is skipped, not applied again", async () => {
        // The first request ends normally after 50 tokens (durable seq 50); the resend starts
        // ten tokens earlier: those are skipped and only 51..200 come back.
        const s = await openStream(server.base, "overlap");
        const events: SseEvent[] = [];
        try {
          await pingPong(s, text.slice(0, 50), events);
          s.body.close();
          assert.equal((await s.events.rest(5000)).at(-1)?.event, "done");
        } finally {
          await s.close();
        }
        const info = await settled(server.base, "overlap");
        assert.equal(info.durable_seq, 50);
        const second = await postText(server.base, "overlap", text.slice(40), {
          query: "from=41",
        });
        assert.equal(second.status, 200, JSON.stringify(second.json));
        const resent = second.events.filter((e) => e.event === "step");
        assert.equal(resent[0]?.json.seq, 51);
        assertExactlyOnce([...events.filter((e) => e.event === "step"), ...resent], ref, 200);
        assert.equal((await getSession(server.base, "overlap")).body.durable_seq, 200);
      });
    });
  },
});

Deno.test({
  name: "e2e: concurrent writers on one session",
  async fn(t) {
    await withKv(async (kvPath) => {
      const server = await ServerProcess.start({ kvPath, env: { CHECKPOINT_EVERY: "16" } });
      try {
        await t.step("one server: one stream, the other 409 conflict", async () => {
          const [a, b] = await Promise.all([
            openStream(server.base, "shared"),
            openStream(server.base, "shared"),
          ]);
          try {
            const statuses = [a.res.status, b.res.status].sort();
            assert.deepEqual(statuses, [200, 409]);
            const [winner, loser] = a.res.status === 200 ? [a, b] : [b, a];
            const err = await loser.res.json();
            assert.equal(err.error.code, "conflict");
            assert.equal(typeof err.error.message, "string");
            const events: SseEvent[] = [];
            const applied = await pingPong(winner, TEXT.slice(0, 20), events);
            winner.body.close();
            const rest = await winner.events.rest(5000);
            assert.equal(rest.at(-1)?.event, "done");
            const info = await settled(server.base, "shared");
            assert.equal(info.durable_seq, applied);
            assert.equal(info.seq, 20);
          } finally {
            await Promise.all([a.close(), b.close()]);
          }
        });

        await t.step(
          "two servers on one KV file: the later checkpoint gets a conflict",
          async () => {
            // Two isolates (as on Deno Deploy) share the store; only the versionstamp check on
            // the checkpoint can notice the second writer.
            const other = await ServerProcess.start({ kvPath, env: { CHECKPOINT_EVERY: "16" } });
            const text = TEXT.slice(0, 20);
            const a = await openStream(server.base, "two-isolates");
            const b = await openStream(other.base, "two-isolates");
            try {
              assert.equal(a.res.status, 200);
              assert.equal(b.res.status, 200);
              // Alternate tokens: a reaches seq 16 and checkpoints first; b's checkpoint at 16
              // must fail with a conflict and not overwrite a's state.
              const aEvents: SseEvent[] = [], bEvents: SseEvent[] = [];
              let bError: SseEvent | null = null;
              for (const [k, ch] of [...text].entries()) {
                a.body.write(ch);
                await a.events.until((e) => e.event === "step", aEvents, 5000);
                // a's checkpoint at 16 lands before b's token 16 is sent: otherwise the two
                // checkpoints race, and either may be the one that wins.
                if (k === 15) await a.events.until((e) => e.event === "checkpoint", aEvents, 5000);
                if (bError === null) {
                  b.body.write(ch === " " ? "x" : " "); // a different text
                  const e = await b.events.until(
                    (e) => ["step", "error"].includes(e.event),
                    bEvents,
                  );
                  // b's checkpoint at 16 is written while b steps on, so some of b's later
                  // tokens may be stepped (never durable) before its failure ends the stream.
                  if (e?.event === "error") bError = e;
                }
              }
              assert.ok(bError !== null, `b never got an error: ${bEvents.map((e) => e.data)}`);
              assert.equal((await b.events.rest(5000)).length, 0, "the stream ends after error");
              a.body.close();
              assert.equal((await a.events.rest(5000)).at(-1)?.event, "done");
              const info = await settled(server.base, "two-isolates");
              assert.equal(info.durable_seq, 20);
              // The durable state is a's: one more token gives a's reference output.
              const ref = await reference(server.base, "two-isolates-ref", text + "a");
              const next = await postText(server.base, "two-isolates", "a");
              assert.equal(stepsBySeq(next.events).get(21), ref.get(21));
              // The loser is told it lost: a conflict (not an internal error such as SQLite's
              // "database is locked" when both processes commit at once).
              assert.equal(bError.json.code, "conflict", `${bError.data}\n${other.log}`);
            } finally {
              await Promise.all([a.close(), b.close()]);
              await other.stop();
            }
          },
        );
      } finally {
        await server.stop();
      }
    });
  },
});

Deno.test({
  name: "e2e: an error mid-request still delivers every step that became durable",
  async fn(t) {
    const env = { CHECKPOINT_EVERY: "16", MAX_TOKENS_PER_REQUEST: "40" };
    await withServer(env, async (server) => {
      /** The error ends the stream; the client must have the outputs of every durable seq. */
      const check = async (id: string, events: SseEvent[], text: string, code: string) => {
        const last = events.at(-1);
        assert.equal(last?.event, "error", JSON.stringify(events.map((e) => e.event)));
        assert.equal(last.json.code, code);
        const durable = last.json.durable_seq as number;
        const info = await settled(server.base, id);
        assert.equal(info.durable_seq, durable, "the error event tells the durable seq");
        const ref = await reference(server.base, `${id}-ref`, text.slice(0, 40));
        const steps = stepsBySeq(events);
        const missing = [...Array(durable).keys()].map((k) => k + 1).filter((q) => !steps.has(q));
        assert.deepEqual(
          missing,
          [],
          `the session is durable at seq ${durable}, but the client never got these steps`,
        );
        for (const [seq, data] of steps) assert.equal(data, ref.get(seq), `step ${seq}`);
      };

      await t.step("more tokens than a request may apply, in one chunk", async () => {
        const text = TEXT.slice(0, 50);
        const { status, events } = await postText(server.base, "too-many", text);
        assert.equal(status, 200);
        await check("too-many", events, text, "too_large");
      });

      await t.step("an unknown token after valid lines (NDJSON)", async () => {
        const text = TEXT.slice(0, 40);
        const lines = [0, 10, 20, 30].map((k) => JSON.stringify({ text: text.slice(k, k + 10) }));
        const body = [...lines, JSON.stringify({ token: "no such token" })].join("\n") + "\n";
        const { status, events } = await postText(server.base, "bad-token", body, {
          contentType: "application/x-ndjson",
        });
        assert.equal(status, 200);
        await check("bad-token", events, text, "bad_input");
      });
    });
  },
});

Deno.test({
  name: "e2e: kill -9 mid-stream loses only what was not checkpointed; resume completes",
  async fn() {
    const text = TEXT.slice(0, 120);
    await withKv(async (kvPath) => {
      const env = { CHECKPOINT_EVERY: "8" };
      let server = await ServerProcess.start({ kvPath, env });
      try {
        const seen: SseEvent[] = [];
        const s = await openStream(server.base, "killed");
        let lastCheckpoint = 0, lastStep = 0;
        try {
          assert.equal(s.res.status, 200);
          // Write the next character as soon as the previous step arrives (the server is busy
          // all the time); kill it three steps after the third checkpoint, right after writing.
          for (const ch of text) {
            s.body.write(ch);
            await sleep(2);
            const e = await s.events.until((e) => e.event === "step", seen, 5000);
            assert.ok(e !== null);
            lastStep = e.json.seq;
            const cps = seen.filter((e) => e.event === "checkpoint");
            lastCheckpoint = cps.at(-1)?.json.seq ?? 0;
            if (cps.length >= 3 && lastStep >= lastCheckpoint + 3) {
              s.body.write(text[lastStep]);
              const status = await server.kill();
              assert.equal(status.signal, "SIGKILL");
              break;
            }
          }
          // The connection dies with the process.
          await assert.rejects(() => s.events.rest(5000));
        } finally {
          await s.close();
        }
        assert.equal(lastCheckpoint, 24);
        assert.equal(lastStep, 27);

        server = await ServerProcess.start({ kvPath, env });
        const info = (await getSession(server.base, "killed")).body;
        assert.ok(
          info.durable_seq >= lastCheckpoint && info.durable_seq <= lastStep + 1,
          `durable seq ${info.durable_seq}, last checkpoint seen ${lastCheckpoint}`,
        );
        const durable = info.durable_seq as number;
        const resumed = await postText(server.base, "killed", text.slice(durable), {
          headers: { "last-event-id": String(durable) },
        });
        assert.equal(resumed.status, 200, JSON.stringify(resumed.json));
        assert.deepEqual(resumed.events.at(-1)?.json, { seq: 120, durable_seq: 120 });
        const ref = await reference(server.base, "killed-ref", text);
        // Every output the client got, before the kill and after, equals the reference; the
        // ones replayed (seq durable+1..lastStep) equal what the first server sent.
        const all = [...seen, ...resumed.events].filter((e) => e.event === "step");
        for (const e of all) assert.equal(e.data, ref.get(e.json.seq), `seq ${e.json.seq}`);
        const got = new Set(all.map((e) => e.json.seq));
        assert.equal(got.size, 120);
      } finally {
        await server.stop();
      }
    });
  },
});

Deno.test({
  name: "e2e: SIGTERM with a stream open checkpoints it and exits 0",
  async fn() {
    const text = TEXT.slice(0, 40);
    await withKv(async (kvPath) => {
      const env = { CHECKPOINT_EVERY: "8" };
      let server = await ServerProcess.start({ kvPath, env });
      try {
        const s = await openStream(server.base, "termed");
        const seen: SseEvent[] = [];
        try {
          assert.equal(s.res.status, 200);
          const received = await pingPong(s, text, seen, (n) => n >= 13);
          assert.equal(received, 13);
          // The checkpoint of 8 is written behind the stepping; its event may not be here yet.
          const checkpoints = seen.filter((e) => e.event === "checkpoint").map((e) => e.json.seq);
          assert.deepEqual(checkpoints, [8].slice(0, checkpoints.length));
          const status = await server.stop("SIGTERM", 5000);
          assert.equal(status.code, 0, server.log);
          assert.equal(status.signal, null);
          await s.events.rest(5000).catch(() => []);
        } finally {
          await s.close();
        }
        server = await ServerProcess.start({ kvPath, env });
        const info = (await getSession(server.base, "termed")).body;
        assert.equal(info.durable_seq, 13);
        assert.equal(info.seq, 13);
        // The checkpointed state is the right one: resuming gives the reference outputs.
        const resumed = await postText(server.base, "termed", text.slice(13), {
          headers: { "last-event-id": "13" },
        });
        const ref = await reference(server.base, "termed-ref", text);
        const all = [...seen, ...resumed.events].filter((e) => e.event === "step");
        assertExactlyOnce(all, ref, 40);
      } finally {
        await server.stop();
      }
    });
  },
});

const hasMobyFixture = (() => {
  try {
    return Deno.statSync(MOBY_FIXTURE).isFile;
  } catch {
    return false;
  }
})();
if (!hasMobyFixture) {
  console.error(`skipping the seeding test: ${MOBY_FIXTURE} does not exist yet`);
}

Deno.test({
  name: "e2e: a fresh KV file is seeded with the fixture models (moby)",
  ignore: !hasMobyFixture,
  async fn() {
    await withKv(async (kvPath) => {
      const server = await ServerProcess.start({ kvPath });
      try {
        assert.match(server.log, /published fixture models: .*\bmoby\b/);
        const res = await fetch(`${server.base}/models`, { signal: AbortSignal.timeout(5000) });
        assert.equal(res.status, 200);
        const body = await res.json();
        const moby = body.models.find((m: { name: string }) => m.name === "moby");
        assert.ok(moby, JSON.stringify(body));
        assert.equal(moby.current, 1);
        // With what `deno task train` would have published: training config, metrics, curves.
        const detail = await fetch(`${server.base}/models/moby`, {
          signal: AbortSignal.timeout(5000),
        });
        const manifest = (await detail.json()).versions[0];
        assert.equal(manifest.training.cell, "gru");
        assert.equal(manifest.training.hidden, 128);
        assert.equal(manifest.metrics.val_loss, 1.6647728903647807);
        const curve = JSON.parse(
          await Deno.readTextFile(new URL("../fixtures/models/moby.curve.json", import.meta.url)),
        );
        assert.deepEqual(manifest.metrics.curve, curve);
        assert.equal(curve.train.length, 100);
        assert.ok(curve.val.length >= 3, `${curve.val.length} validation points`);
        // And it serves: a new session gets it by default.
        const { status, events } = await postText(server.base, "seeded", "Call me Ishmael.");
        assert.equal(status, 200);
        assert.equal(events.at(-1)?.event, "done", JSON.stringify(events.at(-1)));
        assert.equal((await getSession(server.base, "seeded")).body.model, "moby");
      } finally {
        await server.stop();
      }
    }, false);
  },
});
