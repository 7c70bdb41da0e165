// The session pipeline (DESIGN.md): request.body ─▶ decode ─▶ items ─▶ recurrent step ─▶ SSE
// bytes. Each stage is a Web Stream, so a slow client slows the model down (backpressure) and
// a token's output leaves as soon as the token is applied.
import type { SSEStreamingApi } from "hono/streaming";
import { InputError, type InputItem } from "./decode.ts";
import type { SessionEvent, SessionRunner } from "./session.ts";

/** The headers of an SSE response. */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  "content-type": "text/event-stream",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
};

/**
 * A session's SSE response body: the recurrent step as one stream stage. It pulls input items
 * one at a time, applies each to the session, and sends the events as they are made, grouped:
 * the events made in one turn of the event loop (one batched drain, see batcher.ts) leave as one
 * chunk. At the end of the input, a final checkpoint and `done`. A fault anywhere upstream (bad
 * UTF-8, a malformed line, a body over the limit) or in the step (unknown token, conflict)
 * becomes an in-band `error` event that ends the stream. While the stream is quiet a `:`
 * comment is sent every `keepAliveMs`. A client that goes away cancels the stream: the work
 * stops at the next token.
 *
 * One stage instead of a chain (events → SSE text → Hono's stream → bytes): each hop of a Web
 * Stream costs promises per chunk, and this runs for every write of every session.
 *
 * @param input the decoded items
 * @param runner the session, held for this request
 * @param keepAliveMs quiet time before a keep-alive comment
 * @param onEnd called once when the stream has ended, for any reason ("aborted" when the client
 *   left first): the place to release the session
 * @returns the response body
 */
export function sessionBody(
  input: ReadableStream<InputItem>,
  runner: SessionRunner,
  keepAliveMs: number,
  onEnd: (end: "done" | "aborted") => void,
): ReadableStream<Uint8Array> {
  const reader = input.getReader();
  const encoder = new TextEncoder();
  let open = true;
  let pending = "";
  let last = Date.now();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const flush = () => {
    if (open && pending !== "") {
      controller.enqueue(encoder.encode(pending));
      last = Date.now();
    }
    pending = "";
  };
  const timer = setInterval(() => {
    if (open && pending === "" && Date.now() - last >= keepAliveMs) {
      pending = ": keep-alive\n\n";
      flush();
    }
  }, Math.max(10, Math.min(keepAliveMs, 1000)));
  const finish = (end: "done" | "aborted") => {
    if (!open) return;
    open = false;
    clearInterval(timer);
    onEnd(end);
  };
  return new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    async pull() {
      let emitted = false;
      const emit = (event: SessionEvent) => {
        // After the client has gone, the work stops at the next token; drop what is left.
        if (!open) return;
        emitted = true;
        if (pending === "") queueMicrotask(flush);
        pending += frameEvent(event);
      };
      const end = () => {
        flush();
        if (open) controller.close();
        finish("done");
      };
      // A pull must produce at least one event or end the stream: an item whose tokens are all
      // skipped (a resend of what the session has) produces none, and the reader would wait.
      while (open && !emitted) {
        let next: ReadableStreamReadResult<InputItem>;
        try {
          next = await reader.read();
        } catch (err) {
          // Decoding faults are the client's input; anything else reading the body (a reset
          // connection) means the client has gone.
          if (err instanceof InputError) {
            emit(runner.fail(err));
            end();
          } else {
            runner.cancel();
            controller.close();
            finish("aborted");
          }
          return;
        }
        // The client went away while the body was awaited (cancelling ends that read as if the
        // body were done): the request's end, its checkpoint included, is onEnd's to make.
        if (!open) return;
        try {
          if (next.done) {
            for (const event of await runner.finish()) emit(event);
            end();
            return;
          }
          await runner.apply(next.value, emit);
        } catch (err) {
          emit(runner.fail(err));
          end();
          reader.cancel().catch(() => {});
          return;
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
 * One event in SSE framing. `event` and `id` are ours (a name and a number) and JSON has no raw
 * newlines, so no field can break the framing.
 *
 * @param event the event
 * @returns `event:`, `data:` and `id:` lines (the order Hono's writeSSE used) and the blank line that ends the event
 */
export function frameEvent(event: SessionEvent): string {
  return `event: ${event.event}\ndata: ${
    event.json ?? JSON.stringify(event.data)
  }\nid: ${event.id}\n\n`;
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
