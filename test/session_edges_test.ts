// Edges of the session machinery: a failed request never becomes durable (not even on SIGTERM),
// concurrent checkpoints of one runner do not conflict with each other, a client that leaves
// before sending a token leaves nothing behind, a body that breaks off or runs over is a 4xx and
// is let go, unknown model names do not grow the model watches, and shapes refuse the wrong kind
// of request.
import assert from "node:assert/strict";
import { createApp } from "../src/app.ts";
import { readModelFile } from "../src/format/mod.ts";
import { ModelCache } from "../src/store/model_cache.ts";
import { publishModel } from "../src/store/registry.ts";
import { readSession } from "../src/store/sessions.ts";
import { DEFAULT_LIMITS, FrameBuffer, InputError, SessionManager } from "../src/stream/mod.ts";
import { ControlledBody } from "./_sse.ts";

const FIXTURES = new URL("../fixtures/models/", import.meta.url);

async function withStore(
  fn: (kv: Deno.Kv, models: ModelCache, watches: () => number) => Promise<void>,
) {
  const real = await Deno.openKv(":memory:");
  let watchCalls = 0;
  // Count kv.watch calls through a thin proxy; everything else goes to the real store.
  const kv = new Proxy(real, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop === "watch") {
        return (...args: unknown[]) => {
          watchCalls++;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  for (const name of ["moby", "names-single", "names-generate"]) {
    await publishModel(
      kv,
      name,
      await readModelFile(new URL(`${name}.safetensors`, FIXTURES).pathname),
    );
  }
  const models = new ModelCache(kv);
  try {
    await fn(kv, models, () => watchCalls);
  } finally {
    models.close();
    real.close();
  }
}

function manager(kv: Deno.Kv, models: ModelCache, checkpointEvery = 64) {
  return new SessionManager({
    kv,
    models,
    clock: () => new Date(),
    limits: { ...DEFAULT_LIMITS, checkpointEvery },
    defaultModel: "moby",
  });
}

Deno.test("a failed request's tokens stay undurable even when checkpointAll runs before it closes", async () => {
  await withStore(async (kv, models) => {
    const sessions = manager(kv, models);
    const runner = await sessions.open("f1");
    await runner.apply({ text: "abc" }, new FrameBuffer(() => {}));
    const event = runner.fail(new InputError("bad_input", "line 2 is not valid JSON"));
    assert.equal(event.data.durable_seq, 0);
    await sessions.checkpointAll(); // SIGTERM while the error event is still being written
    await sessions.close(runner);
    assert.equal(await readSession(kv, "f1"), null, "nothing of the failed request was stored");
  });
});

Deno.test("two checkpoints of one runner at once: one write, no conflict", async () => {
  await withStore(async (kv, models) => {
    const sessions = manager(kv, models);
    const runner = await sessions.open("c1");
    await runner.apply({ text: "Call me" }, new FrameBuffer(() => {}));
    const [a, b] = await Promise.all([runner.checkpoint(), runner.checkpoint()]);
    assert.equal(a.data.seq, 7);
    assert.equal(b.data.seq, 7);
    await runner.apply({ text: " Ishmael" }, new FrameBuffer(() => {}));
    await Promise.all([runner.checkpoint(), sessions.close(runner)]);
    assert.equal((await readSession(kv, "c1"))!.record.seq, 15);
  });
});

Deno.test("a client that goes away while the server waits for its body leaves nothing in KV", async () => {
  // Cancelling the body's reader ends a read in progress as if the body were done; that must not
  // be taken for the end of the input (a final checkpoint would store an empty session, after
  // the session was already free).
  await withStore(async (kv, models) => {
    const sessions = manager(kv, models);
    const app = createApp({ kv, models, sessions });
    const body = new ControlledBody();
    const res = await app.request("/session/quiet", {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: body.stream,
    });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const first = reader.read(); // the server is now waiting for the body
    await new Promise((r) => setTimeout(r, 10));
    await reader.cancel();
    await first;
    for (let k = 0; k < 100 && sessions.busy("quiet"); k++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(sessions.busy("quiet"), false);
    await new Promise((r) => setTimeout(r, 20)); // a late write would land by now
    assert.equal(await readSession(kv, "quiet"), null);
  });
});

Deno.test("a request body that breaks off or runs over is the client's error (4xx), and is let go", async (t) => {
  await withStore(async (kv, models) => {
    const app = createApp({ kv, models });
    const enc = new TextEncoder();
    /** A body that sends `first`, then fails as a dropped connection does. */
    const breaking = (first: string) =>
      new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(enc.encode(first));
          c.error(new TypeError("error reading a body from connection"));
        },
      });
    const code = async (res: Response) => [res.status, (await res.json()).error.code];

    await t.step("one to one: a body cut before its end is 400, not 500", async () => {
      const res = await app.request("/session/cut1?model=names-single", {
        method: "POST",
        headers: { "content-type": "text/plain" },
        body: breaking("a"),
      });
      assert.deepEqual(await code(res), [400, "bad_request"]);
      assert.equal(await readSession(kv, "cut1"), null);
    });

    await t.step("generate: options cut before their end are 400, not 500", async () => {
      const res = await app.request("/session/cut2/generate", {
        method: "POST",
        headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
        body: breaking('{"max_tokens": 5'),
      });
      assert.deepEqual(await code(res), [400, "bad_request"]);
      assert.equal(await readSession(kv, "cut2"), null);
    });

    await t.step(
      "generate: streamed options over 64 KiB are 413, and the body is cancelled",
      async () => {
        // A body whose reader stays locked keeps Deno's connection open after the answer.
        let cancelled = false;
        let sent = 0;
        const body = new ReadableStream<Uint8Array>({
          pull(c) {
            if (sent++ < 100) c.enqueue(new Uint8Array(4096).fill(0x20));
          },
          cancel() {
            cancelled = true;
          },
        });
        const res = await app.request("/session/big/generate", {
          method: "POST",
          headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
          body,
        });
        assert.deepEqual(await code(res), [413, "too_large"]);
        assert.ok(cancelled, "the request body was let go");
        assert.ok(sent < 100, `read ${sent} chunks of 4 KiB`);
      },
    );
  });
});

Deno.test("requests naming unpublished models neither grow nor restart the model watches", async () => {
  await withStore(async (kv, models, watches) => {
    const app = createApp({ kv, models });
    const before = watches();
    for (let k = 0; k < 50; k++) {
      const res = await app.request(`/session/u${k}?model=nope-${k}`, {
        method: "POST",
        headers: { "content-type": "text/plain" },
        body: "a",
      });
      assert.equal(res.status, 404);
      await res.body?.cancel();
    }
    assert.equal(watches(), before, "no watch for a model that does not exist");
  });
});

Deno.test("shapes refuse the wrong kind of request with 400 wrong_task or 409", async () => {
  await withStore(async (kv, models) => {
    const app = createApp({ kv, models });
    const post = (path: string, body: string, type = "text/plain") =>
      app.request(path, { method: "POST", headers: { "content-type": type }, body });
    const code = async (res: Response) => [res.status, (await res.json()).error.code];

    // A generator starts from a class, not from streamed text.
    assert.deepEqual(await code(await post("/session/g0?model=names-generate", "Ann")), [
      400,
      "wrong_task",
    ]);
    assert.equal(await readSession(kv, "g0"), null);
    // Once it has written a whole name, the session is complete.
    const first = await post(
      "/session/g1/generate",
      JSON.stringify({ model: "names-generate", class: "female", seed: 2 }),
      "application/json",
    );
    assert.match(await first.text(), /"finish_reason":"stop"/);
    assert.deepEqual(
      await code(
        await post("/session/g1/generate", JSON.stringify({ seed: 3 }), "application/json"),
      ),
      [409, "conflict"],
    );
    // A one-to-one session answers its last token again, never an older one.
    assert.equal((await post("/session/s1?model=names-single", "a")).status, 200);
    assert.equal((await post("/session/s1?model=names-single", "o")).status, 200);
    const again = await post("/session/s1?from=2", "o");
    assert.equal(again.status, 200);
    assert.match(await again.text(), /"seq":2,"durable_seq":2/);
    assert.deepEqual(await code(await post("/session/s1?from=1", "a")), [409, "conflict"]);
  });
});
