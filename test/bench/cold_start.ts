// Cold start: from a model published in KV to the first token in a new process. Publishes two
// GRU language models into a temporary KV file, one of about 1 MB (H = 192) and one of 1.7 MB
// (H = 256), then starts fresh Deno processes, alternating between the models, that open the
// store, load and verify the model, build its stepper and step one token; reports the median of
// each phase. Run: deno task bench:cold [runs per model, default 11]
import { Network } from "../../src/nn/mod.ts";
import { type ModelManifest, publishModel } from "../../src/store/registry.ts";
import { openKv } from "../../src/store/open_kv.ts";

const RUNS = Number(Deno.args[0] ?? 11);
const SIZES = [192, 256]; // H = I for each model
const PHASES: [string, string][] = [
  ["open_kv_ms", "open KV"],
  ["current_ms", "read `current`"],
  ["manifest_ms", "read manifest and index"],
  ["wasm_ms", "compile step.wasm (while the row above reads)"],
  ["chunks_ms", "read chunks into one buffer"],
  ["checksum_ms", "SHA-256 check (off the main thread, alongside the next row)"],
  ["decode_ms", "parse and check the file, build the Network"],
  ["stepper_ms", "build SimdStepper (copy, pack, fold embedding)"],
  ["load_rest_ms", "rest of the load"],
  ["first_step_ms", "first step"],
];

const dir = await Deno.makeTempDir();
try {
  const path = `${dir}/kv.sqlite3`;
  const kv = await openKv(path);
  const vocabulary = [
    "<unk>",
    ...Array.from({ length: 82 }, (_, k) => String.fromCharCode(33 + k)),
  ];
  const manifests: ModelManifest[] = [];
  for (const h of SIZES) {
    const network = Network.create({
      cell: "gru",
      nonlinearity: "tanh",
      input: "embedding",
      vocabSize: vocabulary.length,
      inputSize: h,
      hiddenSize: h,
      layers: 1,
      outputSize: vocabulary.length,
    }, 1);
    manifests.push(
      await publishModel(kv, `cold-${h}`, {
        network,
        meta: { task: "lm", vocabulary, labels: null, extra: {} },
      }),
    );
  }
  kv.close();

  const child = new URL("./_cold_child.ts", import.meta.url).pathname;
  const results: Record<string, number>[][] = SIZES.map(() => []);
  for (let k = 0; k < RUNS; k++) {
    for (let m = 0; m < SIZES.length; m++) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-read",
          "--allow-write",
          "--allow-env",
          child,
          path,
          `cold-${SIZES[m]}`,
        ],
        stdout: "piped",
        stderr: "inherit",
      }).output();
      if (!out.success) throw new Error("the cold-start process failed");
      results[m].push(JSON.parse(new TextDecoder().decode(out.stdout)));
    }
  }

  const sorted = (m: number, key: string) => results[m].map((r) => r[key]).sort((a, b) => a - b);
  const median = (m: number, key: string) => sorted(m, key)[Math.floor(RUNS / 2)];
  console.log(`${RUNS} fresh processes per model, alternating; medians in ms\n`);
  const heads = manifests.map((mf) =>
    `GRU H=${mf.hiddenSize}, ${(mf.byteLength / 1e6).toFixed(2)} MB, ${mf.chunkCount} chunks`
  );
  console.log(`| phase | ${heads.join(" | ")} |`);
  console.log(`|---|${heads.map(() => "---:").join("|")}|`);
  for (const [key, label] of PHASES) {
    console.log(`| ${label} | ${SIZES.map((_, m) => median(m, key).toFixed(1)).join(" | ")} |`);
  }
  const spread = (m: number, key: string) => {
    const v = sorted(m, key);
    return `**${median(m, key).toFixed(1)}** (${v[0].toFixed(0)}–${v.at(-1)!.toFixed(0)})`;
  };
  console.log(
    `| from opening KV to the first token (min–max) | ${
      SIZES.map((_, m) => spread(m, "from_kv_ms")).join(" | ")
    } |`,
  );
  console.log(
    `| process start to the first token (includes Deno's start and module loading) | ${
      SIZES.map((_, m) => median(m, "total_ms").toFixed(1)).join(" | ")
    } |`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
