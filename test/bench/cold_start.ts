// Cold start: from a model published in KV to the first token in a new process. Publishes a
// GRU with H = 256 (about 1.1 MB of weights) into a temporary KV file, then starts a fresh Deno
// process several times that opens the store, loads and verifies the model and steps one token,
// and reports the median of each phase. Run: deno task bench:cold
import { Network } from "../../src/nn/mod.ts";
import { publishModel } from "../../src/store/registry.ts";
import { openKv } from "../../src/store/open_kv.ts";

const RUNS = Number(Deno.args[0] ?? 7);
const dir = await Deno.makeTempDir();
try {
  const path = `${dir}/kv.sqlite3`;
  const kv = await openKv(path);
  const vocabulary = [
    "<unk>",
    ...Array.from({ length: 82 }, (_, k) => String.fromCharCode(33 + k)),
  ];
  const network = Network.create({
    cell: "gru",
    nonlinearity: "tanh",
    input: "embedding",
    vocabSize: 83,
    inputSize: 256,
    hiddenSize: 256,
    layers: 1,
    outputSize: 83,
  }, 1);
  const manifest = await publishModel(kv, "cold", {
    network,
    meta: { task: "lm", vocabulary, labels: null, extra: {} },
  });
  kv.close();
  const child = new URL("./_cold_child.ts", import.meta.url).pathname;
  const results: Record<string, number>[] = [];
  for (let k = 0; k < RUNS; k++) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--allow-write", "--allow-env", child, path, "cold"],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!out.success) throw new Error("the cold-start process failed");
    results.push(JSON.parse(new TextDecoder().decode(out.stdout)));
  }
  const median = (key: string) => {
    const v = results.map((r) => r[key]).sort((a, b) => a - b);
    return v[Math.floor(v.length / 2)];
  };
  console.log(
    `model: GRU H=256, ${
      (manifest.byteLength / 1024).toFixed(0)
    } KiB in ${manifest.chunkCount} chunks; ${RUNS} fresh processes (medians)`,
  );
  console.log("| phase | ms |\n|---|---:|");
  for (const key of ["open_kv_ms", "load_model_ms", "first_step_ms"]) {
    console.log(`| ${key.replace(/_ms$/, "").replaceAll("_", " ")} | ${median(key).toFixed(1)} |`);
  }
  const fromKv = results.map((r) => r.open_kv_ms + r.load_model_ms + r.first_step_ms).sort((a, b) =>
    a - b
  );
  console.log(
    `| from opening KV to the first token | ${fromKv[Math.floor(RUNS / 2)].toFixed(1)} |`,
  );
  console.log(
    `| process start to the first token (includes Deno's start and module loading) | ${
      median("total_ms").toFixed(1)
    } |`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
