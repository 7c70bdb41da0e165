// The model registry: versioned models in Deno KV, each a manifest plus its model file (the
// safetensors bytes of src/format/) in chunks under the 64 KiB value limit. A version becomes
// visible (in the index, and as `current`) only in one atomic commit made after every chunk was
// written, read back and checksummed, so a reader never sees a half-published model
// (DESIGN.md, "Models in KV").
import { decodeModel, encodeModel, type Model, ModelFileError, type Task } from "../format/mod.ts";
import type { Nonlinearity } from "../math/mod.ts";
import type { CellKind } from "../nn/mod.ts";
import {
  ConflictError,
  IntegrityError,
  NotFoundError,
  StoreError,
  TooLargeError,
} from "./errors.ts";
import { retryWhileLocked } from "./_busy_retry.ts";
import {
  MODEL_INDEX_PREFIX,
  modelChunkKey,
  modelCurrentKey,
  modelIndexKey,
  modelLatestKey,
  modelManifestKey,
  modelVersionPrefix,
  validateModelName,
} from "./keys.ts";

/** Everything about one published model version except its weights. */
export interface ModelManifest {
  /** The model name. */
  name: string;
  /** The version number: 1, 2, ... per name, never reused. */
  version: number;
  /** When the version was published, ISO 8601. */
  createdAt: string;
  /** The recurrent cell. */
  cell: CellKind;
  /** The Elman cell's activation ("tanh" for GRU and LSTM). */
  nonlinearity: Nonlinearity;
  /** Token ids through an embedding, or dense vectors. */
  input: "embedding" | "dense";
  /** Stacked layers L. */
  layers: number;
  /** Hidden size H. */
  hiddenSize: number;
  /** Width I of what layer 0 reads. */
  inputSize: number;
  /** Embedding rows V (0 for dense input). */
  vocabSize: number;
  /** Head outputs O. */
  outputSize: number;
  /** What the outputs mean. */
  task: Task;
  /** Input tokens by id, or null for dense input. */
  vocabulary: string[] | null;
  /** Class names by output, or null. */
  labels: string[] | null;
  /** Length of the model file in bytes. */
  byteLength: number;
  /** SHA-256 of the model file, lowercase hex. */
  sha256: string;
  /** Bytes per chunk (the last chunk may be shorter). */
  chunkSize: number;
  /** Number of chunks: ceil(byteLength / chunkSize). */
  chunkCount: number;
  /** The training configuration, as the trainer reported it. */
  training?: Record<string, unknown>;
  /** Evaluation results, e.g. `{ val_loss: 1.23 }`. */
  metrics?: Record<string, unknown>;
}

/** How {@linkcode publishModel} stores a version. */
export interface PublishOptions {
  /**
   * How many of the newest versions to keep; older ones (except the current one) are deleted.
   * @default 3
   */
  keep?: number;
  /** The training configuration, stored in the manifest. */
  training?: Record<string, unknown>;
  /** Evaluation results, stored in the manifest (`val_loss` is shown by `deno task models`). */
  metrics?: Record<string, unknown>;
  /**
   * Bytes per chunk, 1 to 65,535 (a Deno KV value is at most 64 KiB).
   * @default 60_000
   */
  chunkSize?: number;
  /**
   * The clock that stamps `createdAt`.
   * @default () => new Date()
   */
  clock?: () => Date;
}

/** One model as {@linkcode listModels} reports it. */
export interface ModelListing {
  /** The model name. */
  name: string;
  /** The version new sessions get, or null if none is set. */
  current: number | null;
  /** Manifests of the kept versions, oldest first. */
  versions: ModelManifest[];
}

/** The value under `["models", name]`. */
interface ModelIndex {
  /** Kept, fully published versions, ascending. */
  versions: number[];
}

const PUBLISH_DEFAULTS = {
  keep: 3,
  chunkSize: 60_000,
  clock: (): Date => new Date(),
} as const satisfies PublishOptions;

/** The largest manifest accepted, as UTF-8 JSON; the margin below 64 KiB covers encoding. */
export const MAX_MANIFEST_JSON_BYTES = 60_000;

/** The largest Deno KV value, in bytes. */
const MAX_VALUE_BYTES = 65_536;
/** Deno KV's limits on one atomic commit: mutations, and total bytes of keys and values. */
const MAX_COMMIT_MUTATIONS = 1000;
const MAX_COMMIT_BYTES = 800 * 1024;
/** Counted per chunk mutation on top of the chunk itself: its key and encoding, generously. */
const MUTATION_OVERHEAD_BYTES = 512;
/** Deletions per commit when pruning: far below both commit limits (keys are ~40 bytes). */
const DELETES_PER_COMMIT = 500;
/** Deno KV's limit on keys per getMany call, and how many such calls run at once. */
const GET_MANY_LIMIT = 10;
const READ_CONCURRENCY = 4;
/** Chunks per range read of a model file: about 1 MB at the default chunk size. */
const CHUNKS_PER_READ = 16;
/** Attempts of an optimistic read-check-write before giving up with a ConflictError. */
const MAX_ATTEMPTS = 30;
/** The most versions `keep` may ask for (the index is one value under 64 KiB). */
const MAX_KEEP = 1000;

/**
 * Publishes a model as a new version and makes it current: allocates a version number, writes
 * the model file in chunks and then the manifest, reads every chunk back and checks length and
 * SHA-256, and only then, in one atomic commit, sets `current` and adds the version to the
 * index, dropping the versions beyond the newest `keep` (never the current one) whose keys are
 * then deleted. If anything fails before that commit, `current` and the index are unchanged.
 *
 * Two publishers of one name get different versions; the one that finishes last is current.
 *
 * @param kv the store
 * @param name the model name (`^[A-Za-z0-9_-]{1,64}$`)
 * @param model the network and its metadata
 * @param options keep, chunk size, training and metrics for the manifest, clock
 * @returns the manifest of the new version
 * @throws {InvalidNameError} for a bad name, before anything is written
 * @throws {TooLargeError} if the manifest's JSON is over 60,000 bytes, before anything is written
 * @throws {ModelFileError} if the model cannot be encoded, before anything is written
 * @throws {RangeError} for an out-of-range option, before anything is written
 * @throws {IntegrityError} if the chunks read back differ from what was written
 * @throws {ConflictError} if concurrent writers keep winning every retry
 * @example
 * ```ts
 * import { publishModel, loadModel } from "./registry.ts";
 * import { Network } from "../nn/mod.ts";
 * const kv = await Deno.openKv(":memory:");
 * const network = Network.create({ cell: "gru", nonlinearity: "tanh", input: "embedding",
 *   vocabSize: 3, inputSize: 2, hiddenSize: 4, layers: 1, outputSize: 3 }, 1);
 * const meta = { task: "lm" as const, vocabulary: ["<unk>", "a", "b"], labels: null, extra: {} };
 * const manifest = await publishModel(kv, "tiny", { network, meta }, {
 *   metrics: { val_loss: 1.05 },
 * });
 * manifest.version; // 1
 * (await loadModel(kv, "tiny")).model.network.config.hiddenSize; // 4
 * kv.close();
 * ```
 */
export async function publishModel(
  kv: Deno.Kv,
  name: string,
  model: Model,
  options: PublishOptions = {},
): Promise<ModelManifest> {
  validateModelName(name);
  const keep = options.keep ?? PUBLISH_DEFAULTS.keep;
  const chunkSize = options.chunkSize ?? PUBLISH_DEFAULTS.chunkSize;
  const clock = options.clock ?? PUBLISH_DEFAULTS.clock;
  if (!Number.isInteger(keep) || keep < 1 || keep > MAX_KEEP) {
    throw new RangeError(`keep must be an integer in 1..${MAX_KEEP}, not ${keep}`);
  }
  if (!Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize >= MAX_VALUE_BYTES) {
    throw new RangeError(
      `chunkSize must be an integer in 1..${MAX_VALUE_BYTES - 1} (a KV value is at most ` +
        `${MAX_VALUE_BYTES} bytes), not ${chunkSize}`,
    );
  }

  const bytes = encodeModel(model);
  const { config } = model.network;
  const draft: ModelManifest = {
    name,
    // The largest possible version, so that the size checked below is an upper bound.
    version: Number.MAX_SAFE_INTEGER,
    createdAt: clock().toISOString(),
    cell: config.cell,
    nonlinearity: config.nonlinearity,
    input: config.input,
    layers: config.layers,
    hiddenSize: config.hiddenSize,
    inputSize: config.inputSize,
    vocabSize: config.vocabSize,
    outputSize: config.outputSize,
    task: model.meta.task,
    vocabulary: model.meta.vocabulary === null ? null : [...model.meta.vocabulary],
    labels: model.meta.labels === null ? null : [...model.meta.labels],
    byteLength: bytes.length,
    sha256: await sha256Hex(bytes),
    chunkSize,
    chunkCount: Math.ceil(bytes.length / chunkSize),
  };
  // Cloned now so that a value KV cannot store fails here, before anything is written, and a
  // caller who later mutates its objects does not change what was published.
  if (options.training !== undefined) draft.training = structuredClone(options.training);
  if (options.metrics !== undefined) draft.metrics = structuredClone(options.metrics);
  const jsonBytes = new TextEncoder().encode(JSON.stringify(draft)).length;
  if (jsonBytes > MAX_MANIFEST_JSON_BYTES) {
    throw new TooLargeError(
      `the manifest of model "${name}" is ${jsonBytes} bytes of JSON; the limit is ` +
        `${MAX_MANIFEST_JSON_BYTES} (a KV value is at most 64 KiB): shrink the vocabulary, ` +
        `labels, training or metrics`,
    );
  }

  const version = await allocateVersion(kv, name);
  const manifest: ModelManifest = { ...draft, version };
  try {
    await writeChunks(kv, name, version, bytes, chunkSize);
    await writeManifest(kv, manifest);
    await checkSha256(manifest, await readVersionChunks(kv, manifest));
  } catch (err) {
    // Nothing points at this version yet, so its keys are unreachable; removing them is
    // housekeeping, and the error that stopped the publish is the one worth reporting.
    await deleteVersions(kv, name, [version]).catch(() => {});
    throw err;
  }

  const pruned = await makeCurrent(kv, name, version, keep);
  try {
    await deleteVersions(kv, name, pruned);
  } catch (err) {
    throw new StoreError(
      `published model "${name}" v${version} (now current), but deleting the keys of pruned ` +
        `versions ${pruned.join(", ")} failed: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return manifest;
}

/** Milliseconds spent in each part of {@linkcode loadModel}, for logs and benchmarks. */
export interface LoadTimings {
  /** Resolving the version (reading `current` when none was given) and reading its manifest. */
  manifest: number;
  /** Reading every chunk into one buffer, checking each one's presence and length. */
  chunks: number;
  /**
   * The SHA-256 of the bytes, compared with the manifest's. It is computed off the main thread
   * while the bytes are decoded, so it overlaps `decode`.
   */
  checksum: number;
  /** Parsing and checking the model file (shapes, values, metadata) and building its Network. */
  decode: number;
}

/**
 * Loads and decodes a model version, checking chunk count, length and SHA-256; the file is
 * decoded while its SHA-256 is computed, but nothing is returned before the checksum matches,
 * and a mismatch is the error reported even when the bytes also fail to decode.
 *
 * @param kv the store
 * @param name the model name
 * @param version a kept version; omitted, the current one
 * @returns the manifest, the decoded model and how long each part of the load took
 * @throws {InvalidNameError} for a bad name
 * @throws {NotFoundError} for an unknown model, or a version never published or pruned
 * @throws {IntegrityError} naming the model, version and fault: a missing or wrong-sized
 *   chunk, a checksum mismatch, or bytes that do not decode
 * @example
 * ```ts
 * import { loadModel } from "./registry.ts";
 * const kv = await Deno.openKv(":memory:");
 * await loadModel(kv, "names").catch((err) => err.name); // "NotFoundError"
 * kv.close();
 * ```
 */
export async function loadModel(
  kv: Deno.Kv,
  name: string,
  version?: number,
): Promise<{ manifest: ModelManifest; model: Model; timings: LoadTimings }> {
  const { manifest, value, timings } = await loadVerified(kv, name, version, (bytes, manifest) => {
    try {
      // The bytes were assembled here and go nowhere else, so the parameters may be a view of
      // them.
      return decodeModel(bytes, { copy: false });
    } catch (err) {
      if (err instanceof ModelFileError) {
        throw new IntegrityError(
          `${describe(manifest)}: the stored bytes are not a usable model: ${err.message}`,
          { cause: err },
        );
      }
      throw err;
    }
  });
  return { manifest, model: value, timings };
}

/**
 * Loads a model version's file bytes (safetensors), checking chunk count, length and SHA-256.
 *
 * @param kv the store
 * @param name the model name
 * @param version a kept version; omitted, the current one
 * @returns the manifest and the verified bytes
 * @throws {InvalidNameError} for a bad name
 * @throws {NotFoundError} for an unknown model, or a version never published or pruned
 * @throws {IntegrityError} for a missing or wrong-sized chunk, or a checksum mismatch
 * @example
 * ```ts
 * import { loadModelBytes } from "./registry.ts";
 * const kv = await Deno.openKv(":memory:");
 * await loadModelBytes(kv, "names", 2).catch((err) => err.message); // no model named "names"
 * kv.close();
 * ```
 */
export async function loadModelBytes(
  kv: Deno.Kv,
  name: string,
  version?: number,
): Promise<{ manifest: ModelManifest; bytes: Uint8Array }> {
  const { manifest, value } = await loadVerified(kv, name, version, (bytes) => bytes);
  return { manifest, bytes: value };
}

/**
 * Reads a version's file and checks it, then hands it to `use`. `use` runs while the SHA-256 is
 * computed (off the main thread), but what it returns or throws counts only once the checksum
 * matches: a mismatch is always the error reported. A load retried after a prune counts every
 * attempt in the timings.
 */
async function loadVerified<T>(
  kv: Deno.Kv,
  name: string,
  version: number | undefined,
  use: (bytes: Uint8Array, manifest: ModelManifest) => T,
): Promise<{ manifest: ModelManifest; value: T; timings: LoadTimings }> {
  validateModelName(name);
  const timings: LoadTimings = { manifest: 0, chunks: 0, checksum: 0, decode: 0 };
  for (let attempt = 1;; attempt++) {
    const started = performance.now();
    const manifest = await resolveManifest(kv, name, version);
    timings.manifest += performance.now() - started;
    let outcome: { value: T } | { error: unknown };
    try {
      const bytes = await readVersionChunks(kv, manifest, timings);
      const checked = checkSha256(manifest, bytes, timings);
      const used = performance.now();
      try {
        outcome = { value: use(bytes, manifest) };
      } catch (error) {
        outcome = { error };
      }
      timings.decode += performance.now() - used;
      await checked;
    } catch (err) {
      // Chunks vanish legitimately when a concurrent publish prunes the version mid-read; that
      // is "not found" (or, for the current version, a reason to read the new current).
      if (!(err instanceof IntegrityError)) throw err;
      const index = await kv.get<ModelIndex>(modelIndexKey(name));
      if (index.value?.versions.includes(manifest.version)) throw err;
      if (version !== undefined || attempt >= MAX_ATTEMPTS) {
        throw new NotFoundError(
          `model "${name}" v${manifest.version} was pruned while it was being loaded`,
        );
      }
      continue;
    }
    if ("error" in outcome) throw outcome.error;
    return { manifest, value: outcome.value, timings };
  }
}

/**
 * The manifest of a kept, published version.
 *
 * @param kv the store
 * @param name the model name
 * @param version the version
 * @returns its manifest, or null if the version is not (or no longer) kept
 * @throws {InvalidNameError} for a bad name
 * @example
 * ```ts
 * import { getManifest } from "./registry.ts";
 * const kv = await Deno.openKv(":memory:");
 * await getManifest(kv, "names", 1); // null
 * kv.close();
 * ```
 */
export async function getManifest(
  kv: Deno.Kv,
  name: string,
  version: number,
): Promise<ModelManifest | null> {
  validateModelName(name);
  if (!isVersionNumber(version)) return null;
  const [manifest, index] = await kv.getMany<[ModelManifest, ModelIndex]>([
    modelManifestKey(name, version),
    modelIndexKey(name),
  ]);
  return index.value?.versions.includes(version) ? manifest.value : null;
}

/**
 * The version new sessions of a model get.
 *
 * @param kv the store
 * @param name the model name
 * @returns the current version, or null for an unknown model
 * @throws {InvalidNameError} for a bad name
 * @example
 * ```ts
 * import { getCurrentVersion } from "./registry.ts";
 * const kv = await Deno.openKv(":memory:");
 * await getCurrentVersion(kv, "names"); // null
 * kv.close();
 * ```
 */
export async function getCurrentVersion(kv: Deno.Kv, name: string): Promise<number | null> {
  validateModelName(name);
  return (await kv.get<number>(modelCurrentKey(name))).value;
}

/**
 * Every model with its current version and the manifests of its kept versions, from the index
 * (no chunk is read). Models are in key order (by name), versions oldest first.
 *
 * @param kv the store
 * @returns one entry per model
 * @example
 * ```ts
 * import { listModels } from "./registry.ts";
 * const kv = await Deno.openKv(":memory:");
 * await listModels(kv); // []
 * kv.close();
 * ```
 */
export async function listModels(kv: Deno.Kv): Promise<ModelListing[]> {
  const indexes: { name: string; versions: number[] }[] = [];
  for await (const entry of kv.list<ModelIndex>({ prefix: MODEL_INDEX_PREFIX })) {
    indexes.push({ name: String(entry.key[1]), versions: entry.value.versions });
  }
  return await Promise.all(indexes.map(({ name, versions }) => listing(kv, name, versions)));
}

/**
 * One model as {@linkcode listModels} reports it, reading only that model's keys.
 *
 * @param kv the store
 * @param name a model name
 * @returns its current version and kept manifests, or null when it has never been published
 * @throws {InvalidNameError} for a bad name
 * @example
 * ```ts
 * import { describeModel } from "./registry.ts";
 * const kv = await Deno.openKv(":memory:");
 * await describeModel(kv, "names"); // null
 * kv.close();
 * ```
 */
export async function describeModel(kv: Deno.Kv, name: string): Promise<ModelListing | null> {
  validateModelName(name);
  const index = await kv.get<ModelIndex>(modelIndexKey(name));
  return index.value === null ? null : await listing(kv, name, index.value.versions);
}

async function listing(kv: Deno.Kv, name: string, versions: number[]): Promise<ModelListing> {
  const keys = [modelCurrentKey(name), ...versions.map((v) => modelManifestKey(name, v))];
  const [current, ...manifests] = await getManyBatched(kv, keys);
  return {
    name,
    current: current.value as number | null,
    // A manifest missing here was pruned by a publish between the index read and this one.
    versions: manifests.map((e) => e.value as ModelManifest | null).filter((m) => m !== null),
  };
}

/**
 * Moves a model's `current` to an older kept version (by default the newest one older than
 * current) after checking that it loads: every chunk present, length and SHA-256 right, bytes
 * decodable. Sessions already pinned to a version are not affected.
 *
 * @param kv the store
 * @param name the model name
 * @param version any kept version; omitted, the newest kept version older than current
 * @returns the manifest of the version that is now current
 * @throws {InvalidNameError} for a bad name
 * @throws {NotFoundError} for an unknown model, a version not kept (never published, or
 *   pruned), or no kept version older than current
 * @throws {IntegrityError} if the target version does not load; `current` is then unchanged
 * @throws {ConflictError} if concurrent writers keep winning every retry
 * @example
 * ```ts
 * import { rollbackModel } from "./registry.ts";
 * const kv = await Deno.openKv(":memory:");
 * await rollbackModel(kv, "names").catch((err) => err.name); // "NotFoundError"
 * kv.close();
 * ```
 */
export async function rollbackModel(
  kv: Deno.Kv,
  name: string,
  version?: number,
): Promise<ModelManifest> {
  validateModelName(name);
  for (let attempt = 1;; attempt++) {
    const [current, index] = await kv.getMany<[number, ModelIndex]>([
      modelCurrentKey(name),
      modelIndexKey(name),
    ]);
    if (current.value === null || index.value === null) {
      throw new NotFoundError(`no model named "${name}"`);
    }
    const kept = index.value.versions;
    let target = version;
    if (target === undefined) {
      target = kept.filter((v) => v < current.value!).at(-1);
      if (target === undefined) {
        throw new NotFoundError(
          `model "${name}" has no kept version older than current v${current.value} ` +
            `(kept: ${kept.join(", ")})`,
        );
      }
    } else if (!kept.includes(target)) {
      throw new NotFoundError(
        `model "${name}" has no version ${target} (kept: ${kept.join(", ")})`,
      );
    }
    const { manifest } = await loadModel(kv, name, target);
    if (target === current.value) return manifest;
    const res = await kv.atomic()
      .check(current)
      .check(index)
      .set(modelCurrentKey(name), target)
      .commit();
    if (res.ok) return manifest;
    await backoff(attempt, `rolling back model "${name}" to v${target}`);
  }
}

/** Reserves the next version number: a check on `latest` makes two publishers differ. */
async function allocateVersion(kv: Deno.Kv, name: string): Promise<number> {
  for (let attempt = 1;; attempt++) {
    const [latest, index] = await kv.getMany<[number, ModelIndex]>([
      modelLatestKey(name),
      modelIndexKey(name),
    ]);
    // The index is consulted too, so a store whose counter was lost never reuses a version.
    const next = Math.max(latest.value ?? 0, index.value?.versions.at(-1) ?? 0) + 1;
    const res = await kv.atomic().check(latest).set(modelLatestKey(name), next).commit();
    if (res.ok) return next;
    await backoff(attempt, `allocating a version of model "${name}"`);
  }
}

/** Writes the chunks in as few atomic commits as Deno KV's commit limits allow. */
async function writeChunks(
  kv: Deno.Kv,
  name: string,
  version: number,
  bytes: Uint8Array,
  chunkSize: number,
): Promise<void> {
  let op = kv.atomic();
  let mutations = 0;
  let size = 0;
  const chunkCount = Math.ceil(bytes.length / chunkSize);
  for (let i = 0; i < chunkCount; i++) {
    const chunk = bytes.slice(i * chunkSize, (i + 1) * chunkSize);
    const cost = chunk.length + MUTATION_OVERHEAD_BYTES;
    if (mutations > 0 && (mutations >= MAX_COMMIT_MUTATIONS || size + cost > MAX_COMMIT_BYTES)) {
      await commitOrConflict(op, `writing chunks of model "${name}" v${version}`);
      op = kv.atomic();
      mutations = 0;
      size = 0;
    }
    op.set(modelChunkKey(name, version, i), chunk);
    mutations++;
    size += cost;
  }
  await commitOrConflict(op, `writing chunks of model "${name}" v${version}`);
}

/** Writes a version's manifest; the key must be fresh, since the version was allocated to us. */
async function writeManifest(kv: Deno.Kv, manifest: ModelManifest): Promise<void> {
  const key = modelManifestKey(manifest.name, manifest.version);
  const res = await kv.atomic().check({ key, versionstamp: null }).set(key, manifest).commit();
  if (!res.ok) {
    throw new ConflictError(`${describe(manifest)} already has a manifest; nothing was published`);
  }
}

/**
 * The publishing commit: `current` = version and the version added to the index, minus the
 * versions beyond the newest `keep` (the new current is always kept).
 *
 * @returns the versions dropped from the index, whose keys are now to be deleted
 */
async function makeCurrent(
  kv: Deno.Kv,
  name: string,
  version: number,
  keep: number,
): Promise<number[]> {
  for (let attempt = 1;; attempt++) {
    const [current, index] = await kv.getMany<[number, ModelIndex]>([
      modelCurrentKey(name),
      modelIndexKey(name),
    ]);
    const all = [...new Set([...(index.value?.versions ?? []), version])].sort((a, b) => a - b);
    const keepSet = new Set([...all.slice(-keep), version]);
    const res = await kv.atomic()
      .check(current)
      .check(index)
      .set(modelCurrentKey(name), version)
      .set(modelIndexKey(name), { versions: all.filter((v) => keepSet.has(v)) })
      .commit();
    if (res.ok) return all.filter((v) => !keepSet.has(v));
    await backoff(attempt, `making model "${name}" v${version} current`);
  }
}

/** Deletes every key of the given versions (manifest and chunks, whatever is there). */
async function deleteVersions(kv: Deno.Kv, name: string, versions: number[]): Promise<void> {
  for (const version of versions) {
    const keys: Deno.KvKey[] = [];
    for await (const entry of kv.list({ prefix: modelVersionPrefix(name, version) })) {
      keys.push(entry.key);
    }
    // The manifest sorts after the chunks ("chunk" < "manifest"), so it goes last: a version
    // whose deletion is interrupted still has the manifest that describes what remains.
    for (let i = 0; i < keys.length; i += DELETES_PER_COMMIT) {
      const op = kv.atomic();
      for (const key of keys.slice(i, i + DELETES_PER_COMMIT)) op.delete(key);
      await commitOrConflict(op, `deleting model "${name}" v${version}`);
    }
  }
}

/** The manifest of a kept version (the current one when `version` is undefined). */
async function resolveManifest(
  kv: Deno.Kv,
  name: string,
  version: number | undefined,
): Promise<ModelManifest> {
  let wanted = version;
  if (wanted === undefined) {
    wanted = (await kv.get<number>(modelCurrentKey(name))).value ?? undefined;
    if (wanted === undefined) throw new NotFoundError(`no model named "${name}"`);
  } else if (!isVersionNumber(wanted)) {
    throw new NotFoundError(`model "${name}" has no version ${wanted}`);
  }
  const [manifest, index] = await kv.getMany<[ModelManifest, ModelIndex]>([
    modelManifestKey(name, wanted),
    modelIndexKey(name),
  ]);
  if (index.value === null) throw new NotFoundError(`no model named "${name}"`);
  if (!index.value.versions.includes(wanted)) {
    throw new NotFoundError(
      `model "${name}" has no version ${wanted} (kept: ${index.value.versions.join(", ")})`,
    );
  }
  if (manifest.value === null) {
    throw new IntegrityError(`model "${name}" v${wanted}: the manifest is missing`);
  }
  return checkManifest(manifest.value, name, wanted);
}

/**
 * A stored manifest, checked against the key it was read from before anything is read by it: it
 * must name this model and version (one copied from another version would otherwise load that
 * version's weights under this version's number) and describe its file with a SHA-256 and
 * sizes that agree.
 */
function checkManifest(value: unknown, name: string, version: number): ModelManifest {
  const where = `model "${name}" v${version}`;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new IntegrityError(`${where}: the manifest is corrupt: it is not an object`);
  }
  const m = value as Partial<ModelManifest>;
  if (m.name !== name || m.version !== version) {
    throw new IntegrityError(
      `${where}: the manifest is corrupt: it describes model ${JSON.stringify(m.name)} ` +
        `v${JSON.stringify(m.version)}`,
    );
  }
  if (typeof m.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(m.sha256)) {
    throw new IntegrityError(`${where}: the manifest is corrupt: its sha256 is not a SHA-256`);
  }
  return m as ModelManifest;
}

/**
 * Reads a version's chunks into one buffer, checking each one's presence and length; adds the
 * time taken to `timings` when given.
 */
async function readVersionChunks(
  kv: Deno.Kv,
  manifest: ModelManifest,
  timings?: LoadTimings,
): Promise<Uint8Array> {
  const started = performance.now();
  const { name, version, chunkCount, chunkSize, byteLength } = manifest;
  const where = describe(manifest);
  if (
    !Number.isSafeInteger(byteLength) || byteLength < 1 || !Number.isSafeInteger(chunkSize) ||
    chunkSize < 1 || chunkCount !== Math.ceil(byteLength / chunkSize)
  ) {
    throw new IntegrityError(
      `${where}: the manifest's byteLength ${byteLength}, chunkSize ${chunkSize} and ` +
        `chunkCount ${chunkCount} do not agree`,
    );
  }
  // Each chunk is copied once, as it arrives, to its place in the file.
  const bytes = new Uint8Array(byteLength);
  const found = new Uint8Array(chunkCount); // (chunkCount) 1 where a chunk was read
  await readChunkRanges(kv, name, version, chunkCount, (i, chunk) => {
    if (!(chunk instanceof Uint8Array)) {
      throw new IntegrityError(`${where}: chunk ${i} of ${chunkCount} holds a non-byte value`);
    }
    const expected = Math.min(chunkSize, byteLength - i * chunkSize);
    if (chunk.length !== expected) {
      throw new IntegrityError(
        `${where}: chunk ${i} of ${chunkCount} has ${chunk.length} bytes; expected ${expected}`,
      );
    }
    bytes.set(chunk, i * chunkSize);
    found[i] = 1;
  });
  const missing = found.indexOf(0);
  if (missing >= 0) {
    throw new IntegrityError(`${where}: chunk ${missing} of ${chunkCount} is missing`);
  }
  if (timings !== undefined) timings.chunks += performance.now() - started;
  return bytes;
}

/**
 * Checks a file's SHA-256 against its manifest; adds the time the digest took to `timings` when
 * given. The digest runs off the main thread, so the caller may work while it is computed.
 */
async function checkSha256(
  manifest: ModelManifest,
  bytes: Uint8Array,
  timings?: LoadTimings,
): Promise<void> {
  const started = performance.now();
  const sha256 = await sha256Hex(bytes);
  if (timings !== undefined) timings.checksum += performance.now() - started;
  if (sha256 !== manifest.sha256) {
    const where = describe(manifest);
    throw new IntegrityError(
      `${where}: the chunks' SHA-256 is ${sha256}; the manifest says ${manifest.sha256}`,
    );
  }
}

/**
 * Reads chunks 0..count-1 of a version as a few key ranges in flight at once, one request each
 * (a range read returns many values for the cost of one; Deno KV's SQLite backend reads 30
 * chunks in about half the time of three 10-key `getMany` calls). Calls `each` with every chunk
 * found, in no particular order across ranges; a missing chunk is simply not reported.
 */
async function readChunkRanges(
  kv: Deno.Kv,
  name: string,
  version: number,
  count: number,
  each: (i: number, value: unknown) => void,
): Promise<void> {
  const ranges = Math.ceil(count / CHUNKS_PER_READ);
  const per = Math.ceil(count / ranges);
  let next = 0;
  const worker = async () => {
    while (next < ranges) {
      const from = next++ * per;
      const to = Math.min(count, from + per);
      const selector = {
        start: modelChunkKey(name, version, from),
        end: modelChunkKey(name, version, to),
      };
      // Retried whole, as getMany is by openKv, while SQLite is locked by another process.
      await retryWhileLocked(async () => {
        // The limit makes the whole range one request (it is also the batch size).
        for await (const entry of kv.list(selector, { limit: to - from })) {
          const i = entry.key[entry.key.length - 1];
          // Only keys built by modelChunkKey are chunks; anything else in the range is skipped,
          // and the chunk it displaced is then reported missing.
          if (entry.key.length === 6 && typeof i === "number" && Number.isInteger(i)) {
            each(i, entry.value);
          }
        }
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, ranges) }, worker));
}

/** `getMany` for any number of keys: groups of 10, a few groups in flight at once, in order. */
async function getManyBatched(
  kv: Deno.Kv,
  keys: Deno.KvKey[],
): Promise<Deno.KvEntryMaybe<unknown>[]> {
  const groups: Deno.KvKey[][] = [];
  for (let i = 0; i < keys.length; i += GET_MANY_LIMIT) {
    groups.push(keys.slice(i, i + GET_MANY_LIMIT));
  }
  const results: Deno.KvEntryMaybe<unknown>[][] = new Array(groups.length);
  let next = 0;
  const worker = async () => {
    while (next < groups.length) {
      const g = next++;
      results[g] = await kv.getMany(groups[g]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, groups.length) }, worker));
  return results.flat();
}

async function commitOrConflict(op: Deno.AtomicOperation, what: string): Promise<void> {
  const res = await op.commit();
  if (!res.ok) throw new ConflictError(`a conflicting write interrupted ${what}`);
}

/** Waits a short random time before retrying an optimistic write, or gives up. */
async function backoff(attempt: number, what: string): Promise<void> {
  if (attempt >= MAX_ATTEMPTS) {
    throw new ConflictError(`gave up ${what} after ${attempt} conflicting attempts`);
  }
  const ms = Math.random() * Math.min(200, 2 ** attempt);
  await new Promise((resolve) => setTimeout(resolve, ms));
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

function isVersionNumber(version: number): boolean {
  return Number.isSafeInteger(version) && version >= 1;
}

function describe(manifest: ModelManifest): string {
  return `model "${manifest.name}" v${manifest.version}`;
}
