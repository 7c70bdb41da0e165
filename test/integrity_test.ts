// Integrity: a model version whose chunks or manifest were corrupted in KV is refused with an
// error naming the model, the version and the fault (500 model_corrupt), by a server that has not
// loaded it yet; sessions on other versions, other models and the model listing go on being
// served, and a rollback to a sound version gives new sessions that version.
import assert from "node:assert/strict";
import { createApp } from "../src/app.ts";
import { decodeModel, encodeModel, type Model, readModelFile } from "../src/format/mod.ts";
import { ModelCache } from "../src/store/model_cache.ts";
import { modelChunkKey, modelManifestKey } from "../src/store/keys.ts";
import { type ModelManifest, publishModel, rollbackModel } from "../src/store/registry.ts";
import { readSession } from "../src/store/sessions.ts";
import { wireEvents } from "./_sse.ts";
import { SMALL_LM } from "./_server.ts";
import { snapshotOf } from "./_reliability.ts";

const GRU: Model = await readModelFile(SMALL_LM);
const RNN: Model = await readModelFile(SMALL_LM.replace("train_gru", "train_rnn"));

/** The GRU with every weight moved: a second version that answers differently. */
function perturbed(model: Model): Model {
  const copy = decodeModel(encodeModel(model));
  const p = copy.network.params;
  for (let k = 0; k < p.length; k++) p[k] = p[k] * 1.5 + 0.01;
  return copy;
}

/** One way to damage version 2 of "moby" in KV. */
interface Corruption {
  what: string;
  apply: (kv: Deno.Kv, m2: ModelManifest, m1: ModelManifest) => Promise<void>;
  /** What the error message must say after `model "moby" v2: `. */
  says: RegExp;
}

const chunk = (i: number) => modelChunkKey("moby", 2, i);
const manifestKey = modelManifestKey("moby", 2);

const CORRUPTIONS: Corruption[] = [
  {
    what: "a chunk with one bit flipped",
    apply: async (kv) => {
      const bytes = (await kv.get<Uint8Array>(chunk(1))).value!.slice();
      bytes[17] ^= 0x04;
      await kv.set(chunk(1), bytes);
    },
    says: /the chunks' SHA-256 is [0-9a-f]{64}; the manifest says [0-9a-f]{64}/,
  },
  {
    what: "a chunk cut short",
    apply: async (kv) => {
      await kv.set(chunk(1), (await kv.get<Uint8Array>(chunk(1))).value!.slice(0, 100));
    },
    says: /chunk 1 of \d+ has 100 bytes; expected \d+/,
  },
  {
    what: "a chunk missing",
    apply: (kv) => kv.delete(chunk(2)),
    says: /chunk 2 of \d+ is missing/,
  },
  {
    what: "a chunk that is not bytes",
    apply: async (kv) => void await kv.set(chunk(0), "not bytes"),
    says: /chunk 0 of \d+ holds a non-byte value/,
  },
  {
    what: "a manifest whose checksum was changed",
    apply: async (kv, m2) => void await kv.set(manifestKey, { ...m2, sha256: "0".repeat(64) }),
    says: /SHA-256 is [0-9a-f]{64}; the manifest says 0{64}/,
  },
  {
    what: "a manifest whose byte length was changed",
    apply: async (kv, m2) =>
      void await kv.set(manifestKey, { ...m2, byteLength: m2.byteLength + 1 }),
    says: /byteLength \d+, chunkSize \d+ and chunkCount \d+ do not agree|expected \d+/,
  },
  {
    what: "another version's manifest in its place",
    apply: async (kv, _m2, m1) => void await kv.set(manifestKey, m1),
    says: /the manifest is corrupt: it describes model "moby" v1/,
  },
  {
    what: "a manifest that is not an object",
    apply: async (kv) => void await kv.set(manifestKey, "garbage"),
    says: /the manifest is corrupt: it is not an object/,
  },
  {
    what: "a manifest whose checksum is not one",
    apply: async (kv, m2) => void await kv.set(manifestKey, { ...m2, sha256: "xyz" }),
    says: /the manifest is corrupt: its sha256 is not a SHA-256/,
  },
  {
    what: "a manifest missing",
    apply: (kv) => kv.delete(manifestKey),
    says: /the manifest is missing/,
  },
];

Deno.test("a corrupt chunk or manifest is refused with a clear error, and everything else is still served", async (t) => {
  const kv = await Deno.openKv(":memory:");
  const caches: ModelCache[] = [];
  /** A fresh app: like a new isolate, it has loaded no model yet. */
  const freshApp = () => {
    const models = new ModelCache(kv);
    caches.push(models);
    return createApp({ kv, models, limits: { topK: 2 } });
  };
  const post = async (app: ReturnType<typeof freshApp>, path: string, body: string) => {
    const res = await app.request(path, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body,
    });
    return { status: res.status, type: res.headers.get("content-type"), text: await res.text() };
  };
  const logged: unknown[][] = [];
  const consoleError = console.error;
  console.error = (...args: unknown[]) => logged.push(args);
  try {
    // Small chunks, so a version has several.
    const m1 = await publishModel(kv, "moby", GRU, { chunkSize: 4096 });
    const setup = freshApp();
    assert.equal((await post(setup, "/session/on-v1", "abc")).status, 200);
    const m2 = await publishModel(kv, "moby", perturbed(GRU), { chunkSize: 4096 });
    assert.ok(m2.chunkCount >= 3, `${m2.chunkCount} chunks`);
    // A fresh cache reads `current` from KV (the first one learns of v2 through its watch).
    assert.equal((await post(freshApp(), "/session/on-v2", "abc")).status, 200);
    assert.equal((await readSession(kv, "on-v2"))!.record.version, 2);
    await publishModel(kv, "other", RNN);
    const pinned = snapshotOf((await readSession(kv, "on-v2"))!);

    const saved = await Array.fromAsync(kv.list({ prefix: ["model", "moby", "v", 2] }));
    const restore = async () => {
      for await (const e of kv.list({ prefix: ["model", "moby", "v", 2] })) await kv.delete(e.key);
      for (const e of saved) await kv.set(e.key, e.value);
    };

    for (const [k, c] of CORRUPTIONS.entries()) {
      await t.step(c.what, async () => {
        await c.apply(kv, m2, m1);
        try {
          const app = freshApp();
          logged.length = 0;
          // A new session gets the current version, which is refused.
          const refused = await post(app, `/session/new${k}`, "abc");
          assert.equal(refused.status, 500, refused.text);
          assert.match(refused.type ?? "", /^application\/json/);
          const { error } = JSON.parse(refused.text);
          assert.deepEqual(Object.keys(error), ["code", "message"]);
          assert.equal(error.code, "model_corrupt");
          assert.match(error.message, /^model "moby" v2: /);
          assert.match(error.message, c.says);
          assert.equal(await readSession(kv, `new${k}`), null, "no session was made");
          assert.ok(logged.length > 0, "the fault is logged for the operator");
          // So is a session pinned to it, and its state is untouched.
          const onV2 = await post(app, "/session/on-v2", "d");
          assert.equal(onV2.status, 500, onV2.text);
          assert.equal(snapshotOf((await readSession(kv, "on-v2"))!), pinned);
          // Everything else is served: the other version, another model, the listings.
          const v1 = await post(app, "/session/on-v1", "d");
          assert.equal(v1.status, 200);
          assert.equal(wireEvents(v1.text).at(-1)?.event, "done");
          const other = await post(app, `/session/other${k}?model=other`, "abc");
          assert.equal(wireEvents(other.text).at(-1)?.event, "done");
          assert.equal((await app.request("/models")).status, 200);
          assert.equal((await app.request("/models/moby")).status, 200);
          assert.equal((await app.request("/healthz")).status, 200);
        } finally {
          await restore();
        }
        // Repaired, the version loads again (a failed load is not cached).
        const app = freshApp();
        assert.equal((await post(app, `/session/after${k}`, "abc")).status, 200);
      });
    }

    await t.step("a rollback to the sound version serves new sessions from it", async () => {
      await kv.delete(chunk(0));
      await rollbackModel(kv, "moby", 1);
      const app = freshApp();
      const res = await post(app, "/session/rolled", "abc");
      assert.equal(res.status, 200, res.text);
      assert.equal((await readSession(kv, "rolled"))!.record.version, 1);
      // And rolling forward onto the corrupt version is refused, current unchanged.
      await assert.rejects(
        rollbackModel(kv, "moby", 2),
        /model "moby" v2: chunk 0 of \d+ is missing/,
      );
    });
  } finally {
    console.error = consoleError;
    for (const c of caches) c.close();
    kv.close();
  }
});
