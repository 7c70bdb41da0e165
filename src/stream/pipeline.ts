// The session pipeline (DESIGN.md): request.body ─▶ decode ─▶ items ─▶ recurrent step ─▶ events
// ─▶ SSE. Each stage is a Web Stream, so a slow client slows the model down (backpressure) and
// a token's output leaves as soon as the token is applied.
import type { SSEStreamingApi } from "hono/streaming";
import { errorInfo } from "../errors.ts";
import { decodeBody, InputError, type InputItem, type InputType } from "./decode.ts";
import type { SessionEvent, SessionRunner } from "./session.ts";

/**
 * The recurrent step as a stream stage: applies each item to the session and passes on its
 * events; at the end of the input, a final checkpoint and `done`.
 *
 * @param runner the session, held for this request
 * @returns a transform from input items to session events
 */
export function stepStream(runner: SessionRunner): TransformStream<InputItem, SessionEvent> {
  return new TransformStream({
    async transform(item, controller) {
      for (const event of await runner.apply(item)) controller.enqueue(event);
    },
    async flush(controller) {
      for (const event of await runner.finish()) controller.enqueue(event);
    },
  });
}

/**
 * Builds a session's event stream from a request body.
 *
 * @param body the request body
 * @param type its content type
 * @param maxBytes body size limit
 * @param runner the session
 * @returns the events, ending with `done` (or erroring at the first fault)
 */
export function sessionEvents(
  body: ReadableStream<Uint8Array>,
  type: InputType,
  maxBytes: number,
  runner: SessionRunner,
): ReadableStream<SessionEvent> {
  return decodeBody(body, type, maxBytes).pipeThrough(stepStream(runner));
}

/**
 * Writes one event in SSE framing (Hono refuses newlines in `event` and `id`).
 *
 * @param stream Hono's SSE stream
 * @param event the event
 */
export async function writeEvent(stream: SSEStreamingApi, event: SessionEvent): Promise<void> {
  await stream.writeSSE({
    event: event.event,
    id: String(event.id),
    data: JSON.stringify(event.data),
  });
}

/** How a stream of events ended. */
export type StreamEnd = "done" | "error" | "aborted";

/**
 * Sends events to the client as they come, with `:` keep-alive comments while the stream is
 * quiet; on a fault, sends an `error` event (code, message, and the durable seq) and ends.
 *
 * @param stream Hono's SSE stream
 * @param events the session's events
 * @param runner the session (for the durable seq in error events)
 * @param keepAliveMs quiet time before a keep-alive comment
 * @returns how the stream ended, and the error if there was one
 */
export async function sendEvents(
  stream: SSEStreamingApi,
  events: ReadableStream<SessionEvent>,
  runner: SessionRunner,
  keepAliveMs: number,
): Promise<{ end: StreamEnd; error?: unknown }> {
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
      if (done) return { end: stream.aborted ? "aborted" : "done" };
      await writeEvent(stream, value);
      last = Date.now();
      if (stream.aborted) return { end: "aborted" };
    }
  } catch (err) {
    if (stream.aborted) return { end: "aborted" };
    await sendError(stream, err, runner);
    return { end: "error", error: err };
  } finally {
    clearInterval(timer);
    reader.releaseLock();
  }
}

/**
 * Sends an `error` event: code, message, and where the session durably stands.
 *
 * @param stream Hono's SSE stream
 * @param err the fault
 * @param runner the session
 */
export async function sendError(
  stream: SSEStreamingApi,
  err: unknown,
  runner: SessionRunner,
): Promise<void> {
  const info = errorInfo(err);
  if (info.status === 500 && !(err instanceof InputError)) console.error(err);
  await writeEvent(stream, {
    event: "error",
    id: runner.durableSeq,
    data: { code: info.code, message: info.message, durable_seq: runner.durableSeq },
  });
}
