// What a session write costs the local KV store (SQLite), by how many writes share a commit:
// CPU time and wall time per write, over 8,000 writes to 1,000 sessions, each write checked
// against the session's last versionstamp and given an expiry, as src/store/sessions.ts writes
// checkpoints. It is why checkpoints are grouped (and, while the store is busy, gathered):
//
//   deno task bench:kv
//
// CPU is the process's user + system time from /proc/self/stat (Linux), so the KV's own
// threads are counted too (--allow-all because Deno reads /proc/self only with all permissions).
import { cpuSeconds } from "../_server.ts";

const path = await Deno.makeTempFile({ suffix: ".sqlite3" });
const kv = await Deno.openKv(path);
const hidden = new Uint8Array(512); // a GRU H = 128 state
const record = (seq: number) => ({
  model: "moby",
  version: 1,
  seq,
  hidden,
  context: {},
  createdAt: "2026-01-01T00:00:00.000Z",
  updatedAt: "2026-01-01T00:00:00.000Z",
});

/** CPU seconds this process has used (user + system); NaN where /proc cannot be read. */
const cpuNow = () => cpuSeconds("self") ?? NaN;

const stamps = new Map<string, string | null>();
const writes = 8000;
console.log("| writes per commit | CPU per write (µs) | wall per write (µs) |");
console.log("| ---: | ---: | ---: |");
try {
  for (const group of [1, 2, 4, 8, 16, 64]) {
    const c0 = cpuNow(), t0 = performance.now();
    for (let i = 0; i < writes; i += group) {
      const op = kv.atomic();
      for (let g = 0; g < group; g++) {
        const id = `s${(i + g) % 1000}`;
        const key = ["session", id];
        op.check({ key, versionstamp: stamps.get(id) ?? null })
          .set(key, record(i + g), { expireIn: 7 * 24 * 3600 * 1000 });
      }
      const res = await op.commit();
      if (!res.ok) throw new Error("a check failed");
      for (let g = 0; g < group; g++) stamps.set(`s${(i + g) % 1000}`, res.versionstamp);
    }
    const cpu = (cpuNow() - c0) / writes * 1e6, wall = (performance.now() - t0) / writes * 1e3;
    console.log(`| ${group} | ${cpu.toFixed(0)} | ${wall.toFixed(0)} |`);
  }
} finally {
  kv.close();
  await Deno.remove(path);
}
