// The session pipeline (DESIGN.md): request.body ─▶ decode ─▶ items ─▶ recurrent step ─▶ SSE
// bytes, as one Web Stream stage from the request body to the response body, so a slow client
// slows the model down (backpressure) and a token's output leaves as soon as it is applied.
import type { SSEStreamingApi } from "hono/streaming";
import { BodyDecoder, type InputItem, type InputType } from "./decode.ts";
import { FrameBuffer, frameEvent } from "./frames.ts";
import type { SessionEvent, SessionRunner } from "./session.ts";

/** The headers of an SSE response. */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  "content-type": "text/event-stream",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
};

/**
 * A session's SSE response body: the recurrent step as one stream stage. It reads the request
 * body, decodes it into input items, applies each to the session, and sends the events as they
 * are made, grouped: the events made in one turn of the event loop (one batched drain, see
 * batcher.ts) leave as one chunk. A `checkpoint` event that lands between two writes of the
 * client is held for the next chunk, or at most {@linkcode HOLD_MS}: a chunk of its own would
 * cost a socket write (and the client a read) for a few dozen bytes, about one more write per
 * six of a client sending ten tokens at a time. At the end of the input, a final checkpoint
 * and `done`. A fault (bad UTF-8, a malformed line, a body over the limit, an unknown token, a
 * conflict) becomes an in-band `error` event that ends the stream, after the items before it
 * have been applied. While the stream is quiet a `:` comment is sent every `keepAliveMs`. A
 * client that goes away cancels the stream: the work stops at the next token.
 *
 * One stage instead of a chain (bytes → items → events → SSE text → bytes): each hop of a Web
 * Stream costs promises per chunk, and this runs for every write of every session. Backpressure
 * holds: the body is read only when the response asks for more.
 *
 * @param body the request body
 * @param type its content type
 * @param maxBytes the largest body accepted
 * @param runner the session, held for this request
 * @param keepAliveMs quiet time before a keep-alive comment
 * @param onEnd called once when the stream has ended, for any reason ("aborted" when the client
 *   left first): the place to release the session
 * @returns the response body
 */
export function sessionBody(
  body: ReadableStream<Uint8Array>,
  type: InputType,
  maxBytes: number,
  runner: SessionRunner,
  keepAliveMs: number,
  onEnd: (end: "done" | "aborted") => void,
): ReadableStream<Uint8Array> {
  const reader = new BodyReader(body);
  let open = true;
  let last = Date.now();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const flush = () => {
    const bytes = out.take();
    if (open && bytes !== null) {
      controller.enqueue(bytes);
      last = Date.now();
    }
  };
  // A held frame (a checkpoint event) leaves with the next step events, or at the latest
  // HOLD_MS later, by one timer at a time.
  let hold: ReturnType<typeof setTimeout> | undefined;
  const out = new FrameBuffer(() => queueMicrotask(flush), () => {
    hold ??= setTimeout(() => {
      hold = undefined;
      flush();
    }, HOLD_MS);
  });
  const timer = setInterval(() => {
    if (open && out.length === 0 && Date.now() - last >= keepAliveMs) {
      out.text(": keep-alive\n\n");
      out.end();
    }
  }, Math.max(10, Math.min(keepAliveMs, 1000)));
  const finish = (end: "done" | "aborted") => {
    if (!open) return;
    open = false;
    out.clear();
    clearInterval(timer);
    clearTimeout(hold);
    onEnd(end);
  };
  const end = () => {
    flush();
    if (open) controller.close();
    finish("done");
  };
  // Items decoded from the body and not applied yet; a decoding fault waits behind them.
  const items: InputItem[] = [];
  const decoder = new BodyDecoder(type, maxBytes, (item) => items.push(item));
  let next = 0;
  let ended = false;
  let fault: unknown = null;
  return new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    async pull() {
      // A pull must produce at least one event or end the stream: an item whose tokens are all
      // skipped (a resend of what the session has) produces none, and the reader would wait.
      const frames = out.frames;
      while (open && out.frames === frames) {
        try {
          if (next < items.length) {
            await runner.apply(items[next++], out);
            continue;
          }
          items.length = next = 0;
          if (fault !== null) throw fault;
          if (ended) {
            for (const event of await runner.finish()) out.event(event);
            end();
            return;
          }
        } catch (err) {
          // The error event says where the session durably stands: after any checkpoint in flight.
          await runner.settled();
          out.event(runner.fail(err));
          end();
          reader.cancel().catch(() => {});
          return;
        }
        let chunk: Uint8Array | null;
        try {
          chunk = await reader.read();
        } catch {
          // A reset connection: the client has gone.
          runner.cancel();
          controller.close();
          finish("aborted");
          return;
        }
        // The client went away while the body was awaited (cancelling ends that read as if the
        // body were done): the request's end, its checkpoint included, is onEnd's to make.
        if (!open) return;
        try {
          if (chunk === null) {
            ended = true;
            decoder.end();
          } else decoder.push(chunk);
        } catch (err) {
          fault = err;
        }
      }
    },
    cancel(reason) {
      runner.cancel();
      finish("aborted");
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/**
 * How long a `checkpoint` event that lands between two writes of the client may wait to leave
 * with the next step events, ms (see {@linkcode FrameBuffer.eventLater}). The write it reports
 * is already durable; only the news of it waits.
 */
export const HOLD_MS = 250;

/** Bytes a session's body is read into at a time (see {@linkcode BodyReader}). */
export const READ_BYTES = 16 * 1024;

/**
 * Reads a request body chunk by chunk into one buffer of its own, reused from read to read.
 * A streamed request body in Deno.serve is a byte stream, whose default reader allocates a
 * fresh 64 KiB buffer for every read however few bytes arrived: for a client writing ten
 * characters at a time that is 64 KiB of garbage per write, and the collector's work grows
 * with it. A bring-your-own-buffer reader fills the same memory each time. A body that is not
 * a byte stream (one that had arrived whole, or one wrapped by middleware) is read as it is.
 */
export class BodyReader {
  readonly #byob: ReadableStreamBYOBReader | null;
  readonly #plain: ReadableStreamDefaultReader<Uint8Array> | null;
  #buffer: Uint8Array<ArrayBuffer> | null;

  constructor(body: ReadableStream<Uint8Array>) {
    let byob: ReadableStreamBYOBReader | null = null;
    try {
      byob = body.getReader({ mode: "byob" });
    } catch {
      // not a byte stream
    }
    this.#byob = byob;
    this.#plain = byob === null ? body.getReader() : null;
    this.#buffer = byob === null ? null : new Uint8Array(READ_BYTES);
  }

  /**
   * The next chunk, valid only until the next read (its memory is filled again then).
   *
   * @returns the bytes, or null at the end of the body
   */
  async read(): Promise<Uint8Array | null> {
    if (this.#plain !== null) {
      const r = await this.#plain.read();
      return r.done ? null : r.value;
    }
    const r = await this.#byob!.read(this.#buffer!);
    if (r.done) return null;
    // The read took the buffer over; its memory comes back as the chunk's.
    this.#buffer = new Uint8Array(r.value.buffer);
    return r.value;
  }

  /** Cancels the body. */
  cancel(reason?: unknown): Promise<void> {
    return (this.#byob ?? this.#plain)!.cancel(reason);
  }
}

/**
 * Writes one event.
 *
 * @param stream Hono's SSE stream
 * @param event the event
 */
export async function writeEvent(stream: SSEStreamingApi, event: SessionEvent): Promise<void> {
  await stream.write(frameEvent(event));
}
