// Request bodies to input items, one Web Stream stage with backpressure:
//   bytes ─▶ size limit ─▶ strict UTF-8 decode ─▶ (text/plain | NDJSON lines | SSE events) ─▶ items
import { createParser } from "eventsource-parser";

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
 * Text from a body's bytes: at most `max` bytes, strict UTF-8 (bad bytes are an
 * {@linkcode InputError}, where TextDecoder would say only TypeError).
 */
class BodyText {
  readonly #decoder = new TextDecoder("utf-8", { fatal: true });
  readonly #max: number;
  #seen = 0;

  constructor(max: number) {
    this.#max = max;
  }

  /** The text of the next chunk, or of what is left at the end (no chunk). */
  decode(bytes?: Uint8Array): string {
    if (bytes !== undefined) {
      this.#seen += bytes.byteLength;
      if (this.#seen > this.#max) {
        throw new InputError("too_large", `the body is larger than ${this.#max} bytes`);
      }
    }
    try {
      return bytes === undefined
        ? this.#decoder.decode()
        : this.#decoder.decode(bytes, { stream: true });
    } catch {
      throw new InputError("bad_input", "the body is not valid UTF-8");
    }
  }
}

/** Lines (LF or CRLF) of a text that arrives in pieces; a partial line waits for the rest. */
class Lines {
  #rest = "";

  /** The lines completed by `text` (without their endings). */
  push(text: string, out: (line: string) => void): void {
    this.#rest += text;
    let nl: number;
    while ((nl = this.#rest.indexOf("\n")) >= 0) {
      out(this.#rest.slice(0, nl).replace(/\r$/, ""));
      this.#rest = this.#rest.slice(nl + 1);
    }
  }

  /** The last line, if the text did not end with a line ending. */
  end(out: (line: string) => void): void {
    if (this.#rest !== "") out(this.#rest.replace(/\r$/, ""));
    this.#rest = "";
  }
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
 * Decodes a request body into input items, one chunk of bytes at a time, synchronously.
 *
 * - `text/plain`: the text itself, in whatever pieces the network delivers.
 * - `application/x-ndjson`: one JSON object per line, `{"text": "..."}` or `{"token": "..."}`.
 * - `text/event-stream`: each event's data is such an object, or else plain text (so another
 *   model's streamed output can be proxied straight in); `[DONE]` is ignored.
 *
 * Invalid UTF-8, a malformed line and a body over `maxBytes` throw an {@linkcode InputError};
 * the items before the fault have already been handed over.
 *
 * @example
 * ```ts
 * import { BodyDecoder } from "./decode.ts";
 * const items: unknown[] = [];
 * const decoder = new BodyDecoder("application/x-ndjson", 1024, (i) => items.push(i));
 * decoder.push(new TextEncoder().encode('{"text":"ab"}\n{"tok'));
 * decoder.push(new TextEncoder().encode('en":"c"}'));
 * decoder.end(); // items: [{ text: "ab" }, { token: "c" }]
 * ```
 */
export class BodyDecoder {
  readonly #text: BodyText;
  readonly #parse: (piece: string) => void;
  readonly #end: () => void = () => {};

  /**
   * @param type the body's input type
   * @param maxBytes the largest body accepted
   * @param emit receives each item as it is completed
   */
  constructor(type: InputType, maxBytes: number, emit: (item: InputItem) => void) {
    this.#text = new BodyText(maxBytes);
    if (type === "text/plain") {
      this.#parse = (piece) => emit({ text: piece });
    } else if (type === "application/x-ndjson") {
      const lines = new Lines();
      let line = 0;
      const item = (raw: string) => {
        line++;
        if (raw.trim() === "") return;
        let value: unknown;
        try {
          value = JSON.parse(raw);
        } catch {
          throw new InputError("bad_input", `line ${line} is not valid JSON`);
        }
        emit(itemOf(value, `line ${line}`));
      };
      this.#parse = (piece) => lines.push(piece, item);
      this.#end = () => lines.end(item);
    } else {
      let n = 0;
      const parser = createParser({
        onEvent(event) {
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
          emit(value === undefined ? { text: data } : itemOf(value, `event ${n}`));
        },
        onError(error) {
          // The parser is unusable after this one; the others (a bad field line) are ignored.
          if (error.type === "max-buffer-size-exceeded") {
            throw new InputError("too_large", "an event in the body is too large");
          }
        },
      });
      this.#parse = (piece) => parser.feed(piece);
      // An event not ended by a blank line when the body ends is dropped, as EventSource does.
    }
  }

  /**
   * Decodes the next chunk; the items it completes go to `emit`.
   *
   * @param chunk bytes of the body
   * @throws {InputError} for bad input
   */
  push(chunk: Uint8Array): void {
    const piece = this.#text.decode(chunk);
    if (piece !== "") this.#parse(piece);
  }

  /**
   * Ends the body: the last items go to `emit`.
   *
   * @throws {InputError} for bad input
   */
  end(): void {
    const piece = this.#text.decode();
    if (piece !== "") this.#parse(piece);
    this.#end();
  }
}

/**
 * Decodes a request body into a stream of input items as it arrives ({@linkcode BodyDecoder}
 * as one Web Stream stage); a fault errors the stream with an {@linkcode InputError}.
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
  let decoder!: BodyDecoder;
  return body.pipeThrough(
    new TransformStream<Uint8Array, InputItem>({
      start(controller) {
        decoder = new BodyDecoder(type, maxBytes, (item) => controller.enqueue(item));
      },
      transform(chunk) {
        decoder.push(chunk);
      },
      flush() {
        decoder.end();
      },
    }),
  );
}
