// FrameBuffer: numbers and text written as bytes must read back as what JSON and TextEncoder
// would have made, and probabilities keep 7 significant digits.
import assert from "node:assert/strict";
import { Rng } from "../src/math/mod.ts";
import { FrameBuffer, frameEvent, probText, roundProb } from "../src/stream/frames.ts";

const text = (out: FrameBuffer) => new TextDecoder().decode(out.take() ?? new Uint8Array());

Deno.test("FrameBuffer", async (t) => {
  await t.step("probabilities: 7 significant digits, canonical JSON, rounded to nearest", () => {
    const rng = new Rng(5);
    const values = [0, 1, 1e-6, 9.9999994e-7, 1e-7, 0.5, 0.05, 0.99999995, 0.9999999, 0.1, 3e-30];
    for (let k = 0; k < 20_000; k++) {
      // float32 probabilities over every magnitude a softmax makes
      values.push(Math.fround(rng.uniform() * 10 ** -Math.floor(rng.uniform() * 12)));
    }
    for (const p of values) {
      const out = new FrameBuffer(() => {});
      out.probAt(Float64Array.of(p), 0);
      const written = text(out);
      assert.equal(written, probText(p), `${p}`);
      assert.equal(String(Number(written)), written, `${p} is canonical`);
      assert.equal(Number(written), roundProb(p), `${p}`);
      if (p > 0) {
        const unit = 10 ** (Math.floor(Math.log10(p)) - 6); // the 7th significant digit
        assert.ok(Math.abs(Number(written) - p) <= 0.5 * unit * (1 + 1e-9), `${p} → ${written}`);
        assert.ok(written.replace(/^0\.0*|e.*$|\./g, "").length <= 7, `${p} → ${written}`);
      }
    }
    assert.equal(probText(0.28686347603797913), "0.2868635");
    assert.equal(probText(0.99999996), "1");
    assert.equal(probText(NaN), "null");
    assert.equal(probText(Infinity), "null");
  });

  await t.step("integers, text and whole events read back as String, TextEncoder, JSON", () => {
    const out = new FrameBuffer(() => {});
    for (const n of [0, 7, 10, 99, 100, 123456789, 2 ** 53 - 1]) {
      out.uint(n);
      assert.equal(text(out), String(n));
    }
    out.text("é, 中, 😀 and \n");
    assert.equal(text(out), "é, 中, 😀 and \n");
    const event = { event: "done" as const, id: 3, data: { seq: 3, note: "a\nb" } };
    out.event(event);
    assert.equal(text(out), frameEvent(event));
  });

  await t.step("grows past its first buffer, takes copies, tells its owner once per take", () => {
    let told = 0;
    const out = new FrameBuffer(() => told++);
    const long = "x".repeat(10_000);
    out.text(long);
    out.end();
    out.byte(33);
    out.end();
    assert.equal(told, 1);
    assert.equal(out.frames, 2);
    const first = out.take()!;
    assert.equal(first.length, 10_001);
    out.text("y");
    out.end();
    assert.equal(told, 2);
    assert.equal(new TextDecoder().decode(first), long + "!", "a take is not overwritten later");
    assert.equal(text(out), "y");
    assert.equal(out.take(), null);
    out.text("z");
    out.clear();
    assert.equal(out.take(), null);
  });

  await t.step("a held event waits for the next take, is not a frame, and is told apart", () => {
    let told = 0, held = 0;
    const out = new FrameBuffer(() => told++, () => held++);
    const checkpoint = { event: "checkpoint" as const, id: 4, data: { seq: 4 } };
    out.eventLater(checkpoint);
    assert.deepEqual([told, held, out.frames], [0, 1, 0], "its owner bounds the wait");
    out.byte(33);
    out.end();
    assert.deepEqual([told, held, out.frames], [1, 1, 1]);
    out.eventLater(checkpoint);
    assert.equal(held, 1, "a take is already due: it goes with it");
    assert.equal(text(out), frameEvent(checkpoint) + "!" + frameEvent(checkpoint));
    const plain = new FrameBuffer(() => told++);
    plain.eventLater(checkpoint);
    assert.equal(told, 2, "without onHeld the owner is told as for any frame");
    plain.byte(33);
    plain.end();
    assert.deepEqual([told, plain.frames], [2, 1], "once per take");
    assert.equal(text(plain), frameEvent(checkpoint) + "!");
  });
});
