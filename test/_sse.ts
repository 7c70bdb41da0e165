// Server-sent events for tests: a strict parser of the exact bytes a response carries (field
// order, blank lines, comments), and an incremental reader built on eventsource-parser for
// streams a test reads one event at a time.
import { type EventSourceMessage, EventSourceParserStream } from "eventsource-parser/stream";

/** One event as it appeared on the wire, with its data parsed as JSON. */
export interface WireEvent {
  event: string;
  id: string;
  data: Record<string, unknown>;
}

/** A frame of an SSE response: an event, or a `:` comment line. */
export type WireFrame = { kind: "event"; event: WireEvent } | { kind: "comment"; text: string };

/**
 * Parses an SSE response body strictly as this server frames it: every event is exactly the
 * lines `event: <name>`, `data: <one line of JSON>`, `id: <digits>` and a blank line, in that
 * order; a comment is one `:` line and a blank line. Anything else throws, naming the offset.
 *
 * @param text the whole body
 * @returns the frames, in order
 */
export function parseWire(text: string): WireFrame[] {
  const frames: WireFrame[] = [];
  let at = 0;
  while (at < text.length) {
    const end = text.indexOf("\n\n", at);
    if (end < 0) {
      throw new Error(`unterminated frame at byte ${at}: ${JSON.stringify(text.slice(at))}`);
    }
    const lines = text.slice(at, end).split("\n");
    if (lines.length === 1 && lines[0].startsWith(":")) {
      frames.push({ kind: "comment", text: lines[0] });
    } else {
      const m0 = /^event: ([a-z]+)$/.exec(lines[0] ?? "");
      const m1 = /^data: (\{.*\})$/.exec(lines[1] ?? "");
      const m2 = /^id: (\d+)$/.exec(lines[2] ?? "");
      if (lines.length !== 3 || m0 === null || m1 === null || m2 === null) {
        throw new Error(
          `malformed frame at byte ${at}: ${JSON.stringify(text.slice(at, end + 2))}`,
        );
      }
      frames.push({
        kind: "event",
        event: { event: m0[1], data: JSON.parse(m1[1]), id: m2[1] },
      });
    }
    at = end + 2;
  }
  return frames;
}

/**
 * The frames of {@linkcode parseWire} written back as bytes: equal to the input exactly when
 * the server's framing and its JSON (as `JSON.stringify` writes it) were canonical.
 *
 * @param frames parsed frames
 * @returns the SSE text
 */
export function formatWire(frames: WireFrame[]): string {
  return frames.map((f) =>
    f.kind === "comment"
      ? `${f.text}\n\n`
      : `event: ${f.event.event}\ndata: ${JSON.stringify(f.event.data)}\nid: ${f.event.id}\n\n`
  ).join("");
}

/**
 * The events of a response body (comments dropped), parsed strictly.
 *
 * @param text the whole body
 * @returns the events
 */
export function wireEvents(text: string): WireEvent[] {
  return parseWire(text).flatMap((f) => f.kind === "event" ? [f.event] : []);
}

/** Reads a response's events one at a time, as a browser's EventSource would see them. */
export class EventReader {
  readonly #reader: ReadableStreamDefaultReader<EventSourceMessage>;

  /**
   * @param body the response body
   */
  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body
      .pipeThrough(new TextDecoderStream())
      .pipeThrough(new EventSourceParserStream())
      .getReader();
  }

  /**
   * The next event, its data parsed as JSON.
   *
   * @returns the event, or null at the end of the stream
   */
  async next(): Promise<WireEvent | null> {
    const { done, value } = await this.#reader.read();
    if (done) return null;
    return { event: value.event ?? "message", id: value.id ?? "", data: JSON.parse(value.data) };
  }

  /**
   * Reads events until one named `name` (inclusive).
   *
   * @param name the event name to stop at
   * @returns every event read, the last one named `name`
   * @throws if the stream ends first
   */
  async until(name: string): Promise<WireEvent[]> {
    const seen: WireEvent[] = [];
    while (true) {
      const e = await this.next();
      if (e === null) {
        throw new Error(`stream ended before a ${name} event: ${JSON.stringify(seen)}`);
      }
      seen.push(e);
      if (e.event === name) return seen;
    }
  }

  /**
   * Reads the rest of the stream.
   *
   * @returns the remaining events
   */
  async rest(): Promise<WireEvent[]> {
    const seen: WireEvent[] = [];
    for (let e = await this.next(); e !== null; e = await this.next()) seen.push(e);
    return seen;
  }

  /** Cancels the response body, as a client that goes away does. */
  async cancel(): Promise<void> {
    await this.#reader.cancel();
  }
}

/** A request body the test feeds by hand, and closes (or never closes) when it likes. */
export class ControlledBody {
  readonly stream: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  /** Whether the server cancelled the body (it stopped reading). */
  cancelled = false;

  constructor() {
    this.stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      cancel: () => {
        this.cancelled = true;
      },
    }, { highWaterMark: 0 });
  }

  /**
   * Sends a piece of the body.
   *
   * @param chunk text (UTF-8 encoded) or bytes
   */
  send(chunk: string | Uint8Array): void {
    if (this.cancelled) return;
    this.#controller.enqueue(typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk);
  }

  /** Ends the body. */
  close(): void {
    if (!this.cancelled) this.#controller.close();
  }
}
