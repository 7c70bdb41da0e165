// O outputs, L layers, H hidden. `deno task predict`: run a model file over a text (or vectors)
// and print one JSON line per step, so any model, ours or PyTorch's, can be checked from a shell.
import { parseArgs } from "node:util";
import { type Model, ModelFileError, readModelFile } from "../format/mod.ts";
import { Stepper } from "../nn/mod.ts";
import { CharVocab } from "../text/mod.ts";

const HELP = `Usage: deno task predict --model FILE [--text STRING | --vectors FILE] [options]

Runs a safetensors model (ours, or PyTorch's with the embed/rnn/head layout) one step at a
time from a zero state and prints one JSON line per step:
  {"step", "token", "id", "probs": [all O probabilities], "top": [{"id", "name", "p"}]}
plus "hidden" (and "cell" for LSTM): the state of every layer after the step, with --hidden.

Options:
  --model FILE     the model file (required)
  --text STRING    the input text, one step per character; read from stdin when absent
  --vectors FILE   for dense-input models: a JSON array of input vectors ("-" for stdin)
  --top-k N        how many of the most likely outputs to list (default 5)
  --hidden         also print the hidden state of every layer
  --help           show this text`;

/** What {@linkcode predictSteps} prints for one step. */
export interface PredictLine {
  step: number;
  token?: string;
  id?: number;
  probs: number[];
  top: { id: number; name: string; p: number }[];
  hidden?: number[][];
  cell?: number[][];
}

/**
 * Runs a model over inputs from a zero state, yielding one record per step.
 *
 * @param model the model
 * @param inputs token ids (embedding models) or vectors (dense models)
 * @param topK how many outputs to list in `top`
 * @param withHidden include the state of every layer
 * @returns one record per step
 * @example
 * ```ts
 * import { readModelFile } from "../format/mod.ts";
 * import { predictSteps } from "./predict.ts";
 * const model = await readModelFile("fixtures/golden/gru_l1.safetensors");
 * for (const line of predictSteps(model, [2, 3], 3, false)) console.log(line.top[0]);
 * ```
 */
export function* predictSteps(
  model: Model,
  inputs: Iterable<number | Float32Array>,
  topK: number,
  withHidden: boolean,
): Generator<PredictLine> {
  const { network, meta } = model;
  const { layers, hiddenSize: h, cell } = network.config;
  const names = meta.labels ?? meta.vocabulary ?? [];
  const stepper = new Stepper(network);
  const state = stepper.newState();
  let step = 0;
  for (const input of inputs) {
    const probs = Array.from(stepper.step(state, input));
    const order = probs.map((_, k) => k).sort((a, b) => probs[b] - probs[a] || a - b);
    const line: PredictLine = typeof input === "number"
      ? { step, token: meta.vocabulary?.[input], id: input, probs, top: [] }
      : { step, probs, top: [] };
    line.top = order.slice(0, topK).map((id) => ({
      id,
      name: names[id] ?? String(id),
      p: probs[id],
    }));
    if (withHidden) {
      line.hidden = [];
      for (let l = 0; l < layers; l++) {
        line.hidden.push(Array.from(state.subarray(l * h, (l + 1) * h)));
      }
      if (cell === "lstm") {
        line.cell = [];
        const base = layers * h;
        for (let l = 0; l < layers; l++) {
          line.cell.push(Array.from(state.subarray(base + l * h, base + (l + 1) * h)));
        }
      }
    }
    yield line;
    step++;
  }
}

function parseVectors(text: string, size: number): Float32Array[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error("--vectors must be a JSON array of number arrays");
  }
  if (!Array.isArray(value)) throw new Error("--vectors must be a JSON array of number arrays");
  return value.map((v, k) => {
    if (
      !Array.isArray(v) || v.length !== size ||
      !v.every((x) => typeof x === "number" && Number.isFinite(x))
    ) {
      throw new Error(`vector ${k} must be an array of ${size} finite numbers`);
    }
    return Float32Array.from(v);
  });
}

async function readStdin(): Promise<string> {
  return await new Response(Deno.stdin.readable).text();
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string" },
      text: { type: "string" },
      vectors: { type: "string" },
      "top-k": { type: "string", default: "5" },
      hidden: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.model === undefined) throw new Error("--model FILE is required (see --help)");
  const topK = Number(values["top-k"]);
  if (!Number.isInteger(topK) || topK < 0) {
    throw new Error(`--top-k must be a whole number, not ${values["top-k"]}`);
  }
  const model = await readModelFile(values.model);
  let inputs: Iterable<number | Float32Array>;
  if (model.network.config.input === "embedding") {
    if (values.vectors !== undefined) {
      throw new Error("this model reads tokens: use --text, not --vectors");
    }
    const text = values.text ?? await readStdin();
    inputs = new CharVocab(model.meta.vocabulary!).encode(text);
  } else {
    if (values.text !== undefined) {
      throw new Error("this model reads dense vectors: use --vectors FILE");
    }
    const source = values.vectors === undefined || values.vectors === "-"
      ? await readStdin()
      : await Deno.readTextFile(values.vectors);
    inputs = parseVectors(source, model.network.config.inputSize);
  }
  const out = new TextEncoder();
  for (const line of predictSteps(model, inputs, topK, values.hidden)) {
    await Deno.stdout.write(out.encode(JSON.stringify(line) + "\n"));
  }
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exitCode = await main(Deno.args);
  } catch (err) {
    const known = err instanceof ModelFileError || err instanceof RangeError ||
      err instanceof TypeError ||
      err instanceof Deno.errors.NotFound || (err as Error).name === "Error";
    console.error(`predict: ${known ? (err as Error).message : String(err)}`);
    Deno.exitCode = 1;
  }
}
