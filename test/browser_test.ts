// The browser tests (test/browser/pages.ts: the demo page and a model page in Debian's headless
// Chromium) as part of `deno task test`. They run in a `deno test --allow-all` process of their
// own because playwright-core reads /proc/sys when it loads, which Deno allows only with
// --allow-all; the rest of the suite keeps its narrower permissions.
//
// Without /usr/bin/chromium they are skipped with a message, except in CI (CI set), where they
// run and fail: .ci/run installs chromium first.
import assert from "node:assert/strict";
import { ROOT } from "./_server.ts";

const CHROMIUM = "/usr/bin/chromium";
/** Longest the browser tests may take, start to end (they take about 10 s here). */
const LIMIT_MS = 240_000;

const haveChromium = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();
const ci = !["", "0", "false"].includes((Deno.env.get("CI") ?? "").toLowerCase());
if (!haveChromium && !ci) {
  console.error(
    `skipping the browser tests: ${CHROMIUM} does not exist (apt-get install chromium; ` +
      "in CI, with CI set, they run and fail without it)",
  );
}

Deno.test({
  name: "browser: the demo page streams, generates and draws the hidden state; a model page " +
    "draws its loss curves (test/browser/pages.ts in headless Chromium)",
  ignore: !haveChromium && !ci,
  async fn() {
    assert.ok(haveChromium, `${CHROMIUM} is missing: apt-get install chromium (.ci/run does)`);
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["test", "--allow-all", "test/browser/pages.ts"],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdin: "null",
      signal: AbortSignal.timeout(LIMIT_MS),
    }).output();
    const out = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    console.log(out.trim());
    assert.equal(code, 0, `the browser tests failed (exit ${code}); their output is above`);
    assert.match(out, /^ok \| 1 passed \(\d+ steps\) \| 0 failed/m);
  },
});
