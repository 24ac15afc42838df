/// <reference lib="dom" />
// The web viewer in a real browser: headless Chromium (Debian's package, installed by
// scripts/chromium.sh, whose path scripts/test.sh exports as CHROMIUM_PATH) driven by
// puppeteer-core, against a filesystem storage holding a finished, a failed, a live and a git run.
//
// Deno only: the handler is served with Deno.serve. Under Node these tests are skipped (the
// handler itself is tested under both in viewer_test.ts). Without Chromium they are skipped
// loudly, and fail under CI=true. Screenshots land in .cache/screenshots/.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "puppeteer-core";
import { createFsStorage } from "../storage/fs.ts";
import { createRunViewer } from "../viewer/mod.ts";
import {
  type LiveRun,
  seedFailedRun,
  seedFinishedRun,
  seedGitRun,
  startLiveRun,
} from "./viewer_fixtures.ts";

// deno-lint-ignore no-explicit-any
const Deno = (globalThis as any).Deno;
const SCREENSHOTS = resolve(import.meta.dirname ?? ".", "../.cache/screenshots");

function chromiumPath(): string | undefined {
  for (const candidate of [process.env.CHROMIUM_PATH, "/usr/bin/chromium"]) {
    if (candidate && existsSync(candidate)) return candidate;
  }
  return undefined;
}

const browserPath = chromiumPath();
const skipReason = !Deno
  ? "the browser tests run under Deno only (they serve the handler with Deno.serve); viewer_test.ts covers the handler under Node"
  : browserPath === undefined && process.env.CI !== "true"
  ? "Chromium is not installed: run scripts/chromium.sh (apt-get install -y chromium) or set CHROMIUM_PATH"
  : undefined;

if (skipReason !== undefined && Deno) {
  const banner = `\n${"#".repeat(72)}\n## Web viewer browser tests SKIPPED: ${skipReason}\n${
    "#".repeat(72)
  }\n`;
  console.error(banner);
}

describe("web viewer in headless Chromium", { skip: skipReason }, () => {
  let root: string;
  let server: { shutdown(): Promise<void>; addr: { port: number } };
  let browser: Browser;
  let origin: string;
  let live: LiveRun | undefined;
  let reconnecting: LiveRun | undefined;
  let mixed: LiveRun | undefined;
  const dialogs: string[] = [];
  /** Last-Event-ID headers the event streams of `demo/reconnect-1` were opened with. */
  const resumedFrom: (string | null)[] = [];

  before(async () => {
    if (process.env.CI === "true" && browserPath === undefined) {
      throw new Error("CI=true: Chromium is required for the viewer's browser tests");
    }
    root = await realpath(await mkdtemp(join(tmpdir(), "viewer-browser-")));
    const storage = createFsStorage({ root: join(root, "store") });
    await seedFinishedRun(storage);
    await seedFailedRun(storage);
    await seedGitRun(storage, join(root, "git"));
    live = await startLiveRun(storage);
    reconnecting = await startLiveRun(storage, "reconnect-1");
    mixed = await startLiveRun(storage, "mixed-live-1");
    const viewer = createRunViewer(storage, { pollMs: 200 });
    // The first event stream of demo/reconnect-1 is cut after its first event, as a dropped
    // connection would be: the browser must reconnect and resume from the offset it saw.
    let cut = false;
    const handler = async (request: Request) => {
      const response = await viewer(request);
      if (!new URL(request.url).pathname.startsWith("/runs/demo/reconnect-1/logs/stdout/events")) {
        return response;
      }
      resumedFrom.push(request.headers.get("last-event-id"));
      if (cut) return response;
      cut = true;
      const reader = response.body!.getReader();
      let text = "";
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const { value, done } = await reader.read();
          if (done) return controller.close();
          controller.enqueue(value);
          text += new TextDecoder().decode(value);
          if (/\nid: \d+/.test(`\n${text}`)) {
            await reader.cancel();
            controller.close();
          }
        },
      });
      return new Response(body, { headers: response.headers });
    };
    server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
    origin = `http://127.0.0.1:${server.addr.port}`;
    const { default: puppeteer } = await import("puppeteer-core");
    browser = await puppeteer.launch({
      executablePath: browserPath,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    });
    await mkdir(SCREENSHOTS, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    await live?.finish();
    await reconnecting?.finish();
    await mixed?.finish();
    await server?.shutdown();
    if (root) await rm(root, { recursive: true, force: true });
  });

  async function open(path: string): Promise<Page> {
    const page = await browser.newPage();
    page.on("dialog", async (dialog) => {
      dialogs.push(dialog.message());
      await dialog.dismiss();
    });
    await page.setViewport({ width: 1200, height: 900 });
    await page.goto(origin + path, { waitUntil: "domcontentloaded" });
    return page;
  }

  async function screenshot(page: Page, name: string): Promise<void> {
    const path = join(SCREENSHOTS, `${name}.png`) as `${string}.png`;
    await page.screenshot({ path, fullPage: true });
    console.log(`screenshot: ${path}`);
  }

  it("the list shows the finished, the failed and the live run with their badges", async () => {
    const page = await open("/");
    const rows = await page.$$eval("tr[data-run]", (trs) =>
      trs.map((tr) => ({
        run: tr.getAttribute("data-run"),
        badge: tr.querySelector(".badge")?.textContent,
        link: tr.querySelector("td a")?.getAttribute("href"),
      })));
    const byRun = Object.fromEntries(rows.map((row) => [row.run, row]));
    assert.equal(byRun["demo/ok-1"]?.badge, "finished");
    assert.equal(byRun["demo/fail-1"]?.badge, "failed");
    assert.equal(byRun["demo/live-1"]?.badge, "live");
    assert.equal(byRun["demo/ok-1"]?.link, "/runs/demo/ok-1");
    await screenshot(page, "runs-list");
    await page.close();
  });

  it("renders ANSI colours as styled spans, and hostile markup in a log runs nothing", async () => {
    const page = await open("/runs/demo/ok-1");
    await page.waitForSelector("#log-stdout .line");
    const red = await page.$$eval("#log-stdout span", (spans) => {
      const span = spans.find((s) => s.textContent === "red error text");
      return span ? getComputedStyle(span).color : undefined;
    });
    assert.equal(red, "rgb(205, 49, 49)");
    const text = await page.$eval("#log-stdout", (pre) => pre.textContent);
    assert.ok(text?.includes("<script>alert(1)</script>"), "the script tag shows as text");
    assert.ok(text?.includes('<img src=x onerror="alert(2)">'), "the img tag shows as text");
    const injected = await page.$$eval(
      "main script, main img, #log-combined img",
      (els) => els.length,
    );
    assert.equal(injected, 0);
    // Give an onerror handler time to fire if there were one.
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(dialogs, []);
    await screenshot(page, "run-finished");
    await page.close();
  });

  it("the live run's page shows a line printed after it loaded, then 'finished'", async () => {
    const page = await open("/runs/demo/live-1");
    await page.waitForFunction(() =>
      document.querySelector("#log-stdout")?.textContent?.includes("live run started")
    );
    assert.equal(await page.$eval("#liveness", (el) => el.textContent), "live");
    const line = `printed after load ${Date.now()}`;
    const printedAt = Date.now();
    await live!.print(`\x1b[36m${line}\x1b[0m\n`);
    await page.waitForFunction(
      (wanted: string) => document.querySelector("#log-stdout")?.textContent?.includes(wanted),
      { timeout: 10_000, polling: 50 },
      line,
    );
    const shownAfterMs = Date.now() - printedAt;
    console.log(`line printed -> shown in the browser: ${shownAfterMs} ms`);
    assert.ok(shownAfterMs < 3_000, `shown after ${shownAfterMs} ms`);
    await screenshot(page, "run-live");
    const finishing = live!.finish();
    live = undefined;
    await finishing;
    await page.waitForFunction(
      () => document.querySelector("#liveness")?.textContent === "finished",
      { timeout: 10_000 },
    );
    assert.equal(await page.$eval("#status", (el) => el.textContent), "completed");
    await screenshot(page, "run-live-finished");
    await page.close();
  });

  it("the combined tab shows both streams of a live run in print order, stderr marked, then 'finished'", async () => {
    const page = await open("/runs/demo/mixed-live-1");
    await page.click('[data-tab="combined"]');
    await page.waitForFunction(() =>
      document.querySelector("#log-combined")?.textContent?.includes("live run started")
    );
    assert.equal(
      await page.$eval("#log-combined", (el) => (el.closest(".pane") as HTMLElement).hidden),
      false,
    );
    const combinedLines = () =>
      page.$$eval("#log-combined .line", (els) =>
        els.map((el) => [
          el.classList.contains("ch-stderr") ? "stderr" : "stdout",
          el.textContent ?? "",
        ]));
    // Printed after the page loaded, in turns and spread over the runner's flushes; a stdout line
    // left open while stderr prints goes on where it started.
    const hostile = '<img src=x onerror="alert(3)">';
    await mixed!.print("out 1\n");
    await mixed!.printErr("err 1\n");
    await new Promise((r) => setTimeout(r, 300));
    await mixed!.print("compiling... ");
    await mixed!.printErr(`err 2 ${hostile}\n`);
    await new Promise((r) => setTimeout(r, 300));
    await mixed!.print("done\n");
    await mixed!.printErr("\x1b[33merr 3\x1b[0m\n");
    await mixed!.print("out 3\n");
    await page.waitForFunction(
      () => document.querySelector("#log-combined")?.textContent?.includes("out 3"),
      { timeout: 10_000, polling: 50 },
    );
    assert.deepEqual(await combinedLines(), [
      ["stdout", "live run started"],
      ["stdout", "out 1"],
      ["stderr", "err 1"],
      ["stdout", "compiling... done"],
      ["stderr", `err 2 ${hostile}`],
      ["stderr", "err 3"],
      ["stdout", "out 3"],
    ]);
    const marks = await page.$$eval(
      "#log-combined .line",
      (els) => els.map((el) => getComputedStyle(el).borderLeftColor),
    );
    assert.deepEqual(
      marks.map((colour) => colour === "rgb(205, 49, 49)"),
      [false, false, true, false, true, true, false],
      "stderr lines marked in red",
    );
    assert.equal(await page.$$eval("#log-combined img", (els) => els.length), 0);
    await screenshot(page, "run-live-combined");
    const finishing = mixed!.finish();
    mixed = undefined;
    await finishing;
    await page.waitForFunction(
      () => document.querySelector("#liveness")?.textContent === "finished",
      { timeout: 10_000 },
    );
    assert.equal(await page.$eval("#status", (el) => el.textContent), "completed");
    assert.equal((await combinedLines()).length, 7, "no line twice");
    assert.deepEqual(dialogs, []);
    await screenshot(page, "run-live-combined-finished");
    await page.close();
  });

  it("a git checkpoint's diff shows its files", async () => {
    const page = await open("/runs/gitdemo/git-1");
    const files = await page.$$eval(".diff .path", (els) => els.map((el) => el.textContent));
    assert.deepEqual(files.sort(), ["docs/<b>new</b>.md", "src/app.ts"]);
    const added = await page.$$eval(".diff .add", (els) => els.map((el) => el.textContent));
    assert.ok(added.includes("export const answer = 42;"));
    assert.equal(await page.$$eval(".diff b", (els) => els.length), 0);
    await screenshot(page, "run-git-diff");
    await page.close();
  });

  it("a dropped event stream reconnects with Last-Event-ID and shows each line once", async () => {
    const page = await open("/runs/demo/reconnect-1");
    await page.waitForFunction(() =>
      document.querySelector("#log-stdout")?.textContent?.includes("live run started")
    );
    await reconnecting!.print("first after load\n");
    await page.waitForFunction(
      () => document.querySelector("#log-stdout")?.textContent?.includes("first after load"),
      { timeout: 10_000 },
    );
    await reconnecting!.print("second after load\n");
    await page.waitForFunction(
      () => document.querySelector("#log-stdout")?.textContent?.includes("second after load"),
      { timeout: 10_000 },
    );
    const lines = await page.$$eval("#log-stdout .line", (els) => els.map((el) => el.textContent));
    assert.deepEqual(lines, ["live run started", "first after load", "second after load"]);
    // The first stream had no Last-Event-ID; a later one resumed from the offset it reached.
    assert.equal(resumedFrom[0], null);
    const started = "live run started\n".length;
    const offset = started + "first after load\n".length;
    assert.ok(resumedFrom.slice(1).includes(String(offset)), JSON.stringify(resumedFrom));
    const finishing = reconnecting!.finish();
    reconnecting = undefined;
    await finishing;
    await page.waitForFunction(
      () => document.querySelector("#liveness")?.textContent === "finished",
      { timeout: 10_000 },
    );
    await page.close();
  });
});
