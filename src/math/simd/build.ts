/**
 * Assembles the WebAssembly text sources beside this file into the binaries committed with
 * them, with wabt: `step.wat` (SIMD, relaxed SIMD) into `step.wasm`, and `train.wat` (SIMD, shared memory)
 * into `train.wasm` and, with its multiply-adds fused, `train_relaxed.wasm` (relaxed SIMD). The output depends only on the source: no debug names, no custom sections,
 * canonical LEBs, so the tests can check that each committed binary is what its source makes.
 *
 * Run: `deno task build:simd`
 *
 * @module
 */
import wabtInit from "wabt";

/** The wasm proposals a source may use, beyond the MVP (named as wabt names them). */
export interface WasmFeatures {
  /** 128-bit SIMD. @default true */
  simd?: boolean;
  /** Shared memory and atomics. @default false */
  threads?: boolean;
  /** Relaxed SIMD (`f32x4.relaxed_madd`). @default false */
  relaxed_simd?: boolean;
}

/** One source and the binary it is assembled into. */
export interface WasmTarget {
  /** Where the source lives. */
  wat: URL;
  /** Where the assembled module is written. */
  wasm: URL;
  /** The proposals the source uses. */
  features: WasmFeatures;
  /** A rewrite of the source before assembly, or none. */
  transform?: (source: string) => string;
}

/** Where the stepper's source lives. */
export const WAT_URL: URL = new URL("./step.wat", import.meta.url);
/** Where the stepper's assembled module is written. */
export const WASM_URL: URL = new URL("./step.wasm", import.meta.url);

/** The stepper's kernels: SIMD with relaxed SIMD's fused multiply-add. */
export const STEP_TARGET: WasmTarget = {
  wat: WAT_URL,
  wasm: WASM_URL,
  features: { simd: true, relaxed_simd: true },
};

/** The training kernels: SIMD on a shared memory, so worker threads can run them side by side. */
export const TRAIN_TARGET: WasmTarget = {
  wat: new URL("./train.wat", import.meta.url),
  wasm: new URL("./train.wasm", import.meta.url),
  features: { simd: true, threads: true },
};

/** The gemm's multiply-adds as train.wat writes them: `c = c + x b` on named registers. */
const MULTIPLY_ADD =
  /\(f32x4\.add \(local\.get (\$c\d\d)\) \(f32x4\.mul \(local\.get (\$x)\) \(local\.get (\$b\d)\)\)\)/g;
/** Multiply-adds in the gemm's inner loop: a 4x8 block is eight of them per step. */
const MULTIPLY_ADDS = 8;

/**
 * Fuses the gemm's multiply-adds: `(f32x4.add c (f32x4.mul x b))` becomes
 * `(f32x4.relaxed_madd x b c)`, which V8 compiles to an FMA where the CPU has one (rounding
 * once instead of twice), so one source serves both builds.
 *
 * @param source train.wat
 * @returns the source with relaxed multiply-adds
 * @example
 * ```ts
 * import { fuseMultiplyAdds } from "./build.ts";
 * fuseMultiplyAdds(await Deno.readTextFile(new URL("./train.wat", import.meta.url)));
 * ```
 */
export function fuseMultiplyAdds(source: string): string {
  const found = source.match(MULTIPLY_ADD)?.length ?? 0;
  if (found !== MULTIPLY_ADDS) {
    throw new Error(`train.wat has ${found} gemm multiply-adds to fuse; ${MULTIPLY_ADDS} expected`);
  }
  return source.replace(
    MULTIPLY_ADD,
    "(f32x4.relaxed_madd (local.get $2) (local.get $3) (local.get $1))",
  );
}

/** The training kernels with fused multiply-adds, for runtimes with relaxed SIMD. */
export const TRAIN_RELAXED_TARGET: WasmTarget = {
  wat: TRAIN_TARGET.wat,
  wasm: new URL("./train_relaxed.wasm", import.meta.url),
  features: { simd: true, threads: true, relaxed_simd: true },
  transform: fuseMultiplyAdds,
};

/**
 * Assembles WebAssembly text to a binary, deterministically.
 *
 * @param source the `.wat` text
 * @param filename the name wabt puts in its error messages
 * @param features the proposals the source may use
 * @returns the module bytes
 * @example
 * ```ts
 * import { assemble } from "./build.ts";
 * const bytes = await assemble("(module)", "empty.wat");
 * // bytes = 00 61 73 6d 01 00 00 00
 * ```
 */
export async function assemble(
  source: string,
  filename = "step.wat",
  features: WasmFeatures = STEP_TARGET.features,
): Promise<Uint8Array<ArrayBuffer>> {
  const wabt = await wabtInit();
  const module = wabt.parseWat(filename, source, features);
  try {
    module.resolveNames();
    // wabt's validate takes the features too (its .d.ts leaves the parameter out); without them
    // a shared memory is refused.
    (module as unknown as { validate(f: WasmFeatures): void }).validate(features);
    const { buffer } = module.toBinary({
      log: false,
      canonicalize_lebs: true,
      relocatable: false,
      write_debug_names: false,
    });
    return Uint8Array.from(buffer); // a copy: wabt's buffer lives in its own heap
  } finally {
    module.destroy();
  }
}

/**
 * Assembles one target from its source file.
 *
 * @param target the source, the binary and the features
 * @returns the module bytes (not written)
 */
export async function assembleTarget(target: WasmTarget): Promise<Uint8Array<ArrayBuffer>> {
  const name = target.wat.pathname.split("/").at(-1)!;
  const source = await Deno.readTextFile(target.wat);
  return await assemble(target.transform?.(source) ?? source, name, target.features);
}

if (import.meta.main) {
  for (const target of [STEP_TARGET, TRAIN_TARGET, TRAIN_RELAXED_TARGET]) {
    const bytes = await assembleTarget(target);
    if (!WebAssembly.validate(bytes)) throw new Error("wabt produced a module V8 does not accept");
    await Deno.writeFile(target.wasm, bytes);
    console.log(`wrote ${target.wasm.pathname} (${bytes.length} bytes)`);
  }
}
