/**
 * Model files: safetensors with PyTorch state_dict names, and the reader and writer beneath.
 *
 * @module
 */
export * from "./safetensors.ts";
export * from "./model_file.ts";
