// The serving side of the registry: loaded model versions cached in memory (each verified once,
// by checksum, when loaded) and the `current` keys watched, so a version published while a
// server runs reaches new sessions without a restart.
import type { Model } from "../format/mod.ts";
import { simdAvailable, SimdStepper, stepModule, Stepper, type StreamStepper } from "../nn/mod.ts";
import { CharVocab } from "../text/char_vocab.ts";
import { NotFoundError } from "./errors.ts";
import { modelCurrentKey, validateModelName } from "./keys.ts";
import { getCurrentVersion, loadModel, type LoadTimings, type ModelManifest } from "./registry.ts";

/** A model version ready to serve. */
export interface LoadedModel {
  name: string;
  version: number;
  manifest: ModelManifest;
  model: Model;
  /** The input vocabulary, or null for dense-input models. */
  vocab: CharVocab | null;
  /** A stepper shared by every session of this version (steps are synchronous, never
   * interleaved): the WebAssembly SIMD one where the platform has SIMD, else TypeScript's. */
  stepper: StreamStepper;
  /** How long each part of loading this version took, in milliseconds. */
  timings: ModelLoadTimings;
}

/** {@linkcode LoadTimings} plus the serving side's own parts, in milliseconds. */
export interface ModelLoadTimings extends LoadTimings {
  /**
   * Compiling step.wasm: done for the first SIMD stepper of a process (then about 0), while the
   * first KV read is in flight, so it overlaps `manifest`.
   */
  wasm: number;
  /** Building the stepper: copying the weights in, packing them, folding the embedding. */
  stepper: number;
}

/** Options of {@linkcode ModelCache}. */
export interface ModelCacheOptions {
  /** Versions kept in memory; the least recently used goes first. @default 16 */
  maxEntries?: number;
  /** Called when a watched `current` key changes (for logs). */
  onChange?: (name: string, version: number | null) => void;
}

/**
 * Loads model versions from KV once and keeps them; knows each model's current version, kept
 * fresh by `kv.watch` on the `current` keys (at most 10 keys per watch, as KV allows).
 *
 * @example
 * ```ts
 * import { ModelCache } from "./model_cache.ts";
 * const kv = await Deno.openKv(":memory:");
 * const cache = new ModelCache(kv);
 * await cache.currentVersion("moby"); // null: nothing published yet
 * cache.close();
 * kv.close();
 * ```
 */
export class ModelCache {
  readonly #kv: Deno.Kv;
  readonly #max: number;
  readonly #onChange: (name: string, version: number | null) => void;
  readonly #entries = new Map<string, Promise<LoadedModel>>();
  readonly #current = new Map<string, number | null>();
  #groups: WatchGroup[] = [];
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #closed = false;

  /**
   * @param kv the store models are published to
   * @param options cache size and change callback
   */
  constructor(kv: Deno.Kv, options: ModelCacheOptions = {}) {
    this.#kv = kv;
    this.#max = options.maxEntries ?? 16;
    this.#onChange = options.onChange ?? (() => {});
  }

  /**
   * The version new sessions of a model get.
   *
   * @param name a model name
   * @returns the current version, or null when the model has none
   */
  async currentVersion(name: string): Promise<number | null> {
    validateModelName(name);
    if (this.#current.has(name)) return this.#current.get(name)!;
    const version = await getCurrentVersion(this.#kv, name);
    // Only published models are remembered and watched: a request naming a model that does not
    // exist costs one read, and cannot grow this cache or the watches.
    if (version !== null && !this.#current.has(name)) {
      this.#current.set(name, version);
      this.#watchName(name);
    }
    return version;
  }

  /**
   * A model version, loaded from KV (checksum verified) on first use and cached.
   *
   * @param name a model name
   * @param version the version; omitted: the current one
   * @returns the loaded model
   * @throws {NotFoundError} for an unknown model or version; IntegrityError for a corrupt one
   */
  async load(name: string, version?: number): Promise<LoadedModel> {
    const v = version ?? await this.currentVersion(name);
    if (v === null) throw new NotFoundError(`model ${name} has not been published`);
    const key = `${name}@${v}`;
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      entry = this.#fetch(name, v);
      this.#entries.set(key, entry);
      // A failed load is not cached: the next request tries again.
      entry.catch(() => this.#entries.delete(key));
      while (this.#entries.size > this.#max) {
        this.#entries.delete(this.#entries.keys().next().value!);
      }
    } else {
      // Most recently used last.
      this.#entries.delete(key);
      this.#entries.set(key, entry);
    }
    return await entry;
  }

  async #fetch(name: string, version: number): Promise<LoadedModel> {
    const simd = simdAvailable();
    let wasm = 0;
    const compile = () => {
      const started = performance.now();
      if (simd) stepModule();
      wasm = performance.now() - started;
    };
    // loadModel returns at its first KV read, so step.wasm is compiled (once per process) while
    // that read is in flight.
    const [{ manifest, model, timings }] = await Promise.all([
      loadModel(this.#kv, name, version),
      Promise.resolve().then(compile),
    ]);
    const vocab = model.meta.vocabulary === null ? null : new CharVocab(model.meta.vocabulary);
    const started = performance.now();
    const stepper = simd ? new SimdStepper(model.network) : new Stepper(model.network);
    const built = performance.now();
    return {
      name,
      version,
      manifest,
      model,
      vocab,
      stepper,
      timings: { ...timings, wasm, stepper: built - started },
    };
  }

  /** Adds a name to the watches: to the last group if it has room (KV watches at most 10 keys). */
  #watchName(name: string): void {
    if (this.#closed) return;
    let group = this.#groups.at(-1);
    if (group === undefined || group.names.length >= 10) {
      group = { names: [], stream: null };
      this.#groups.push(group);
    }
    group.names.push(name);
    this.#startWatch(group, 0);
  }

  /** (Re)starts one group's watch; a watch that fails is retried with a growing delay. */
  #startWatch(group: WatchGroup, failures: number): void {
    if (this.#closed) return;
    group.stream?.cancel().catch(() => {});
    const names = [...group.names];
    const stream = this.#kv.watch<number[]>(names.map((n) => modelCurrentKey(n)));
    group.stream = stream;
    this.#follow(names, stream).then(
      () => {},
      (err) => {
        if (this.#closed || group.stream !== stream) return;
        console.error(`model watch failed (${(err as Error).message}); retrying`);
        const delay = Math.min(30_000, 500 * 2 ** failures);
        const timer = setTimeout(() => this.#startWatch(group, failures + 1), delay);
        this.#timers.add(timer);
      },
    );
  }

  async #follow(names: string[], stream: ReadableStream<Deno.KvEntryMaybe<number>[]>) {
    for await (const entries of stream) {
      entries.forEach((entry, k) => {
        const name = names[k];
        const version = entry.value ?? null;
        if (this.#current.get(name) !== version) {
          this.#current.set(name, version);
          this.#onChange(name, version);
        }
      });
    }
  }

  /** Stops watching. */
  close(): void {
    this.#closed = true;
    for (const group of this.#groups) group.stream?.cancel().catch(() => {});
    for (const timer of this.#timers) clearTimeout(timer);
    this.#groups = [];
  }
}

/** Up to 10 model names watched together. */
interface WatchGroup {
  names: string[];
  stream: ReadableStream<Deno.KvEntryMaybe<number>[]> | null;
}
