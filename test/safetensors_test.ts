// Tests for the safetensors reader and writer in src/format/safetensors.ts.

import assert from "node:assert/strict";
import { concatBytes } from "./_bytes.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  SafetensorsError,
  type Tensor,
} from "../src/format/safetensors.ts";

// ---------------------------------------------------------------------------------------------
// Helpers: files are built here byte by byte, independently of encodeSafetensors().

/** Builds a safetensors file from a header (object or raw JSON text) and a data buffer. */
function buildFile(
  header: unknown,
  data: Uint8Array = new Uint8Array(0),
  options: { padTo?: number; prefix?: number } = {},
): Uint8Array {
  const text = typeof header === "string" ? header : JSON.stringify(header);
  let json = new TextEncoder().encode(text);
  const padTo = options.padTo ?? 1;
  const padded = Math.ceil(json.length / padTo) * padTo;
  if (padded !== json.length) {
    const grown = new Uint8Array(padded).fill(0x20);
    grown.set(json);
    json = grown;
  }
  return buildRaw(json, data, options.prefix ?? 0);
}

/** Builds a file from raw header bytes; `prefix` puts it at that byte offset of a larger buffer. */
function buildRaw(headerBytes: Uint8Array, data: Uint8Array, prefix = 0): Uint8Array {
  const total = 8 + headerBytes.length + data.length;
  const buffer = new ArrayBuffer(prefix + total + 5);
  const file = new Uint8Array(buffer, prefix, total);
  new DataView(buffer, prefix).setBigUint64(0, BigInt(headerBytes.length), true);
  file.set(headerBytes, 8);
  file.set(data, 8 + headerBytes.length);
  return file;
}

/** Writes little-endian values of one kind into a fresh byte array. */
function leBytes(kind: "f64" | "f32" | "u16", values: number[]): Uint8Array {
  const size = kind === "f64" ? 8 : kind === "f32" ? 4 : 2;
  const out = new Uint8Array(values.length * size);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => {
    if (kind === "f64") view.setFloat64(i * size, v, true);
    else if (kind === "f32") view.setFloat32(i * size, v, true);
    else view.setUint16(i * size, v, true);
  });
  return out;
}

/** Asserts decoding throws a SafetensorsError whose message contains every fragment. */
function assertRefuses(bytes: Uint8Array, ...fragments: string[]): SafetensorsError {
  return assertSafetensorsError(() => decodeSafetensors(bytes), ...fragments);
}

function assertSafetensorsError(fn: () => unknown, ...fragments: string[]): SafetensorsError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, "expected a SafetensorsError, but nothing was thrown");
  assert.ok(caught instanceof SafetensorsError, `expected SafetensorsError, got ${caught}`);
  assert.equal(caught.name, "SafetensorsError");
  for (const fragment of fragments) {
    assert.ok(
      caught.message.includes(fragment),
      `message ${JSON.stringify(caught.message)} should mention ${JSON.stringify(fragment)}`,
    );
  }
  return caught;
}

/** A one-tensor F32 file whose entry for "t" is `entry`, over `dataBytes` bytes of data. */
function fileWithEntry(entry: unknown, dataBytes = 8): Uint8Array {
  return buildFile({ t: entry }, new Uint8Array(dataBytes));
}

/** Compares values exactly, telling -0 from 0 and treating NaN as equal to NaN. */
function assertValues(actual: Float32Array, expected: number[]): void {
  assert.deepStrictEqual(Array.from(actual), expected);
}

function headerOf(bytes: Uint8Array): { size: number; text: string } {
  const size = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { size, text: new TextDecoder().decode(bytes.subarray(8, 8 + size)) };
}

function sampleTensors(): Map<string, Tensor> {
  return new Map<string, Tensor>([
    ["layer.weight", { shape: [2, 3], data: new Float32Array([1, -2, 3.5, 0, -0, 1e-40]) }],
    ["layer.bias", { shape: [3], data: new Float32Array([0.25, NaN, -Infinity]) }],
    ["scale", { shape: [], data: new Float32Array([42]) }],
    ["empty", { shape: [0, 4], data: new Float32Array(0) }],
    ["cube", { shape: [2, 2, 2], data: Float32Array.from({ length: 8 }, (_, i) => i / 3) }],
  ]);
}

// ---------------------------------------------------------------------------------------------
// Writer and round trips.

Deno.test("decodeSafetensors() round-trips what encodeSafetensors() writes", async (t) => {
  await t.step("several tensors, a scalar, a zero-size tensor and metadata", () => {
    const tensors = sampleTensors();
    const metadata = { format: "pt", note: "ünïcode ✓", empty: "" };
    const decoded = decodeSafetensors(encodeSafetensors(tensors, metadata));
    assert.deepStrictEqual([...decoded.tensors.keys()], [...tensors.keys()]);
    for (const [name, tensor] of tensors) {
      const got = decoded.tensors.get(name);
      assert.ok(got !== undefined, name);
      assert.deepStrictEqual(got.shape, tensor.shape);
      assert.ok(got.data instanceof Float32Array);
      assertValues(got.data, Array.from(tensor.data));
    }
    assert.deepStrictEqual(decoded.tensors.get("scale")?.shape, []);
    assert.equal(decoded.tensors.get("empty")?.data.length, 0);
    assert.deepStrictEqual(decoded.metadata, metadata);
  });

  await t.step("accepts a Map, an iterable of pairs and a plain object alike", () => {
    const a = { shape: [2], data: new Float32Array([1, 2]) };
    const b = { shape: [1], data: new Float32Array([3]) };
    const fromMap = encodeSafetensors(new Map([["a", a], ["b", b]]));
    const fromPairs = encodeSafetensors([["a", a], ["b", b]]);
    const fromGenerator = encodeSafetensors(
      (function* (): Generator<[string, Tensor]> {
        yield ["a", a];
        yield ["b", b];
      })(),
    );
    const fromRecord = encodeSafetensors({ a, b });
    assert.deepStrictEqual(fromPairs, fromMap);
    assert.deepStrictEqual(fromGenerator, fromMap);
    assert.deepStrictEqual(fromRecord, fromMap);
  });

  await t.step("keeps insertion order, even for integer-like names", () => {
    const one = (v: number): Tensor => ({ shape: [1], data: new Float32Array([v]) });
    const bytes = encodeSafetensors([["10", one(10)], ["2", one(2)], ["b", one(0)], ["a", one(1)]]);
    const { text } = headerOf(bytes);
    assert.ok(text.indexOf('"10"') < text.indexOf('"2"'));
    assert.ok(text.indexOf('"b"') < text.indexOf('"a"'));
    assert.deepStrictEqual([...decodeSafetensors(bytes).tensors.keys()], ["10", "2", "b", "a"]);
  });

  await t.step("no tensors and no metadata gives an empty header", () => {
    const bytes = encodeSafetensors(new Map());
    assert.deepStrictEqual(headerOf(bytes), { size: 8, text: "{}      " });
    assert.equal(bytes.length, 16);
    const decoded = decodeSafetensors(bytes);
    assert.equal(decoded.tensors.size, 0);
    assert.deepStrictEqual(decoded.metadata, {});
  });

  await t.step("a __proto__ metadata key stays plain data", () => {
    const metadata = JSON.parse('{"__proto__":"x","k":"v"}') as Record<string, string>;
    const decoded = decodeSafetensors(encodeSafetensors({}, metadata));
    assert.deepStrictEqual(Object.entries(decoded.metadata), [["__proto__", "x"], ["k", "v"]]);
    assert.equal(Object.getPrototypeOf(decoded.metadata), Object.prototype);
  });

  await t.step("handles a multi-megabyte tensor", () => {
    const data = Float32Array.from({ length: 1 << 20 }, (_, i) => Math.sin(i));
    const decoded = decodeSafetensors(encodeSafetensors({ big: { shape: [1024, 1024], data } }));
    assert.deepStrictEqual(decoded.tensors.get("big")?.data, data);
  });
});

Deno.test("encodeSafetensors() pads the header with spaces so data starts at a multiple of 8", () => {
  for (let nameLength = 1; nameLength <= 16; nameLength++) {
    const name = "n".repeat(nameLength);
    const bytes = encodeSafetensors({ [name]: { shape: [2], data: new Float32Array([1, 2]) } });
    const { size, text } = headerOf(bytes);
    assert.equal(size % 8, 0, `header size for name length ${nameLength}`);
    assert.equal((8 + size) % 8, 0);
    const trimmed = text.trimEnd();
    assert.match(text.slice(trimmed.length), /^ *$/);
    assert.ok(size - trimmed.length < 8, "no more padding than needed");
    assert.deepStrictEqual(JSON.parse(trimmed), {
      [name]: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
    });
    assert.equal(bytes.length, 8 + size + 8);
    assertValues(new Float32Array(bytes.slice(8 + size).buffer), [1, 2]);
  }
});

Deno.test("encodeSafetensors() writes F32 little-endian bytes in a known layout", () => {
  const bytes = encodeSafetensors(
    { "attn.0": { shape: [1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) } },
    { framework: "pt" },
  );
  const { size, text } = headerOf(bytes);
  assert.equal(
    text.trimEnd(),
    '{"__metadata__":{"framework":"pt"},' +
      '"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}',
  );
  assert.deepStrictEqual(
    Array.from(bytes.subarray(8 + size)),
    [0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64],
  );
});

Deno.test("encodeSafetensors() is byte-for-byte deterministic", () => {
  const first = encodeSafetensors(sampleTensors(), { a: "1", b: "2" });
  const second = encodeSafetensors(sampleTensors(), { a: "1", b: "2" });
  assert.deepStrictEqual(second, first);
});

Deno.test("encodeSafetensors() reads only the viewed part of a Float32Array", () => {
  const backing = new Float32Array([9, 1, 2, 3, 9]);
  const bytes = encodeSafetensors({ v: { shape: [3], data: backing.subarray(1, 4) } });
  assertValues(decodeSafetensors(bytes).tensors.get("v")!.data, [1, 2, 3]);
});

Deno.test("encodeSafetensors() refuses invalid tensors and metadata", async (t) => {
  await t.step("data length not matching the shape names the tensor and both sizes", () => {
    assertSafetensorsError(
      () => encodeSafetensors({ w: { shape: [2, 3], data: new Float32Array(5) } }),
      '"w"',
      "5",
      "6",
    );
  });
  await t.step("a non-string metadata value", () => {
    const metadata = { ok: "yes", bad: 3 } as unknown as Record<string, string>;
    assertSafetensorsError(() => encodeSafetensors({}, metadata), '"bad"', "string");
  });
  await t.step("a negative or fractional shape entry", () => {
    assertSafetensorsError(
      () => encodeSafetensors({ s: { shape: [-1], data: new Float32Array(0) } }),
      '"s"',
      "-1",
    );
    assertSafetensorsError(
      () => encodeSafetensors({ s: { shape: [1.5], data: new Float32Array(0) } }),
      '"s"',
      "1.5",
    );
  });
  await t.step("a repeated name", () => {
    const one = { shape: [1], data: new Float32Array(1) };
    assertSafetensorsError(() => encodeSafetensors([["x", one], ["x", one]]), '"x"', "more than");
  });
  await t.step("the reserved name __metadata__", () => {
    assertSafetensorsError(
      () => encodeSafetensors({ __metadata__: { shape: [], data: new Float32Array(1) } }),
      "__metadata__",
    );
  });
  await t.step("data that is not a Float32Array", () => {
    const bad = { shape: [1], data: [1] } as unknown as Tensor;
    assertSafetensorsError(() => encodeSafetensors({ q: bad }), '"q"', "Float32Array");
  });
});

// ---------------------------------------------------------------------------------------------
// Reader: conversions and alignment.

const F16_BITS = [
  0x0000, // 0
  0x8000, // -0
  0x3c00, // 1
  0xc000, // -2
  0x3555, // 0.333251953125
  0x7bff, // 65504, the largest finite half
  0x0400, // 2^-14, the smallest normal
  0x0001, // 2^-24, the smallest subnormal
  0x83ff, // -(1023 * 2^-24), the largest subnormal, negated
  0x7c00, // Infinity
  0xfc00, // -Infinity
  0x7e00, // NaN
];
const F16_VALUES = [
  0,
  -0,
  1,
  -2,
  0.333251953125,
  65504,
  2 ** -14,
  2 ** -24,
  -1023 * 2 ** -24,
  Infinity,
  -Infinity,
  NaN,
];
const BF16_BITS = [0x3f80, 0xc040, 0x4049, 0x8000, 0x7f80, 0xff80, 0x0001, 0x7fc0];
const BF16_VALUES = [1, -3, 3.140625, -0, Infinity, -Infinity, 2 ** -133, NaN];
const F64_VALUES = [1.5, -0.1, 1e300, 1e-50, NaN, Math.PI];
const F64_AS_F32 = [1.5, Math.fround(-0.1), Infinity, 0, NaN, Math.fround(Math.PI)];

Deno.test("decodeSafetensors() converts F64, F16 and BF16 in a hand-built file", () => {
  const data = concatBytes([
    leBytes("f64", F64_VALUES), // [0, 48)
    leBytes("u16", F16_BITS), // [48, 72)
    leBytes("u16", BF16_BITS), // [72, 88)
    leBytes("f32", [7.25]), // [88, 92)
  ]);
  const bytes = buildFile(
    {
      __metadata__: { source: "hand-built" },
      f64: { dtype: "F64", shape: [2, 3], data_offsets: [0, 48] },
      f16: { dtype: "F16", shape: [3, 4], data_offsets: [48, 72] },
      bf16: { dtype: "BF16", shape: [8], data_offsets: [72, 88] },
      f32: { dtype: "F32", shape: [], data_offsets: [88, 92] },
    },
    data,
    { padTo: 8 },
  );
  const { tensors, metadata } = decodeSafetensors(bytes);
  assert.deepStrictEqual(metadata, { source: "hand-built" });
  assert.deepStrictEqual([...tensors.keys()], ["f64", "f16", "bf16", "f32"]);
  assert.deepStrictEqual(tensors.get("f64")!.shape, [2, 3]);
  assertValues(tensors.get("f64")!.data, F64_AS_F32);
  assert.deepStrictEqual(tensors.get("f16")!.shape, [3, 4]);
  assertValues(tensors.get("f16")!.data, F16_VALUES);
  assertValues(tensors.get("bf16")!.data, BF16_VALUES);
  assert.deepStrictEqual(tensors.get("f32")!.shape, []);
  assertValues(tensors.get("f32")!.data, [7.25]);
});

Deno.test("decodeSafetensors() converts every F16 bit pattern like a reference formula", () => {
  const bits = Array.from({ length: 0x10000 }, (_, i) => i);
  const bytes = buildFile(
    { all: { dtype: "F16", shape: [0x10000], data_offsets: [0, 0x20000] } },
    leBytes("u16", bits),
  );
  const got = decodeSafetensors(bytes).tensors.get("all")!.data;
  for (const h of bits) {
    const e = (h >> 10) & 31;
    const m = h & 1023;
    const s = h & 0x8000 ? -1 : 1;
    const want = e === 31
      ? (m ? NaN : s * Infinity)
      : e === 0
      ? s * (m / 1024) * 2 ** -14
      : s * (1 + m / 1024) * 2 ** (e - 15);
    if (!Object.is(got[h], want)) assert.fail(`F16 0x${h.toString(16)}: ${got[h]} !== ${want}`);
  }
});

Deno.test("decodeSafetensors() reads tensors at unaligned offsets", async (t) => {
  // Every supported dtype has an even size and the buffer may have no holes, so an odd offset can
  // only come from the file position: an odd header size or a Uint8Array at an odd byteOffset.
  const header = {
    h: { dtype: "F16", shape: [1], data_offsets: [0, 2] }, // F32 then starts at 2, not 4-aligned
    f: { dtype: "F32", shape: [2], data_offsets: [2, 10] },
    g: { dtype: "F64", shape: [1], data_offsets: [10, 18] }, // not 8-aligned
    b: { dtype: "BF16", shape: [1], data_offsets: [18, 20] },
  };
  const data = concatBytes([
    leBytes("u16", [0x3c00]),
    leBytes("f32", [0.1, -7]),
    leBytes("f64", [2.5]),
    leBytes("u16", [0xbf80]),
  ]);
  const check = (bytes: Uint8Array): void => {
    const { tensors } = decodeSafetensors(bytes);
    assertValues(tensors.get("h")!.data, [1]);
    assertValues(tensors.get("f")!.data, [Math.fround(0.1), -7]);
    assertValues(tensors.get("g")!.data, [2.5]);
    assertValues(tensors.get("b")!.data, [-1]);
    for (const tensor of tensors.values()) assert.equal(tensor.data.byteOffset, 0);
  };

  await t.step("odd header size puts every tensor at an odd file offset", () => {
    let text = JSON.stringify(header);
    if (text.length % 2 === 0) text += " ";
    const bytes = buildFile(text, data);
    assert.equal((8 + headerOf(bytes).size) % 2, 1);
    check(bytes);
  });
  await t.step("file viewed at an odd byteOffset of a larger buffer", () => {
    for (const prefix of [1, 3, 5, 7]) {
      const bytes = buildFile(header, data, { padTo: 8, prefix });
      assert.equal(bytes.byteOffset, prefix);
      check(bytes);
    }
  });
});

Deno.test("decodeSafetensors() returns copies that do not alias the input", () => {
  const bytes = encodeSafetensors({ w: { shape: [4], data: new Float32Array([1, 2, 3, 4]) } });
  const first = decodeSafetensors(bytes).tensors.get("w")!.data;
  assert.notEqual(first.buffer, bytes.buffer);
  bytes.fill(0, bytes.length - 16);
  assertValues(first, [1, 2, 3, 4]);
  first[0] = 99;
  assertValues(decodeSafetensors(bytes).tensors.get("w")!.data, [0, 0, 0, 0]);
});

Deno.test("decodeSafetensors() with copy: false gives views of aligned F32 data and copies the rest", () => {
  // Header of 8k bytes puts the data 4-byte aligned in a file at offset 0 of its buffer.
  const header = {
    a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
    h: { dtype: "F16", shape: [2], data_offsets: [8, 12] },
    b: { dtype: "F32", shape: [1], data_offsets: [12, 16] },
  };
  const data = concatBytes([
    leBytes("f32", [1.5, -2]),
    leBytes("u16", [0x3c00, 0xc000]),
    leBytes("f32", [3]),
  ]);
  const aligned = buildFile(header, data, { padTo: 8 });
  const { tensors } = decodeSafetensors(aligned, { copy: false });
  for (const name of ["a", "b"]) {
    assert.equal(tensors.get(name)!.data.buffer, aligned.buffer, `${name} is a view`);
  }
  assert.notEqual(tensors.get("h")!.data.buffer, aligned.buffer, "F16 is converted");
  assertValues(tensors.get("a")!.data, [1.5, -2]);
  assertValues(tensors.get("h")!.data, [1, -2]);
  assertValues(tensors.get("b")!.data, [3]);
  aligned.fill(0, aligned.length - 4);
  assertValues(tensors.get("b")!.data, [0]); // a view sees changes to the input

  // One byte into its buffer, the same file's F32 data is misaligned: copied, same values.
  const shifted = buildFile(header, data, { padTo: 8, prefix: 1 });
  const copied = decodeSafetensors(shifted, { copy: false }).tensors;
  for (const name of ["a", "h", "b"]) {
    assert.notEqual(copied.get(name)!.data.buffer, shifted.buffer, `${name} is a copy`);
  }
  assertValues(copied.get("a")!.data, [1.5, -2]);
  assertValues(copied.get("b")!.data, [3]);
});

Deno.test("decodeSafetensors() accepts valid variations of the header", async (t) => {
  await t.step("tensors listed out of offset order come back in offset order", () => {
    const bytes = buildFile(
      {
        second: { dtype: "F32", shape: [1], data_offsets: [4, 8] },
        first: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
      },
      leBytes("f32", [1, 2]),
    );
    const { tensors } = decodeSafetensors(bytes);
    assert.deepStrictEqual([...tensors.keys()], ["first", "second"]);
    assertValues(tensors.get("second")!.data, [2]);
  });
  await t.step("zero-size tensors may share an offset, even at the end", () => {
    const bytes = buildFile(
      {
        a: { dtype: "F32", shape: [0], data_offsets: [0, 0] },
        b: { dtype: "F16", shape: [2, 0, 3], data_offsets: [0, 0] },
        c: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
        d: { dtype: "BF16", shape: [0], data_offsets: [4, 4] },
      },
      leBytes("f32", [5]),
    );
    const { tensors } = decodeSafetensors(bytes);
    assert.equal(tensors.size, 4);
    assert.deepStrictEqual(tensors.get("b")!.shape, [2, 0, 3]);
    assert.equal(tensors.get("d")!.data.length, 0);
  });
  await t.step("an empty object header with an empty buffer", () => {
    const decoded = decodeSafetensors(buildFile("{}"));
    assert.equal(decoded.tensors.size, 0);
    assert.deepStrictEqual(decoded.metadata, {});
  });
  await t.step("unknown extra keys in an entry are ignored", () => {
    const bytes = fileWithEntry({ dtype: "F32", shape: [2], data_offsets: [0, 8], extra: 1 });
    assert.deepStrictEqual(decodeSafetensors(bytes).tensors.get("t")!.shape, [2]);
  });
});

// ---------------------------------------------------------------------------------------------
// Reader: refusals.

Deno.test("decodeSafetensors() refuses a file shorter than 8 bytes", () => {
  for (let n = 0; n < 8; n++) assertRefuses(new Uint8Array(n), "truncated", `${n} bytes`);
});

Deno.test("decodeSafetensors() refuses a truncated file", async (t) => {
  const valid = encodeSafetensors(sampleTensors(), { a: "b" });
  await t.step("header size larger than the rest of the file", () => {
    const { size } = headerOf(valid);
    assertRefuses(valid.slice(0, 8 + size - 1), "truncated", `${size}`);
    assertRefuses(valid.slice(0, 8), "truncated");
  });
  await t.step("data buffer cut short", () => {
    assertRefuses(valid.slice(0, valid.length - 1), "out of the", "data buffer");
  });
});

Deno.test("decodeSafetensors() refuses a header larger than maxHeaderBytes", async (t) => {
  const bytes = buildFile({}, new Uint8Array(0), { padTo: 64 });
  await t.step("the option is honoured", () => {
    assertSafetensorsError(
      () => decodeSafetensors(bytes, { maxHeaderBytes: 63 }),
      "header size 64",
      "maxHeaderBytes (63)",
    );
    assert.equal(decodeSafetensors(bytes, { maxHeaderBytes: 64 }).tensors.size, 0);
  });
  await t.step("the default limit is 100_000_000 bytes", () => {
    const big = new Uint8Array(16);
    new DataView(big.buffer).setBigUint64(0, 100_000_001n, true);
    assertRefuses(big, "100000001", "maxHeaderBytes (100000000)");
  });
  await t.step("an invalid maxHeaderBytes option", () => {
    assertSafetensorsError(
      () => decodeSafetensors(bytes, { maxHeaderBytes: NaN }),
      "maxHeaderBytes",
    );
    assertSafetensorsError(
      () => decodeSafetensors(bytes, { maxHeaderBytes: -1 }),
      "maxHeaderBytes",
    );
  });
});

Deno.test("decodeSafetensors() refuses a header size that does not fit in a safe integer", () => {
  for (const size of [2n ** 64n - 1n, 2n ** 53n, 2n ** 63n]) {
    const bytes = new Uint8Array(32);
    new DataView(bytes.buffer).setBigUint64(0, size, true);
    assertRefuses(bytes, "safe integer");
  }
  // 2^53 - 1 is safe, but far beyond the limit.
  const bytes = new Uint8Array(32);
  new DataView(bytes.buffer).setBigUint64(0, 2n ** 53n - 1n, true);
  assertRefuses(bytes, "maxHeaderBytes");
  assertRefuses(bytes.slice(), "9007199254740991");
  assertSafetensorsError(
    () => decodeSafetensors(bytes, { maxHeaderBytes: Infinity }),
    "truncated",
  );
});

Deno.test("decodeSafetensors() refuses a header that is not a UTF-8 JSON object", async (t) => {
  await t.step("invalid UTF-8", () => {
    const header = new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]);
    assertRefuses(buildRaw(header, new Uint8Array(0)), "UTF-8");
  });
  await t.step("a truncated UTF-8 sequence", () => {
    const header = new Uint8Array([0x7b, 0x7d, 0x20, 0xe2, 0x82]);
    assertRefuses(buildRaw(header, new Uint8Array(0)), "UTF-8");
  });
  await t.step("invalid JSON", () => {
    assertRefuses(buildFile('{"t": {"dtype": "F32",'), "JSON");
    assertRefuses(buildFile("{'single': 1}"), "JSON");
    assertRefuses(buildFile(""), "JSON");
    assertRefuses(buildFile("{} {}"), "JSON");
  });
  await t.step("JSON that is not an object", () => {
    assertRefuses(buildFile("[]"), "not a JSON object", "array");
    assertRefuses(buildFile("null"), "not a JSON object", "null");
    assertRefuses(buildFile("42"), "not a JSON object", "number");
    assertRefuses(buildFile('"text"'), "not a JSON object", "string");
    assertRefuses(buildFile("true"), "not a JSON object", "boolean");
  });
});

Deno.test("decodeSafetensors() refuses malformed tensor entries", async (t) => {
  await t.step("an entry that is not an object", () => {
    assertRefuses(fileWithEntry(null), '"t"', "not an object");
    assertRefuses(fileWithEntry([1, 2]), '"t"', "not an object");
    assertRefuses(fileWithEntry("F32"), '"t"', "not an object");
  });
  await t.step("a missing or non-string dtype", () => {
    assertRefuses(fileWithEntry({ shape: [2], data_offsets: [0, 8] }), '"t"', "dtype");
    assertRefuses(fileWithEntry({ dtype: 32, shape: [2], data_offsets: [0, 8] }), '"t"', "dtype");
  });
  await t.step("a dtype not in the spec", () => {
    assertRefuses(
      fileWithEntry({ dtype: "F7", shape: [2], data_offsets: [0, 8] }),
      '"t"',
      "unknown dtype",
      '"F7"',
    );
    assertRefuses(
      fileWithEntry({ dtype: "f32", shape: [2], data_offsets: [0, 8] }),
      "unknown dtype",
      '"f32"',
    );
  });
  await t.step("a missing or non-array shape", () => {
    assertRefuses(fileWithEntry({ dtype: "F32", data_offsets: [0, 8] }), '"t"', "shape");
    assertRefuses(fileWithEntry({ dtype: "F32", shape: 2, data_offsets: [0, 8] }), '"t"', "shape");
  });
  await t.step("missing or malformed data_offsets", () => {
    for (
      const offsets of [undefined, 8, [8], [0, 4, 8], [0, "8"], [-4, 4], [0, 8.5], { 0: 0, 1: 8 }]
    ) {
      assertRefuses(
        fileWithEntry({ dtype: "F32", shape: [2], data_offsets: offsets }),
        '"t"',
        "data_offsets",
      );
    }
  });
});

Deno.test("decodeSafetensors() refuses unsupported dtypes, naming the dtype and tensor", () => {
  const cases: [string, number][] = [
    ["I64", 8],
    ["U64", 8],
    ["I32", 4],
    ["U32", 4],
    ["I16", 2],
    ["U16", 2],
    ["I8", 1],
    ["U8", 1],
    ["BOOL", 1],
    ["F8_E4M3", 1],
    ["F8_E5M2", 1],
    ["C64", 8],
  ];
  for (const [dtype, size] of cases) {
    const bytes = buildFile(
      { x: { dtype, shape: [2], data_offsets: [0, 2 * size] } },
      new Uint8Array(2 * size),
    );
    const err = assertRefuses(bytes);
    assert.equal(
      err.message,
      `tensor "x" has dtype ${dtype}; only F32, F64, F16 and BF16 are supported`,
    );
  }
});

Deno.test("decodeSafetensors() refuses invalid shapes", async (t) => {
  const cases: [string, string, string][] = [
    ["a negative entry", "[2, -1]", "-1"],
    ["a non-integer entry", "[1.5]", "1.5"],
    ["a non-finite entry", "[1e400]", "Infinity"],
    ["a string entry", '["2"]', '"2"'],
    ["a null entry", "[null]", "null"],
    ["an entry beyond safe integers", "[9007199254740993]", "9007199254740992"],
  ];
  for (const [label, shape, mention] of cases) {
    await t.step(label, () => {
      const text = `{"t":{"dtype":"F32","shape":${shape},"data_offsets":[0,8]}}`;
      assertRefuses(buildFile(text, new Uint8Array(8)), '"t"', "shape", mention);
    });
  }
  await t.step("a product of entries that overflows", () => {
    const shape = [2 ** 30, 2 ** 30, 2 ** 30];
    assertRefuses(
      fileWithEntry({ dtype: "F32", shape, data_offsets: [0, 8] }),
      '"t"',
      "overflows",
    );
  });
});

Deno.test("decodeSafetensors() refuses inconsistent data offsets", async (t) => {
  const f32 = (shape: number[], data_offsets: number[]) => ({ dtype: "F32", shape, data_offsets });

  await t.step("offsets beyond the data buffer", () => {
    assertRefuses(fileWithEntry(f32([3], [0, 12])), '"t"', "[0, 12]", "8-byte data buffer");
    assertRefuses(fileWithEntry(f32([0], [9, 9])), '"t"', "[9, 9]", "out of the");
  });
  await t.step("end before begin", () => {
    assertRefuses(fileWithEntry(f32([1], [8, 4])), '"t"', "[8, 4]", "end < begin");
  });
  await t.step("byte size not matching shape and dtype", () => {
    assertRefuses(fileWithEntry(f32([3], [0, 8])), '"t"', "8 bytes", "[3]", "12");
    const f16 = { dtype: "F16", shape: [2, 2], data_offsets: [0, 4] };
    assertRefuses(buildFile({ h: f16 }, new Uint8Array(4)), '"h"', "F16", "needs 8");
    const scalar = { dtype: "F64", shape: [], data_offsets: [0, 4] };
    assertRefuses(buildFile({ s: scalar }, new Uint8Array(4)), '"s"', "F64", "needs 8");
  });
  await t.step("overlapping tensors", () => {
    const bytes = buildFile({ a: f32([2], [0, 8]), b: f32([2], [4, 12]) }, new Uint8Array(12));
    assertRefuses(bytes, '"a"', '"b"', "overlap");
    const same = buildFile({ a: f32([1], [0, 4]), b: f32([1], [0, 4]) }, new Uint8Array(4));
    assertRefuses(same, '"a"', '"b"', "overlap");
    const inside = buildFile({ a: f32([2], [0, 8]), z: f32([0], [4, 4]) }, new Uint8Array(8));
    assertRefuses(inside, '"z"', "overlap");
  });
  await t.step("a hole between tensors", () => {
    const bytes = buildFile({ a: f32([1], [0, 4]), b: f32([1], [8, 12]) }, new Uint8Array(12));
    assertRefuses(bytes, "hole", "[4, 8)", '"b"', "not covered");
  });
  await t.step("a hole at the start", () => {
    assertRefuses(fileWithEntry(f32([1], [4, 8])), "hole", "[0, 4)", '"t"');
  });
  await t.step("trailing bytes after the last tensor", () => {
    assertRefuses(fileWithEntry(f32([1], [0, 4])), "trailing", "[4, 8)", "not covered");
    assertRefuses(buildFile({}, new Uint8Array(3)), "trailing", "[0, 3)");
  });
});

Deno.test("decodeSafetensors() refuses __metadata__ that is not an object of strings", async (t) => {
  const cases: [string, unknown, string][] = [
    ["an array", ["a"], '["a"]'],
    ["a string", "text", '"text"'],
    ["null", null, "null"],
    ["a number value", { n: 1 }, '"n"'],
    ["a nested object value", { o: { deep: "x" } }, '"o"'],
    ["a null value", { z: null }, '"z"'],
  ];
  for (const [label, metadata, mention] of cases) {
    await t.step(label, () => {
      assertRefuses(buildFile({ __metadata__: metadata }), "__metadata__", "strings", mention);
    });
  }
});

Deno.test("decodeSafetensors() refuses input that is not a Uint8Array", () => {
  const notBytes = new ArrayBuffer(16) as unknown as Uint8Array;
  assertRefuses(notBytes, "Uint8Array");
});

// ---------------------------------------------------------------------------------------------
// Robustness.

/** A tiny seeded PRNG (mulberry32) returning floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 0x1_0000_0000;
  };
}

Deno.test("decodeSafetensors() throws only SafetensorsError on randomly corrupted files", () => {
  const valid = [
    encodeSafetensors(sampleTensors(), { format: "pt", version: "1" }),
    buildFile(
      {
        f16: { dtype: "F16", shape: [12], data_offsets: [0, 24] },
        bf16: { dtype: "BF16", shape: [2, 4], data_offsets: [24, 40] },
        f64: { dtype: "F64", shape: [6], data_offsets: [40, 88] },
      },
      concatBytes([
        leBytes("u16", F16_BITS),
        leBytes("u16", BF16_BITS),
        leBytes("f64", F64_VALUES),
      ]),
    ),
  ];
  const random = mulberry32(0x5eed);
  const pick = (n: number): number => Math.floor(random() * n);
  const digits = new TextEncoder().encode('0123456789-.e[]{}":, ');
  let accepted = 0;
  let refused = 0;

  for (let i = 0; i < 500; i++) {
    const source = valid[i % valid.length];
    // Bias towards the first 8 bytes and the header, where corruption is most interesting.
    const headerEnd = 8 + headerOf(source).size;
    const position = random() < 0.7 ? pick(headerEnd) : pick(source.length);
    let bytes = source.slice();
    const kind = pick(4);
    if (kind === 0) bytes[position] ^= 1 << pick(8);
    else if (kind === 1) bytes[position] = pick(256);
    else if (kind === 2) bytes[position] = digits[pick(digits.length)];
    else bytes = bytes.slice(0, position);

    try {
      const { tensors } = decodeSafetensors(bytes);
      for (const tensor of tensors.values()) assert.ok(tensor.data instanceof Float32Array);
      accepted++;
    } catch (err) {
      if (!(err instanceof SafetensorsError)) {
        assert.fail(`case ${i} (kind ${kind} at ${position}) threw ${err}`);
      }
      refused++;
    }
  }
  assert.ok(accepted > 0, "some corruptions (e.g. in tensor data) should still decode");
  assert.ok(refused > 0, "some corruptions should be refused");
});
