/**
 * Access control: API keys (configured as hashes, presented as bearer tokens), and per-key
 * limits on request rate and open streams, kept in the isolate's memory.
 *
 * @module
 */
export * from "./api_keys.ts";
export * from "./rate_limit.ts";
export * from "./options.ts";
