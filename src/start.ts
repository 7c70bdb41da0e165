// `deno task start`: serves src/main.ts on $PORT (8000) and $HOST (0.0.0.0). On Deno Deploy and
// with `deno serve`, src/main.ts is the entry and the platform picks the address.
import { loadConfig } from "./config.ts";
import handler from "./main.ts";

const { port, host } = loadConfig();
Deno.serve({ port, hostname: host }, handler.fetch);
