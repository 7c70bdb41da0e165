// Compares the network with vectors recorded from PyTorch by fixtures/make_golden.py:
// outputs within 1e-5 absolute; gradients within 1e-5 absolute + 1e-4 relative (float32 on both
// sides, summed in different orders).
import assert from "node:assert/strict";
import { crossEntropy } from "../src/math/mod.ts";
import { paramLayout, Stepper, Workspace } from "../src/nn/mod.ts";
import { assertClose, CASES, loadCase } from "./_golden.ts";

for (const name of CASES) {
  Deno.test(`${name}: forward, loss, gradients and stepping match torch.nn`, async (t) => {
    const { golden, model } = await loadCase(name);
    const net = model.network;
    const g = golden.config;
    const { T, B } = g;
    assert.deepEqual(
      [
        net.config.cell,
        net.config.layers,
        net.config.input,
        net.config.hiddenSize,
        net.config.outputSize,
      ],
      [g.cell, g.layers, g.input, g.hidden_size, g.output_size],
    );
    const ws = new Workspace(net, T, B);
    const input = g.input === "embedding"
      ? Int32Array.from(golden.tokens!)
      : Float32Array.from(golden.inputs!);
    const state0 = Float32Array.from([...golden.h0, ...(golden.c0 ?? [])]);
    ws.forward(input, state0, T, B);

    await t.step("outputs of the top layer, logits and final state within 1e-5", () => {
      const { hiddenSize: h, layers } = net.config;
      assertClose(
        "out",
        ws.layers[layers - 1].h.subarray(B * h, (T + 1) * B * h),
        golden.out,
        1e-5,
      );
      assertClose("logits", ws.logits.subarray(0, T * B * g.output_size), golden.logits, 1e-5);
      assertClose("h_n", ws.stateOut.subarray(0, layers * B * h), golden.h_n, 1e-5);
      if (golden.c_n) assertClose("c_n", ws.stateOut.subarray(layers * B * h), golden.c_n, 1e-5);
    });

    await t.step("cross-entropy and every gradient, including the initial state", () => {
      const dlogits = new Float32Array(T * B * g.output_size);
      const { loss } = crossEntropy(
        ws.logits,
        Int32Array.from(golden.targets),
        T * B,
        g.output_size,
        dlogits,
      );
      assert.ok(Math.abs(loss - golden.loss) < 1e-5, `loss ${loss} vs PyTorch ${golden.loss}`);
      const grads = new Float32Array(net.params.length);
      const dState0 = new Float32Array(state0.length);
      ws.backward(dlogits, null, grads, dState0);
      for (const spec of paramLayout(net.config)) {
        const ref = golden.grads[spec.name];
        assert.ok(ref, `PyTorch recorded no gradient for ${spec.name}`);
        assertClose(
          `grad ${spec.name}`,
          grads.subarray(spec.offset, spec.offset + spec.size),
          ref,
          1e-5,
          1e-4,
        );
      }
      const half = golden.h0.length;
      assertClose("grad h0", dState0.subarray(0, half), golden.grad_h0, 1e-5, 1e-4);
      if (golden.grad_c0) {
        assertClose("grad c0", dState0.subarray(half), golden.grad_c0, 1e-5, 1e-4);
      }
    });

    await t.step("the streaming stepper gives PyTorch's per-step probabilities and states", () => {
      const stepper = new Stepper(net);
      const state = stepper.newState();
      const { hiddenSize: h, layers, inputSize, outputSize: o } = net.config;
      const p = golden.predict;
      const steps = p.probs.length / o;
      for (let s = 0; s < steps; s++) {
        const input = p.ids
          ? p.ids[s]
          : Float32Array.from(p.inputs!.slice(s * inputSize, (s + 1) * inputSize));
        const probs = stepper.step(state, input);
        assertClose(`step ${s} probs`, probs, p.probs.slice(s * o, (s + 1) * o), 1e-5);
        assertClose(
          `step ${s} hidden`,
          state.subarray(0, layers * h),
          p.hidden.slice(s * layers * h, (s + 1) * layers * h),
          1e-5,
        );
        if (p.cell) {
          assertClose(
            `step ${s} cell`,
            state.subarray(layers * h),
            p.cell.slice(s * layers * h, (s + 1) * layers * h),
            1e-5,
          );
        }
      }
    });
  });
}
