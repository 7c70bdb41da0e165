// L layers, H hidden, G gates, I embedding width, V vocabulary, O outputs; batch 1, one step.
// Just enough of the ONNX format to hand our weights to onnxruntime: a protobuf wire-format
// writer, the ONNX messages a plain inference graph needs (field numbers from onnx/onnx.proto),
// and the graph of one streaming step built from a Network's parameters.
import { gatesOf, type Network } from "../../src/nn/mod.ts";

const WIRE_VARINT = 0;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

/**
 * Appends protobuf fields in wire format (varints, length-delimited fields, fixed32) to a
 * growing buffer. Embedded messages are written into their own writer, then copied in behind
 * their length.
 *
 * @example
 * ```ts
 * import { ProtoWriter } from "./_onnx.ts";
 * const w = new ProtoWriter();
 * w.uint(1, 150);
 * w.finish(); // Uint8Array [0x08, 0x96, 0x01]
 * ```
 */
export class ProtoWriter {
  #buf = new Uint8Array(64);
  #len = 0;

  /** Writes an unsigned varint field (int32, int64, enum or bool with a value ≥ 0). */
  uint(field: number, value: number): void {
    if (!(Number.isSafeInteger(value) && value >= 0)) {
      throw new RangeError(`field ${field}: ${value} is not an unsigned integer`);
    }
    this.#tag(field, WIRE_VARINT);
    this.#varint(value);
  }

  /** Writes an int64 field; a negative value takes ten bytes (two's complement), as protobuf says. */
  int64(field: number, value: number): void {
    if (!Number.isSafeInteger(value)) {
      throw new RangeError(`field ${field}: ${value} is not a safe integer`);
    }
    if (value >= 0) {
      this.uint(field, value);
      return;
    }
    this.#tag(field, WIRE_VARINT);
    let v = BigInt.asUintN(64, BigInt(value));
    while (v >= 0x80n) {
      this.#byte(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.#byte(Number(v));
  }

  /** Writes a float field (fixed32, little-endian). */
  float(field: number, value: number): void {
    this.#tag(field, WIRE_FIXED32);
    this.#reserve(4);
    new DataView(this.#buf.buffer).setFloat32(this.#len, value, true);
    this.#len += 4;
  }

  /** Writes a bytes field. */
  bytes(field: number, value: Uint8Array): void {
    this.#tag(field, WIRE_LEN);
    this.#varint(value.length);
    this.#reserve(value.length);
    this.#buf.set(value, this.#len);
    this.#len += value.length;
  }

  /** Writes a string field (UTF-8). */
  string(field: number, value: string): void {
    this.bytes(field, new TextEncoder().encode(value));
  }

  /** Writes an embedded message field whose fields `build` writes. */
  message(field: number, build: (w: ProtoWriter) => void): void {
    const inner = new ProtoWriter();
    build(inner);
    this.bytes(field, inner.finish());
  }

  /**
   * The bytes written so far.
   *
   * @returns a view of the buffer (valid until the next write)
   */
  finish(): Uint8Array {
    return this.#buf.subarray(0, this.#len);
  }

  #tag(field: number, wire: number): void {
    if (!(Number.isInteger(field) && field >= 1 && field < 1 << 29)) {
      throw new RangeError(`${field} is not a protobuf field number`);
    }
    this.#varint(field * 8 + wire);
  }

  #varint(value: number): void {
    let v = value;
    while (v >= 0x80) {
      this.#byte((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.#byte(v);
  }

  #byte(b: number): void {
    this.#reserve(1);
    this.#buf[this.#len++] = b;
  }

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const grown = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    grown.set(this.#buf.subarray(0, this.#len));
    this.#buf = grown;
  }
}

/** TensorProto.DataType values used here. */
export const DataType = { FLOAT: 1, INT64: 7 } as const;
/** An element type of a tensor. */
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

/** A constant tensor of the graph (an initializer), float32, row-major. */
export interface Initializer {
  name: string;
  dims: number[];
  data: Float32Array;
}

/** A graph input or output: name, element type and static shape. */
export interface ValueInfo {
  name: string;
  elemType: DataTypeCode;
  dims: number[];
}

/** A node attribute; `type` picks the AttributeProto field that carries the value. */
export type Attribute =
  | { name: string; type: "int"; value: number }
  | { name: string; type: "float"; value: number }
  | { name: string; type: "string"; value: string }
  | { name: string; type: "strings"; value: string[] };

/** One operator application. */
export interface Node {
  opType: string;
  inputs: string[];
  outputs: string[];
  name: string;
  attributes?: Attribute[];
}

/** A graph: nodes in topological order, constants, inputs and outputs. */
export interface Graph {
  name: string;
  nodes: Node[];
  initializers: Initializer[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

// AttributeProto.AttributeType
const ATTRIBUTE_TYPE = { float: 1, int: 2, string: 3, strings: 8 } as const;

// TensorProto: dims = 1, data_type = 2, name = 8, raw_data = 9.
function writeTensor(w: ProtoWriter, t: Initializer): void {
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (count !== t.data.length) {
    throw new RangeError(
      `initializer ${t.name}: shape [${t.dims}] holds ${count} floats, data has ${t.data.length}`,
    );
  }
  for (const d of t.dims) w.int64(1, d);
  w.uint(2, DataType.FLOAT);
  w.string(8, t.name);
  const raw = new Uint8Array(4 * t.data.length);
  const view = new DataView(raw.buffer);
  for (let k = 0; k < t.data.length; k++) view.setFloat32(4 * k, t.data[k], true);
  w.bytes(9, raw);
}

// ValueInfoProto: name = 1, type = 2. TypeProto: tensor_type = 1. TypeProto.Tensor: elem_type = 1,
// shape = 2. TensorShapeProto: dim = 1. TensorShapeProto.Dimension: dim_value = 1.
function writeValueInfo(w: ProtoWriter, v: ValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.uint(1, v.elemType);
      tensor.message(2, (shape) => {
        for (const d of v.dims) shape.message(1, (dim) => dim.int64(1, d));
      });
    }));
}

// AttributeProto: name = 1, f = 2, i = 3, s = 4, strings = 9, type = 20.
function writeAttribute(w: ProtoWriter, a: Attribute): void {
  w.string(1, a.name);
  w.uint(20, ATTRIBUTE_TYPE[a.type]);
  if (a.type === "float") w.float(2, a.value);
  else if (a.type === "int") w.int64(3, a.value);
  else if (a.type === "string") w.string(4, a.value);
  else for (const s of a.value) w.string(9, s);
}

// NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5.
function writeNode(w: ProtoWriter, n: Node): void {
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name);
  w.string(4, n.opType);
  for (const a of n.attributes ?? []) w.message(5, (m) => writeAttribute(m, a));
}

// GraphProto: node = 1, name = 2, initializer = 5, input = 11, output = 12.
function writeGraph(w: ProtoWriter, g: Graph): void {
  for (const n of g.nodes) w.message(1, (m) => writeNode(m, n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, (m) => writeTensor(m, t));
  for (const v of g.inputs) w.message(11, (m) => writeValueInfo(m, v));
  for (const v of g.outputs) w.message(12, (m) => writeValueInfo(m, v));
}

/** Opset 17 of the default domain (ONNX 1.12), which onnxruntime 1.30 runs. */
export const OPSET = 17;
/** The IR version that goes with opset 17. */
export const IR_VERSION = 8;

/**
 * Serializes a graph as an ONNX model (ModelProto) importing {@linkcode OPSET} of the default
 * domain.
 *
 * @param graph the graph
 * @returns the model file's bytes
 * @example
 * ```ts
 * import { DataType, encodeModel } from "./_onnx.ts";
 * const bytes = encodeModel({
 *   name: "identity",
 *   nodes: [{ opType: "Identity", inputs: ["x"], outputs: ["y"], name: "id" }],
 *   initializers: [],
 *   inputs: [{ name: "x", elemType: DataType.FLOAT, dims: [2] }],
 *   outputs: [{ name: "y", elemType: DataType.FLOAT, dims: [2] }],
 * });
 * ```
 */
export function encodeModel(graph: Graph): Uint8Array {
  // ModelProto: ir_version = 1, producer_name = 2, graph = 7, opset_import = 8.
  // OperatorSetIdProto: domain = 1, version = 2.
  const w = new ProtoWriter();
  w.uint(1, IR_VERSION);
  w.string(2, "edge-rnn");
  w.message(7, (m) => writeGraph(m, graph));
  w.message(8, (m) => {
    m.string(1, "");
    m.uint(2, OPSET);
  });
  return w.finish();
}

/** The names of the step model's inputs and outputs for layer `l`. */
export const stepNames = {
  token: "token",
  probs: "probs",
  hIn: (l: number) => `h_in_${l}`,
  cIn: (l: number) => `c_in_${l}`,
  hOut: (l: number) => `h_out_${l}`,
  cOut: (l: number) => `c_out_${l}`,
} as const;

// Row blocks of PyTorch's stacked gates, in the order ONNX stacks them: GRU r,z,n -> z,r,h;
// LSTM i,f,g,o -> i,o,f,c.
const ONNX_GATE_ORDER = { rnn: [0], gru: [1, 0, 2], lstm: [0, 3, 1, 2] } as const;

/** Copies blocks of `rows` rows of `cols` floats from `src` in the order `order`. */
function reorderRows(src: Float32Array, order: readonly number[], rows: number, cols: number) {
  const out = new Float32Array(src.length);
  order.forEach((from, to) => {
    out.set(src.subarray(from * rows * cols, (from + 1) * rows * cols), to * rows * cols);
  });
  return out;
}

/**
 * The ONNX graph of one streaming step of an embedding network, from its weights:
 * `Gather` (embedding) → per layer the ONNX `RNN` / `GRU` (`linear_before_reset` = 1, which is
 * PyTorch's GRU) / `LSTM` op on a sequence of one → `MatMul` + `Add` (head) → `Softmax`.
 * Inputs: `token` (int64, [1, 1]) and every layer's state `h_in_l` (and `c_in_l`), [1, 1, H];
 * outputs: `probs` [1, 1, O] and the new state `h_out_l` (and `c_out_l`), so a caller feeds the
 * outputs of one step to the next.
 *
 * @param net an embedding network with float32 parameters
 * @returns the graph; {@linkcode encodeModel} serializes it
 */
export function stepGraph(net: Network): Graph {
  const { cell, nonlinearity, vocabSize: V, inputSize: I, hiddenSize: H, layers: L } = net.config;
  const O = net.config.outputSize;
  const p = net.p;
  if (p.embed === null) throw new TypeError("stepGraph() needs an embedding network");
  if (!(net.params instanceof Float32Array)) {
    throw new TypeError("stepGraph() exports float32 networks; this one is float64");
  }
  const G = gatesOf(cell);
  const order = ONNX_GATE_ORDER[cell];
  const f32 = (a: ArrayLike<number>) => Float32Array.from(a);
  const initializers: Initializer[] = [{ name: "embed", dims: [V, I], data: f32(p.embed) }];
  const inputs: ValueInfo[] = [{ name: stepNames.token, elemType: DataType.INT64, dims: [1, 1] }];
  const outputs: ValueInfo[] = [{
    name: stepNames.probs,
    elemType: DataType.FLOAT,
    dims: [1, 1, O],
  }];
  const nodes: Node[] = [
    { opType: "Gather", name: "gather", inputs: ["embed", stepNames.token], outputs: ["x"] },
  ];
  const state = (name: string): ValueInfo => ({ name, elemType: DataType.FLOAT, dims: [1, 1, H] });
  for (let l = 0; l < L; l++) {
    const lp = p.layers[l];
    const inSize = l === 0 ? I : H;
    // W (1, G*H, I_l), R (1, G*H, H), B (1, 2*G*H) = [Wb; Rb], rows in ONNX's gate order.
    const bias = new Float32Array(2 * G * H);
    bias.set(reorderRows(f32(lp.bIh), order, H, 1), 0);
    bias.set(reorderRows(f32(lp.bHh), order, H, 1), G * H);
    initializers.push(
      {
        name: `W_${l}`,
        dims: [1, G * H, inSize],
        data: reorderRows(f32(lp.wIh), order, H, inSize),
      },
      { name: `R_${l}`, dims: [1, G * H, H], data: reorderRows(f32(lp.wHh), order, H, H) },
      { name: `B_${l}`, dims: [1, 2 * G * H], data: bias },
    );
    const attributes: Attribute[] = [{ name: "hidden_size", type: "int", value: H }];
    // Layer l > 0 reads the layer below's Y_h, (num_directions = 1, batch = 1, H): with one step
    // that is also the (seq_length = 1, batch = 1, H) its X needs.
    const x = l === 0 ? "x" : stepNames.hOut(l - 1);
    const opInputs = [x, `W_${l}`, `R_${l}`, `B_${l}`, "", stepNames.hIn(l)];
    // Y (the whole output sequence) is not needed: with one step it equals Y_h.
    const opOutputs = ["", stepNames.hOut(l)];
    inputs.push(state(stepNames.hIn(l)));
    outputs.push(state(stepNames.hOut(l)));
    let opType: string;
    if (cell === "rnn") {
      opType = "RNN";
      attributes.push({
        name: "activations",
        type: "strings",
        value: [nonlinearity === "tanh" ? "Tanh" : "Relu"],
      });
    } else if (cell === "gru") {
      opType = "GRU";
      attributes.push({ name: "linear_before_reset", type: "int", value: 1 });
    } else {
      opType = "LSTM";
      opInputs.push(stepNames.cIn(l));
      opOutputs.push(stepNames.cOut(l));
      inputs.push(state(stepNames.cIn(l)));
      outputs.push(state(stepNames.cOut(l)));
    }
    nodes.push({ opType, name: `${cell}_${l}`, inputs: opInputs, outputs: opOutputs, attributes });
  }
  // logits = h W_head^T + b_head, with W_head^T stored (H, O) for MatMul.
  const headWt = new Float32Array(H * O); // (H, O)
  for (let o = 0; o < O; o++) for (let k = 0; k < H; k++) headWt[k * O + o] = p.headW[o * H + k];
  initializers.push(
    { name: "head_Wt", dims: [H, O], data: headWt },
    { name: "head_b", dims: [O], data: f32(p.headB) },
  );
  nodes.push(
    {
      opType: "MatMul",
      name: "head",
      inputs: [stepNames.hOut(L - 1), "head_Wt"],
      outputs: ["head_mm"],
    },
    { opType: "Add", name: "head_bias", inputs: ["head_mm", "head_b"], outputs: ["logits"] },
    {
      opType: "Softmax",
      name: "softmax",
      inputs: ["logits"],
      outputs: [stepNames.probs],
      attributes: [{ name: "axis", type: "int", value: -1 }],
    },
  );
  return { name: `edge_rnn_${cell}_step`, nodes, initializers, inputs, outputs };
}
