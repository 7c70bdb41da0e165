// Request bodies to input items, as a chain of Web Streams with backpressure:
//   bytes ─▶ size limit ─▶ strict UTF-8 decode ─▶ (text/plain | NDJSON lines | SSE events) ─▶ items
import { EventSourceParserStream } from "eventsource-parser/stream";

/** One input item: free text (applied one character at a time) or one vocabulary token. */
export type InputItem = { text: string } | { token: string };

/** The body content types a session accepts. */
export const INPUT_TYPES = ["text/plain", "application/x-ndjson", "text/event-stream"] as const;

/** One of {@linkcode INPUT_TYPES}. */
export type InputType = typeof INPUT_TYPES[number];

/** Bad input found while decoding a body; `code` is the error code a client sees. */
export class InputError extends Error {
  override name = "InputError";
  /** Machine-readable code: bad_input, too_large. */
  readonly code: "bad_input" | "too_large";

  /**
   * @param code the error code
   * @param message what is wrong, for people
   */
  constructor(code: "bad_input" | "too_large", message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * The media type of a Content-Type header, if it is one a session accepts.
 *
 * @param header the header value (parameters such as charset are allowed; charset must be UTF-8)
 * @returns the input type, or null when the body cannot be read
 * @example
 * ```ts
 * import { inputTypeOf } from "./decode.ts";
 * inputTypeOf("text/plain; charset=utf-8"); // "text/plain"
 * ```
 */
export function inputTypeOf(header: string | null | undefined): InputType | null {
  if (!header) return null;
  const [type, ...params] = header.split(";").map((s) => s.trim().toLowerCase());
  for (const p of params) {
    const [k, v] = p.split("=").map((s) => s.trim().replace(/^"|"$/g, ""));
    if (k === "charset" && v !== "utf-8" && v !== "utf8") return null;
  }
  return (INPUT_TYPES as readonly string[]).includes(type) ? type as InputType : null;
}

/**
 * Errors the stream once more than `max` bytes have passed.
 *
 * @param max the largest body accepted, in bytes
 * @returns a pass-through byte stream
 */
export function limitBytes(max: number): TransformStream<Uint8Array, Uint8Array> {
  let seen = 0;
  return new TransformStream({
    transform(chunk, controller) {
      seen += chunk.byteLength;
      if (seen > max) throw new InputError("too_large", `the body is larger than ${max} bytes`);
      controller.enqueue(chunk);
    },
  });
}

/**
 * Splits text into lines (LF or CRLF), keeping partial lines across chunks.
 *
 * @returns a stream of lines without their line endings
 */
export function splitLines(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(chunk, controller) {
      rest += chunk;
      let nl: number;
      while ((nl = rest.indexOf("\n")) >= 0) {
        controller.enqueue(rest.slice(0, nl).replace(/\r$/, ""));
        rest = rest.slice(nl + 1);
      }
    },
    flush(controller) {
      if (rest !== "") controller.enqueue(rest.replace(/\r$/, ""));
    },
  });
}

/**
 * Strict UTF-8 decoding that reports bad bytes as an {@linkcode InputError} (TextDecoderStream
 * would report a bare TypeError).
 *
 * @returns a stream of text pieces
 */
export function decodeUtf8(): TransformStream<Uint8Array, string> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const decode = (bytes?: Uint8Array) => {
    try {
      return bytes === undefined ? decoder.decode() : decoder.decode(bytes, { stream: true });
    } catch {
      throw new InputError("bad_input", "the body is not valid UTF-8");
    }
  };
  return new TransformStream({
    transform(chunk, controller) {
      const text = decode(chunk);
      if (text !== "") controller.enqueue(text);
    },
    flush(controller) {
      const text = decode();
      if (text !== "") controller.enqueue(text);
    },
  });
}

function itemOf(value: unknown, where: string): InputItem {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const v = value as Record<string, unknown>;
    if (typeof v.text === "string" && v.token === undefined) return { text: v.text };
    if (typeof v.token === "string" && v.text === undefined) return { token: v.token };
  }
  throw new InputError("bad_input", `${where}: expected {"text": "..."} or {"token": "..."}`);
}

/**
 * Decodes a request body into input items as it arrives.
 *
 * - `text/plain`: the text itself, in whatever pieces the network delivers.
 * - `application/x-ndjson`: one JSON object per line, `{"text": "..."}` or `{"token": "..."}`.
 * - `text/event-stream`: each event's data is such an object, or else plain text (so another
 *   model's streamed output can be proxied straight in); `[DONE]` is ignored.
 *
 * Invalid UTF-8, a malformed line and a body over `maxBytes` error the stream with an
 * {@linkcode InputError}; the items before the fault have already been delivered.
 *
 * @param body the request body
 * @param type its input type
 * @param maxBytes the largest body accepted
 * @returns a stream of items
 */
export function decodeBody(
  body: ReadableStream<Uint8Array>,
  type: InputType,
  maxBytes: number,
): ReadableStream<InputItem> {
  const text = body
    .pipeThrough(limitBytes(maxBytes))
    .pipeThrough(decodeUtf8());
  if (type === "text/plain") {
    return text.pipeThrough(
      new TransformStream<string, InputItem>({
        transform: (chunk, controller) => controller.enqueue({ text: chunk }),
      }),
    );
  }
  if (type === "application/x-ndjson") {
    let line = 0;
    return text.pipeThrough(splitLines()).pipeThrough(
      new TransformStream<string, InputItem>({
        transform(raw, controller) {
          line++;
          if (raw.trim() === "") return;
          let value: unknown;
          try {
            value = JSON.parse(raw);
          } catch {
            throw new InputError("bad_input", `line ${line} is not valid JSON`);
          }
          controller.enqueue(itemOf(value, `line ${line}`));
        },
      }),
    );
  }
  let n = 0;
  return text.pipeThrough(new EventSourceParserStream()).pipeThrough(
    new TransformStream({
      transform(event, controller) {
        n++;
        const data = event.data;
        if (data === "[DONE]") return;
        let value: unknown = undefined;
        if (data.startsWith("{")) {
          try {
            value = JSON.parse(data);
          } catch {
            value = undefined;
          }
        }
        controller.enqueue(value === undefined ? { text: data } : itemOf(value, `event ${n}`));
      },
    }),
  );
}
