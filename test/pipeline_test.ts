// BodyReader: a byte-stream body is read into the reader's own buffer, reused from read to read
// (not a fresh 64 KiB buffer per read), and any other body is read as it comes.
import assert from "node:assert/strict";
import { BodyReader, READ_BYTES } from "../src/stream/pipeline.ts";

const pieces = ["Call", " me", " Ishmael."].map((s) => new TextEncoder().encode(s));

/** A byte stream that answers each BYOB request with the next piece. */
function byteStream(): ReadableStream<Uint8Array> {
  let k = 0;
  return new ReadableStream({
    type: "bytes",
    pull(c) {
      const req = c.byobRequest!;
      if (k === pieces.length) {
        c.close();
        req.respond(0);
        return;
      }
      const view = req.view as Uint8Array;
      view.set(pieces[k]);
      req.respond(pieces[k++].length);
    },
    autoAllocateChunkSize: 65536,
  });
}

async function readAll(reader: BodyReader): Promise<{ text: string; buffers: number[] }> {
  let text = "";
  const buffers: number[] = [];
  const decoder = new TextDecoder();
  for (let chunk = await reader.read(); chunk !== null; chunk = await reader.read()) {
    text += decoder.decode(chunk, { stream: true });
    buffers.push(chunk.buffer.byteLength);
  }
  return { text, buffers };
}

Deno.test("BodyReader", async (t) => {
  await t.step("a byte stream is read into one reused buffer of READ_BYTES", async () => {
    const { text, buffers } = await readAll(new BodyReader(byteStream()));
    assert.equal(text, "Call me Ishmael.");
    // A default reader on this stream would hand out 65536-byte buffers (autoAllocateChunkSize).
    assert.deepEqual(buffers, [READ_BYTES, READ_BYTES, READ_BYTES]);
  });

  await t.step("a stream of chunks is read as it is", async () => {
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (const p of pieces) c.enqueue(p);
        c.close();
      },
    });
    const { text, buffers } = await readAll(new BodyReader(body));
    assert.equal(text, "Call me Ishmael.");
    assert.deepEqual(buffers, pieces.map((p) => p.buffer.byteLength));
  });

  await t.step(
    "a real streamed request body in Deno.serve is read with the reused buffer",
    async () => {
      const seen: number[] = [];
      const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
        const reader = new BodyReader(req.body!);
        let n = 0;
        for (let chunk = await reader.read(); chunk !== null; chunk = await reader.read()) {
          seen.push(chunk.buffer.byteLength);
          n += chunk.length;
        }
        return new Response(String(n));
      });
      try {
        // A body that trickles in, so the server sees a stream rather than a body already whole.
        let k = 0;
        const body = new ReadableStream<Uint8Array>({
          async pull(c) {
            await new Promise((r) => setTimeout(r, 5));
            if (k === pieces.length) c.close();
            else c.enqueue(pieces[k++]);
          },
        });
        const res = await fetch(`http://127.0.0.1:${server.addr.port}/`, { method: "POST", body });
        assert.equal(await res.text(), "16");
        assert.ok(seen.length > 0);
        assert.ok(seen.every((b) => b === READ_BYTES), `buffers ${seen}`);
      } finally {
        await server.shutdown();
      }
    },
  );
});
