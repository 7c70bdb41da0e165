/**
 * The streaming pipeline: request bodies to input items, sessions that apply the recurrent
 * step per token with durable checkpoints, and events out as SSE.
 *
 * @module
 */
export * from "./decode.ts";
export * from "./session.ts";
export * from "./pipeline.ts";
export * from "./frames.ts";
export * from "./hidden_state.ts";
