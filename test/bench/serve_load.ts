// Load on a real server over loopback: N = 1, 100, 1000 concurrent sessions, each one
// POST /session/:id streaming per-token outputs back as SSE. Two modes per level:
//
// - latency (ping-pong): each session writes one character, waits for that character's `step`
//   event, then writes the next. The time from writing a token to reading its step event is an
//   honest per-token latency (client write -> socket -> decode -> recurrent step -> SSE ->
//   socket -> client parse); no token is queued behind another of the same session, so the
//   number measures the server (and loopback), not a queue the client built itself. Total
//   steps/s of this mode is the rate N interactive clients get.
// - throughput: each session POSTs its whole text in one body at once; the server applies the
//   tokens as fast as it reads them. Steps/s is the most the server delivers; per-request time
//   to first step and to `done` are reported instead of per-token latency (a token's wait there
//   is mostly the queue in front of it).
//
// Resident memory of the server (VmRSS) is read from /proc before each level, as a peak while
// all N sessions of the latency mode are open, and after; "per open session" is
// (peak - before) / N, shown from 100 sessions on (below that, heap growth is noise). Each
// level stops after about --seconds (20) in total, shared equally by the modes. Each mode also
// reports the host's steal time from /proc/stat: the share of this virtual machine's CPU time
// that the hypervisor gave to other guests while they waited. It tells a run starved of CPU
// from one that ran slower (on the build machine it stays below about 2 % even when the same
// run needs a third more CPU: the host slows the cores down rather than taking them away).
//
// - rate: each session streams text at --rate tokens/s in writes of --chunk tokens, the way a
//   client that types or transcribes would; per-token latency as in the latency mode. N × rate
//   is the offered load; steps/s says whether the server kept up.
//
//   deno run --allow-all test/bench/serve_load.ts [--levels 1,100,1000] [--tokens 200]
//     [--seconds 20] [--model FILE] [--modes latency,throughput,rate] [--rate 100] [--chunk 10]
//     [--workers N] [--checkpoint-every N] [--server-flags="..."]
//
// --workers N runs the server with WORKERS=N (isolates sharing the port, see src/start.ts).
// (--allow-all because Deno reads /proc/<pid>/status only with all permissions.)
//
// --model FILE publishes that model file as `moby` into the fresh KV before the server starts;
// without it the server seeds fixtures/models/moby.safetensors itself (or, if that file does
// not exist, the small test model is published).
import { parseArgs } from "node:util";
import { RawPost } from "./_raw_http.ts";
import {
  cpuSeconds,
  MOBY_FIXTURE,
  type OpenStream,
  openStream,
  publishFile,
  ServerProcess,
  sleep,
  SMALL_LM,
  type SseEvent,
  SseReader,
  withTimeout,
} from "../_server.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    levels: { type: "string", default: "1,100,1000" },
    tokens: { type: "string", default: "200" },
    seconds: { type: "string", default: "20" },
    model: { type: "string" },
    modes: { type: "string", default: "latency,throughput,rate" },
    rate: { type: "string", default: "100" },
    chunk: { type: "string", default: "10" },
    "server-flags": { type: "string", default: "" },
    "checkpoint-every": { type: "string" },
    workers: { type: "string" },
  },
});
const modes = new Set(args.values.modes.split(","));
const rate = Number(args.values.rate);
const chunk = Number(args.values.chunk);
const levels = args.values.levels.split(",").map(Number);
const tokens = Number(args.values.tokens);
const levelSeconds = Number(args.values.seconds);

/** Moby-Dick's opening, lowercase (in every model's vocabulary here), repeated as needed. */
const OPENING = "call me ishmael. some years ago never mind how long precisely having little " +
  "or no money in my purse and nothing particular to interest me on shore i thought i would " +
  "sail about a little and see the watery part of the world. ";
const TEXT = OPENING.repeat(Math.ceil(tokens / OPENING.length)).slice(0, tokens);

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function openFileLimit(): string {
  try {
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(Deno.readTextFileSync("/proc/self/limits"));
    return m === null ? "?" : `${m[1]} soft / ${m[2]} hard`;
  } catch {
    return "?";
  }
}

/**
 * The machine's CPU ticks from /proc/stat: all of them, and those stolen by the hypervisor
 * (time a virtual CPU was ready to run while the host ran something else); null if unknown.
 */
function cpuTicks(): { total: number; steal: number } | null {
  try {
    const line = Deno.readTextFileSync("/proc/stat").split("\n")[0];
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number); // user … steal
    return { total: f.reduce((a, b) => a + b, 0), steal: f[7] };
  } catch {
    return null;
  }
}

/** Samples the server's VmRSS every 50 ms and keeps the largest. */
class RssPeak {
  peak = 0;
  #timer: ReturnType<typeof setInterval>;
  constructor(server: ServerProcess) {
    const sample = () => this.peak = Math.max(this.peak, server.rssKiB() ?? 0);
    sample();
    this.#timer = setInterval(sample, 50);
  }
  stop(): number {
    clearInterval(this.#timer);
    return this.peak;
  }
}

interface Row {
  n: number;
  mode: string;
  sessions: number;
  steps: number;
  seconds: number;
  p50: number;
  p99: number;
  note: string;
  cpu: string;
  /** Share of the machine's CPU time the hypervisor gave to other guests during the mode. */
  steal: string;
  rssBefore: number;
  rssPeak: number;
  rssAfter: number;
}

/** What a mode measures itself; {@linkcode measured} adds CPU and memory. */
type ModeRow = Omit<Row, "cpu" | "steal" | "rssBefore" | "rssPeak" | "rssAfter">;

/** Latency mode: N sessions, each writes a token only after the previous one's step arrived. */
async function latencyMode(server: ServerProcess, n: number, budgetMs: number): Promise<ModeRow> {
  const latencies = new Float64Array(n * tokens);
  let count = 0, errors = 0, completed = 0;
  const t0 = performance.now();
  const deadline = t0 + budgetMs;
  // Open every session first (all N requests in flight at once), then start the ping-pong.
  const opened = await Promise.allSettled(
    Array.from({ length: n }, (_, i) =>
      openStream(server.base, `lat-${n}-${i}`, {
        timeoutMs: budgetMs,
      })),
  );
  const streams: OpenStream[] = [];
  const reasons = new Map<string, number>();
  for (const r of opened) {
    if (r.status === "fulfilled" && r.value.res.status === 200) streams.push(r.value);
    else {
      errors++;
      const why = r.status === "rejected" ? String(r.reason).slice(0, 80) : `${r.value.res.status}`;
      reasons.set(why, (reasons.get(why) ?? 0) + 1);
      if (r.status === "fulfilled") await r.value.close();
    }
  }
  const openMs = performance.now() - t0;
  const tStart = performance.now();
  await Promise.all(streams.map(async (s) => {
    try {
      for (const ch of TEXT) {
        if (performance.now() > deadline) break;
        const sent = performance.now();
        s.body.write(ch);
        let e: SseEvent | null;
        do e = await s.events.next(budgetMs); while (e !== null && e.event === "checkpoint");
        if (e === null || e.event !== "step") {
          errors++;
          return;
        }
        latencies[count++] = performance.now() - sent;
      }
      // End the request normally (a final checkpoint and `done`), within the budget.
      s.body.close();
      const rest = await s.events.rest(Math.max(1000, deadline + 5000 - performance.now()));
      if (rest.at(-1)?.event === "done") completed++;
      else errors++;
    } catch (err) {
      errors++;
      const why = String(err).slice(0, 80);
      reasons.set(why, (reasons.get(why) ?? 0) + 1);
    } finally {
      await s.close();
    }
  }));
  const seconds = (performance.now() - tStart) / 1000;
  const sorted = latencies.slice(0, count).sort();
  const notes = [`opened ${streams.length}/${n} in ${(openMs / 1000).toFixed(2)} s`];
  notes.push(`${completed} done`);
  if (errors > 0) notes.push(`${errors} errors (${[...reasons].map(([k, v]) => `${v}× ${k}`)})`);
  return {
    n,
    mode: "latency (ping-pong)",
    sessions: streams.length,
    steps: count,
    seconds,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    note: notes.join("; "),
  };
}

/** Throughput mode: N sessions, each POSTs its whole text at once. */
async function throughputMode(
  server: ServerProcess,
  n: number,
  budgetMs: number,
): Promise<ModeRow> {
  // At the time limit, abort the requests and cancel the bodies being read (in Deno 2.9 an
  // aborted signal does not stop a response body that is already streaming).
  const abort = new AbortController();
  const readers = new Set<SseReader>();
  const timer = setTimeout(() => {
    abort.abort();
    for (const r of readers) r.cancel();
  }, budgetMs);
  const firstStep: number[] = [];
  const done: number[] = [];
  let steps = 0, errors = 0;
  const reasons = new Map<string, number>();
  const t0 = performance.now();
  let tLast = t0;
  await Promise.all(Array.from({ length: n }, async (_, i) => {
    let reader: SseReader | null = null;
    try {
      const start = performance.now();
      const res = await fetch(`${server.base}/session/thr-${n}-${i}`, {
        method: "POST",
        headers: { "content-type": "text/plain; charset=utf-8" },
        body: TEXT,
        signal: abort.signal,
      });
      if (res.status !== 200) {
        errors++;
        reasons.set(`${res.status}`, (reasons.get(`${res.status}`) ?? 0) + 1);
        await res.body?.cancel();
        return;
      }
      reader = new SseReader(res.body!);
      readers.add(reader);
      if (abort.signal.aborted) await reader.cancel();
      let first = true, finished = false;
      while (true) {
        const e = await reader.next(budgetMs);
        if (e === null) {
          if (!finished) throw new Error("the stream ended without done");
          break;
        }
        if (e.event === "step") {
          steps++;
          tLast = performance.now();
          if (first) firstStep.push(performance.now() - start);
          first = false;
        } else if (e.event === "done") {
          done.push(performance.now() - start);
          finished = true;
        } else if (e.event === "error") errors++;
      }
    } catch (err) {
      errors++;
      const why = abort.signal.aborted ? "stopped at the time limit" : String(err).slice(0, 80);
      reasons.set(why, (reasons.get(why) ?? 0) + 1);
    } finally {
      await reader?.cancel();
    }
  }));
  clearTimeout(timer);
  const seconds = (tLast - t0) / 1000;
  const f = (xs: number[]) => new Float64Array(xs).sort();
  const ms = (x: number) => Number.isFinite(x) ? `${(x / 1000).toFixed(2)} s` : "—";
  const notes = [
    `first step p50 ${ms(quantile(f(firstStep), 0.5))}, done p50 ${ms(quantile(f(done), 0.5))} ` +
    `p99 ${ms(quantile(f(done), 0.99))}`,
    `${done.length}/${n} done`,
  ];
  if (errors > 0) notes.push(`${errors} errors (${[...reasons].map(([k, v]) => `${v}× ${k}`)})`);
  return {
    n,
    mode: "throughput (whole body)",
    sessions: n,
    steps,
    seconds,
    p50: NaN,
    p99: NaN,
    note: notes.join("; "),
  };
}

/**
 * Rate mode: N sessions stream text at `rate` tokens/s each, `chunk` tokens per write (a client
 * that types or transcribes), the writes of all sessions spread evenly over the interval by one
 * ticker. A token's latency is from the write that carried it to its `step` event at the client
 * (the k-th step event of a session answers its k-th token). Each session is one HTTP/1.1
 * connection driven directly (_raw_http.ts) and its response is read raw: step events are
 * counted by their `event: step` line, so the client stays cheap enough to offer the load.
 */
async function rateMode(server: ServerProcess, n: number, budgetMs: number): Promise<ModeRow> {
  const interval = (1000 * chunk) / rate; // ms between one session's writes
  const latencies: number[] = [];
  let errors = 0, done = 0;
  const marker = "event: step\n";
  const sessions = await Promise.all(Array.from({ length: n }, async (_, i) => {
    const s = { post: null as RawPost | null, sent: [] as number[], offset: 0, steps: 0 };
    let carry = "";
    s.post = await RawPost.open(server.port, `/session/rate-${n}-${i}`, (piece) => {
      const now = performance.now();
      const text = carry + piece;
      let at = text.indexOf(marker);
      let last = 0;
      while (at >= 0) {
        latencies.push(now - s.sent[Math.floor(s.steps / chunk)]);
        s.steps++;
        last = at + marker.length;
        at = text.indexOf(marker, last);
      }
      carry = text.slice(Math.max(last, text.length - marker.length));
      if (text.includes("event: done\n")) done++;
      if (text.includes("event: error\n")) errors++;
    });
    return s;
  }));
  const readers = sessions.map((s) => s.post!.done);
  // Every session is open (its response head has arrived) before the clock starts: a token's
  // latency is the step's, not the wait for its session's KV read at the start.
  await withTimeout(
    (async () => {
      while (sessions.some((s) => s.post!.status === 0)) await sleep(10);
    })(),
    30_000,
    "the rate-mode sessions to open",
  );
  const t0 = performance.now();
  const deadline = t0 + budgetMs;
  const tick = 5; // ms; each tick writes for the sessions whose turn has come
  let next = 0; // index into the schedule: session (next mod n), write (next div n)
  while (performance.now() < deadline) {
    const due = Math.floor(((performance.now() - t0) / interval) * n);
    for (; next < due; next++) {
      const s = sessions[next % n];
      const text = TEXT.slice(s.offset, s.offset + chunk);
      s.offset = (s.offset + chunk) % (TEXT.length - chunk);
      s.sent.push(performance.now());
      s.post!.write(text);
    }
    await sleep(tick);
  }
  const sent = sessions.reduce((a, s) => a + s.sent.length * chunk, 0);
  for (const s of sessions) s.post!.end();
  await withTimeout(Promise.all(readers), 30_000, "the rate-mode responses").catch(() => errors++);
  for (const s of sessions) s.post!.close();
  const seconds = (performance.now() - t0) / 1000;
  const sorted = new Float64Array(latencies).sort();
  return {
    n,
    mode: `rate (${rate} tokens/s per session, ${chunk} per write)`,
    sessions: n,
    steps: latencies.length,
    seconds,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    note: `${sent} tokens sent, ${latencies.length} steps back; ${done}/${n} done` +
      (errors > 0 ? `; ${errors} errors` : ""),
  };
}

/**
 * Runs a mode and records the CPU share of server and client over its wall time, and the
 * server's resident memory before, at its peak during, and after.
 */
async function measured(server: ServerProcess, run: () => Promise<ModeRow>): Promise<Row> {
  const rssBefore = server.rssKiB() ?? 0;
  const rss = new RssPeak(server);
  const s0 = cpuSeconds(server.pid), c0 = cpuSeconds("self"), t0 = performance.now();
  const k0 = cpuTicks();
  const row = await run();
  const s1 = cpuSeconds(server.pid), c1 = cpuSeconds("self");
  const k1 = cpuTicks();
  const wall = (performance.now() - t0) / 1000;
  const rssPeak = rss.stop();
  await sleep(200);
  const pct = (a: number | null, b: number | null) =>
    a === null || b === null ? "?" : `${Math.round((100 * (b - a)) / wall)}%`;
  return {
    ...row,
    cpu: `${pct(s0, s1)} / ${pct(c0, c1)}`,
    steal: k0 === null || k1 === null || k1.total === k0.total
      ? "?"
      : `${((100 * (k1.steal - k0.steal)) / (k1.total - k0.total)).toFixed(1)}%`,
    rssBefore,
    rssPeak,
    rssAfter: server.rssKiB() ?? 0,
  };
}

const dir = await Deno.makeTempDir({ prefix: "serve_load_" });
let server: ServerProcess | null = null;
try {
  const kvPath = `${dir}/kv.sqlite3`;
  let modelNote: string;
  if (args.values.model !== undefined) {
    await publishFile(kvPath, "moby", args.values.model);
    modelNote = args.values.model;
  } else if (!(await Deno.stat(MOBY_FIXTURE).then((s) => s.isFile, () => false))) {
    await publishFile(kvPath, "moby", SMALL_LM);
    modelNote = `${SMALL_LM} (fixtures/models/moby.safetensors does not exist)`;
  } else {
    modelNote = `${MOBY_FIXTURE} (seeded by the server)`;
  }
  const checkpointEvery = args.values["checkpoint-every"];
  const workers = args.values.workers;
  server = await ServerProcess.start({
    kvPath,
    env: {
      ...(checkpointEvery === undefined ? {} : { CHECKPOINT_EVERY: checkpointEvery }),
      ...(workers === undefined ? {} : { WORKERS: workers }),
    },
    startTimeoutMs: 60_000,
    denoFlags: args.values["server-flags"].split(" ").filter((f) => f !== ""),
  });
  const rssStart = server.rssKiB();
  if (rssStart === null) {
    throw new Error("cannot read /proc/<pid>/status: run with --allow-all (Deno requires it)");
  }
  // Warm up: load the model into the server's cache, compile the hot paths, the batched ones
  // included (several sessions at once), in every isolate (connections are spread over them),
  // so that the modes measure a server in its steady state rather than its JIT's first minute.
  for (let round = 0; round < 3; round++) {
    await Promise.all(Array.from({ length: 16 }, async (_, k) => {
      const s = await openStream(server!.base, `warmup-${round}-${k}`);
      for (const ch of TEXT.slice(0, 50)) {
        s.body.write(ch);
        await withTimeout(s.events.until((e) => e.event === "step", []), 10_000, "warm-up");
      }
      s.body.close();
      await s.events.rest();
      await s.close();
    }));
  }
  const models = await (await fetch(`${server.base}/models`)).json();
  const moby = models.models.find((m: { name: string }) => m.name === "moby")?.versions.at(-1);

  const limit = /^(\d+)/.exec(openFileLimit());
  if (limit !== null && Number(limit[1]) < Math.max(...levels) + 100) {
    console.error(
      `warning: the open-file limit (${openFileLimit()}) is below the largest level plus ` +
        `some margin: raise it (ulimit -n) or expect EMFILE errors in the notes column`,
    );
  }
  const rows: Row[] = [];
  for (const n of levels) {
    const budget = (levelSeconds * 1000) / modes.size;
    const run = { latency: latencyMode, throughput: throughputMode, rate: rateMode };
    for (const [mode, fn] of Object.entries(run)) {
      if (!modes.has(mode)) continue;
      rows.push(await measured(server, () => fn(server!, n, budget)));
      console.error(`N=${n} ${mode} done: ${JSON.stringify(rows.at(-1))}`);
    }
  }
  const rssEnd = server.rssKiB() ?? 0;

  const mib = (kib: number) => (kib / 1024).toFixed(1);
  const fx = (x: number, d = 2) => Number.isFinite(x) ? x.toFixed(d) : "—";
  console.log(
    `\nserve_load: model ${modelNote}: ${moby?.cell} L=${moby?.layers} H=${moby?.hiddenSize} ` +
      `V=${moby?.vocabSize}; ${tokens} tokens per session; CHECKPOINT_EVERY ${
        checkpointEvery ?? "default (64)"
      }; WORKERS ${workers ?? "default (1)"}; ` +
      `client and server on one machine (${navigator.hardwareConcurrency} cores), loopback; ` +
      `open-file limit ${openFileLimit()}; Deno ${Deno.version.deno}\n`,
  );
  console.log(
    "| sessions | mode | steps | s | steps/s | p50 ms/token | p99 ms/token | CPU server / client " +
      "| host steal | server RSS before → peak → after (MiB) " +
      "| KiB per open session | notes |",
  );
  console.log("|---:|---|---:|---:|---:|---:|---:|---|---:|---|---:|---|");
  for (const r of rows) {
    const perSession = !r.mode.startsWith("throughput") && r.sessions >= 100
      ? ((r.rssPeak - r.rssBefore) / r.sessions).toFixed(1)
      : "—";
    const rssCell = `${mib(r.rssBefore)} → ${mib(r.rssPeak)} → ${mib(r.rssAfter)}`;
    const cells = [
      r.n,
      r.mode,
      r.steps,
      fx(r.seconds),
      fx(r.steps / r.seconds, 0),
      fx(r.p50, 3),
      fx(r.p99, 3),
      r.cpu,
      r.steal,
      rssCell,
      perSession,
      r.note,
    ];
    console.log(`| ${cells.join(" | ")} |`);
  }
  console.log(
    `\nserver RSS: ${mib(rssStart)} MiB at start, ${mib(rssEnd)} MiB at the end of the run.`,
  );
} finally {
  if (server !== null) {
    const status = await server.stop();
    if (status.code !== 0) console.error(`server exit: ${JSON.stringify(status)}`);
    // What the server logged, one line per kind of message with its count.
    const kinds = new Map<string, number>();
    for (const line of server.log.split("\n")) {
      if (line === "" || /^\s+at /.test(line) || /^(Listening|published)/.test(line)) continue;
      const kind = line.replace(/\b(lat|thr|warmup)-[\d-]+/g, "<id>").slice(0, 160);
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    for (const [kind, count] of kinds) console.error(`server log: ${count}× ${kind}`);
  }
  await Deno.remove(dir, { recursive: true });
}
