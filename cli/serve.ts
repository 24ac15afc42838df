// Serving a fetch handler (`(Request) => Promise<Response>`) over HTTP: Deno.serve on Deno,
// node:http on Node, with streaming bodies both ways (server-sent events included).

/** A fetch-style request handler. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

/** Options of {@linkcode serveHandler}. */
export interface ServeHandlerOptions {
  /** Port; 0 picks a free one. Default 8080. */
  port?: number;
  /** Address to bind. Default `127.0.0.1` (this machine only). */
  hostname?: string;
  /** Stops the server when aborted. */
  signal?: AbortSignal;
}

/** A running server. */
export interface ServedHandler {
  /** `http://host:port/`. */
  url: string;
  /** The port bound (useful with port 0). */
  port: number;
  /** Stops accepting connections and closes the open ones. */
  close(): Promise<void>;
  /** Resolves once the server has stopped. */
  finished: Promise<void>;
}

function urlOf(hostname: string, port: number): string {
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return `http://${host}:${port}/`;
}

/**
 * Serves `handler` over HTTP on the runtime at hand.
 *
 * On Node, each request becomes a web `Request` (its body streamed, aborted when the client
 * goes away) and each `Response` is written back with its status, headers and body streamed
 * chunk by chunk as the handler produces it, so server-sent events reach the client at once.
 *
 * @param handler The fetch handler.
 * @param options Port, hostname, signal.
 * @returns The running server.
 */
export async function serveHandler(
  handler: FetchHandler,
  options: ServeHandlerOptions = {},
): Promise<ServedHandler> {
  const port = options.port ?? 8080;
  const hostname = options.hostname ?? "127.0.0.1";
  // deno-lint-ignore no-explicit-any
  const deno = (globalThis as any).Deno;
  if (deno?.serve) {
    let resolveListen: (port: number) => void;
    const listening = new Promise<number>((resolve) => (resolveListen = resolve));
    const server = deno.serve({
      port,
      hostname,
      signal: options.signal,
      onListen: (address: { port: number }) => resolveListen(address.port),
    }, handler);
    const bound = await listening;
    return {
      url: urlOf(hostname, bound),
      port: bound,
      close: () => server.shutdown(),
      finished: server.finished,
    };
  }
  return await serveOnNode(handler, port, hostname, options.signal);
}

async function serveOnNode(
  handler: FetchHandler,
  port: number,
  hostname: string,
  signal: AbortSignal | undefined,
): Promise<ServedHandler> {
  const http = await import("node:http");
  const { Readable } = await import("node:stream");
  const server = http.createServer(async (req, res) => {
    const controller = new AbortController();
    // The client went away before the response ended: stop the handler's stream.
    res.on("close", () => {
      if (!res.writableFinished) controller.abort();
    });
    try {
      const headers = new Headers();
      for (const [name, value] of Object.entries(req.headers)) {
        if (value === undefined) continue;
        for (const v of [value].flat()) headers.append(name, v);
      }
      const method = req.method ?? "GET";
      const hasBody = method !== "GET" && method !== "HEAD";
      const request = new Request(new URL(req.url ?? "/", urlOf(hostname, port)), {
        method,
        headers,
        signal: controller.signal,
        ...(hasBody
          ? {
            body: Readable.toWeb(req) as unknown as ReadableStream<Uint8Array>,
            duplex: "half",
          }
          : {}),
      } as RequestInit);
      const response = await handler(request);
      const outHeaders: Record<string, string | string[]> = {};
      response.headers.forEach((value, name) => {
        if (name === "set-cookie") return;
        outHeaders[name] = value;
      });
      const cookies = response.headers.getSetCookie?.() ?? [];
      if (cookies.length > 0) outHeaders["set-cookie"] = cookies;
      res.writeHead(response.status, response.statusText, outHeaders);
      if (response.body === null || method === "HEAD") {
        res.end();
        return;
      }
      res.flushHeaders();
      const reader = response.body.getReader();
      controller.signal.addEventListener("abort", () => reader.cancel().catch(() => {}), {
        once: true,
      });
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        // Backpressure: wait for the socket to drain before reading more.
        if (!res.write(value)) await new Promise((resolve) => res.once("drain", resolve));
      }
      res.end();
    } catch (error) {
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
        res.end("Internal error\n");
      } else res.destroy(error as Error);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, hostname, () => resolve());
  });
  const address = server.address();
  const bound = typeof address === "object" && address !== null ? address.port : port;
  let resolveFinished: () => void;
  const finished = new Promise<void>((resolve) => (resolveFinished = resolve));
  server.once("close", () => resolveFinished());
  const close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections?.();
    });
  signal?.addEventListener("abort", () => void close(), { once: true });
  return { url: urlOf(hostname, bound), port: bound, close, finished };
}
