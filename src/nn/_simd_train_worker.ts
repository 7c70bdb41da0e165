// The second thread of the WebAssembly training path: it instantiates train.wasm on the shared
// memory it is given, then runs shard 1 of every window the main thread starts (see
// SimdTrainer in simd_trainer.ts), waiting on the control words between windows.
/// <reference lib="deno.worker" />
import { CTRL, runShard, type TrainKernels, type TrainPlan } from "./_simd_shard.ts";

interface Init {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  plan: TrainPlan;
}

self.onmessage = (e: MessageEvent<Init>) => {
  const { module, memory, plan } = e.data;
  const ctrl = new Int32Array(memory.buffer, plan.ctrl, CTRL.size);
  const scale = new Float64Array(memory.buffer, plan.ctrl + CTRL.scaleByte, 1);
  try {
    const kernels = new WebAssembly.Instance(module, { env: { memory } })
      .exports as unknown as TrainKernels;
    // Read before saying ready: the main thread may start the first window right after.
    let seen = Atomics.load(ctrl, CTRL.go);
    Atomics.store(ctrl, CTRL.ready, 1);
    Atomics.notify(ctrl, CTRL.ready);
    for (;;) {
      Atomics.wait(ctrl, CTRL.go, seen);
      if (Atomics.load(ctrl, CTRL.quit) === 1) break;
      seen = Atomics.load(ctrl, CTRL.go);
      try {
        runShard(kernels, memory.buffer, plan, plan.shards[1], ctrl[CTRL.steps], scale[0]);
      } catch (err) {
        // The main thread is blocked until `done`: say it here, and let it throw.
        console.error("training worker:", err);
        Atomics.store(ctrl, CTRL.failed, 1);
      } finally {
        Atomics.store(ctrl, CTRL.done, seen);
        Atomics.notify(ctrl, CTRL.done);
      }
    }
  } catch (err) {
    // Without kernels the main thread runs both shards itself.
    console.error("training worker:", err);
    Atomics.store(ctrl, CTRL.failed, 1);
    Atomics.notify(ctrl, CTRL.ready);
  }
  self.close();
};
