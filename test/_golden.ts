// Shared by the tests that compare with PyTorch: the recorded vectors of
// fixtures/make_golden.py and a closeness assertion that names the worst entry.
import assert from "node:assert/strict";
import { readModelFile } from "../src/format/mod.ts";

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

/** Asserts |actual - expected| ≤ atol + rtol·|expected| everywhere, naming the worst entry. */
export function assertClose(
  what: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  atol: number,
  rtol = 0,
) {
  assert.equal(
    actual.length,
    expected.length,
    `${what}: length ${actual.length} ≠ ${expected.length}`,
  );
  let worst = -1, worstExcess = 0, worstDiff = 0;
  for (let k = 0; k < expected.length; k++) {
    const diff = Math.abs(actual[k] - expected[k]);
    const excess = diff - (atol + rtol * Math.abs(expected[k]));
    if (!(excess <= worstExcess)) {
      worst = k;
      worstExcess = excess;
      worstDiff = diff;
    }
  }
  assert.ok(
    worst < 0,
    `${what}[${worst}]: ${actual[worst]} vs PyTorch ${
      expected[worst]
    } (difference ${worstDiff}, tolerance ${atol} + ${rtol}·|ref|)`,
  );
}
