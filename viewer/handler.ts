// The viewer's fetch handler: routing, the optional bearer token, security headers, downloads.

import type { RunStorage } from "../storage/types.ts";
import { NotFoundError, RunnerError, ValidationError } from "../core/errors.ts";
import { keysOf, readRun, type RunRef } from "../core/read.ts";
import type { StreamLogChannel } from "../core/types.ts";
import { loadGitCheckpoint } from "../git/checkpoints.ts";
import type { RestoreCommandInput, ViewerContext } from "./context.ts";
import { markup } from "./html.ts";
import { listPage } from "./list-page.ts";
import { logPage, runPage } from "./run-page.ts";
import { logEventStream } from "./logs.ts";
import { isOutputCursor, outputEventStream } from "./output.ts";
import {
  attachmentName,
  badRequest,
  baseHeaders,
  eventStreamResponse,
  htmlResponse,
  unauthorized,
} from "./responses.ts";
import { page } from "./shell.ts";
import { z } from "zod";

/** Options of {@linkcode createRunViewer}. */
export interface RunViewerOptions {
  /** Runs prefix the runs were written under (default `runs`). */
  runsRootDir?: string;
  /**
   * A secret every request must present: `Authorization: Bearer <token>`, or once as
   * `?token=<token>` in a browser, which sets an HttpOnly cookie and redirects to the URL
   * without it. Set it whenever the viewer is reachable from anywhere but this machine.
   */
  token?: string;
  /**
   * Host names (the `Host` header, without the port) the viewer answers. Default: only
   * `localhost`, `127.0.0.1` and `[::1]` without a `token` (so a web page cannot reach a
   * local viewer through DNS rebinding), any host with one.
   */
  allowedHosts?: string[];
  /** Path prefix the handler is mounted at, e.g. `/runs-viewer` (default: the root). */
  basePath?: string;
  /** Title in the pages' header (default `Runs`). */
  title?: string;
  /** Runs per list page (default 50). */
  pageSize?: number;
  /** Bytes of each log shown on a run's page, its tail (default 128 KiB). */
  tailBytes?: number;
  /** Bytes per page when reading a whole log page by page (default 256 KiB). */
  logPageBytes?: number;
  /** How often a followed log is polled for new bytes, ms (default 250). */
  pollMs?: number;
  /** Heartbeat age past which a run is stale, ms (default 15,000). */
  staleAfterMs?: number;
  /**
   * The command shown to restore a git checkpoint. Default (the `runs` CLI's syntax):
   * `runs restore <taskId>/<runId> --seq <seq> --worktree DIR`.
   */
  restoreCommand?: (input: RestoreCommandInput) => string;
  /** Told about a failure a page could only name by its code (default `console.error`). */
  onError?: (error: unknown) => void;
}

/** A request handler, as `Deno.serve`, Deno Deploy and Workers take it. */
export type RunViewerHandler = (request: Request) => Promise<Response>;

const OptionsSchema = z.strictObject({
  runsRootDir: z.string().optional(),
  allowedHosts: z.array(z.string().min(1)).optional(),
  token: z.string().min(16, "must be at least 16 characters").optional(),
  basePath: z.string().regex(/^(\/[A-Za-z0-9._~-]+)*\/?$/, "must be a path like '/viewer'")
    .optional(),
  title: z.string().max(200).optional(),
  pageSize: z.number().int().min(1).max(1000).optional(),
  tailBytes: z.number().int().min(1024).max(64 * 1024 * 1024).optional(),
  logPageBytes: z.number().int().min(1024).max(64 * 1024 * 1024).optional(),
  pollMs: z.number().int().min(10).max(60_000).optional(),
  staleAfterMs: z.number().min(0).optional(),
  restoreCommand: z.custom<(input: RestoreCommandInput) => string>(
    (v) => typeof v === "function",
    "must be a function",
  ).optional(),
  onError: z.custom<(error: unknown) => void>((v) => typeof v === "function", "must be a function")
    .optional(),
});

const COOKIE = "runs_viewer_token";
const CHANNELS = new Set(["stdout", "stderr"]);

function defaultRestoreCommand(input: RestoreCommandInput): string {
  // The `runs` CLI's syntax; a CLI serving the viewer can add its `--storage` through the option.
  const root = input.runsRootDir && input.runsRootDir !== "runs"
    ? ` --runs-root ${input.runsRootDir}`
    : "";
  return `runs restore ${input.taskId}/${input.runId} --seq ${input.seq} --worktree DIR${root}`;
}

function newNonce(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes));
}

/** Compares two strings in time independent of where they differ. */
function sameSecret(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

function cookieToken(request: Request): string | undefined {
  for (const part of (request.headers.get("cookie") ?? "").split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === COOKIE) return decodeURIComponent(value.join("="));
  }
  return undefined;
}

function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/**
 * Creates the read-only web viewer of the runs on `storage`: a standard
 * `(request: Request) => Promise<Response>` handler serving the runs list (`/`), each run's page
 * (`/runs/<taskId>/<runId>`), its logs page by page and followed live over server-sent events
 * (the event `id:` is the byte offset, so `Last-Event-ID` resumes), both logs in print order
 * followed live (`…/output/events`, the `id:` each item's cursor), git checkpoint patches and
 * artifacts. Every byte from a run is rendered as text; only GET and HEAD are answered.
 *
 * @param storage The storage the runs live on.
 * @param options Token, base path, paging and following settings.
 * @returns The handler.
 * @throws {ValidationError} A bad option, naming it.
 *
 * @example A handler for Deno.serve, guarded by a token
 * ```ts
 * import { createMemoryStorage } from "../mod.ts";
 * import { createRunViewer } from "./mod.ts";
 *
 * const handler = createRunViewer(createMemoryStorage(), { token: "a-long-random-secret-value" });
 * const denied = await handler(new Request("http://127.0.0.1/"));
 * const allowed = await handler(new Request("http://127.0.0.1/", {
 *   headers: { authorization: "Bearer a-long-random-secret-value" },
 * }));
 * console.log(denied.status, allowed.status); // 401 200
 * ```
 */
export function createRunViewer(
  storage: RunStorage,
  options: RunViewerOptions = {},
): RunViewerHandler {
  const parsed = OptionsSchema.safeParse(options ?? {});
  if (!parsed.success) {
    throw new ValidationError(
      parsed.error.issues.map((issue) => ({
        path: issue.path.join(".") || "(root)",
        message: issue.message,
      })),
      "Invalid viewer options",
    );
  }
  const o = parsed.data;
  const token = o.token;
  const hosts = o.allowedHosts?.map((h) => h.toLowerCase()) ??
    (token === undefined ? ["localhost", "127.0.0.1", "[::1]"] : undefined);
  const ctx: ViewerContext = {
    storage,
    runsRootDir: o.runsRootDir,
    base: (o.basePath ?? "").replace(/\/$/, ""),
    appTitle: o.title ?? "Runs",
    pageSize: o.pageSize ?? 50,
    tailBytes: o.tailBytes ?? 128 * 1024,
    logPageBytes: o.logPageBytes ?? 256 * 1024,
    pollMs: o.pollMs ?? 250,
    staleAfterMs: o.staleAfterMs ?? 15_000,
    restoreCommand: o.restoreCommand ?? defaultRestoreCommand,
  };

  const notFound = (nonce: string, what = "Nothing here.") =>
    htmlResponse(
      404,
      page(
        { title: "Not found", appTitle: ctx.appTitle, home: `${ctx.base}/`, nonce },
        markup`
          <h1>Not found</h1>
          <p>${what}</p>
        `,
      ),
      nonce,
    );

  async function route(request: Request, url: URL, nonce: string): Promise<Response> {
    let path = url.pathname;
    if (ctx.base !== "") {
      if (path !== ctx.base && !path.startsWith(`${ctx.base}/`)) return notFound(nonce);
      path = path.slice(ctx.base.length) || "/";
    }
    if (path === "/" || path === "") {
      const listed = await listPage(ctx, url, nonce);
      return htmlResponse(listed.status, listed.body, nonce);
    }
    const parts = path.split("/").slice(1);
    if (parts[0] !== "runs" || parts.length < 3) return notFound(nonce);
    const taskId = decodeSegment(parts[1]);
    const runId = decodeSegment(parts[2]);
    if (taskId === undefined || runId === undefined) return notFound(nonce);
    const ref: RunRef = { taskId, runId, runsRootDir: ctx.runsRootDir };
    try {
      keysOf(ref);
    } catch (error) {
      if (error instanceof ValidationError) return notFound(nonce, "No such run.");
      throw error;
    }
    const rest = parts.slice(3);
    if (rest.length === 0 || (rest.length === 1 && rest[0] === "")) {
      return htmlResponse(200, await runPage(ctx, ref, url, nonce), nonce);
    }
    if (rest[0] === "logs" && CHANNELS.has(rest[1]) && rest.length <= 3) {
      const channel = rest[1] as StreamLogChannel;
      if (rest.length === 2) {
        return htmlResponse(200, await logPage(ctx, ref, channel, url, nonce), nonce);
      }
      if (rest[2] === "events") return await events(request, url, ref, channel, nonce);
      return notFound(nonce);
    }
    if (rest[0] === "output" && rest.length === 2 && rest[1] === "events") {
      return await outputEvents(request, url, ref, nonce);
    }
    if (rest[0] === "artifacts" && rest.length >= 2) {
      const name = rest.slice(1).map(decodeSegment);
      if (name.some((segment) => segment === undefined)) return notFound(nonce);
      const wanted = name.join("/");
      // Only a name the run lists: no key is ever built from a path the request made up.
      const run = await readRun(storage, ref);
      const artifact = run.artifacts.find((a) => a.name === wanted);
      const bytes = artifact && await storage.read(`${run.keys.artifactsDir}/${artifact.name}`);
      if (!bytes) return notFound(nonce, "No such artifact.");
      return new Response(bytes as Uint8Array<ArrayBuffer>, {
        headers: baseHeaders({
          "content-type": "application/octet-stream",
          "content-disposition": attachmentName(wanted),
          "content-security-policy": "sandbox; default-src 'none'",
          "content-length": String(bytes.byteLength),
        }),
      });
    }
    if (rest[0] === "checkpoints" && rest.length === 2 && /^[1-9]\d{0,8}\.patch$/.test(rest[1])) {
      const seq = Number(rest[1].slice(0, -".patch".length));
      const { patch } = await loadGitCheckpoint(storage, ref, seq);
      return new Response(patch as Uint8Array<ArrayBuffer>, {
        headers: baseHeaders({
          "content-type": "text/plain; charset=utf-8",
          "content-disposition": attachmentName(`${runId}-checkpoint-${seq}.patch`),
          "content-security-policy": "sandbox; default-src 'none'",
        }),
      });
    }
    return notFound(nonce);
  }

  async function events(
    request: Request,
    url: URL,
    ref: RunRef,
    channel: StreamLogChannel,
    nonce: string,
  ): Promise<Response> {
    // A reconnecting EventSource sends the last id it saw: the byte offset to resume from.
    const resume = request.headers.get("last-event-id") ?? url.searchParams.get("from") ?? "0";
    const from = Number(resume);
    if (!/^\d{1,15}$/.test(resume.trim()) || !Number.isSafeInteger(from)) {
      return badRequest("Bad offset\n");
    }
    if (await storage.read(keysOf(ref).meta) === undefined) return notFound(nonce, "No such run.");
    return eventStreamResponse(logEventStream(storage, ref, channel, {
      from,
      pollMs: ctx.pollMs,
      staleAfterMs: ctx.staleAfterMs,
      // No request.signal: runtimes cancel the body stream when the client goes away, and
      // Deno's signal also fires once a response completes.
    }));
  }

  async function outputEvents(
    request: Request,
    url: URL,
    ref: RunRef,
    nonce: string,
  ): Promise<Response> {
    // A reconnecting EventSource sends the last id it saw: the cursor to resume after.
    const resume = request.headers.get("last-event-id") ?? url.searchParams.get("from") ?? "";
    const from = resume === "" ? undefined : resume;
    if (from !== undefined && !(await isOutputCursor(storage, ref, from))) {
      return badRequest("Bad cursor\n");
    }
    if (await storage.read(keysOf(ref).meta) === undefined) return notFound(nonce, "No such run.");
    return eventStreamResponse(outputEventStream(storage, ref, {
      from,
      pollMs: ctx.pollMs,
      staleAfterMs: ctx.staleAfterMs,
    }));
  }

  return async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const nonce = newNonce();
    if (hosts !== undefined) {
      const host = (request.headers.get("host") ?? url.host).toLowerCase()
        .replace(/:\d+$/, "");
      if (!hosts.includes(host)) {
        return new Response("Misdirected request: this viewer does not answer for that host\n", {
          status: 421,
          headers: baseHeaders({ "content-type": "text/plain; charset=utf-8" }),
        });
      }
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("Read-only: GET and HEAD only\n", {
        status: 405,
        headers: baseHeaders({ allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }),
      });
    }
    if (token !== undefined) {
      const offered = url.searchParams.get("token");
      if (offered !== null) {
        if (!sameSecret(offered, token)) return unauthorized();
        url.searchParams.delete("token");
        // The token leaves the URL (history, logs, referrers) for a cookie the page cannot read.
        return new Response(null, {
          status: 303,
          headers: baseHeaders({
            location: url.pathname + url.search,
            "set-cookie": `${COOKIE}=${encodeURIComponent(token)}; Path=${
              ctx.base || "/"
            }; HttpOnly; SameSite=Strict${url.protocol === "https:" ? "; Secure" : ""}`,
          }),
        });
      }
      const header = request.headers.get("authorization") ?? "";
      const bearer = /^Bearer\s+(.+)$/i.exec(header)?.[1];
      const presented = bearer ?? cookieToken(request);
      if (presented === undefined || !sameSecret(presented, token)) return unauthorized();
    }
    try {
      return await route(request, url, nonce);
    } catch (error) {
      if (error instanceof NotFoundError) return notFound(nonce, "No such run or record.");
      if (error instanceof ValidationError) return notFound(nonce);
      // A storage failure: say so without its details (keys and endpoints stay server-side).
      (o.onError ?? console.error)(error);
      const code = error instanceof RunnerError ? error.code : "internal";
      return htmlResponse(
        502,
        page(
          { title: "Error", appTitle: ctx.appTitle, home: `${ctx.base}/`, nonce },
          markup`
            <h1>The runs could not be read</h1>
            <p>Error code: <code>${code}</code>. The server was told the details.</p>
          `,
        ),
        nonce,
      );
    }
  };
}
