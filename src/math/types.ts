/**
 * A flat, row-major buffer of floats. Inference runs on Float32Array; the training path also
 * accepts Float64Array so gradient checks can use exact finite differences.
 */
export type FloatArray = Float32Array | Float64Array;

/** A constructor for {@linkcode FloatArray}: picks the precision of everything a network allocates. */
export type FloatArrayConstructor = Float32ArrayConstructor | Float64ArrayConstructor;
