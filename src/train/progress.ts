// A live progress line for long work: a bar, rate, losses and ETA; redrawn in place on a
// terminal, printed as plain lines every few seconds otherwise (CI logs, pipes).

/** What the line shows. */
export interface ProgressState {
  /** Fraction of the budget used, in [0, 1]. */
  fraction: number;
  step: number;
  /** Tokens per second over the recent past. */
  tokensPerSecond: number;
  /** Recent mean training loss. */
  trainLoss: number;
  /** Last validation loss, or NaN before the first evaluation. */
  valLoss: number;
  /** Seconds left, or NaN when unknown. */
  etaSeconds: number;
}

/**
 * Formats seconds as `1h02m`, `3m05s` or `42s`.
 *
 * @param s seconds
 * @returns a short duration
 * @example
 * ```ts
 * import { formatDuration } from "./progress.ts";
 * formatDuration(185); // "3m05s"
 * ```
 */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const t = Math.max(0, Math.round(s));
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), sec = t % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m${String(sec).padStart(2, "0")}s`;
  return `${sec}s`;
}

/**
 * Renders the progress line (without a line ending).
 *
 * @param st the state to show
 * @returns e.g. `[########------------] 40% step 120 | 3.1k tok/s | loss 1.843 | val 1.901 | ETA 2m31s`
 * @example
 * ```ts
 * import { renderProgress } from "./progress.ts";
 * renderProgress({ fraction: 0.5, step: 10, tokensPerSecond: 1500, trainLoss: 2, valLoss: NaN,
 *   etaSeconds: 60 });
 * ```
 */
export function renderProgress(st: ProgressState): string {
  const width = 20;
  const f = Math.min(1, Math.max(0, st.fraction));
  const filled = Math.round(f * width);
  const rate = st.tokensPerSecond >= 1000
    ? `${(st.tokensPerSecond / 1000).toFixed(1)}k`
    : st.tokensPerSecond.toFixed(0);
  const val = Number.isFinite(st.valLoss) ? ` | val ${st.valLoss.toFixed(3)}` : "";
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${
    Math.floor(f * 100)
  }% step ${st.step}` +
    ` | ${rate} tok/s | loss ${st.trainLoss.toFixed(3)}${val} | ETA ${
      formatDuration(st.etaSeconds)
    }`;
}

/**
 * Writes progress to stderr: in place on a terminal, else one line every `intervalMs`.
 *
 * @example
 * ```ts
 * import { ProgressReporter } from "./progress.ts";
 * const progress = new ProgressReporter();
 * progress.update({ fraction: 1, step: 1, tokensPerSecond: 1, trainLoss: 1, valLoss: NaN,
 *   etaSeconds: 0 });
 * progress.done();
 * ```
 */
export class ProgressReporter {
  #tty: boolean;
  #intervalMs: number;
  #last = -Infinity;
  #drawn = false;
  #enc = new TextEncoder();

  /**
   * @param intervalMs how often to print on a non-terminal (a terminal redraws at most 10×/s)
   */
  constructor(intervalMs = 10_000) {
    this.#tty = Deno.stderr.isTerminal();
    this.#intervalMs = intervalMs;
  }

  /**
   * Shows the state, if enough time has passed since the last update.
   *
   * @param st the state
   * @param force print even if the last print was recent
   */
  update(st: ProgressState, force = false): void {
    const now = performance.now();
    if (!force && now - this.#last < (this.#tty ? 100 : this.#intervalMs)) return;
    this.#last = now;
    const line = renderProgress(st);
    Deno.stderr.writeSync(this.#enc.encode(this.#tty ? `\r\x1b[2K${line}` : `${line}\n`));
    this.#drawn = this.#tty;
  }

  /**
   * Prints a message on its own line without garbling the progress line.
   *
   * @param message the text
   */
  log(message: string): void {
    const pre = this.#drawn ? "\r\x1b[2K" : "";
    Deno.stderr.writeSync(this.#enc.encode(`${pre}${message}\n`));
    this.#drawn = false;
    this.#last = -Infinity;
  }

  /** Ends the progress line. */
  done(): void {
    if (this.#drawn) Deno.stderr.writeSync(this.#enc.encode("\n"));
    this.#drawn = false;
  }
}
