// Tests of createProcessExecutor(): output bytes, exit codes, env and secrets, abort and process groups.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, realpath, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { describe, it } from "node:test";
import { concatBytes } from "../core/bytes.ts";
import { RunnerError, ValidationError } from "../core/errors.ts";
import type { RunAbortReason, WorkerExecutionContext, WorkerExecutor } from "../core/executor.ts";
import type { PreparedStepRun } from "../core/types.ts";
import { createProcessExecutor, type ProcessExecutorOptions } from "../executors/process.ts";
import { readRun, readRunLog, runStep } from "../mod.ts";
import { createMemoryStorage } from "../storage/memory.ts";
import { baseRequest } from "./helpers.ts";

const decoder = new TextDecoder();

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await realpath(await mkdtemp(join(tmpdir(), "process-executor-")));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function fakeRun(command: string | string[] | undefined, worktreePath: string): PreparedStepRun {
  return {
    request: baseRequest({ command, runtime: { repoRoot: worktreePath, worktreePath } }),
  } as unknown as PreparedStepRun;
}

interface Collector {
  context: WorkerExecutionContext;
  stdout: Uint8Array[];
  stderr: Uint8Array[];
  text(channel: "stdout" | "stderr"): string;
  bytes(channel: "stdout" | "stderr"): Uint8Array;
}

/** A context that keeps every chunk (copied, to catch buffers reused under us). */
function collect(signal: AbortSignal = new AbortController().signal): Collector {
  const stdout: Uint8Array[] = [];
  const stderr: Uint8Array[] = [];
  const push = (into: Uint8Array[]) => (chunk: string | Uint8Array) => {
    assert.ok(chunk instanceof Uint8Array, "the executor passes bytes");
    into.push(chunk.slice());
  };
  const join = (parts: Uint8Array[]) => concatBytes(parts);
  return {
    context: {
      stdout: push(stdout),
      stderr: push(stderr),
      signal,
      saveArtifact: () => Promise.reject(new Error("not used")),
    },
    stdout,
    stderr,
    bytes: (channel) => join(channel === "stdout" ? stdout : stderr),
    text: (channel) => decoder.decode(join(channel === "stdout" ? stdout : stderr)),
  };
}

/** True when `pid` is gone or only a zombie waiting for init to reap it. */
async function isDead(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    const status = await readFile(`/proc/${pid}/stat`, "latin1");
    return status.slice(status.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    // Gone meanwhile, where /proc exists; without /proc, kill() said it is alive.
    return await stat("/proc/self").then(() => true, () => false);
  }
}

async function waitForFile(path: string, timeoutMs = 5000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const text = await readFile(path, "utf8");
      if (text.trim() !== "") return text.trim();
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`'${path}' did not appear`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function abortAfter(ms: number, reason: RunAbortReason["reason"] = "cancelled"): AbortController {
  const controller = new AbortController();
  setTimeout(() => controller.abort({ reason, message: `Stopped (${reason}).` }), ms);
  return controller;
}

async function exec(
  command: string | string[] | undefined,
  dir: string,
  options?: ProcessExecutorOptions,
  signal?: AbortSignal,
) {
  const collector = collect(signal);
  const outcome = await createProcessExecutor(options).execute(
    fakeRun(command, dir),
    collector.context,
  );
  return { outcome, ...collector };
}

describe("createProcessExecutor()", () => {
  it("runs a shell string in the worktree, streams stdout/stderr and reports a non-zero exit", async () => {
    await withTempDir(async (dir) => {
      const { outcome, text } = await exec("pwd; echo hi; echo err 1>&2; exit 3", dir);
      assert.equal(outcome.ok, false);
      assert.equal(outcome.outcome, "failed");
      assert.equal(outcome.exitCode, 3);
      assert.equal(outcome.summary, "Command exited with code 3.");
      assert.equal(text("stdout"), `${dir}\nhi\n`);
      assert.equal(text("stderr"), "err\n");
    });
  });

  it("reports exit code 0 as completed and keeps output without a trailing newline exact", async () => {
    await withTempDir(async (dir) => {
      const { outcome, text, stderr } = await exec("printf 'no newline'", dir);
      assert.deepEqual(
        { ok: outcome.ok, outcome: outcome.outcome, exitCode: outcome.exitCode },
        { ok: true, outcome: "completed", exitCode: 0 },
      );
      assert.equal(text("stdout"), "no newline");
      assert.equal(stderr.length, 0);
    });
  });

  it("runs an argv array directly, without a shell splitting or expanding it", async () => {
    await withTempDir(async (dir) => {
      const { outcome, text } = await exec(["printf", "%s|", "a b", "$HOME", "*"], dir);
      assert.equal(outcome.outcome, "completed");
      assert.equal(text("stdout"), "a b|$HOME|*|");
    });
  });

  it("prefers options.command and options.cwd over the request", async () => {
    await withTempDir(async (dir) => {
      const { outcome, text } = await exec("exit 9", "/nonexistent", { command: "pwd", cwd: dir });
      assert.equal(outcome.outcome, "completed");
      assert.equal(text("stdout"), `${dir}\n`);
    });
  });

  it("refuses to run without a command, saying where to set one", async () => {
    await withTempDir(async (dir) => {
      await assert.rejects(exec(undefined, dir), (error: unknown) => {
        assert.ok(error instanceof RunnerError);
        assert.match(error.message, /'request\.command'/);
        return true;
      });
    });
  });

  it("tells a missing working directory from a missing program", async () => {
    await withTempDir(async (dir) => {
      await assert.rejects(
        exec("true", join(dir, "gone")),
        /Working directory '.*gone' does not exist/,
      );
      // A missing program is a failed run with the shell's exit code, in argv and shell form.
      const argv = (await exec(["no-such-program-xyz"], dir)).outcome;
      assert.equal(argv.outcome, "failed");
      assert.equal(argv.exitCode, 127);
      assert.match(argv.summary, /Command 'no-such-program-xyz' was not found/);
      assert.equal((await exec("no-such-program-xyz", dir)).outcome.exitCode, 127);
    });
  });

  it("passes the inherited environment plus options.env, and lists secret values in secrets", async () => {
    await withTempDir(async (dir) => {
      const options: ProcessExecutorOptions = {
        env: {
          PLAIN: "plain value",
          TOKEN: { value: "tok-123456", secret: true },
          EMPTY: { value: "", secret: true },
        },
      };
      const executor = createProcessExecutor(options);
      assert.deepEqual([...executor.secrets!], ["tok-123456"]);
      const { outcome, text } = await exec(
        `printf '%s|%s|%s|%s' "$PLAIN" "$TOKEN" "$EMPTY" "$HOME"`,
        dir,
        options,
      );
      assert.equal(outcome.outcome, "completed");
      assert.equal(text("stdout"), `plain value|tok-123456||${process.env.HOME ?? ""}`);
    });
  });

  it("has an empty secrets list when no env value is secret", () => {
    assert.deepEqual([...createProcessExecutor({ env: { A: "b" } }).secrets!], []);
  });

  it("refuses invalid options with a ValidationError naming the field", () => {
    const cases: [unknown, string][] = [
      [{ env: { TOKEN: { value: "ab", secret: true } } }, "env.TOKEN.value"],
      [{ killGraceMs: -1 }, "killGraceMs"],
      [{ exitCodes: { blocked: [1.5] } }, "exitCodes.blocked.0"],
      [{ command: [] }, "command"],
      [{ killGrace: 5 }, "killGrace"],
    ];
    for (const [options, field] of cases) {
      assert.throws(
        () => createProcessExecutor(options as ProcessExecutorOptions),
        (error: unknown) => {
          assert.ok(
            error instanceof ValidationError,
            `${JSON.stringify(options)} gives a ValidationError`,
          );
          assert.equal(error.field, field);
          assert.doesNotMatch(error.message, /"ab"|'ab'/, "a secret value is never echoed");
          return true;
        },
      );
    }
  });

  it("maps listed exit codes to blocked and needs-human outcomes", async () => {
    await withTempDir(async (dir) => {
      const options: ProcessExecutorOptions = { exitCodes: { blocked: [3], needsHuman: [4] } };
      const blocked = (await exec("exit 3", dir, options)).outcome;
      assert.equal(blocked.outcome, "blocked");
      assert.equal(blocked.blocked, true);
      assert.equal(blocked.needsHuman, false);
      assert.equal(blocked.exitCode, 3);
      assert.match(blocked.summary, /code 3: it is blocked/);
      const human = (await exec("exit 4", dir, options)).outcome;
      assert.equal(human.outcome, "blocked");
      assert.equal(human.needsHuman, true);
      assert.equal(human.exitCode, 4);
      const failed = (await exec("exit 5", dir, options)).outcome;
      assert.equal(failed.outcome, "failed");
      assert.equal(failed.exitCode, 5);
    });
  });

  it("reports a command killed by a signal as failed with that signal", async () => {
    await withTempDir(async (dir) => {
      const { outcome } = await exec("kill -KILL $$", dir);
      assert.equal(outcome.outcome, "failed");
      assert.equal(outcome.signal, "SIGKILL");
      assert.equal(outcome.exitCode, 137);
      assert.equal(outcome.summary, "Command was killed by SIGKILL.");
    });
  });

  it("streams 50 MB byte-exact, never calling the context again before its promise resolved", async () => {
    await withTempDir(async (dir) => {
      const line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-+\n"; // 65 bytes
      const total = 50 * 1024 * 1024;
      const expected = createHash("sha256");
      const block = new TextEncoder().encode(line.repeat(16384));
      for (let left = total; left > 0; left -= block.length) {
        expected.update(block.subarray(0, Math.min(left, block.length)));
      }
      const actual = createHash("sha256");
      let received = 0;
      let pending = false;
      let overlapping = 0;
      let stalls = 0;
      let sinceStall = 0;
      const context: WorkerExecutionContext = {
        signal: new AbortController().signal,
        stdout(chunk) {
          if (pending) overlapping++;
          assert.ok(chunk instanceof Uint8Array);
          actual.update(chunk);
          received += chunk.length;
          sinceStall += chunk.length;
          // Like a run whose buffers are full: every 4 MiB, make the executor wait.
          if (sinceStall < 4 * 1024 * 1024) return undefined;
          sinceStall = 0;
          stalls++;
          pending = true;
          return new Promise<void>((resolve) => setTimeout(() => (pending = false, resolve()), 5));
        },
        stderr() {},
        saveArtifact: () => Promise.reject(new Error("not used")),
      };
      const outcome = await createProcessExecutor().execute(
        fakeRun(`yes '${line.slice(0, -1)}' | head -c ${total}`, dir),
        context,
      );
      assert.equal(outcome.outcome, "completed");
      assert.equal(received, total);
      assert.equal(actual.digest("hex"), expected.digest("hex"));
      assert.ok(stalls >= 10, `the context made the executor wait (${stalls} times)`);
      assert.equal(overlapping, 0, "no chunk arrived while the context's promise was pending");
    });
  });

  it("stops reading, so the command blocks, while the context's promise is pending", async () => {
    await withTempDir(async (dir) => {
      const progress = join(dir, "progress");
      let release: () => void = () => {};
      let onStall: () => void = () => {};
      const stall = new Promise<void>((resolve) => (onStall = resolve));
      let stalledOnce = false;
      let received = 0;
      const context: WorkerExecutionContext = {
        signal: new AbortController().signal,
        stdout(chunk) {
          received += (chunk as Uint8Array).length;
          if (received < 1024 * 1024 || stalledOnce) return undefined;
          stalledOnce = true;
          onStall();
          return new Promise<void>((resolve) => (release = resolve));
        },
        stderr() {},
        saveArtifact: () => Promise.reject(new Error("not used")),
      };
      // Writes 40 blocks of 1 MiB, noting after each how many it wrote.
      const command =
        `i=0; while [ $i -lt 40 ]; do head -c 1048576 /dev/zero; i=$((i+1)); echo $i > '${progress}'; done`;
      const running = createProcessExecutor().execute(fakeRun(command, dir), context);
      await stall;
      await new Promise((resolve) => setTimeout(resolve, 500));
      const written = Number(await readFile(progress, "utf8"));
      // Unpaused, the command would finish all 40 MiB well within 500 ms; paused, it blocks once
      // the pipe and the stream's small buffer are full.
      assert.ok(
        written <= 4,
        `the command wrote only ${written} MiB while the context was stalled`,
      );
      release();
      const outcome = await running;
      assert.equal(outcome.outcome, "completed");
      assert.equal(received, 40 * 1024 * 1024);
    });
  });

  it("keeps random binary output byte-exact", async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, "random.bin");
      const { outcome, bytes } = await exec(`head -c 1000000 /dev/urandom | tee '${file}'`, dir);
      assert.equal(outcome.outcome, "completed");
      const expected = new Uint8Array(await readFile(file));
      assert.equal(expected.length, 1_000_000);
      assert.deepEqual(bytes("stdout"), expected);
    });
  });

  it("stops a running command promptly when the signal aborts", async () => {
    await withTempDir(async (dir) => {
      const controller = abortAfter(300);
      const started = Date.now();
      const { outcome } = await exec("sleep 30", dir, undefined, controller.signal);
      const elapsed = Date.now() - started;
      assert.ok(elapsed < 1500, `resolved ${elapsed} ms after start`);
      assert.equal(outcome.ok, false);
      assert.equal(outcome.outcome, "failed");
      assert.equal(outcome.signal, "SIGTERM");
      assert.match(outcome.summary, /cancelled/);
    });
  });

  it("says 'timed out' when the abort reason is a timeout", async () => {
    await withTempDir(async (dir) => {
      const controller = abortAfter(100, "timeout");
      const { outcome } = await exec("sleep 30", dir, undefined, controller.signal);
      assert.match(outcome.summary, /timed out/);
    });
  });

  it("kills the whole process group on abort, background grandchildren included", async () => {
    await withTempDir(async (dir) => {
      const pidFile = join(dir, "grandchild.pid");
      const controller = new AbortController();
      const running = exec(
        `sleep 120 & echo $! > '${pidFile}'; wait`,
        dir,
        undefined,
        controller.signal,
      );
      const pid = Number(await waitForFile(pidFile));
      assert.equal(await isDead(pid), false, "the grandchild runs before the abort");
      controller.abort({ reason: "cancelled", message: "Cancelled." });
      const started = Date.now();
      const { outcome } = await running;
      assert.ok(Date.now() - started < 1500, "the abort does not wait for the grandchild");
      assert.equal(outcome.outcome, "failed");
      assert.equal(await isDead(pid), true, "the grandchild is dead");
    });
  });

  it("sends SIGKILL after killGraceMs to a group that ignores SIGTERM", async () => {
    await withTempDir(async (dir) => {
      const readyFile = join(dir, "ready");
      const controller = new AbortController();
      const running = exec(
        `trap '' TERM; sleep 60 & echo $! > '${readyFile}'; wait`,
        dir,
        { killGraceMs: 300 },
        controller.signal,
      );
      const pid = Number(await waitForFile(readyFile));
      const started = Date.now();
      controller.abort({ reason: "cancelled", message: "Cancelled." });
      const { outcome } = await running;
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 250 && elapsed < 2000, `SIGKILL came after the grace (${elapsed} ms)`);
      assert.equal(outcome.signal, "SIGKILL");
      assert.equal(await isDead(pid), true);
    });
  });

  it("never starts the command when the signal is already aborted", async () => {
    await withTempDir(async (dir) => {
      const controller = new AbortController();
      controller.abort({ reason: "cancelled", message: "Cancelled." });
      const marker = join(dir, "marker");
      const { outcome } = await exec(`touch '${marker}'`, dir, undefined, controller.signal);
      assert.equal(outcome.outcome, "failed");
      assert.match(outcome.summary, /not started/);
      await assert.rejects(stat(marker), { code: "ENOENT" });
    });
  });

  it("stops processes the command left running in its group, instead of waiting on their pipes", async () => {
    await withTempDir(async (dir) => {
      const pidFile = join(dir, "leftover.pid");
      const started = Date.now();
      const { outcome, text } = await exec(`sleep 120 & echo $! > '${pidFile}'; echo done`, dir);
      assert.ok(Date.now() - started < 1500, "resolves without waiting for the leftover");
      assert.equal(outcome.outcome, "completed");
      assert.match(outcome.summary, /left running in its process group were stopped/);
      assert.equal(text("stdout"), "done\n");
      assert.equal(await isDead(Number(await readFile(pidFile, "utf8"))), true);
    });
  });

  it("does not mention leftovers when the command's background work finished", async () => {
    await withTempDir(async (dir) => {
      const { outcome, text } = await exec("(echo bg) & wait; echo fg", dir);
      assert.equal(outcome.summary, "Command exited with code 0.");
      assert.equal(text("stdout"), "bg\nfg\n");
    });
  });

  it("returns once a process outside the group holding the pipes goes quiet", async () => {
    await withTempDir(async (dir) => {
      const pidFile = join(dir, "escaped.pid");
      await writeFile(join(dir, "escape.sh"), `sleep 30 & echo $! > '${pidFile}'\n`);
      const started = Date.now();
      // setsid puts the sleep in a new session: it keeps stdout open but is not ours to kill.
      const { outcome } = await exec(`setsid sh escape.sh; echo out`, dir);
      const elapsed = Date.now() - started;
      try {
        assert.equal(outcome.outcome, "completed");
        assert.ok(elapsed < 3000, `resolved after ${elapsed} ms`);
      } finally {
        const pid = Number(await waitForFile(pidFile));
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    });
  });
});

describe("runStep() with createProcessExecutor()", () => {
  const request = (dir: string, command: string, timeoutSec = 30) =>
    baseRequest({ command, timeoutSec, runtime: { repoRoot: dir, worktreePath: dir } });

  it("stores the command's output with secret env values masked", async () => {
    await withTempDir(async (dir) => {
      const storage = createMemoryStorage();
      const executor: WorkerExecutor = createProcessExecutor({
        env: { API_TOKEN: { value: "tok-SECRET-42", secret: true } },
      });
      const result = await runStep(
        request(
          dir,
          `echo "token is $API_TOKEN"; printf 'split tok-SEC' 1>&2; printf 'RET-42 end' 1>&2; exit 2`,
        ),
        executor,
        { storage },
      );
      assert.equal(result.outcome, "failed");
      const ref = { taskId: result.taskId, runId: result.runId };
      assert.equal(await readRunLog(storage, ref, "stdout"), "token is [REDACTED]\n");
      assert.equal(await readRunLog(storage, ref, "stderr"), "split [REDACTED] end");
      const stored = await readRun(storage, ref);
      assert.doesNotMatch(JSON.stringify(stored), /tok-SECRET-42/);
    });
  });

  it("records a run stopped by request.timeoutSec as failed, 'timed out', with the group killed", async () => {
    await withTempDir(async (dir) => {
      const storage = createMemoryStorage();
      const pidFile = join(dir, "grandchild.pid");
      const started = Date.now();
      const result = await runStep(
        request(dir, `sleep 120 & echo $! > '${pidFile}'; wait`, 1),
        createProcessExecutor(),
        { storage },
      );
      assert.ok(Date.now() - started < 4000, "the run ends soon after its timeout");
      assert.equal(result.outcome, "failed");
      assert.match(result.summary, /timed out/i);
      const terminal = result.lifecycleEvents[result.lifecycleEvents.length - 1];
      assert.equal((terminal.data as { reason?: string } | undefined)?.reason, "timeout");
      assert.equal(await isDead(Number(await readFile(pidFile, "utf8"))), true);
    });
  });

  it("records a run cancelled through options.signal as failed, 'cancelled'", async () => {
    await withTempDir(async (dir) => {
      const storage = createMemoryStorage();
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 300);
      const result = await runStep(
        request(dir, "echo started; sleep 30"),
        createProcessExecutor(),
        {
          storage,
          signal: controller.signal,
        },
      );
      assert.equal(result.outcome, "failed");
      assert.match(result.summary, /cancelled/i);
      const ref = { taskId: result.taskId, runId: result.runId };
      assert.equal(await readRunLog(storage, ref, "stdout"), "started\n");
    });
  });
});
