// P parameters, S·L·B·H carried state. A training checkpoint: everything needed to continue a
// run exactly where it stopped, as one safetensors file written atomically.
import {
  decodeSafetensors,
  encodeSafetensors,
  SafetensorsError,
  type Tensor,
} from "../format/mod.ts";
import type { NetworkConfig } from "../nn/mod.ts";

/** Everything a run needs to continue bit for bit. */
export interface Checkpoint {
  /** The run's settings (the train CLI's flags, resolved). */
  run: Record<string, unknown>;
  /** Shapes of the network. */
  network: NetworkConfig;
  /** The input vocabulary. */
  vocabulary: string[];
  /** Flat parameters (P). */
  params: Float32Array;
  /** Optimizer kind, update count and moment buffers. */
  optimizer: { kind: string; steps: number; buffers: Record<string, Float32Array> };
  /** Data position and the carried state (S, L, B, H). */
  position: { p: number; epoch: number; state: Float32Array };
  /** Updates made, tokens trained on and training time so far. */
  progress: { step: number; tokens: number; elapsedMs: number };
  /** State of the run's random generator. */
  rng: number[];
}

/** A checkpoint that cannot be read; the message names the problem. */
export class CheckpointError extends Error {
  override name = "CheckpointError";
}

/**
 * Writes a checkpoint atomically: to a temporary file first, then renamed over the old one, so a
 * kill at any instant leaves either the previous checkpoint or the new one, never half of one.
 *
 * @param path the checkpoint file
 * @param ckpt what to save
 */
export async function saveCheckpoint(path: string, ckpt: Checkpoint): Promise<void> {
  const tensors = new Map<string, Tensor>();
  tensors.set("params", { shape: [ckpt.params.length], data: ckpt.params });
  for (const [name, buf] of Object.entries(ckpt.optimizer.buffers)) {
    tensors.set(`optimizer.${name}`, { shape: [buf.length], data: buf });
  }
  tensors.set("state", { shape: [ckpt.position.state.length], data: ckpt.position.state });
  const meta = {
    run: ckpt.run,
    network: ckpt.network,
    vocabulary: ckpt.vocabulary,
    optimizer: { kind: ckpt.optimizer.kind, steps: ckpt.optimizer.steps },
    position: { p: ckpt.position.p, epoch: ckpt.position.epoch },
    progress: ckpt.progress,
    rng: ckpt.rng,
  };
  const bytes = encodeSafetensors(tensors, { checkpoint: JSON.stringify(meta) });
  const tmp = `${path}.tmp`;
  await Deno.writeFile(tmp, bytes);
  await Deno.rename(tmp, path);
}

/**
 * Reads a checkpoint written by {@linkcode saveCheckpoint}.
 *
 * @param path the checkpoint file
 * @returns the saved state
 * @throws {CheckpointError} when the file is missing, corrupt or not a checkpoint
 */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (err) {
    throw new CheckpointError(`cannot read checkpoint ${path}: ${(err as Error).message}`);
  }
  try {
    const { tensors, metadata } = decodeSafetensors(bytes);
    if (metadata.checkpoint === undefined) {
      throw new CheckpointError(`${path} is not a training checkpoint`);
    }
    const meta = JSON.parse(metadata.checkpoint);
    const need = (name: string) => {
      const t = tensors.get(name);
      if (t === undefined) throw new CheckpointError(`checkpoint ${path} has no ${name}`);
      return t.data;
    };
    const buffers: Record<string, Float32Array> = {};
    for (const [name, t] of tensors) {
      if (name.startsWith("optimizer.")) buffers[name.slice("optimizer.".length)] = t.data;
    }
    return {
      run: meta.run,
      network: meta.network,
      vocabulary: meta.vocabulary,
      params: need("params"),
      optimizer: { kind: meta.optimizer.kind, steps: meta.optimizer.steps, buffers },
      position: { p: meta.position.p, epoch: meta.position.epoch, state: need("state") },
      progress: meta.progress,
      rng: meta.rng,
    };
  } catch (err) {
    if (err instanceof CheckpointError) throw err;
    if (err instanceof SafetensorsError || err instanceof SyntaxError || err instanceof TypeError) {
      throw new CheckpointError(`checkpoint ${path} is corrupt: ${err.message}`);
    }
    throw err;
  }
}
