// L layers, H hidden, O outputs, S state parts (1, or 2 for LSTM); batch 1.
// onnxruntime-node as the peer of the step benchmarks. It is imported on demand, by a specifier
// the type checker does not follow and with the lockfile off (the bench tasks pass --no-lock),
// so only the benchmarks that ask for it download it (about 290 MB of binaries for every
// platform) and load its native library (they need --allow-ffi and --allow-read); the test
// suite, type checks and CI never do.
import { type Network, Stepper } from "../../src/nn/mod.ts";
import { maxAbsDiff } from "../_close.ts";
import { encodeModel, stepGraph, stepNames } from "./_onnx.ts";

/** The npm package and version of the peer. */
export const ORT_PACKAGE = "npm:onnxruntime-node@1.30.0";

/** The part of onnxruntime-node's API the benchmarks use (its own types would pull it in). */
declare namespace Ort {
  interface Tensor {
    readonly data: unknown;
  }
  type OnnxValue = Tensor;
  interface InferenceSession {
    run(feeds: InferenceSession.FeedsType, fetches: InferenceSession.FetchesType): Promise<unknown>;
    release(): Promise<void>;
  }
  namespace InferenceSession {
    type FeedsType = Record<string, Tensor>;
    type FetchesType = Record<string, OnnxValue | null>;
    interface SessionOptions {
      graphOptimizationLevel?: "disabled" | "basic" | "extended" | "all";
      intraOpNumThreads?: number;
      interOpNumThreads?: number;
      executionMode?: "sequential" | "parallel";
    }
  }
}

/** The onnxruntime-node module, as far as the benchmarks use it. */
export interface OrtModule {
  Tensor: new (
    type: "float32" | "int64",
    data: Float32Array | BigInt64Array,
    dims: readonly number[],
  ) => Ort.Tensor;
  InferenceSession: {
    create(model: Uint8Array, options?: Ort.InferenceSession.SessionOptions): Promise<
      Ort.InferenceSession
    >;
  };
}

/** The outcome of {@linkcode loadOrt}: the module, or why it cannot be used here. */
export type OrtLoad = { ok: true; ort: OrtModule } | { ok: false; reason: string };

/**
 * Imports onnxruntime-node, catching the failures that mean "no peer on this machine" (package
 * not installed, native library missing, or no --allow-ffi).
 *
 * @returns the module, or the reason it did not load
 */
export async function loadOrt(): Promise<OrtLoad> {
  try {
    const specifier: string = ORT_PACKAGE; // a variable: not followed by the type checker
    return { ok: true, ort: await import(specifier) };
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? e.message : String(e) };
  }
}

/** Session settings for {@linkcode OrtStepper.create}. */
export interface OrtStepperOptions {
  /**
   * Threads for parallelism inside an operator; undefined leaves onnxruntime's choice.
   * @default undefined
   */
  intraOpNumThreads?: number;
}

/** One copy of the state: every layer's h (and c) as a [1, 1, H] tensor. */
interface StateTensors {
  h: Ort.Tensor[];
  c: Ort.Tensor[];
}

/**
 * Steps one stream through an {@linkcode stepGraph} model in an onnxruntime session, the peer of
 * `Stepper.step()`. Every tensor is allocated once: the token is written into its tensor in
 * place, the probabilities land in a preallocated output, and the state alternates between two
 * sets of tensors, each step's outputs being the next step's inputs.
 *
 * @example
 * ```ts ignore
 * import { Network } from "../../src/nn/mod.ts";
 * import { loadOrt, OrtStepper } from "./_ort_peer.ts";
 * const net = Network.create({ cell: "gru", nonlinearity: "tanh", input: "embedding",
 *   vocabSize: 5, inputSize: 4, hiddenSize: 8, layers: 1, outputSize: 5 }, 7);
 * const load = await loadOrt();
 * if (load.ok) {
 *   const peer = await OrtStepper.create(load.ort, net);
 *   const probs = await peer.step(3); // next-token distribution (5)
 * }
 * ```
 */
export class OrtStepper {
  readonly net: Network;
  /** Output probabilities of the last step (O); overwritten by every step. */
  readonly probs: Float32Array;
  readonly #session: Ort.InferenceSession;
  readonly #token: BigInt64Array; // (1) the data of the token tensor
  readonly #ids: bigint[]; // (V) token ids as the int64 the tensor holds, made once
  readonly #feeds: [Ort.InferenceSession.FeedsType, Ort.InferenceSession.FeedsType];
  readonly #fetches: [Ort.InferenceSession.FetchesType, Ort.InferenceSession.FetchesType];
  readonly #states: [StateTensors, StateTensors];
  #current = 0; // which of #states holds the stream's state

  private constructor(ort: OrtModule, net: Network, session: Ort.InferenceSession) {
    const { cell, hiddenSize: H, layers: L, outputSize: O, vocabSize: V } = net.config;
    this.net = net;
    this.#session = session;
    this.#token = new BigInt64Array(1);
    this.#ids = Array.from({ length: V }, (_, t) => BigInt(t));
    this.probs = new Float32Array(O);
    const token = new ort.Tensor("int64", this.#token, [1, 1]);
    const probs = new ort.Tensor("float32", this.probs, [1, 1, O]);
    const states = (): StateTensors => {
      const make = () => new ort.Tensor("float32", new Float32Array(H), [1, 1, H]);
      return {
        h: Array.from({ length: L }, make),
        c: cell === "lstm" ? Array.from({ length: L }, make) : [],
      };
    };
    this.#states = [states(), states()];
    const feeds = (from: StateTensors) => {
      const f: Record<string, Ort.Tensor> = { [stepNames.token]: token };
      from.h.forEach((t, l) => f[stepNames.hIn(l)] = t);
      from.c.forEach((t, l) => f[stepNames.cIn(l)] = t);
      return f;
    };
    const fetches = (into: StateTensors) => {
      const f: Record<string, Ort.OnnxValue> = { [stepNames.probs]: probs };
      into.h.forEach((t, l) => f[stepNames.hOut(l)] = t);
      into.c.forEach((t, l) => f[stepNames.cOut(l)] = t);
      return f;
    };
    const [a, b] = this.#states;
    this.#feeds = [feeds(a), feeds(b)];
    this.#fetches = [fetches(b), fetches(a)];
  }

  /**
   * Exports the network as an ONNX model and opens a session on it with every graph
   * optimization on.
   *
   * @param ort the loaded onnxruntime-node module
   * @param net an embedding network with float32 parameters
   * @param options session settings
   * @returns a stepper at the zero state
   */
  static async create(
    ort: OrtModule,
    net: Network,
    options: OrtStepperOptions = {},
  ): Promise<OrtStepper> {
    const sessionOptions: Ort.InferenceSession.SessionOptions = { graphOptimizationLevel: "all" };
    // The binding refuses an explicit undefined, so the key is set only when given.
    if (options.intraOpNumThreads !== undefined) {
      sessionOptions.intraOpNumThreads = options.intraOpNumThreads;
    }
    const session = await ort.InferenceSession.create(encodeModel(stepGraph(net)), sessionOptions);
    return new OrtStepper(ort, net, session);
  }

  /**
   * Applies one token and returns the output distribution.
   *
   * @param token a token id in 0..V-1
   * @returns {@linkcode OrtStepper.probs}; valid until the next step
   */
  async step(token: number): Promise<Float32Array> {
    const id = this.#ids[token];
    if (id === undefined) {
      throw new RangeError(`token id ${token} is outside 0..${this.#ids.length - 1}`);
    }
    this.#token[0] = id;
    const k = this.#current;
    await this.#session.run(this.#feeds[k], this.#fetches[k]);
    this.#current = 1 - k;
    return this.probs;
  }

  /**
   * Copies the stream's state out in `Stepper`'s layout.
   *
   * @param out receives every layer's h, then for LSTM every layer's c (S·L·H)
   */
  readState(out: Float32Array): void {
    if (out.length !== this.net.stateSize) {
      throw new RangeError(
        `state has ${out.length} floats; the network keeps ${this.net.stateSize}`,
      );
    }
    const { hiddenSize: H, layers: L } = this.net.config;
    const s = this.#states[this.#current];
    s.h.forEach((t, l) => out.set(t.data as Float32Array, l * H));
    s.c.forEach((t, l) => out.set(t.data as Float32Array, (L + l) * H));
  }

  /** Sets the stream's state back to zero. */
  reset(): void {
    const s = this.#states[this.#current];
    for (const t of [...s.h, ...s.c]) (t.data as Float32Array).fill(0);
  }

  /** Releases the session. */
  async release(): Promise<void> {
    await this.#session.release();
  }
}

/** The largest differences {@linkcode checkAgreement} found. */
export interface Agreement {
  probs: number;
  state: number;
}

/**
 * Steps `Stepper` and the onnxruntime peer through the same tokens from a zero state and
 * compares the probabilities and the state after every step; leaves the peer at the zero state.
 *
 * @param peer the onnxruntime stepper of the same network
 * @param tokens the token ids to apply
 * @param tolerance the largest absolute difference accepted
 * @returns the largest differences seen
 * @throws Error naming the step and the difference when one exceeds `tolerance`
 */
export async function checkAgreement(
  peer: OrtStepper,
  tokens: ArrayLike<number>,
  tolerance: number,
): Promise<Agreement> {
  const ours = new Stepper(peer.net);
  const state = ours.newState();
  const theirs = new Float32Array(peer.net.stateSize);
  const worst: Agreement = { probs: 0, state: 0 };
  peer.reset();
  for (let t = 0; t < tokens.length; t++) {
    const expected = ours.step(state, tokens[t]);
    const probs = maxAbsDiff(await peer.step(tokens[t]), expected);
    peer.readState(theirs);
    const diff = maxAbsDiff(theirs, state);
    if (!(probs <= tolerance && diff <= tolerance)) {
      throw new Error(
        `onnxruntime disagrees with Stepper at step ${t} (token ${tokens[t]}): ` +
          `max |Δ| ${probs} in probabilities, ${diff} in state (tolerance ${tolerance})`,
      );
    }
    worst.probs = Math.max(worst.probs, probs);
    worst.state = Math.max(worst.state, diff);
  }
  peer.reset();
  return worst;
}

/** Steps of the agreement check that precedes every timing of the peer. */
export const AGREEMENT_STEPS = 20;
/** The largest difference from Stepper the peer may show, as for the PyTorch comparisons. */
export const AGREEMENT_TOLERANCE = 1e-5;

/**
 * Opens the onnxruntime peer of `net`, checks it against `Stepper` over
 * {@linkcode AGREEMENT_STEPS} tokens and prints the largest differences.
 *
 * @param ort the loaded module
 * @param net the network
 * @param tokens token ids for the check (the first {@linkcode AGREEMENT_STEPS} are used)
 * @param options session settings
 * @returns the peer, at the zero state
 * @throws Error when the peer disagrees with Stepper beyond {@linkcode AGREEMENT_TOLERANCE}
 */
export async function openCheckedPeer(
  ort: OrtModule,
  net: Network,
  tokens: ArrayLike<number>,
  options: OrtStepperOptions = {},
): Promise<OrtStepper> {
  if (tokens.length < AGREEMENT_STEPS) {
    throw new RangeError(`the check needs ${AGREEMENT_STEPS} tokens, not ${tokens.length}`);
  }
  const peer = await OrtStepper.create(ort, net, options);
  const worst = await checkAgreement(
    peer,
    Array.from(tokens).slice(0, AGREEMENT_STEPS),
    AGREEMENT_TOLERANCE,
  );
  const threads = options.intraOpNumThreads ?? "default";
  console.log(
    `onnxruntime-node ${net.config.cell} (intra-op threads: ${threads}) agrees with Stepper ` +
      `over ${AGREEMENT_STEPS} tokens: max |Δ| ${worst.probs.toExponential(2)} in probabilities, ` +
      `${worst.state.toExponential(2)} in state`,
  );
  return peer;
}
