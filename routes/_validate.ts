// Validation where input enters: zod schemas through @hono/zod-validator, with failures turned
// into this API's error body; JSON bodies must say so (415) and stay under the size limit (413).
import type { Context, MiddlewareHandler } from "hono";
import { errorBody, HttpError } from "../src/errors.ts";

/**
 * The zValidator hook: a failed validation becomes a 400 naming the fields.
 *
 * @param result what zod said
 * @param _c the request context
 */
export function validationHook(
  result: { success: true } | {
    success: false;
    error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] };
  },
  _c: Context,
): void {
  if (!result.success) {
    const detail = result.error.issues
      .map((i) => `${i.path.length > 0 ? i.path.map(String).join(".") : "body"}: ${i.message}`)
      .join("; ");
    throw new HttpError(400, "bad_request", detail);
  }
}

/** Refuses a body that is not `application/json` with 415, before anything reads it. */
export const requireJson: MiddlewareHandler = async (c, next) => {
  const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (type !== "application/json") {
    throw new HttpError(415, "unsupported_media_type", "send the options as application/json");
  }
  await next();
};

/**
 * Refuses bodies over `max` bytes with 413: by Content-Length before anything is read, and a
 * streamed body as it is read. (Hono's bodyLimit leaves the body's reader locked when it refuses
 * a streamed body, and Deno then keeps the connection open after the answer, even one the client
 * asked to close; this reader is cancelled.)
 *
 * @param max the limit in bytes
 * @returns the middleware
 */
export function limitBody(max: number): MiddlewareHandler {
  return async (c, next) => {
    const tooLarge = () =>
      c.json(
        errorBody({ code: "too_large", message: `the body is larger than ${max} bytes` }),
        413,
      );
    const body = c.req.raw.body;
    if (body === null) return await next();
    const declared = c.req.header("content-length");
    if (declared !== undefined && c.req.header("transfer-encoding") === undefined) {
      if (Number(declared) > max) return tooLarge();
      return await next();
    }
    const reader = body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.length;
        if (size > max) {
          await reader.cancel().catch(() => {});
          return tooLarge();
        }
        chunks.push(value);
      }
    } catch {
      throw new HttpError(400, "bad_request", "the request body ended before it was complete");
    }
    const whole = new Uint8Array(size);
    let at = 0;
    for (const chunk of chunks) {
      whole.set(chunk, at);
      at += chunk.length;
    }
    c.req.raw = new Request(c.req.raw, { body: whole });
    await next();
  };
}
