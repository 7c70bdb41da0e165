/**
 * Float32Array kernels for recurrent networks: products, activations, softmax and
 * cross-entropy, top-k, and a seeded random generator.
 *
 * @module
 */
export * from "./types.ts";
export * from "./matmul.ts";
export * from "./activations.ts";
export * from "./softmax.ts";
export * from "./top_k.ts";
export * from "./rng.ts";
