/**
 * Everything that touches Deno KV: opening a store, the typed key builders, the model registry
 * (publish, load, list, roll back) and the named errors they raise.
 *
 * @module
 */
export * from "./errors.ts";
export * from "./keys.ts";
export * from "./open_kv.ts";
export * from "./registry.ts";
