// `deno task apikey NAME`: makes a new random API key and prints it with the `API_KEYS` entry
// that accepts it. The server is configured with the entry (name and SHA-256), never the key.
import { parseArgs } from "node:util";
import { KEY_NAME_PATTERN, newApiKey, sha256Hex } from "../access/mod.ts";

const HELP = `Usage: deno task apikey NAME

Makes a new random API key for NAME and prints two lines: the key, to give to the client (it
sends "Authorization: Bearer <key>"), and the entry to add to the server's API_KEYS variable
(comma-separated NAME:SHA256 pairs). The key is shown once and stored nowhere. NAME is the
key's public id (1 to 64 letters, digits, ".", "_" or "-"): the owner recorded on the sessions
it creates. To rotate a key, make a new one with the same NAME and replace the entry: the
sessions stay with the name.`;

const { positionals, values } = parseArgs({
  args: Deno.args,
  options: { help: { type: "boolean" } },
  allowPositionals: true,
});
if (values.help) {
  console.log(HELP);
  Deno.exit(0);
}
if (positionals.length !== 1 || !KEY_NAME_PATTERN.test(positionals[0])) {
  console.error(HELP);
  Deno.exit(2);
}
const name = positionals[0];
const key = newApiKey();
console.log(`key:      ${key}`);
console.log(`API_KEYS: ${name}:${await sha256Hex(key)}`);
