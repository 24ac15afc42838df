// What a process run records when it does not end normally: the signal that killed it, a
// missing program, and (under Deno) a missing permission.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { createMemoryStorage, createProcessExecutor, readRun, runStep } from "../mod.ts";
import { baseRequest, withTempDir } from "./helpers.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const fixture = fileURLToPath(new URL("./fixtures/process_run.ts", import.meta.url));

/** The Deno binary: this one under Deno; under Node, the one the project's commands use. */
function deno(): [string, ...string[]] {
  // deno-lint-ignore no-explicit-any
  const self = (globalThis as any).Deno;
  return self ? [self.execPath()] : ["npx", "-y", "deno@2.9.6"];
}

describe("process runs' records", () => {
  it("keeps the signal that killed the worker in state.json and the result", async () => {
    await withTempDir(async (dir) => {
      const storage = createMemoryStorage();
      const request = baseRequest({
        command: "kill -9 $$",
        runtime: { repoRoot: dir, worktreePath: dir },
      });
      const result = await runStep(request, createProcessExecutor(), { storage });
      assert.equal(result.outcome, "failed");
      assert.equal(result.signal, "SIGKILL");
      assert.equal(result.exitCode, 137);
      const { state } = await readRun(storage, request);
      assert.equal(state?.signal, "SIGKILL");
      assert.equal(state?.exitCode, 137);
    });
  });

  it("records exit code 127 for a missing program in argv form, as the shell form does", async () => {
    await withTempDir(async (dir) => {
      const storage = createMemoryStorage();
      const runtime = { repoRoot: dir, worktreePath: dir };
      const argv = await runStep(
        baseRequest({ runId: "argv", command: ["no-such-program-xyz"], runtime }),
        createProcessExecutor(),
        { storage },
      );
      const shell = await runStep(
        baseRequest({ runId: "shell", command: "no-such-program-xyz", runtime }),
        createProcessExecutor(),
        { storage },
      );
      assert.deepEqual([argv.outcome, argv.exitCode], ["failed", 127]);
      assert.deepEqual([shell.outcome, shell.exitCode], ["failed", 127]);
      assert.match(argv.summary, /Command 'no-such-program-xyz' was not found/);
    });
  });

  it("under Deno without --allow-run, fails the run with a message naming --allow-run", async () => {
    await withTempDir(async (dir) => {
      const [command, ...prefix] = deno();
      const out = execFileSync(command, [
        ...prefix,
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-sys=hostname",
        fixture,
        dir,
      ], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 120_000 });
      const report = JSON.parse(out.trim().split("\n").at(-1) ?? "");
      assert.equal(report.outcome, "failed");
      assert.equal(report.reason, "executor_error");
      assert.match(report.summary, /Could not start command 'echo'/);
      assert.match(report.summary, /--allow-run/);
      // The record says it too: another process reading state.json learns why.
      assert.equal(report.state.status, "failed");
      assert.match(report.state.summary, /--allow-run/);
    });
  });

  it("under Deno with --allow-run but no /proc access, a finished command is not said to leave processes behind", async () => {
    await withTempDir(async (dir) => {
      const [command, ...prefix] = deno();
      const out = execFileSync(command, [
        ...prefix,
        "run",
        "--allow-run",
        `--allow-read=${root},${dir}`,
        `--allow-write=${dir}`,
        "--allow-env",
        fixture,
        dir,
      ], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 120_000 });
      const report = JSON.parse(out.trim().split("\n").at(-1) ?? "");
      assert.equal(report.outcome, "completed");
      assert.equal(report.summary, "Command exited with code 0.");
    });
  });
});
