// L layers, H hidden, G gates, I input to layer 0, V vocabulary, O outputs.
// The model file: safetensors whose tensor names are the state_dict of a PyTorch module with
// `embed` (nn.Embedding, absent for dense input), `rnn` (nn.RNN / nn.GRU / nn.LSTM) and `head`
// (nn.Linear), and whose __metadata__ carries what PyTorch does not know.
import {
  type CellKind,
  gatesOf,
  Network,
  type NetworkConfig,
  paramLayout,
  type ParamSpec,
} from "../nn/mod.ts";
import { CharVocab } from "../text/char_vocab.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  SafetensorsError,
  type Tensor,
} from "./safetensors.ts";

/** The shape of the problem a model solves (DESIGN.md: the four RNN shapes). */
export type Task = "lm" | "classify" | "generate" | "single";

/** The tasks, in the order the docs list them. */
export const TASKS: readonly Task[] = ["lm", "classify", "generate", "single"];

/** Identifies files written by this project; other values are refused. */
export const MODEL_FORMAT = "edge-rnn/1";

/** What a model file says besides its weights. */
export interface ModelMeta {
  /** What the outputs mean: next tokens (lm, generate) or classes (classify, single). */
  task: Task;
  /** Input tokens by id for embedding networks; null for dense input. */
  vocabulary: string[] | null;
  /** Class names by output index, for classifiers; null otherwise. */
  labels: string[] | null;
  /** Any other metadata strings (training config, metrics, ...), kept as they are. */
  extra: Record<string, string>;
}

/** A network and what it means. */
export interface Model {
  network: Network;
  meta: ModelMeta;
}

/** A model file that cannot be used; the message names the problem. Nothing half-loaded escapes. */
export class ModelFileError extends Error {
  override name = "ModelFileError";
}

const KNOWN_KEYS = ["format", "cell", "nonlinearity", "task", "vocabulary", "labels"];

/** How {@linkcode decodeModel} treats its input. */
export interface DecodeModelOptions {
  /**
   * Whether the parameters get memory of their own. `false` lets them be a view of the input's
   * buffer when the file holds them as float32 in parameter order (as {@linkcode encodeModel}
   * writes them): no copy, for a caller that owns the bytes and will not change them.
   *
   * @default true
   */
  copy?: boolean;
}

/**
 * Serialises a model to safetensors bytes (float32, PyTorch names, metadata).
 *
 * @param model the network and its metadata
 * @returns the file bytes
 * @example
 * ```ts
 * import { encodeModel, decodeModel } from "./model_file.ts";
 * import { Network } from "../nn/mod.ts";
 * const network = Network.create({ cell: "gru", nonlinearity: "tanh", input: "embedding",
 *   vocabSize: 3, inputSize: 2, hiddenSize: 4, layers: 1, outputSize: 3 }, 1);
 * const bytes = encodeModel({ network, meta: { task: "lm", vocabulary: ["<unk>", "a", "b"],
 *   labels: null, extra: {} } });
 * decodeModel(bytes).network.config.cell; // "gru"
 * ```
 */
export function encodeModel(model: Model): Uint8Array {
  const { network, meta } = model;
  checkMeta(network.config, meta);
  const tensors = new Map<string, Tensor>();
  const flat = network.params;
  for (const spec of paramLayout(network.config)) {
    const view = flat.subarray(spec.offset, spec.offset + spec.size);
    tensors.set(spec.name, {
      shape: spec.shape,
      data: view instanceof Float32Array ? view : Float32Array.from(view),
    });
  }
  const extra = Object.fromEntries(
    Object.entries(meta.extra).filter(([k]) => !KNOWN_KEYS.includes(k)),
  );
  const metadata: Record<string, string> = {
    ...extra,
    format: MODEL_FORMAT,
    cell: network.config.cell,
    nonlinearity: network.config.nonlinearity,
    task: meta.task,
  };
  if (meta.vocabulary !== null) metadata.vocabulary = JSON.stringify(meta.vocabulary);
  if (meta.labels !== null) metadata.labels = JSON.stringify(meta.labels);
  return encodeSafetensors(tensors, metadata);
}

/**
 * Reads a model from safetensors bytes, checking every shape against every other and against
 * the metadata. The cell may be omitted from the metadata of a PyTorch-made file: it is then
 * inferred from the gate count (1 rnn, 3 gru, 4 lstm).
 *
 * @param bytes the file
 * @param options whether the parameters may share memory with `bytes`
 * @returns the model, parameters in one Float32Array: a fresh one, or with `copy: false`
 *   possibly a view of `bytes`
 * @throws {ModelFileError} naming the problem (a malformed file, a missing or unexpected
 *   tensor, shapes that disagree, a non-finite value, metadata that does not fit)
 */
export function decodeModel(bytes: Uint8Array, options: DecodeModelOptions = {}): Model {
  let decoded;
  try {
    decoded = decodeSafetensors(bytes, { copy: options.copy ?? true });
  } catch (err) {
    if (err instanceof SafetensorsError) {
      throw new ModelFileError(`not a valid safetensors file: ${err.message}`);
    }
    throw err;
  }
  const { tensors, metadata } = decoded;
  // "pt" is what PyTorch-side tools (save_file, save_pretrained) write; both are fine.
  if (
    metadata.format !== undefined && metadata.format !== MODEL_FORMAT && metadata.format !== "pt"
  ) {
    throw new ModelFileError(
      `metadata format is ${JSON.stringify(metadata.format)}; this runtime reads ${MODEL_FORMAT}`,
    );
  }
  const shapeOf = (name: string): number[] => {
    const t = tensors.get(name);
    if (t === undefined) throw new ModelFileError(`missing tensor ${name}`);
    return t.shape;
  };
  const matrix = (name: string): [number, number] => {
    const s = shapeOf(name);
    if (s.length !== 2) throw new ModelFileError(`${name} has shape [${s}]; a matrix was expected`);
    return [s[0], s[1]];
  };

  const [ghRows, hidden] = matrix("rnn.weight_hh_l0");
  if (hidden === 0 || ghRows % hidden !== 0) {
    throw new ModelFileError(
      `rnn.weight_hh_l0 has shape [${ghRows},${hidden}]: rows must be G·H for H=${hidden}`,
    );
  }
  const gates = ghRows / hidden;
  const inferred: CellKind | undefined =
    ({ 1: "rnn", 3: "gru", 4: "lstm" } as Record<number, CellKind>)[gates];
  if (metadata.cell === undefined && inferred === undefined) {
    throw new ModelFileError(
      `rnn.weight_hh_l0 has ${ghRows} rows = ${gates}·H for H=${hidden}; no cell has ${gates} gates (rnn 1, gru 3, lstm 4)`,
    );
  }
  const cell = (metadata.cell ?? inferred) as CellKind;
  if (!["rnn", "gru", "lstm"].includes(cell)) {
    throw new ModelFileError(
      `metadata cell is ${JSON.stringify(metadata.cell)}; expected rnn, gru or lstm`,
    );
  }
  if (gatesOf(cell) !== gates) {
    throw new ModelFileError(
      `rnn.weight_hh_l0 has ${ghRows} rows = ${gates}·H, but a ${cell} cell has ${
        gatesOf(cell)
      } gates`,
    );
  }
  const nonlinearity = metadata.nonlinearity ?? "tanh";
  if (nonlinearity !== "tanh" && nonlinearity !== "relu") {
    throw new ModelFileError(
      `metadata nonlinearity is ${JSON.stringify(nonlinearity)}; expected tanh or relu`,
    );
  }
  // Layers: one more than the highest layer index any rnn tensor names, so a missing tensor
  // of a middle layer is reported as missing rather than miscounted.
  let layers = 0;
  for (const name of tensors.keys()) {
    const m = /^rnn\.(?:weight|bias)_(?:ih|hh)_l(\d+)$/.exec(name);
    if (m !== null) layers = Math.max(layers, Number(m[1]) + 1);
  }
  if (layers === 0) throw new ModelFileError("missing tensor rnn.weight_ih_l0");
  const embedded = tensors.has("embed.weight");
  if (!embedded && metadata.vocabulary !== undefined) {
    throw new ModelFileError(
      "missing tensor embed.weight (the metadata has a vocabulary, so the model reads tokens)",
    );
  }
  const [vocabSize, embedDim] = embedded ? matrix("embed.weight") : [0, 0];
  const inputSize = embedded ? embedDim : matrix("rnn.weight_ih_l0")[1];
  const [outputSize] = matrix("head.weight");
  const config: NetworkConfig = {
    cell,
    nonlinearity,
    input: embedded ? "embedding" : "dense",
    vocabSize,
    inputSize,
    hiddenSize: hidden,
    layers,
    outputSize,
  };
  let layout;
  try {
    layout = paramLayout(config);
  } catch (err) {
    throw new ModelFileError(`the tensors describe an unusable network: ${(err as Error).message}`);
  }
  const expected = new Set(layout.map((s) => s.name));
  for (const name of tensors.keys()) {
    if (!expected.has(name)) {
      throw new ModelFileError(
        `unexpected tensor ${name} (a ${layers}-layer ${cell} with ${
          embedded ? "an embedding" : "dense input"
        } has only ${[...expected].join(", ")})`,
      );
    }
  }
  const parts: Float32Array[] = [];
  for (const spec of layout) {
    const t = tensors.get(spec.name);
    if (t === undefined) {
      const layer = /_l(\d+)$/.exec(spec.name)?.[1];
      const present = layer === undefined
        ? []
        : [...tensors.keys()].filter((n) => n.startsWith("rnn.") && n.endsWith(`_l${layer}`));
      throw new ModelFileError(
        `missing tensor ${spec.name}${
          present.length > 0 ? ` (layer ${layer} has only ${present.join(", ")})` : ""
        }`,
      );
    }
    if (t.shape.length !== spec.shape.length || t.shape.some((d, k) => d !== spec.shape[k])) {
      throw new ModelFileError(
        `${spec.name} has shape [${t.shape}]; the other tensors imply [${spec.shape}]`,
      );
    }
    // includes() scans natively, several times faster than a loop here; the index is looked
    // up only for the message.
    if (t.data.includes(NaN) || t.data.includes(Infinity) || t.data.includes(-Infinity)) {
      const k = t.data.findIndex((x) => !Number.isFinite(x));
      throw new ModelFileError(`${spec.name} holds a non-finite value at ${k}`);
    }
    parts.push(t.data);
  }
  const flat = adjacentView(parts, layout) ?? joined(parts, layout);

  const task = (metadata.task ?? (embedded ? "lm" : "classify")) as Task;
  if (!TASKS.includes(task)) {
    throw new ModelFileError(
      `metadata task is ${JSON.stringify(metadata.task)}; expected one of ${TASKS.join(", ")}`,
    );
  }
  const vocabulary = parseList(metadata, "vocabulary");
  const labels = parseList(metadata, "labels");
  const extra: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadata)) if (!KNOWN_KEYS.includes(k)) extra[k] = v;
  const network = new Network(config, flat);
  const meta: ModelMeta = { task, vocabulary, labels, extra };
  checkMeta(network.config, meta);
  return { network, meta };
}

/** The parameters as one view, when the tensors are views lying in layout order in one buffer. */
function adjacentView(parts: Float32Array[], layout: ParamSpec[]): Float32Array | null {
  const first = parts[0];
  const adjacent = parts.every((p, s) =>
    p.buffer === first.buffer && p.byteOffset === first.byteOffset + layout[s].offset * 4
  );
  const total = layout.at(-1)!.offset + layout.at(-1)!.size;
  return adjacent ? new Float32Array(first.buffer, first.byteOffset, total) : null;
}

/** The parameters copied into one fresh buffer, each tensor at its layout offset. */
function joined(parts: Float32Array[], layout: ParamSpec[]): Float32Array {
  const flat = new Float32Array(layout.at(-1)!.offset + layout.at(-1)!.size);
  parts.forEach((p, s) => flat.set(p, layout[s].offset));
  return flat;
}

function parseList(metadata: Record<string, string>, key: string): string[] | null {
  const raw = metadata[key];
  if (raw === undefined) return null;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new ModelFileError(`metadata ${key} is not valid JSON`);
  }
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw new ModelFileError(`metadata ${key} must be a JSON array of strings`);
  }
  return value;
}

/** Throws when the metadata does not fit the shapes. */
function checkMeta(config: NetworkConfig, meta: ModelMeta): void {
  if (!TASKS.includes(meta.task)) {
    throw new ModelFileError(`task ${JSON.stringify(meta.task)} is not one of ${TASKS.join(", ")}`);
  }
  if (config.input === "embedding") {
    if (meta.vocabulary === null) {
      throw new ModelFileError("an embedding model needs a vocabulary in its metadata");
    }
    if (meta.vocabulary.length !== config.vocabSize) {
      throw new ModelFileError(
        `vocabulary has ${meta.vocabulary.length} tokens; embed.weight has ${config.vocabSize} rows`,
      );
    }
    try {
      new CharVocab(meta.vocabulary);
    } catch (err) {
      throw new ModelFileError(`bad vocabulary: ${(err as Error).message}`);
    }
  } else if (meta.vocabulary !== null) {
    throw new ModelFileError("a dense-input model has no vocabulary");
  }
  if (meta.task === "lm" || meta.task === "generate") {
    if (meta.vocabulary === null || meta.vocabulary.length !== config.outputSize) {
      throw new ModelFileError(
        `a ${meta.task} model predicts tokens: head.weight has ${config.outputSize} rows, the vocabulary ${
          meta.vocabulary?.length ?? 0
        } tokens`,
      );
    }
  }
  if (meta.labels !== null && meta.labels.length !== config.outputSize) {
    throw new ModelFileError(
      `labels has ${meta.labels.length} names; head.weight has ${config.outputSize} rows`,
    );
  }
  if ((meta.task === "classify" || meta.task === "single") && meta.labels === null) {
    throw new ModelFileError(`a ${meta.task} model needs class labels in its metadata`);
  }
}

/**
 * Reads a model file from disk.
 *
 * @param path the file
 * @returns the model
 * @throws {ModelFileError} if it cannot be used
 */
export async function readModelFile(path: string): Promise<Model> {
  return decodeModel(await Deno.readFile(path));
}
