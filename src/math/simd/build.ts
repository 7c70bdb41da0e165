/**
 * Assembles `step.wat` into `step.wasm` (committed beside it) with wabt, SIMD enabled.
 * The output depends only on the source: no debug names, no custom sections, canonical LEBs,
 * so `test/simd_stepper_test.ts` can check that the committed binary is what the source makes.
 *
 * Run: `deno run --allow-read --allow-write src/math/simd/build.ts`
 *
 * @module
 */
import wabtInit from "wabt";

/** Where the source lives. */
export const WAT_URL: URL = new URL("./step.wat", import.meta.url);
/** Where the assembled module is written. */
export const WASM_URL: URL = new URL("./step.wasm", import.meta.url);

/**
 * Assembles WebAssembly text to a binary, deterministically.
 *
 * @param source the `.wat` text
 * @param filename the name wabt puts in its error messages
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
): Promise<Uint8Array<ArrayBuffer>> {
  const wabt = await wabtInit();
  const module = wabt.parseWat(filename, source, { simd: true, relaxed_simd: true });
  try {
    module.resolveNames();
    module.validate();
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

if (import.meta.main) {
  const bytes = await assemble(await Deno.readTextFile(WAT_URL));
  if (!WebAssembly.validate(bytes)) throw new Error("wabt produced a module V8 does not accept");
  await Deno.writeFile(WASM_URL, bytes);
  console.log(`wrote ${WASM_URL.pathname} (${bytes.length} bytes)`);
}
