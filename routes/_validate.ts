// Validation where input enters: zod schemas through @hono/zod-validator, with failures turned
// into this API's error body; JSON bodies must say so (415) and stay under the size limit (413).
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
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
 * Refuses bodies over `max` bytes with 413 (Hono's bodyLimit counts streamed bodies too).
 *
 * @param max the limit in bytes
 * @returns the middleware
 */
export function limitBody(max: number): MiddlewareHandler {
  return bodyLimit({
    maxSize: max,
    onError: (c) =>
      c.json(
        errorBody({ code: "too_large", message: `the body is larger than ${max} bytes` }),
        413,
      ),
  });
}
