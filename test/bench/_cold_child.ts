// One cold start, measured from this process's time origin: open the KV file, read the model's
// current version, load that version (manifest, chunks, checksum, decode) and build its stepper
// as a server does (ModelCache), apply one token. Prints a JSON line of milliseconds, one field
// per phase. Used by cold_start.ts.
import { openKv } from "../../src/store/open_kv.ts";
import { ModelCache } from "../../src/store/model_cache.ts";

const [path, name] = Deno.args;
const t0 = performance.now();
const kv = await openKv(path);
const opened = performance.now();
const models = new ModelCache(kv);
// load() reads `current` the same way; asking first only times that read on its own.
await models.currentVersion(name);
const resolved = performance.now();
const loaded = await models.load(name);
const ready = performance.now();
const state = loaded.stepper.newState();
const probs = loaded.stepper.step(state, 1);
const first = performance.now();
if (!Number.isFinite(probs[0])) throw new Error("the first step produced a non-finite output");
const t = loaded.timings;
// Parts that run at the same time count once, the longer one: step.wasm is compiled while the
// manifest is read, and the checksum computed off the main thread while the file is decoded.
const parts = Math.max(t.manifest, t.wasm) + t.chunks + Math.max(t.checksum, t.decode) +
  t.stepper;
console.log(JSON.stringify({
  process_to_main_ms: t0,
  open_kv_ms: opened - t0,
  current_ms: resolved - opened,
  manifest_ms: t.manifest,
  chunks_ms: t.chunks,
  checksum_ms: t.checksum,
  decode_ms: t.decode,
  wasm_ms: t.wasm,
  stepper_ms: t.stepper,
  // Whatever the load spent outside the timed parts (the vocabulary, awaits).
  load_rest_ms: ready - resolved - parts,
  first_step_ms: first - ready,
  from_kv_ms: first - t0,
  total_ms: first,
  bytes: loaded.manifest.byteLength,
}));
models.close();
kv.close();
