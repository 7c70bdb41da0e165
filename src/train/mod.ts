/**
 * Training: optimizers, clipping and schedules, truncated BPTT over token streams, evaluation,
 * checkpoints, progress, loss curves and whole runs.
 *
 * @module
 */
export * from "./optimizers.ts";
export * from "./tbptt.ts";
export * from "./checkpoint.ts";
export * from "./progress.ts";
export * from "./loss_plot.ts";
export * from "./run.ts";
