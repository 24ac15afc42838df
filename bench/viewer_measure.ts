/// <reference lib="dom" />
// The web viewer, measured in headless Chromium (Deno only):
//  1. a line printed by a live run -> shown in the browser, median of 20, on the filesystem
//     storage and (when S3_* is set, e.g. after `source` of scripts/rgw.sh's env file) on S3;
//  2. a run page over a run with a 100 MB stdout: bytes sent to the browser, time to first paint.
//
//   CHROMIUM_PATH=$(bash scripts/chromium.sh | tail -n1) npx -y deno@2.9.6 run -A bench/viewer_measure.ts

import { mkdtemp, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import puppeteer, { type Browser } from "puppeteer-core";
import { runStep } from "../core/runner.ts";
import { createFsStorage } from "../storage/fs.ts";
import { createS3Storage } from "../storage/s3.ts";
import type { RunStorage } from "../storage/types.ts";
import { createRunViewer } from "../viewer/mod.ts";
import { baseRequest } from "../tests/helpers.ts";
import { startLiveRun } from "../tests/viewer_fixtures.ts";
import { createBucket, deleteBucketRecursive, uniqueBucketName } from "../tests/s3/bucket.ts";

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

function serve(storage: RunStorage) {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    createRunViewer(storage),
  );
  return { server, origin: `http://127.0.0.1:${server.addr.port}` };
}

async function latency(browser: Browser, storage: RunStorage, label: string): Promise<void> {
  const runId = `latency-${Date.now()}`;
  const live = await startLiveRun(storage, runId);
  const { server, origin } = serve(storage);
  const page = await browser.newPage();
  await page.goto(`${origin}/runs/demo/${runId}`, { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() =>
    document.querySelector("#log-stdout")?.textContent?.includes("live run started")
  );
  // The page notes when each marked line appears (wall clock, same machine as the printer).
  await page.evaluate(() => {
    const seen: Record<string, number> = {};
    (globalThis as unknown as { seen: Record<string, number> }).seen = seen;
    new MutationObserver(() => {
      for (const m of document.querySelector("#log-stdout")!.textContent!.matchAll(/mark-(\d+)/g)) {
        seen[m[1]] ??= Date.now();
      }
    }).observe(document.querySelector("#log-stdout")!, { childList: true, subtree: true });
  });
  const samples: number[] = [];
  for (let i = 0; i < 20; i++) {
    const printedAt = Date.now();
    await live.print(`mark-${i}\n`);
    await page.waitForFunction(
      (n: number) =>
        (globalThis as unknown as { seen: Record<string, number> }).seen[n] !== undefined,
      { timeout: 20_000, polling: 20 },
      i,
    );
    const shownAt = await page.evaluate(
      (n: number) => (globalThis as unknown as { seen: Record<string, number> }).seen[n],
      i,
    );
    samples.push(shownAt - printedAt);
    // Spread the prints over the runner's flush cycle instead of lining up with it.
    await new Promise((r) => setTimeout(r, 150 + Math.random() * 700));
  }
  console.log(
    `${label}: line printed -> shown, median of 20: ${median(samples)} ms ` +
      `(min ${Math.min(...samples)}, max ${Math.max(...samples)})`,
  );
  await page.close();
  await live.finish();
  await server.shutdown();
}

async function bigLog(browser: Browser, storage: RunStorage): Promise<void> {
  const line = "0123456789".repeat(9) + "abcdefghi\n"; // 100 bytes
  const chunk = line.repeat(10_000); // 1 MB
  const started = Date.now();
  await runStep(baseRequest({ taskId: "big", runId: "big-100mb" }), {
    async execute(_run, context) {
      for (let i = 0; i < 100; i++) await context.stdout(chunk);
      return { ok: true, outcome: "completed", summary: "100 MB" };
    },
  }, { storage });
  console.log(`(wrote a 100 MB stdout run in ${Date.now() - started} ms)`);
  const { server, origin } = serve(storage);
  const page = await browser.newPage();
  const cdp = await page.createCDPSession();
  await cdp.send("Network.enable");
  let bytes = 0;
  cdp.on("Network.loadingFinished", (event) => (bytes += event.encodedDataLength));
  const t0 = Date.now();
  await page.goto(`${origin}/runs/big/big-100mb`, { waitUntil: "load" });
  const loadMs = Date.now() - t0;
  // Paint entries are recorded once a frame is presented: ask for one, then read them.
  const paint = await page.evaluate(() =>
    new Promise<[string, number][]>((resolve) => {
      requestAnimationFrame(() =>
        setTimeout(() =>
          resolve(
            performance.getEntriesByType("paint").map((e) => [e.name, Math.round(e.startTime)]),
          ), 200)
      );
    })
  );
  const nav = await page.evaluate(() => {
    const entry = performance.getEntriesByType("navigation")[0] as PerformanceNavigationTiming;
    return {
      ttfb: Math.round(entry.responseStart),
      domContentLoaded: Math.round(entry.domContentLoadedEventEnd),
    };
  });
  console.log(
    `100 MB log run page: ${bytes} bytes sent to the browser; paint ${JSON.stringify(paint)}, ` +
      `first byte ${nav.ttfb}, DOMContentLoaded ${nav.domContentLoaded} ms after navigation ` +
      `start; load event after ${loadMs} ms`,
  );
  await page.close();
  await server.shutdown();
}

const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const browser = await puppeteer.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const root = await realpath(await mkdtemp(join(tmpdir(), "viewer-measure-")));
try {
  const fs = createFsStorage({ root });
  await latency(browser, fs, "fs");
  if (process.env.S3_ENDPOINT && process.env.SKIP_S3 !== "1") {
    const env = {
      endpoint: process.env.S3_ENDPOINT,
      region: process.env.S3_REGION || "us-east-1",
      accessKeyId: process.env.S3_ACCESS_KEY_ID!,
      secretAccessKey: process.env.S3_SECRET_ACCESS_KEY!,
    };
    const bucket = uniqueBucketName("viewer-measure");
    await createBucket(env, bucket);
    try {
      await latency(browser, createS3Storage({ ...env, bucket }), "S3 (Ceph RGW)");
    } finally {
      await deleteBucketRecursive(env, bucket);
    }
  } else {
    console.log("S3: skipped (no S3_ENDPOINT; source scripts/rgw.sh's env file)");
  }
  await bigLog(browser, fs);
} finally {
  await browser.close();
  await rm(root, { recursive: true, force: true });
}
