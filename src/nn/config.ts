// L layers, H hidden, G gates per cell, I input to layer 0 (embedding width or dense size),
// V vocabulary (embedding rows), O outputs, S state parts per layer (h, and c for LSTM).
import type { Nonlinearity } from "../math/mod.ts";

/** The recurrent cell: the seed's Elman RNN, or PyTorch's GRU or LSTM. */
export type CellKind = "rnn" | "gru" | "lstm";

/** Everything that fixes the shapes of a network's parameters and state. */
export interface NetworkConfig {
  /** Which recurrent cell every layer uses. */
  cell: CellKind;
  /** The Elman cell's `f`; GRU and LSTM have fixed activations and take "tanh". */
  nonlinearity: Nonlinearity;
  /** Token ids looked up in an embedding table, or dense input vectors. */
  input: "embedding" | "dense";
  /** Rows V of the embedding table; 0 for dense input. */
  vocabSize: number;
  /** Width I of what layer 0 reads: the embedding dimension, or the dense vector size. */
  inputSize: number;
  /** Hidden size H of every layer. */
  hiddenSize: number;
  /** Stacked layers L, at least 1. */
  layers: number;
  /** Outputs O of the linear head (classes, or the vocabulary of a language model). */
  outputSize: number;
}

/** A bad network configuration; the message names the field and the value. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * Gates per cell G: rows of `weight_ih` are G·H (PyTorch order: GRU r,z,n; LSTM i,f,g,o).
 *
 * @param cell the cell kind
 * @returns 1, 3 or 4
 * @example
 * ```ts
 * import { gatesOf } from "./config.ts";
 * gatesOf("lstm"); // 4
 * ```
 */
export function gatesOf(cell: CellKind): number {
  return cell === "rnn" ? 1 : cell === "gru" ? 3 : 4;
}

/**
 * Floats of recurrent state for one stream: S·L·H, laid out as PyTorch's `h_n` (L, H) followed,
 * for LSTM, by `c_n` (L, H).
 *
 * @param config the network
 * @returns the state length of one stream
 * @example
 * ```ts
 * import { stateSize } from "./config.ts";
 * stateSize({ cell: "lstm", nonlinearity: "tanh", input: "embedding", vocabSize: 5,
 *   inputSize: 4, hiddenSize: 8, layers: 2, outputSize: 5 }); // 32
 * ```
 */
export function stateSize(config: NetworkConfig): number {
  return (config.cell === "lstm" ? 2 : 1) * config.layers * config.hiddenSize;
}

/** The largest size this runtime accepts for any one dimension (guards against absurd files). */
export const MAX_DIMENSION = 1 << 16;

/**
 * Checks a configuration and returns it, or throws a {@linkcode ConfigError} naming the problem.
 *
 * @param config the candidate
 * @returns the same configuration
 * @example
 * ```ts
 * import { validateConfig } from "./config.ts";
 * validateConfig({ cell: "gru", nonlinearity: "tanh", input: "dense", vocabSize: 0,
 *   inputSize: 3, hiddenSize: 4, layers: 1, outputSize: 2 });
 * ```
 */
export function validateConfig(config: NetworkConfig): NetworkConfig {
  if (!["rnn", "gru", "lstm"].includes(config.cell)) {
    throw new ConfigError(`cell must be rnn, gru or lstm, not ${JSON.stringify(config.cell)}`);
  }
  if (config.nonlinearity !== "tanh" && config.nonlinearity !== "relu") {
    throw new ConfigError(
      `nonlinearity must be tanh or relu, not ${JSON.stringify(config.nonlinearity)}`,
    );
  }
  if (config.cell !== "rnn" && config.nonlinearity !== "tanh") {
    throw new ConfigError(`a ${config.cell} cell has no relu variant`);
  }
  if (config.input !== "embedding" && config.input !== "dense") {
    throw new ConfigError(`input must be embedding or dense, not ${JSON.stringify(config.input)}`);
  }
  const positive: [string, number][] = [
    ["inputSize", config.inputSize],
    ["hiddenSize", config.hiddenSize],
    ["layers", config.layers],
    ["outputSize", config.outputSize],
  ];
  if (config.input === "embedding") positive.push(["vocabSize", config.vocabSize]);
  for (const [field, value] of positive) {
    if (!Number.isInteger(value) || value < 1 || value > MAX_DIMENSION) {
      throw new ConfigError(`${field} must be an integer in 1..${MAX_DIMENSION}, not ${value}`);
    }
  }
  if (config.input === "dense" && config.vocabSize !== 0) {
    throw new ConfigError(`a dense-input network has vocabSize 0, not ${config.vocabSize}`);
  }
  return config;
}
