// Server configuration from the environment: defaults, units, and refusals at startup.
import assert from "node:assert/strict";
import { loadConfig } from "../src/config.ts";
import { DEFAULT_LIMITS } from "../src/stream/mod.ts";

const from = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("loadConfig() has the documented defaults and reads seconds as seconds", () => {
  const local = loadConfig(from({}));
  assert.equal(local.port, 8000);
  assert.equal(local.kvPath, "./data/kv.sqlite3");
  assert.equal(local.defaultModel, "moby");
  assert.equal(local.workers, 1);
  assert.equal(loadConfig(from({ WORKERS: "2" })).workers, 2);
  assert.deepEqual(local.limits, DEFAULT_LIMITS);
  const deploy = loadConfig(
    from({ DENO_DEPLOYMENT_ID: "x", KEEPALIVE_SECONDS: "2.5", TOP_K: "3" }),
  );
  assert.equal(deploy.kvPath, undefined, "the managed KV on Deno Deploy");
  assert.equal(deploy.limits.keepAliveMs, 2500);
  assert.equal(deploy.limits.topK, 3);
});

Deno.test("loadConfig() refuses bad values at startup, naming the variable", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ PORT: "-1" }, /PORT/],
    [{ TOP_K: "2.5" }, /TOP_K must be a whole number/],
    [{ CHECKPOINT_EVERY: "abc" }, /CHECKPOINT_EVERY/],
    [{ HOST: " " }, /HOST/],
    [{ DEFAULT_MODEL: "../x" }, /invalid model name/],
    [{ WORKERS: "1.5" }, /WORKERS must be a whole number/],
    [{ WORKERS: "65" }, /WORKERS must be a whole number from 1 to 64/],
  ];
  for (const [vars, message] of cases) assert.throws(() => loadConfig(from(vars)), message);
});
