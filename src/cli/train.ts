// `deno task train`: train a recurrent network with truncated BPTT and publish it to Deno KV.
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { encodeModel } from "../format/mod.ts";
import { openKv, publishModel, validateModelName } from "../store/mod.ts";
import { loadCheckpoint } from "../train/checkpoint.ts";
import { ProgressReporter } from "../train/progress.ts";
import { corpusName } from "../text/corpus.ts";
import { RUN_FILES, runTraining, TRAIN_DEFAULTS, type TrainConfig } from "../train/run.ts";

const D = TRAIN_DEFAULTS;

/** The default budget when neither --steps nor --time is given. */
export const DEFAULT_TIME = "5m";

const HELP = `Usage: deno task train [options]

Trains a recurrent network (by default a character language model, with truncated
backpropagation through time), shows progress,
evaluates on the held-out end of the text, prints a sample and publishes the model to Deno KV
as a new version. With no options: a GRU on Moby-Dick for ${DEFAULT_TIME}, published as "moby".

Data and shape
  --task lm|classify|generate|single                                    (default ${D.task})
                         lm: many to many, the next character after each character (TBPTT);
                         classify: many to one, a name's gender from its characters;
                         generate: one to many, a name from a class (<female> or <male>);
                         single: one to one, a gender from one character (the name's last).
                         The last three train on --corpus names.
  --judge FILE           generate: a classify model that judges the generated names
  --corpus NAME|FILE     moby-dick, names, or a UTF-8 text file        (default ${D.corpus})
  --val-fraction F       share of the text held out at its end          (default ${D.valFraction})
Model
  --cell rnn|gru|lstm                                                   (default ${D.cell})
  --nonlinearity tanh|relu   the Elman cell's f (rnn only)              (default ${D.nonlinearity})
  --layers N                                                            (default ${D.layers})
  --hidden N             hidden size H                                  (default ${D.hidden})
  --embed N              embedding width                                (default ${D.embed})
  --init FILE            start from a safetensors model (fine-tuning; its vocabulary and shapes win)
Truncated BPTT
  --k1 N                 new characters per update                      (default ${D.k1})
  --k2 N                 steps gradients flow back, ≥ k1                (default k1)
  --batch N              parallel streams B                             (default ${D.batch})
Optimisation
  --optimizer sgd|adagrad|adam                                          (default ${D.optimizer})
  --momentum F           SGD momentum                                   (default ${D.momentum})
  --lr F                 learning rate                                  (default ${D.lr})
  --schedule constant|cosine|linear                                     (default ${D.schedule})
  --min-lr F             final rate of cosine / linear                  (default ${D.minLr})
  --warmup N             updates of linear warmup                       (default ${D.warmup})
  --clip F|none          clip the global gradient norm                  (default ${D.clip})
  --seed N               same seed and flags, same weights              (default ${D.seed})
Budget and evaluation
  --steps N              stop after N updates
  --time DURATION        stop after this much training, e.g. 90s, 10m, 1h (default ${DEFAULT_TIME}
                         when --steps is not given either)
  --eval-every N         evaluate every N updates                       (default ${D.evalEvery})
  --eval-chars N         held-out characters per periodic evaluation    (default ${D.evalChars})
                         (the final evaluation uses the whole held-out split)
  --checkpoint-every N   save the full training state every N updates   (default ${D.checkpointEvery})
  --resume               continue the run in --run-dir from its checkpoint (budget flags may be given anew)
Output
  --name NAME            model name in KV                (default: moby, names, or the file's name)
  --run-dir DIR          checkpoint, metrics.jsonl, loss.svg   (default ./data/runs/NAME)
  --export FILE          also write the model as safetensors
  --kv PATH|URL          KV store: a SQLite file, :memory:, or a KV Connect URL such as a Deno
                         Deploy database (needs DENO_KV_ACCESS_TOKEN)  (default ./data/kv.sqlite3)
  --keep K               versions kept in KV                            (default 3)
  --no-publish           do not publish to KV
  --sample N             characters of the sample printed at the end    (default ${D.sampleChars})
  --temperature F        temperature of that sample                     (default ${D.temperature})
  --help

Ctrl-C saves a checkpoint and stops; run again with --resume to continue exactly where it stopped.`;

/**
 * Parses a duration such as `90s`, `10m`, `1.5h` or a plain number of seconds.
 *
 * @param text the duration
 * @returns seconds
 * @example
 * ```ts
 * import { parseDuration } from "./train.ts";
 * parseDuration("10m"); // 600
 * ```
 */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(text.trim());
  if (m === null) {
    throw new RangeError(`--time must look like 90s, 10m or 1h, not ${JSON.stringify(text)}`);
  }
  return Number(m[1]) * (m[2] === "h" ? 3600 : m[2] === "m" ? 60 : 1);
}

function num(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const v = Number(text);
  if (text.trim() === "" || !Number.isFinite(v)) {
    throw new RangeError(`--${flag} must be a number, not ${JSON.stringify(text)}`);
  }
  return v;
}

/** The flags --resume takes from the command line: budget, outputs and the judge. */
const RESUME_FLAGS = new Set([
  "judge",
  "steps",
  "time",
  "resume",
  "name",
  "run-dir",
  "kv",
  "keep",
  "export",
  "no-publish",
]);

async function main(rawArgs: string[]): Promise<number> {
  // parseArgs reads "--lr -1" as two flags; "--lr=-1" makes a negative value a value.
  const args: string[] = [];
  for (const a of rawArgs) {
    const prev = args.at(-1);
    if (
      /^-\d|^-\.\d/.test(a) && prev !== undefined && /^--[a-z]/.test(prev) && !prev.includes("=")
    ) {
      args[args.length - 1] = `${prev}=${a}`;
    } else {
      args.push(a);
    }
  }
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      corpus: { type: "string" },
      task: { type: "string" },
      judge: { type: "string" },
      "val-fraction": { type: "string" },
      cell: { type: "string" },
      nonlinearity: { type: "string" },
      layers: { type: "string" },
      hidden: { type: "string" },
      embed: { type: "string" },
      init: { type: "string" },
      k1: { type: "string" },
      k2: { type: "string" },
      batch: { type: "string" },
      optimizer: { type: "string" },
      momentum: { type: "string" },
      lr: { type: "string" },
      schedule: { type: "string" },
      "min-lr": { type: "string" },
      warmup: { type: "string" },
      clip: { type: "string" },
      seed: { type: "string" },
      steps: { type: "string" },
      time: { type: "string" },
      "eval-every": { type: "string" },
      "eval-chars": { type: "string" },
      "checkpoint-every": { type: "string" },
      resume: { type: "boolean", default: false },
      name: { type: "string" },
      "run-dir": { type: "string" },
      export: { type: "string" },
      kv: { type: "string" },
      keep: { type: "string" },
      "no-publish": { type: "boolean", default: false },
      sample: { type: "string" },
      temperature: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const k1 = num("k1", values.k1, D.k1);
  const steps = values.steps === undefined ? null : num("steps", values.steps, 0);
  let timeSeconds = values.time === undefined ? null : parseDuration(values.time);
  if (steps === null && timeSeconds === null && !values.resume) {
    timeSeconds = parseDuration(DEFAULT_TIME);
  }
  const lr = num("lr", values.lr, D.lr);
  const config: TrainConfig = {
    corpus: values.corpus ?? D.corpus,
    task: (values.task ?? D.task) as TrainConfig["task"],
    judge: values.judge ?? null,
    cell: (values.cell ?? D.cell) as TrainConfig["cell"],
    nonlinearity: (values.nonlinearity ?? D.nonlinearity) as TrainConfig["nonlinearity"],
    layers: num("layers", values.layers, D.layers),
    hidden: num("hidden", values.hidden, D.hidden),
    embed: num("embed", values.embed, D.embed),
    k1,
    k2: num("k2", values.k2, k1),
    batch: num("batch", values.batch, D.batch),
    optimizer: (values.optimizer ?? D.optimizer) as TrainConfig["optimizer"],
    momentum: num("momentum", values.momentum, D.momentum),
    lr,
    minLr: num("min-lr", values["min-lr"], values.lr === undefined ? D.minLr : lr / 10),
    schedule: (values.schedule ?? D.schedule) as TrainConfig["schedule"],
    warmup: num("warmup", values.warmup, D.warmup),
    clip: values.clip === "none" ? Infinity : num("clip", values.clip, D.clip),
    seed: num("seed", values.seed, D.seed),
    steps,
    timeSeconds,
    evalEvery: num("eval-every", values["eval-every"], D.evalEvery),
    evalChars: num("eval-chars", values["eval-chars"], D.evalChars),
    valFraction: num("val-fraction", values["val-fraction"], D.valFraction),
    checkpointEvery: num("checkpoint-every", values["checkpoint-every"], D.checkpointEvery),
    init: values.init ?? null,
    sampleChars: num("sample", values.sample, D.sampleChars),
    temperature: num("temperature", values.temperature, D.temperature),
  };
  const keep = num("keep", values.keep, 3);
  // Settings that are used only after training are checked before it.
  if (!Number.isInteger(keep) || keep < 1 || keep > 1000) {
    throw new RangeError(`--keep must be an integer in 1..1000, not ${values.keep}`);
  }
  if (values.export !== undefined) {
    const dir = dirname(values.export);
    const info = await Deno.stat(dir).catch(() => null);
    if (info === null || !info.isDirectory) {
      throw new Error(`--export ${values.export}: the directory ${dir} does not exist`);
    }
  }
  // Default names: moby, names (lm), names-classify, names-generate, names-single, or the file's.
  const defaultName = config.corpus === "names" && config.task !== "lm"
    ? `names-${config.task}`
    : corpusName(config.corpus);
  const name = validateModelName(values.name ?? defaultName);
  const runDir = values["run-dir"] ?? `./data/runs/${name}`;
  if (values.resume) {
    // A missing or corrupt checkpoint is the error to report, before any warning.
    await loadCheckpoint(`${runDir}/${RUN_FILES.checkpoint}`);
    const ignored = Object.keys(values).filter((k) =>
      !RESUME_FLAGS.has(k) && k !== "help" && values[k as keyof typeof values] !== undefined &&
      values[k as keyof typeof values] !== false
    );
    if (ignored.length > 0) {
      console.error(
        `train: --resume keeps the run's saved settings; ignoring --${ignored.join(", --")}`,
      );
    }
  }
  const publish = !values["no-publish"];
  // Open the store first: a bad --kv should fail before minutes of training, not after.
  const kv = publish ? await openKv(values.kv) : null;

  let stop = false;
  const onSignal = () => {
    if (stop) Deno.exit(130); // a second Ctrl-C: leave at once (the last checkpoint stands)
    stop = true;
  };
  Deno.addSignalListener("SIGINT", onSignal);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", onSignal);
  const progress = new ProgressReporter();
  try {
    const result = await runTraining(config, {
      runDir,
      resume: values.resume,
      progress,
      log: (m) => progress.log(m),
      shouldStop: () => stop,
    });
    if (result.interrupted) return 130;
    const m = result.metrics;
    console.log(result.sample);
    const lm = result.config.task === "lm" || result.config.task === "generate";
    const accuracy = m.val_accuracy === undefined
      ? ""
      : `, accuracy ${(100 * m.val_accuracy).toFixed(1)} %`;
    progress.log(
      `done: ${m.steps} updates, ${m.tokens} ${lm ? "characters" : "names"} (${
        m.epochs.toFixed(2)
      } epochs) ` +
        `in ${m.elapsed_s.toFixed(0)} s, ${m.tokens_per_s.toFixed(0)} ${
          lm ? "chars" : "names"
        }/s; ` +
        `validation loss ${m.val_loss.toFixed(4)} nats/${
          lm ? "char" : "name"
        }${accuracy} on ${m.val_tokens} held-out ${lm ? "characters" : "names"}`,
    );
    progress.log(
      `metrics: ${runDir}/${RUN_FILES.metrics}, loss curve: ${runDir}/${RUN_FILES.plot}`,
    );
    if (values.export !== undefined) {
      await Deno.writeFile(values.export, encodeModel(result.model));
      progress.log(`exported ${values.export}`);
    }
    if (kv !== null) {
      const manifest = await publishModel(kv, name, result.model, {
        keep,
        training: result.config as unknown as Record<string, unknown>,
        metrics: m as unknown as Record<string, unknown>,
      });
      progress.log(
        `published ${name} version ${manifest.version} (${
          (manifest.byteLength / 1024).toFixed(0)
        } KiB) to ${values.kv ?? "./data/kv.sqlite3"}`,
      );
    }
    return 0;
  } finally {
    kv?.close();
    Deno.removeSignalListener("SIGINT", onSignal);
    if (Deno.build.os !== "windows") Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

if (import.meta.main) {
  try {
    Deno.exitCode = await main(Deno.args);
  } catch (err) {
    console.error(`train: ${(err as Error).message ?? String(err)}`);
    Deno.exitCode = 1;
  }
}
