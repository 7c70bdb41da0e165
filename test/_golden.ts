// Shared by the tests that compare with PyTorch: the recorded vectors of
// fixtures/make_golden.py and a closeness assertion that names the worst entry.
import { readModelFile } from "../src/format/mod.ts";

export { assertClose } from "./_close.ts";

/** The vectors recorded for one case (see fixtures/make_golden.py for their meaning). */
export interface Golden {
  case: string;
  config: {
    cell: string;
    nonlinearity: string;
    layers: number;
    input: "embedding" | "dense";
    vocab_size: number;
    input_size: number;
    hidden_size: number;
    output_size: number;
    T: number;
    B: number;
  };
  tokens?: number[];
  inputs?: number[];
  targets: number[];
  h0: number[];
  c0?: number[];
  out: number[];
  logits: number[];
  h_n: number[];
  c_n?: number[];
  loss: number;
  grads: Record<string, number[]>;
  grad_h0: number[];
  grad_c0?: number[];
  predict: {
    text?: string;
    ids?: number[];
    inputs?: number[];
    probs: number[];
    hidden: number[];
    cell?: number[];
  };
}

const dir = new URL("../fixtures/golden/", import.meta.url);

/** Every case the script records. */
export const CASES = [
  "rnn_tanh_l1",
  "rnn_relu_l2",
  "gru_l1",
  "gru_l2",
  "lstm_l1",
  "lstm_l2",
  "gru_dense_l2",
  "lstm_l2_h32",
];

/** Loads one case: the model file and the recorded vectors. */
export async function loadCase(name: string) {
  const golden: Golden = JSON.parse(await Deno.readTextFile(new URL(`${name}.json`, dir)));
  const model = await readModelFile(new URL(`${name}.safetensors`, dir).pathname);
  return { golden, model };
}
