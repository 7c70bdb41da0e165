// A minimal HTTP/1.1 client on a raw TCP connection, for load generation: one streaming POST per
// connection, the request body sent with chunked transfer encoding as the caller writes, the
// response body (chunked, as the server streams SSE) handed over as text as it arrives. fetch
// with a streamed request body costs the client more per write than the server spends on a
// token, which would make the load generator the thing measured. Written here (nothing on npm
// does this small job without a framework); loopback only, used by serve_load.ts.

const encoder = new TextEncoder();
const CRLF = encoder.encode("\r\n");

/** Where the response parser is. */
type Phase = "head" | "size" | "data" | "crlf" | "end";

/** One streaming `POST` on its own connection. */
export class RawPost {
  /** The response status (0 until the head has arrived). */
  status = 0;
  readonly #conn: Deno.TcpConn;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;
  readonly #done: Promise<void>;

  private constructor(conn: Deno.TcpConn, onText: (text: string) => void) {
    this.#conn = conn;
    this.#done = this.#read(onText);
  }

  /**
   * Opens the connection and sends the request head; the body follows with
   * {@linkcode RawPost.write}.
   *
   * @param port the server's port on 127.0.0.1
   * @param path the request path
   * @param onText receives the response body's text as it arrives (not split on events)
   * @returns the open request
   */
  static async open(port: number, path: string, onText: (text: string) => void): Promise<RawPost> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    const post = new RawPost(conn, onText);
    post.#send(encoder.encode(
      `POST ${path} HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n` +
        "content-type: text/plain; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n",
    ));
    return post;
  }

  /**
   * Sends a piece of the body (one chunk).
   *
   * @param text the piece (not empty)
   */
  write(text: string): void {
    const body = encoder.encode(text);
    const head = encoder.encode(`${body.length.toString(16)}\r\n`);
    const chunk = new Uint8Array(head.length + body.length + 2);
    chunk.set(head);
    chunk.set(body, head.length);
    chunk.set(CRLF, head.length + body.length);
    this.#send(chunk);
  }

  /** Ends the body; the response goes on until the server ends it. */
  end(): void {
    this.#send(encoder.encode("0\r\n\r\n"));
  }

  /** Resolves when the response has ended (or the connection failed). */
  get done(): Promise<void> {
    return this.#done;
  }

  /** Closes the connection; never throws. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // closed already
    }
  }

  #send(bytes: Uint8Array): void {
    this.#writing = this.#writing.then(async () => {
      for (let at = 0; at < bytes.length && !this.#closed;) {
        at += await this.#conn.write(bytes.subarray(at));
      }
    }).catch(() => this.close());
  }

  async #read(onText: (text: string) => void): Promise<void> {
    const decoder = new TextDecoder();
    const buf = new Uint8Array(64 * 1024);
    let phase: Phase = "head";
    let head = "";
    let line = ""; // the chunk-size line so far
    let left = 0; // bytes left in the current chunk
    try {
      while (phase !== "end") {
        const n = await this.#conn.read(buf);
        if (n === null) break;
        let at = 0;
        while (at < n && phase !== "end") {
          if (phase === "head") {
            // Heads are ASCII: one byte, one character.
            head += String.fromCharCode(buf[at++]);
            if (head.endsWith("\r\n\r\n")) {
              this.status = Number(head.slice(9, 12));
              if (!/transfer-encoding: chunked/i.test(head)) {
                throw new Error(`expected a chunked response, got ${JSON.stringify(head)}`);
              }
              phase = "size";
            }
          } else if (phase === "size") {
            const c = String.fromCharCode(buf[at++]);
            if (c === "\n") {
              left = parseInt(line, 16);
              line = "";
              phase = left === 0 ? "end" : "data";
            } else if (c !== "\r") line += c;
          } else if (phase === "data") {
            const take = Math.min(left, n - at);
            onText(decoder.decode(buf.subarray(at, at + take), { stream: true }));
            at += take;
            left -= take;
            if (left === 0) phase = "crlf";
          } else {
            // the CRLF after a chunk's data
            if (buf[at++] === 0x0a) phase = "size";
          }
        }
      }
    } catch {
      // a reset connection ends the response
    } finally {
      this.close();
    }
  }
}
