// The one place that maps named errors to HTTP statuses and the JSON error body
// `{ "error": { "code", "message" } }` (DESIGN.md "Errors").
import { HTTPException } from "hono/http-exception";
import { InputError } from "./stream/decode.ts";
import {
  ConflictError,
  IntegrityError,
  InvalidNameError,
  NotFoundError,
  TooLargeError,
} from "./store/errors.ts";

/** An error with an HTTP status and a machine-readable code, raised where input enters. */
export class HttpError extends Error {
  override name = "HttpError";
  readonly status: 400 | 401 | 404 | 409 | 413 | 415 | 429 | 500 | 503;
  readonly code: string;

  /**
   * @param status the HTTP status
   * @param code a short snake_case code clients can branch on
   * @param message what is wrong, for people
   */
  constructor(status: HttpError["status"], code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The status, code and message a client gets for an error. */
export interface ErrorInfo {
  status: HttpError["status"];
  code: string;
  message: string;
}

/**
 * Maps any error to what the client sees. Unknown errors are a 500 whose message hides
 * internals (the caller logs the original).
 *
 * @param err anything thrown
 * @returns status, code and message
 * @example
 * ```ts
 * import { errorInfo, HttpError } from "./errors.ts";
 * errorInfo(new HttpError(415, "unsupported_media_type", "no")).status; // 415
 * ```
 */
export function errorInfo(err: unknown): ErrorInfo {
  if (err instanceof HttpError) return { status: err.status, code: err.code, message: err.message };
  if (err instanceof HTTPException) {
    const status = ([400, 401, 404, 409, 413, 415, 429] as const).find((s) => s === err.status) ??
      400;
    const code = status === 413 ? "too_large" : status === 401 ? "unauthorized" : "bad_request";
    return { status, code, message: err.message };
  }
  if (err instanceof InputError) {
    return { status: err.code === "too_large" ? 413 : 400, code: err.code, message: err.message };
  }
  if (err instanceof InvalidNameError) {
    return { status: 400, code: "invalid_name", message: err.message };
  }
  if (err instanceof NotFoundError) return { status: 404, code: "not_found", message: err.message };
  if (err instanceof ConflictError) return { status: 409, code: "conflict", message: err.message };
  if (err instanceof TooLargeError) return { status: 413, code: "too_large", message: err.message };
  if (err instanceof IntegrityError) {
    return { status: 500, code: "model_corrupt", message: err.message };
  }
  return { status: 500, code: "internal", message: "internal error" };
}

/**
 * The JSON error body.
 *
 * @param info code and message
 * @returns `{ error: { code, message } }`
 */
export function errorBody(info: { code: string; message: string }) {
  return { error: { code: info.code, message: info.message } };
}
