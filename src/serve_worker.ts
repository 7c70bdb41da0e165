// One more isolate for `deno task start` with WORKERS > 1 (see start.ts): serves src/main.ts on
// the same port as the main isolate (SO_REUSEPORT) and checkpoints its open sessions when the
// main isolate, told to stop, asks it to.
/// <reference lib="deno.worker" />
import { loadConfig } from "./config.ts";
import handler, { sessions } from "./main.ts";

/** Messages from the main isolate. */
export type ToWorker = "shutdown";

/** Messages to it. */
export type FromWorker =
  | { listening: true }
  | { checkpointed: { written: number; failed: number } };

const { port, host } = loadConfig();
const post = (message: FromWorker) => self.postMessage(message);
Deno.serve({
  port,
  hostname: host,
  reusePort: true,
  onListen: () => post({ listening: true }),
}, handler.fetch);

self.onmessage = async (e: MessageEvent<ToWorker>) => {
  if (e.data === "shutdown") post({ checkpointed: await sessions.checkpointAll() });
};
