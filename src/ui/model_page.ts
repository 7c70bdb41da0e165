// GET /models/:name for a browser (Accept: text/html): the kept versions of a model, the current
// one marked, each with its manifest, training configuration, metrics and loss curves (drawn
// from the curves stored at publish time). Everything from the manifest is escaped by the
// `html` template; the SVG comes from renderLossPlot, which escapes its own text.
import { html, raw } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import type { ModelListing, ModelManifest } from "../store/registry.ts";
import { renderLossPlot } from "../train/loss_plot.ts";
import { page } from "./layout.ts";

type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

/** What each task does, for people. */
const TASKS: Readonly<Record<string, string>> = {
  lm: "many to many: the next-character distribution after each character",
  classify: "many to one: class probabilities as a sequence streams in, then a result",
  generate: "one to many: generates a sequence from a class",
  single: "one to one: a class from a single token",
};

/** A point list as stored: [[tokens seen, loss], ...]; anything else is not a curve. */
function points(value: unknown): [number, number][] | null {
  if (!Array.isArray(value)) return null;
  const out: [number, number][] = [];
  for (const p of value) {
    if (!Array.isArray(p) || p.length !== 2) return null;
    const [x, y] = p;
    if (typeof x !== "number" || typeof y !== "number") return null;
    out.push([x, y]);
  }
  return out;
}

/**
 * The loss curves stored in a manifest's metrics (`metrics.curve.train` and `.val`), or null
 * when there are none or they are not point lists.
 *
 * @param m the manifest
 * @returns the curves, or null
 */
export function storedCurves(
  m: ModelManifest,
): { train: [number, number][]; val: [number, number][] } | null {
  const curve = (m.metrics as { curve?: { train?: unknown; val?: unknown } } | undefined)?.curve;
  if (typeof curve !== "object" || curve === null) return null;
  const train = points(curve.train ?? []), val = points(curve.val ?? []);
  if (train === null || val === null || train.length + val.length === 0) return null;
  return { train, val };
}

/** A token as people can read it: whitespace and control characters by name. */
function shownToken(t: string): string {
  const named: Record<string, string> = { " ": "␣ (space)", "\n": "↵ (newline)", "\t": "⇥ (tab)" };
  if (named[t] !== undefined) return named[t];
  return /^[\p{Cc}\p{Cf}]$/u.test(t) ? `U+${t.codePointAt(0)!.toString(16).toUpperCase()}` : t;
}

/** A value from a training configuration or metrics, as text. */
function shownValue(v: unknown): string {
  if (typeof v === "string") return v;
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(+v.toPrecision(6));
  return JSON.stringify(v) ?? "";
}

/** A two-column table of an object's fields, or a plain sentence when there is nothing. */
function fieldTable(caption: string, fields: [string, unknown][], none: string): Html {
  if (fields.length === 0) return html`<p class="note">${none}</p>`;
  return html`
    <div class="table-wrap">
      <table class="fields">
        <caption class="visually-hidden">${caption}</caption>
        <tbody>${fields.map(([k, v]) =>
          html`
            <tr>
              <th scope="row">${k}</th>
              <td>${shownValue(v)}</td>
            </tr>
          `
        )}</tbody>
      </table>
    </div>
  `;
}

function curveSection(name: string, m: ModelManifest): Html {
  const curves = storedCurves(m);
  if (curves === null) {
    return html`<p class="note">No loss curves were stored with this version: it was published
without training metrics (for example imported from a file).</p>`;
  }
  const perName = m.task === "classify" || m.task === "single";
  const svg = renderLossPlot([
    { label: "train", points: curves.train },
    { label: "validation", points: curves.val },
  ], {
    title: `${name} v${m.version}: ${m.cell} H=${m.hiddenSize}`,
    xLabel: perName ? "names seen" : "characters seen",
    yLabel: perName ? "loss (nats/name)" : "loss (nats/char)",
  });
  return html`<figure class="curve">${raw(svg)}<figcaption>Training loss (${curves.train.length}
points) and validation loss (${curves.val.length} points) as stored at publish time.</figcaption>
</figure>`;
}

function manifestFields(m: ModelManifest): [string, unknown][] {
  return [
    ["version", m.version],
    ["published", m.createdAt],
    ["task", m.task],
    ["cell", m.cell],
    ["nonlinearity", m.nonlinearity],
    ["input", m.input],
    ["layers", m.layers],
    ["hidden size", m.hiddenSize],
    ["input size", m.inputSize],
    ["vocabulary size", m.vocabSize],
    ["outputs", m.outputSize],
    ["labels", m.labels === null ? "none" : m.labels.join(", ")],
    ["file bytes", m.byteLength],
    ["SHA-256", m.sha256],
    ["chunks", `${m.chunkCount} of ${m.chunkSize} bytes`],
  ];
}

function versionBody(name: string, m: ModelManifest): Html {
  const vocab = m.vocabulary ?? [];
  const metrics = Object.entries(m.metrics ?? {}).filter(([k]) => k !== "curve");
  return html`<h3>Loss curves</h3>
${curveSection(name, m)}
<h3>Manifest</h3>
${fieldTable(`Manifest of version ${m.version}`, manifestFields(m), "")}
<h3>Training configuration</h3>
${
    fieldTable(
      `Training configuration of version ${m.version}`,
      Object.entries(m.training ?? {}),
      "No training configuration was stored with this version.",
    )
  }
<h3>Metrics</h3>
${
    fieldTable(
      `Metrics of version ${m.version}`,
      metrics,
      "No metrics were stored with this version.",
    )
  }
<h3>Vocabulary (${vocab.length} tokens)</h3>
${
    vocab.length === 0
      ? html`<p class="note">This model reads dense vectors: it has no vocabulary.</p>`
      : html`<ul class="vocab">${
        vocab.map((t) => html`<li><code>${shownToken(t)}</code></li>`)
      }</ul>`
  }`;
}

/** The versions table: newest first, the current one marked. */
function versionsTable(name: string, versions: ModelManifest[], current: number | null): Html {
  const row = (m: ModelManifest) => {
    const isCurrent = m.version === current;
    const valLoss = (m.metrics as { val_loss?: unknown } | undefined)?.val_loss;
    return html`
      <tr${raw(isCurrent ? ' class="current"' : "")}>
        <td><a href="#v${m.version}">${m.version}</a></td>
        <td>${isCurrent ? html`<strong>current</strong>` : "older"}</td>
        <td>${m.createdAt}</td>
        <td>${m.cell} ${m.layers}×${m.hiddenSize}</td>
        <td>${typeof valLoss === "number" ? valLoss.toFixed(4) : "—"}</td>
        </tr>
    `;
  };
  return html`
    <div class="table-wrap">
      <table class="versions">
        <caption class="visually-hidden">Kept versions of ${name}, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">Status</th>
            <th scope="col">Published</th>
            <th scope="col">Cell</th>
            <th scope="col">Validation loss</th>
          </tr>
        </thead>
        <tbody>${versions.map(row)}</tbody>
      </table>
    </div>
  `;
}

/** One version: the current one open, an older one folded. */
function versionSection(name: string, m: ModelManifest, isCurrent: boolean): Html {
  const id = `v${m.version}`;
  const heading = `Version ${m.version}${isCurrent ? " (current)" : ""}`;
  if (isCurrent) {
    return html`
      <section id="${id}" class="version current" aria-labelledby="${id}-h">
        <h2 id="${id}-h">${heading}</h2>
        ${versionBody(name, m)}
      </section>
    `;
  }
  return html`
    <section id="${id}" class="version" aria-labelledby="${id}-h">
      <h2 id="${id}-h">${heading}</h2>
      <details>
        <summary>Loss curves, manifest, training configuration and metrics</summary>
        ${versionBody(name, m)}
      </details>
    </section>
  `;
}

/**
 * The model page: versions (newest first, the current one marked), then each version's loss
 * curves, manifest, training configuration, metrics and vocabulary; older versions folded.
 *
 * @param listing the model and its kept versions (describeModel)
 * @returns the HTML document
 */
export function modelPage(listing: ModelListing): Promise<string> {
  const { name, current } = listing;
  const versions = [...listing.versions].sort((a, b) => b.version - a.version);
  const shown = versions.find((v) => v.version === current) ?? versions[0];
  const task = shown === undefined ? "" : `${TASKS[shown.task] ?? shown.task}. `;
  const status = current === null
    ? "No version is current."
    : `Version ${current} is current: new sessions get it.`;
  const body = html`
    <header class="top">
      <nav>
        <a href="/">Demo page</a> · <a href="/?model=${name}">Try ${name} on the demo page</a>
      </nav>
      <h1>Model <code>${name}</code></h1>
      <p>${task}${status}</p>
    </header>
    <main>
      <section aria-labelledby="versions-h">
        <h2 id="versions-h">Versions</h2>
        ${versionsTable(name, versions, current)}
      </section>
      ${versions.map((m) => versionSection(name, m, m.version === current))}
    </main>
  `;
  return page({ title: `${name} — edge-rnn model`, body });
}
