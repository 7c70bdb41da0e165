// / and the files it loads: the demo page, its script, stylesheet and icon.
import { Hono } from "hono";
import { etag } from "hono/etag";
import { asset, ASSETS, demoPage, PAGE_HEADERS } from "../src/ui/mod.ts";

/**
 * The demo page and its static files.
 *
 * @returns a Hono sub-app to mount at /
 */
export function uiRoutes(): Hono {
  const app = new Hono();
  let demo: Promise<string> | undefined; // the page is static: made once
  app.get("/", async (c) => c.html(await (demo ??= demoPage()), 200, PAGE_HEADERS));
  for (const path of Object.keys(ASSETS)) {
    app.get(path, etag(), async (c) => {
      const { text, type } = await asset(path);
      return c.body(text, 200, {
        "content-type": type,
        "cache-control": "no-cache",
        "x-content-type-options": "nosniff",
      });
    });
  }
  return app;
}
