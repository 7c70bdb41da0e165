// One cold start, measured from this process's time origin: open the KV file, load the current
// version of a model (chunks read in parallel, checksum verified), build its stepper, apply one
// token. Prints a JSON line of milliseconds. Used by cold_start.ts.
import { openKv } from "../../src/store/open_kv.ts";
import { ModelCache } from "../../src/store/model_cache.ts";

const [path, name] = Deno.args;
const t0 = performance.now();
const kv = await openKv(path);
const opened = performance.now();
const models = new ModelCache(kv);
const loaded = await models.load(name);
const ready = performance.now();
const state = loaded.stepper.newState();
const probs = loaded.stepper.step(state, 1);
const first = performance.now();
if (!Number.isFinite(probs[0])) throw new Error("the first step produced a non-finite output");
console.log(JSON.stringify({
  process_to_main_ms: t0,
  open_kv_ms: opened - t0,
  load_model_ms: ready - opened,
  first_step_ms: first - ready,
  total_ms: first,
  bytes: loaded.manifest.byteLength,
}));
models.close();
kv.close();
