// The demo page and a model page in a real browser: Debian's headless Chromium driven by
// playwright-core, against a real server on loopback whose fresh store is seeded with the
// fixture models. What the page shows is checked against the same requests made here through
// the API. Waits are on DOM conditions, never on fixed sleeps. Screenshots are kept in
// test/artifacts/ (git-ignored).
//
// Run by test/browser_test.ts in a process of its own (`deno test --allow-all`): playwright-core
// reads /proc/sys when it loads (to tell whether it runs under WSL), which Deno allows only
// with --allow-all, and the rest of the suite keeps its narrower permissions.
import assert from "node:assert/strict";
import { type Browser, chromium, type Page } from "playwright-core";
import { ROOT, ServerProcess, type SseEvent, SseReader } from "../_server.ts";

/** Debian's Chromium. */
const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = `${ROOT}test/artifacts`;

/** Whitespace tokens as the page draws them (demo.js SHOWN). */
const shown = (t: string) => ({ " ": "␣", "\n": "↵", "\t": "⇥" } as Record<string, string>)[t] ?? t;
/** A probability as the page writes it (demo.js percent). */
const percent = (p: number) => `${(100 * p).toFixed(1)} %`;

/** POST a session request through the API and read all of its events. */
async function api(
  base: string,
  path: string,
  body: string,
  type = "text/plain; charset=utf-8",
): Promise<SseEvent[]> {
  const res = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": type },
    body,
    signal: AbortSignal.timeout(20_000),
  });
  assert.equal(res.status, 200, `${path}: ${res.status}`);
  const reader = new SseReader(res.body!);
  try {
    return await reader.rest(20_000);
  } finally {
    await reader.cancel();
  }
}

/** The text of every element a selector matches, trimmed. */
async function texts(page: Page, selector: string): Promise<string[]> {
  return (await page.locator(selector).allTextContents()).map((t) => t.trim());
}

/** The transcript's text: its tokens (typed, or only the generated ones) as written. */
async function transcript(page: Page, only = ".tok"): Promise<string> {
  return (await page.locator(`#transcript ${only}`).allTextContents()).join("");
}

/** The bars of a list as [label, percentage text] pairs. */
async function bars(page: Page, list: string): Promise<[string, string][]> {
  const labels = await texts(page, `${list} li .label`);
  const values = await texts(page, `${list} li .value`);
  return labels.map((l, k) => [l, values[k]]);
}

/** Waits until the page holds `n` tokens in its transcript and heatmap. */
async function waitForTokens(page: Page, n: number): Promise<void> {
  await page.waitForSelector(`#heatmap[data-columns="${n}"]`, { state: "attached" });
  assert.equal(await page.locator("#transcript .tok").count(), n);
}

/** Replaces a field's value from the keyboard (focus, select all, type). */
async function typeInto(page: Page, selector: string, value: string): Promise<void> {
  await page.focus(selector);
  await page.keyboard.press("ControlOrMeta+A");
  await page.keyboard.type(value);
}

Deno.test({
  name: "browser: the demo page streams, generates and draws the hidden state; a model page " +
    "draws its loss curves",
  // playwright-core keeps a pipe and timers to the browser process until it is closed (below).
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    const dir = await Deno.makeTempDir({ prefix: "edge-rnn-browser-" });
    let server: ServerProcess | null = null;
    let browser: Browser | null = null;
    try {
      server = await ServerProcess.start({ kvPath: `${dir}/kv.sqlite3` });
      const base = server.base;
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ["--headless", "--no-sandbox"],
        timeout: 30_000,
      });
      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      page.setDefaultTimeout(15_000);
      // Script errors and policy violations (Chromium logs them as console errors) fail the test.
      const problems: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error") problems.push(`console: ${m.text()}`);
      });
      page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));

      await t.step("the demo page lists the published models and starts a session", async () => {
        await page.goto(`${base}/`);
        await page.waitForSelector('#model option[value="names-single"]', { state: "attached" });
        const options = await page.locator("#model option").evaluateAll((os) =>
          os.map((o) => (o as unknown as { value: string }).value)
        );
        assert.deepEqual(
          options.sort(),
          ["moby", "names-classify", "names-generate", "names-single"],
        );
        assert.equal(await page.locator("#model").inputValue(), "moby");
        await page.waitForSelector('#model-info:has-text("moby version 1")');
        assert.match(await page.locator("#session").inputValue(), /^demo-[a-z0-9]{8}$/);
      });

      const text = "The whale";
      const lm = await api(base, "/session/check-lm?model=moby", text);
      const lmSteps = lm.filter((e) => e.event === "step");

      await t.step("typing streams each character's next-character distribution", async () => {
        await page.focus("#input");
        // One character at a time: each one's output is on the page before the next is typed.
        for (let k = 0; k < 3; k++) {
          await page.keyboard.type(text[k]);
          await waitForTokens(page, k + 1);
        }
        await page.keyboard.type(text.slice(3));
        await waitForTokens(page, text.length);
        await page.waitForSelector(`#position-out:has-text("seq ${text.length}:")`);
        assert.equal(await transcript(page), text);
        const top = lmSteps.at(-1)!.json.top as { token: string; p: number }[];
        assert.deepEqual(await bars(page, "#dist"), top.map((o) => [shown(o.token), percent(o.p)]));
        await page.waitForSelector(`#session-info:has-text("seq ${text.length}, durable")`);
      });

      await t.step("the hidden state is drawn: a column per token, a row per unit", async () => {
        const heat = page.locator("#heatmap");
        assert.equal(await heat.getAttribute("data-rows"), "128");
        assert.equal(await heat.getAttribute("data-columns"), String(text.length));
        assert.match(await heat.getAttribute("aria-label") ?? "", /128 units .* 9 tokens/);
        // Drawn, not blank: the canvas has pixels that are not white.
        const colored = await heat.evaluate((c) => {
          const canvas = c as unknown as {
            width: number;
            height: number;
            getContext(k: "2d"): { getImageData(...a: number[]): { data: Uint8ClampedArray } };
          };
          const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
          let n = 0;
          for (let i = 0; i < d.length; i += 4) if (d[i] < 250 || d[i + 2] < 250) n++;
          return n;
        });
        assert.ok(colored > 0, "the heatmap has colored cells");
      });

      await t.step(
        "the slider, from the keyboard, shows an earlier character's outputs",
        async () => {
          await page.focus("#position");
          await page.keyboard.press("Home");
          await page.waitForSelector('#position-out:has-text("seq 1: “T”")');
          const first = lmSteps[0].json.top as { token: string; p: number }[];
          assert.deepEqual(
            await bars(page, "#dist"),
            first.map((o) => [shown(o.token), percent(o.p)]),
          );
          await page.keyboard.press("ArrowRight");
          await page.waitForSelector('#position-out:has-text("seq 2: “h”")');
          await page.keyboard.press("End");
          await page.waitForSelector('#position-out:has-text("(newest)")');
        },
      );

      await t.step("generate from the keyboard: greedy, 20 tokens, the API's text", async () => {
        await typeInto(page, "#temperature", "0");
        await typeInto(page, "#max-tokens", "20");
        await page.keyboard.press("Enter"); // submits the form
        await page.waitForSelector('#gen-status:has-text("token limit reached")');
        await waitForTokens(page, text.length + 20);
        const generated = await transcript(page, ".tok.generated");
        const events = await api(
          base,
          "/session/check-lm/generate",
          JSON.stringify({ max_tokens: 20, temperature: 0, top_k: 0, seed: 1 }),
          "application/json",
        );
        const want = events.filter((e) => e.event === "token").map((e) => e.json.token).join("");
        assert.equal(generated, want.replaceAll("\n", "↵\n"));
        await page.screenshot({ path: `${ARTIFACTS}/demo.png`, fullPage: true });
      });

      await t.step(
        "editing earlier text starts a new session and sends the text again",
        async () => {
          const before = await page.locator("#session").inputValue();
          await page.focus("#input");
          await page.keyboard.press("End");
          await page.keyboard.press("Backspace");
          await page.waitForSelector('#status:has-text("new session")');
          await waitForTokens(page, text.length - 1);
          assert.notEqual(await page.locator("#session").inputValue(), before);
          assert.equal(await transcript(page), text.slice(0, -1));
        },
      );

      await t.step("a classifier: the class probabilities move as a name is typed", async () => {
        const emma = await api(base, "/session/check-cls?model=names-classify", "Emma");
        const probs = emma.filter((e) => e.event === "step").map((e) => e.json.probs);
        const row = (p: Record<string, number>) =>
          Object.entries(p).map(([k, v]) => [k, percent(v)]);
        await page.selectOption("#model", "names-classify");
        await page.waitForSelector("#class-box:not([hidden])");
        await page.waitForSelector("#gen-fields[disabled]", { state: "attached" });
        await page.focus("#input");
        await page.keyboard.type("E");
        await waitForTokens(page, 1);
        assert.deepEqual(await bars(page, "#classes"), row(probs[0]));
        assert.ok(probs[0].male > probs[0].female, "after E: male ahead");
        await page.keyboard.type("mma");
        await page.waitForSelector('#result:has-text("female")');
        assert.deepEqual(await bars(page, "#classes"), row(probs[3]));
        assert.ok(probs[3].female > 0.9, "after Emma: female");
        assert.equal(await page.locator("#heatmap").getAttribute("data-rows"), "64");
        await page.screenshot({ path: `${ARTIFACTS}/classify.png`, fullPage: true });
      });

      await t.step("a generator: a name from a class, in a session of its own", async () => {
        await page.selectOption("#model", "names-generate");
        await page.waitForSelector("#class-field:not([hidden])");
        assert.equal(await page.locator("#input").isDisabled(), true);
        await page.selectOption("#class", "male");
        await typeInto(page, "#seed", "3");
        await typeInto(page, "#temperature", "1");
        await page.keyboard.press("Enter");
        await page.waitForSelector('#gen-status:has-text("the sequence ended")');
        const name = await transcript(page, ".tok.generated");
        const events = await api(
          base,
          "/session/check-gen/generate",
          JSON.stringify({ model: "names-generate", class: "male", seed: 3, max_tokens: 80 }),
          "application/json",
        );
        const want = events.filter((e) => e.event === "token").map((e) => e.json.token).join("");
        assert.equal(name, want.replaceAll("\n", "↵\n"));
        assert.ok(want.endsWith("\n") && want.length > 1, JSON.stringify(want));
      });

      await t.step("one to one: the last character typed is classified alone", async () => {
        const [result] = (await api(base, "/session/check-one?model=names-single", "a"))
          .filter((e) => e.event === "result");
        await page.selectOption("#model", "names-single");
        await page.waitForSelector("#heat-section[hidden]", { state: "attached" });
        await page.focus("#input");
        await page.keyboard.type("Emma");
        await page.waitForSelector('#class-caption:has-text("For “a” alone")');
        await page.waitForSelector(`#result:has-text("Result: ${result.json.label}")`);
        assert.deepEqual(
          await bars(page, "#classes"),
          Object.entries(result.json.probs as Record<string, number>).map(([k, v]) => [
            k,
            percent(v),
          ]),
        );
      });

      await t.step("an existing session's id continues it, on its own model", async () => {
        // check-cls was given "Emma" through the API above (seq 4).
        await typeInto(page, "#session", "check-cls");
        await page.keyboard.press("Tab"); // leaving the field looks the session up
        await page.waitForSelector('#session-info:has-text("continues at seq 4")');
        assert.equal(await page.locator("#model").inputValue(), "names-classify");
        await page.focus("#input");
        await page.keyboard.type("s");
        await page.waitForSelector('#position-out:has-text("seq 5: “s”")');
        await page.waitForSelector('#result:has-text("after seq 5")');
      });

      await t.step("every control is reached by Tab, in reading order", async () => {
        await page.goto(`${base}/`);
        await page.waitForSelector('#model-info:has-text("moby version 1")');
        const order: string[] = [];
        for (let k = 0; k < 10; k++) {
          await page.keyboard.press("Tab");
          order.push(
            await page.evaluate(`(() => { const e = document.activeElement;
              return e.id || e.tagName.toLowerCase(); })()`),
          );
        }
        assert.deepEqual(order, [
          ...["model", "session", "new-session", "a", "input"],
          ...["max-tokens", "temperature", "top-k", "seed", "generate"],
        ]);
      });

      await t.step("a narrow screen (360 px): no sideways scrolling", async () => {
        await page.setViewportSize({ width: 360, height: 800 });
        await page.goto(`${base}/`);
        await page.waitForSelector('#model-info:has-text("moby version 1")');
        await page.focus("#input");
        await page.keyboard.type("Call me Ishmael. Some years ago");
        await waitForTokens(page, 31);
        const width = await page.evaluate<number>("document.documentElement.scrollWidth");
        assert.ok(width <= 360, `the page is ${width} px wide`);
        await page.screenshot({ path: `${ARTIFACTS}/demo-narrow.png`, fullPage: true });
        await page.goto(`${base}/models/moby`);
        await page.waitForSelector("#v1 svg");
        const modelWidth = await page.evaluate<number>("document.documentElement.scrollWidth");
        assert.ok(modelWidth <= 360, `the model page is ${modelWidth} px wide`);
        await page.setViewportSize({ width: 1100, height: 900 });
      });

      await t.step("a model page: the current version and its stored loss curves", async () => {
        await page.goto(`${base}/models/moby`);
        await page.waitForSelector("#v1 svg");
        assert.equal(await page.locator("#v1 svg polyline").count(), 2, "train and validation");
        assert.equal(
          await page.locator("#v1 svg title").textContent(),
          "moby v1: gru H=128",
        );
        assert.deepEqual(await texts(page, "tr.current td:nth-child(2)"), ["current"]);
        assert.match(
          await page.locator("#v1 figcaption").textContent() ?? "",
          /Training loss \(100\s+points\) and validation loss \(4 points\)/,
        );
        await page.screenshot({ path: `${ARTIFACTS}/model-moby.png`, fullPage: true });
        // And from the demo page, by its link.
        await page.goto(`${base}/?model=names-single`);
        await page.waitForSelector('#model-info:has-text("names-single version 1")');
        await page.click("#model-info a");
        await page.waitForSelector("#v1 svg polyline");
        assert.equal(new URL(page.url()).pathname, "/models/names-single");
      });

      await t.step("no script error or policy violation on any page", () => {
        assert.deepEqual(problems, []);
      });

      await t.step("the policy stops an inline script that got into a page", async () => {
        await page.goto(`${base}/models/moby`);
        await page.waitForSelector("#v1 svg");
        const ran = await page.evaluate(`new Promise((resolve) => {
          const s = document.createElement("script");
          s.textContent = "window.injected = true";
          document.head.append(s);
          setTimeout(() => resolve(window.injected === true), 0);
        })`);
        assert.equal(ran, false);
        assert.ok(
          problems.some((p) => /Content Security Policy/.test(p)),
          `Chromium reported the violation: ${JSON.stringify(problems)}`,
        );
      });
    } catch (err) {
      if (server !== null) console.error(`server output:\n${server.log}`);
      throw err;
    } finally {
      await browser?.close();
      await server?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
