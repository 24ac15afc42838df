// The web viewer's handler, called with Requests directly (Deno and Node): escaping, badges,
// SSE framing and Last-Event-ID resume (by byte offset per log, by cursor for both logs in print
// order), the token, paging, downloads, 404s.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createMemoryStorage } from "../storage/memory.ts";
import { runStep } from "../core/runner.ts";
import { readRunLogBytes } from "../core/read.ts";
import { readRunOutput } from "../core/output.ts";
import { ValidationError } from "../core/errors.ts";
import { createRunViewer } from "../viewer/mod.ts";
import { type AnsiLine, applyOps, createAnsiParser } from "../viewer/ansi.ts";
import { parseGitPatch } from "../viewer/diff.ts";
import { createS3Storage } from "../storage/s3.ts";
import { requireRgw } from "./s3/rgw_env.ts";
import { createBucket, deleteBucketRecursive, uniqueBucketName } from "./s3/bucket.ts";
import { baseRequest } from "./helpers.ts";
import { withTempDir } from "./git_helpers.ts";
import {
  HOSTILE_IMG,
  HOSTILE_SCRIPT,
  type LiveRun,
  MIXED_LINES,
  seedFailedRun,
  seedFinishedRun,
  seedGitRun,
  seedMixedRun,
  startLiveRun,
} from "./viewer_fixtures.ts";

const ORIGIN = "http://127.0.0.1:8080";
const get = (handler: (r: Request) => Promise<Response>, path: string, init?: RequestInit) =>
  handler(new Request(ORIGIN + path, init));

/** Reads an SSE body until it closes or `until` says stop; returns the parsed events. */
async function readEvents(
  response: Response,
  until: (events: SseEvent[]) => boolean = () => false,
  timeoutMs = 15_000,
): Promise<SseEvent[]> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const events: SseEvent[] = [];
  let buffer = "";
  const timer = setTimeout(() => reader.cancel(), timeoutMs);
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut: number;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event: SseEvent = { event: "message", data: "" };
        for (const line of block.split("\n")) {
          if (line.startsWith("id: ")) event.id = line.slice(4);
          else if (line.startsWith("event: ")) event.event = line.slice(7);
          else if (line.startsWith("data: ")) event.data += line.slice(6);
        }
        if (event.id !== undefined || event.data !== "") events.push(event);
      }
      if (until(events)) break;
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
  return events;
}

interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/** The text of `message` events' terminal operations, lines joined with `\n`. */
function textOf(events: SseEvent[]): string {
  let out = "";
  for (const event of events) {
    if (event.event !== "message") continue;
    for (const op of JSON.parse(event.data) as [string, { t: string }[]?][]) {
      if (op[0] === "n") out += "\n";
      if (op[0] === "t") out += op[1]!.map((s) => s.t).join("");
    }
  }
  return out;
}

/** Text as the pages escape it. */
const escaped = (text: string) =>
  text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&#39;");

/** The run page's combined pane: its `<pre>` attributes and each line's stream and markup text. */
function combinedPane(body: string): { attrs: string; lines: [string, string][] } {
  const pane = /<pre class="log" id="log-combined"([^>]*)>([\s\S]*?)<\/pre>/.exec(body);
  assert.ok(pane, "a combined pane");
  const lines = [...pane[2].matchAll(/<div class="line ch-(stdout|stderr)">(.*?)<\/div>/g)]
    .map((m): [string, string] => [m[1], m[2].replace(/<\/?span[^>]*>/g, "")]);
  return { attrs: pane[1], lines };
}

/** The combined stream's messages: id, stream, and the text of their terminal operations. */
function outputMessages(events: SseEvent[]): { id?: string; c: string; text: string }[] {
  return events.filter((e) => e.event === "message").map((e) => {
    const { c, ops } = JSON.parse(e.data) as { c: string; ops: [string, { t: string }[]?][] };
    let text = "";
    for (const op of ops) {
      if (op[0] === "n") text += "\n";
      if (op[0] === "t") text += op[1]!.map((s) => s.t).join("");
    }
    return { id: e.id, c, text };
  });
}

/** Messages as lines, each with its stream (messages hold whole lines in these tests). */
function linesOf(messages: { c: string; text: string }[]): string[] {
  return messages.flatMap((m) => m.text.split("\n").slice(0, -1).map((line) => `${m.c}: ${line}`));
}

describe("createRunViewer() handler", () => {
  const storage = createMemoryStorage();
  let live: LiveRun;
  before(async () => {
    await seedFinishedRun(storage);
    await seedFailedRun(storage);
    await withTempDir("viewer-git-", (root) => seedGitRun(storage, root));
    live = await startLiveRun(storage);
  });
  after(async () => {
    await live.finish();
  });

  it("lists every run as a link with its badge in words", async () => {
    const handler = createRunViewer(storage);
    const response = await get(handler, "/");
    assert.equal(response.status, 200);
    const body = await response.text();
    for (const [run, word] of [["ok-1", "finished"], ["fail-1", "failed"], ["live-1", "live"]]) {
      const row = new RegExp(`<tr data-run="demo/${run}">([\\s\\S]*?)</tr>`).exec(body)?.[1];
      assert.ok(row, `row of ${run}`);
      assert.match(row, new RegExp(`<a href="/runs/demo/${run}">${run}</a>`));
      assert.match(row, new RegExp(`class="badge badge-${word}"[^>]*>${word}</span>`));
    }
    // Live runs show: the page refreshes itself.
    assert.match(body, /<meta http-equiv="refresh" content="5">/);
  });

  it("says 'blocked' for a blocked run and 'stale' for one whose heartbeat stopped", async () => {
    const own = createMemoryStorage();
    await runStep(baseRequest({ taskId: "demo", runId: "blocked-1" }), {
      execute: () => ({ ok: false, outcome: "blocked", blocked: true, summary: "needs a human" }),
    }, { storage: own });
    const run = await startLiveRun(own, "quiet-1");
    try {
      await new Promise((r) => setTimeout(r, 20));
      // A heartbeat older than staleAfterMs: the viewer calls the run stale.
      const body = await (await get(createRunViewer(own, { staleAfterMs: 1 }), "/")).text();
      assert.match(body, /data-run="demo\/blocked-1">[\s\S]*?badge-blocked[^>]*>blocked</);
      assert.match(body, /data-run="demo\/quiet-1">[\s\S]*?badge-stale[^>]*>stale</);
    } finally {
      await run.finish();
    }
  });

  it("filters the list by task and status, and pages it with a cursor", async () => {
    const handler = createRunViewer(storage, { pageSize: 1 });
    const failed = await (await get(handler, "/?task=demo&status=failed")).text();
    assert.match(failed, /data-run="demo\/fail-1"/);
    assert.doesNotMatch(failed, /data-run="demo\/ok-1"/);
    const first = await (await get(handler, "/?task=demo")).text();
    assert.match(first, /data-run="demo\/fail-1"/);
    const next = /<a rel="next" href="([^"]+)"/.exec(first)?.[1];
    assert.ok(next, "a next page link");
    const second = await (await get(handler, next.replaceAll("&amp;", "&"))).text();
    assert.match(second, /data-run="demo\/live-1"/);
    assert.doesNotMatch(second, /data-run="demo\/fail-1"/);
    const bad = await get(handler, "/?task=..");
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /role="alert"/);
  });

  it("shows a log containing markup as text, under a CSP that runs only its own script", async () => {
    const response = await get(createRunViewer(storage), "/runs/demo/ok-1");
    assert.equal(response.status, 200);
    const body = await response.text();
    assert.ok(body.includes("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert.ok(body.includes("&lt;img src=x onerror=&quot;alert(2)&quot;&gt;"));
    assert.ok(!body.includes(HOSTILE_SCRIPT) && !body.includes(HOSTILE_IMG));
    const scripts = body.match(/<script[^>]*>/g) ?? [];
    assert.equal(scripts.length, 1);
    const nonce = /<script nonce="([^"]+)">/.exec(body)?.[1];
    const csp = response.headers.get("content-security-policy") ?? "";
    assert.ok(csp.includes(`script-src 'nonce-${nonce}'`), csp);
    assert.ok(csp.includes("default-src 'none'"));
    assert.equal(response.headers.get("x-content-type-options"), "nosniff");
  });

  it("renders ANSI colours as styled spans and collapses \\r progress lines", async () => {
    const body = await (await get(createRunViewer(storage), "/runs/demo/ok-1")).text();
    assert.match(body, /<span style="color:#cd3131">red error text<\/span>/);
    assert.match(body, /<span style="color:#0dbc79;font-weight:bold">bold green<\/span>/);
    assert.ok(!body.includes("\x1b"));
    assert.match(body, /<div class="line"><span>progress 100%<\/span><\/div>/);
    assert.doesNotMatch(body, /progress 10%/);
  });

  it("shows the header, the timeline, the artifacts and a git checkpoint's diff", async () => {
    const handler = createRunViewer(storage);
    const ok = await (await get(handler, "/runs/demo/ok-1")).text();
    assert.match(ok, /<span id="status">completed<\/span>/);
    assert.match(ok, /<dd id="exit-code">0<\/dd>/);
    assert.match(ok, /data-type="worker_started"/);
    assert.match(ok, /data-type="step_completed"/);
    assert.match(ok, /href="\/runs\/demo\/ok-1\/artifacts\/report.txt">report.txt<\/a>/);
    const git = await (await get(handler, "/runs/gitdemo/git-1")).text();
    assert.match(
      git,
      /<span class="path">src\/app.ts<\/span> <span class="muted">modified<\/span>/,
    );
    assert.match(git, /<span class="path">docs\/&lt;b&gt;new&lt;\/b&gt;.md<\/span>/);
    assert.match(git, /<div class="del">export const answer = 41;<\/div>/);
    assert.match(git, /<div class="add">export const answer = 42;<\/div>/);
    assert.match(git, /runs restore gitdemo\/git-1 --seq \d+ --worktree DIR/);
    const patch = /href="(\/runs\/gitdemo\/git-1\/checkpoints\/\d+\.patch)"/.exec(git)?.[1];
    const download = await get(handler, patch!);
    assert.equal(download.status, 200);
    assert.match(await download.text(), /^diff --git /);
  });

  it("downloads an artifact as an attachment, and only one the run lists", async () => {
    const handler = createRunViewer(storage);
    const response = await get(handler, "/runs/demo/ok-1/artifacts/report.txt");
    assert.equal(response.status, 200);
    assert.equal(await response.text(), "report body\n");
    assert.match(response.headers.get("content-disposition") ?? "", /^attachment;/);
    assert.equal(response.headers.get("content-type"), "application/octet-stream");
    for (
      const path of ["/runs/demo/ok-1/artifacts/..%2Fmeta.json", "/runs/demo/ok-1/artifacts/nope"]
    ) {
      assert.equal((await get(handler, path)).status, 404, path);
    }
  });

  it("answers 404 for unknown runs, bad ids and routes, 405 for writes", async () => {
    const handler = createRunViewer(storage);
    for (
      const path of [
        "/runs/demo/nope",
        "/runs/..%2F/x",
        "/runs/demo",
        "/elsewhere",
        "/runs/demo/ok-1/logs/worker",
      ]
    ) {
      const response = await get(handler, path);
      assert.equal(response.status, 404, path);
      await response.body?.cancel();
    }
    const post = await get(handler, "/", { method: "POST" });
    assert.equal(post.status, 405);
  });

  it("follows a finished log over SSE with byte offsets as ids, and resumes from Last-Event-ID", async () => {
    const handler = createRunViewer(storage);
    const ref = { taskId: "demo", runId: "ok-1" };
    const total = (await readRunLogBytes(storage, ref, "stdout")).byteLength;
    const response = await get(handler, "/runs/demo/ok-1/logs/stdout/events?from=0");
    assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
    const events = await readEvents(response);
    const messages = events.filter((e) => e.event === "message");
    assert.equal(messages.at(-1)!.id, String(total));
    assert.match(textOf(events), /red error text/);
    const end = events.at(-1)!;
    assert.equal(end.event, "end");
    assert.deepEqual(JSON.parse(end.data).badge, "finished");

    // Resuming at the offset of "progress" sends only what follows it.
    const bytes = await readRunLogBytes(storage, ref, "stdout");
    const at = new TextDecoder().decode(bytes).indexOf("<script>");
    const resumed = await readEvents(
      await get(handler, "/runs/demo/ok-1/logs/stdout/events?from=0", {
        headers: { "last-event-id": String(at) },
      }),
    );
    assert.equal(textOf(resumed), `${HOSTILE_SCRIPT}\n${HOSTILE_IMG}\n`);
    assert.equal((await get(handler, "/runs/demo/ok-1/logs/stdout/events?from=x")).status, 400);
  });

  it("streams a live run's new lines, then an end event when it finishes", async () => {
    const storage2 = createMemoryStorage();
    const run = await startLiveRun(storage2, "live-2");
    const handler = createRunViewer(storage2, { pollMs: 50 });
    const response = await get(handler, "/runs/demo/live-2/logs/stdout/events?from=0");
    const printed = run.print("\x1b[33mprinted later\x1b[0m\n").then(() =>
      new Promise((r) => setTimeout(r, 300))
    ).then(() => run.finish());
    const events = await readEvents(response, (e) => e.some((x) => x.event === "end"));
    await printed;
    assert.equal(textOf(events), "live run started\nprinted later\n");
    const styled = events.some((e) => e.data.includes('"s":"color:#e5e510"'));
    assert.ok(styled, "the colour travels as a style");
    assert.equal(JSON.parse(events.at(-1)!.data).status, "completed");
  });

  it("lists both streams of a finished run in print order, each line marked, markup as text", async () => {
    const own = createMemoryStorage();
    await seedMixedRun(own);
    const body = await (await get(createRunViewer(own), "/runs/demo/mixed-1")).text();
    const { attrs, lines } = combinedPane(body);
    assert.deepEqual(lines, MIXED_LINES.map(([channel, text]) => [channel, escaped(text)]));
    assert.ok(!body.includes(HOSTILE_SCRIPT), "no script tag from a log");
    assert.equal((body.match(/<script[^>]*>/g) ?? []).length, 1);
    // The cursor after the last item; a finished run is not followed.
    assert.match(attrs, /data-cursor="[\d.]+"/);
    assert.doesNotMatch(attrs, /data-events/);
    assert.doesNotMatch(body, /Showing the last [^<]* of the output/);
  });

  it("keeps each stream's open line its own: a partial stdout line is not glued to stderr", async () => {
    const own = createMemoryStorage();
    await runStep(baseRequest({ taskId: "demo", runId: "partial-1" }), {
      async execute(_run, context) {
        await context.stdout("compiling... ");
        await context.stderr("warning: slow disk\n");
        await context.stdout("done\n");
        await context.stderr("\x1b[31mno newline at the end");
        return { ok: true, outcome: "completed", summary: "ok" };
      },
    }, { storage: own });
    const body = await (await get(createRunViewer(own), "/runs/demo/partial-1")).text();
    const { attrs, lines } = combinedPane(body);
    assert.deepEqual(lines, [
      ["stdout", "compiling... done"],
      ["stderr", "warning: slow disk"],
      ["stderr", "no newline at the end"],
    ]);
    assert.match(attrs, /data-open-stdout="0" data-open-stderr="1"/);
  });

  it("follows both streams of a live run in print order over SSE, cursors as ids, and resumes after Last-Event-ID", async () => {
    const own = createMemoryStorage();
    const run = await startLiveRun(own, "live-3");
    const handler = createRunViewer(own, { pollMs: 50 });
    try {
      const response = await get(handler, "/runs/demo/live-3/output/events");
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
      const printing = (async () => {
        for (let i = 1; i <= 3; i++) {
          await run.print(`out ${i}\n`);
          await run.printErr(`err ${i}\n`);
          await new Promise((r) => setTimeout(r, 120));
        }
      })();
      const live = outputMessages(
        await readEvents(response, (e) => linesOf(outputMessages(e)).includes("stderr: err 3")),
      );
      await printing;
      const expected = [
        "stdout: live run started",
        ...[1, 2, 3].flatMap((i) => [`stdout: out ${i}`, `stderr: err ${i}`]),
      ];
      assert.deepEqual(linesOf(live), expected);
      const ids = live.map((m) => m.id);
      assert.ok(ids.every((id) => id !== undefined && /^[\d.]+$/.test(id)), JSON.stringify(ids));
      assert.equal(new Set(ids).size, ids.length, "each item its own cursor");
      await run.finish();

      // Resume after the item that printed "err 1": the header wins over a stale `from`.
      const at = live.findIndex((m) => m.text === "err 1\n");
      assert.ok(at > 0);
      const resumed = await readEvents(
        await get(handler, `/runs/demo/live-3/output/events?from=${live[0].id}`, {
          headers: { "last-event-id": live[at].id! },
        }),
      );
      const after = outputMessages(resumed);
      assert.deepEqual(linesOf(after), expected.slice(expected.indexOf("stderr: err 1") + 1));
      assert.deepEqual(after.map((m) => m.id), ids.slice(at + 1));
      const end = resumed.at(-1)!;
      assert.equal(end.event, "end");
      assert.equal(JSON.parse(end.data).status, "completed");
      assert.equal(JSON.parse(end.data).cursor, ids.at(-1));
      // The page of the finished run carries the cursor after its last item: nothing follows it.
      const page = await (await get(handler, "/runs/demo/live-3")).text();
      const cursor = /data-cursor="([\d.]+)"/.exec(combinedPane(page).attrs)?.[1];
      const rest = await readEvents(
        await get(handler, `/runs/demo/live-3/output/events?from=${cursor}`),
      );
      assert.deepEqual(rest.map((e) => e.event), ["end"]);
    } finally {
      await run.finish();
    }
  });

  it("ends the combined stream of a run whose writer stopped with a stale event at its cursor", async () => {
    const own = createMemoryStorage();
    const run = await startLiveRun(own, "quiet-2");
    try {
      // Once its first line is stored (the runner flushes every second or so).
      const stored = async () => {
        for await (const _ of readRunOutput(own, { taskId: "demo", runId: "quiet-2" })) return true;
        return false;
      };
      while (!(await stored())) await new Promise((r) => setTimeout(r, 50));
      // A heartbeat older than staleAfterMs: the writer counts as dead.
      const handler = createRunViewer(own, { staleAfterMs: 1, pollMs: 50 });
      const events = await readEvents(await get(handler, "/runs/demo/quiet-2/output/events"));
      const last = events.at(-1)!;
      assert.equal(last.event, "stale");
      const sent = outputMessages(events);
      assert.deepEqual(linesOf(sent), ["stdout: live run started"]);
      assert.equal(JSON.parse(last.data).cursor, sent.at(-1)!.id);
    } finally {
      await run.finish();
    }
  });

  it("resumes a stream cut mid-character with the whole character, once", async () => {
    const own = createMemoryStorage();
    const euro = new TextEncoder().encode("€\n"); // e2 82 ac 0a
    await runStep(baseRequest({ taskId: "demo", runId: "utf8-1" }), {
      async execute(_run, context) {
        await context.stdout(euro.subarray(0, 2));
        await context.stderr("between\n");
        await context.stdout(euro.subarray(2));
        return { ok: true, outcome: "completed", summary: "ok" };
      },
    }, { storage: own });
    const handler = createRunViewer(own);
    const all = outputMessages(
      await readEvents(await get(handler, "/runs/demo/utf8-1/output/events")),
    );
    assert.deepEqual(linesOf(all), ["stderr: between", "stdout: €"]);
    const resumed = outputMessages(
      await readEvents(
        await get(handler, `/runs/demo/utf8-1/output/events?from=${all[0].id}`),
      ),
    );
    assert.deepEqual(linesOf(resumed), ["stderr: between", "stdout: €"]);
    const body = await (await get(handler, "/runs/demo/utf8-1")).text();
    assert.deepEqual(combinedPane(body).lines, [["stderr", "between"], ["stdout", "€"]]);
  });

  it("answers 400 for a bad cursor and 404 for a run that does not exist", async () => {
    const own = createMemoryStorage();
    await seedMixedRun(own);
    const handler = createRunViewer(own);
    for (
      const [query, header] of [
        ["?from=x", undefined],
        ["?from=1.2.3", undefined],
        ["?from=1.2.3.4.5", undefined],
        ["?from=12345678901234567.0.0.0", undefined],
        ["", "../../meta.json"],
        ["?from=0.0.0.0", "-1.0.0.0"],
      ] as const
    ) {
      const response = await get(handler, `/runs/demo/mixed-1/output/events${query}`, {
        headers: header === undefined ? {} : { "last-event-id": header },
      });
      assert.equal(response.status, 400, `${query} ${header}`);
      assert.match(await response.text(), /^Bad cursor/);
    }
    const missing = await get(handler, "/runs/demo/nope/output/events");
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    const bare = await get(handler, "/runs/demo/mixed-1/output");
    assert.equal(bare.status, 404);
    await bare.body?.cancel();
  });

  it("tails both streams of a large log to tailBytes, from a whole line, linking the paged logs", async () => {
    const own = createMemoryStorage();
    const line = (stream: string, i: number) =>
      `${stream} ${String(i).padStart(5, "0")} ${"y".repeat(20)}\n`;
    await runStep(baseRequest({ taskId: "big", runId: "mixed-big" }), {
      async execute(_run, context) {
        // One piece far larger than the tail (it is stored as 1 MiB index entries), then turns.
        let text = "";
        for (let i = 0; i < 40_000; i++) text += line("o", i);
        await context.stdout(text);
        for (let i = 0; i < 50; i++) {
          await context.stdout(line("o", 40_000 + i));
          await context.stderr(line("e", i));
        }
        return { ok: true, outcome: "completed", summary: "loud" };
      },
    }, { storage: own });
    const handler = createRunViewer(own, { tailBytes: 1024 });
    const body = await (await get(handler, "/runs/big/mixed-big")).text();
    const { lines } = combinedPane(body);
    const shown = lines.reduce((sum, [, text]) => sum + text.length + 1, 0);
    assert.ok(shown <= 1024 && shown > 900, `${shown} bytes shown`);
    assert.deepEqual(lines.at(-1), ["stderr", line("e", 49).trimEnd()]);
    assert.deepEqual(lines.at(-2), ["stdout", line("o", 40_049).trimEnd()]);
    // Whole lines only, alternating as printed.
    for (const [stream, text] of lines) {
      assert.match(text, new RegExp(`^${stream === "stdout" ? "o" : "e"} \\d{5} y{20}$`));
    }
    for (let i = 1; i < lines.length; i++) assert.notEqual(lines[i][0], lines[i - 1][0]);
    assert.match(
      body,
      new RegExp(`Showing the last ${shown} B of the output \\(1\\.\\d MiB in all\\)`),
    );
    assert.match(body, /<a href="\/runs\/big\/mixed-big\/logs\/stdout\?offset=0">stdout<\/a>/);
    assert.match(body, /<a href="\/runs\/big\/mixed-big\/logs\/stderr\?offset=0">stderr<\/a>/);
  });

  it("with a token: 401 without it, bearer or cookie with it, and the token never in a page", async () => {
    const token = "s3cret-token-0123456789";
    const handler = createRunViewer(storage, { token });
    const denied = await get(handler, "/");
    assert.equal(denied.status, 401);
    assert.equal(
      (await get(handler, "/", { headers: { authorization: "Bearer nope-nope-nope-nope" } }))
        .status,
      401,
    );
    const bearer = await get(handler, "/", { headers: { authorization: `Bearer ${token}` } });
    assert.equal(bearer.status, 200);
    assert.ok(!(await bearer.text()).includes(token));
    const login = await get(handler, `/runs/demo/ok-1?token=${token}`);
    assert.equal(login.status, 303);
    assert.equal(login.headers.get("location"), "/runs/demo/ok-1");
    const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0];
    assert.match(login.headers.get("set-cookie") ?? "", /HttpOnly; SameSite=Strict/);
    const page = await get(handler, "/runs/demo/ok-1", { headers: { cookie } });
    assert.equal(page.status, 200);
    assert.ok(!(await page.text()).includes(token));
    assert.equal((await get(handler, "/?token=wrong")).status, 401);
  });

  it("tails a large log on the run page and pages through the whole of it", async () => {
    const storage3 = createMemoryStorage();
    const line = (i: number) => `line ${String(i).padStart(6, "0")} ${"x".repeat(40)}\n`;
    await runStep(baseRequest({ taskId: "big", runId: "big-1" }), {
      async execute(_run, context) {
        let text = "";
        for (let i = 0; i < 20_000; i++) text += line(i);
        await context.stdout(text);
        return { ok: true, outcome: "completed", summary: "loud" };
      },
    }, { storage: storage3 });
    const handler = createRunViewer(storage3, { tailBytes: 64 * 1024, logPageBytes: 64 * 1024 });
    const body = await (await get(handler, "/runs/big/big-1")).text();
    // Two tails of the 1 MB log, stdout's and both streams' (each 64 KiB of text and its
    // markup), not the log.
    assert.ok(body.length < 320 * 1024, `run page is ${body.length} bytes`);
    const combined = combinedPane(body).lines.reduce((sum, [, text]) => sum + text.length + 1, 0);
    assert.ok(combined <= 64 * 1024, `the combined pane shows ${combined} bytes`);
    assert.ok(body.includes("line 019999"));
    assert.ok(!body.includes("line 000000"));
    assert.match(body, /Showing the last 64\.0 KiB of/);
    const first = await (await get(handler, "/runs/big/big-1/logs/stdout?offset=0")).text();
    assert.ok(first.includes("line 000000"));
    assert.match(first, /rel="next" href="\/runs\/big\/big-1\/logs\/stdout\?offset=65536"/);
  });

  it("refuses bad options, naming them", () => {
    assert.throws(
      () => createRunViewer(storage, { token: "short" }),
      (error) => error instanceof ValidationError && error.issues[0].path === "token",
    );
  });

  it("answers only loopback host names without a token (no DNS rebinding), any with one", async () => {
    const open = createRunViewer(storage);
    for (const origin of ["http://localhost:8080", "http://127.0.0.1", "http://[::1]:9"]) {
      assert.equal((await open(new Request(`${origin}/`))).status, 200, origin);
    }
    assert.equal((await open(new Request("http://attacker.example/"))).status, 421);
    const listed = createRunViewer(storage, { allowedHosts: ["runs.internal"] });
    assert.equal((await listed(new Request("http://runs.internal/"))).status, 200);
    const token = "another-token-0123456789";
    const guarded = createRunViewer(storage, { token });
    const response = await guarded(
      new Request("http://runs.example/", { headers: { authorization: `Bearer ${token}` } }),
    );
    assert.equal(response.status, 200);
  });
});

describe("createRunViewer() on S3 (Ceph RGW)", () => {
  it("lists a live run, tails it, and streams it from its segments to the end", async (t) => {
    const env = requireRgw(t);
    if (env === undefined) return;
    const bucket = uniqueBucketName("viewer");
    await createBucket(env, bucket);
    try {
      const storage = createS3Storage({ ...env, bucket });
      const run = await startLiveRun(storage, "s3-live");
      const handler = createRunViewer(storage, { pollMs: 100 });
      const list = await (await get(handler, "/")).text();
      assert.match(list, /data-run="demo\/s3-live">[\s\S]*?badge-live[^>]*>live</);
      const response = await get(handler, "/runs/demo/s3-live/logs/stdout/events?from=0");
      const printed = run.print("on s3\n").then(() => new Promise((r) => setTimeout(r, 1500)))
        .then(() => run.finish());
      const events = await readEvents(response, (e) => e.some((x) => x.event === "end"), 30_000);
      await printed;
      assert.equal(textOf(events), "live run started\non s3\n");
      assert.equal(events.filter((e) => e.event === "message").at(-1)!.id, "23");
      const page = await (await get(handler, "/runs/demo/s3-live")).text();
      assert.match(page, /<span>on s3<\/span>/);
    } finally {
      await deleteBucketRecursive(env, bucket);
    }
  });
});

describe("viewer ANSI terminal model", () => {
  const render = (...chunks: string[]) => {
    const parser = createAnsiParser();
    const lines: AnsiLine[] = [];
    const state = { open: false, pendingReturn: false };
    for (const chunk of chunks) applyOps(lines, parser.push(chunk), state);
    return lines;
  };

  it("keeps an escape sequence cut between chunks, and styles across them", () => {
    const lines = render("a \x1b[3", "1mred", " still\x1b[0m plain\n");
    assert.deepEqual(lines, [[{ t: "a " }, { t: "red still", s: "color:#cd3131" }, {
      t: " plain",
    }]]);
  });

  it("collapses \r progress, keeps \r\n as a newline, renders 256 and true colours", () => {
    assert.deepEqual(render("10%\r50%\r", "100%\r\ndone\n"), [[{ t: "100%" }], [{ t: "done" }]]);
    assert.deepEqual(render("\x1b[38;5;196mx\x1b[48;2;1;2;3my\n"), [[
      { t: "x", s: "color:rgb(255,0,0)" },
      { t: "y", s: "color:rgb(255,0,0);background-color:rgb(1,2,3)" },
    ]]);
  });

  it("drops other escapes and controls; an OSC that never ends does not swallow the log", () => {
    assert.deepEqual(render("\x1b]0;title\x07a\x1b[2Kb\x00c\n"), [[{ t: "abc" }]]);
    const lines = render("\x1b]8;;" + "x".repeat(5000), "\nafter\n");
    assert.ok(lines.some((line) => line.some((seg) => seg.t === "after")));
  });
});

describe("viewer git patch parser", () => {
  it("lists files with their status and counts, and keeps '+++' content lines as content", () => {
    const patch = [
      "diff --git a/src/app.ts b/src/app.ts",
      "index 1..2 100644",
      "--- a/src/app.ts",
      "+++ b/src/app.ts",
      "@@ -1,2 +1,2 @@",
      "-old",
      "+++ new, starting with pluses",
      " same",
      'diff --git "a/caf\\303\\251.txt" "b/caf\\303\\251.txt"',
      "new file mode 100644",
      "--- /dev/null",
      '+++ "b/caf\\303\\251.txt"',
      "@@ -0,0 +1 @@",
      "+hello",
      "diff --git a/logo.png b/logo.png",
      "GIT binary patch",
      "literal 3",
      "abc",
      "",
    ].join("\n");
    const { files } = parseGitPatch(patch);
    assert.deepEqual(
      files.map((f) => [f.newPath, f.status, f.added, f.removed]),
      [["src/app.ts", "modified", 1, 1], ["café.txt", "added", 1, 0], ["logo.png", "binary", 0, 0]],
    );
    assert.deepEqual(files[0].lines.find((l) => l.kind === "add"), {
      kind: "add",
      text: "++ new, starting with pluses",
    });
  });
});
