/**
 * The read-only web viewer of `@baa-conductor/runner`: a standard
 * `(request: Request) => Promise<Response>` handler over any storage, so `Deno.serve(handler)`,
 * a Deno Deploy or Workers function, or Node's HTTP server (through a few lines) can mount it.
 *
 * Pages: the runs list (filters by task and status, paging, refreshes itself while live runs
 * show), a run's page (header, lifecycle timeline, stdout/stderr tails with ANSI colours and
 * `\r` progress lines rendered as a terminal shows them, followed live over server-sent events
 * whose `id:` is the byte offset; both streams' tail interleaved as printed, followed live with
 * each item's cursor as the `id:`; checkpoints with a git checkpoint's diff and its restore
 * command, downloadable artifacts), and each log page by page.
 *
 * Safety: every byte from a run is data, never markup (escaped on the server, inserted with
 * `textContent` by the page's script); a Content-Security-Policy lets only the page's own
 * nonce'd script run; requests other than GET and HEAD are refused; an optional bearer token
 * guards a viewer reachable beyond this machine. Importing the runner's `mod.ts` loads none of
 * this.
 *
 * @example Serve the runs under ./runs on 127.0.0.1 with Deno
 * ```ts ignore
 * import { createFsStorage } from "@baa-conductor/runner";
 * import { createRunViewer } from "@baa-conductor/runner/viewer";
 *
 * const handler = createRunViewer(createFsStorage({ root: "." }));
 * Deno.serve({ hostname: "127.0.0.1", port: 8080 }, handler);
 * ```
 *
 * @example Call the handler directly (as a test would)
 * ```ts
 * import { createMemoryStorage } from "../mod.ts";
 * import { createRunViewer } from "./mod.ts";
 *
 * const handler = createRunViewer(createMemoryStorage());
 * const response = await handler(new Request("http://127.0.0.1/"));
 * console.log(response.status, response.headers.get("content-type")); // 200 "text/html; charset=utf-8"
 * ```
 *
 * @module
 */

export { createRunViewer } from "./handler.ts";
export type { RunViewerHandler, RunViewerOptions } from "./handler.ts";
export type { RestoreCommandInput } from "./context.ts";
