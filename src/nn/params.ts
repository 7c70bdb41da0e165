// L layers, H hidden, G gates, I input to layer 0, V vocabulary, O outputs.
// All parameters live in one flat buffer (so optimizers, clipping and checkpoints see one
// array); the typed views below name its parts with PyTorch's state_dict names.
import { type FloatArray, type FloatArrayConstructor, Rng } from "../math/mod.ts";
import { gatesOf, type NetworkConfig, validateConfig } from "./config.ts";

/** One tensor's place in the flat parameter buffer. */
export interface ParamSpec {
  /** PyTorch state_dict name, e.g. `rnn.weight_hh_l0`. */
  name: string;
  /** Shape, row-major. */
  shape: number[];
  /** Offset in the flat buffer, in elements. */
  offset: number;
  /** Element count: the product of the shape. */
  size: number;
}

/** The parameters of one recurrent layer, as views into the flat buffer. */
export interface LayerParams {
  wIh: FloatArray; // (G*H, I_l)
  wHh: FloatArray; // (G*H, H)
  bIh: FloatArray; // (G*H)
  bHh: FloatArray; // (G*H)
}

/** Every parameter of a network, as views into one flat buffer. */
export interface NetworkParams {
  /** The embedding table (V, I), or null for dense input. */
  embed: FloatArray | null;
  layers: LayerParams[];
  headW: FloatArray; // (O, H)
  headB: FloatArray; // (O)
}

/**
 * Names, shapes and offsets of every parameter, in PyTorch's state_dict order.
 *
 * @param config the network (validated here)
 * @returns one entry per tensor; the last entry ends at the total parameter count
 * @example
 * ```ts
 * import { paramLayout } from "./params.ts";
 * paramLayout({ cell: "rnn", nonlinearity: "tanh", input: "dense", vocabSize: 0, inputSize: 2,
 *   hiddenSize: 3, layers: 1, outputSize: 2 }).map((p) => p.name);
 * // ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0",
 * //  "head.weight", "head.bias"]
 * ```
 */
export function paramLayout(config: NetworkConfig): ParamSpec[] {
  validateConfig(config);
  const { hiddenSize: h, inputSize, layers, outputSize: o } = config;
  const gh = gatesOf(config.cell) * h;
  const specs: ParamSpec[] = [];
  let offset = 0;
  const add = (name: string, shape: number[]) => {
    const size = shape.reduce((a, b) => a * b, 1);
    specs.push({ name, shape, offset, size });
    offset += size;
  };
  if (config.input === "embedding") add("embed.weight", [config.vocabSize, inputSize]);
  for (let l = 0; l < layers; l++) {
    add(`rnn.weight_ih_l${l}`, [gh, l === 0 ? inputSize : h]);
    add(`rnn.weight_hh_l${l}`, [gh, h]);
    add(`rnn.bias_ih_l${l}`, [gh]);
    add(`rnn.bias_hh_l${l}`, [gh]);
  }
  add("head.weight", [o, h]);
  add("head.bias", [o]);
  return specs;
}

/**
 * Total number of parameters.
 *
 * @param config the network
 * @returns the length of the flat parameter buffer
 * @example
 * ```ts
 * import { paramCount } from "./params.ts";
 * paramCount({ cell: "rnn", nonlinearity: "tanh", input: "dense", vocabSize: 0, inputSize: 2,
 *   hiddenSize: 3, layers: 1, outputSize: 2 }); // 6 + 9 + 3 + 3 + 6 + 2 = 29
 * ```
 */
export function paramCount(config: NetworkConfig): number {
  const last = paramLayout(config).at(-1)!;
  return last.offset + last.size;
}

/**
 * Typed views of a flat buffer laid out by {@linkcode paramLayout}: used for parameters and,
 * with a buffer of the same length, for their gradients.
 *
 * @param config the network
 * @param flat the buffer; its length must be {@linkcode paramCount}
 * @returns views that share memory with `flat`
 * @example
 * ```ts
 * import { paramCount, paramViews } from "./params.ts";
 * const config = { cell: "gru" as const, nonlinearity: "tanh" as const, input: "dense" as const,
 *   vocabSize: 0, inputSize: 2, hiddenSize: 3, layers: 1, outputSize: 2 };
 * paramViews(config, new Float32Array(paramCount(config))).layers[0].wHh.length; // 27
 * ```
 */
export function paramViews(config: NetworkConfig, flat: FloatArray): NetworkParams {
  const specs = paramLayout(config);
  const total = specs.at(-1)!.offset + specs.at(-1)!.size;
  if (flat.length !== total) {
    throw new RangeError(`parameter buffer has ${flat.length} floats; the network needs ${total}`);
  }
  const byName = new Map(specs.map((s) => [s.name, flat.subarray(s.offset, s.offset + s.size)]));
  const layers: LayerParams[] = [];
  for (let l = 0; l < config.layers; l++) {
    layers.push({
      wIh: byName.get(`rnn.weight_ih_l${l}`)!,
      wHh: byName.get(`rnn.weight_hh_l${l}`)!,
      bIh: byName.get(`rnn.bias_ih_l${l}`)!,
      bHh: byName.get(`rnn.bias_hh_l${l}`)!,
    });
  }
  return {
    embed: byName.get("embed.weight") ?? null,
    layers,
    headW: byName.get("head.weight")!,
    headB: byName.get("head.bias")!,
  };
}

/**
 * Fresh parameters drawn as PyTorch initialises its modules: embedding N(0, 1); recurrent
 * weights and biases U(-1/√H, 1/√H); the head U(-1/√H, 1/√H).
 *
 * @param config the network
 * @param seed the random seed; the same seed gives bit-identical parameters
 * @param dtype Float32Array (default) or Float64Array
 * @returns the flat parameter buffer
 * @example
 * ```ts
 * import { initParams } from "./params.ts";
 * const p = initParams({ cell: "rnn", nonlinearity: "tanh", input: "dense", vocabSize: 0,
 *   inputSize: 2, hiddenSize: 3, layers: 1, outputSize: 2 }, 1);
 * p.length; // 29
 * ```
 */
export function initParams(
  config: NetworkConfig,
  seed: number,
  dtype: FloatArrayConstructor = Float32Array,
): FloatArray {
  const rng = new Rng(seed);
  const flat = new dtype(paramCount(config));
  const k = 1 / Math.sqrt(config.hiddenSize);
  for (const spec of paramLayout(config)) {
    for (let i = spec.offset; i < spec.offset + spec.size; i++) {
      flat[i] = spec.name === "embed.weight" ? rng.normal() : (2 * rng.uniform() - 1) * k;
    }
  }
  return flat;
}
