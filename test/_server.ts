// Helpers for end-to-end tests and load benchmarks against a real server process on loopback:
// start, stop and kill `src/start.ts`; publish a model into a KV file before it starts; stream a
// request body you control; parse the response's Server-Sent Events.
import { EventSourceParserStream } from "eventsource-parser/stream";
import { readModelFile } from "../src/format/mod.ts";
import { publishModel } from "../src/store/registry.ts";

/** The project root (where deno.json is), as a path. */
export const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);

/** A small GRU language model over lowercase letters, space and period (2 layers, H = 16). */
export const SMALL_LM = `${ROOT}fixtures/golden/train/train_gru.safetensors`;

/** The pre-trained model a fresh store is seeded with, when it has been made. */
export const MOBY_FIXTURE = `${ROOT}fixtures/models/moby.safetensors`;

/**
 * A free TCP port on 127.0.0.1 (listen on port 0, read it, close it).
 *
 * @returns the port
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Publishes a model file into a KV store (a file path) and closes the store again, so that a
 * server started on it serves that model (the server only seeds models with no current version).
 *
 * @param kvPath the KV file
 * @param name the model name
 * @param file the safetensors model file
 */
export async function publishFile(kvPath: string, name = "moby", file = SMALL_LM): Promise<void> {
  const kv = await Deno.openKv(kvPath);
  try {
    await publishModel(kv, name, await readModelFile(file));
  } finally {
    kv.close();
  }
}

/**
 * Rejects after `ms` milliseconds unless `promise` settles first.
 *
 * @param promise what to wait for
 * @param ms the time limit
 * @param what named in the error
 * @returns the promise's value
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Sleeps.
 *
 * @param ms milliseconds
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** How to start a server. */
export interface ServerOptions {
  /** The KV file (KV_PATH). */
  kvPath: string;
  /** More environment variables (CHECKPOINT_EVERY, ...). */
  env?: Record<string, string>;
  /** The port; a free one when absent. */
  port?: number;
  /** How long to wait for /healthz. @default 20_000 */
  startTimeoutMs?: number;
  /** Copy the server's output to this process's stderr as it comes. @default false */
  echo?: boolean;
  /** More flags for `deno run` (`--cpu-prof`, ...). */
  denoFlags?: string[];
}

/** A process's current and peak resident memory, in KiB. */
export interface Memory {
  /** VmRSS. */
  rssKiB: number;
  /** VmHWM: the peak resident set since the process started. */
  peakKiB: number;
}

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat; null if unknown. */
export function cpuSeconds(pid: number | "self"): number | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ (100)
  } catch {
    return null;
  }
}

/** The memory lines of a `/proc/<pid>/status` text, or null when they are missing. */
function memoryIn(status: string): Memory | null {
  const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  const hwm = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
  return rss === null || hwm === null ? null : { rssKiB: Number(rss[1]), peakKiB: Number(hwm[1]) };
}

/** A server process: `deno run src/start.ts` on 127.0.0.1. */
export class ServerProcess {
  readonly port: number;
  readonly base: string;
  readonly #child: Deno.ChildProcess;
  readonly #output: Promise<void>;
  readonly #status: Promise<Deno.CommandStatus>;
  #log = "";
  #exited: Deno.CommandStatus | null = null;

  private constructor(child: Deno.ChildProcess, port: number, echo: boolean) {
    this.#child = child;
    this.port = port;
    this.base = `http://127.0.0.1:${port}`;
    const drain = async (stream: ReadableStream<Uint8Array>) => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        this.#log += text;
        if (echo) Deno.stderr.writeSync(new TextEncoder().encode(text));
      }
    };
    this.#output = Promise.all([drain(child.stdout), drain(child.stderr)]).then(() => {});
    this.#status = child.status.then((s) => this.#exited = s);
  }

  /**
   * Starts a server and waits until `/healthz` answers.
   *
   * @param options KV file, environment, port
   * @returns the running server
   * @throws {Error} with the server's output if it exits or does not answer in time
   */
  static async start(options: ServerOptions): Promise<ServerProcess> {
    const port = options.port ?? freePort();
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        "--allow-env",
        "--allow-read",
        "--allow-write",
        ...(options.denoFlags ?? []),
        "src/start.ts",
      ],
      cwd: ROOT,
      env: {
        ...options.env,
        PORT: String(port),
        HOST: "127.0.0.1",
        KV_PATH: options.kvPath,
        NO_COLOR: "1",
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const server = new ServerProcess(child, port, options.echo ?? false);
    const deadline = Date.now() + (options.startTimeoutMs ?? 20_000);
    while (true) {
      if (server.#exited !== null) {
        await server.#output;
        throw new Error(
          `server exited (${server.#exited.code}) before it answered:\n${server.log}`,
        );
      }
      try {
        const res = await fetch(`${server.base}/healthz`, { signal: AbortSignal.timeout(1000) });
        await res.body?.cancel();
        // The log must say so too: then what the server printed before it listened (seeding)
        // is in the log, and the answer came from this process, not another on the port.
        if (res.ok && server.log.includes(`Listening on ${server.base}/`)) return server;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await server.kill();
        throw new Error(`server did not answer /healthz in time:\n${server.log}`);
      }
      await sleep(50);
    }
  }

  /** The process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Everything the server wrote to stdout and stderr so far. */
  get log(): string {
    return this.#log;
  }

  /** The exit status, once it has exited. */
  get exited(): Deno.CommandStatus | null {
    return this.#exited;
  }

  /**
   * Sends a signal and waits for the process to exit; kills it (SIGKILL) if it takes longer
   * than `timeoutMs`.
   *
   * @param signal the signal
   * @param timeoutMs how long to wait before SIGKILL
   * @returns the exit status
   */
  async stop(signal: Deno.Signal = "SIGTERM", timeoutMs = 5000): Promise<Deno.CommandStatus> {
    if (this.#exited === null) {
      try {
        this.#child.kill(signal);
      } catch {
        // already gone
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), timeoutMs);
      });
      const first = await Promise.race([this.#status, timedOut]);
      clearTimeout(timer);
      if (first === "timeout") {
        try {
          this.#child.kill("SIGKILL");
        } catch {
          // already gone
        }
      }
    }
    const status = await this.#status;
    await this.#output;
    return status;
  }

  /**
   * SIGKILL: the process ends at once, without running any of its code.
   *
   * @returns the exit status
   */
  kill(): Promise<Deno.CommandStatus> {
    return this.stop("SIGKILL");
  }

  /**
   * Resident memory of the process in KiB (VmRSS from /proc), or null when unknown. Reads /proc
   * directly, which Deno allows only with every permission (the benchmarks have them).
   */
  rssKiB(): number | null {
    try {
      return memoryIn(Deno.readTextFileSync(`/proc/${this.pid}/status`))?.rssKiB ?? null;
    } catch {
      return null;
    }
  }

  /**
   * Current and peak resident memory, read through `cat` (the test task grants running
   * programs, not every permission).
   *
   * @returns the memory, or null where /proc is not there
   */
  async memory(): Promise<Memory | null> {
    try {
      const out = await new Deno.Command("cat", {
        args: [`/proc/${this.pid}/status`],
        stderr: "null",
      }).output();
      return out.success ? memoryIn(new TextDecoder().decode(out.stdout)) : null;
    } catch {
      return null;
    }
  }

  /** Stops the server (SIGTERM, then SIGKILL) if it still runs. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** One parsed server-sent event; `json` is `data` parsed (null if it is not JSON). */
export interface SseEvent {
  event: string;
  id: string | undefined;
  data: string;
  // deno-lint-ignore no-explicit-any
  json: any;
}

/** Reads the server-sent events of a response, with a time limit on every read. */
export class SseReader {
  readonly #reader: ReadableStreamDefaultReader<SseEvent>;
  #done = false;

  /**
   * @param body a response body in SSE framing
   */
  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body
      .pipeThrough(new TextDecoderStream())
      .pipeThrough(new EventSourceParserStream())
      .pipeThrough(
        new TransformStream({
          transform(m, controller) {
            let json = null;
            try {
              json = JSON.parse(m.data);
            } catch {
              json = null;
            }
            controller.enqueue({ event: m.event ?? "message", id: m.id, data: m.data, json });
          },
        }),
      )
      .getReader();
  }

  /** Whether the stream has ended. */
  get done(): boolean {
    return this.#done;
  }

  /**
   * The next event, or null at the end of the stream.
   *
   * @param timeoutMs the time limit
   * @returns the event
   */
  async next(timeoutMs = 10_000): Promise<SseEvent | null> {
    if (this.#done) return null;
    const r = await withTimeout(this.#reader.read(), timeoutMs, "the next server-sent event");
    if (r.done) {
      this.#done = true;
      return null;
    }
    return r.value;
  }

  /**
   * Reads events until one matches, keeping every event read.
   *
   * @param match the test
   * @param into where to push the events read
   * @param timeoutMs the time limit per read
   * @returns the matching event, or null if the stream ended first
   */
  async until(
    match: (e: SseEvent) => boolean,
    into: SseEvent[],
    timeoutMs = 10_000,
  ): Promise<SseEvent | null> {
    while (true) {
      const e = await this.next(timeoutMs);
      if (e === null) return null;
      into.push(e);
      if (match(e)) return e;
    }
  }

  /**
   * Every remaining event until the end of the stream.
   *
   * @param timeoutMs the time limit per read
   * @returns the events
   */
  async rest(timeoutMs = 10_000): Promise<SseEvent[]> {
    const out: SseEvent[] = [];
    while (true) {
      const e = await this.next(timeoutMs);
      if (e === null) return out;
      out.push(e);
    }
  }

  /** Stops reading (cancels the response body); never throws. */
  async cancel(): Promise<void> {
    this.#done = true;
    await this.#reader.cancel().catch(() => {});
  }
}

/** A request body written piece by piece while the response streams back. */
export class BodyWriter {
  readonly stream: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #closed = false;
  #encoder = new TextEncoder();

  constructor() {
    this.stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      cancel: () => {
        this.#closed = true;
      },
    });
  }

  /** Whether the body has ended (closed here, or cancelled by the transport). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends text (one chunk).
   *
   * @param text the text
   */
  write(text: string): void {
    if (this.#closed) throw new Error("the request body is already closed");
    this.#controller.enqueue(this.#encoder.encode(text));
  }

  /** Ends the body; never throws. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#controller.close();
    } catch {
      // cancelled meanwhile
    }
  }
}

/** A streaming POST /session/:id: the body to write to, the events to read, and the response. */
export interface OpenStream {
  res: Response;
  body: BodyWriter;
  events: SseReader;
  abort: AbortController;
  /** Cancels everything: body, response, request; never throws. */
  close(): Promise<void>;
}

/** Options of {@linkcode openStream} and {@linkcode postText}. */
export interface PostOptions {
  /** Query string (without `?`). */
  query?: string;
  /** More headers (Last-Event-ID, ...). */
  headers?: Record<string, string>;
  /** Content type. @default "text/plain; charset=utf-8" */
  contentType?: string;
  /** Time limit for the response headers. @default 10_000 */
  timeoutMs?: number;
}

/**
 * Starts `POST /session/:id` with a request body that stays open (`duplex: "half"`). If the
 * answer is not a stream (an error status), `events` reads nothing and `res` has the JSON.
 *
 * @param base the server's base URL
 * @param id the session id
 * @param options query, headers, content type
 * @returns the open stream
 */
export async function openStream(
  base: string,
  id: string,
  options: PostOptions = {},
): Promise<OpenStream> {
  const body = new BodyWriter();
  const abort = new AbortController();
  const url = `${base}/session/${id}${options.query ? `?${options.query}` : ""}`;
  const res = await withTimeout(
    fetch(url, {
      method: "POST",
      headers: {
        "content-type": options.contentType ?? "text/plain; charset=utf-8",
        ...options.headers,
      },
      body: body.stream,
      signal: abort.signal,
      duplex: "half",
    } as RequestInit),
    options.timeoutMs ?? 10_000,
    `response headers of POST ${url}`,
  ).catch((err) => {
    abort.abort();
    body.close();
    throw err;
  });
  const isStream = res.ok &&
    (res.headers.get("content-type") ?? "").startsWith("text/event-stream");
  const events = new SseReader(
    isStream ? res.body! : new ReadableStream<Uint8Array>({ start: (c) => c.close() }),
  );
  return {
    res,
    body,
    events,
    abort,
    async close() {
      body.close();
      await events.cancel();
      if (!isStream) await res.body?.cancel().catch(() => {});
      abort.abort();
    },
  };
}

/**
 * `POST /session/:id` with a whole text body; reads every event to the end.
 *
 * @param base the server's base URL
 * @param id the session id
 * @param text the body
 * @param options query, headers, content type, time limit for the whole exchange
 * @returns the response status and its events (none when it is not a stream)
 */
export async function postText(
  base: string,
  id: string,
  text: string,
  options: PostOptions = {},
): Promise<{ status: number; events: SseEvent[]; json: unknown }> {
  const url = `${base}/session/${id}${options.query ? `?${options.query}` : ""}`;
  const res = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": options.contentType ?? "text/plain; charset=utf-8",
      ...options.headers,
    },
    body: text,
    signal: AbortSignal.timeout(options.timeoutMs ?? 20_000),
  });
  if (!(res.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
    const raw = await res.text();
    let json: unknown = null;
    try {
      json = JSON.parse(raw);
    } catch {
      json = raw;
    }
    return { status: res.status, events: [], json };
  }
  const reader = new SseReader(res.body!);
  try {
    return {
      status: res.status,
      events: await reader.rest(options.timeoutMs ?? 20_000),
      json: null,
    };
  } finally {
    await reader.cancel();
  }
}

/**
 * `GET /session/:id` as JSON (status and body).
 *
 * @param base the server's base URL
 * @param id the session id
 * @returns status and parsed body
 */
export async function getSession(
  base: string,
  id: string,
  // deno-lint-ignore no-explicit-any
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}/session/${id}`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: await res.json() };
}

/**
 * The step events of a list, by seq (the raw `data` text, so comparisons are to the last digit).
 *
 * @param events events
 * @returns seq -> data
 */
export function stepsBySeq(events: SseEvent[]): Map<number, string> {
  const out = new Map<number, string>();
  for (const e of events) if (e.event === "step") out.set(e.json.seq, e.data);
  return out;
}
