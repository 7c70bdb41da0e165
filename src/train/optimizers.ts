// P parameters. Optimizers update one flat parameter buffer from one flat gradient buffer,
// with PyTorch's update rules (torch.optim.SGD, Adagrad, Adam; defaults as there).
import type { FloatArray } from "../math/mod.ts";

/** The optimizers `deno task train --optimizer` accepts. */
export type OptimizerKind = "sgd" | "adagrad" | "adam";

/** Hyper-parameters of every optimizer; each uses the fields it needs. */
export interface OptimizerOptions {
  /** SGD momentum (0 disables it). @default 0.9 for sgd */
  momentum?: number;
  /** Adam's β1. @default 0.9 */
  beta1?: number;
  /** Adam's β2. @default 0.999 */
  beta2?: number;
  /** Adam's ε (added to √v̂), Adagrad's ε (added to √G). @default 1e-8 (Adam), 1e-10 (Adagrad) */
  eps?: number;
}

/** An optimizer: updates parameters in place and exposes its state for checkpoints. */
export interface Optimizer {
  readonly kind: OptimizerKind;
  /** Updates made so far. */
  readonly steps: number;
  /**
   * Applies one update.
   *
   * @param params the flat parameters (P), updated in place
   * @param grads their gradients (P)
   * @param lr the learning rate for this step
   */
  step(params: FloatArray, grads: FloatArray, lr: number): void;
  /** Named state buffers (moments), shared, for checkpoints. */
  stateBuffers(): Record<string, Float32Array>;
  /**
   * Restores the state saved from {@linkcode Optimizer.stateBuffers} and the step count.
   *
   * @param buffers the saved buffers
   * @param steps the saved step count
   */
  restore(buffers: Record<string, Float32Array>, steps: number): void;
}

/**
 * Creates an optimizer for P parameters.
 *
 * @param kind sgd (with momentum), adagrad or adam
 * @param size P
 * @param options hyper-parameters
 * @returns a fresh optimizer with zero state
 * @example
 * ```ts
 * import { createOptimizer } from "./optimizers.ts";
 * const opt = createOptimizer("adam", 2, {});
 * const p = new Float32Array([1, 1]);
 * opt.step(p, new Float32Array([1, -1]), 0.1); // p ≈ [0.9, 1.1]
 * ```
 */
export function createOptimizer(
  kind: OptimizerKind,
  size: number,
  options: OptimizerOptions,
): Optimizer {
  if (kind === "sgd") return new Sgd(size, options.momentum ?? 0.9);
  if (kind === "adagrad") return new Adagrad(size, options.eps ?? 1e-10);
  if (kind === "adam") {
    return new Adam(size, options.beta1 ?? 0.9, options.beta2 ?? 0.999, options.eps ?? 1e-8);
  }
  throw new RangeError(`optimizer must be sgd, adagrad or adam, not ${JSON.stringify(kind)}`);
}

function restoreInto(
  kind: string,
  target: Float32Array,
  saved: Float32Array | undefined,
  name: string,
) {
  if (saved === undefined || saved.length !== target.length) {
    throw new RangeError(`${kind} state ${name} is missing or has the wrong size`);
  }
  target.set(saved);
}

class Sgd implements Optimizer {
  readonly kind = "sgd" as const;
  steps = 0;
  #buf: Float32Array; // (P) momentum buffer
  #momentum: number;

  constructor(size: number, momentum: number) {
    this.#momentum = momentum;
    this.#buf = new Float32Array(momentum === 0 ? 0 : size);
  }

  step(params: FloatArray, grads: FloatArray, lr: number): void {
    const mu = this.#momentum;
    if (mu === 0) {
      for (let k = 0; k < params.length; k++) params[k] -= lr * grads[k];
    } else {
      // torch.optim.SGD: buf = g on the first step, then buf = μ buf + g; p -= lr buf
      const buf = this.#buf;
      const first = this.steps === 0;
      for (let k = 0; k < params.length; k++) {
        const b = first ? grads[k] : mu * buf[k] + grads[k];
        buf[k] = b;
        params[k] -= lr * b;
      }
    }
    this.steps++;
  }

  stateBuffers(): Record<string, Float32Array> {
    return this.#momentum === 0 ? {} : { momentum: this.#buf };
  }

  restore(buffers: Record<string, Float32Array>, steps: number): void {
    if (this.#momentum !== 0) restoreInto("sgd", this.#buf, buffers.momentum, "momentum");
    this.steps = steps;
  }
}

class Adagrad implements Optimizer {
  readonly kind = "adagrad" as const;
  steps = 0;
  #sum: Float32Array; // (P) sum of squared gradients
  #eps: number;

  constructor(size: number, eps: number) {
    this.#sum = new Float32Array(size);
    this.#eps = eps;
  }

  step(params: FloatArray, grads: FloatArray, lr: number): void {
    // torch.optim.Adagrad (lr_decay 0): G += g²; p -= lr g / (√G + ε)
    const sum = this.#sum;
    for (let k = 0; k < params.length; k++) {
      const g = grads[k];
      sum[k] += g * g;
      params[k] -= lr * g / (Math.sqrt(sum[k]) + this.#eps);
    }
    this.steps++;
  }

  stateBuffers(): Record<string, Float32Array> {
    return { sum: this.#sum };
  }

  restore(buffers: Record<string, Float32Array>, steps: number): void {
    restoreInto("adagrad", this.#sum, buffers.sum, "sum");
    this.steps = steps;
  }
}

class Adam implements Optimizer {
  readonly kind = "adam" as const;
  steps = 0;
  #m: Float32Array; // (P) first moment
  #v: Float32Array; // (P) second moment
  #b1: number;
  #b2: number;
  #eps: number;

  constructor(size: number, b1: number, b2: number, eps: number) {
    this.#m = new Float32Array(size);
    this.#v = new Float32Array(size);
    this.#b1 = b1;
    this.#b2 = b2;
    this.#eps = eps;
  }

  step(params: FloatArray, grads: FloatArray, lr: number): void {
    // torch.optim.Adam: m = β1 m + (1-β1) g; v = β2 v + (1-β2) g²;
    // p -= lr m̂ / (√v̂ + ε) with m̂ = m / (1-β1^t), v̂ = v / (1-β2^t)
    const t = this.steps + 1;
    const b1 = this.#b1, b2 = this.#b2;
    const c1 = 1 - b1 ** t;
    const sc2 = Math.sqrt(1 - b2 ** t);
    const m = this.#m, v = this.#v;
    for (let k = 0; k < params.length; k++) {
      const g = grads[k];
      const mk = b1 * m[k] + (1 - b1) * g;
      const vk = b2 * v[k] + (1 - b2) * g * g;
      m[k] = mk;
      v[k] = vk;
      params[k] -= (lr / c1) * mk / (Math.sqrt(vk) / sc2 + this.#eps);
    }
    this.steps = t;
  }

  stateBuffers(): Record<string, Float32Array> {
    return { m: this.#m, v: this.#v };
  }

  restore(buffers: Record<string, Float32Array>, steps: number): void {
    restoreInto("adam", this.#m, buffers.m, "m");
    restoreInto("adam", this.#v, buffers.v, "v");
    this.steps = steps;
  }
}

/**
 * Scales gradients so their global L2 norm is at most `maxNorm`, as
 * `torch.nn.utils.clip_grad_norm_` (coefficient `maxNorm / (norm + 1e-6)`, applied when < 1).
 *
 * @param grads the flat gradients, scaled in place
 * @param maxNorm the largest norm allowed; Infinity disables clipping
 * @returns the norm before clipping
 * @example
 * ```ts
 * import { clipGradNorm } from "./optimizers.ts";
 * const g = new Float32Array([3, 4]);
 * clipGradNorm(g, 1); // 5; g ≈ [0.6, 0.8]
 * ```
 */
export function clipGradNorm(grads: FloatArray, maxNorm: number): number {
  let sq = 0;
  for (let k = 0; k < grads.length; k++) sq += grads[k] * grads[k];
  const norm = Math.sqrt(sq);
  if (Number.isFinite(maxNorm)) {
    const coef = maxNorm / (norm + 1e-6);
    if (coef < 1) { for (let k = 0; k < grads.length; k++) grads[k] *= coef; }
  }
  return norm;
}

/** Learning-rate schedules: constant, or cosine / linear decay to `minLr`, after a linear warmup. */
export type Schedule = "constant" | "cosine" | "linear";

/**
 * The learning rate at a point of training.
 *
 * @param schedule the shape
 * @param lr the peak rate
 * @param minLr the final rate of the decaying schedules
 * @param warmup steps of linear warmup from lr/warmup to lr
 * @param step the update about to be made (0-based)
 * @param progress fraction of the budget used, in [0, 1] (steps, or time when the budget is time)
 * @returns the rate for this step
 * @example
 * ```ts
 * import { learningRate } from "./optimizers.ts";
 * learningRate("cosine", 1, 0, 0, 10, 0.5); // 0.5
 * ```
 */
export function learningRate(
  schedule: Schedule,
  lr: number,
  minLr: number,
  warmup: number,
  step: number,
  progress: number,
): number {
  if (step < warmup) return lr * (step + 1) / warmup;
  const p = Math.min(1, Math.max(0, progress));
  if (schedule === "cosine") return minLr + (lr - minLr) * 0.5 * (1 + Math.cos(Math.PI * p));
  if (schedule === "linear") return lr + (minLr - lr) * p;
  return lr;
}
