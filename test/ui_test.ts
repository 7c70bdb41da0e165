// The pages, through `app.request` (no browser): the demo page and its files, and the model page
// that GET /models/:name gives a client asking for HTML, while JSON clients get the same bytes
// as before. What a page shows from a model (its name, vocabulary, labels, training settings) is
// escaped; the policy lets only this origin's script and stylesheet run.
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createApp } from "../src/app.ts";
import { type Model, readModelFile } from "../src/format/mod.ts";
import { Network } from "../src/nn/mod.ts";
import { ModelCache } from "../src/store/model_cache.ts";
import { describeModel, publishModel } from "../src/store/registry.ts";
import { CONTENT_SECURITY_POLICY } from "../src/ui/mod.ts";

const GRU: Model = await readModelFile(
  new URL("../fixtures/golden/train/train_gru.safetensors", import.meta.url).pathname,
);

/** What a browser sends when it navigates to a page (Chromium's Accept). */
const BROWSER_ACCEPT =
  "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

/** Text meant to break out of HTML if it were not escaped. */
const EVIL = `<script>alert("x")</script>`;
const EVIL_LABEL = `<img src=x onerror=alert(1)>`;

/** A tiny classifier whose vocabulary and labels are markup. */
function evilModel(): Model {
  // A vocabulary holds single characters and special tokens, which look like tags.
  const vocabulary = ["<unk>", "<script>", "<", "&", `"`, "'", "a"];
  const network = Network.create({
    cell: "rnn",
    nonlinearity: "tanh",
    input: "embedding",
    vocabSize: vocabulary.length,
    inputSize: 3,
    hiddenSize: 4,
    layers: 1,
    outputSize: 2,
  }, 3);
  return { network, meta: { task: "classify", vocabulary, labels: [EVIL_LABEL, "b"], extra: {} } };
}

/** Curves as `deno task train` stores them. */
const CURVE = {
  train: [[100, 3.2], [200, 2.5], [300, 2.1], [400, 1.9]],
  val: [[200, 2.6], [400, 2.0]],
};

/** An app over an in-memory KV; closed afterwards. */
async function withApp(fn: (app: Hono, kv: Deno.Kv) => Promise<void>): Promise<void> {
  const kv = await Deno.openKv(":memory:");
  const models = new ModelCache(kv);
  try {
    await fn(createApp({ kv, models }), kv);
  } finally {
    models.close();
    kv.close();
  }
}

/** GET with an Accept header (none when null). */
async function get(app: Hono, path: string, accept: string | null): Promise<Response> {
  return await app.request(path, { headers: accept === null ? {} : { accept } });
}

/** Asserts an HTML page with the policy and no inline script or style. */
async function assertPage(res: Response): Promise<string> {
  const text = await res.text();
  assert.equal(res.status, 200, text.slice(0, 300));
  assert.equal(res.headers.get("content-type"), "text/html; charset=UTF-8");
  assert.equal(res.headers.get("content-security-policy"), CONTENT_SECURITY_POLICY);
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  assert.match(text, /^<!doctype html>\s*<html lang="en">/);
  assert.match(text, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
  // Scripts only from files (the policy would block inline ones anyway), no inline styles.
  for (const tag of text.match(/<script\b[^>]*>/g) ?? []) assert.match(tag, / src="\/demo\.js"/);
  assert.doesNotMatch(text, /<style\b/i);
  for (const tag of text.match(/<[a-z][^>]*>/gi) ?? []) {
    assert.doesNotMatch(tag, /\s(style|on[a-z]+)=/i, `no inline style or handler: ${tag}`);
  }
  return text;
}

Deno.test("the policy allows this origin's scripts, styles and fetches, and nothing else", () => {
  const rules = new Map(
    CONTENT_SECURITY_POLICY.split("; ").map((r) => [r.split(" ")[0], r.split(" ").slice(1)]),
  );
  assert.deepEqual(rules.get("default-src"), ["'none'"]);
  for (const d of ["script-src", "style-src", "connect-src", "img-src"]) {
    assert.deepEqual(rules.get(d), ["'self'"], d);
  }
  assert.doesNotMatch(CONTENT_SECURITY_POLICY, /unsafe|\*|data:/);
});

Deno.test("GET / serves the demo page: every control labelled, the script from /demo.js", async () => {
  await withApp(async (app) => {
    const text = await assertPage(await get(app, "/", BROWSER_ACCEPT));
    assert.match(text, /<script type="module" src="\/demo\.js"><\/script>/);
    assert.match(text, /<link rel="stylesheet" href="\/style\.css">/);
    const labelled = new Set([...text.matchAll(/<label for="([^"]+)"/g)].map((m) => m[1]));
    const controls = [...text.matchAll(/<(input|select|textarea)\b[^>]*\bid="([^"]+)"/g)]
      .map((m) => m[2]);
    assert.deepEqual(controls, [
      ...["model", "session", "input", "position"],
      ...["class", "max-tokens", "temperature", "top-k", "seed"],
    ]);
    for (const id of controls) assert.ok(labelled.has(id), `#${id} has a <label for>`);
    for (const b of text.match(/<button\b[^>]*>[^<]*<\/button>/g) ?? []) {
      assert.match(b, />[^<\s][^<]*<\/button>/, `${b} has a text`);
    }
  });
});

Deno.test("GET /demo.js, /style.css and /favicon.svg: content types, ETag, 304", async (t) => {
  await withApp(async (app) => {
    for (
      const [path, type, start] of [
        ["/demo.js", "text/javascript; charset=utf-8", "// The demo page's script"],
        ["/style.css", "text/css; charset=utf-8", "/* The pages' one stylesheet"],
        ["/favicon.svg", "image/svg+xml", "<svg"],
      ]
    ) {
      await t.step(path, async () => {
        const res = await app.request(path);
        const text = await res.text();
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("content-type"), type);
        assert.equal(res.headers.get("x-content-type-options"), "nosniff");
        assert.ok(text.startsWith(start), text.slice(0, 80));
        const tag = res.headers.get("etag");
        assert.ok(tag !== null);
        const again = await app.request(path, { headers: { "if-none-match": tag } });
        assert.equal(again.status, 304);
      });
    }
  });
});

Deno.test("GET /models/:name gives JSON clients the same bytes as before", async (t) => {
  await withApp(async (app, kv) => {
    await publishModel(kv, "lm", GRU, { metrics: { val_loss: 2.5, curve: CURVE } });
    await publishModel(kv, "lm", GRU, { training: { cell: "gru" } });
    const found = await describeModel(kv, "lm");
    const expected = JSON.stringify({
      name: "lm",
      current: found!.current,
      versions: found!.versions,
    });
    for (
      const accept of [null, "*/*", "application/json", "application/json, text/html", "text/plain"]
    ) {
      await t.step(`Accept: ${accept ?? "(none)"}`, async () => {
        const res = await get(app, "/models/lm", accept);
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("content-type"), "application/json");
        assert.equal(res.headers.get("vary"), "Accept");
        assert.equal(await res.text(), expected);
      });
    }
  });
});

Deno.test("GET /models/:name asking for HTML: versions, the current one marked, curves, training", async (t) => {
  await withApp(async (app, kv) => {
    await publishModel(kv, "lm", GRU, {
      training: { cell: "gru", hidden: 16, lr: 0.006 },
      metrics: { val_loss: 1.9, steps: 400, curve: CURVE },
    });
    await publishModel(kv, "lm", GRU, {}); // version 2: no training data, current
    for (const accept of ["text/html", BROWSER_ACCEPT]) {
      await t.step(`Accept: ${accept}`, async () => {
        const res = await get(app, "/models/lm", accept);
        assert.equal(res.headers.get("vary"), "Accept");
        const text = await assertPage(res);
        assert.match(text, /<h1>Model <code>lm<\/code><\/h1>/);
        // The versions table: 2 (current) before 1 (older).
        const rows = [...text.matchAll(/<tr( class="current")?>\s*<td><a href="#v(\d)">/g)];
        assert.deepEqual(rows.map((r) => [r[2], r[1] !== undefined]), [["2", true], ["1", false]]);
        assert.match(text, /<h2 id="v2-h">Version 2 \(current\)<\/h2>/);
        assert.match(text, /<h2 id="v1-h">Version 1<\/h2>\s*<details>/);
        // Version 2 was published without metrics: it says so; version 1 has its curve.
        const [v2, v1] = text.split(/<section id="v1"/);
        assert.match(v2, /No loss curves were stored with this version/);
        assert.match(v2, /No training configuration was stored with this version/);
        assert.doesNotMatch(v2, /<svg/);
        assert.match(v1, /<svg [^>]*role="img">\s*<title>lm v1: gru H=16<\/title>/);
        assert.match(v1, /train: 4 points, from 3\.2 at 100 to 1\.9 at 400\./);
        assert.match(v1, /validation: 2 points, from 2\.6 at 200 to 2 at 400\./);
        assert.equal((v1.match(/<polyline /g) ?? []).length, 2, "two curves drawn");
        assert.match(v1, /<th scope="row">lr<\/th>\s*<td>0\.006<\/td>/);
        assert.match(v1, /<th scope="row">val_loss<\/th>\s*<td>1\.9<\/td>/);
        assert.doesNotMatch(v1, /<th scope="row">curve</);
      });
    }
  });
});

Deno.test("the model page escapes what a model holds: vocabulary, labels, training settings", async () => {
  await withApp(async (app, kv) => {
    await publishModel(kv, "evil", evilModel(), {
      training: { corpus: EVIL, note: `"quoted" & <b>` },
      metrics: { curve: { train: [[1, 2]], val: "not a curve" } },
    });
    const text = await assertPage(await get(app, "/models/evil", "text/html"));
    assert.equal(text.includes(EVIL), false, "no raw script tag");
    assert.equal(text.includes(EVIL_LABEL), false, "no raw img tag");
    assert.equal(text.includes("<b>"), false);
    assert.equal(text.includes("<script>"), false);
    for (const token of ["&lt;script&gt;", "&lt;", "&amp;", "&quot;", "&#39;"]) {
      assert.ok(text.includes(`<code>${token}</code>`), `token ${token}`);
    }
    assert.match(text, /&lt;img src=x onerror=alert\(1\)&gt;, b/);
    assert.match(text, /<td>&lt;script&gt;alert\(&quot;x&quot;\)&lt;\/script&gt;<\/td>/);
    assert.match(text, /<td>&quot;quoted&quot; &amp; &lt;b&gt;<\/td>/);
    // A curve that is not a list of points is not drawn.
    assert.match(text, /No loss curves were stored with this version/);
  });
});

Deno.test("GET /models/:name for an unknown model is a JSON 404, whatever is accepted", async () => {
  await withApp(async (app) => {
    for (const accept of [null, "text/html"]) {
      const res = await get(app, "/models/nope", accept);
      assert.equal(res.status, 404);
      assert.deepEqual((await res.json()).error.code, "not_found");
    }
  });
});
