// V vocabulary, I embedding width, H hidden, O outputs; batch 1, one layer.
// What the step benchmarks (step_bench.ts, step_ratio.ts) share: the size of a small character
// model and the tokens every contender is fed.
import { type CellKind, Network } from "../../src/nn/mod.ts";

export const V = 83, I = 256, H = 256, O = 83;

/** The cells the step benchmarks cover. */
export const CELLS: readonly CellKind[] = ["rnn", "gru", "lstm"];

/** A fixed cycle of token ids, so every contender sees the same inputs in the same order. */
export const TOKENS = Int32Array.from({ length: 97 }, (_, t) => (t * 31 + 5) % V); // (97)

/**
 * The benchmarked network: Embedding(V, I) → one `cell` layer with H hidden → Linear(H, O),
 * with fixed seeded weights.
 *
 * @param cell the recurrent cell
 * @returns the network
 */
export function stepNetwork(cell: CellKind): Network {
  return Network.create(
    {
      cell,
      nonlinearity: "tanh",
      input: "embedding",
      vocabSize: V,
      inputSize: I,
      hiddenSize: H,
      layers: 1,
      outputSize: O,
    },
    1234,
  );
}
