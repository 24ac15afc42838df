// Reading the end of a 300 MB log on fs costs the end: a child process reads the last 64 KiB
// and reports its peak RSS (and, for contrast, the whole-log read).

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { open } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { createFsStorage } from "../mod.ts";
import { withTempDir } from "./helpers.ts";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const LOG_BYTES = 300 * MiB;
const TAIL = 64 * 1024;

interface Report {
  bytes: number;
  ms: number;
  peakRssBytes: number;
  baselineRssBytes: number;
}

async function measure(root: string, mode: "tail" | "whole"): Promise<Report> {
  const fixture = new URL("./fixtures/tail_rss.ts", import.meta.url).pathname;
  // deno-lint-ignore no-explicit-any
  const deno = (globalThis as any).Deno;
  const [command, args] = deno
    ? [deno.execPath(), ["run", "--allow-all", fixture]]
    : [process.execPath, ["--import", "tsx", fixture]];
  const { stdout } = await run(command, [...args, root, "task-1", "run-1", mode, String(TAIL)], {
    maxBuffer: 1024 * 1024,
  });
  return JSON.parse(stdout.trim().split("\n").at(-1)!);
}

describe("readRunLogBytes() on fs", () => {
  it("reads the last 64 KiB of a 300 MB log in constant memory and milliseconds", async () => {
    await withTempDir(async (root) => {
      const storage = createFsStorage({ root });
      await storage.write("runs/task-1/run-1/meta.json", "{}");
      // 300 MB of numbered lines, written in 4 MiB blocks.
      const handle = await open(join(root, "runs/task-1/run-1/stdout.log"), "w");
      const block = new Uint8Array(4 * MiB);
      for (let i = 0; i < block.length; i++) block[i] = 97 + (i % 26);
      for (let written = 0; written < LOG_BYTES; written += block.length) {
        block[0] = 48 + (written / block.length) % 10; // blocks differ
        await handle.write(block, 0, Math.min(block.length, LOG_BYTES - written));
      }
      await handle.close();

      const tail = await measure(root, "tail");
      const whole = await measure(root, "whole");
      console.log(
        `[read-range] tail 64 KiB of 300 MB: ${tail.ms.toFixed(1)} ms, peak RSS ` +
          `${(tail.peakRssBytes / MiB).toFixed(0)} MiB (baseline ${
            (tail.baselineRssBytes / MiB).toFixed(0)
          } MiB); whole log: ${whole.ms.toFixed(0)} ms, peak RSS ${
            (whole.peakRssBytes / MiB).toFixed(0)
          } MiB (on a shared machine)`,
      );
      assert.equal(tail.bytes, TAIL);
      assert.equal(whole.bytes, LOG_BYTES);
      const grew = tail.peakRssBytes - tail.baselineRssBytes;
      assert.ok(
        grew < 16 * MiB,
        `the tail read grew the peak RSS by ${(grew / MiB).toFixed(1)} MiB`,
      );
      assert.ok(tail.peakRssBytes < LOG_BYTES / 2, "peak RSS well under the log's size");
      // The contrast shows the measurement can fail: the whole read does hold the log.
      assert.ok(whole.peakRssBytes - whole.baselineRssBytes > LOG_BYTES / 2);
      // Generous: the machine is shared; the read itself is one stat and one 64 KiB read.
      assert.ok(tail.ms < 500, `tail read took ${tail.ms} ms`);
    });
  });
});
