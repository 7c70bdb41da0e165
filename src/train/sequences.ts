// T steps, B sequences, O outputs. Training on many short sequences, each from a zero state:
// the shapes other than the running language model. A sequence's targets say where the loss is:
//   many to one (classify): only at its last step — backpropagation through time from there;
//   one to many (generate): at every step after the class token (teacher forcing);
//   one to one (single): its only step.
// Sequences of equal length are batched together, so no padding ever touches a state.
import { argmax, crossEntropy, NO_TARGET, Rng } from "../math/mod.ts";
import { type Network, Workspace } from "../nn/mod.ts";
import { shuffle } from "../text/names.ts";
import { clipGradNorm, type Optimizer } from "./optimizers.ts";
import type { StepResult, TbpttPosition } from "./tbptt.ts";

/** One training sequence: input ids and one target per step (NO_TARGET: no loss there). */
export interface Sequence {
  inputs: Int32Array;
  targets: Int32Array;
}

/**
 * Batches of sequences of one length, in a seeded order that is a function of the epoch alone
 * (so a checkpoint needs only the epoch and the batch index).
 *
 * @param sequences the data
 * @param batch most sequences per batch B
 * @param seed base seed
 * @param epoch the epoch (0 keeps the data order unshuffled when seed is null)
 * @returns batches of indices into `sequences`
 */
export function epochBatches(
  sequences: Sequence[],
  batch: number,
  seed: number | null,
  epoch: number,
): number[][] {
  const byLength = new Map<number, number[]>();
  sequences.forEach((s, k) => {
    const list = byLength.get(s.inputs.length) ?? [];
    list.push(k);
    byLength.set(s.inputs.length, list);
  });
  const rng = seed === null ? null : new Rng(seed * 1_000_003 + epoch);
  const batches: number[][] = [];
  for (const length of [...byLength.keys()].sort((a, b) => a - b)) {
    const members = byLength.get(length)!;
    if (rng !== null) shuffle(members, rng);
    for (let k = 0; k < members.length; k += batch) batches.push(members.slice(k, k + batch));
  }
  if (rng !== null) shuffle(batches, rng);
  return batches;
}

/**
 * Trains on independent sequences, one batch of equal-length sequences per update, each from a
 * zero state, with the loss where the targets say.
 *
 * @example
 * ```ts
 * import { Network } from "../nn/mod.ts";
 * import { createOptimizer } from "./optimizers.ts";
 * import { SequenceTrainer } from "./sequences.ts";
 * import { NO_TARGET } from "../math/mod.ts";
 * const net = Network.create({ cell: "gru", nonlinearity: "tanh", input: "embedding",
 *   vocabSize: 3, inputSize: 4, hiddenSize: 8, layers: 1, outputSize: 2 }, 1);
 * const data = [{ inputs: new Int32Array([1, 2]), targets: new Int32Array([NO_TARGET, 1]) }];
 * const trainer = new SequenceTrainer(net, data, 4, createOptimizer("adam", net.params.length, {}), 1);
 * trainer.step(0.01, 1).loss; // the loss at the last step only
 * ```
 */
export class SequenceTrainer {
  readonly net: Network;
  readonly optimizer: Optimizer;
  #data: Sequence[];
  #batch: number;
  #seed: number;
  #ws: Workspace;
  #inputs: Int32Array;
  #targets: Int32Array;
  #dlogits: Float32Array;
  #grads: Float32Array;
  #zero: Float32Array;
  #order: number[][];
  #p = 0;
  #epoch = 0;

  /**
   * @param net the network (float32, embedding input)
   * @param data the training sequences
   * @param batch most sequences per update B
   * @param optimizer the update rule
   * @param seed the shuffling seed
   */
  constructor(net: Network, data: Sequence[], batch: number, optimizer: Optimizer, seed: number) {
    if (data.length === 0) throw new RangeError("no training sequences");
    const maxT = Math.max(...data.map((s) => s.inputs.length));
    this.net = net;
    this.optimizer = optimizer;
    this.#data = data;
    this.#batch = batch;
    this.#seed = seed;
    this.#ws = new Workspace(net, maxT, batch);
    this.#inputs = new Int32Array(maxT * batch);
    this.#targets = new Int32Array(maxT * batch);
    this.#dlogits = new Float32Array(maxT * batch * net.config.outputSize);
    this.#grads = new Float32Array(net.params.length);
    this.#zero = new Float32Array(net.stateSize * batch);
    this.#order = epochBatches(data, batch, seed, 0);
  }

  /** Batches per epoch. */
  get segment(): number {
    return this.#order.length;
  }

  /** Epoch and batch index (the state is empty: every sequence starts from zero). */
  get position(): TbpttPosition {
    return { p: this.#p, epoch: this.#epoch, state: new Float32Array(0) };
  }

  /**
   * Restores a saved position.
   *
   * @param pos epoch and batch index
   */
  restore(pos: TbpttPosition): void {
    this.#epoch = pos.epoch;
    this.#order = epochBatches(this.#data, this.#batch, this.#seed, pos.epoch);
    if (!(pos.p >= 0 && pos.p <= this.#order.length)) {
      throw new RangeError(`batch ${pos.p} is outside the epoch`);
    }
    this.#p = pos.p;
  }

  /**
   * One update on the next batch.
   *
   * @param lr learning rate
   * @param clip largest global gradient norm
   * @returns loss (mean over counted targets), gradient norm, sequences used
   */
  step(lr: number, clip: number): StepResult {
    if (this.#p >= this.#order.length) {
      this.#epoch++;
      this.#order = epochBatches(this.#data, this.#batch, this.#seed, this.#epoch);
      this.#p = 0;
    }
    const members = this.#order[this.#p++];
    const b = members.length;
    const t = this.#data[members[0]].inputs.length;
    for (let bb = 0; bb < b; bb++) {
      const s = this.#data[members[bb]];
      for (let k = 0; k < t; k++) {
        this.#inputs[k * b + bb] = s.inputs[k];
        this.#targets[k * b + bb] = s.targets[k];
      }
    }
    const ws = this.#ws;
    const o = this.net.config.outputSize;
    this.#zero.fill(0);
    ws.forward(this.#inputs, this.#zero, t, b);
    const { loss, count } = crossEntropy(ws.logits, this.#targets, t * b, o, this.#dlogits);
    this.#grads.fill(0);
    ws.backward(this.#dlogits, null, this.#grads, null);
    const gradNorm = clipGradNorm(this.#grads, clip);
    this.optimizer.step(this.net.params, this.#grads, lr);
    return { loss, gradNorm, tokens: count };
  }
}

/**
 * Loss and accuracy over held-out sequences (accuracy: the most likely output equals the target,
 * over every counted target).
 *
 * @param net the network
 * @param data the sequences
 * @param batch sequences per forward
 * @returns mean loss (nats per counted target), accuracy, and the count
 */
export function evaluateSequences(
  net: Network,
  data: Sequence[],
  batch: number,
): { loss: number; accuracy: number; count: number } {
  if (data.length === 0) return { loss: NaN, accuracy: NaN, count: 0 };
  const maxT = Math.max(...data.map((s) => s.inputs.length));
  const ws = new Workspace(net, maxT, batch);
  const inputs = new Int32Array(maxT * batch);
  const targets = new Int32Array(maxT * batch);
  const zero = new Float32Array(net.stateSize * batch);
  const o = net.config.outputSize;
  let total = 0, count = 0, right = 0;
  for (const members of epochBatches(data, batch, null, 0)) {
    const b = members.length;
    const t = data[members[0]].inputs.length;
    for (let bb = 0; bb < b; bb++) {
      for (let k = 0; k < t; k++) {
        inputs[k * b + bb] = data[members[bb]].inputs[k];
        targets[k * b + bb] = data[members[bb]].targets[k];
      }
    }
    ws.forward(inputs, zero, t, b);
    const r = crossEntropy(ws.logits, targets, t * b, o, null);
    total += r.loss * r.count;
    count += r.count;
    for (let row = 0; row < t * b; row++) {
      if (targets[row] === NO_TARGET) continue;
      if (argmax(ws.logits, row * o, o) === targets[row]) right++;
    }
  }
  return { loss: total / count, accuracy: right / count, count };
}
