// /session/:id — stream tokens in, per-token outputs out (SSE); generate; inspect; delete.
// Thin: validate, call into src/stream, map errors (src/errors.ts).
import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { z } from "zod";
import { HttpError } from "../src/errors.ts";
import { ConflictError } from "../src/store/errors.ts";
import { validateModelName, validateSessionId } from "../src/store/keys.ts";
import { deleteSession, mayAccess, readSession } from "../src/store/sessions.ts";
import {
  decodeBody,
  InputError,
  type InputItem,
  inputTypeOf,
  type OpenOptions,
  sessionBody,
  type SessionEvent,
  type SessionManager,
  SSE_HEADERS,
  writeEvent,
} from "../src/stream/mod.ts";
import { zValidator } from "@hono/zod-validator";
import { requestKey, takeStreamEnd } from "./_access.ts";
import { limitBody, requireJson, validationHook } from "./_validate.ts";

/** A yes/no query option: "1" or "0" (absent: "0"). */
const Flag = z.enum(["0", "1"]).optional();

const StreamQuery = z.object({
  model: z.string().optional(),
  from: z.coerce.number().int().min(1).optional(),
  hidden: Flag,
});

const GenerateBody = z.object({
  max_tokens: z.number().int().min(1).default(100),
  temperature: z.number().min(0).max(10).default(1),
  top_k: z.number().int().min(0).default(0),
  top_p: z.number().gt(0).max(1).default(1),
  seed: z.number().int().min(0).max(2 ** 32 - 1).default(0),
  stop: z.union([z.string(), z.array(z.string()).max(16)]).optional(),
  model: z.string().optional(),
  class: z.string().max(64).optional(),
  hidden: z.boolean().default(false),
}).strict();

/** A one-to-one request carries one token: its body is small. */
const SINGLE_BODY_BYTES = 4096;

/**
 * Every token of a (small) decoded body: a text's characters, and token items as they are.
 *
 * @throws {InputError} for a malformed body; HttpError 400 when the body could not be read to
 *   its end (the connection broke): the client's doing, not the server's
 */
async function collectTokens(items: ReadableStream<InputItem>): Promise<string[]> {
  const tokens: string[] = [];
  try {
    for await (const item of items) {
      if ("token" in item) tokens.push(item.token);
      else tokens.push(...item.text);
    }
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new HttpError(400, "bad_request", "the request body ended before it was complete");
  }
  return tokens;
}

/** Seq of the body's first token from `?from=` or `Last-Event-ID` (the last event seen + 1). */
function firstSeq(from: number | undefined, lastEventId: string | undefined): number | undefined {
  if (from !== undefined) return from;
  if (lastEventId === undefined) return undefined;
  if (!/^\d{1,15}$/.test(lastEventId.trim())) {
    throw new HttpError(400, "bad_request", "Last-Event-ID must be a session seq (a whole number)");
  }
  return Number(lastEventId) + 1;
}

/** What a request gets for a session that does not exist, or is another key's. */
function noSession(id: string): HttpError {
  return new HttpError(404, "not_found", `no session ${id}`);
}

/**
 * The session routes. Behind access control, a session is its key's alone: to any other key it
 * is missing (404), whatever the request, even while a request holds it.
 *
 * @param sessions the isolate's session manager
 * @returns a Hono sub-app to mount at /session
 */
export function sessionRoutes(sessions: SessionManager): Hono {
  const app = new Hono();
  const { limits, kv } = sessions.deps;

  /**
   * Throws 404 when the session is another key's: called before a 409 (busy, or a conflict
   * found on opening) could tell that it exists. Sessions at rest are checked where they are
   * read (SessionManager.open, and GET and DELETE here).
   */
  const assertVisible = async (id: string, key: string | undefined) => {
    if (key === undefined) return;
    const held = sessions.active(id);
    const owner = held !== undefined ? held.owner : (await readSession(kv, id))?.record.owner;
    if (!mayAccess(owner, key)) throw noSession(id);
  };

  /** Opens a session for a request; a conflict is only told to the session's own key. */
  const open = async (id: string, options: OpenOptions) => {
    try {
      return await sessions.open(id, options);
    } catch (err) {
      if (err instanceof ConflictError) await assertVisible(id, options.owner);
      throw err;
    }
  };

  app.post("/:id", zValidator("query", StreamQuery, validationHook), async (c) => {
    const id = validateSessionId(c.req.param("id"));
    const query = c.req.valid("query");
    if (query.model !== undefined) validateModelName(query.model);
    const type = inputTypeOf(c.req.header("content-type"));
    if (type === null) {
      throw new HttpError(
        415,
        "unsupported_media_type",
        "send text/plain, application/x-ndjson or text/event-stream (UTF-8)",
      );
    }
    const length = Number(c.req.header("content-length") ?? "0");
    if (length > limits.maxBodyBytes) {
      throw new HttpError(413, "too_large", `the body is larger than ${limits.maxBodyBytes} bytes`);
    }
    const from = firstSeq(query.from, c.req.header("last-event-id"));
    const runner = await open(id, { model: query.model, from, owner: requestKey(c) });
    runner.includeHidden = query.hidden === "1";
    const body = c.req.raw.body ?? new ReadableStream<Uint8Array>({ start: (ctl) => ctl.close() });
    const wrongUse = runner.loaded.vocab === null
      ? `model ${runner.loaded.name} reads dense vectors; it is not served over text`
      : runner.loaded.vocab.markers.length > 0 && runner.seq === 0
      ? `model ${runner.loaded.name} starts from a class: POST /session/${id}/generate with {"class": ...} first`
      : null;
    if (wrongUse !== null) {
      await sessions.close(runner, false);
      throw new HttpError(400, "wrong_task", wrongUse);
    }
    if (runner.loaded.model.meta.task === "single") {
      // One to one: the whole (small) body is read first, so a wrong use is a plain 400.
      let events: SessionEvent[];
      try {
        const tokens = await collectTokens(decodeBody(body, type, SINGLE_BODY_BYTES));
        if (tokens.length !== 1) {
          throw new HttpError(
            400,
            "wrong_task",
            `model ${runner.loaded.name} is one to one: send exactly one token, not ${tokens.length}`,
          );
        }
        events = await runner.single(tokens[0]);
      } catch (err) {
        await sessions.close(runner, false);
        throw err;
      }
      await sessions.close(runner);
      return streamSSE(c, async (stream) => {
        for (const event of events) await writeEvent(stream, event);
      });
    }
    const streamEnded = takeStreamEnd(c);
    const events = sessionBody(
      body,
      type,
      limits.maxBodyBytes,
      runner,
      limits.keepAliveMs,
      () => {
        streamEnded();
        // After an error event, what this request applied since its last checkpoint is dropped
        // (the runner knows it failed); a client that left keeps what was applied.
        sessions.close(runner).catch((err) => console.error(err));
      },
    );
    return new Response(events, { headers: SSE_HEADERS });
  });

  app.post(
    "/:id/generate",
    requireJson,
    limitBody(64 * 1024),
    zValidator("json", GenerateBody, validationHook),
    async (c) => {
      const id = validateSessionId(c.req.param("id"));
      const opts = c.req.valid("json");
      if (opts.max_tokens > limits.maxGenerateTokens) {
        throw new HttpError(
          400,
          "bad_request",
          `max_tokens must be at most ${limits.maxGenerateTokens}`,
        );
      }
      if (opts.model !== undefined) validateModelName(opts.model);
      const runner = await open(id, { model: opts.model, owner: requestKey(c) });
      const task = runner.loaded.model.meta.task;
      if (runner.loaded.model.meta.labels !== null || runner.loaded.vocab === null) {
        await sessions.close(runner, false);
        throw new HttpError(
          400,
          "wrong_task",
          `model ${runner.loaded.name} is a ${task} model: it does not generate`,
        );
      }
      // One to many: a generator's session starts from the class it is given.
      const markers = runner.loaded.vocab.markers;
      let stop = typeof opts.stop === "string" ? [opts.stop] : opts.stop ?? [];
      try {
        if (markers.length > 0 && runner.seq === 0) {
          if (opts.class === undefined) {
            throw new HttpError(
              400,
              "bad_request",
              `model ${runner.loaded.name} generates from a class: give "class" (${
                markers.map((m) => m.slice(1, -1)).join(" or ")
              })`,
            );
          }
          runner.startWithClass(opts.class);
        } else if (opts.class !== undefined) {
          if (markers.length === 0) {
            throw new HttpError(400, "wrong_task", `model ${runner.loaded.name} takes no class`);
          }
          runner.startWithClass(opts.class); // throws: the session has started
        }
        if (markers.length > 0) {
          if (runner.context.complete === "true") {
            throw new HttpError(
              409,
              "conflict",
              `session ${id} has generated its whole sequence; start a new session for another`,
            );
          }
          if (opts.stop === undefined) stop = ["\n"]; // a name ends with its line
        }
      } catch (err) {
        await sessions.close(runner, false);
        throw err;
      }
      runner.includeHidden = opts.hidden;
      const streamEnded = takeStreamEnd(c);
      return streamSSE(c, async (stream) => {
        const send = (event: SessionEvent) => writeEvent(stream, event);
        try {
          const reason = await runner.generate(
            opts.max_tokens,
            { temperature: opts.temperature, topK: opts.top_k, topP: opts.top_p },
            opts.seed,
            stop,
            send,
            () => stream.aborted,
          );
          if (!stream.aborted) {
            for (const event of await runner.finish(reason)) await writeEvent(stream, event);
          }
        } catch (err) {
          const event = runner.fail(err);
          if (!stream.aborted) await writeEvent(stream, event);
        } finally {
          streamEnded();
          await sessions.close(runner).catch((err) => console.error(err));
        }
      });
    },
  );

  app.get("/:id", async (c) => {
    const id = validateSessionId(c.req.param("id"));
    const key = requestKey(c);
    const active = sessions.active(id);
    if (active !== undefined) {
      if (!mayAccess(active.owner, key)) throw noSession(id);
      return c.json(active.info());
    }
    const stored = await readSession(kv, id);
    if (stored === null || !mayAccess(stored.record.owner, key)) throw noSession(id);
    const r = stored.record;
    return c.json({
      id,
      model: r.model,
      version: r.version,
      seq: r.seq,
      durable_seq: r.seq,
      created_at: r.createdAt,
      updated_at: r.updatedAt,
    });
  });

  app.delete("/:id", async (c) => {
    const id = validateSessionId(c.req.param("id"));
    const key = requestKey(c);
    if (sessions.busy(id)) {
      await assertVisible(id, key);
      throw new HttpError(409, "conflict", `session ${id} is busy with a request`);
    }
    const stored = await readSession(kv, id);
    if (stored === null || !mayAccess(stored.record.owner, key)) throw noSession(id);
    await deleteSession(kv, id, stored.versionstamp);
    return c.body(null, 204);
  });

  return app;
}
