// A dependency-free SVG line chart of training curves: loss (nats per token) against tokens seen.
// Output is a pure function of the input: coordinates are rounded to 2 decimals and text widths
// are estimated from character counts, so the same curves always give the same bytes.

/** One curve: points [x, y] (x = tokens seen, y = loss in nats per token). */
export interface Series {
  /** Name shown in the legend, e.g. "train" or "validation". */
  label: string;
  /** Points in drawing order; points with a non-finite x or y (NaN, ±Infinity) are skipped. */
  points: [number, number][];
  /** Any SVG color. @default the next color of a colorblind-safe palette (Okabe–Ito) */
  color?: string;
  /**
   * Draw a marker at every point, as for a validation loss measured once per evaluation.
   * @default true when the series has at most 50 finite points
   */
  markers?: boolean;
}

/** Size and text of the chart. */
export interface LossPlotOptions {
  /** Width in SVG user units (pixels when shown at natural size). @default 640 */
  width?: number;
  /** Height in SVG user units. @default 360 */
  height?: number;
  /** Heading drawn above the chart, also the accessible name. @default no heading */
  title?: string;
  /** @default "tokens seen" */
  xLabel?: string;
  /** @default "loss (nats/token)" */
  yLabel?: string;
}

const DEFAULTS = {
  width: 640,
  height: 360,
  xLabel: "tokens seen",
  yLabel: "loss (nats/token)",
} as const;

/** Okabe–Ito colors, in an order where neighbours stay distinct under every color deficiency. */
const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"];
/** Series with at most this many points get markers unless they say otherwise. */
const MARKER_MAX_POINTS = 50;
/** Accessible name when no title is given. */
const FALLBACK_NAME = "Loss curves";
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';
const TEXT_COLOR = "#333";
/** Rough advance of one character at font size 1; used only for layout, never measured. */
const CHAR_WIDTH = 0.6;

/**
 * Renders training curves as a line chart: 1-2-5 axis ticks with grid lines, a legend and a
 * title, in a standalone, scalable and accessible SVG document.
 *
 * @param series the curves, drawn in order; colors default to a colorblind-safe palette by index
 * @param options size, title and axis labels
 * @returns the SVG document as a string; a chart saying "no data" when no series has a finite point
 * @throws {RangeError} when width or height leaves no room for the plot area
 * @example
 * ```ts
 * import { renderLossPlot } from "./loss_plot.ts";
 * const svg = renderLossPlot(
 *   [
 *     { label: "train", points: [[0, 4.2], [10_000, 2.6], [20_000, 2.1]] },
 *     { label: "validation", points: [[10_000, 2.7], [20_000, 2.3]] },
 *   ],
 *   { title: "char GRU" },
 * );
 * if (!svg.startsWith("<svg") || !svg.includes("validation")) throw new Error("bad chart");
 * ```
 */
export function renderLossPlot(series: Series[], options: LossPlotOptions = {}): string {
  const opts = { ...DEFAULTS, ...withoutUndefined(options) };
  const { width, height } = opts;
  for (const [name, v] of [["width", width], ["height", height]] as const) {
    if (!Number.isFinite(v) || v <= 0) {
      throw new RangeError(`renderLossPlot: ${name} must be a positive number, got ${v}`);
    }
  }
  const name = opts.title ?? FALLBACK_NAME;
  const curves = series.map((s, i) => {
    const points = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    return {
      label: s.label,
      points,
      color: s.color ?? PALETTE[i % PALETTE.length],
      markers: s.markers ?? points.length <= MARKER_MAX_POINTS,
    };
  });
  const drawn = curves.filter((c) => c.points.length > 0);

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${num(width)}" height="${num(height)}" ` +
    `viewBox="0 0 ${num(width)} ${num(height)}" role="img">`,
    `<title>${escapeXml(name)}</title>`,
    `<desc>${escapeXml(describe(curves, opts.xLabel, opts.yLabel))}</desc>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
  ];
  const top = opts.title === undefined ? 16 : 38;
  if (opts.title !== undefined) {
    out.push(
      `<text x="${num(width / 2)}" y="24" text-anchor="middle" font-size="15" ` +
        `font-weight="600" fill="${TEXT_COLOR}" ${FONT}>${escapeXml(opts.title)}</text>`,
    );
  }

  if (drawn.length === 0) {
    out.push(
      `<rect x="16" y="${num(top)}" width="${num(Math.max(0, width - 32))}" ` +
        `height="${num(Math.max(0, height - top - 16))}" fill="none" stroke="#ccc"/>`,
      `<text x="${num(width / 2)}" y="${num((top + height) / 2)}" text-anchor="middle" ` +
        `dy="0.35em" font-size="14" fill="#777" ${FONT}>no data</text>`,
      "</svg>",
    );
    return out.join("\n") + "\n";
  }

  // The y ticks depend only on the height; their label width then sets the left margin.
  const bottom = height - 44;
  const plotH = bottom - top;
  const ys = drawn.flatMap((c) => c.points.map((p) => p[1]));
  const yTicks = niceTicks(minOf(ys), maxOf(ys), Math.max(2, Math.round(plotH / 48)));
  const yStep = yTicks[1] - yTicks[0];
  const yText = yTicks.map((v) => formatLoss(v, yStep));
  const left = 30 + Math.max(...yText.map((t) => t.length)) * CHAR_WIDTH * 11 + 8;
  const right = width - 22;
  const plotW = right - left;
  if (plotW < 1 || plotH < 1) {
    throw new RangeError(
      `renderLossPlot: a ${width}×${height} chart leaves no room for the plot area`,
    );
  }
  const xs = drawn.flatMap((c) => c.points.map((p) => p[0]));
  const xTicks = niceTicks(minOf(xs), maxOf(xs), Math.max(2, Math.round(plotW / 90)));
  const xStep = xTicks[1] - xTicks[0];
  const [x0, x1] = [xTicks[0], xTicks[xTicks.length - 1]];
  const [y0, y1] = [yTicks[0], yTicks[yTicks.length - 1]];
  const sx = (x: number) => left + ((x - x0) / (x1 - x0)) * plotW;
  const sy = (y: number) => bottom - ((y - y0) / (y1 - y0)) * plotH;

  // Grid and tick labels.
  out.push(`<g stroke="#e6e6e6" stroke-width="1">`);
  for (const v of xTicks) {
    out.push(`<line x1="${num(sx(v))}" y1="${num(top)}" x2="${num(sx(v))}" y2="${num(bottom)}"/>`);
  }
  for (const v of yTicks) {
    out.push(`<line x1="${num(left)}" y1="${num(sy(v))}" x2="${num(right)}" y2="${num(sy(v))}"/>`);
  }
  out.push(`</g>`);
  out.push(
    `<rect x="${num(left)}" y="${num(top)}" width="${num(plotW)}" height="${num(plotH)}" ` +
      `fill="none" stroke="#999" stroke-width="1"/>`,
  );
  out.push(`<g font-size="11" fill="${TEXT_COLOR}" ${FONT}>`);
  xTicks.forEach((v) => {
    out.push(
      `<text x="${num(sx(v))}" y="${num(bottom + 16)}" text-anchor="middle">` +
        `${escapeXml(formatCount(v, xStep))}</text>`,
    );
  });
  yTicks.forEach((v, i) => {
    out.push(
      `<text x="${num(left - 6)}" y="${num(sy(v))}" text-anchor="end" ` +
        `dy="0.35em">${escapeXml(yText[i])}</text>`,
    );
  });
  out.push(`</g>`);
  out.push(
    `<g font-size="12" fill="${TEXT_COLOR}" ${FONT}>`,
    `<text x="${num((left + right) / 2)}" y="${num(height - 10)}" text-anchor="middle">` +
      `${escapeXml(opts.xLabel)}</text>`,
    `<text transform="rotate(-90)" x="${num(-(top + bottom) / 2)}" y="16" ` +
      `text-anchor="middle" dy="0.35em">${escapeXml(opts.yLabel)}</text>`,
    `</g>`,
  );

  // Curves: a polyline through the finite points (a lone point is a dot), markers when sparse.
  for (const c of drawn) {
    const color = escapeXml(c.color);
    const coords = c.points.map(([x, y]) => `${num(sx(x))},${num(sy(y))}`);
    out.push(`<g data-series="${escapeXml(c.label)}">`);
    if (c.points.length > 1) {
      out.push(
        `<polyline points="${coords.join(" ")}" fill="none" stroke="${color}" ` +
          `stroke-width="1.75" stroke-linejoin="round" stroke-linecap="round"/>`,
      );
    }
    if (c.markers || c.points.length === 1) {
      const r = c.points.length === 1 ? 4 : 3;
      for (const [x, y] of c.points) {
        out.push(
          `<circle cx="${num(sx(x))}" cy="${num(sy(y))}" r="${r}" fill="${color}" ` +
            `stroke="#fff" stroke-width="1"/>`,
        );
      }
    }
    out.push(`</g>`);
  }

  // Legend in the top-right corner, where falling loss curves rarely are. A series without a
  // finite point stays listed, so a missing curve reads as missing rather than forgotten.
  const legendText = curves.map((c) => c.points.length === 0 ? `${c.label} (no data)` : c.label);
  const rowH = 18;
  const textW = Math.max(...legendText.map((t) => [...t].length)) * CHAR_WIDTH * 12;
  const boxW = 10 + 22 + 6 + textW + 10;
  const boxH = 8 + curves.length * rowH;
  const bx = right - 8 - boxW;
  const by = top + 8;
  out.push(
    `<g font-size="12" fill="${TEXT_COLOR}" ${FONT}>`,
    `<rect x="${num(bx)}" y="${num(by)}" width="${num(boxW)}" height="${num(boxH)}" ` +
      `fill="#fff" fill-opacity="0.85" stroke="#ccc" rx="3"/>`,
  );
  curves.forEach((c, i) => {
    const cy = by + 4 + rowH * i + rowH / 2;
    const color = escapeXml(c.color);
    if (c.points.length !== 1) {
      out.push(
        `<line x1="${num(bx + 10)}" y1="${num(cy)}" x2="${num(bx + 32)}" y2="${num(cy)}" ` +
          `stroke="${color}" stroke-width="2"/>`,
      );
    }
    if (c.markers || c.points.length === 1) {
      out.push(`<circle cx="${num(bx + 21)}" cy="${num(cy)}" r="3" fill="${color}"/>`);
    }
    out.push(
      `<text x="${num(bx + 38)}" y="${num(cy)}" dy="0.35em">${escapeXml(legendText[i])}</text>`,
    );
  });
  out.push(`</g>`, "</svg>");
  return out.join("\n") + "\n";
}

/**
 * Thins a curve to at most `max` points evenly spaced in index, keeping the first and the last.
 *
 * @param points the curve; returned as a copy when it has at most `max` points
 * @param max the most points to keep, an integer of at least 2
 * @returns a new array of copied points, in the original order
 * @throws {RangeError} when `max` is not an integer of at least 2
 * @example
 * ```ts
 * import { downsample } from "./loss_plot.ts";
 * const curve: [number, number][] = [[0, 4], [1, 3], [2, 2.5], [3, 2.2], [4, 2]];
 * const kept = downsample(curve, 3); // [[0, 4], [2, 2.5], [4, 2]]
 * if (kept.length !== 3 || kept[2][0] !== 4) throw new Error("bad downsample");
 * ```
 */
export function downsample(points: [number, number][], max: number): [number, number][] {
  if (!Number.isInteger(max) || max < 2) {
    throw new RangeError(`downsample: max must be an integer of at least 2, got ${max}`);
  }
  const n = points.length;
  if (n <= max) return points.map(([x, y]) => [x, y]);
  const kept: [number, number][] = [];
  // n > max, so the spacing (n - 1) / (max - 1) exceeds 1 and the rounded indices are distinct.
  for (let k = 0; k < max; k++) {
    const [x, y] = points[Math.round((k * (n - 1)) / (max - 1))];
    kept.push([x, y]);
  }
  return kept;
}

/**
 * Picks axis ticks with a 1, 2 or 5 × 10^k step whose first and last tick enclose [min, max].
 *
 * @param min the smallest data value
 * @param max the largest data value (equal to min widens the range around it)
 * @param count about how many intervals to aim for across the data
 * @returns increasing ticks, at least two, each an exact multiple of the step
 * @throws {RangeError} when min or max is not finite, min > max, or count < 1
 * @example
 * ```ts
 * import { niceTicks } from "./loss_plot.ts";
 * const ticks = niceTicks(1.37, 4.18, 5); // [1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5]
 * if (ticks[0] !== 1 || ticks[ticks.length - 1] !== 4.5) throw new Error("bad ticks");
 * ```
 */
export function niceTicks(min: number, max: number, count: number): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max) || min > max || !(count >= 1)) {
    throw new RangeError(
      `niceTicks: need finite min <= max and count >= 1, got ${min}, ${max}, ${count}`,
    );
  }
  if (min === max) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    [min, max] = [min - pad, max + pad];
  }
  // The 1-2-5 step nearest raw on a log scale (as d3's ticks do), so the count stays near target.
  const raw = (max - min) / count;
  let exp = Math.floor(Math.log10(raw));
  let frac = raw / 10 ** exp;
  if (frac >= 10) [frac, exp] = [frac / 10, exp + 1]; // log10 rounding at exact powers of 10
  if (frac < 1) [frac, exp] = [frac * 10, exp - 1];
  let mantissa = frac >= Math.sqrt(50)
    ? 10
    : frac >= Math.sqrt(10)
    ? 5
    : frac >= Math.sqrt(2)
    ? 2
    : 1;
  if (mantissa === 10) [mantissa, exp] = [1, exp + 1];
  // k · mantissa is an integer, so multiplying by 10^exp (exp ≥ 0) or dividing by 10^-exp gives
  // the double nearest the decimal tick (0.3, not 0.30000000000000004).
  const at = (k: number) => exp >= 0 ? k * mantissa * 10 ** exp : (k * mantissa) / 10 ** -exp;
  const step = at(1);
  const first = Math.floor(min / step);
  const last = Math.ceil(max / step);
  const ticks: number[] = [];
  for (let k = first; k <= last; k++) ticks.push(at(k));
  // Division rounding can leave the data a hair outside; widen by one step if so.
  if (ticks[0] > min) ticks.unshift(at(first - 1));
  if (ticks[ticks.length - 1] < max) ticks.push(at(last + 1));
  return ticks;
}

/** A token count as 0, 500, 10k, 1.2M, 3B: each tick in its own unit, with the decimals the step needs. */
function formatCount(v: number, step: number): string {
  if (v === 0) return "0";
  const abs = Math.abs(v);
  const [unit, suffix] = ([[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "k"]] as const)
    .find(([u]) => abs >= u) ?? [1, ""];
  const decimals = Math.min(12, Math.max(0, Math.ceil(Math.log10(unit / step) - 1e-9)));
  return trimZeros((v / unit).toFixed(decimals)) + suffix;
}

/** A loss with the decimals the step needs (2.0, 2.5 for a 0.5 step; 2.05 for 0.05). */
function formatLoss(v: number, step: number): string {
  const decimals = Math.min(12, Math.max(0, Math.ceil(-Math.log10(step) - 1e-9)));
  const s = v.toFixed(decimals);
  return /^-0(\.0*)?$/.test(s) ? s.slice(1) : s;
}

function trimZeros(s: string): string {
  return s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s;
}

/** A coordinate rounded to 2 decimals, never "-0". */
function num(v: number): string {
  const r = Math.round(v * 100) / 100;
  return Object.is(r, -0) ? "0" : String(r);
}

/** Escapes text for XML content and attributes, dropping control characters XML 1.0 forbids. */
function escapeXml(s: string): string {
  return s
    // deno-lint-ignore no-control-regex -- these characters are exactly what must go
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

/** A one-line text summary of the curves, for screen readers. */
function describe(
  curves: { label: string; points: [number, number][] }[],
  xLabel: string,
  yLabel: string,
): string {
  const parts = curves.map((c) => {
    const n = c.points.length;
    if (n === 0) return `${c.label}: no data.`;
    const [fx, fy] = c.points[0];
    const [lx, ly] = c.points[n - 1];
    return `${c.label}: ${n} point${n === 1 ? "" : "s"}, from ${round4(fy)} at ${fx} ` +
      `to ${round4(ly)} at ${lx}.`;
  });
  return [`Line chart of ${yLabel} against ${xLabel}.`, ...parts].join(" ");
}

// Loops, not Math.min(...v): spreading a long curve would overflow the call stack.
function minOf(v: number[]): number {
  let m = Infinity;
  for (const x of v) if (x < m) m = x;
  return m;
}

function maxOf(v: number[]): number {
  let m = -Infinity;
  for (const x of v) if (x > m) m = x;
  return m;
}

function round4(v: number): string {
  return String(Math.round(v * 1e4) / 1e4);
}

/** The options the caller set, so an explicit `undefined` does not hide a default. */
function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
