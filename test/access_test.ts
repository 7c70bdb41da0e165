// Access control: API keys from API_KEYS (name:sha256), bearer tokens, sessions that belong to
// the key that made them (any other key finds nothing there: 404 for GET, POST, generate and
// DELETE, even while the session is busy), and per-key limits on request rate and open streams
// (429 with Retry-After). With no keys, nothing changes.
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { KeyLimiter, newApiKey, parseApiKeys, sha256Hex } from "../src/access/mod.ts";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { readModelFile } from "../src/format/mod.ts";
import { ModelCache } from "../src/store/model_cache.ts";
import { publishModel } from "../src/store/registry.ts";
import { readSession } from "../src/store/sessions.ts";
import { ControlledBody, EventReader, wireEvents } from "./_sse.ts";
import { publishFile, ServerProcess, SMALL_LM } from "./_server.ts";
import { ReferenceRun } from "./_reliability.ts";

const ALICE = newApiKey();
const BOB = newApiKey();
const API_KEYS = `alice:${await sha256Hex(ALICE)}, bob:${await sha256Hex(BOB)}`;

const auth = (key: string) => ({ authorization: `Bearer ${key}` });

interface Env {
  kv: Deno.Kv;
  app: Hono;
  /** The same store served with access control off. */
  open: Hono;
  /** The limiter's clock, in ms; tests move it by hand. */
  clock: { now: number };
}

async function withApp(
  limits: { ratePerSecond?: number; burst?: number; maxStreams?: number },
  fn: (env: Env) => Promise<void>,
) {
  const kv = await Deno.openKv(":memory:");
  const models = new ModelCache(kv);
  try {
    await publishModel(kv, "moby", await readModelFile(SMALL_LM));
    const clock = { now: 0 };
    const app = createApp({
      kv,
      models,
      limits: { topK: 2 },
      access: { keys: parseApiKeys(API_KEYS), limits, now: () => clock.now },
    });
    const open = createApp({ kv, models, limits: { topK: 2 } });
    await fn({ kv, app, open, clock });
  } finally {
    models.close();
    kv.close();
  }
}

/** A request; headers as given, a text/plain or JSON body. */
function call(
  app: Hono,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: BodyInit,
): Promise<Response> {
  const type = path.endsWith("/generate") ? "application/json" : "text/plain";
  return Promise.resolve(app.request(path, {
    method,
    headers: body === undefined ? headers : { "content-type": type, ...headers },
    body,
  }));
}

/** Opens a session stream with a key, its body fed by hand; sends `text` first. */
async function openKeyedStream(app: Hono, id: string, key: string, text: string) {
  const body = new ControlledBody();
  const res = await call(app, "POST", `/session/${id}`, auth(key), body.stream);
  assert.equal(res.status, 200);
  const reader = new EventReader(res.body!);
  body.send(text);
  return { body, reader };
}

/** Asserts an error response: status, JSON `{error: {code, message}}` only; returns it. */
async function assertError(res: Response, status: number, code: string) {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  const body = JSON.parse(text);
  assert.deepEqual(Object.keys(body), ["error"]);
  assert.deepEqual(Object.keys(body.error), ["code", "message"]);
  assert.equal(body.error.code, code, text);
  return { text, headers: res.headers };
}

/** A whole stream's events; asserts it ended with done. */
async function streamed(res: Response) {
  assert.equal(res.status, 200);
  const events = wireEvents(await res.text());
  assert.equal(events.at(-1)?.event, "done", JSON.stringify(events.at(-1)));
  return events;
}

/** The durable record as comparable JSON. */
async function snapshot(kv: Deno.Kv, id: string): Promise<string | null> {
  const s = await readSession(kv, id);
  return s === null
    ? null
    : JSON.stringify({ ...s.record, hidden: [...s.record.hidden], vs: s.versionstamp });
}

Deno.test("API_KEYS: name:sha256 pairs, refused with a message that never repeats the entry", () => {
  const hash = "AB".repeat(32);
  assert.deepEqual(parseApiKeys(undefined), []);
  assert.deepEqual(parseApiKeys("  "), []);
  assert.deepEqual(parseApiKeys(` a.b-c_1:${hash} ,d:${"0".repeat(64)}`), [
    { name: "a.b-c_1", sha256: "ab".repeat(32) },
    { name: "d", sha256: "0".repeat(64) },
  ]);
  const secret = newApiKey();
  for (
    const bad of [
      secret, // a raw key instead of its hash
      `alice:${secret}`,
      `alice:${hash.slice(1)}`,
      `:${hash}`,
      `a/b:${hash}`,
      `alice:${hash},`,
    ]
  ) {
    assert.throws(() => parseApiKeys(bad), (err: Error) => {
      assert.ok(err instanceof RangeError);
      assert.match(err.message, /API_KEYS entry \d+ is not name:sha256/);
      assert.ok(!err.message.includes(secret), "the message repeats a secret");
      return true;
    });
  }
  assert.throws(() => parseApiKeys(`a:${hash},a:${"0".repeat(64)}`), /names a twice/);
  assert.throws(() => parseApiKeys(`a:${hash},b:${hash}`), /same key hash twice/);
});

Deno.test("deno task apikey NAME prints a new key and the API_KEYS entry that accepts it", async () => {
  const run = (...args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "src/cli/apikey.ts", ...args],
      cwd: new URL("../", import.meta.url).pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
  const out = await run("alice");
  assert.ok(out.success);
  const m = /^key: +(erk_[A-Za-z0-9_-]{43})\nAPI_KEYS: +(alice:[0-9a-f]{64})\n$/.exec(
    new TextDecoder().decode(out.stdout),
  );
  assert.ok(m !== null, new TextDecoder().decode(out.stdout));
  const [key] = parseApiKeys(m[2]);
  assert.equal(key.sha256, await sha256Hex(m[1]));
  const other = await run("alice");
  assert.ok(!new TextDecoder().decode(other.stdout).includes(m[1]), "a new key every time");
  const bad = await run("no/slash");
  assert.equal(bad.code, 2);
  assert.match(new TextDecoder().decode(bad.stderr), /Usage: deno task apikey NAME/);
});

Deno.test("loadConfig(): access control is off by default; limits and keys from the environment", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  const off = loadConfig(env({}));
  assert.deepEqual(off.access, {
    keys: [],
    limits: { ratePerSecond: 20, burst: 40, maxStreams: 32 },
  });
  const on = loadConfig(env({
    API_KEYS: `alice:${"a".repeat(64)}`,
    RATE_LIMIT_RPS: "0.5",
    RATE_LIMIT_BURST: "3",
    MAX_STREAMS_PER_KEY: "2",
  }));
  assert.deepEqual(on.access, {
    keys: [{ name: "alice", sha256: "a".repeat(64) }],
    limits: { ratePerSecond: 0.5, burst: 3, maxStreams: 2 },
  });
  assert.throws(() => loadConfig(env({ RATE_LIMIT_RPS: "0" })), /RATE_LIMIT_RPS/);
  assert.throws(() => loadConfig(env({ MAX_STREAMS_PER_KEY: "1.5" })), /MAX_STREAMS_PER_KEY/);
  assert.throws(() => loadConfig(env({ API_KEYS: "alice" })), /API_KEYS entry 1/);
});

Deno.test("with keys: 401 without a configured key, the health check stays open", async (t) => {
  await withApp({}, async ({ app }) => {
    await t.step("GET /healthz needs no key", async () => {
      assert.equal((await call(app, "GET", "/healthz")).status, 200);
    });
    const routes: [string, string, string?][] = [
      ["GET", "/models"],
      ["GET", "/models/moby"],
      ["GET", "/session/x"],
      ["POST", "/session/x", "abc"],
      ["POST", "/session/x/generate", "{}"],
      ["DELETE", "/session/x"],
      ["GET", "/no/such/route"],
    ];
    const cases: [string, Record<string, string>, string][] = [
      ["no Authorization header", {}, 'Bearer realm=""'],
      ["another scheme", { authorization: `Basic ${btoa("alice:x")}` }, "invalid_request"],
      ["Bearer and nothing", { authorization: "Bearer " }, "invalid_request"],
      ["a key with a space in it", { authorization: `Bearer ${ALICE} x` }, "invalid_request"],
      ["an unknown key", auth(newApiKey()), "invalid_token"],
      ["a configured key's hash", auth(await sha256Hex(ALICE)), "invalid_token"],
    ];
    for (const [what, headers, challenge] of cases) {
      await t.step(`${what}: 401 unauthorized on every route`, async () => {
        for (const [method, path, body] of routes) {
          const { headers: h } = await assertError(
            await call(app, method, path, headers, body),
            401,
            "unauthorized",
          );
          assert.match(h.get("www-authenticate") ?? "", new RegExp(challenge));
        }
      });
    }
    await t.step("a configured key is served; the scheme's case does not matter", async () => {
      assert.equal((await call(app, "GET", "/models", auth(ALICE))).status, 200);
      const lower = { authorization: `bearer ${BOB}` };
      assert.equal((await call(app, "GET", "/models", lower)).status, 200);
    });
  });
});

Deno.test("a session belongs to the key that created it: another key gets 404 for GET, POST, generate and DELETE", async (t) => {
  await withApp({}, async ({ kv, app }) => {
    await streamed(await call(app, "POST", "/session/mine", auth(ALICE), "call me"));
    const before = await snapshot(kv, "mine");
    assert.ok(before !== null);

    await t.step("the record names the key's name as owner, never the key", async () => {
      const stored = (await readSession(kv, "mine"))!;
      assert.equal(stored.record.owner, "alice");
      const json = JSON.stringify({ ...stored.record, hidden: [...stored.record.hidden] });
      assert.ok(!json.includes(ALICE) && !json.includes(await sha256Hex(ALICE)));
    });

    // What bob gets for alice's session, recorded to compare with a session that is missing.
    const seen: Record<string, string> = {};
    await t.step("bob cannot read, write, generate on or delete it", async () => {
      seen.get =
        (await assertError(await call(app, "GET", "/session/mine", auth(BOB)), 404, "not_found"))
          .text;
      seen.delete = (await assertError(
        await call(app, "DELETE", "/session/mine", auth(BOB)),
        404,
        "not_found",
      )).text;
      const writes: [string, string, Record<string, string>, string][] = [
        ["POST", "/session/mine", {}, " ishmael"],
        ["POST", "/session/mine?from=8", {}, " ishmael"],
        ["POST", "/session/mine", { "last-event-id": "7" }, " ishmael"],
        // A model other than the session's would be a 409 for its owner: not for bob.
        ["POST", "/session/mine?model=other", {}, " ishmael"],
        ["POST", "/session/mine/generate", {}, JSON.stringify({ max_tokens: 5 })],
        ["POST", "/session/mine/generate", {}, JSON.stringify({ max_tokens: 5, model: "x" })],
      ];
      for (const [method, path, headers, body] of writes) {
        const { text } = await assertError(
          await call(app, method, path, { ...auth(BOB), ...headers }, body),
          404,
          "not_found",
        );
        assert.equal(text, seen.get, `${method} ${path} says the same as GET`);
      }
      assert.equal(await snapshot(kv, "mine"), before, "alice's session is unchanged");
    });

    await t.step("while alice streams into it: still 404 for bob (not 409 busy)", async () => {
      const { body, reader } = await openKeyedStream(app, "mine", ALICE, "!");
      assert.equal((await reader.next())!.data.seq, 8);
      assert.equal(
        (await assertError(await call(app, "GET", "/session/mine", auth(BOB)), 404, "not_found"))
          .text,
        seen.get,
      );
      await assertError(await call(app, "POST", "/session/mine", auth(BOB), "x"), 404, "not_found");
      await assertError(
        await call(app, "POST", "/session/mine/generate", auth(BOB), "{}"),
        404,
        "not_found",
      );
      await assertError(await call(app, "DELETE", "/session/mine", auth(BOB)), 404, "not_found");
      // Alice herself gets the usual answers.
      await assertError(
        await call(app, "POST", "/session/mine", auth(ALICE), "x"),
        409,
        "conflict",
      );
      const info = await (await call(app, "GET", "/session/mine", auth(ALICE))).json();
      assert.deepEqual([info.seq, info.durable_seq], [8, 7]);
      body.close();
      assert.equal((await reader.rest()).at(-1)?.event, "done");
    });

    await t.step("alice's session goes on with exactly her tokens", async () => {
      await streamed(await call(app, "POST", "/session/mine", auth(ALICE), " ishmael"));
      const stored = (await readSession(kv, "mine"))!;
      assert.equal(stored.record.seq, 16);
      const ref = await ReferenceRun.fromStore(kv, "moby", stored.record.version);
      assert.deepEqual(stored.record.hidden, ref.stateAfter("call me! ishmael"));
    });

    await t.step("once alice deletes it, bob's answers are byte for byte the same", async () => {
      assert.equal((await call(app, "DELETE", "/session/mine", auth(ALICE))).status, 204);
      assert.equal(
        (await assertError(await call(app, "GET", "/session/mine", auth(BOB)), 404, "not_found"))
          .text,
        seen.get,
      );
      assert.equal(
        (await assertError(await call(app, "DELETE", "/session/mine", auth(BOB)), 404, "not_found"))
          .text,
        seen.delete,
      );
      // The id is free again: bob may now start his own session there.
      await streamed(await call(app, "POST", "/session/mine", auth(BOB), "x"));
      assert.equal((await readSession(kv, "mine"))!.record.owner, "bob");
      await assertError(await call(app, "GET", "/session/mine", auth(ALICE)), 404, "not_found");
    });
  });
});

Deno.test("sessions made with access control off: readable by any key, owned by the first key that writes", async () => {
  await withApp({}, async ({ kv, app, open }) => {
    await streamed(await call(open, "POST", "/session/old", {}, "abc"));
    assert.equal((await readSession(kv, "old"))!.record.owner, undefined);
    for (const key of [ALICE, BOB]) {
      const info = await (await call(app, "GET", "/session/old", auth(key))).json();
      assert.equal(info.seq, 3);
    }
    await streamed(await call(app, "POST", "/session/old", auth(BOB), "d"));
    assert.equal((await readSession(kv, "old"))!.record.owner, "bob");
    await assertError(await call(app, "GET", "/session/old", auth(ALICE)), 404, "not_found");
    // With access control off again, there is no key to tell owners apart: all is open.
    assert.equal((await call(open, "GET", "/session/old")).status, 200);
  });
});

Deno.test("per-key request rate: a token bucket, 429 rate_limited with Retry-After", async (t) => {
  await withApp({ ratePerSecond: 2, burst: 3 }, async ({ kv, app, clock }) => {
    await t.step("a burst of 3, then 429 with Retry-After: 1", async () => {
      for (let k = 0; k < 3; k++) {
        assert.equal((await call(app, "GET", "/models", auth(ALICE))).status, 200);
      }
      const { headers, text } = await assertError(
        await call(app, "GET", "/models", auth(ALICE)),
        429,
        "rate_limited",
      );
      assert.equal(headers.get("retry-after"), "1");
      assert.match(text, /2 requests per second/);
    });
    await t.step("other keys have their own bucket; the health check none", async () => {
      assert.equal((await call(app, "GET", "/models", auth(BOB))).status, 200);
      assert.equal((await call(app, "GET", "/healthz")).status, 200);
    });
    await t.step("a refused write changes nothing", async () => {
      await assertError(
        await call(app, "POST", "/session/r1", auth(ALICE), "abc"),
        429,
        "rate_limited",
      );
      assert.equal(await readSession(kv, "r1"), null);
    });
    await t.step("the bucket refills at the rate", async () => {
      clock.now += 500; // one token
      assert.equal((await call(app, "GET", "/models", auth(ALICE))).status, 200);
      await assertError(await call(app, "GET", "/models", auth(ALICE)), 429, "rate_limited");
      clock.now += 10_000; // full again, never more than the burst
      for (let k = 0; k < 3; k++) {
        assert.equal((await call(app, "GET", "/models", auth(ALICE))).status, 200);
      }
      await assertError(await call(app, "GET", "/models", auth(ALICE)), 429, "rate_limited");
    });
  });
  // Retry-After is the wait for one token, in whole seconds.
  let now = 0;
  const slow = new KeyLimiter({ ratePerSecond: 0.25, burst: 1, maxStreams: 1 }, () => now);
  assert.equal(slow.take("k"), 0);
  assert.equal(slow.take("k"), 4);
  now += 3000;
  assert.equal(slow.take("k"), 1);
  now += 1000;
  assert.equal(slow.take("k"), 0);
});

Deno.test("per-key open streams: 429 too_many_streams, and a slot is free again when its stream ends", async (t) => {
  await withApp({ maxStreams: 2 }, async ({ kv, app }) => {
    const openStream = async (id: string, key: string) => {
      const stream = await openKeyedStream(app, id, key, "a");
      await stream.reader.next();
      return stream;
    };
    const a = await openStream("s1", ALICE);
    const b = await openStream("s2", ALICE);

    await t.step(
      "a third stream of the same key: 429, Retry-After: 1, nothing written",
      async () => {
        const { headers } = await assertError(
          await call(app, "POST", "/session/s3", auth(ALICE), "abc"),
          429,
          "too_many_streams",
        );
        assert.equal(headers.get("retry-after"), "1");
        await assertError(
          await call(app, "POST", "/session/s3/generate", auth(ALICE), "{}"),
          429,
          "too_many_streams",
        );
        assert.equal(await readSession(kv, "s3"), null);
        // Reading is not streaming.
        assert.equal((await call(app, "GET", "/session/s1", auth(ALICE))).status, 200);
      },
    );

    await t.step("another key is not held back", async () => {
      await streamed(await call(app, "POST", "/session/b1", auth(BOB), "abc"));
    });

    await t.step("a stream that ends frees its slot", async () => {
      a.body.close();
      assert.equal((await a.reader.rest()).at(-1)?.event, "done");
      await streamed(await call(app, "POST", "/session/s3", auth(ALICE), "abc"));
    });

    await t.step("so does a client that goes away", async () => {
      const c = await openStream("s4", ALICE); // two open again: s2 and s4
      await assertError(
        await call(app, "POST", "/session/s5", auth(ALICE), "a"),
        429,
        "too_many_streams",
      );
      await c.reader.cancel();
      await streamed(await call(app, "POST", "/session/s5", auth(ALICE), "a"));
    });

    await t.step("refused requests hold no slot", async () => {
      for (let k = 0; k < 5; k++) {
        await assertError(
          await call(app, "POST", "/session/bad$id", auth(ALICE), "a"),
          400,
          "invalid_name",
        );
        await assertError(
          await call(
            app,
            "POST",
            "/session/s6",
            { ...auth(ALICE), "content-type": "image/png" },
            "a",
          ),
          415,
          "unsupported_media_type",
        );
      }
      await streamed(await call(app, "POST", "/session/s6", auth(ALICE), "a"));
    });

    await t.step("a generate stream frees its slot when it ends", async () => {
      // One slot is free (s2 holds the other): each generation must give it back.
      for (const id of ["g1", "g2"]) {
        const res = await call(
          app,
          "POST",
          `/session/${id}/generate`,
          auth(ALICE),
          JSON.stringify({ max_tokens: 3 }),
        );
        assert.equal(res.status, 200, await res.clone().text());
        assert.equal(wireEvents(await res.text()).at(-1)?.event, "done");
      }
      await streamed(await call(app, "POST", "/session/s7", auth(ALICE), "a"));
    });
    b.body.close();
    await b.reader.rest();
  });
});

Deno.test("e2e: a server started with API_KEYS refuses requests without a key and serves with one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "access_e2e_" });
  try {
    const kvPath = `${dir}/kv.sqlite3`;
    await publishFile(kvPath);
    const server = await ServerProcess.start({ kvPath, env: { API_KEYS } });
    try {
      assert.match(server.log, /access control: 2 API key\(s\) \(alice, bob\)/);
      assert.ok(!server.log.includes(ALICE), "the log shows no key");
      const healthz = await fetch(`${server.base}/healthz`);
      assert.equal(healthz.status, 200);
      await healthz.body?.cancel();
      const post = (key?: string) =>
        fetch(`${server.base}/session/e1`, {
          method: "POST",
          headers: { "content-type": "text/plain", ...(key ? auth(key) : {}) },
          body: "abc",
        });
      await assertError(await post(), 401, "unauthorized");
      await streamed(await post(ALICE));
      await assertError(await post(BOB), 404, "not_found");
    } finally {
      await server.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
