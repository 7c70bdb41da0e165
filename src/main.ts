// The served entry: `export default { fetch }` for `deno serve` and Deno Deploy.
// Opens KV (the local file, or the managed KV on Deploy), publishes the pre-trained models kept
// in fixtures/models on a fresh store, and serves.
import { createApp } from "./app.ts";
import { loadConfig } from "./config.ts";
import { decodeModel } from "./format/mod.ts";
import { ModelCache } from "./store/model_cache.ts";
import { openKv } from "./store/open_kv.ts";
import { getCurrentVersion, publishModel } from "./store/registry.ts";
import { SessionManager } from "./stream/mod.ts";

const config = loadConfig();

/** The KV store: managed on Deploy (no path), else a file, `:memory:` or a KV Connect URL. */
export const kv = config.kvPath === undefined ? await Deno.openKv() : await openKv(config.kvPath);

/**
 * Publishes every `fixtures/models/NAME.safetensors` whose model has no current version, so a
 * fresh store serves real models at once, with the training configuration and metrics kept in
 * the file's metadata and the loss curves of `NAME.curve.json` beside it (made by
 * fixtures/make_curves.ts), as `deno task train` would have published them. An existing model
 * is never touched.
 *
 * @param store the KV store
 * @returns the names published
 */
export async function seedFixtureModels(store: Deno.Kv): Promise<string[]> {
  const dir = new URL("../fixtures/models/", import.meta.url);
  const published: string[] = [];
  let entries: Deno.DirEntry[] = [];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const m = /^([A-Za-z0-9_-]{1,64})\.safetensors$/.exec(entry.name);
    if (!entry.isFile || m === null) continue;
    if (await getCurrentVersion(store, m[1]) !== null) continue;
    const model = decodeModel(await Deno.readFile(new URL(entry.name, dir)));
    const metrics = parseJson(model.meta.extra.metrics);
    const curve = await readCurve(new URL(`${m[1]}.curve.json`, dir));
    await publishModel(store, m[1], model, {
      training: parseJson(model.meta.extra.training),
      metrics: curve === undefined ? metrics : { ...metrics, curve },
    });
    published.push(m[1]);
  }
  return published;
}

/** A fixture's loss curves, or undefined when it has none (or they do not parse). */
async function readCurve(url: URL): Promise<Record<string, unknown> | undefined> {
  try {
    return parseJson(await Deno.readTextFile(url));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

function parseJson(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const seeded = await seedFixtureModels(kv);
if (seeded.length > 0) console.error(`published fixture models: ${seeded.join(", ")}`);

/** The model cache, watching `current` keys. */
export const models = new ModelCache(kv, {
  onChange: (name, version) => console.error(`model ${name}: current version is now ${version}`),
});

/** Open sessions; checkpointed when the process is told to stop. */
export const sessions = new SessionManager({
  kv,
  models,
  clock: () => new Date(),
  limits: config.limits,
  defaultModel: config.defaultModel,
});

/** The app. */
export const app = createApp({ kv, models, sessions, access: config.access });
if (config.access.keys.length > 0) {
  console.error(
    `access control: ${config.access.keys.length} API key(s) (${
      config.access.keys.map((k) => k.name).join(", ")
    })`,
  );
}

/**
 * More work for {@linkcode shutdown}: each hook checkpoints the open sessions of another isolate
 * (`WORKERS`, see start.ts) and says how many it wrote and how many failed.
 */
export const shutdownHooks: (() => Promise<{ written: number; failed: number }>)[] = [];

/**
 * Checkpoints every open session (what was applied becomes durable), here and in the isolates
 * of {@linkcode shutdownHooks}, then ends the process.
 *
 * @param signal the signal received, for the log line
 */
export async function shutdown(signal: string): Promise<never> {
  let written = 0, failed = 0;
  const all = await Promise.all([sessions.checkpointAll(), ...shutdownHooks.map((h) => h())]);
  for (const counts of all) {
    written += counts.written;
    failed += counts.failed;
  }
  console.error(
    `${signal}: checkpointed ${written} open session(s)${failed > 0 ? `, ${failed} failed` : ""}`,
  );
  models.close();
  Deno.exit(0);
}

// A worker isolate (start.ts with WORKERS > 1) is told to stop by the main one.
if (!("WorkerGlobalScope" in globalThis)) {
  try {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, () => shutdown(signal));
    }
  } catch {
    // Some hosts (Deno Deploy) have no signals: their isolates are stopped without one.
  }
}

export default { fetch: app.fetch } satisfies Deno.ServeDefaultExport;
