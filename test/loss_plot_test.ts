// Unit tests for the SVG training-curve chart in src/train/loss_plot.ts.
import assert from "node:assert/strict";
import { downsample, niceTicks, renderLossPlot, type Series } from "../src/train/loss_plot.ts";

const NAME = String.raw`[A-Za-z_][\w.:-]*`;
const ATTR = new RegExp(String.raw`\s+(${NAME})="([^"<]*)"`, "g");
const OPEN = new RegExp(String.raw`^<(${NAME})((?:\s+${NAME}="[^"<]*")*)\s*(/?)>$`);
const CLOSE = new RegExp(String.raw`^</(${NAME})\s*>$`);
const ENTITY = /&(?![a-z]+;|#\d+;|#x[0-9a-fA-F]+;)/;
const KNOWN_ENTITY = /&(?!amp;|lt;|gt;|quot;|apos;|#\d+;|#x[0-9a-fA-F]+;)[a-z]+;/;

/**
 * A small XML well-formedness check (Deno has no DOMParser): one root element, every tag closed
 * in order, quoted attributes without duplicates or raw `<`, and `&` only as a known entity.
 */
function assertWellFormed(xml: string): void {
  const stack: string[] = [];
  let roots = 0;
  for (const [token] of xml.matchAll(/<[^>]*>|[^<]+/g)) {
    if (!token.startsWith("<")) {
      assert.ok(stack.length > 0 || token.trim() === "", `text outside the root: ${token}`);
      assert.ok(!ENTITY.test(token) && !KNOWN_ENTITY.test(token), `bare & in text: ${token}`);
      continue;
    }
    const close = CLOSE.exec(token);
    if (close) {
      const open = stack.pop();
      assert.equal(close[1], open, `</${close[1]}> closes <${open}>`);
      continue;
    }
    const open = OPEN.exec(token);
    assert.ok(open, `malformed tag: ${token}`);
    const names = [...open[2].matchAll(ATTR)].map((m) => {
      assert.ok(!ENTITY.test(m[2]) && !KNOWN_ENTITY.test(m[2]), `bare & in attribute: ${token}`);
      return m[1];
    });
    assert.equal(new Set(names).size, names.length, `duplicate attribute in ${token}`);
    if (stack.length === 0) roots++;
    if (open[3] !== "/") stack.push(open[1]);
  }
  assert.deepEqual(stack, [], "unclosed tags");
  assert.equal(roots, 1, "exactly one root element");
}

/** The contents of every <text> element, unescaped as little as the tests need. */
function texts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
}

function polylines(svg: string): string[][] {
  return [...svg.matchAll(/<polyline points="([^"]*)"/g)].map((m) => m[1].split(" "));
}

/** The markup of one series' group, found by its (escaped) label. */
function seriesGroup(svg: string, escapedLabel: string): string {
  const start = svg.indexOf(`<g data-series="${escapedLabel}">`);
  assert.ok(start >= 0, `no group for ${escapedLabel}`);
  return svg.slice(start, svg.indexOf("</g>", start));
}

/** A falling noisy training curve and a per-evaluation validation curve, seeded. */
function sampleSeries(): Series[] {
  let s = 7;
  const rand = () => (s = (s * 16807) % 2147483647) / 2147483647;
  const train: [number, number][] = [];
  for (let i = 0; i <= 400; i++) {
    const t = i * 3200;
    train.push([t, 1.35 + 2.85 * Math.exp(-t / 150_000) + (rand() - 0.5) * 0.18]);
  }
  const validation: [number, number][] = [];
  for (let i = 1; i <= 12; i++) validation.push([i * 106_666, 1.45 + 2.7 * Math.exp(-i / 1.4)]);
  return [{ label: "train", points: train }, { label: "validation", points: validation }];
}

Deno.test("assertWellFormed() itself rejects crossed tags, bare & and stray text", () => {
  assertWellFormed(`<svg a="1"><g><text>x &amp; y</text></g><rect b="2"/></svg>`);
  for (
    const bad of [
      "<a><b></a></b>",
      "<a>&</a>",
      "<a>&nbsp;</a>",
      '<a x="<"/>',
      '<a x="1" x="2"/>',
      "<a>",
      "<a/><b/>",
      "<a/>text",
      "<a x=1/>",
    ]
  ) {
    assert.throws(() => assertWellFormed(bad), `${bad} passed`);
  }
});

Deno.test("renderLossPlot() gives a well-formed, scalable, accessible SVG document", () => {
  const svg = renderLossPlot(sampleSeries(), { title: "char GRU" });
  assertWellFormed(svg);
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" [^>]*role="img"/);
  assert.match(svg, /viewBox="0 0 640 360"/);
  // <title> is the first child, which is what screen readers take as the accessible name.
  assert.match(svg, /^<svg[^>]*>\n<title>char GRU<\/title>\n<desc>[^<]+<\/desc>/);
  assert.match(svg, /<desc>[^<]*train: 401 points[^<]*validation: 12 points/);
  assert.ok(texts(svg).includes("char GRU"), "the title is drawn");
  assert.ok(texts(svg).includes("tokens seen"));
  assert.ok(texts(svg).includes("loss (nats/token)"));

  const custom = renderLossPlot(sampleSeries(), { width: 300, height: 200, xLabel: "steps" });
  assertWellFormed(custom);
  assert.match(custom, /width="300" height="200" viewBox="0 0 300 200"/);
  assert.match(custom, /<title>Loss curves<\/title>/, "a fallback accessible name");
  assert.ok(texts(custom).includes("steps"));
});

Deno.test("renderLossPlot() escapes the title, labels and colors", () => {
  const title = `<b>"A" & 'B'</b>`;
  const svg = renderLossPlot([
    { label: 'val<1> & "x"', points: [[0, 3], [10, 2]] },
    { label: "tr'ain", points: [[0, 3.1], [10, 2.2]], color: 'red" onload="alert(1)' },
  ], { title, xLabel: "x < y", yLabel: "a\u0000b" });
  assertWellFormed(svg);
  const escTitle = "&lt;b&gt;&quot;A&quot; &amp; &apos;B&apos;&lt;/b&gt;";
  assert.ok(svg.includes(`<title>${escTitle}</title>`));
  assert.ok(texts(svg).includes(escTitle), "the drawn title");
  assert.ok(texts(svg).includes("val&lt;1&gt; &amp; &quot;x&quot;"), "the legend label");
  assert.ok(texts(svg).includes("tr&apos;ain"));
  assert.ok(texts(svg).includes("x &lt; y"));
  assert.ok(texts(svg).includes("ab"), "a control character XML forbids is dropped");
  assert.ok(!svg.includes("<b>") && !svg.includes(' onload="'), "no markup gets through");
  assert.ok(svg.includes('stroke="red&quot; onload=&quot;alert(1)"'));
});

Deno.test("renderLossPlot() draws one polyline point per finite input, skipping NaN and Infinity", () => {
  const train: [number, number][] = [];
  for (let i = 0; i < 120; i++) train.push([i * 1000, 4 - i / 60]);
  train[3] = [3000, NaN];
  train[10] = [10_000, Infinity];
  train[11] = [NaN, 2];
  train[50] = [-Infinity, 3];
  train[51] = [51_000, -Infinity];
  const svg = renderLossPlot([{ label: "train", points: train }, {
    label: "validation",
    points: [[20_000, 3.5], [40_000, NaN], [60_000, 3.1], [80_000, 2.9]],
  }]);
  assertWellFormed(svg);
  const [trainLine, valLine] = polylines(svg);
  assert.equal(trainLine.length, 115);
  assert.equal(valLine.length, 3);
  for (const xy of [...trainLine, ...valLine]) assert.match(xy, /^\d+(\.\d+)?,\d+(\.\d+)?$/);
  assert.ok(!/NaN|Infinity/.test(svg.replace(/<desc>.*<\/desc>/, "")), "no non-finite output");
});

Deno.test("renderLossPlot() marks sparse (validation) curves and draws a lone point as a dot", () => {
  const svg = renderLossPlot(sampleSeries());
  assert.equal((seriesGroup(svg, "train").match(/<circle/g) ?? []).length, 0);
  assert.equal((seriesGroup(svg, "validation").match(/<circle/g) ?? []).length, 12);
  assert.equal(polylines(svg).length, 2);
  // Default colors differ between train and validation (Okabe–Ito blue and vermillion).
  const strokes = [...svg.matchAll(/<polyline [^>]*stroke="([^"]*)"/g)].map((m) => m[1]);
  assert.deepEqual(strokes, ["#0072B2", "#D55E00"]);

  const forced = renderLossPlot([{ label: "train", points: [[0, 2], [1, 1]], markers: false }]);
  assert.ok(!seriesGroup(forced, "train").includes("<circle"));

  const one = renderLossPlot([{ label: "train", points: [[5000, 2.31], [6000, NaN]] }]);
  assertWellFormed(one);
  assert.equal(polylines(one).length, 0);
  assert.equal((seriesGroup(one, "train").match(/<circle/g) ?? []).length, 1);
});

Deno.test("renderLossPlot() of no finite point says no data, still a valid SVG", () => {
  const cases: Series[][] = [
    [],
    [{ label: "train", points: [] }],
    [{ label: "train", points: [[NaN, 1], [1, Infinity]] }, { label: "val", points: [] }],
  ];
  for (const series of cases) {
    const svg = renderLossPlot(series, { title: "run & 1" });
    assertWellFormed(svg);
    assert.ok(texts(svg).includes("no data"));
    assert.ok(svg.includes("<title>run &amp; 1</title>") && svg.includes('role="img"'));
    assert.ok(!svg.includes("<polyline") && !svg.includes("<circle"));
  }
  // A series that has no finite point beside one that has is listed as such in the legend.
  const partial = renderLossPlot([{ label: "train", points: [[0, 2], [1, 1]] }, {
    label: "val",
    points: [[1, NaN]],
  }]);
  assert.ok(texts(partial).includes("val (no data)"));
});

Deno.test("renderLossPlot() labels ticks like 200k, 1.2M and 2.5", () => {
  const svg = renderLossPlot(sampleSeries());
  const labels = texts(svg);
  for (const want of ["0", "200k", "400k", "1M", "1.2M", "1.4M", "1.0", "1.5", "4.0", "4.5"]) {
    assert.ok(labels.includes(want), `no tick label ${want} in ${labels.join(", ")}`);
  }
  const small = texts(renderLossPlot([{ label: "t", points: [[0, 0.031], [1600, 0.0101]] }]));
  for (const want of ["200", "1k", "1.2k", "1.6k", "0.010", "0.035"]) {
    assert.ok(small.includes(want), `no tick label ${want} in ${small.join(", ")}`);
  }
});

Deno.test("niceTicks() steps by 1, 2 or 5 × 10^k and covers the data range", () => {
  assert.deepEqual(niceTicks(0, 1_280_000, 6), [0, 2e5, 4e5, 6e5, 8e5, 1e6, 1.2e6, 1.4e6]);
  assert.deepEqual(niceTicks(1.37, 4.18, 5), [1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5]);
  assert.deepEqual(
    niceTicks(0.1, 0.3, 2),
    [0.1, 0.2, 0.3],
    "exact decimals, not 0.30000000000000004",
  );
  assert.deepEqual(niceTicks(2, 2, 4), [1.8, 1.9, 2, 2.1, 2.2], "a single value gets a range");
  assert.deepEqual(niceTicks(0, 0, 2), [-1, 0, 1]);

  let s = 12345;
  const rand = () => (s = (s * 16807) % 2147483647) / 2147483647;
  for (let trial = 0; trial < 2000; trial++) {
    const scale = 10 ** Math.floor(rand() * 16 - 8);
    const a = (rand() - 0.3) * 10 * scale;
    const b = a + rand() * 10 * scale;
    const count = 2 + Math.floor(rand() * 9);
    const ticks = niceTicks(a, b, count);
    const step = ticks[1] - ticks[0];
    const mantissa = step / 10 ** Math.floor(Math.log10(step) + 1e-9);
    const where = `niceTicks(${a}, ${b}, ${count}) = ${ticks}`;
    assert.ok([1, 2, 5].some((m) => Math.abs(mantissa - m) < 1e-6), `step ${step}: ${where}`);
    for (const t of ticks) {
      assert.ok(Math.abs(t / step - Math.round(t / step)) < 1e-6, `${t} not on the step: ${where}`);
    }
    for (let i = 1; i < ticks.length; i++) {
      assert.ok(Math.abs(ticks[i] - ticks[i - 1] - step) < step * 1e-6, `uneven: ${where}`);
    }
    assert.ok(ticks[0] <= a && ticks[ticks.length - 1] >= b, `does not cover: ${where}`);
    assert.ok(ticks[0] > a - step * 1.0001 && ticks[ticks.length - 1] < b + step * 1.0001, where);
    assert.ok(ticks.length - 1 <= count * 2.5 + 2, `too many ticks: ${where}`);
  }
  assert.throws(() => niceTicks(NaN, 1, 5), RangeError);
  assert.throws(() => niceTicks(2, 1, 5), RangeError);
  assert.throws(() => niceTicks(0, 1, 0), RangeError);
});

Deno.test("downsample() keeps the first and last points and at most max, evenly spaced", () => {
  const points: [number, number][] = Array.from({ length: 1001 }, (_, i) => [i, i * i]);
  for (const max of [2, 3, 7, 100, 999, 1000]) {
    const kept = downsample(points, max);
    assert.equal(kept.length, max);
    assert.deepEqual(kept[0], [0, 0]);
    assert.deepEqual(kept[kept.length - 1], [1000, 1_000_000]);
    const gaps = kept.slice(1).map((p, i) => p[0] - kept[i][0]);
    const ideal = 1000 / (max - 1);
    for (const g of gaps) assert.ok(g >= 1 && Math.abs(g - ideal) <= 1, `gap ${g} for max ${max}`);
    for (const [x, y] of kept) assert.equal(y, x * x, "points are kept whole");
  }
  assert.deepEqual(downsample(points, 100), downsample(points, 100), "deterministic");
  const short: [number, number][] = [[0, 1], [1, NaN]];
  const copy = downsample(short, 5);
  assert.deepEqual(copy, short);
  assert.ok(copy !== short && copy[0] !== short[0], "a copy, not the caller's arrays");
  assert.deepEqual(downsample([], 2), []);
  for (const bad of [1, 0, 2.5, NaN]) assert.throws(() => downsample(points, bad), RangeError);
});

Deno.test("renderLossPlot() is deterministic with coordinates rounded to 2 decimals", () => {
  const a = renderLossPlot(sampleSeries(), { title: "t" });
  const b = renderLossPlot(sampleSeries(), { title: "t" });
  assert.equal(a, b);
  const attrs = [
    ...a.matchAll(/ (x|y|x1|y1|x2|y2|cx|cy|r|width|height)="([^"%]*)"/g),
  ].map((m) => m[2]);
  assert.ok(attrs.length > 100);
  for (const v of attrs) assert.match(v, /^-?\d+(\.\d{1,2})?$/);
  for (const xy of polylines(a).flat()) assert.match(xy, /^\d+(\.\d{1,2})?,\d+(\.\d{1,2})?$/);
});

Deno.test("renderLossPlot() refuses a size with no room for the plot", () => {
  assert.throws(() => renderLossPlot([], { width: 0 }), RangeError);
  assert.throws(() => renderLossPlot([], { height: NaN }), RangeError);
  assert.throws(
    () => renderLossPlot([{ label: "t", points: [[0, 1], [1, 2]] }], { width: 60 }),
    RangeError,
  );
});
