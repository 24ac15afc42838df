// The HTTP adapter the `serve` command uses (cli/serve.ts): a fetch handler served on the
// runtime at hand, request bodies in, streamed responses out (server-sent events arrive as sent).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { serveHandler } from "../cli/serve.ts";

describe("serveHandler()", () => {
  it("binds 127.0.0.1 by default, passes method, path, headers and body, and streams the response chunk by chunk", async () => {
    let release!: () => void;
    const second = new Promise<void>((resolve) => (release = resolve));
    const server = await serveHandler(async (request) => {
      const url = new URL(request.url);
      if (url.pathname === "/echo") {
        return new Response(
          JSON.stringify({
            method: request.method,
            path: url.pathname + url.search,
            header: request.headers.get("x-test"),
            body: await request.text(),
          }),
          { status: 201, headers: { "content-type": "application/json" } },
        );
      }
      const encoder = new TextEncoder();
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(encoder.encode("data: one\n\n"));
          await second;
          controller.enqueue(encoder.encode("data: two\n\n"));
          controller.close();
        },
      });
      return new Response(body, { headers: { "content-type": "text/event-stream" } });
    }, { port: 0 });
    try {
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      const echo = await fetch(new URL("/echo?x=1", server.url), {
        method: "POST",
        headers: { "x-test": "yes" },
        body: "payload",
      });
      assert.equal(echo.status, 201);
      assert.deepEqual(await echo.json(), {
        method: "POST",
        path: "/echo?x=1",
        header: "yes",
        body: "payload",
      });
      const events = await fetch(new URL("/events", server.url));
      assert.equal(events.headers.get("content-type"), "text/event-stream");
      const reader = events.body!.getReader();
      // The first event arrives while the handler still holds the second one back.
      const first = await reader.read();
      assert.equal(new TextDecoder().decode(first.value), "data: one\n\n");
      release();
      let rest = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        rest += new TextDecoder().decode(value);
      }
      assert.equal(rest, "data: two\n\n");
    } finally {
      release();
      await server.close();
    }
  });
});
