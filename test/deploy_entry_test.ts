// The served entry as Deno Deploy runs it: `deno serve src/main.ts` with no write permission but
// the KV file's directory and no run permission; a fresh store gets the fixture models.
import assert from "node:assert/strict";
import { freePort, ROOT } from "./_server.ts";

Deno.test("src/main.ts serves under deno serve with only net, env, read and the KV file's write permission", async () => {
  const dir = await Deno.makeTempDir();
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "serve",
      "--allow-net=127.0.0.1",
      "--allow-env",
      "--allow-read",
      `--allow-write=${dir}`,
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "src/main.ts",
    ],
    cwd: ROOT,
    env: { KV_PATH: `${dir}/kv.sqlite3` },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  const collect = (async () => {
    for (;;) {
      const { done, value } = await stderr.read();
      if (done) return;
      log += value;
    }
  })();
  try {
    const base = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ok = await fetch(`${base}/healthz`).then(
        (r) => r.body?.cancel().then(() => r.ok),
        () => false,
      );
      if (ok) break;
      assert.ok(Date.now() < deadline, `the server did not come up:\n${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const models = await (await fetch(`${base}/models`)).json();
    const names = models.models.map((m: { name: string }) => m.name).sort();
    assert.deepEqual(names, ["moby", "names-classify", "names-generate", "names-single"]);
    const res = await fetch(`${base}/session/deploy-check`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "Call me",
    });
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /event: done\ndata: \{"seq":7,"durable_seq":7\}/);
    assert.doesNotMatch(log, /NotCapable|PermissionDenied/, log);
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await collect;
    await Deno.remove(dir, { recursive: true });
  }
});
