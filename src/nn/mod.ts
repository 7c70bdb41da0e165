/**
 * Recurrent networks: Elman RNN, GRU and LSTM cells with PyTorch's equations, stacked layers,
 * embedding or dense input, a linear head; a window forward/backward for training and an
 * allocation-free stepper for serving.
 *
 * @module
 */
export * from "./config.ts";
export * from "./params.ts";
export * from "./layer_cache.ts";
export * from "./rnn_cell.ts";
export * from "./gru_cell.ts";
export * from "./lstm_cell.ts";
export * from "./network.ts";
export * from "./stepper.ts";
export * from "./simd_stepper.ts";
export * from "./simd_train_workspace.ts";
export * from "./sampling.ts";
