// Access control as Hono middleware: the API key (Hono's bearerAuth, checked against the
// configured hashes), then the key's request rate and its open streams. Every refusal has the
// API's error body: 401 `unauthorized`, 429 `rate_limited` or `too_many_streams` with
// Retry-After. The key's name is left in the context (`keyId`) for the session routes.
import type { Context, MiddlewareHandler } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { type AccessOptions, DEFAULT_RATE_LIMITS, KeyLimiter, KeyRing } from "../src/access/mod.ts";
import { errorBody } from "../src/errors.ts";

declare module "hono" {
  interface ContextVariableMap {
    /** The name of the request's API key (set by {@linkcode accessControl}). */
    keyId: string | undefined;
    /** Frees the request's stream slot (see {@linkcode takeStreamEnd}). */
    streamEnd: (() => void) | undefined;
  }
}

/**
 * The name of the API key a request came with.
 *
 * @param c the request's context
 * @returns the key's name, or undefined when access control is off
 */
export function requestKey(c: Context): string | undefined {
  return c.get("keyId");
}

/** The routes that open a stream: POST /session/:id and POST /session/:id/generate. */
const STREAM_ROUTE = /^\/session\/[^/]+(\/generate)?$/;

/** A 429 with the error body and Retry-After in whole seconds. */
function tooMany(c: Context, code: string, message: string, seconds: number): Response {
  return c.json(errorBody({ code, message }), 429, { "retry-after": String(seconds) });
}

/**
 * Takes over the freeing of the request's stream slot (the per-key cap on open streams): a route
 * whose response streams on after it returns calls this before returning, and calls what it
 * gets once, when the stream has ended for any reason. A route that does not take it has the
 * slot freed as soon as it has answered. Without access control it returns a no-op.
 *
 * @param c the request's context
 * @returns the function that frees the slot
 */
export function takeStreamEnd(c: Context): () => void {
  const end = c.get("streamEnd");
  c.set("streamEnd", undefined);
  return end ?? (() => {});
}

/**
 * The access middleware: refuses requests without a configured key (401), then requests over
 * the key's rate (429 `rate_limited`), then streams over the key's cap (429 `too_many_streams`).
 *
 * @param options the keys, the limits and the limiter's clock
 * @returns the middleware; mount it after the routes that stay open (`/healthz`)
 */
export function accessControl(options: AccessOptions): MiddlewareHandler {
  const ring = new KeyRing(options.keys);
  const limiter = new KeyLimiter({ ...DEFAULT_RATE_LIMITS, ...options.limits }, options.now);
  const unauthorized = (message: string) => ({
    message: (c: Context) => c.json(errorBody({ code: "unauthorized", message }), 401),
  });
  const auth = bearerAuth({
    verifyToken: async (token, c) => {
      const name = await ring.identify(token);
      if (name !== null) c.set("keyId", name);
      return name !== null;
    },
    noAuthenticationHeader: unauthorized("send an API key: Authorization: Bearer <key>"),
    // Hono answers a malformed header with 400; a key that cannot be read is a missing key.
    invalidAuthenticationHeader: unauthorized("the Authorization header must be Bearer <key>"),
    invalidToken: unauthorized("unknown API key"),
  });
  return (c, next) =>
    auth(c, async () => {
      const key = c.get("keyId")!;
      const wait = limiter.take(key);
      if (wait > 0) {
        c.res = tooMany(
          c,
          "rate_limited",
          `key ${key} is over ${limiter.limits.ratePerSecond} requests per second ` +
            `(bursts of ${limiter.limits.burst})`,
          wait,
        );
        return;
      }
      if (c.req.method !== "POST" || !STREAM_ROUTE.test(c.req.path)) return await next();
      const end = limiter.openStream(key);
      if (end === null) {
        c.res = tooMany(
          c,
          "too_many_streams",
          `key ${key} has ${limiter.limits.maxStreams} streams open; end one first`,
          1,
        );
        return;
      }
      c.set("streamEnd", end);
      try {
        await next();
      } finally {
        // Not taken by the route (takeStreamEnd): the request is over.
        if (c.get("streamEnd") !== undefined) end();
      }
    });
}
