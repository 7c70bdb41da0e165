// `deno task start`: serves src/main.ts on $PORT (8000) and $HOST (0.0.0.0). On Deno Deploy and
// with `deno serve`, src/main.ts is the entry and the platform picks the address.
//
// WORKERS=N (1) serves from N isolates, each on its own thread with its own KV handle, model
// cache and sessions, all listening on the one port (SO_REUSEPORT: Linux spreads connections
// over them). The main isolate publishes the fixture models before the others start, and on
// SIGINT/SIGTERM has every isolate checkpoint its open sessions before the process ends.
import { loadConfig } from "./config.ts";
import handler, { shutdownHooks } from "./main.ts";
import type { FromWorker, ToWorker } from "./serve_worker.ts";

const { port, host, workers } = loadConfig();
const listening: Promise<void>[] = [];
for (let k = 1; k < workers; k++) {
  const worker = new Worker(new URL("./serve_worker.ts", import.meta.url), { type: "module" });
  const replies: ((message: FromWorker) => void)[] = [];
  worker.onmessage = (e: MessageEvent<FromWorker>) => replies.shift()?.(e.data);
  const next = () => new Promise<FromWorker>((resolve) => replies.push(resolve));
  listening.push(next().then(() => {}));
  shutdownHooks.push(async () => {
    const reply = next();
    worker.postMessage("shutdown" satisfies ToWorker);
    // A worker that does not answer (it died) must not keep the process from ending.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const silent = new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), 10_000));
    const message = await Promise.race([reply, silent]);
    clearTimeout(timer);
    if (message === null) console.error(`isolate ${k} did not answer the shutdown in 10 s`);
    return message !== null && "checkpointed" in message
      ? message.checkpointed
      : { written: 0, failed: 0 };
  });
}
await Promise.all(listening);
Deno.serve({
  port,
  hostname: host,
  reusePort: workers > 1,
  onListen: (addr) =>
    console.error(
      `Listening on http://${addr.hostname}:${addr.port}/` +
        (workers > 1 ? ` with ${workers} isolates` : ""),
    ),
}, handler.fetch);
