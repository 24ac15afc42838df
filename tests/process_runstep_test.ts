// runStep() with real processes recorded on the filesystem: what an orchestrator watching the
// run directory relies on (exit codes, live tail, byte-exact output, caps, cancellation).

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  createFsStorage,
  createProcessExecutor,
  readRun,
  readRunLog,
  readRunLogBytes,
  runStep,
} from "../mod.ts";
import { baseRequest, withTempDir } from "./helpers.ts";

const ref = { taskId: "task-1", runId: "run-1" };
const request = (dir: string, command: string | string[], timeoutSec = 60) =>
  baseRequest({ command, timeoutSec, runtime: { repoRoot: dir, worktreePath: dir } });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("runStep() with createProcessExecutor() on the filesystem default", () => {
  it("records 'pwd; echo hi; echo err 1>&2; exit 3' as failed with exit code 3 and exact logs", async () => {
    await withTempDir(async (dir) => {
      const result = await runStep(
        request(dir, "pwd; echo hi; echo err 1>&2; exit 3"),
        createProcessExecutor(),
      );
      assert.equal(result.outcome, "failed");
      assert.equal(result.exitCode, 3);
      const runDir = join(dir, "runs", "task-1", "run-1");
      assert.equal(await readFile(join(runDir, "stdout.log"), "utf8"), `${dir}\nhi\n`);
      assert.equal(await readFile(join(runDir, "stderr.log"), "utf8"), "err\n");
      const state = JSON.parse(await readFile(join(runDir, "state.json"), "utf8"));
      assert.equal(state.status, "failed");
      assert.equal(state.exitCode, 3);
    });
  });

  it("records printf 'no newline' as completed with stdout exactly 'no newline'", async () => {
    await withTempDir(async (dir) => {
      const result = await runStep(request(dir, "printf 'no newline'"), createProcessExecutor());
      assert.equal(result.outcome, "completed");
      assert.equal(
        await readFile(join(dir, "runs", "task-1", "run-1", "stdout.log"), "utf8"),
        "no newline",
      );
    });
  });

  it("lets a reader see the first line, run still running, before the second line exists", async () => {
    await withTempDir(async (dir) => {
      const storage = createFsStorage({ root: dir });
      const marker = join(dir, "second-printed");
      const run = runStep(
        request(dir, `echo first; sleep 4; touch '${marker}'; echo second`),
        createProcessExecutor(),
        { storage },
      );
      let seen = "";
      let status = "";
      let secondExisted = true;
      for (let i = 0; i < 35 && seen === ""; i++) {
        await sleep(100);
        seen = await readRunLog(storage, ref, "stdout").catch(() => "");
        if (seen !== "") {
          status = (await readRun(storage, ref)).state?.status ?? "";
          secondExisted = await readFile(marker).then(() => true, () => false);
        }
      }
      assert.equal(seen, "first\n");
      assert.equal(status, "running");
      assert.equal(
        secondExisted,
        false,
        "the reader saw output before the second line was printed",
      );
      const result = await run;
      assert.equal(result.outcome, "completed");
      assert.equal(await readRunLog(storage, ref, "stdout"), "first\nsecond\n");
    });
  });

  it("lets a reader see each line of a quiet process within about two flush intervals with a RegExp secret", async () => {
    await withTempDir(async (dir) => {
      const storage = createFsStorage({ root: dir });
      const flushIntervalMs = 200;
      // Each line carries the time it was printed, in ms.
      const script =
        'for i in 1 2 3; do echo "tick $i ghp_0123456789abcdefghijKLMN $(date +%s%3N)"; ' +
        "sleep 0.6; done; sleep 1";
      let finished = false;
      const run = runStep(request(dir, script), createProcessExecutor(), {
        storage,
        secrets: [/ghp_[A-Za-z0-9]{20,}/],
        flushIntervalMs,
      }).finally(() => (finished = true));
      const latencies: number[] = [];
      let seen = "";
      while (!finished) {
        await sleep(20);
        const log = await readRunLog(storage, ref, "stdout").catch(() => "");
        if (finished) break;
        const now = Date.now();
        for (const line of log.slice(seen.length).split("\n").slice(0, -1)) {
          latencies.push(now - Number(line.split(" ").at(-1)));
        }
        seen = log.slice(0, log.lastIndexOf("\n") + 1);
      }
      await run;
      assert.match(seen, /^(tick \d \[REDACTED\] \d+\n){3}$/);
      assert.equal(latencies.length, 3, `saw ${latencies.length} lines while live`);
      for (const latency of latencies) {
        assert.ok(latency <= 2 * flushIntervalMs + 600, `latencies ${latencies} ms`);
      }
    });
  });

  it("stores 50 MB of random binary output byte-exact", async () => {
    await withTempDir(async (dir) => {
      const copy = join(dir, "expected.bin");
      const result = await runStep(
        request(dir, `head -c 52428800 /dev/urandom | tee '${copy}'`),
        createProcessExecutor(),
      );
      assert.equal(result.outcome, "completed");
      const expected = await readFile(copy);
      const stored = await readRunLogBytes(createFsStorage({ root: dir }), ref, "stdout");
      assert.equal(stored.byteLength, 52_428_800);
      assert.ok(Buffer.from(stored).equals(expected), "stdout.log equals what the process printed");
      assert.equal(result.metrics.stdoutBytes, 52_428_800);
      assert.ok(result.metrics.storageWrites < 200, `${result.metrics.storageWrites} writes`);
    });
  });

  it("keeps the head and the tail past maxOutputBytes, one marker with the dropped count", async () => {
    await withTempDir(async (dir) => {
      const result = await runStep(
        request(
          dir,
          "head -c 1000000 /dev/zero | tr '\\0' 'a'; echo; echo last line; echo done 1>&2",
        ),
        createProcessExecutor(),
        { maxOutputBytes: { stdout: 1000 } },
      );
      const stdout = await readFile(join(dir, "runs", "task-1", "run-1", "stdout.log"), "utf8");
      assert.equal(
        stdout,
        "a".repeat(500) + "\n[baa-conductor: stdout truncated, 999011 bytes dropped here]\n" +
          "a".repeat(489) + "\nlast line\n",
      );
      assert.deepEqual(result.droppedBytes, { stdout: 999_011, stderr: 0 });
      const state = JSON.parse(
        await readFile(join(dir, "runs", "task-1", "run-1", "state.json"), "utf8"),
      );
      assert.deepEqual(state.droppedBytes, { stdout: 999_011, stderr: 0 });
      assert.equal(
        await readFile(join(dir, "runs", "task-1", "run-1", "stderr.log"), "utf8"),
        "done\n",
      );
    });
  });

  it("ends an aborted run promptly and leaves it failed, not running, in storage", async () => {
    await withTempDir(async (dir) => {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 300);
      const started = Date.now();
      const result = await runStep(request(dir, "echo going; sleep 60"), createProcessExecutor(), {
        signal: controller.signal,
      });
      const elapsed = Date.now() - started;
      assert.ok(elapsed < 4000, `ended after ${elapsed} ms`);
      assert.equal(result.reason, "cancelled");
      const state = JSON.parse(
        await readFile(join(dir, "runs", "task-1", "run-1", "state.json"), "utf8"),
      );
      assert.equal(state.status, "failed");
      assert.equal(state.reason, "cancelled");
    });
  });

  it("keeps a secret printed whole and split across two writes out of every stored byte", async () => {
    await withTempDir(async (dir) => {
      const secret = "s3cr3t-Value-777";
      await runStep(
        request(
          dir,
          `echo "${secret}"; printf 's3cr3t-'; sleep 0.3; printf 'Value-777\\n'; echo "${secret}" 1>&2`,
        ),
        createProcessExecutor(),
        { secrets: [secret] },
      );
      const runDir = join(dir, "runs", "task-1", "run-1");
      for (const file of ["stdout.log", "stderr.log", "worker.log", "state.json", "meta.json"]) {
        assert.ok(!(await readFile(join(runDir, file), "utf8")).includes(secret), file);
      }
      assert.equal(await readFile(join(runDir, "stdout.log"), "utf8"), "[REDACTED]\n[REDACTED]\n");
    });
  });
});
