// WORKERS=2: `deno task start` serves from two isolates on one port. Sessions spread over both
// (Linux hashes connections over the listeners), the fixture models are published once, and
// SIGTERM checkpoints the open sessions of every isolate, not only the main one's.
import assert from "node:assert/strict";
import {
  getSession,
  type OpenStream,
  openStream,
  publishFile,
  ServerProcess,
  type SseEvent,
} from "./_server.ts";
import { withTempDir } from "./_reliability.ts";

const SESSIONS = 12; // all on one isolate by chance: 2^-11
const TOKENS = 5;

Deno.test({
  name: "e2e: WORKERS=2 serves from two isolates, and SIGTERM checkpoints the sessions of both",
  fn: () =>
    withTempDir("workers_", async (dir) => {
      const kvPath = `${dir}/kv.sqlite3`;
      // Nothing is checkpointed before the end of a request, so only SIGTERM makes tokens durable.
      const env = { WORKERS: "2", CHECKPOINT_EVERY: "1000" };
      let server: ServerProcess | null = null;
      const streams: OpenStream[] = [];
      try {
        await publishFile(kvPath);
        server = await ServerProcess.start({ kvPath, env });
        assert.match(server.log, /with 2 isolates/);
        for (let k = 0; k < SESSIONS; k++) streams.push(await openStream(server.base, `w${k}`));
        for (const s of streams) assert.equal(s.res.status, 200);
        for (let t = 0; t < TOKENS; t++) {
          await Promise.all(streams.map(async (s) => {
            s.body.write("abcde"[t]);
            const seen: SseEvent[] = [];
            const e = await s.events.until((e) => e.event === "step", seen, 5000);
            assert.equal(e?.json.seq, t + 1);
          }));
        }
        const status = await server.stop("SIGTERM", 10_000);
        assert.equal(status.code, 0, server.log);
        assert.match(server.log, new RegExp(`SIGTERM: checkpointed ${SESSIONS} open session`));
        for (const s of streams) await s.close();

        server = await ServerProcess.start({ kvPath, env: { WORKERS: "1" } });
        for (let k = 0; k < SESSIONS; k++) {
          const { status, body } = await getSession(server.base, `w${k}`);
          assert.equal(status, 200, JSON.stringify(body));
          assert.equal(body.durable_seq, TOKENS, `session w${k}`);
        }
      } finally {
        for (const s of streams) await s.close();
        await server?.stop();
      }
    }),
});

Deno.test({
  name: "e2e: WORKERS=2 on a fresh store publishes the fixture models once",
  fn: () =>
    withTempDir("workers_", async (dir) => {
      const server = await ServerProcess.start({
        kvPath: `${dir}/kv.sqlite3`,
        env: { WORKERS: "2" },
      });
      try {
        assert.equal(server.log.match(/published fixture models/g)?.length, 1, server.log);
        const res = await fetch(`${server.base}/models/moby`, {
          signal: AbortSignal.timeout(5000),
        });
        const body = await res.json();
        assert.deepEqual(body.versions.map((v: { version: number }) => v.version), [1]);
      } finally {
        await server.stop();
      }
    }),
});
