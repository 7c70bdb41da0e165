// Opening the one KV every command shares: a local SQLite file by default, `:memory:` in tests,
// or a remote database over KV Connect (Deno Deploy, or self-hosted denokv).
import { dirname } from "node:path";
import { retryingKv } from "./_busy_retry.ts";

/** Where `deno task start` and `deno task train` keep their data unless told otherwise. */
export const DEFAULT_KV_PATH = "./data/kv.sqlite3";

/** The environment variable Deno reads the KV Connect access token from. */
export const KV_ACCESS_TOKEN_ENV = "DENO_KV_ACCESS_TOKEN";

/**
 * Opens a Deno KV store.
 *
 * @param location `undefined` for {@linkcode DEFAULT_KV_PATH}; `":memory:"` for a store that
 *   lives as long as the handle; a file path (its directory is created if missing); or an
 *   `http://` / `https://` KV Connect URL such as
 *   `https://api.deno.com/databases/<id>/connect`, which needs `DENO_KV_ACCESS_TOKEN` set
 * @returns the open store; close it with `kv.close()`
 * @throws {Error} for an empty location, or a URL without `DENO_KV_ACCESS_TOKEN` in the
 *   environment
 * @example
 * ```ts
 * import { openKv } from "./open_kv.ts";
 * const kv = await openKv(":memory:");
 * await kv.set(["hello"], "world");
 * kv.close();
 * ```
 */
export async function openKv(location?: string): Promise<Deno.Kv> {
  const where = location ?? DEFAULT_KV_PATH;
  if (where === "") {
    throw new Error("the KV location is empty: give a file path, :memory: or a URL");
  }
  if (where === ":memory:") return await Deno.openKv(where);
  if (/^https?:\/\//i.test(where)) {
    if (!Deno.env.get(KV_ACCESS_TOKEN_ENV)) {
      throw new Error(
        `opening the remote KV ${where} needs an access token in ${KV_ACCESS_TOKEN_ENV} ` +
          `(for Deno Deploy, a personal access token from the dashboard)`,
      );
    }
    return await Deno.openKv(where);
  }
  await Deno.mkdir(dirname(where), { recursive: true });
  return retryingKv(await Deno.openKv(where));
}
