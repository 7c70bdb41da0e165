// The training loop against PyTorch: TBPTT(k1=5, k2=8) with plain SGD over B=3 streams from a
// PyTorch-made model must reach PyTorch's weights (fixtures/make_golden_train.py); and each
// optimizer and gradient clipping must follow torch.optim / clip_grad_norm_.
import assert from "node:assert/strict";
import { readModelFile } from "../src/format/mod.ts";
import { paramLayout } from "../src/nn/mod.ts";
import { CharVocab } from "../src/text/mod.ts";
import {
  clipGradNorm,
  createOptimizer,
  type OptimizerKind,
  TbpttTrainer,
} from "../src/train/mod.ts";
import { assertClose } from "./_golden.ts";

const dir = new URL("../fixtures/golden/train/", import.meta.url);

for (const cell of ["rnn", "gru", "lstm"]) {
  Deno.test(`TBPTT with k2 > k1 and B > 1 reaches PyTorch's weights (${cell})`, async () => {
    const golden = JSON.parse(await Deno.readTextFile(new URL(`train_${cell}.json`, dir)));
    const { network: net, meta } = await readModelFile(
      new URL(`train_${cell}.safetensors`, dir).pathname,
    );
    const { B, k1, k2, steps, lr } = golden.config;
    const vocab = new CharVocab(meta.vocabulary!);
    assert.deepEqual(vocab.tokens, golden.vocabulary);
    const trainer = new TbpttTrainer(
      net,
      vocab.encode(golden.text),
      { k1, k2, batch: B },
      createOptimizer("sgd", net.params.length, { momentum: 0 }),
    );
    for (let s = 0; s < steps; s++) {
      const { loss } = trainer.step(lr, Infinity);
      assert.ok(
        Math.abs(loss - golden.losses[s]) < 1e-5,
        `step ${s}: loss ${loss} vs PyTorch ${golden.losses[s]}`,
      );
    }
    // Tolerance: six float32 updates at lr 0.5 amplify rounding differences of ~1e-7 a little.
    for (const spec of paramLayout(net.config)) {
      assertClose(
        spec.name,
        net.params.subarray(spec.offset, spec.offset + spec.size),
        golden.final[spec.name],
        2e-5,
        1e-4,
      );
    }
    const { layers, hiddenSize: h } = net.config;
    const state = trainer.position.state;
    assertClose("carried h", state.subarray(0, layers * B * h), golden.final_state, 2e-5, 1e-4);
    if (golden.final_cell) {
      assertClose("carried c", state.subarray(layers * B * h), golden.final_cell, 2e-5, 1e-4);
    }
  });
}

Deno.test("optimizers follow torch.optim step by step", async (t) => {
  const golden = JSON.parse(await Deno.readTextFile(new URL("optimizers.json", dir)));
  const cases: [string, OptimizerKind, Record<string, number>][] = [
    ["sgd", "sgd", { momentum: 0 }],
    ["sgd_momentum", "sgd", { momentum: 0.9 }],
    ["adagrad", "adagrad", {}],
    ["adam", "adam", {}],
  ];
  for (const [name, kind, options] of cases) {
    await t.step(name, () => {
      const ref = golden.optimizers[name];
      const params = Float32Array.from(golden.params);
      const opt = createOptimizer(kind, params.length, options);
      golden.grads.forEach((g: number[], s: number) => {
        opt.step(params, Float32Array.from(g), ref.hyper.lr);
        assertClose(`${name} step ${s}`, params, ref.steps[s], 1e-6, 1e-5);
      });
    });
  }
});

Deno.test("clipGradNorm() follows clip_grad_norm_", async () => {
  const golden = JSON.parse(await Deno.readTextFile(new URL("optimizers.json", dir)));
  for (const rec of golden.clip) {
    const flat = Float32Array.from(rec.inputs.flat());
    const norm = clipGradNorm(flat, rec.max_norm);
    assert.ok(Math.abs(norm - rec.total_norm) < 1e-5, `norm ${norm} vs ${rec.total_norm}`);
    assertClose(`clipped at ${rec.max_norm}`, flat, rec.clipped.flat(), 1e-6, 1e-5);
  }
});
