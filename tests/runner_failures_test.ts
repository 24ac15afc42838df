// The runner under failure: storages that fail half-way, executors that hang or ignore their
// signal, cancellation, secrets, output caps, and a writer process killed with SIGKILL.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  createMemoryStorage,
  readRun,
  readRunLog,
  runStep,
  type RunStorage,
  StorageError,
  type WorkerExecutor,
} from "../mod.ts";
import { allKeys, baseRequest, readText, withTempDir } from "./helpers.ts";

const ref = { taskId: "task-1", runId: "run-1" };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A memory storage whose writes start failing after `healthy` mutations. */
function failingStorage(healthy: number): { storage: RunStorage; inner: RunStorage } {
  const inner = createMemoryStorage();
  let mutations = 0;
  const guard = (operation: string, key: string) => {
    if (++mutations > healthy) {
      return Promise.reject(
        new StorageError("Backend refused the write", {
          adapter: "flaky",
          operation,
          key,
          code: "unavailable",
        }),
      );
    }
    return undefined;
  };
  return {
    inner,
    storage: {
      name: "flaky",
      read: (key) => inner.read(key),
      write: (key, data, options) => guard("write", key) ?? inner.write(key, data, options),
      append: (key, data) => guard("append", key) ?? inner.append!(key, data),
      list: (prefix) => inner.list(prefix),
      delete: (key) => inner.delete(key),
      locate: (key) => inner.locate(key),
    },
  };
}

describe("runStep() when the storage fails", () => {
  it("rejects with the StorageError (adapter, operation, key) and aborts the executor, without hanging", async () => {
    const { storage, inner } = failingStorage(12);
    let sawAbort = false;
    const executor: WorkerExecutor = {
      async execute(_run, context) {
        context.signal.addEventListener("abort", () => (sawAbort = true));
        for (let i = 0; i < 200_000 && !context.signal.aborted; i++) {
          const pending = context.stdout(`line ${i}\n`);
          if (pending) await pending;
        }
        return { ok: true, outcome: "completed", summary: "printed" };
      },
    };
    await assert.rejects(
      runStep(baseRequest(), executor, { storage, flushBytes: 4096 }),
      (error: unknown) => {
        assert.ok(error instanceof StorageError);
        assert.equal(error.adapter, "flaky");
        assert.ok(["write", "append"].includes(error.operation));
        assert.ok(error.key.startsWith("runs/task-1/run-1/"));
        return true;
      },
    );
    assert.ok(sawAbort, "the executor's signal aborted");
    const meta = JSON.parse((await readText(inner, "runs/task-1/run-1/meta.json"))!);
    assert.equal(meta.runId, "run-1");
    JSON.parse((await readText(inner, "runs/task-1/run-1/state.json"))!);
  });

  it("rejects at creation when the very first write fails, leaving nothing", async () => {
    const { storage, inner } = failingStorage(0);
    await assert.rejects(runStep(baseRequest(), undefined, { storage }), StorageError);
    assert.deepEqual(await allKeys(inner), []);
  });
});

describe("runStep() timeouts and cancellation", () => {
  it("ends a run that passes timeoutSec as failed/timed out, aborting the signal", async () => {
    const storage = createMemoryStorage();
    const result = await runStep(baseRequest({ timeoutSec: 0.3 }), {
      async execute(_run, context) {
        await context.stdout("working\n");
        await new Promise((resolve) => context.signal.addEventListener("abort", resolve));
        return { ok: true, outcome: "completed", summary: "finished anyway" };
      },
    }, { storage });
    assert.equal(result.outcome, "failed");
    assert.equal(result.reason, "timeout");
    assert.equal(result.summary, "Timed out after 0.3s. finished anyway");
    const stored = await readRun(storage, ref);
    assert.equal(stored.state?.status, "failed");
    assert.equal(stored.state?.reason, "timeout");
    assert.equal(stored.events.at(-1)?.data.reason, "timeout");
    assert.equal(await readRunLog(storage, ref, "stdout"), "working\n");
  });

  it("closes the record at timeout plus grace when the executor ignores its signal", async () => {
    const storage = createMemoryStorage();
    let release!: () => void;
    const hang = new Promise<void>((resolve) => (release = resolve));
    const started = Date.now();
    const result = await runStep(baseRequest({ timeoutSec: 0.2 }), {
      async execute(_run, context) {
        await hang;
        await context.stdout("too late\n");
        return { ok: true, outcome: "completed", summary: "late" };
      },
    }, { storage, timeoutGraceMs: 200 });
    const elapsed = Date.now() - started;
    release();
    await sleep(20);
    assert.equal(result.outcome, "failed");
    assert.equal(result.reason, "timeout");
    assert.match(result.summary, /did not stop within the grace period/);
    assert.ok(elapsed < 5000, `closed after ${elapsed} ms`);
    assert.equal((await readRun(storage, ref)).state?.status, "failed");
    assert.equal(await readRunLog(storage, ref, "stdout"), "", "output after the close is ignored");
  });

  it("cancels through options.signal: failed, 'cancelled', promptly", async () => {
    const storage = createMemoryStorage();
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const result = await runStep(baseRequest(), {
      execute: (_run, context) =>
        new Promise((resolve) =>
          context.signal.addEventListener(
            "abort",
            () => resolve({ ok: false, outcome: "failed", summary: "stopped" }),
          )
        ),
    }, { storage, signal: controller.signal });
    assert.equal(result.outcome, "failed");
    assert.equal(result.reason, "cancelled");
    assert.match(result.summary, /cancelled/i);
    const stored = await readRun(storage, ref);
    assert.equal(stored.state?.status, "failed");
    assert.equal(stored.events.at(-1)?.data.reason, "cancelled");
  });

  it("gives the executor an already-aborted signal when options.signal is aborted up front", async () => {
    const storage = createMemoryStorage();
    let aborted = false;
    const result = await runStep(baseRequest(), {
      execute: (_run, context) => {
        aborted = context.signal.aborted;
        return { ok: true, outcome: "completed", summary: "noop" };
      },
    }, { storage, signal: AbortSignal.abort() });
    assert.ok(aborted);
    assert.equal(result.reason, "cancelled");
  });
});

describe("runStep() secrets", () => {
  it("masks secrets in stdout (whole and split across chunks), stderr, events, summary and metadata", async () => {
    const storage = createMemoryStorage();
    const secret = "sk-live-0123456789abcdef";
    const result = await runStep(
      baseRequest({ command: `deploy --token ${secret}`, promptSummary: `use ${secret}` }),
      {
        async execute(_run, context) {
          await context.stdout(`token=${secret}\n`);
          await context.stdout(`split=${secret.slice(0, 9)}`);
          await context.stdout(`${secret.slice(9)}\n`);
          await context.stderr(new TextEncoder().encode(`err ${secret}`));
          await context.saveArtifact("notes.txt", "plain", { description: `made with ${secret}` });
          throw new Error(`request failed with ${secret}`);
        },
      },
      { storage, secrets: [secret, /ghp_[A-Za-z0-9]{10,}/] },
    );
    const everything: string[] = [];
    for (const key of await allKeys(storage)) everything.push((await readText(storage, key))!);
    everything.push(
      JSON.stringify(result.lifecycleEvents),
      result.summary,
      JSON.stringify(result.metadata),
    );
    for (const text of everything) {
      assert.ok(!text.includes(secret) && !text.includes("0123456789abcdef"), text);
    }
    assert.equal(await readRunLog(storage, ref, "stdout"), "token=[REDACTED]\nsplit=[REDACTED]\n");
    assert.equal(await readRunLog(storage, ref, "stderr"), "err [REDACTED]");
    assert.match(result.summary, /\[REDACTED\]/);
  });
});

describe("runStep() output caps", () => {
  it("keeps a stream's head and tail past its cap, one marker counting the dropped bytes", async () => {
    const storage = createMemoryStorage();
    const result = await runStep(baseRequest(), {
      async execute(_run, context) {
        for (let i = 0; i < 100; i++) await context.stdout("0123456789");
        await context.stderr("small\n");
        return { ok: true, outcome: "completed", summary: "loud" };
      },
    }, { storage, maxOutputBytes: { stdout: 95 } });
    const stdout = await readRunLog(storage, ref, "stdout");
    const printed = "0123456789".repeat(100);
    assert.equal(
      stdout,
      printed.slice(0, 47) + "\n[baa-conductor: stdout truncated, 905 bytes dropped here]\n" +
        printed.slice(-48),
    );
    assert.deepEqual(result.droppedBytes, { stdout: 905, stderr: 0 });
    const stored = await readRun(storage, ref);
    assert.deepEqual(stored.state?.droppedBytes, { stdout: 905, stderr: 0 });
    assert.equal(stored.state?.stdoutBytes, new TextEncoder().encode(stdout).byteLength);
    assert.equal(stored.events.filter((e) => e.type === "output_truncated").length, 1);
    assert.equal(await readRunLog(storage, ref, "stderr"), "small\n");
  });
});

describe("runStep() on fs when the writing process is killed", () => {
  it("leaves meta.json and state.json parseable and stdout.log a prefix of what was printed", async () => {
    await withTempDir(async (repoRoot) => {
      const fixture = new URL("./fixtures/stream_forever.ts", import.meta.url).pathname;
      // deno-lint-ignore no-explicit-any
      const deno = (globalThis as any).Deno;
      const [command, args] = deno
        ? [deno.execPath(), ["run", "--allow-all", fixture, repoRoot]]
        : [process.execPath, ["--import", "tsx", fixture, repoRoot]];
      const child = spawn(command, args, { stdio: "ignore" });
      const stdoutPath = join(repoRoot, "runs", "crash", "run-1", "stdout.log");
      try {
        let size = 0;
        for (let i = 0; i < 300 && size < 200_000; i++) {
          await sleep(100);
          size = (await readFile(stdoutPath).catch(() => new Uint8Array(0))).byteLength;
        }
        assert.ok(size >= 200_000, `the child wrote ${size} bytes`);
      } finally {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise((resolve) => child.once("exit", resolve));
          child.kill("SIGKILL");
          await exited;
        }
      }
      const runDir = join(repoRoot, "runs", "crash", "run-1");
      const meta = JSON.parse(await readFile(join(runDir, "meta.json"), "utf8"));
      const state = JSON.parse(await readFile(join(runDir, "state.json"), "utf8"));
      assert.equal(meta.runId, "run-1");
      assert.equal(state.status, "running");
      const stdout = await readFile(stdoutPath, "utf8");
      const lines = stdout.split("\n");
      const last = lines.pop()!; // possibly a torn final line
      lines.forEach((line, i) => assert.equal(line, `line ${i}`));
      assert.ok(`line ${lines.length}\n`.startsWith(last), `torn tail '${last}'`);
    });
  });
});
