// Test-only fault injection: a loopback HTTP/1.1 proxy in front of an S3 server that, driven by
// a seeded PRNG, answers 503 SlowDown / 500 InternalError, or drops the connection before or
// after forwarding, and counts what it did. Built on node:net only (raw HTTP framing), so it
// behaves the same under Deno and Node.
//
// SigV4 signs the Host header, so the proxy forwards it untouched: the client signs for the
// proxy's host:port and the server checks the signature against that same Host.

import { Buffer } from "node:buffer";
import net from "node:net";

/** What the proxy can do to one request. */
export type FaultAction =
  /** Forward to the server and relay its answer. */
  | "pass"
  /** Answer 503 SlowDown without forwarding (the server never sees the request). */
  | "slowdown"
  /** Answer 500 InternalError without forwarding. */
  | "internal"
  /** Destroy the connection as soon as the request head arrives, mid-upload (never forwarded). */
  | "reset_before"
  /** Forward the request, let the server apply it, then destroy the connection unanswered. */
  | "reset_after"
  /** Answer 403 AccessDenied without forwarding. */
  | "deny";

/** A request as the proxy sees it, for `decide`. */
export interface ProxiedRequest {
  /** 0-based index of the request since the proxy started. */
  index: number;
  method: string;
  /** Path as sent (percent-encoded), without the query. */
  path: string;
  /** Raw query string without `?` ("" when none). */
  query: string;
  headers: Record<string, string>;
}

/** Options of {@linkcode startFaultProxy}. */
export interface FaultProxyOptions {
  /** Base URL of the real server, e.g. `http://127.0.0.1:7480`. */
  target: string;
  /** PRNG seed; the same seed gives the same sequence of decisions. Default 1. */
  seed?: number;
  /** Share of requests that get a fault, 0..1. Default 0.2. */
  rate?: number;
  /** Faults drawn (uniformly) for a faulted request. Default: slowdown, internal, both resets. */
  faults?: readonly FaultAction[];
  /**
   * Overrides the random draw for a request: return an action, or `undefined` to fall back to
   * the PRNG. Lets a test aim a fault at one exact request.
   */
  decide?: (request: ProxiedRequest) => FaultAction | undefined;
  /** The proxy closes itself after this long, whatever happens. Default 180 s. */
  maxLifetimeMs?: number;
  /** Bound of one forwarded exchange with the server. Default 60 s. */
  upstreamTimeoutMs?: number;
}

/** Counts of what the proxy did. */
export type FaultCounts = Record<FaultAction, number> & { requests: number };

/** What happened to one request. */
export interface ProxyLogEntry {
  method: string;
  path: string;
  query: string;
  action: FaultAction;
  /** The server's status for a forwarded request (also when the answer was then dropped). */
  upstreamStatus?: number;
}

/** A running proxy. */
export interface FaultProxy {
  /** Base URL to give the S3 client instead of the server's. */
  endpoint: string;
  /** Live counts. */
  readonly counts: FaultCounts;
  /** What happened to each request, in order (method, path, query, action). */
  readonly log: readonly ProxyLogEntry[];
  /** Changes the fault rate from now on (0 turns faults off). */
  setRate(rate: number): void;
  /** Stops listening and destroys every open connection. Idempotent. */
  close(): Promise<void>;
}

/** Mulberry32: a tiny, seedable 32-bit PRNG, uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HEAD_END = Buffer.from("\r\n\r\n");
const MAX_HEAD = 64 * 1024;

function errorXml(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code>` +
    `<Message>${message}</Message><RequestId>fault-proxy</RequestId></Error>`;
}

const CANNED: Partial<Record<FaultAction, { status: string; body: string }>> = {
  slowdown: {
    status: "503 Slow Down",
    body: errorXml("SlowDown", "Please reduce your request rate."),
  },
  internal: {
    status: "500 Internal Server Error",
    body: errorXml("InternalError", "We encountered an internal error. Please try again."),
  },
  deny: { status: "403 Forbidden", body: errorXml("AccessDenied", "Access Denied") },
};

/** Rewrites a head so the connection closes after this message (one exchange per connection). */
function withConnectionClose(head: string): string {
  const lines = head.split("\r\n").filter((line) => !/^(connection|keep-alive)\s*:/i.test(line));
  lines.push("Connection: close");
  return lines.join("\r\n");
}

/**
 * Starts the proxy on 127.0.0.1 (a free port).
 *
 * @param options Target server, seed, fault rate and kinds.
 * @returns The running proxy; close it in `finally`.
 */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  const targetPort = Number(target.port || 80);
  const targetHost = target.hostname;
  const random = mulberry32(options.seed ?? 1);
  let rate = options.rate ?? 0.2;
  const faults = options.faults ?? ["slowdown", "internal", "reset_before", "reset_after"];
  const upstreamTimeoutMs = options.upstreamTimeoutMs ?? 60_000;
  const counts: FaultCounts = {
    requests: 0,
    pass: 0,
    slowdown: 0,
    internal: 0,
    reset_before: 0,
    reset_after: 0,
    deny: 0,
  };
  const log: ProxyLogEntry[] = [];
  const sockets = new Set<net.Socket>();
  let closed = false;

  function choose(request: ProxiedRequest): FaultAction {
    // Always draw, so an override does not shift the rest of the sequence.
    const roll = random();
    const pick = random();
    const forced = options.decide?.(request);
    if (forced !== undefined) return forced;
    if (roll >= rate || faults.length === 0) return "pass";
    return faults[Math.min(faults.length - 1, Math.floor(pick * faults.length))];
  }

  function forward(client: net.Socket, head: string, body: Buffer, entry: ProxyLogEntry): void {
    const action = entry.action;
    const upstream = net.connect({ host: targetHost, port: targetPort });
    sockets.add(upstream);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      upstream.destroy();
      client.destroy();
    }, upstreamTimeoutMs);
    upstream.on("error", () => {
      clearTimeout(timer);
      client.destroy();
    });
    upstream.on("close", () => {
      sockets.delete(upstream);
      clearTimeout(timer);
    });
    upstream.on("data", (chunk: Buffer) => chunks.push(chunk));
    upstream.on("end", () => {
      clearTimeout(timer);
      upstream.destroy();
      const answer = Buffer.concat(chunks);
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(answer.subarray(0, 16).toString("latin1"));
      if (status !== null) entry.upstreamStatus = Number(status[1]);
      if (action === "reset_after") {
        // The server applied the request; the client never hears about it.
        client.destroy();
        return;
      }
      const end = answer.indexOf(HEAD_END);
      if (end < 0) {
        client.destroy();
        return;
      }
      const responseHead = withConnectionClose(answer.subarray(0, end).toString("latin1"));
      client.end(Buffer.concat([Buffer.from(responseHead, "latin1"), answer.subarray(end)]));
    });
    upstream.write(Buffer.from(withConnectionClose(head) + "\r\n\r\n", "latin1"));
    if (body.byteLength > 0) upstream.write(body);
  }

  const server = net.createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => client.destroy());
    let buffered = Buffer.alloc(0);
    let request:
      | { head: string; entry: ProxyLogEntry; length: number; method: string }
      | undefined;
    const bodyParts: Buffer[] = [];
    let bodyBytes = 0;

    const finish = () => {
      if (request === undefined) return;
      const body = Buffer.concat(bodyParts);
      const { entry, head, method } = request;
      const action = entry.action;
      client.removeAllListeners("data");
      const canned = CANNED[action];
      if (canned !== undefined) {
        const bytes = Buffer.from(canned.body);
        client.end(
          `HTTP/1.1 ${canned.status}\r\nContent-Type: application/xml\r\n` +
            `Content-Length: ${bytes.byteLength}\r\nConnection: close\r\n\r\n` +
            (method === "HEAD" ? "" : canned.body),
        );
        return;
      }
      forward(client, head, body, entry);
    };

    client.on("data", (chunk: Buffer) => {
      if (request === undefined) {
        buffered = Buffer.concat([buffered, chunk]);
        const end = buffered.indexOf(HEAD_END);
        if (end < 0) {
          if (buffered.byteLength > MAX_HEAD) client.destroy();
          return;
        }
        const head = buffered.subarray(0, end).toString("latin1");
        const rest = buffered.subarray(end + HEAD_END.byteLength);
        const [requestLine, ...headerLines] = head.split("\r\n");
        const [method = "", target = ""] = requestLine.split(" ");
        const headers: Record<string, string> = {};
        for (const line of headerLines) {
          const colon = line.indexOf(":");
          if (colon > 0) {
            headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
          }
        }
        if (headers["transfer-encoding"] !== undefined) {
          // The S3 adapter always sends Content-Length; a chunked upload is not expected here.
          client.end(
            "HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
          );
          return;
        }
        const question = target.indexOf("?");
        const proxied: ProxiedRequest = {
          index: counts.requests,
          method,
          path: question < 0 ? target : target.slice(0, question),
          query: question < 0 ? "" : target.slice(question + 1),
          headers,
        };
        counts.requests++;
        const action = closed ? "reset_before" : choose(proxied);
        counts[action]++;
        const entry: ProxyLogEntry = { method, path: proxied.path, query: proxied.query, action };
        log.push(entry);
        if (action === "reset_before") {
          client.destroy();
          return;
        }
        request = { head, entry, length: Number(headers["content-length"] ?? 0), method };
        chunk = rest;
      }
      if (chunk.byteLength > 0) {
        bodyParts.push(chunk);
        bodyBytes += chunk.byteLength;
      }
      if (bodyBytes >= request.length) finish();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("fault proxy: no port");

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    if (closing) return closing;
    closed = true;
    clearTimeout(lifetime);
    closing = new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    });
    return closing;
  };
  // Bounded: the proxy never outlives a forgotten close().
  const lifetime = setTimeout(() => void close(), options.maxLifetimeMs ?? 180_000);
  (lifetime as { unref?: () => void }).unref?.();

  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    counts,
    log,
    setRate(value: number) {
      rate = value;
    },
    close,
  };
}
