// `deno task models`: list the models in a KV store with their kept versions, or move a model's
// current version back (rollback). Works on the local file, `:memory:` or a KV Connect URL.
import { parseArgs } from "node:util";
import {
  DEFAULT_KV_PATH,
  getCurrentVersion,
  listModels,
  type ModelListing,
  type ModelManifest,
  openKv,
  rollbackModel,
} from "../store/mod.ts";

const HELP = `Usage: deno task models [--kv PATH|URL] [--json]
       deno task models rollback NAME [VERSION] [--kv PATH|URL] [--json]

Lists every model in the KV store with its kept versions (the current one marked *): version,
created-at, cell, layers, hidden size, task, size of the weights in KB and the validation loss
recorded at publish time (metrics.val_loss), if any.

rollback NAME [VERSION] moves NAME's current version (the one new sessions get) to VERSION, by
default to the newest kept version older than the current one, after checking that it loads.
Sessions already running keep the version they started on.

Options:
  --kv PATH|URL   the KV store: a SQLite file (default ${DEFAULT_KV_PATH}), :memory:, or a
                  KV Connect URL such as https://api.deno.com/databases/<id>/connect (needs
                  DENO_KV_ACCESS_TOKEN in the environment)
  --json          print JSON instead of a table
  --help          show this text`;

/**
 * Renders the model list as an aligned text table, one row per kept version, the current
 * version of each model marked with `*`.
 *
 * @param models what {@linkcode listModels} returned
 * @returns the table, without a trailing newline
 * @example
 * ```ts
 * import { formatModelTable } from "./models.ts";
 * formatModelTable([]); // "no models"
 * ```
 */
export function formatModelTable(models: ModelListing[]): string {
  const rows: string[][] = [];
  for (const { name, current, versions } of models) {
    for (const m of versions) {
      const loss = m.metrics?.val_loss;
      rows.push([
        m.version === current ? "*" : "",
        name,
        String(m.version),
        m.createdAt,
        m.cell,
        String(m.layers),
        String(m.hiddenSize),
        m.task,
        (m.byteLength / 1024).toFixed(1),
        typeof loss === "number" ? loss.toFixed(4) : "-",
      ]);
    }
  }
  if (rows.length === 0) return "no models";
  const header = [
    "",
    "MODEL",
    "VERSION",
    "CREATED",
    "CELL",
    "LAYERS",
    "HIDDEN",
    "TASK",
    "SIZE_KB",
    "VAL_LOSS",
  ];
  const numeric = new Set([2, 5, 6, 8, 9]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  return [header, ...rows]
    .map((row) =>
      row.map((cell, c) => numeric.has(c) ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))
        .join("  ").trimEnd()
    )
    .join("\n");
}

function describeVersion(m: ModelManifest): string {
  return `${m.cell}, ${m.layers} layer${m.layers === 1 ? "" : "s"}, hidden ${m.hiddenSize}, ` +
    `${m.task}, published ${m.createdAt}`;
}

function parseVersion(text: string): number {
  const version = Number(text);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(version) || version < 1) {
    throw new Error(`VERSION must be a positive whole number, not ${JSON.stringify(text)}`);
  }
  return version;
}

/**
 * Runs the command.
 *
 * @param args the command-line arguments
 * @returns the exit code
 * @throws {Error} for bad arguments and store errors; the caller prints the message
 */
export async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      kv: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const [command, ...rest] = positionals;
  if (command !== undefined && command !== "rollback") {
    throw new Error(`unknown command ${JSON.stringify(command)} (see --help)`);
  }
  if (command === "rollback" && (rest.length < 1 || rest.length > 2)) {
    throw new Error("usage: models rollback NAME [VERSION] (see --help)");
  }
  const version = rest[1] === undefined ? undefined : parseVersion(rest[1]);

  const kv = await openKv(values.kv);
  try {
    if (command === undefined) {
      const models = await listModels(kv);
      console.log(values.json ? JSON.stringify(models, null, 2) : formatModelTable(models));
      return 0;
    }
    const name = rest[0];
    // Read for the report only: the rollback itself checks that current did not move meanwhile.
    const previous = await getCurrentVersion(kv, name);
    const manifest = await rollbackModel(kv, name, version);
    if (values.json) {
      console.log(JSON.stringify({ name, previous, current: manifest }, null, 2));
    } else if (previous === manifest.version) {
      console.log(
        `${name}: v${manifest.version} is already current (${describeVersion(manifest)})`,
      );
    } else {
      console.log(
        `${name}: current moved from v${previous} to v${manifest.version} ` +
          `(${describeVersion(manifest)})`,
      );
    }
    return 0;
  } finally {
    kv.close();
  }
}

if (import.meta.main) {
  try {
    Deno.exitCode = await main(Deno.args);
  } catch (err) {
    console.error(`models: ${err instanceof Error ? err.message : String(err)}`);
    Deno.exitCode = 1;
  }
}
