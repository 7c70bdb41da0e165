/**
 * Assembles the WebAssembly text sources beside this file into the binaries committed with
 * them, with wabt: `step.wat` (SIMD) into `step.wasm`, and `train.wat` (SIMD, shared memory)
 * into `train.wasm`. The output depends only on the source: no debug names, no custom sections,
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
}

/** One source and the binary it is assembled into. */
export interface WasmTarget {
  /** Where the source lives. */
  wat: URL;
  /** Where the assembled module is written. */
  wasm: URL;
  /** The proposals the source uses. */
  features: WasmFeatures;
}

/** Where the stepper's source lives. */
export const WAT_URL: URL = new URL("./step.wat", import.meta.url);
/** Where the stepper's assembled module is written. */
export const WASM_URL: URL = new URL("./step.wasm", import.meta.url);

/** The stepper's kernels: SIMD only. */
export const STEP_TARGET: WasmTarget = { wat: WAT_URL, wasm: WASM_URL, features: { simd: true } };

/** The training kernels: SIMD on a shared memory, so worker threads can run them side by side. */
export const TRAIN_TARGET: WasmTarget = {
  wat: new URL("./train.wat", import.meta.url),
  wasm: new URL("./train.wasm", import.meta.url),
  features: { simd: true, threads: true },
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
  features: WasmFeatures = { simd: true },
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
  return await assemble(await Deno.readTextFile(target.wat), name, target.features);
}

if (import.meta.main) {
  for (const target of [STEP_TARGET, TRAIN_TARGET]) {
    const bytes = await assembleTarget(target);
    if (!WebAssembly.validate(bytes)) throw new Error("wabt produced a module V8 does not accept");
    await Deno.writeFile(target.wasm, bytes);
    console.log(`wrote ${target.wasm.pathname} (${bytes.length} bytes)`);
  }
}
