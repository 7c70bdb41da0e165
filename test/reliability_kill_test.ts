// Faults: a real server process on a KV file is killed with SIGKILL at seeded random moments
// while 50 clients stream tokens into their sessions, and restarted each time; every client
// resumes from its durable seq. At the end, read straight from the KV file, every session's seq
// is the number of tokens its client sent and its hidden state equals, bit for bit, an
// uninterrupted run over the same tokens in this process. Counts scale with RELIABILITY_SCALE.
import assert from "node:assert/strict";
import { Rng } from "../src/math/mod.ts";
import {
  getSession,
  type OpenStream,
  openStream,
  publishFile,
  ServerProcess,
  sleep,
  type SseEvent,
  withTimeout,
} from "./_server.ts";
import {
  assertSameAsReference,
  randomText,
  ReferenceRun,
  SCALE,
  storedSessions,
  withTempDir,
} from "./_reliability.ts";

const SESSIONS = 50 * SCALE;
const KILLS = 20 * SCALE;
const TOKENS = 300; // per session
const CHECKPOINT_EVERY = 16;
const SEED = 8;

/** When a kill comes: after this many step events reach the clients, or this long after start. */
type Moment = { after: "steps"; steps: number } | { after: "ms"; ms: number };

/** One server at a time on the KV file: started, killed at the planned moments, restarted. */
class Cluster {
  readonly kvPath: string;
  readonly env = { CHECKPOINT_EVERY: String(CHECKPOINT_EVERY) };
  /** Bumped before every kill: a failure seen while it is unchanged is not the kill's doing. */
  generation = 0;
  /** Step events received since the current server started. */
  progress = 0;
  /** Streams open right now. */
  open = 0;
  /** Clients still working. */
  active = 0;
  /** The logs of every server that ran. */
  readonly logs: string[] = [];
  #current: ServerProcess | null = null;
  #closed = false;
  #waiters: (() => void)[] = [];
  #progressWaiter: { steps: number; resolve: () => void } | null = null;

  constructor(kvPath: string) {
    this.kvPath = kvPath;
  }

  /** The running server and its generation (waits while there is none). */
  async ready(): Promise<{ base: string; generation: number }> {
    while (this.#current === null) {
      if (this.#closed) throw new Error("the cluster has been shut down");
      await new Promise<void>((r) => this.#waiters.push(r));
    }
    return { base: this.#current.base, generation: this.generation };
  }

  async start(): Promise<ServerProcess> {
    if (this.#closed) throw new Error("the cluster has been shut down");
    const server = await ServerProcess.start({ kvPath: this.kvPath, env: this.env });
    if (this.#closed) {
      await server.kill();
      throw new Error("the cluster has been shut down");
    }
    this.progress = 0;
    this.#current = server;
    for (const wake of this.#waiters.splice(0)) wake();
    return server;
  }

  /** Waits for a kill moment: enough progress (or no client left to make any), or a delay. */
  async moment(m: Moment): Promise<void> {
    if (m.after === "ms") return await sleep(m.ms);
    await new Promise<void>((resolve) => {
      this.#progressWaiter = { steps: m.steps, resolve };
      this.stepped(0);
    });
  }

  /** Clients report each step event they receive. */
  stepped(n = 1): void {
    this.progress += n;
    const w = this.#progressWaiter;
    if (w !== null && (this.progress >= w.steps || this.active === 0)) {
      this.#progressWaiter = null;
      w.resolve();
    }
  }

  async kill(server: ServerProcess): Promise<void> {
    this.generation++;
    this.#current = null;
    const status = await server.kill();
    assert.equal(status.signal, "SIGKILL");
    this.logs.push(server.log);
  }

  async stop(server: ServerProcess): Promise<void> {
    this.#current = null;
    await server.stop();
    this.logs.push(server.log);
  }

  /**
   * A client's failure, with the server's exit status and log when it died without being
   * killed here (another process on the machine may have signalled it).
   */
  explain(err: unknown): unknown {
    const server = this.#current;
    if (server === null || server.exited === null) return err;
    return new Error(
      `the server exited by itself (${JSON.stringify(server.exited)}):\n${server.log}`,
      { cause: err },
    );
  }

  /** After a failure: no more starts, waiting clients give up, a running server is killed. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const wake of this.#waiters.splice(0)) wake();
    const server = this.#current;
    this.#current = null;
    await server?.kill();
  }
}

/** What one client knows about its session. */
interface ClientState {
  id: string;
  text: string;
  /** Step data by seq, as first received: a replay after a kill must be identical. */
  steps: Map<number, string>;
  /** The highest seq a checkpoint event confirmed. */
  checkpointed: number;
  /** Requests started. */
  requests: number;
  /** Resumes whose durable seq was below what the client had received (tokens re-applied). */
  replayed: number;
}

/**
 * One client: until the server says its whole text is durable, asks for the durable seq, then
 * streams the rest from there (Last-Event-ID) in seeded chunks, each written once the previous
 * chunk's step events are back. A failure on a server that was killed is retried on the next
 * one; any other failure fails the test.
 */
async function runClient(cluster: Cluster, c: ClientState, rng: Rng): Promise<void> {
  const n = c.text.length;
  cluster.active++;
  try {
    for (let attempt = 0;; attempt++) {
      assert.ok(attempt <= 4 * KILLS + 10, `session ${c.id}: too many attempts`);
      const { base, generation } = await cluster.ready();
      let s: OpenStream | null = null;
      try {
        const info = await getSession(base, c.id);
        let durable = 0;
        if (info.status === 200) durable = info.body.durable_seq;
        else assert.equal(info.status, 404, JSON.stringify(info.body));
        // Whatever a checkpoint event confirmed survives any kill; nothing beyond what was
        // sent can be there.
        assert.ok(
          durable >= c.checkpointed && durable <= n,
          `session ${c.id}: durable seq ${durable}, but a checkpoint event said ` +
            `${c.checkpointed} (and ${n} tokens exist)`,
        );
        if (durable < Math.max(0, ...c.steps.keys())) c.replayed++;
        if (durable === n) return;
        c.requests++;
        s = await openStream(base, c.id, {
          headers: durable > 0 ? { "last-event-id": String(durable) } : {},
        });
        assert.equal(s.res.status, 200, `session ${c.id}: status ${s.res.status}`);
        cluster.open++;
        try {
          const seen: SseEvent[] = [];
          const record = (e: SseEvent) => {
            if (e.event === "step") {
              const before = c.steps.get(e.json.seq);
              if (before === undefined) c.steps.set(e.json.seq, e.data);
              else assert.equal(e.data, before, `session ${c.id}: replayed step ${e.json.seq}`);
              cluster.stepped();
            } else if (e.event === "checkpoint") {
              c.checkpointed = Math.max(c.checkpointed, e.json.seq);
            } else if (e.event === "error") {
              assert.fail(`session ${c.id}: error event ${e.data}`);
            }
          };
          let at = durable;
          while (at < n) {
            const size = 1 + rng.int(12);
            const chunk = c.text.slice(at, at + size);
            s.body.write(chunk);
            at += chunk.length;
            const last = at;
            const e = await s.events.until((e) => {
              record(e);
              return e.event === "step" && e.json.seq === last;
            }, seen);
            assert.ok(e !== null, `session ${c.id}: the stream ended before step ${last}`);
            if (rng.uniform() < 0.2) await sleep(rng.int(4));
          }
          s.body.close();
          const rest = await s.events.rest();
          rest.forEach(record);
          const done = rest.at(-1);
          assert.equal(done?.event, "done", `session ${c.id}: ${JSON.stringify(rest)}`);
          assert.deepEqual(done.json, { seq: n, durable_seq: n });
          return;
        } finally {
          cluster.open--;
        }
      } catch (err) {
        // The server this attempt used was killed: try again on the next one.
        if (cluster.generation !== generation) continue;
        throw cluster.explain(err);
      } finally {
        await s?.close();
      }
    }
  } finally {
    cluster.active--;
    cluster.stepped(0);
  }
}

Deno.test({
  name:
    `SIGKILL ${KILLS}× under ${SESSIONS} streaming sessions: every session ends bit-identical ` +
    `to an uninterrupted run, each token applied once`,
  async fn(t) {
    await withTempDir("reliability_kill_", async (dir) => {
      const kvPath = `${dir}/kv.sqlite3`;
      await publishFile(kvPath);
      const rng = new Rng(SEED);
      const clients: ClientState[] = Array.from({ length: SESSIONS }, (_, k) => ({
        id: `k${k}`,
        text: randomText(rng, TOKENS),
        steps: new Map(),
        checkpointed: 0,
        requests: 0,
        replayed: 0,
      }));
      // Most kills come after a seeded number of step events (mid-stream, whatever the
      // machine's speed); some come a few milliseconds after a restart, while clients
      // reconnect, read their sessions and open streams.
      const moments: Moment[] = Array.from(
        { length: KILLS },
        () =>
          rng.uniform() < 0.2
            ? { after: "ms", ms: rng.int(40) }
            : { after: "steps", steps: 20 + rng.int(600) },
      );
      const cluster = new Cluster(kvPath);
      const openAtKill: number[] = [];

      await t.step("clients stream while the server is killed and restarted", async () => {
        const work = Promise.all(
          clients.map((c, k) => runClient(cluster, c, new Rng(SEED * 1000 + k))),
        );
        const killer = (async () => {
          for (const m of moments) {
            const server = await cluster.start();
            await cluster.moment(m);
            openAtKill.push(cluster.open);
            await cluster.kill(server);
          }
          const last = await cluster.start();
          await work;
          await cluster.stop(last);
        })();
        try {
          await withTimeout(Promise.all([work, killer]), 240_000 * SCALE, "the clients");
        } finally {
          await cluster.close();
        }
        const steps = moments.flatMap((m, k) => m.after === "steps" ? [openAtKill[k]] : []);
        assert.equal(openAtKill.length, KILLS);
        assert.ok(
          steps.every((open) => open > 0),
          `every kill after progress found streams open: ${steps.join(", ")}`,
        );
        const requests = clients.reduce((n, c) => n + c.requests, 0);
        const replayed = clients.reduce((n, c) => n + c.replayed, 0);
        console.log(
          `  ${KILLS} kills (streams open at each: ${openAtKill.join(" ")}); ` +
            `${requests} requests for ${SESSIONS} sessions; ${replayed} resumes re-applied ` +
            `tokens whose events the client had already seen`,
        );
        // The kills did interrupt work: sessions needed more than one request.
        assert.ok(requests > SESSIONS, `${requests} requests`);
      });

      await t.step("every session in KV equals the uninterrupted run bit for bit", async () => {
        const stored = await storedSessions(kvPath);
        assert.equal(stored.size, SESSIONS);
        const version = stored.get(clients[0].id)!.record.version;
        const ref = await ReferenceRun.load(kvPath, "moby", version);
        for (const c of clients) assertSameAsReference(c.id, stored.get(c.id), ref, c.text);
      });

      await t.step("every step a client saw is a seq of its session", () => {
        // A kill can land after a checkpoint was written and before the events of the tokens
        // it covers reached the client: those steps are durable but never seen (the README
        // says so); every other seq was seen, and replays were identical (checked above).
        let unseen = 0;
        for (const c of clients) {
          for (const seq of c.steps.keys()) assert.ok(seq >= 1 && seq <= TOKENS, `seq ${seq}`);
          unseen += TOKENS - c.steps.size;
        }
        console.log(`  ${unseen} of ${SESSIONS * TOKENS} steps were durable but never seen`);
      });

      await t.step("no server logged an internal error", () => {
        for (const log of cluster.logs) assert.doesNotMatch(log, /error|uncaught|panic/i, log);
      });
    });
  },
});
