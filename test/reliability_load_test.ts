// Load and soak: 1,000 sessions streaming at once into a real server process on loopback, in
// rounds of requests. Zero errors; the server's peak resident memory (VmHWM) is bounded; and,
// since the server keeps no session in memory between requests (each request reads the state
// from KV and writes it back), every round's session comes back from KV unchanged: after all the
// rounds, read straight from the KV file, each hidden state equals an uninterrupted run over the
// same tokens bit for bit. RELIABILITY_SCALE multiplies the rounds.
import assert from "node:assert/strict";
import { createParser } from "eventsource-parser";
import { Rng } from "../src/math/mod.ts";
import { RawPost } from "./bench/_raw_http.ts";
import { publishFile, ServerProcess, sleep, withTimeout } from "./_server.ts";
import {
  assertSameAsReference,
  randomText,
  ReferenceRun,
  SCALE,
  storedSessions,
  withTempDir,
} from "./_reliability.ts";

const SESSIONS = 1000;
const ROUNDS = 3 * SCALE; // requests per session, one after the other
const CHUNKS = 6; // writes per request, each 1..6 tokens
const CHECKPOINT_EVERY = 16;
const SEED = 1000;
/** The server's peak resident memory must stay under this (it is about a quarter of it). */
const PEAK_LIMIT_MIB = 1024;

/** One event of a response, as the raw client's text is parsed. */
interface Event {
  event: string;
  data: string;
}

/** The hard limit on open files: Deno raises its soft limit to it, and each side needs 1,000. */
async function openFileLimit(): Promise<number> {
  const out = await new Deno.Command("sh", { args: ["-c", "ulimit -Hn"] }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  return text === "unlimited" ? Infinity : Number(text);
}

/** A barrier: resolves once `n` parties have arrived. */
function barrier(n: number): { arrive: () => Promise<void> } {
  let count = 0;
  let open!: () => void;
  const all = new Promise<void>((resolve) => open = resolve);
  return {
    arrive() {
      if (++count === n) open();
      return all;
    },
  };
}

/**
 * One request of one session on its own connection: writes `text` in `CHUNKS` seeded pieces,
 * each once the previous piece's last step event is back, then ends the body and waits for
 * `done`. `first` is called after the first step event (the barrier that holds every session
 * open at once). Returns every event.
 */
async function request(
  port: number,
  id: string,
  text: string,
  firstSeq: number,
  rng: Rng,
  first: () => Promise<void>,
): Promise<Event[]> {
  const events: Event[] = [];
  let waiting: { seq: number; resolve: () => void } | null = null;
  let lastStep = 0;
  const parser = createParser({
    onEvent(e) {
      events.push({ event: e.event ?? "message", data: e.data });
      if (e.event === "step") lastStep = JSON.parse(e.data).seq;
      if (waiting !== null && (lastStep >= waiting.seq || e.event === "error")) {
        waiting.resolve();
        waiting = null;
      }
    },
  });
  const post = await RawPost.open(port, `/session/${id}`, (t) => parser.feed(t));
  post.done.then(() => waiting?.resolve());
  try {
    const cuts = new Set<number>();
    while (cuts.size < Math.min(CHUNKS - 1, text.length - 1)) {
      cuts.add(1 + rng.int(text.length - 1));
    }
    const bounds = [0, ...[...cuts].sort((a, b) => a - b), text.length];
    for (let k = 0; k + 1 < bounds.length; k++) {
      post.write(text.slice(bounds[k], bounds[k + 1]));
      const seq = firstSeq + bounds[k + 1] - 1;
      await new Promise<void>((resolve) => {
        waiting = { seq, resolve };
        if (lastStep >= seq) resolve();
      });
      assert.equal(lastStep, seq, `${id}: no step ${seq}: ${JSON.stringify(events.slice(-3))}`);
      if (k === 0) await first();
      if (rng.uniform() < 0.3) await sleep(rng.int(5));
    }
    post.end();
    await post.done;
    assert.equal(post.status, 200, `${id}: status ${post.status}`);
    return events;
  } finally {
    post.close();
  }
}

/**
 * `work`, failing with the server's exit status and log instead when the server is found to have
 * exited meanwhile (another process on the machine may have signalled it).
 */
async function whileUp<T>(server: ServerProcess, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    await sleep(100); // the exit status arrives a moment after the connections break
    if (server.exited === null) throw err;
    throw new Error(`the server exited (${JSON.stringify(server.exited)}):\n${server.log}`, {
      cause: err,
    });
  }
}

Deno.test({
  name: `${SESSIONS} concurrent sessions × ${ROUNDS} requests each: no error, bounded memory, ` +
    `each resumed session comes back from KV unchanged`,
  async fn(t) {
    const limit = await openFileLimit();
    assert.ok(
      limit >= 2 * SESSIONS + 500,
      `this test holds ${SESSIONS} connections open on each side of loopback; the hard limit ` +
        `on open files is ${limit} (raise it with ulimit -Hn)`,
    );
    await withTempDir("reliability_load_", async (dir) => {
      const kvPath = `${dir}/kv.sqlite3`;
      await publishFile(kvPath);
      const rng = new Rng(SEED);
      const texts = Array.from(
        { length: SESSIONS },
        () => Array.from({ length: ROUNDS }, () => randomText(rng, 12 + rng.int(25))),
      );
      const server = await ServerProcess.start({
        kvPath,
        env: { CHECKPOINT_EVERY: String(CHECKPOINT_EVERY) },
      });
      const memory: { before: number; open: number[]; peak: number } = {
        before: 0,
        open: [],
        peak: 0,
      };
      try {
        memory.before = (await server.memory())?.rssKiB ?? 0;
        let tokens = 0;
        const started = performance.now();
        for (let round = 0; round < ROUNDS; round++) {
          await t.step(`round ${round + 1}: ${SESSIONS} sessions stream at once`, async () => {
            const all = barrier(SESSIONS);
            let sampled: Promise<void> | null = null;
            const sample = () => {
              sampled ??= server.memory().then((m) => {
                if (m !== null) memory.open.push(m.rssKiB);
              });
              return sampled;
            };
            const results = await withTimeout(
              whileUp(
                server,
                Promise.all(texts.map(async (rounds, s) => {
                  const seq = rounds.slice(0, round).reduce((n, x) => n + x.length, 0);
                  const events = await request(
                    server.port,
                    `load${s}`,
                    rounds[round],
                    seq + 1,
                    new Rng(SEED + 7919 * s + round),
                    // Every session holds its stream open until all of them have one; the
                    // server's memory is read then.
                    () => all.arrive().then(sample),
                  );
                  return { s, seq, events };
                })),
              ),
              120_000,
              `round ${round + 1}`,
            );
            for (const { s, seq, events } of results) {
              const n = texts[s][round].length;
              const errors = events.filter((e) => e.event === "error");
              assert.deepEqual(errors, [], `session load${s}`);
              const done = events.at(-1)!;
              assert.equal(done.event, "done", `session load${s}: ${JSON.stringify(done)}`);
              assert.deepEqual(JSON.parse(done.data), { seq: seq + n, durable_seq: seq + n });
              const steps = events.filter((e) => e.event === "step").map((e) =>
                JSON.parse(e.data).seq
              );
              assert.deepEqual(steps, Array.from({ length: n }, (_, k) => seq + 1 + k));
              tokens += n;
            }
          });
        }
        const seconds = (performance.now() - started) / 1000;
        memory.peak = (await server.memory())?.peakKiB ?? 0;
        await t.step("the server's peak memory stays bounded", () => {
          const mib = (kib: number) => (kib / 1024).toFixed(0);
          console.log(
            `  ${tokens} tokens in ${SESSIONS * ROUNDS} requests (${SESSIONS} streams open at ` +
              `once, ${ROUNDS} rounds) in ${seconds.toFixed(1)} s; server RSS ${
                mib(memory.before)
              } MiB before, ${memory.open.map(mib).join(" / ")} MiB with every stream open, ` +
              `peak (VmHWM) ${mib(memory.peak)} MiB`,
          );
          if (memory.peak > 0) {
            assert.ok(
              memory.peak < PEAK_LIMIT_MIB * 1024,
              `peak RSS ${mib(memory.peak)} MiB ≥ ${PEAK_LIMIT_MIB} MiB`,
            );
          } else console.log("  (no /proc here: memory not measured)");
        });
      } finally {
        await server.stop();
      }
      await t.step("no error in the server's log", () => {
        assert.doesNotMatch(server.log, /error|uncaught|panic/i, server.log);
      });

      await t.step("every session in KV equals the uninterrupted run bit for bit", async () => {
        const stored = await storedSessions(kvPath);
        assert.equal(stored.size, SESSIONS);
        const ref = await ReferenceRun.load(kvPath, "moby", stored.get("load0")!.record.version);
        texts.forEach((rounds, s) => {
          assertSameAsReference(`load${s}`, stored.get(`load${s}`), ref, rounds.join(""));
        });
      });
    });
  },
});
