// safetensors: 8-byte little-endian header length, JSON header, raw little-endian tensors.
//
// Reader and writer for the safetensors format described at
// https://github.com/huggingface/safetensors. The reader validates the whole header (dtypes,
// shapes, offsets, coverage of the byte buffer, metadata) before converting anything, and converts
// F32, F64, F16 and BF16 tensors to freshly allocated Float32Arrays (or, on request, F32 tensors to
// views of the input). The writer always emits F32.

/**
 * A dtype name from the safetensors spec.
 *
 * @example
 * ```ts
 * const dtype: SafetensorsDtype = "BF16";
 * ```
 */
export type SafetensorsDtype =
  | "BOOL"
  | "F4"
  | "F6_E2M3"
  | "F6_E3M2"
  | "U8"
  | "I8"
  | "F8_E5M2"
  | "F8_E4M3"
  | "F8_E8M0"
  | "I16"
  | "U16"
  | "F16"
  | "BF16"
  | "I32"
  | "U32"
  | "F32"
  | "C64"
  | "F64"
  | "I64"
  | "U64";

/**
 * A tensor as this project holds it: always float32 values in row-major order.
 *
 * @example
 * ```ts
 * const t: Tensor = { shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) };
 * ```
 */
export interface Tensor {
  /** Dimension sizes, outermost first; `[]` is a scalar holding one value. */
  shape: number[];
  /** The values in row-major (C) order; its length is the product of `shape`. */
  data: Float32Array;
}

/**
 * The error thrown for any malformed safetensors input or invalid tensor given to the writer.
 *
 * @example
 * ```ts
 * try {
 *   decodeSafetensors(new Uint8Array(3));
 * } catch (err) {
 *   if (err instanceof SafetensorsError) console.error(err.message);
 * }
 * ```
 */
export class SafetensorsError extends Error {
  override name = "SafetensorsError";

  /**
   * Creates the error with a message that names the problem and, where there is one, the tensor.
   *
   * @param message What is wrong, e.g. `tensor "x" has dtype I64; ...`.
   * @returns A new SafetensorsError.
   * @example
   * ```ts
   * throw new SafetensorsError('tensor "w" has unknown dtype "F7"');
   * ```
   */
  constructor(message: string) {
    super(message);
  }
}

/**
 * Options for {@linkcode decodeSafetensors}.
 *
 * @example
 * ```ts
 * const options: DecodeOptions = { maxHeaderBytes: 1_000_000 };
 * ```
 */
export interface DecodeOptions {
  /**
   * The largest JSON header, in bytes, that the reader accepts.
   *
   * @default 100_000_000
   */
  maxHeaderBytes?: number;
  /**
   * Whether every tensor gets memory of its own. `false` lets an F32 tensor be a view of the
   * input where that needs no conversion (a little-endian host, data 4-byte aligned in the
   * input's buffer), saving a copy when the caller owns the bytes and will not change them;
   * other tensors are still converted into fresh arrays.
   *
   * @default true
   */
  copy?: boolean;
}

/**
 * The result of {@linkcode decodeSafetensors}: the tensors and the `__metadata__` strings.
 *
 * @example
 * ```ts
 * const bytes = encodeSafetensors({ w: { shape: [1], data: new Float32Array([2]) } });
 * const { tensors, metadata }: DecodedSafetensors = decodeSafetensors(bytes);
 * ```
 */
export interface DecodedSafetensors {
  /** Tensors by name, in order of their position in the file's byte buffer. */
  tensors: Map<string, Tensor>;
  /** The `__metadata__` object of the header, or `{}` when the file has none. */
  metadata: Record<string, string>;
}

/** Every dtype name of the spec, with its size in bits. */
const DTYPE_BITS: Readonly<Record<SafetensorsDtype, number>> = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
};

/** The dtypes this reader converts to float32, with their size in bytes. */
type FloatDtype = "F32" | "F64" | "F16" | "BF16";
const FLOAT_BYTES: Readonly<Record<FloatDtype, number>> = { F32: 4, F64: 8, F16: 2, BF16: 2 };

const METADATA_KEY = "__metadata__";
const DEFAULT_MAX_HEADER_BYTES = 100_000_000;
const TWO_POW_32 = 0x1_0000_0000;
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const hasOwn = (obj: object, key: string): boolean =>
  Object.prototype.hasOwnProperty.call(obj, key);

function isDtype(value: string): value is SafetensorsDtype {
  return hasOwn(DTYPE_BITS, value);
}

function isFloatDtype(value: SafetensorsDtype): value is FloatDtype {
  return hasOwn(FLOAT_BYTES, value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Renders a value from an untrusted header for an error message, kept short. */
function show(value: unknown): string {
  const text = render(value, 0);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

function render(value: unknown, depth: number): string {
  if (typeof value === "number") return String(value); // keeps Infinity and NaN readable
  if (Array.isArray(value) && depth < 2) {
    return `[${value.slice(0, 16).map((v) => render(v, depth + 1)).join(", ")}${
      value.length > 16 ? ", ..." : ""
    }]`;
  }
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** One validated tensor entry of the header. */
interface Entry {
  name: string;
  dtype: FloatDtype;
  shape: number[];
  count: number;
  begin: number;
  end: number;
}

/**
 * Reads a safetensors file, validating it fully, and converts every tensor to float32.
 *
 * @param bytes The complete file contents; any byte offset into any buffer is fine.
 * @param options Limits for untrusted input; see {@linkcode DecodeOptions}.
 * @returns Tensors in byte-buffer order, plus the metadata strings; the tensors never alias
 *   `bytes` unless `options.copy` is false.
 * @throws {SafetensorsError} If the file is malformed or holds a dtype other than F32, F64, F16
 *   or BF16.
 * @example
 * ```ts
 * const bytes = await Deno.readFile("model.safetensors");
 * const { tensors, metadata } = decodeSafetensors(bytes);
 * console.log(tensors.get("weight")?.shape, metadata);
 * ```
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  options: DecodeOptions = {},
): DecodedSafetensors {
  if (!(bytes instanceof Uint8Array)) {
    throw new SafetensorsError("input must be a Uint8Array");
  }
  const copy = options.copy ?? true;
  const maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  if (typeof maxHeaderBytes !== "number" || !(maxHeaderBytes >= 0)) {
    throw new SafetensorsError(
      `maxHeaderBytes must be a non-negative number, got ${show(maxHeaderBytes)}`,
    );
  }
  if (bytes.length < 8) {
    throw new SafetensorsError(
      `file is truncated: ${bytes.length} bytes, but the header size alone takes 8 bytes`,
    );
  }

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const low = view.getUint32(0, true);
  const high = view.getUint32(4, true);
  // 2^53 = 2^21 * 2^32: any high word of 2^21 or more leaves the safe integer range.
  if (high >= 0x20_0000) {
    throw new SafetensorsError(
      `header size 0x${high.toString(16).padStart(8, "0")}${
        low.toString(16).padStart(8, "0")
      } does not fit in a safe integer`,
    );
  }
  const headerSize = high * TWO_POW_32 + low;
  if (headerSize > maxHeaderBytes) {
    throw new SafetensorsError(
      `header size ${headerSize} bytes exceeds maxHeaderBytes (${maxHeaderBytes})`,
    );
  }
  if (headerSize > bytes.length - 8) {
    throw new SafetensorsError(
      `file is truncated: header size ${headerSize} bytes exceeds the ${
        bytes.length - 8
      } bytes that follow the 8-byte header size`,
    );
  }

  const header = parseHeader(bytes.subarray(8, 8 + headerSize));
  const dataStart = 8 + headerSize;
  const bufferLength = bytes.length - dataStart;

  let metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      metadata = parseMetadata(value);
    } else {
      entries.push(parseEntry(name, value, bufferLength));
    }
  }
  checkCoverage(entries, bufferLength);

  // Everything is validated; conversion cannot fail on the input from here on.
  const tensors = new Map<string, Tensor>();
  for (const entry of entries) {
    const start = dataStart + entry.begin;
    tensors.set(entry.name, {
      shape: entry.shape,
      data: !copy && entry.dtype === "F32" && LITTLE_ENDIAN_HOST &&
          (bytes.byteOffset + start) % 4 === 0
        ? new Float32Array(bytes.buffer, bytes.byteOffset + start, entry.count)
        : convert(bytes, view, entry.dtype, start, entry.count),
    });
  }
  return { tensors, metadata };
}

function parseHeader(headerBytes: Uint8Array): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw new SafetensorsError("header is not valid UTF-8");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const detail = err instanceof Error ? `: ${err.message}` : "";
    throw new SafetensorsError(`header is not valid JSON${detail}`);
  }
  if (!isPlainObject(parsed)) {
    const kind = parsed === null ? "null" : Array.isArray(parsed) ? "an array" : typeof parsed;
    throw new SafetensorsError(`header is not a JSON object (got ${kind})`);
  }
  return parsed;
}

function parseMetadata(value: unknown): Record<string, string> {
  if (!isPlainObject(value)) {
    throw new SafetensorsError(
      `${METADATA_KEY} is not an object of strings (got ${show(value)})`,
    );
  }
  const pairs = Object.entries(value);
  for (const [key, item] of pairs) {
    if (typeof item !== "string") {
      throw new SafetensorsError(
        `${METADATA_KEY} is not an object of strings: key ${show(key)} has value ${show(item)}`,
      );
    }
  }
  // fromEntries defines own properties, so a key such as "__proto__" stays plain data.
  return Object.fromEntries(pairs) as Record<string, string>;
}

function parseEntry(name: string, value: unknown, bufferLength: number): Entry {
  const label = `tensor ${show(name)}`;
  if (!isPlainObject(value)) {
    throw new SafetensorsError(`${label} entry is not an object (got ${show(value)})`);
  }

  const dtype = value.dtype;
  if (typeof dtype !== "string") {
    throw new SafetensorsError(`${label} has a missing or non-string dtype (got ${show(dtype)})`);
  }
  if (!isDtype(dtype)) {
    throw new SafetensorsError(`${label} has unknown dtype ${show(dtype)}`);
  }
  if (!isFloatDtype(dtype)) {
    throw new SafetensorsError(
      `${label} has dtype ${dtype}; only F32, F64, F16 and BF16 are supported`,
    );
  }

  const rawShape = value.shape;
  if (!Array.isArray(rawShape)) {
    throw new SafetensorsError(`${label} has a missing or non-array shape (got ${show(rawShape)})`);
  }
  const shape: number[] = [];
  let count = 1;
  for (let i = 0; i < rawShape.length; i++) {
    const dim: unknown = rawShape[i];
    if (typeof dim !== "number" || !Number.isSafeInteger(dim) || dim < 0) {
      throw new SafetensorsError(
        `${label} has invalid shape ${show(rawShape)}: entry ${i} is ${
          show(dim)
        }, not a non-negative integer`,
      );
    }
    shape.push(dim + 0); // + 0 turns -0 into 0
    count *= dim;
  }
  const byteSize = count * FLOAT_BYTES[dtype];
  if (!Number.isSafeInteger(byteSize)) {
    throw new SafetensorsError(`${label} has shape ${show(rawShape)} whose size overflows`);
  }

  const offsets = value.data_offsets;
  if (
    !Array.isArray(offsets) || offsets.length !== 2 ||
    !offsets.every((o: unknown) => typeof o === "number" && Number.isSafeInteger(o) && o >= 0)
  ) {
    throw new SafetensorsError(
      `${label} has invalid data_offsets ${
        show(offsets)
      }; expected [begin, end] of non-negative integers`,
    );
  }
  const begin = (offsets[0] as number) + 0;
  const end = (offsets[1] as number) + 0;
  if (end < begin) {
    throw new SafetensorsError(`${label} has data_offsets [${begin}, ${end}] with end < begin`);
  }
  if (end > bufferLength) {
    throw new SafetensorsError(
      `${label} has data_offsets [${begin}, ${end}] out of the ${bufferLength}-byte data buffer`,
    );
  }
  if (end - begin !== byteSize) {
    throw new SafetensorsError(
      `${label} has ${end - begin} bytes of data, but shape ${
        show(shape)
      } of ${dtype} needs ${byteSize}`,
    );
  }
  return { name, dtype, shape, count, begin, end };
}

/** Sorts entries by position and checks they tile the byte buffer exactly. */
function checkCoverage(entries: Entry[], bufferLength: number): void {
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous: Entry | undefined;
  for (const entry of entries) {
    if (entry.begin < covered && previous !== undefined) {
      throw new SafetensorsError(
        `tensors ${show(previous.name)} [${previous.begin}, ${previous.end}] and ${
          show(entry.name)
        } [${entry.begin}, ${entry.end}] overlap`,
      );
    }
    if (entry.begin > covered) {
      throw new SafetensorsError(
        `hole in the data buffer: bytes [${covered}, ${entry.begin}) before tensor ${
          show(entry.name)
        } are not covered by any tensor`,
      );
    }
    covered = entry.end;
    previous = entry;
  }
  if (covered !== bufferLength) {
    throw new SafetensorsError(
      `trailing bytes: bytes [${covered}, ${bufferLength}) at the end of the data buffer are ` +
        `not covered by any tensor`,
    );
  }
}

function convert(
  bytes: Uint8Array,
  view: DataView,
  dtype: FloatDtype,
  start: number,
  count: number,
): Float32Array {
  switch (dtype) {
    case "F32": {
      if (LITTLE_ENDIAN_HOST) {
        // slice() copies into a fresh, zero-offset buffer, so alignment is guaranteed.
        return new Float32Array(bytes.slice(start, start + count * 4).buffer);
      }
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(start + i * 4, true);
      return out;
    }
    case "F64": {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(start + i * 8, true);
      return out;
    }
    case "F16": {
      const table = halfTable();
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = table[view.getUint16(start + i * 2, true)];
      return out;
    }
    case "BF16": {
      // BF16 is the top half of a float32, so shift the bits into place.
      const out = new Float32Array(count);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) bits[i] = view.getUint16(start + i * 2, true) << 16;
      return out;
    }
  }
}

let HALF_TABLE: Float32Array | undefined;

/** Lazily builds the float32 value of each of the 65536 IEEE 754 binary16 bit patterns. */
function halfTable(): Float32Array {
  if (HALF_TABLE === undefined) {
    HALF_TABLE = new Float32Array(0x1_0000);
    for (let h = 0; h < 0x1_0000; h++) HALF_TABLE[h] = halfToFloat(h);
  }
  return HALF_TABLE;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // zero and subnormals
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mantissa) * 2 ** (exponent - 25);
}

/**
 * Writes tensors as an F32 safetensors file, deterministically and in the given order.
 *
 * @param tensors The tensors by name, as a Map, an iterable of `[name, tensor]` pairs or a
 *   plain object; each `data.length` must equal the product of its `shape`.
 * @param metadata Optional `__metadata__` strings; omitted from the header when empty.
 * @returns The file bytes; the header is padded with spaces so the data starts at a multiple of 8.
 * @throws {SafetensorsError} If a name repeats or is `__metadata__`, a shape is invalid, a data
 *   length does not match its shape, or a metadata value is not a string.
 * @example
 * ```ts
 * const bytes = encodeSafetensors(
 *   { weight: { shape: [2], data: new Float32Array([0.5, -1]) } },
 *   { format: "pt" },
 * );
 * await Deno.writeFile("model.safetensors", bytes);
 * ```
 */
export function encodeSafetensors(
  tensors: Iterable<[string, Tensor]> | Map<string, Tensor> | Record<string, Tensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const parts: string[] = [];
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) {
      throw new SafetensorsError(`metadata must be an object of strings (got ${show(metadata)})`);
    }
    const pairs = Object.entries(metadata);
    for (const [key, value] of pairs) {
      if (typeof value !== "string") {
        throw new SafetensorsError(
          `metadata value for key ${show(key)} must be a string (got ${show(value)})`,
        );
      }
    }
    if (pairs.length > 0) {
      const body = pairs.map(([key, value]) => `${JSON.stringify(key)}:${JSON.stringify(value)}`);
      parts.push(`${JSON.stringify(METADATA_KEY)}:{${body.join(",")}}`);
    }
  }

  const seen = new Set<string>();
  const datas: Float32Array[] = [];
  let offset = 0;
  for (const pair of entriesOf(tensors)) {
    if (!Array.isArray(pair) || pair.length < 2) {
      throw new SafetensorsError(`tensors must be [name, tensor] pairs (got ${show(pair)})`);
    }
    const [name, tensor] = pair as [unknown, unknown];
    if (typeof name !== "string") {
      throw new SafetensorsError(`tensor name must be a string (got ${show(name)})`);
    }
    const label = `tensor ${show(name)}`;
    if (name === METADATA_KEY) {
      throw new SafetensorsError(`${label} uses the name reserved for metadata`);
    }
    if (seen.has(name)) {
      throw new SafetensorsError(`${label} appears more than once`);
    }
    seen.add(name);
    if (!isPlainObject(tensor) || !(tensor.data instanceof Float32Array)) {
      throw new SafetensorsError(`${label} must be { shape: number[], data: Float32Array }`);
    }
    const shape = tensor.shape;
    if (!Array.isArray(shape)) {
      throw new SafetensorsError(`${label} has a non-array shape (got ${show(shape)})`);
    }
    let count = 1;
    for (let i = 0; i < shape.length; i++) {
      const dim: unknown = shape[i];
      if (typeof dim !== "number" || !Number.isSafeInteger(dim) || dim < 0) {
        throw new SafetensorsError(
          `${label} has invalid shape ${show(shape)}: entry ${i} is ${
            show(dim)
          }, not a non-negative integer`,
        );
      }
      count *= dim;
    }
    const data = tensor.data;
    if (data.length !== count) {
      throw new SafetensorsError(
        `${label} has ${data.length} values, but shape ${show(shape)} needs ${count}`,
      );
    }
    const begin = offset;
    offset += data.length * 4;
    const dims = (shape as number[]).map((d) => d + 0).join(",");
    parts.push(
      `${
        JSON.stringify(name)
      }:{"dtype":"F32","shape":[${dims}],"data_offsets":[${begin},${offset}]}`,
    );
    datas.push(data);
  }

  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const headerSize = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerSize + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, headerSize % TWO_POW_32, true);
  view.setUint32(4, Math.floor(headerSize / TWO_POW_32), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerSize);

  let position = 8 + headerSize;
  for (const data of datas) {
    if (LITTLE_ENDIAN_HOST) {
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), position);
    } else {
      for (let i = 0; i < data.length; i++) view.setFloat32(position + i * 4, data[i], true);
    }
    position += data.byteLength;
  }
  return out;
}

function entriesOf(
  tensors: Iterable<[string, Tensor]> | Map<string, Tensor> | Record<string, Tensor>,
): Iterable<unknown> {
  if (typeof tensors !== "object" || tensors === null) {
    throw new SafetensorsError(
      `tensors must be a Map, an iterable of pairs or an object (got ${show(tensors)})`,
    );
  }
  const iterate = (tensors as Partial<Iterable<unknown>>)[Symbol.iterator];
  if (typeof iterate === "function") return tensors as Iterable<unknown>;
  return Object.entries(tensors);
}
