// Bad input: a seeded, bounded fuzzer sends thousands of malformed requests to a real server
// process over raw TCP on loopback (invalid session ids and model names with path and key
// tricks, wrong content types, invalid UTF-8, broken NDJSON and SSE bodies, bodies over the
// limits, invalid query values and generate options, NaN and enormous numbers, bad API keys,
// requests cut half-way, bytes that are not HTTP). Every request carries at least one fault that,
// by the API's contract, leaves the durable state alone. Checked: no 5xx; every answer from the
// app has the documented error shape (a JSON error body, or a stream that ends in one `error`
// event); and, read from the KV file once the server has stopped, no session changed and none
// appeared. Counts scale with RELIABILITY_SCALE.
import assert from "node:assert/strict";
import { concatBytes } from "./_bytes.ts";
import { Rng } from "../src/math/mod.ts";
import { newApiKey, sha256Hex } from "../src/access/mod.ts";
import { parseWire } from "./_sse.ts";
import { postText, publishFile, ServerProcess, sleep, withTimeout } from "./_server.ts";
import { forEachLimit, SCALE, snapshotOf, storedSessions, withTempDir } from "./_reliability.ts";

const REQUESTS = 2000 * SCALE; // access control off
const REQUESTS_WITH_KEYS = 1000 * SCALE;
const CONCURRENCY = 8;
const SEED = 404;
/** Fewer tokens per request than a checkpoint needs: a fault after valid tokens drops them all. */
const ENV = {
  CHECKPOINT_EVERY: "64",
  MAX_TOKENS_PER_REQUEST: "48",
  MAX_BODY_BYTES: "65536",
};

const enc = new TextEncoder();
const bytes = (s: string) => enc.encode(s);

/** One fuzz request: the bytes to send (in pieces) and what may come back. */
interface FuzzCase {
  kind: string;
  parts: Uint8Array[];
  /** The bytes reach the app as an HTTP request: its answer must have the error shape. */
  app: boolean;
  /** Stop after sending: "close" drops the connection, "half" only ends the writing side. */
  cut?: "close" | "half";
}

/** What came back on a connection. */
interface Answer {
  status: number;
  headers: Map<string, string>;
  body: Uint8Array;
  /** The response ended as its framing says (content-length reached, or the last chunk). */
  complete: boolean;
  /** The connection was reset (the server closed it with request bytes left unread). */
  reset: boolean;
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 on one connection

/** Sends `parts` on a fresh connection while reading whatever comes back, until EOF. */
async function exchange(port: number, c: FuzzCase): Promise<Answer | null> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunks: Uint8Array[] = [];
  const reading = (async () => {
    const buf = new Uint8Array(64 * 1024);
    try {
      while (true) {
        const n = await conn.read(buf);
        if (n === null) return false;
        chunks.push(buf.slice(0, n));
      }
    } catch {
      return true; // reset
    }
  })();
  try {
    for (const part of c.parts) {
      for (let at = 0; at < part.length;) at += await conn.write(part.subarray(at));
    }
  } catch {
    // the server stopped reading and closed: its answer is read below
  }
  if (c.cut === "close") {
    conn.close();
    await reading;
    return null;
  }
  let reset: boolean;
  if (c.cut === "half") {
    // Deno's HTTP server may take the half-close for the client leaving: it stops the request
    // (the session is freed) but leaves the connection open, so the answer is waited for only
    // briefly.
    await conn.closeWrite().catch(() => {});
    const waited = await Promise.race([reading, sleep(2000).then(() => "open" as const)]);
    if (waited === "open") {
      conn.close();
      await reading;
      return null;
    }
    reset = waited;
  } else {
    reset = await withTimeout(
      reading,
      15_000,
      `the answer to ${
        JSON.stringify(new TextDecoder().decode(concatBytes(c.parts)).slice(0, 300))
      }`,
    );
  }
  try {
    conn.close();
  } catch {
    // closed already
  }
  return parseResponse(concatBytes(chunks), reset);
}

/** A response's status, headers and (de-chunked) body; null when no status line came. */
function parseResponse(raw: Uint8Array, reset: boolean): Answer | null {
  const text = new TextDecoder("latin1").decode(raw);
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (m === null) return null;
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  let body = raw.subarray(end + 4);
  let complete = !reset;
  if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) {
    const out: Uint8Array[] = [];
    let at = 0;
    complete = false;
    while (at < body.length) {
      const nl = text.indexOf("\r\n", end + 4 + at) - (end + 4);
      if (nl < 0) break;
      const size = parseInt(text.slice(end + 4 + at, end + 4 + nl), 16);
      if (size === 0) {
        complete = true;
        break;
      }
      out.push(body.subarray(nl + 2, Math.min(body.length, nl + 2 + size)));
      at = nl + 2 + size + 2;
    }
    body = concatBytes(out);
  } else if (headers.has("content-length")) {
    const n = Number(headers.get("content-length"));
    complete = body.length >= n;
    body = body.subarray(0, n);
  }
  return { status: Number(m[1]), headers, body, complete, reset };
}

/** A request's bytes: head (with `connection: close`) and body, whole or in chunks. */
function request(
  method: string,
  target: string,
  headers: [string, string][],
  body?: Uint8Array,
  framing: "length" | "chunked" = "length",
): Uint8Array[] {
  const head = [`${method} ${target} HTTP/1.1`, "host: 127.0.0.1", "connection: close"];
  for (const [k, v] of headers) head.push(`${k}: ${v}`);
  if (body === undefined) return [bytes(head.join("\r\n") + "\r\n\r\n")];
  if (framing === "length") {
    head.push(`content-length: ${body.length}`);
    return [bytes(head.join("\r\n") + "\r\n\r\n"), body];
  }
  head.push("transfer-encoding: chunked");
  const parts = [bytes(head.join("\r\n") + "\r\n\r\n")];
  for (let at = 0; at < body.length; at += 4096) {
    const piece = body.subarray(at, at + 4096);
    parts.push(concatBytes([bytes(`${piece.length.toString(16)}\r\n`), piece, bytes("\r\n")]));
  }
  parts.push(bytes("0\r\n\r\n"));
  return parts;
}

// ---------------------------------------------------------------------------------------------
// The generator

/** Sessions made before the fuzzing; none of them may change. */
const VICTIMS: [id: string, model: string, create: "text" | "class"][] = [
  ["v0", "moby", "text"],
  ["v1", "moby", "text"],
  ["v2", "moby", "text"],
  ["c0", "names-classify", "text"],
  ["s0", "names-single", "text"],
  ["g0", "names-generate", "class"],
];

const TEXT_CHARS = "abcdefghijklmnopqrstuvwxyz .";

/** Picks from a list. */
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)];

/** Session ids that are not ids: path and key tricks, wrong lengths and characters. */
const BAD_IDS = [
  "..",
  "%2e%2e",
  ".",
  "a.b",
  "a%2Fb",
  "v0%2F..",
  "..%2Fv0",
  "%2e%2e%2fsession%2fv0",
  "v0%00",
  "%00",
  "x".repeat(129),
  "%C3%A9",
  "%C3",
  "%ZZ",
  "a%20b",
  "v0%0d%0aX-Injected:%201",
  "%5B%22session%22%2C%22v0%22%5D", // ["session","v0"]
  "v0%3Bdrop",
  "__proto__%2F",
  "%E2%80%AEv0", // right-to-left override
  "v0%09",
  "%F0%9F%90%B3",
];

/** Model names that are not (or name no) models; none decodes to a published one. */
const BAD_MODELS = [
  "..%2Fmoby",
  "moby%2F..%2Fmoby",
  "%2e%2e",
  "moby%00",
  "MOBY",
  "moby%20",
  "m".repeat(65),
  "__proto__",
  "constructor",
  "%5B%22model%22%5D",
  "nope",
  "moby%2Fv%2F1",
  "",
  "%C3%A9",
];

/** Invalid UTF-8 sequences. */
const BAD_UTF8 = [
  [0xff],
  [0xc0, 0x80], // overlong NUL
  [0x80], // lone continuation byte
  [0xed, 0xa0, 0x80], // a UTF-16 surrogate
  [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
  [0xe2, 0x82], // cut short (at the end of the body it is still invalid)
  [0xfe, 0xfe, 0xff],
];

function validText(rng: Rng, max: number): string {
  let s = "";
  const n = rng.int(max + 1);
  for (let k = 0; k < n; k++) s += TEXT_CHARS[rng.int(TEXT_CHARS.length)];
  return s;
}

function withBadUtf8(rng: Rng, before: string): Uint8Array {
  const after = rng.uniform() < 0.5 ? validText(rng, 10) : "";
  return concatBytes([bytes(before), new Uint8Array(pick(rng, BAD_UTF8)), bytes(after)]);
}

/** A body of the given type with a definite fault, after at most 40 valid tokens. */
function badBody(rng: Rng, type: string): Uint8Array {
  const prefix = validText(rng, 30);
  if (type === "text/plain") {
    return rng.uniform() < 0.6 ? withBadUtf8(rng, prefix) : bytes(prefix + "x".repeat(49)); // more tokens than MAX_TOKENS_PER_REQUEST
  }
  if (type === "application/x-ndjson") {
    const good = prefix === "" ? "" : JSON.stringify({ text: prefix }) + "\n";
    const bad = pick(rng, [
      "{",
      '{"text": 5}',
      '{"token": "no such token"}',
      '{"text": "a", "token": "b"}',
      '["a"]',
      '"a"',
      "null",
      '{"text": "a"} trailing',
      '{"text": NaN}',
      '{"text": "\\ud800"',
      "[".repeat(5000) + "]".repeat(5000),
      '{"token": 1e999}',
    ]);
    const body = bytes(good + bad + "\n" + validText(rng, 5));
    return rng.uniform() < 0.2
      ? concatBytes([bytes(good), new Uint8Array(pick(rng, BAD_UTF8))])
      : body;
  }
  // text/event-stream: events whose data is JSON of the wrong shape (plain text is valid)
  const good = prefix === "" ? "" : `data: ${JSON.stringify({ text: prefix })}\n\n`;
  const bad = pick(rng, [
    'data: {"text": 1}\n\n',
    'data: {"token": "<nope>"}\n\n',
    'data: {"text": "a", "token": "a"}\n\n',
    'event: x\ndata: {"text": null}\n\n',
    'data: {"token": ["a"]}\n\n',
  ]);
  return rng.uniform() < 0.2
    ? concatBytes([bytes(good + "data: "), new Uint8Array(pick(rng, BAD_UTF8)), bytes("\n\n")])
    : bytes(good + bad);
}

/** Generate options, each with at least one field that must be refused. */
function badOptions(rng: Rng): Uint8Array {
  const fine = () =>
    pick(rng, [{}, { max_tokens: 5 }, { temperature: 0.5 }, { seed: 3 }, { top_k: 2 }]);
  const faults: (() => string)[] = [
    () => JSON.stringify({ ...fine(), max_tokens: 2001 }),
    () => JSON.stringify({ ...fine(), max_tokens: 0 }),
    () => JSON.stringify({ ...fine(), max_tokens: 1.5 }),
    () => JSON.stringify({ ...fine(), max_tokens: "5" }),
    () => JSON.stringify({ ...fine(), max_tokens: -1 }),
    () => `{"max_tokens": 1e999}`, // Infinity
    () => `{"max_tokens": 1e308}`,
    () => `{"max_tokens": NaN}`,
    () => `{"temperature": Infinity}`,
    () => JSON.stringify({ ...fine(), temperature: 10.5 }),
    () => JSON.stringify({ ...fine(), temperature: -0.1 }),
    () => JSON.stringify({ ...fine(), top_p: 0 }),
    () => JSON.stringify({ ...fine(), top_p: 1.0001 }),
    () => JSON.stringify({ ...fine(), top_k: -3 }),
    () => JSON.stringify({ ...fine(), seed: -1 }),
    () => JSON.stringify({ ...fine(), seed: 2 ** 32 }),
    () => JSON.stringify({ ...fine(), seed: 9007199254740993 }),
    () => JSON.stringify({ ...fine(), stop: Array(17).fill("x") }),
    () => JSON.stringify({ ...fine(), stop: 5 }),
    () => JSON.stringify({ ...fine(), class: "x".repeat(65) }),
    () => JSON.stringify({ ...fine(), model: "../moby" }),
    () => JSON.stringify({ ...fine(), unknown: true }),
    () => `{"__proto__": {"max_tokens": 5}}`,
    () => `{"constructor": {"prototype": {}}}`,
    () => `{"max_tokens": 5,}`,
    () => `{"max_tokens": 5`,
    () => "[]",
    () => "null",
    () => '"x"',
    () => "",
    () => "[".repeat(20_000) + "]".repeat(20_000), // deep, and over 64 KiB
    () => JSON.stringify({ stop: ["x".repeat(70_000)] }), // over 64 KiB
  ];
  const body = pick(rng, faults)();
  return rng.uniform() < 0.1 ? withBadUtf8(rng, body.slice(0, -1)) : bytes(body);
}

/** Headers of a request made with a valid key, when keys are on. */
type KeyHeader = () => [string, string][];

/**
 * One seeded fuzz case. `keyed` gives the Authorization header of a valid key (none when access
 * control is off); `other`, when keys are on, that of a key other than the victims' owner.
 */
function fuzzCase(rng: Rng, keyed: KeyHeader, other: [string, string] | null): FuzzCase {
  const victim = () => pick(rng, VICTIMS)[0];
  const id = () => rng.uniform() < 0.7 ? victim() : `fresh${rng.int(50)}`;
  const streamType = () =>
    pick(rng, [
      "text/plain",
      "text/plain; charset=utf-8",
      "TEXT/PLAIN",
      "application/x-ndjson",
      "text/event-stream",
    ]);
  const typeOf = (t: string) => t.split(";")[0].toLowerCase();
  const framing = () => rng.uniform() < 0.3 ? "chunked" as const : "length" as const;
  const kinds: [string, number, () => FuzzCase][] = [
    ["bad id", 3, () => {
      const method = pick(rng, ["GET", "POST", "DELETE", "POST generate"]);
      const target = `/session/${pick(rng, BAD_IDS)}${
        method === "POST generate" ? "/generate" : ""
      }`;
      const body = method === "POST" ? bytes(validText(rng, 10)) : method === "GET" ||
          method === "DELETE"
        ? undefined
        : bytes("{}");
      const type = method === "POST generate" ? "application/json" : "text/plain";
      return {
        kind: "bad id",
        app: true,
        parts: request(method.split(" ")[0], target, [["content-type", type], ...keyed()], body),
      };
    }],
    ["bad model", 2, () => ({
      kind: "bad model",
      app: true,
      parts: rng.uniform() < 0.7
        ? request(
          "POST",
          `/session/fresh${rng.int(50)}?model=${pick(rng, BAD_MODELS)}`,
          [["content-type", "text/plain"], ...keyed()],
          bytes(validText(rng, 10)),
        )
        : request(
          "GET",
          `/models/${pick(rng, BAD_MODELS.filter((m) => m !== ""))}`,
          keyed(),
        ),
    })],
    ["model mismatch", 1, () => ({
      // A valid request, but the session runs another model: 409, nothing applied.
      kind: "model mismatch",
      app: true,
      parts: request(
        "POST",
        `/session/${pick(rng, ["v0", "v1", "c0"])}?model=names-single`,
        [["content-type", "text/plain"], ...keyed()],
        bytes("a"),
      ),
    })],
    ["wrong content type", 2, () => ({
      kind: "wrong content type",
      app: true,
      parts: request(
        "POST",
        rng.uniform() < 0.7 ? `/session/${id()}` : `/session/${id()}/generate`,
        [
          ...pick(rng, [
            [["content-type", "application/json"]],
            [["content-type", "text/html"]],
            [["content-type", "text/plain; charset=latin1"]],
            [["content-type", "text/plain; charset=utf-16"]],
            [["content-type", "multipart/form-data; boundary=x"]],
            [["content-type", 'application/x-ndjson; charset="koi8-r"']],
            [["content-type", ";;;"]],
            [],
          ] as [string, string][][]),
          ...keyed(),
        ],
        bytes(validText(rng, 20)),
      ),
    })],
    ["bad body", 6, () => {
      const type = streamType();
      const target = `/session/${id()}`;
      return {
        kind: `bad ${typeOf(type)} body`,
        app: true,
        parts: request(
          "POST",
          target,
          [["content-type", type], ...keyed()],
          badBody(rng, typeOf(type)),
          framing(),
        ),
      };
    }],
    ["huge body", 1, () => {
      const size = 65_537 + rng.int(200_000);
      const body = new Uint8Array(size).fill(0x61);
      body[rng.int(40)] = 0xff; // and not UTF-8 either, so no framing lets it through
      return {
        kind: "huge body",
        app: true,
        parts: request(
          "POST",
          `/session/${id()}`,
          [["content-type", "text/plain"], ...keyed()],
          body,
          framing(),
        ),
      };
    }],
    ["bad resume", 2, () => {
      const bad = rng.uniform() < 0.5;
      const header: [string, string][] = bad
        ? [[
          "last-event-id",
          pick(rng, ["abc", "-1", "1.5", "NaN", "9".repeat(16), "", "0x10", "1e3", "Infinity"]),
        ]]
        : [];
      const query = bad ? "" : `?from=${
        pick(rng, [
          "NaN",
          "-1",
          "0",
          "1.5",
          "1e400",
          "Infinity",
          "abc",
          "",
          "1000000",
          "99999999999999999999",
          "1&from=2",
          "%00",
        ])
      }`;
      return {
        kind: "bad resume",
        app: true,
        parts: request(
          "POST",
          `/session/${id()}${query}`,
          [["content-type", "text/plain"], ...header, ...keyed()],
          bytes(validText(rng, 10) || "a"),
        ),
      };
    }],
    ["bad generate options", 4, () => ({
      kind: "bad generate options",
      app: true,
      parts: request(
        "POST",
        `/session/${id()}/generate`,
        [["content-type", "application/json"], ...keyed()],
        badOptions(rng),
        framing(),
      ),
    })],
    ["other method", 1, () => ({
      kind: "other method",
      app: true,
      parts: request(pick(rng, ["PUT", "PATCH"]), `/session/${victim()}`, [
        ["content-type", "text/plain"],
        ...keyed(),
      ], bytes("abc")),
    })],
    ["cut", 3, () => {
      // Cut before any whole token was sent: inside the head, or inside a body whose bytes so
      // far are a partial character, a partial NDJSON line or an unfinished SSE event.
      const target = `/session/${id()}`;
      const type = pick(rng, ["text/plain", "application/x-ndjson", "text/event-stream"]);
      const partial = type === "text/plain"
        ? new Uint8Array([0xe2, 0x82])
        : type === "application/x-ndjson"
        ? bytes(`{"text": "${validText(rng, 10)}`)
        : bytes(`data: ${validText(rng, 10)}\n`);
      const [head] = request("POST", target, [["content-type", type], ...keyed()], undefined);
      const declared = bytes(
        new TextDecoder().decode(head).replace("\r\n\r\n", `\r\ncontent-length: 1000\r\n\r\n`),
      );
      const where = rng.int(3);
      const parts = where === 0
        ? [head.subarray(0, 5 + rng.int(head.length - 10))]
        : where === 1
        ? [declared, partial]
        : [
          bytes(
            new TextDecoder().decode(head).replace(
              "\r\n\r\n",
              "\r\ntransfer-encoding: chunked\r\n\r\n",
            ),
          ),
          concatBytes([bytes(`${(partial.length + 50).toString(16)}\r\n`), partial]),
        ];
      return { kind: "cut", app: false, parts, cut: rng.uniform() < 0.5 ? "close" : "half" };
    }],
    ["not HTTP", 1, () => ({
      kind: "not HTTP",
      app: false,
      parts: [
        pick(rng, [
          bytes("\x00\x01\x02\x03\r\n\r\n"),
          bytes("GET /session/a b HTTP/1.1\r\nhost: x\r\n\r\n"),
          bytes("POST /session/v0 HTTP/9.9\r\n\r\n"),
          bytes(`GET /healthz HTTP/1.1\r\nhost: x\r\nx: ${"y".repeat(200_000)}\r\n\r\n`),
          bytes("POST /session/v0 HTTP/1.1\r\nhost: x\r\ncontent-length: -5\r\n\r\nabc"),
          bytes(
            "POST /session/v0 HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
          ),
          bytes(
            "POST /session/v0 HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
          ),
          bytes("GET /session/v0 HTTP/1.1\r\nhost: x\r\nbad header line\r\n\r\n"),
        ]),
      ],
    })],
  ];
  if (other !== null) {
    // Well-formed requests, even valid ones, with a key that does not own the victims.
    kinds.push(["another key's session", 3, () => {
      const method = pick(rng, ["GET", "DELETE", "POST", "POST resume", "POST generate"]);
      const target = `/session/${victim()}${method === "POST generate" ? "/generate" : ""}`;
      const type = method === "POST generate" ? "application/json" : "text/plain";
      const body = method === "POST generate"
        ? bytes(JSON.stringify({ max_tokens: 5, class: "male" }))
        : method.startsWith("POST")
        ? bytes(validText(rng, 10) || "a")
        : undefined;
      const resume: [string, string][] = method === "POST resume" ? [["last-event-id", "1"]] : [];
      return {
        kind: "another key's session",
        app: true,
        parts: request(method.split(" ")[0], target, [
          ["content-type", type],
          other,
          ...resume,
        ], body),
      };
    }]);
    kinds.push(["bad key", 3, () => {
      const header: [string, string][] = pick(rng, [
        [],
        [["authorization", `Bearer ${newApiKey()}`]],
        [["authorization", "Bearer"]],
        [["authorization", "Basic YWxpY2U6eA=="]],
        [["authorization", `Bearer ${"A".repeat(5000)}`]],
        [["authorization", "Bearer a b"]],
        [["authorization", "Bearer erk_not!a!token"]],
      ] as [string, string][][]);
      const method = pick(rng, ["GET", "DELETE", "POST"]);
      return {
        kind: "bad key",
        app: true,
        parts: request(
          method,
          `/session/${victim()}`,
          [["content-type", "text/plain"], ...header],
          method === "POST" ? bytes("abc") : undefined,
        ),
      };
    }]);
  }
  const total = kinds.reduce((n, [, w]) => n + w, 0);
  let r = rng.uniform() * total;
  for (const [, w, make] of kinds) {
    if ((r -= w) < 0) return make();
  }
  return kinds[0][2]();
}

// ---------------------------------------------------------------------------------------------
// Checks

const STATUSES = new Set([400, 401, 404, 409, 413, 415, 429]);

/**
 * Asserts an answer from the app is one of the documented error shapes. When the server reset
 * the connection (it had stopped reading a body it refused, and closing a socket with unread
 * bytes resets it), the end of the answer may be lost: then what arrived must fit the shape.
 */
function assertErrorShape(c: FuzzCase, a: Answer): void {
  const what = `${c.kind}: ${new TextDecoder().decode(c.parts[0]).split("\r\n")[0]}`;
  const text = new TextDecoder().decode(a.body);
  assert.ok(a.status < 500, `${what}: ${a.status} ${text}`);
  assert.ok(a.complete || a.reset, `${what}: the response ended early (${a.status}): ${text}`);
  if (a.status === 200) {
    assert.match(a.headers.get("content-type") ?? "", /^text\/event-stream/, what);
    // Whole events only: a reset may cut the last one.
    const whole = text.slice(0, text.lastIndexOf("\n\n") + 2);
    const events = parseWire(whole).flatMap((f) => f.kind === "event" ? [f.event] : []);
    assert.equal(events.filter((e) => e.event === "done").length, 0, `${what}: ${text}`);
    for (const e of events.filter((e) => e.event === "error")) {
      assert.deepEqual(Object.keys(e.data), ["code", "message", "durable_seq"], what);
    }
    if (!a.complete) return;
    assert.equal(events.at(-1)?.event, "error", `${what}: a malformed request ended in ${text}`);
    assert.equal(events.filter((e) => e.event === "error").length, 1, `${what}: ${text}`);
    return;
  }
  if (!a.complete) {
    // A 4xx whose body was lost to the reset: the status is all there is to check.
    assert.ok(STATUSES.has(a.status), `${what}: status ${a.status} ${text}`);
    try {
      JSON.parse(text);
    } catch {
      return;
    }
  }
  assert.ok(STATUSES.has(a.status), `${what}: status ${a.status} ${text}`);
  assert.match(a.headers.get("content-type") ?? "", /^application\/json/, `${what}: ${text}`);
  const body = JSON.parse(text);
  assert.deepEqual(Object.keys(body), ["error"], `${what}: ${text}`);
  assert.deepEqual(Object.keys(body.error), ["code", "message"], `${what}: ${text}`);
  assert.match(body.error.code, /^[a-z_]+$/, `${what}: ${text}`);
  assert.ok(typeof body.error.message === "string" && body.error.message.length > 0, what);
  if (a.status === 429) assert.match(a.headers.get("retry-after") ?? "", /^\d+$/);
}

/** Runs `count` seeded fuzz requests; returns how many of each outcome. */
async function fuzz(
  server: ServerProcess,
  count: number,
  seed: number,
  keyed: KeyHeader,
  other: [string, string] | null,
): Promise<Map<string, number>> {
  const rng = new Rng(seed);
  const cases = Array.from({ length: count }, () => fuzzCase(rng, keyed, other));
  const outcomes = new Map<string, number>();
  const count1 = (k: string) => void outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
  await forEachLimit(cases, CONCURRENCY, async (c) => {
    const a = await exchange(server.port, c);
    if (a === null) return count1(`${c.kind} → no answer`);
    assert.ok(a.status < 500, `${c.kind}: ${a.status} ${new TextDecoder().decode(a.body)}`);
    if (c.app) assertErrorShape(c, a);
    let code = "";
    if (a.status === 200) code = " error event";
    if (!a.complete) code += " (reset before the end)";
    else if (a.complete && /^application\/json/.test(a.headers.get("content-type") ?? "")) {
      code = ` ${JSON.parse(new TextDecoder().decode(a.body)).error?.code}`;
    }
    count1(`${c.kind} → ${a.status}${code}`);
  });
  return outcomes;
}

/** Makes the victims with valid requests; with keys, as alice. */
async function makeVictims(base: string, headers: Record<string, string>) {
  for (const [id, model, how] of VICTIMS) {
    if (how === "class") {
      const res = await fetch(`${base}/session/${id}/generate`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ model, class: "female", max_tokens: 3, seed: 1 }),
      });
      assert.equal(res.status, 200);
      await res.text();
    } else {
      const text = model === "names-single" ? "a" : "the whale";
      const r = await postText(base, id, text, { query: `model=${model}`, headers });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.events.at(-1)?.event, "done", JSON.stringify(r.events.at(-1)));
    }
  }
}

async function fuzzRound(
  t: Deno.TestContext,
  name: string,
  env: Record<string, string>,
  count: number,
  seed: number,
  owner: Record<string, string>,
  keyed: KeyHeader,
  other: [string, string] | null,
) {
  await withTempDir("reliability_fuzz_", async (dir) => {
    const kvPath = `${dir}/kv.sqlite3`;
    await publishFile(kvPath);
    let server = await ServerProcess.start({ kvPath, env: { ...ENV, ...env } });
    try {
      await makeVictims(server.base, owner);
    } finally {
      await server.stop();
    }
    const before = await storedSessions(kvPath);
    assert.deepEqual([...before.keys()].sort(), VICTIMS.map(([id]) => id).sort());

    server = await ServerProcess.start({ kvPath, env: { ...ENV, ...env } });
    try {
      await t.step(
        `${name}: ${count} malformed requests, no 5xx, every error in shape`,
        async () => {
          const outcomes = await fuzz(server, count, seed, keyed, other);
          const lines = [...outcomes].sort().map(([k, n]) => `${String(n).padStart(6)}  ${k}`);
          console.log(lines.join("\n"));
        },
      );
      await t.step(`${name}: the server still serves`, async () => {
        const r = await postText(server.base, "sanity", "call me", { headers: owner });
        assert.equal(r.events.at(-1)?.event, "done", JSON.stringify(r.events.at(-1)));
      });
    } finally {
      await server.stop();
    }
    await t.step(`${name}: no session's durable state changed, none appeared`, async () => {
      const after = await storedSessions(kvPath);
      after.delete("sanity");
      assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort());
      for (const [id, s] of before) assert.equal(snapshotOf(after.get(id)!), snapshotOf(s), id);
    });
    await t.step(`${name}: nothing internal in the server's log`, () => {
      assert.doesNotMatch(server.log, /internal|uncaught|panic|error:/i, server.log);
    });
  });
}

Deno.test({
  name: "bad input: thousands of malformed requests, no 5xx, the error shape, no durable change",
  async fn(t) {
    await fuzzRound(t, "access control off", {}, REQUESTS, SEED, {}, () => [], null);
    // With keys: the fuzz is sent with bob's key (another key than the victims' owner), with
    // alice's (the owner), and with no or bad keys.
    const alice = newApiKey(), bob = newApiKey();
    const keys = `alice:${await sha256Hex(alice)},bob:${await sha256Hex(bob)}`;
    const rng = new Rng(SEED + 1);
    const keyed: KeyHeader =
      () => [["authorization", `Bearer ${rng.uniform() < 0.5 ? alice : bob}`]];
    await fuzzRound(
      t,
      "with API keys",
      { API_KEYS: keys, RATE_LIMIT_RPS: "100000", RATE_LIMIT_BURST: "100000" },
      REQUESTS_WITH_KEYS,
      SEED + 2,
      { authorization: `Bearer ${alice}` },
      keyed,
      ["authorization", `Bearer ${bob}`],
    );
  },
});
