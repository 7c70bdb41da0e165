// The protobuf writer behind the benchmark's ONNX export (test/bench/_onnx.ts), checked against
// encodings worked out by hand from the protobuf wire-format rules. Whether onnxruntime reads
// the models it writes is checked where onnxruntime is loaded: at the start of the benchmarks.
import assert from "node:assert/strict";
import { Network } from "../src/nn/mod.ts";
import { encodeModel, ProtoWriter, stepGraph } from "./bench/_onnx.ts";

function bytes(build: (w: ProtoWriter) => void): number[] {
  const w = new ProtoWriter();
  build(w);
  return [...w.finish()];
}

Deno.test("ProtoWriter writes varints, negative int64s, floats, strings and messages", () => {
  assert.deepEqual(bytes((w) => w.uint(1, 150)), [0x08, 0x96, 0x01]);
  assert.deepEqual(bytes((w) => w.uint(2, 0)), [0x10, 0x00]);
  assert.deepEqual(bytes((w) => w.uint(20, 2)), [0xa0, 0x01, 0x02]); // tag 20 << 3 needs two bytes
  assert.deepEqual(bytes((w) => w.uint(1, 2 ** 35)), [0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
  assert.deepEqual(
    bytes((w) => w.int64(3, -1)),
    [0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
  );
  assert.deepEqual(bytes((w) => w.float(2, 1)), [0x15, 0x00, 0x00, 0x80, 0x3f]);
  assert.deepEqual(bytes((w) => w.string(2, "testing")), [
    0x12,
    0x07,
    ...new TextEncoder().encode("testing"),
  ]);
  assert.deepEqual(bytes((w) => w.message(3, (m) => m.uint(1, 150))), [
    0x1a,
    0x03,
    0x08,
    0x96,
    0x01,
  ]);
});

Deno.test("ProtoWriter refuses values and field numbers protobuf cannot carry", () => {
  const w = new ProtoWriter();
  assert.throws(() => w.uint(1, -1), RangeError);
  assert.throws(() => w.uint(1, 0.5), RangeError);
  assert.throws(() => w.int64(1, 2 ** 60), RangeError);
  assert.throws(() => w.uint(0, 1), RangeError);
});

Deno.test("stepGraph() refuses dense networks and encodeModel() names a wrong initializer size", () => {
  const dense = Network.create({
    cell: "gru",
    nonlinearity: "tanh",
    input: "dense",
    vocabSize: 0,
    inputSize: 3,
    hiddenSize: 4,
    layers: 1,
    outputSize: 2,
  }, 1);
  assert.throws(() => stepGraph(dense), /embedding network/);
  assert.throws(
    () =>
      encodeModel({
        name: "bad",
        nodes: [],
        initializers: [{ name: "w", dims: [2, 3], data: new Float32Array(5) }],
        inputs: [],
        outputs: [],
      }),
    /initializer w: shape \[2,3\] holds 6 floats, data has 5/,
  );
});
