// N elements; activations apply in place to a range [from, from + n) of a flat buffer.
// Derivatives are written in terms of the activation's output y, which is what caches keep.
import type { FloatArray } from "./types.ts";

/**
 * The logistic function `1 / (1 + e^-x)`.
 *
 * @param x input
 * @returns σ(x) in (0, 1)
 * @example
 * ```ts
 * import { sigmoid } from "./activations.ts";
 * sigmoid(0); // 0.5
 * ```
 */
export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/**
 * Derivative of σ given its output: `σ'(x) = y (1 - y)`.
 *
 * @param y σ(x)
 * @returns dσ/dx
 * @example
 * ```ts
 * import { sigmoidGrad } from "./activations.ts";
 * sigmoidGrad(0.5); // 0.25
 * ```
 */
export function sigmoidGrad(y: number): number {
  return y * (1 - y);
}

/**
 * Derivative of tanh given its output: `tanh'(x) = 1 - y²`.
 *
 * @param y tanh(x)
 * @returns dtanh/dx
 * @example
 * ```ts
 * import { tanhGrad } from "./activations.ts";
 * tanhGrad(0); // 1
 * ```
 */
export function tanhGrad(y: number): number {
  return 1 - y * y;
}

/**
 * The rectifier `max(0, x)`.
 *
 * @param x input
 * @returns relu(x)
 * @example
 * ```ts
 * import { relu } from "./activations.ts";
 * relu(-2); // 0
 * ```
 */
export function relu(x: number): number {
  return x > 0 ? x : 0;
}

/**
 * Derivative of relu given its output (0 at the kink, as PyTorch takes it).
 *
 * @param y relu(x)
 * @returns drelu/dx
 * @example
 * ```ts
 * import { reluGrad } from "./activations.ts";
 * reluGrad(3); // 1
 * ```
 */
export function reluGrad(y: number): number {
  return y > 0 ? 1 : 0;
}

/** An elementwise nonlinearity of the Elman cell. */
export type Nonlinearity = "tanh" | "relu";

/**
 * Applies sigmoid in place to `a[from .. from + n)`.
 *
 * @param a buffer
 * @param from first index
 * @param n count N
 * @example
 * ```ts
 * import { sigmoidInPlace } from "./activations.ts";
 * const a = new Float32Array([0]);
 * sigmoidInPlace(a, 0, 1); // a = [0.5]
 * ```
 */
export function sigmoidInPlace(a: FloatArray, from: number, n: number): void {
  for (let i = from, end = from + n; i < end; i++) a[i] = 1 / (1 + Math.exp(-a[i]));
}

/**
 * Applies tanh in place to `a[from .. from + n)`.
 *
 * @param a buffer
 * @param from first index
 * @param n count N
 * @example
 * ```ts
 * import { tanhInPlace } from "./activations.ts";
 * const a = new Float32Array([0]);
 * tanhInPlace(a, 0, 1); // a = [0]
 * ```
 */
export function tanhInPlace(a: FloatArray, from: number, n: number): void {
  for (let i = from, end = from + n; i < end; i++) a[i] = Math.tanh(a[i]);
}

/**
 * Applies the named nonlinearity in place to `a[from .. from + n)`.
 *
 * @param a buffer
 * @param from first index
 * @param n count N
 * @param f "tanh" or "relu"
 * @example
 * ```ts
 * import { activateInPlace } from "./activations.ts";
 * const a = new Float32Array([-1, 2]);
 * activateInPlace(a, 0, 2, "relu"); // a = [0, 2]
 * ```
 */
export function activateInPlace(a: FloatArray, from: number, n: number, f: Nonlinearity): void {
  if (f === "tanh") {
    tanhInPlace(a, from, n);
  } else {
    for (let i = from, end = from + n; i < end; i++) a[i] = a[i] > 0 ? a[i] : 0;
  }
}
