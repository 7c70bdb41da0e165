// Concurrency: several clients write one session at once through several isolates (apps, each
// with its own handle on one KV file, as Deno Deploy's isolates share one database): every
// conflict has exactly one winner and no durable update is lost, so the session ends as the
// uninterrupted run over exactly the tokens the winners were told are durable. And publishers of
// one model racing each other (with pruning) while readers load it: every load is one whole
// published version, never a mix, never a corrupt one. Counts scale with RELIABILITY_SCALE.
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createApp } from "../src/app.ts";
import { encodeModel, type Model, readModelFile } from "../src/format/mod.ts";
import { Rng } from "../src/math/mod.ts";
import { Network } from "../src/nn/mod.ts";
import { ModelCache } from "../src/store/model_cache.ts";
import { NotFoundError } from "../src/store/errors.ts";
import { openKv } from "../src/store/open_kv.ts";
import { loadModel, publishModel } from "../src/store/registry.ts";
import { readSession } from "../src/store/sessions.ts";
import { type WireEvent, wireEvents } from "./_sse.ts";
import { SMALL_LM } from "./_server.ts";
import { randomText, ReferenceRun, SCALE, withTempDir } from "./_reliability.ts";

const ISOLATES = 3;
const CLIENTS_PER_ISOLATE = 2;
const REQUESTS_PER_CLIENT = 15 * SCALE;
const SEED = 77;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What one request did, from its events. */
interface Outcome {
  client: number;
  /** 409 before any stream, or the stream's end. */
  status: number;
  end: "done" | "error" | "refused";
  /** The seq the session had when the request opened it (its first step's seq - 1). */
  from: number;
  /** The seq this request left durable: done's or error's durable_seq. */
  durable: number;
  /** Tokens applied by seq, as the step events name them. */
  tokens: Map<number, string>;
  code?: string;
}

/** A request body sent in seeded pieces, with pauses between them. */
function pacedBody(text: string, rng: Rng): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  let at = 0;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      if (at >= text.length) return c.close();
      await sleep(rng.int(3));
      const n = 1 + rng.int(3);
      c.enqueue(enc.encode(text.slice(at, at + n)));
      at += n;
    },
  }, { highWaterMark: 0 });
}

async function oneRequest(app: Hono, client: number, text: string, rng: Rng): Promise<Outcome> {
  const res = await app.request("/session/shared", {
    method: "POST",
    headers: { "content-type": "text/plain" },
    body: pacedBody(text, rng),
  });
  if (res.status !== 200) {
    const body = await res.json();
    assert.equal(res.status, 409, JSON.stringify(body));
    assert.equal(body.error.code, "conflict");
    return { client, status: 409, end: "refused", from: 0, durable: 0, tokens: new Map() };
  }
  const events: WireEvent[] = wireEvents(await res.text());
  const steps = events.filter((e) => e.event === "step");
  const last = events.at(-1)!;
  assert.ok(last.event === "done" || last.event === "error", JSON.stringify(last));
  if (last.event === "error") assert.equal(last.data.code, "conflict", JSON.stringify(last));
  const tokens = new Map(steps.map((e) => [e.data.seq as number, e.data.token as string]));
  const from = steps.length > 0
    ? (steps[0].data.seq as number) - 1
    : (last.data.durable_seq as number);
  return {
    client,
    status: 200,
    end: last.event as "done" | "error",
    from,
    durable: last.data.durable_seq as number,
    tokens,
    code: last.data.code as string | undefined,
  };
}

Deno.test({
  name: `${ISOLATES * CLIENTS_PER_ISOLATE} clients writing one session through ${ISOLATES} ` +
    `isolates: one winner per conflict, no lost update`,
  async fn(t) {
    await withTempDir("reliability_concurrency_", async (dir) => {
      const path = `${dir}/kv.sqlite3`;
      const setup = await Deno.openKv(path);
      await publishModel(setup, "moby", await readModelFile(SMALL_LM));
      setup.close();
      const handles: Deno.Kv[] = [];
      const caches: ModelCache[] = [];
      const apps: Hono[] = [];
      for (let i = 0; i < ISOLATES; i++) {
        // As the server opens its store (SQLite's lock is waited out, as between processes).
        const kv = await openKv(path);
        const models = new ModelCache(kv);
        handles.push(kv);
        caches.push(models);
        apps.push(createApp({ kv, models, limits: { checkpointEvery: 3, topK: 1 } }));
      }
      try {
        const outcomes: Outcome[] = [];
        await t.step("clients stream into the same session at once", async () => {
          const rng = new Rng(SEED);
          const plans = Array.from(
            { length: ISOLATES * CLIENTS_PER_ISOLATE },
            () =>
              Array.from({ length: REQUESTS_PER_CLIENT }, () => randomText(rng, 3 + rng.int(10))),
          );
          await Promise.all(plans.map(async (texts, client) => {
            const app = apps[client % ISOLATES];
            const r = new Rng(SEED * 31 + client);
            for (const text of texts) {
              const o = await oneRequest(app, client, text, r);
              outcomes.push(o);
              // A client that lost backs off a little, as a real one would.
              await sleep(o.end === "done" ? r.int(3) : 1 + r.int(8));
            }
          }));
          const count = (f: (o: Outcome) => boolean) => outcomes.filter(f).length;
          console.log(
            `  ${outcomes.length} requests: ${count((o) => o.end === "done")} done, ` +
              `${count((o) => o.end === "refused")} refused at once (409, same isolate), ` +
              `${count((o) => o.end === "error")} lost a checkpoint race (conflict event)`,
          );
          // With every client starting at once, collisions are certain in practice; a run
          // without any would not test what it says.
          assert.ok(count((o) => o.end !== "done") > 0, "no request collided");
        });

        await t.step("every durable seq was won by exactly one request", async () => {
          const stored = (await readSession(handles[0], "shared"))!;
          const n = stored.record.seq;
          const owner = new Map<number, number>(); // seq -> outcome index
          outcomes.forEach((o, k) => {
            for (let seq = o.from + 1; seq <= o.durable; seq++) {
              assert.ok(
                !owner.has(seq),
                `seq ${seq} made durable by two requests (${owner.get(seq)} and ${k})`,
              );
              assert.ok(o.tokens.has(seq), `request ${k} made seq ${seq} durable unseen`);
              owner.set(seq, k);
            }
          });
          const gaps = Array.from({ length: n }, (_, k) => k + 1).filter((s) => !owner.has(s));
          assert.deepEqual(gaps, [], `durable seqs no winner accounts for (session at ${n})`);
          assert.equal(owner.size, n, "no winner claims a seq beyond the session's");
        });

        await t.step("the session is the run over exactly the winners' tokens", async () => {
          const stored = (await readSession(handles[0], "shared"))!;
          const byseq = new Map<number, string>();
          for (const o of outcomes) {
            for (let seq = o.from + 1; seq <= o.durable; seq++) byseq.set(seq, o.tokens.get(seq)!);
          }
          const text = Array.from({ length: stored.record.seq }, (_, k) => byseq.get(k + 1)!).join(
            "",
          );
          const ref = await ReferenceRun.fromStore(handles[0], "moby", stored.record.version);
          assert.deepEqual(stored.record.hidden, ref.stateAfter(text));
        });
      } finally {
        for (const c of caches) c.close();
        for (const kv of handles) kv.close();
      }
    });
  },
});

/** A seeded language model over a small vocabulary, big enough for several 4 KiB chunks. */
function model(seed: number): Model {
  const vocabulary = ["<unk>", ..."abcdefgh"];
  return {
    network: Network.create({
      cell: "gru",
      nonlinearity: "tanh",
      input: "embedding",
      vocabSize: vocabulary.length,
      inputSize: 8,
      hiddenSize: 32,
      layers: 2,
      outputSize: vocabulary.length,
    }, seed),
    meta: { task: "lm", vocabulary, labels: null, extra: {} },
  };
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test({
  name: "publishers of one model racing while readers load it: every load is one whole version",
  async fn() {
    await withTempDir("reliability_publish_", async (dir) => {
      const path = `${dir}/kv.sqlite3`;
      const PUBLISHERS = 3, EACH = 3 * SCALE, READERS = 3;
      const candidates = Array.from({ length: PUBLISHERS * EACH }, (_, k) => model(1000 + k));
      const files = candidates.map(encodeModel);
      const bySha = new Map<string, number>();
      for (const [k, f] of files.entries()) bySha.set(await sha256(f), k);
      const handles: Deno.Kv[] = [];
      const open = async () => {
        const kv = await openKv(path);
        handles.push(kv);
        return kv;
      };
      try {
        // The first version exists before the race, so readers always have something to load.
        await publishModel(await open(), "race", candidates[0], { chunkSize: 4096, keep: 2 });
        const published = new Map<number, number>([[1, 0]]); // version -> candidate
        let publishing = true;
        const loads = { whole: 0, notFound: 0 };

        const publishers = Array.from({ length: PUBLISHERS }, async (_, p) => {
          const kv = await open();
          for (let j = 0; j < EACH; j++) {
            const k = p * EACH + j;
            if (k === 0) continue;
            const m = await publishModel(kv, "race", candidates[k], { chunkSize: 4096, keep: 2 });
            assert.ok(m.chunkCount > 2, `${m.chunkCount} chunks`);
            published.set(m.version, k);
          }
        });
        const readers = Array.from({ length: READERS }, async (_, r) => {
          const kv = await open();
          const cache = new ModelCache(kv, { maxEntries: 2 });
          const rng = new Rng(SEED + r);
          const seen: [version: number, candidate: number][] = [];
          try {
            while (publishing) {
              try {
                // The current version, a recent one by number, or through the server's cache.
                const pickVersion = rng.int(3);
                const version = pickVersion === 1 ? 1 + rng.int(PUBLISHERS * EACH) : undefined;
                const loaded = pickVersion === 2
                  ? await cache.load("race")
                  : await loadModel(kv, "race", version);
                const file = encodeModel(loaded.model);
                const k = bySha.get(await sha256(file));
                assert.ok(k !== undefined, `v${loaded.manifest.version} is no published model`);
                assert.equal(loaded.manifest.sha256, await sha256(files[k]));
                seen.push([loaded.manifest.version, k]);
                loads.whole++;
              } catch (err) {
                // A version pruned or not yet published; anything else (IntegrityError) fails.
                if (!(err instanceof NotFoundError)) throw err;
                loads.notFound++;
              }
            }
          } finally {
            cache.close();
          }
          return seen;
        });
        let seen: [number, number][];
        try {
          const published = Promise.all(publishers).finally(() => publishing = false);
          seen = (await Promise.all([published, Promise.all(readers)]))[1].flat();
        } finally {
          publishing = false; // a reader that failed stops the others
          await Promise.allSettled([...publishers, ...readers]);
        }
        console.log(
          `  ${published.size} versions published; ${loads.whole} whole loads, ` +
            `${loads.notFound} of a version not (or no longer) kept`,
        );
        assert.equal(published.size, PUBLISHERS * EACH);
        // Each version read is the very model published under that number.
        for (const [version, k] of seen) {
          assert.equal(k, published.get(version), `v${version} was loaded as another model`);
        }
        assert.ok(loads.whole > 0);
      } finally {
        for (const kv of handles) kv.close();
      }
    });
  },
});
