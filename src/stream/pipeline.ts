// The session pipeline (DESIGN.md): request.body ─▶ decode ─▶ items ─▶ recurrent step ─▶ events
// ─▶ SSE. Each stage is a Web Stream, so a slow client slows the model down (backpressure) and
// a token's output leaves as soon as the token is applied.
import type { SSEStreamingApi } from "hono/streaming";
import { decodeBody, InputError, type InputItem, type InputType } from "./decode.ts";
import type { SessionEvent, SessionRunner } from "./session.ts";

/**
 * The recurrent step as a stream stage: pulls input items one at a time, applies each to the
 * session and passes on its events as they are made, grouped: the events made in one turn of
 * the event loop (one batched drain, see batcher.ts) travel as one chunk and leave in one write;
 * at the end of the input, a final checkpoint and `done`. A fault anywhere upstream (bad UTF-8, a malformed line, a body over
 * the limit) or in the step (unknown token, conflict) becomes an in-band `error` event that
 * ends the stream. That is why this stage reads its input itself instead of being a
 * TransformStream: an errored TransformStream would discard the events still queued in it.
 *
 * @param input the decoded items
 * @param runner the session, held for this request
 * @returns the events, ending with `done` or `error`
 */
export function stepEvents(
  input: ReadableStream<InputItem>,
  runner: SessionRunner,
): ReadableStream<SessionEvent[]> {
  const reader = input.getReader();
  let open = true;
  let pending: SessionEvent[] = [];
  return new ReadableStream<SessionEvent[]>({
    async pull(controller) {
      let emitted = false;
      const flush = () => {
        if (open && pending.length > 0) controller.enqueue(pending);
        pending = [];
      };
      const emit = (event: SessionEvent) => {
        // After the client has gone, the work stops at the next token; drop what is left.
        if (!open) return;
        emitted = true;
        if (pending.length === 0) queueMicrotask(flush);
        pending.push(event);
      };
      const end = () => {
        flush();
        if (open) controller.close();
        open = false;
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
          if (err instanceof InputError) emit(runner.fail(err));
          else runner.cancel();
          end();
          return;
        }
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
      open = false;
      runner.cancel();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/**
 * Builds a session's event stream from a request body.
 *
 * @param body the request body
 * @param type its content type
 * @param maxBytes body size limit
 * @param runner the session
 * @returns the events, ending with `done` or `error`
 */
export function sessionEvents(
  body: ReadableStream<Uint8Array>,
  type: InputType,
  maxBytes: number,
  runner: SessionRunner,
): ReadableStream<SessionEvent[]> {
  return stepEvents(decodeBody(body, type, maxBytes), runner);
}

/**
 * One event in SSE framing. `event` and `id` are ours (a name and a number) and JSON has no raw
 * newlines, so no field can break the framing.
 *
 * @param event the event
 * @returns `event:`, `data:` and `id:` lines (the order Hono's writeSSE used) and the blank line that ends the event
 */
export function frameEvent(event: SessionEvent): string {
  return `event: ${event.event}\ndata: ${JSON.stringify(event.data)}\nid: ${event.id}\n\n`;
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

/**
 * Sends events to the client as they come, with `:` keep-alive comments while the stream is
 * quiet, until the events end or the client goes away.
 *
 * @param stream Hono's SSE stream
 * @param events the session's events
 * @param keepAliveMs quiet time before a keep-alive comment
 * @returns "done" when the events ended, "aborted" when the client left first
 */
export async function sendEvents(
  stream: SSEStreamingApi,
  events: ReadableStream<SessionEvent[]>,
  keepAliveMs: number,
): Promise<"done" | "aborted"> {
  const reader = events.getReader();
  let last = Date.now();
  const timer = setInterval(() => {
    if (Date.now() - last >= keepAliveMs) {
      last = Date.now();
      stream.write(": keep-alive\n\n").catch(() => {});
    }
  }, Math.max(10, Math.min(keepAliveMs, 1000)));
  stream.onAbort(() => {
    reader.cancel().catch(() => {});
  });
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) return stream.aborted ? "aborted" : "done";
      let text = "";
      for (const event of value) text += frameEvent(event);
      await stream.write(text);
      last = Date.now();
      if (stream.aborted) return "aborted";
    }
  } catch {
    return "aborted";
  } finally {
    clearInterval(timer);
    reader.releaseLock();
  }
}
