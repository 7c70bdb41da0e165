// Session writes are grouped into shared commits, and each write still gets its own outcome.
import assert from "node:assert/strict";
import { ConflictError } from "../src/store/errors.ts";
import { sleep, withTimeout } from "./_server.ts";
import {
  hurrySession,
  readSession,
  type SessionRecord,
  writeSession,
} from "../src/store/sessions.ts";

const record = (seq: number): SessionRecord => ({
  model: "m",
  version: 1,
  seq,
  hidden: new Uint8Array(16).fill(seq % 256),
  context: {},
  createdAt: "2026-01-01T00:00:00.000Z",
  updatedAt: "2026-01-01T00:00:00.000Z",
});
const DAY = 24 * 3600 * 1000;

Deno.test("concurrent session writes share commits and each lands", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const n = 150; // more than one group
    const stamps = await Promise.all(
      Array.from({ length: n }, (_, i) => writeSession(kv, `s${i}`, record(i), null, DAY)),
    );
    assert.ok(new Set(stamps).size < n, "the writes were not grouped");
    for (let i = 0; i < n; i++) {
      const stored = await readSession(kv, `s${i}`);
      assert.equal(stored?.record.seq, i);
      assert.equal(stored?.versionstamp, stamps[i]);
    }
  } finally {
    kv.close();
  }
});

/** A bound on waits that must end long before it (the store is in memory). */
const LIVENESS_MS = 20_000;

/** A few milliseconds: enough for a group commit to have started waiting. */
const TICK_MS = 5;

Deno.test("writes that trickle in while the store is busy wait for company and share a commit", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    // the store idle: the first write commits alone, and the store is busy from then on
    await writeSession(kv, "a0", record(0), null, DAY);
    // busy (a commit started within their gather window, 300 ms): writes one millisecond apart
    // wait for company and share a commit
    const later: Promise<string>[] = [];
    for (let i = 1; i <= 5; i++) {
      later.push(writeSession(kv, `a${i}`, record(i), null, DAY, 300));
      await sleep(1);
    }
    const stamps = await Promise.all(later);
    assert.ok(new Set(stamps).size < stamps.length, `one commit per write: ${stamps}`);
    for (let i = 1; i <= 5; i++) {
      assert.equal((await readSession(kv, `a${i}`))?.versionstamp, stamps[i - 1]);
    }
  } finally {
    kv.close();
  }
});

Deno.test("a write that gathers goes at once when its writer hurries it, or when a write that does not gather comes", async (t) => {
  const kv = await Deno.openKv(":memory:");
  try {
    await t.step("hurried", async () => {
      await writeSession(kv, "b0", record(0), null, DAY); // the store is busy from now on
      // would wait a minute for company
      const slow = writeSession(kv, "b1", record(1), null, DAY, 60_000);
      await sleep(TICK_MS); // the group is waiting now
      hurrySession(kv, "b0"); // no queued write of b0: nothing happens
      hurrySession(kv, "b1");
      await withTimeout(slow, LIVENESS_MS, "the hurried write");
      assert.equal((await readSession(kv, "b1"))?.record.seq, 1);
    });
    await t.step("company that does not wait", async () => {
      await writeSession(kv, "c0", record(0), null, DAY);
      const slow = writeSession(kv, "c1", record(1), null, DAY, 60_000);
      await sleep(TICK_MS);
      const now = writeSession(kv, "c2", record(2), null, DAY);
      const [a, b] = await withTimeout(Promise.all([slow, now]), LIVENESS_MS, "the two writes");
      assert.equal(a, b, "the waiting write goes in the same commit as the one that does not");
    });
  } finally {
    kv.close();
  }
});

Deno.test("a stale write in a group gets the conflict; the others in its group land", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const first = await writeSession(kv, "taken", record(1), null, DAY);
    await writeSession(kv, "taken", record(2), first, DAY); // now `first` is stale
    // Hold the store busy with one write so the next ones queue up and go as one group.
    const writes = [
      writeSession(kv, "warm", record(0), null, DAY),
      writeSession(kv, "a", record(5), null, DAY),
      writeSession(kv, "taken", record(9), first, DAY),
      writeSession(kv, "b", record(6), null, DAY),
    ];
    const results = await Promise.allSettled(writes);
    assert.equal(results[0].status, "fulfilled");
    assert.equal(results[1].status, "fulfilled");
    assert.equal(results[3].status, "fulfilled");
    assert.equal(results[2].status, "rejected");
    assert.ok((results[2] as PromiseRejectedResult).reason instanceof ConflictError);
    assert.equal(
      (await readSession(kv, "taken"))?.record.seq,
      2,
      "the stale write changed nothing",
    );
    assert.equal((await readSession(kv, "a"))?.record.seq, 5);
    assert.equal((await readSession(kv, "b"))?.record.seq, 6);
  } finally {
    kv.close();
  }
});

Deno.test("two writes to one session in one group: the second waits and is checked against the first", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const writes = [
      writeSession(kv, "warm", record(0), null, DAY),
      writeSession(kv, "x", record(1), null, DAY),
      writeSession(kv, "x", record(2), null, DAY), // also expects "absent": must lose
    ];
    const results = await Promise.allSettled(writes);
    assert.equal(results[1].status, "fulfilled");
    assert.equal(results[2].status, "rejected");
    assert.equal((await readSession(kv, "x"))?.record.seq, 1);
  } finally {
    kv.close();
  }
});
