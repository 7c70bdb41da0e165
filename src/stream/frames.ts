// SSE frames written straight into bytes. A session writes a `step` event for every token; as
// JSON text that is a string built from pieces, numbers printed with 17 digits and the whole
// encoded to UTF-8 again at the end. Here the fixed parts are encoded once, numbers are printed
// digit by digit into the buffer, and a response body takes all the bytes of one turn at once.
import type { FloatArray } from "../math/mod.ts";
import type { SessionEvent } from "./session.ts";

const encoder = new TextEncoder();

/** Powers of ten that are exact doubles. */
const POW10 = Array.from({ length: 23 }, (_, k) => 10 ** k);

/**
 * For p in [1e-6, 1): the power d with 10^6 ≤ round(p·10^d) < 10^7, so that round(p·10^d) holds
 * p's 7 significant digits; 6 when p rounds up to 1.
 */
function scaleOf(p: number): number {
  let d = 7;
  while (p * POW10[d] < 1e6) d++;
  return Math.round(p * POW10[d]) === 1e7 ? d - 1 : d;
}

/**
 * A probability rounded to 7 significant digits (float32 holds about 7), the precision events
 * carry. JSON.stringify writes the result with at most those digits.
 *
 * @param p the value
 * @returns the rounded value (non-finite values as they are)
 * @example
 * ```ts
 * import { roundProb } from "./frames.ts";
 * roundProb(0.28686347603797913); // 0.2868635
 * ```
 */
export function roundProb(p: number): number {
  if (!(p >= 1e-6 && p < 1)) return Number.isFinite(p) ? Number(p.toPrecision(7)) : p;
  const d = scaleOf(p);
  return Math.round(p * POW10[d]) / POW10[d];
}

/**
 * A probability as JSON text: {@linkcode roundProb}'s value in canonical form (a client that
 * parses and prints it again gets the same characters); non-finite values are `null`, as in
 * JSON.stringify.
 *
 * @param p the value
 * @returns its JSON text
 * @example
 * ```ts
 * import { probText } from "./frames.ts";
 * probText(0.28686347603797913); // "0.2868635"
 * probText(0.05); // "0.05"
 * ```
 */
export function probText(p: number): string {
  return Number.isFinite(p) ? String(roundProb(p)) : "null";
}

/**
 * A response body's pending bytes: SSE frames appended as they are made and taken as one chunk
 * per turn. The first write after a take calls `onPending` (once), so the owner can schedule
 * the take.
 *
 * @example
 * ```ts
 * import { FrameBuffer } from "./frames.ts";
 * const out = new FrameBuffer(() => {});
 * out.event({ event: "done", id: 3, data: { seq: 3 } });
 * new TextDecoder().decode(out.take()!); // "event: done\ndata: {\"seq\":3}\nid: 3\n\n"
 * ```
 */
export class FrameBuffer {
  #bytes = new Uint8Array(4096);
  #length = 0;
  #pending = false;
  #frames = 0;
  readonly #onPending: () => void;
  readonly #onHeld: (() => void) | null;

  /**
   * @param onPending called when a frame ends in a buffer with nothing pending: the owner
   *   schedules a take
   * @param onHeld called when a frame that may wait ends ({@linkcode FrameBuffer.eventLater})
   *   in a buffer with nothing pending: the owner bounds the wait. Without it such a frame is
   *   pending like any other.
   */
  constructor(onPending: () => void, onHeld: (() => void) | null = null) {
    this.#onPending = onPending;
    this.#onHeld = onHeld;
  }

  /** Frames ended so far (never reset). */
  get frames(): number {
    return this.#frames;
  }

  /** Bytes waiting. */
  get length(): number {
    return this.#length;
  }

  /** Makes room for `n` more bytes. */
  #reserve(n: number): void {
    const need = this.#length + n;
    if (need <= this.#bytes.length) return;
    const grown = new Uint8Array(Math.max(need, 2 * this.#bytes.length));
    grown.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = grown;
  }

  /** Ends a frame. */
  #wrote(): void {
    this.#frames++;
    this.#notify();
  }

  /** Tells the owner, once per take, that bytes are waiting. */
  #notify(): void {
    if (this.#pending) return;
    this.#pending = true;
    this.#onPending();
  }

  /**
   * Appends bytes encoded beforehand.
   *
   * @param bytes the bytes
   */
  bytes(bytes: Uint8Array): void {
    const n = bytes.length;
    this.#reserve(n);
    const b = this.#bytes;
    const at = this.#length;
    if (n > 32) b.set(bytes, at);
    // a loop beats set()'s call for the few bytes of a name or a key
    else for (let k = 0; k < n; k++) b[at + k] = bytes[k];
    this.#length = at + n;
  }

  /**
   * Appends one byte (an ASCII character).
   *
   * @param b the byte
   */
  byte(b: number): void {
    this.#reserve(1);
    this.#bytes[this.#length++] = b;
  }

  /**
   * Appends text as UTF-8.
   *
   * @param text the text
   */
  text(text: string): void {
    this.#reserve(3 * text.length);
    this.#length += encoder.encodeInto(text, this.#bytes.subarray(this.#length)).written;
  }

  /**
   * Appends a non-negative integer's digits.
   *
   * @param n the integer (below 2^53)
   */
  uint(n: number): void {
    let digits = 1;
    while (digits < 16 && n >= POW10[digits]) digits++;
    this.#reserve(digits);
    let at = this.#length + digits;
    this.#length = at;
    const b = this.#bytes;
    do {
      const digit = n % 10;
      b[--at] = 48 + digit;
      n = (n - digit) / 10;
    } while (n > 0);
  }

  /**
   * Appends a probability, `values[index]`, as {@linkcode probText} writes it. Values in
   * [1e-6, 1) (nearly all) are printed digit by digit here, without making a string. The array
   * and the index are passed rather than the number: a float passed to a call is boxed
   * (allocated) unless the call is inlined, and a step event has five of them.
   *
   * @param values the values
   * @param index which one
   */
  probAt(values: FloatArray, index: number): void {
    const p = values[index];
    if (!(p >= 1e-6 && p < 1)) {
      this.text(probText(p));
      return;
    }
    const d = scaleOf(p);
    if (d === 6) {
      this.byte(49); // p rounds up to 1
      return;
    }
    // p ≈ m / 10^d with 10^6 ≤ m < 10^7: "0.", d - 7 zeros, m without its trailing zeros.
    // m fits in 32 bits, so its digits come from integer arithmetic (`| 0`), not from doubles.
    let m = Math.round(p * POW10[d]) | 0;
    let digits = 7;
    let q = (m / 10) | 0;
    while (m === q * 10) {
      m = q;
      q = (m / 10) | 0;
      digits--;
    }
    this.#reserve(d - 5 + digits);
    const b = this.#bytes;
    let at = this.#length;
    b[at++] = 48;
    b[at++] = 46;
    for (let z = 7; z < d; z++) b[at++] = 48;
    at += digits;
    this.#length = at;
    for (let k = 0; k < digits; k++) {
      q = (m / 10) | 0;
      b[--at] = 48 + m - q * 10;
      m = q;
    }
  }

  /**
   * Appends one whole event, framed by {@linkcode frameEvent}.
   *
   * @param event the event
   */
  event(event: SessionEvent): void {
    this.text(frameEvent(event));
    this.end();
  }

  /**
   * Appends an event that need not leave at once: it goes with the next frame's take, and the
   * owner, told by `onHeld`, takes it by a deadline of its own if no frame comes first. It does
   * not count in {@linkcode FrameBuffer.frames}. Used for a `checkpoint` event that lands
   * between two writes of the client: sent on its own it would cost a write to the socket, and
   * its reader a read, for a few dozen bytes.
   *
   * @param event the event
   */
  eventLater(event: SessionEvent): void {
    this.text(frameEvent(event));
    if (this.#onHeld === null) this.#notify();
    else if (!this.#pending) this.#onHeld();
  }

  /** Marks the end of a frame written piece by piece. */
  end(): void {
    this.#wrote();
  }

  /**
   * Takes the bytes written since the last take.
   *
   * @returns a copy of them, or null when there are none
   */
  take(): Uint8Array | null {
    this.#pending = false;
    if (this.#length === 0) return null;
    const out = this.#bytes.slice(0, this.#length);
    this.#length = 0;
    return out;
  }

  /** Drops the bytes written since the last take. */
  clear(): void {
    this.#pending = false;
    this.#length = 0;
  }
}

/**
 * One event in SSE framing. `event` and `id` are ours (a name and a number) and JSON has no raw
 * newlines, so no field can break the framing.
 *
 * @param event the event
 * @returns `event:`, `data:` and `id:` lines (the order Hono's writeSSE used) and the blank line that ends the event
 */
export function frameEvent(event: SessionEvent): string {
  return `event: ${event.event}\ndata: ${JSON.stringify(event.data)}\nid: ${event.id}\n\n`;
}

/**
 * Text encoded once, for frames written piece by piece.
 *
 * @param text the text
 * @returns its UTF-8 bytes
 */
export const utf8 = (text: string): Uint8Array => encoder.encode(text);
