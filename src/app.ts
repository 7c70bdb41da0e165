// createApp(deps) -> Hono: every dependency injected (KV, model cache, clock, limits), so tests
// build apps freely and src/main.ts wires the real ones.
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { accessControl } from "../routes/_access.ts";
import { modelRoutes } from "../routes/models.ts";
import { sessionRoutes } from "../routes/session.ts";
import { uiRoutes } from "../routes/ui.ts";
import type { AccessOptions } from "./access/mod.ts";
import { errorBody, errorInfo } from "./errors.ts";
import type { ModelCache } from "./store/model_cache.ts";
import { DEFAULT_LIMITS, type Limits, SessionManager } from "./stream/mod.ts";

/** What the app needs. */
export interface AppDeps {
  kv: Deno.Kv;
  models: ModelCache;
  /** @default () => new Date() */
  clock?: () => Date;
  /** @default DEFAULT_LIMITS */
  limits?: Partial<Limits>;
  /** The model a new session gets when the request names none. @default "moby" */
  defaultModel?: string;
  /** The session manager; made from the other deps when absent (main.ts passes its own to
   * checkpoint open sessions on SIGTERM). */
  sessions?: SessionManager;
  /** API keys and per-key limits. @default no keys: access control is off */
  access?: AccessOptions;
}

/**
 * Builds the HTTP app: `/session/:id` (stream, generate, inspect, delete), `/models` (a model's
 * page for browsers), `/healthz`, the demo page `/` with its files, access control when keys
 * are given, and one error mapper for all of them.
 *
 * @param deps the dependencies
 * @returns the Hono app (`app.fetch` serves requests)
 * @example
 * ```ts
 * import { createApp } from "./app.ts";
 * import { ModelCache } from "./store/model_cache.ts";
 * const kv = await Deno.openKv(":memory:");
 * const app = createApp({ kv, models: new ModelCache(kv) });
 * (await app.request("/healthz")).status; // 200
 * kv.close();
 * ```
 */
export function createApp(deps: AppDeps): Hono {
  const sessions = deps.sessions ?? new SessionManager({
    kv: deps.kv,
    models: deps.models,
    clock: deps.clock ?? (() => new Date()),
    limits: { ...DEFAULT_LIMITS, ...deps.limits },
    defaultModel: deps.defaultModel ?? "moby",
  });
  const app = new Hono();
  // Registered before the access middleware, so the health check and the demo page's static
  // files need no key (the page's API calls do).
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.route("/", uiRoutes());
  if (deps.access !== undefined && deps.access.keys.length > 0) {
    app.use("*", accessControl(deps.access));
  }
  app.route("/session", sessionRoutes(sessions));
  app.route("/models", modelRoutes(deps.kv));
  app.notFound((c) =>
    c.json(errorBody({ code: "not_found", message: `no route ${c.req.method} ${c.req.path}` }), 404)
  );
  app.onError((err, c) => {
    // A middleware that made its own answer (the access check's 401, with WWW-Authenticate).
    if (err instanceof HTTPException && err.res !== undefined) return err.getResponse();
    const info = errorInfo(err);
    if (info.status >= 500) console.error(err);
    return c.json(errorBody(info), info.status);
  });
  return app;
}
