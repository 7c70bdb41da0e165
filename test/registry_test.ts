// Tests for the model registry in src/store/: publish, load, list, roll back and prune versioned
// models in Deno KV, against an in-memory KV. Crashes and races are staged with a thin wrapper
// around the KV handle (see hookedKv), so the production code has no test-only branches.
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { decodeModel, encodeModel, type Model } from "../src/format/mod.ts";
import { Network, type NetworkConfig } from "../src/nn/mod.ts";
import {
  getCurrentVersion,
  getManifest,
  IntegrityError,
  InvalidNameError,
  listModels,
  loadModel,
  loadModelBytes,
  modelChunkKey,
  modelCurrentKey,
  modelIndexKey,
  type ModelManifest,
  NotFoundError,
  openKv,
  publishModel,
  rollbackModel,
  TooLargeError,
  validateModelName,
} from "../src/store/mod.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

const VOCAB = ["<unk>", ..."abcdefghijklmnopqrstuvwxyz"]; // V = 27

/** A character language model with fresh weights; the seed makes each one distinct. */
function lmModel(seed: number, shape: Partial<NetworkConfig> = {}): Model {
  const config: NetworkConfig = {
    cell: "gru",
    nonlinearity: "tanh",
    input: "embedding",
    vocabSize: VOCAB.length,
    inputSize: 8,
    hiddenSize: 16,
    layers: 2,
    outputSize: VOCAB.length,
    ...shape,
  };
  return {
    network: Network.create(config, seed),
    meta: { task: "lm", vocabulary: [...VOCAB], labels: null, extra: {} },
  };
}

/** About 1.6 MB of float32: a 1-layer GRU with H = 256 and I = 256 (3·H·(I+H) weights). */
function bigModel(seed: number): Model {
  return lmModel(seed, { hiddenSize: 256, inputSize: 256, layers: 1 });
}

async function withKv(fn: (kv: Deno.Kv) => Promise<void>): Promise<void> {
  const kv = await Deno.openKv(":memory:");
  try {
    await fn(kv);
  } finally {
    kv.close();
  }
}

/** Every key in the store under a prefix, in key order. */
async function listKeys(kv: Deno.Kv, prefix: Deno.KvKey = []): Promise<Deno.KvKey[]> {
  const keys: Deno.KvKey[] = [];
  for await (const entry of kv.list({ prefix })) keys.push(entry.key);
  return keys;
}

/** The distinct version numbers that have any key under ["model", name, "v"]. */
async function storedVersions(kv: Deno.Kv, name: string): Promise<number[]> {
  const keys = await listKeys(kv, ["model", name, "v"]);
  return [...new Set(keys.map((k) => k[3] as number))];
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The same KV, with a hook run before each write (atomic commit, set or delete) is passed on:
 * the hook gets the write's number (from 1) and may throw (a crash at that point) or wait (a
 * slow writer). `crashed` makes every write from the given one on throw, like a dead process.
 */
function hookedKv(kv: Deno.Kv, beforeWrite: (n: number) => Promise<void> | void) {
  let writes = 0;
  const gate = async () => await beforeWrite(++writes);
  const wrapped = new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const commit = op.commit.bind(op);
          op.commit = async () => {
            await gate();
            return await commit();
          };
          return op;
        };
      }
      if (prop === "set" || prop === "delete") {
        const write = Reflect.get(target, prop, target) as (...args: unknown[]) => unknown;
        return async (...args: unknown[]) => {
          await gate();
          return await write.apply(target, args);
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { kv: wrapped, writes: () => writes };
}

function crashed(from: number) {
  return (n: number) => {
    if (n >= from) throw new Error(`simulated crash at write ${n}`);
  };
}

async function assertIntegrityError(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: Error) => {
    assert.ok(err instanceof IntegrityError, `expected IntegrityError, got ${err}`);
    assert.match(err.message, pattern);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------
// Publish and load

Deno.test("publishModel() then loadModel() round-trips the bytes, the weights and the manifest", async () => {
  await withKv(async (kv) => {
    const model = lmModel(7);
    const expected = encodeModel(model);
    const published = await publishModel(kv, "names", model, {
      training: { lr: 0.01, steps: 100 },
      metrics: { val_loss: 1.25 },
      clock: () => new Date("2026-01-02T03:04:05.000Z"),
    });
    assert.deepEqual(
      published,
      {
        name: "names",
        version: 1,
        createdAt: "2026-01-02T03:04:05.000Z",
        cell: "gru",
        nonlinearity: "tanh",
        input: "embedding",
        layers: 2,
        hiddenSize: 16,
        inputSize: 8,
        vocabSize: 27,
        outputSize: 27,
        task: "lm",
        vocabulary: VOCAB,
        labels: null,
        byteLength: expected.length,
        sha256: await sha256Hex(expected),
        chunkSize: 60_000,
        chunkCount: 1,
        training: { lr: 0.01, steps: 100 },
        metrics: { val_loss: 1.25 },
      } satisfies ModelManifest,
    );

    await assertLoadsAs(kv, "names", undefined, published, expected, model);
    await assertLoadsAs(kv, "names", 1, published, expected, model);
    assert.deepEqual(await getManifest(kv, "names", 1), published);
    assert.equal(await getManifest(kv, "names", 2), null);
    assert.equal(await getCurrentVersion(kv, "names"), 1);
  });
});

/** Loads `name` (at `version`) both ways and checks it is exactly `model`. */
async function assertLoadsAs(
  kv: Deno.Kv,
  name: string,
  version: number | undefined,
  manifest: ModelManifest,
  bytes: Uint8Array,
  model: Model,
): Promise<void> {
  const raw = await loadModelBytes(kv, name, version);
  assert.deepEqual(raw.manifest, manifest);
  assert.deepEqual(raw.bytes, bytes);
  const loaded = await loadModel(kv, name, version);
  assert.deepEqual(loaded.manifest, manifest);
  assert.deepEqual(loaded.model.network.config, model.network.config);
  assert.deepEqual(loaded.model.network.params, model.network.params);
  assert.deepEqual(loaded.model.meta, model.meta);
}

Deno.test("a 1.6 MB model is stored in chunks under 64 KiB over several atomic commits", async () => {
  await withKv(async (kv) => {
    const model = bigModel(3);
    const bytes = encodeModel(model);
    assert.ok(bytes.length > 1_500_000, `model is ${bytes.length} bytes`);
    const counted = hookedKv(kv, () => {});
    const manifest = await publishModel(counted.kv, "big", model);

    assert.equal(manifest.chunkCount, Math.ceil(bytes.length / 60_000));
    // More chunks than fit in one 800 KiB commit, so the chunks took at least two commits:
    // + the version allocation, the manifest and the publishing commit.
    assert.ok(manifest.chunkCount * 60_000 > 800 * 1024);
    assert.ok(counted.writes() >= 5, `${counted.writes()} writes`);

    const chunkKeys = await listKeys(kv, ["model", "big", "v", 1, "chunk"]);
    assert.deepEqual(
      chunkKeys,
      Array.from({ length: manifest.chunkCount }, (_, i) => modelChunkKey("big", 1, i)),
    );
    for (const key of chunkKeys) {
      const { value } = await kv.get<Uint8Array>(key);
      assert.ok(value instanceof Uint8Array && value.length <= 60_000 && value.length > 0);
    }
    await assertLoadsAs(kv, "big", 1, manifest, bytes, model);
  });
});

Deno.test("chunk writes are split by the 1000-mutation commit limit as well as by bytes", async () => {
  await withKv(async (kv) => {
    const model = lmModel(5, { hiddenSize: 64, inputSize: 16, layers: 1 });
    const bytes = encodeModel(model);
    const counted = hookedKv(kv, () => {});
    const manifest = await publishModel(counted.kv, "tiny-chunks", model, { chunkSize: 64 });
    assert.equal(manifest.chunkCount, Math.ceil(bytes.length / 64));
    assert.ok(manifest.chunkCount > 1000, `${manifest.chunkCount} chunks`);
    assert.ok(counted.writes() >= 5, `${counted.writes()} writes`);
    assert.deepEqual((await loadModelBytes(kv, "tiny-chunks")).bytes, bytes);
  });
});

Deno.test("each publish of a name gets the next version and becomes current", async () => {
  await withKv(async (kv) => {
    const versions = [];
    for (const seed of [1, 2, 3]) {
      const manifest = await publishModel(kv, "names", lmModel(seed));
      versions.push(manifest.version);
      assert.equal(await getCurrentVersion(kv, "names"), manifest.version);
      assert.deepEqual(
        (await loadModel(kv, "names")).model.network.params,
        lmModel(seed).network.params,
      );
    }
    assert.deepEqual(versions, [1, 2, 3]);
    assert.deepEqual((await kv.get(modelIndexKey("names"))).value, { versions: [1, 2, 3] });
    // Another name counts on its own.
    assert.equal((await publishModel(kv, "other", lmModel(4))).version, 1);
  });
});

// ---------------------------------------------------------------------------------------------
// Crashes and corruption

Deno.test("a publish interrupted at any write leaves current and the index unchanged", async (t) => {
  // Count the writes of an undisturbed publish of version 2 on top of version 1.
  let total = 0;
  await withKv(async (kv) => {
    await publishModel(kv, "names", lmModel(1));
    const counted = hookedKv(kv, () => {});
    await publishModel(counted.kv, "names", bigModel(2));
    total = counted.writes();
  });
  assert.ok(total >= 5, `${total} writes`);

  // No pruning happens (keep 3), so the last write is the publishing commit itself.
  for (let crashAt = 1; crashAt <= total; crashAt++) {
    await t.step(`crash at write ${crashAt} of ${total}`, async () => {
      await withKv(async (kv) => {
        const v1 = lmModel(1);
        const m1 = await publishModel(kv, "names", v1);
        const before = await listModels(kv);

        const dying = hookedKv(kv, crashed(crashAt));
        await assert.rejects(
          publishModel(dying.kv, "names", bigModel(2)),
          /simulated crash at write/,
        );

        assert.equal(await getCurrentVersion(kv, "names"), 1);
        assert.deepEqual((await kv.get(modelIndexKey("names"))).value, { versions: [1] });
        assert.deepEqual(await listModels(kv), before);
        assert.equal(await getManifest(kv, "names", 2), null);
        await assert.rejects(loadModel(kv, "names", 2), NotFoundError);
        await assertLoadsAs(kv, "names", undefined, m1, encodeModel(v1), v1);

        // The store is still usable: the next publish succeeds and becomes current.
        const next = await publishModel(kv, "names", lmModel(3));
        assert.ok(next.version >= 2);
        assert.equal(await getCurrentVersion(kv, "names"), next.version);
      });
    });
  }
});

Deno.test("a corrupt chunk is refused with an IntegrityError naming the model and version", async () => {
  await withKv(async (kv) => {
    const manifest = await publishModel(kv, "big", bigModel(1));
    const key = modelChunkKey("big", 1, 5);
    const chunk = (await kv.get<Uint8Array>(key)).value!;

    const flipped = chunk.slice();
    flipped[100] ^= 0xff;
    await kv.set(key, flipped);
    await assertIntegrityError(loadModel(kv, "big"), /model "big" v1: .*SHA-256/);
    await assertIntegrityError(loadModelBytes(kv, "big", 1), /model "big" v1: .*SHA-256/);

    // A corrupt header fails to decode as well; the checksum, checked first, is what is named.
    const first = (await kv.get<Uint8Array>(modelChunkKey("big", 1, 0))).value!;
    const garbled = first.slice();
    garbled[9] ^= 0xff;
    await kv.set(modelChunkKey("big", 1, 0), garbled);
    await assertIntegrityError(loadModel(kv, "big"), /model "big" v1: .*SHA-256/);
    await kv.set(modelChunkKey("big", 1, 0), first);

    await kv.set(key, chunk.slice(0, 1000));
    await assertIntegrityError(
      loadModel(kv, "big", 1),
      new RegExp(`model "big" v1: chunk 5 of ${manifest.chunkCount} has 1000 bytes`),
    );

    await kv.set(key, "not bytes");
    await assertIntegrityError(loadModel(kv, "big"), /model "big" v1: chunk 5 .*non-byte/);
  });
});

Deno.test("a missing chunk is refused with an IntegrityError naming the model and version", async () => {
  await withKv(async (kv) => {
    await publishModel(kv, "big", bigModel(1));
    const manifest = await publishModel(kv, "big", bigModel(2));
    await kv.delete(modelChunkKey("big", 2, manifest.chunkCount - 1));
    const missing = new RegExp(
      `model "big" v2: chunk ${manifest.chunkCount - 1} of ${manifest.chunkCount} is missing`,
    );
    await assertIntegrityError(loadModel(kv, "big"), missing);
    await assertIntegrityError(loadModelBytes(kv, "big", 2), missing);
    // One missing from the middle of a range read, and the first one, are named too.
    for (const i of [7, 0]) {
      await kv.delete(modelChunkKey("big", 2, i));
      await assertIntegrityError(
        loadModel(kv, "big"),
        new RegExp(`model "big" v2: chunk ${i} of ${manifest.chunkCount} is missing`),
      );
    }
    // The other version is untouched.
    assert.deepEqual((await loadModelBytes(kv, "big", 1)).bytes, encodeModel(bigModel(1)));
  });
});

Deno.test("bytes that pass the checksum but do not decode are an IntegrityError", async () => {
  await withKv(async (kv) => {
    const manifest = await publishModel(kv, "names", lmModel(1));
    // Rewrite the version consistently (chunk, length and hash agree) with a non-model.
    const junk = new TextEncoder().encode("definitely not safetensors");
    await kv.set(modelChunkKey("names", 1, 0), junk);
    await kv.set(["model", "names", "v", 1, "manifest"], {
      ...manifest,
      byteLength: junk.length,
      sha256: await sha256Hex(junk),
    });
    await assertIntegrityError(loadModel(kv, "names"), /model "names" v1: .*not a usable model/);
  });
});

// ---------------------------------------------------------------------------------------------
// Rollback and pruning

Deno.test("rollbackModel() moves current to the previous version and loads the old weights", async () => {
  await withKv(async (kv) => {
    const old = lmModel(1);
    const m1 = await publishModel(kv, "names", old);
    await publishModel(kv, "names", lmModel(2));

    const rolled = await rollbackModel(kv, "names");
    assert.deepEqual(rolled, m1);
    assert.equal(await getCurrentVersion(kv, "names"), 1);
    await assertLoadsAs(kv, "names", undefined, m1, encodeModel(old), old);
    // The newer version is still kept, and a rollback can name it to go forward again.
    assert.deepEqual((await kv.get(modelIndexKey("names"))).value, { versions: [1, 2] });
    assert.equal((await rollbackModel(kv, "names", 2)).version, 2);
    assert.equal(await getCurrentVersion(kv, "names"), 2);
    // Naming the current version is a no-op.
    assert.equal((await rollbackModel(kv, "names", 2)).version, 2);
  });
});

Deno.test("rollbackModel() to a pruned, unknown or missing version is a NotFoundError", async () => {
  await withKv(async (kv) => {
    await assert.rejects(rollbackModel(kv, "names"), NotFoundError);
    for (const seed of [1, 2, 3, 4]) await publishModel(kv, "names", lmModel(seed), { keep: 2 });
    await assert.rejects(rollbackModel(kv, "names", 1), /no version 1 \(kept: 3, 4\)/);
    await assert.rejects(rollbackModel(kv, "names", 2), NotFoundError);
    await assert.rejects(rollbackModel(kv, "names", 99), NotFoundError);
    await assert.rejects(rollbackModel(kv, "names", 1.5), NotFoundError);
    assert.equal((await rollbackModel(kv, "names")).version, 3);
    // Nothing kept is older than 3 now.
    await assert.rejects(rollbackModel(kv, "names"), /no kept version older than current v3/);
    assert.equal(await getCurrentVersion(kv, "names"), 3);
    await assert.rejects(loadModel(kv, "names", 1), NotFoundError);
  });
});

Deno.test("rollbackModel() refuses a corrupt version and leaves current where it was", async () => {
  await withKv(async (kv) => {
    await publishModel(kv, "names", lmModel(1));
    await publishModel(kv, "names", lmModel(2));
    await kv.delete(modelChunkKey("names", 1, 0));
    await assertIntegrityError(rollbackModel(kv, "names"), /model "names" v1: chunk 0 of 1/);
    assert.equal(await getCurrentVersion(kv, "names"), 2);
  });
});

Deno.test("keep=K deletes the manifests and chunks of older versions", async () => {
  await withKv(async (kv) => {
    const manifests = [];
    for (const seed of [1, 2, 3, 4, 5]) {
      manifests.push(await publishModel(kv, "big", bigModel(seed), { keep: 2 }));
    }
    assert.deepEqual(await storedVersions(kv, "big"), [4, 5]);
    const keys = await listKeys(kv, ["model", "big", "v"]);
    assert.equal(keys.length, manifests[3].chunkCount + 1 + manifests[4].chunkCount + 1);
    assert.deepEqual((await kv.get(modelIndexKey("big"))).value, { versions: [4, 5] });
    assert.deepEqual((await listModels(kv))[0].versions, manifests.slice(3));
    for (const version of [1, 2, 3]) {
      assert.equal(await getManifest(kv, "big", version), null);
      await assert.rejects(loadModelBytes(kv, "big", version), NotFoundError);
    }
    // Only this model's keys exist, besides its counter, current and index.
    assert.deepEqual(
      (await listKeys(kv)).filter((k) => k[2] !== "v"),
      [["model", "big", "current"], ["model", "big", "latest"], ["models", "big"]],
    );
  });
});

Deno.test("pruning never deletes the current version, even when it is not among the newest", async () => {
  await withKv(async (kv) => {
    // Publisher A (version 1) stalls just before its publishing commit while B publishes
    // version 2 with keep=1; then A finishes, so its older version becomes current.
    let release!: () => void;
    const released = new Promise<void>((resolve) => release = resolve);
    let reachedFinalCommit!: () => void;
    const stalled = new Promise<void>((resolve) => reachedFinalCommit = resolve);
    // A's writes: allocation, one chunk commit, the manifest, then the publishing commit.
    const slow = hookedKv(kv, async (n) => {
      if (n === 4) {
        reachedFinalCommit();
        await released;
      }
    });
    const a = publishModel(slow.kv, "names", lmModel(1), { keep: 1 });
    await stalled;
    const b = await publishModel(kv, "names", lmModel(2), { keep: 1 });
    assert.equal(b.version, 2);
    assert.deepEqual(await storedVersions(kv, "names"), [1, 2]);
    release();
    const aManifest = await a;
    assert.equal(aManifest.version, 1);

    assert.equal(await getCurrentVersion(kv, "names"), 1);
    assert.deepEqual((await kv.get(modelIndexKey("names"))).value, { versions: [1, 2] });
    assert.deepEqual(
      (await loadModel(kv, "names")).model.network.params,
      lmModel(1).network.params,
    );
    assert.deepEqual(await storedVersions(kv, "names"), [1, 2]);

    // The next publish with keep=1 may then drop both.
    await publishModel(kv, "names", lmModel(3), { keep: 1 });
    assert.deepEqual(await storedVersions(kv, "names"), [3]);
  });
});

// ---------------------------------------------------------------------------------------------
// Concurrency, listing, validation

Deno.test("concurrent publishers of one name get different versions and never mix weights", async () => {
  await withKv(async (kv) => {
    const seeds = [11, 12, 13, 14];
    const models = seeds.map((seed) => lmModel(seed, { hiddenSize: 48 }));
    // Small chunks so that every publish takes many commits and they interleave.
    const manifests = await Promise.all(
      models.map((model) => publishModel(kv, "race", model, { chunkSize: 4096, keep: 10 })),
    );
    const versions = manifests.map((m) => m.version);
    assert.deepEqual([...versions].sort(), [1, 2, 3, 4]);
    for (const [k, manifest] of manifests.entries()) {
      assert.ok(manifest.chunkCount > 1);
      const { bytes } = await loadModelBytes(kv, "race", manifest.version);
      assert.deepEqual(bytes, encodeModel(models[k]));
      assert.deepEqual(decodeModel(bytes).network.params, models[k].network.params);
    }
    assert.ok(versions.includes((await getCurrentVersion(kv, "race"))!));
    assert.deepEqual((await kv.get(modelIndexKey("race"))).value, { versions: [1, 2, 3, 4] });
  });
});

Deno.test("listModels() lists every model with its current version and kept manifests", async () => {
  await withKv(async (kv) => {
    assert.deepEqual(await listModels(kv), []);
    const b1 = await publishModel(kv, "beta", lmModel(1), { metrics: { val_loss: 2 } });
    const a1 = await publishModel(kv, "alpha", lmModel(2));
    const a2 = await publishModel(kv, "alpha", lmModel(3, { cell: "lstm" }));
    await rollbackModel(kv, "alpha");
    assert.deepEqual(await listModels(kv), [
      { name: "alpha", current: 1, versions: [a1, a2] },
      { name: "beta", current: 1, versions: [b1] },
    ]);
  });
});

Deno.test("invalid model names are refused before anything is written", async () => {
  assert.equal(validateModelName("names-gru_2"), "names-gru_2");
  assert.equal(validateModelName("x".repeat(64)), "x".repeat(64));
  await withKv(async (kv) => {
    const bad: unknown[] = ["", "a b", "../x", "a/b", "x".repeat(65), "名前", "a\nb", 42, null];
    for (const name of bad) {
      assert.throws(() => validateModelName(name), InvalidNameError);
      const n = name as string;
      await assert.rejects(publishModel(kv, n, lmModel(1)), InvalidNameError);
      await assert.rejects(loadModel(kv, n), InvalidNameError);
      await assert.rejects(loadModelBytes(kv, n, 1), InvalidNameError);
      await assert.rejects(rollbackModel(kv, n), InvalidNameError);
      await assert.rejects(getManifest(kv, n, 1), InvalidNameError);
    }
    assert.deepEqual(await listKeys(kv), []);
  });
});

Deno.test("an oversized manifest or a bad option is refused before anything is written", async () => {
  await withKv(async (kv) => {
    const metrics = { curve: Array.from({ length: 10_000 }, (_, i) => i + 0.5) };
    await assert.rejects(publishModel(kv, "names", lmModel(1), { metrics }), (err: Error) => {
      assert.ok(err instanceof TooLargeError);
      assert.match(err.message, /manifest of model "names" is \d{5,} bytes of JSON.*60000/);
      return true;
    });
    await assert.rejects(publishModel(kv, "names", lmModel(1), { chunkSize: 65_536 }), RangeError);
    await assert.rejects(publishModel(kv, "names", lmModel(1), { chunkSize: 0 }), RangeError);
    await assert.rejects(publishModel(kv, "names", lmModel(1), { keep: 0 }), RangeError);
    await assert.rejects(
      publishModel(kv, "names", lmModel(1), { training: { f: () => 1 } }),
      DOMException,
    );
    assert.deepEqual(await listKeys(kv), []);
  });
});

Deno.test("loading an unknown model or version is a NotFoundError", async () => {
  await withKv(async (kv) => {
    await assert.rejects(loadModel(kv, "nobody"), /no model named "nobody"/);
    await publishModel(kv, "names", lmModel(1));
    await assert.rejects(loadModel(kv, "names", 2), NotFoundError);
    await assert.rejects(loadModelBytes(kv, "names", 0), NotFoundError);
    await assert.rejects(loadModel(kv, "names", -1), NotFoundError);
  });
});

Deno.test("openKv() creates a file's directory and refuses a URL without an access token", async () => {
  const dir = await Deno.makeTempDir();
  const saved = Deno.env.get("DENO_KV_ACCESS_TOKEN");
  try {
    const path = join(dir, "nested", "deeper", "kv.sqlite3");
    const kv = await openKv(path);
    try {
      await kv.set(modelCurrentKey("names"), 1);
    } finally {
      kv.close();
    }
    assert.ok((await Deno.stat(dirname(path))).isDirectory);
    assert.ok((await Deno.stat(path)).isFile);

    const memory = await openKv(":memory:");
    memory.close();

    Deno.env.delete("DENO_KV_ACCESS_TOKEN");
    await assert.rejects(
      openKv("https://api.deno.com/databases/00000000/connect"),
      /DENO_KV_ACCESS_TOKEN/,
    );
  } finally {
    if (saved !== undefined) Deno.env.set("DENO_KV_ACCESS_TOKEN", saved);
    await Deno.remove(dir, { recursive: true });
  }
});
