// /models — what is published: names, versions and manifests; a model's page for browsers.
import { Hono } from "hono";
import { accepts } from "hono/accepts";
import { HttpError } from "../src/errors.ts";
import { validateModelName } from "../src/store/keys.ts";
import { describeModel, listModels, type ModelManifest } from "../src/store/registry.ts";
import { modelPage, PAGE_HEADERS } from "../src/ui/mod.ts";

/** A manifest without its (long) vocabulary and curves, for listings. */
function summary(m: ModelManifest) {
  const { vocabulary: _v, training: _t, metrics, ...rest } = m;
  const valLoss = (metrics as { val_loss?: unknown } | undefined)?.val_loss;
  return { ...rest, val_loss: typeof valLoss === "number" ? valLoss : null };
}

/**
 * The model routes.
 *
 * @param kv the store models are published to
 * @returns a Hono sub-app to mount at /models
 */
export function modelRoutes(kv: Deno.Kv): Hono {
  const app = new Hono();

  app.get("/", async (c) => {
    const models = await listModels(kv);
    return c.json({
      models: models.map((m) => ({
        name: m.name,
        current: m.current,
        versions: m.versions.map(summary),
      })),
    });
  });

  app.get("/:name", async (c) => {
    const name = validateModelName(c.req.param("name"));
    const found = await describeModel(kv, name);
    if (found === null) throw new HttpError(404, "not_found", `no model ${name}`);
    // JSON unless HTML is preferred (a browser); "*/*" and no Accept get JSON, as before.
    c.header("vary", "Accept");
    const type = accepts(c, {
      header: "Accept",
      supports: ["application/json", "text/html"],
      default: "application/json",
    });
    if (type === "text/html") return c.html(await modelPage(found), 200, PAGE_HEADERS);
    return c.json({ name, current: found.current, versions: found.versions });
  });

  return app;
}
