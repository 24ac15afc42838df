// runStep / prepareStepRun on memory and filesystem storage: events, logs, failures, conflicts,
// batching and concurrency.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  createMemoryStorage,
  createPlaceholderWorkerExecutor,
  prepareStepRun,
  readRun,
  readRunLog,
  readRunLogBytes,
  RunConflictError,
  runLiveness,
  runStep,
  type StepExecutionRequest,
  ValidationError,
  type WorkerExecutor,
} from "../mod.ts";
import {
  allKeys,
  baseRequest,
  countingStorage,
  localStorages,
  readText,
  withoutAppend,
  withTempDir,
} from "./helpers.ts";

const ref = { taskId: "task-1", runId: "run-1" };

describe("runStep() with the placeholder executor", () => {
  it("records the seed's events in the seed's order with one strictly increasing sequence", async () => {
    const storage = createMemoryStorage();
    const result = await runStep(baseRequest(), undefined, { storage });
    assert.equal(result.outcome, "prepared");
    assert.equal(result.ok, true);
    assert.deepEqual(result.lifecycleEvents.map((e) => e.type), [
      "run_prepared",
      "checkpoint_slot_reserved",
      "worker_started",
      "worker_execution_deferred",
      "worker_exited",
      "step_prepared",
    ]);
    assert.deepEqual(result.lifecycleEvents.map((e) => e.seq), [1, 2, 3, 4, 5, 6]);

    const stored = await readRun(storage, ref);
    assert.deepEqual(stored.events, result.lifecycleEvents);
    assert.equal(stored.state?.status, "prepared");
    assert.equal(stored.state?.lastEventSeq, 6);
    assert.ok(stored.state?.finishedAt);
    assert.equal(result.metrics.lifecycleEventCount, stored.events.length);
    assert.equal(result.metrics.checkpointCount, stored.checkpoints.length);
    assert.deepEqual(stored.checkpoints.map((c) => c.type), ["summary", "log_tail"]);
    assert.equal(stored.state?.checkpointSeq, 2);
    assert.equal(result.metrics.stdoutChunkCount, 0);
    assert.deepEqual(result.state, stored.state);
    assert.deepEqual(stored.metadata, result.metadata);
    for (const event of stored.events) {
      assert.equal(event.eventId, `run-1:${event.seq}`);
      assert.match(event.renderedLine, new RegExp(`#${event.seq} ${event.type}: `));
    }
  });

  it("is the default executor", async () => {
    const storage = createMemoryStorage();
    const result = await runStep(baseRequest(), undefined, { storage });
    const explicit = await runStep(
      baseRequest({ runId: "run-2" }),
      createPlaceholderWorkerExecutor(),
      { storage },
    );
    assert.equal(result.summary, explicit.summary);
    assert.match(result.summary, /execution remains deferred/);
  });

  it("writes files where the seed put them when no storage is given", async () => {
    await withTempDir(async (repoRoot) => {
      const result = await runStep(baseRequest({ runtime: { repoRoot, worktreePath: repoRoot } }));
      const runDir = join(repoRoot, "runs", "task-1", "run-1");
      assert.equal(result.logPaths.runDir, runDir);
      assert.equal(result.logPaths.statePath, join(runDir, "state.json"));
      const state = JSON.parse(await readFile(join(runDir, "state.json"), "utf8"));
      assert.equal(state.status, "prepared");
      const worker = (await readFile(join(runDir, "worker.log"), "utf8")).trim().split("\n").map((
        l,
      ) => JSON.parse(l));
      assert.equal(worker.length, 6);
      assert.equal(await readFile(join(runDir, "stdout.log"), "utf8"), "");
    });
  });

  it("uses an absolute runsRootDir as it is", async () => {
    await withTempDir(async (dir) => {
      const runsRootDir = join(dir, "elsewhere", "runs");
      const result = await runStep(
        baseRequest({ runtime: { repoRoot: join(dir, "repo"), worktreePath: dir, runsRootDir } }),
      );
      assert.equal(result.logPaths.metaPath, join(runsRootDir, "task-1", "run-1", "meta.json"));
      JSON.parse(await readFile(result.logPaths.metaPath, "utf8"));
    });
  });
});

describe("runStep() with outcome arrays", () => {
  it("stores each stdout/stderr entry as one line and counts them", async () => {
    const storage = createMemoryStorage();
    const executor: WorkerExecutor = {
      execute: () => ({
        ok: true,
        outcome: "completed",
        summary: "Done.",
        stdout: ["first", "second\n", ""],
        stderr: ["warning: x"],
      }),
    };
    const result = await runStep(baseRequest(), executor, { storage });
    assert.equal(await readRunLog(storage, ref, "stdout"), "first\nsecond\n\n");
    assert.equal(await readRunLog(storage, ref, "stderr"), "warning: x\n");
    assert.equal(result.metrics.stdoutChunkCount, 3);
    assert.equal(result.metrics.stderrChunkCount, 1);
    assert.equal(result.logSummary.totalEntries, result.lifecycleEvents.length + 4);
    assert.equal(result.logSummary.lastSeq, result.state.lastEventSeq);
    const seqs = [
      ...result.lifecycleEvents,
      ...result.logSession.stdout.entries,
      ...result.logSession.stderr.entries,
    ]
      .map((e) => e.seq).sort((a, b) => a - b);
    assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1));
    assert.equal(result.state.status, "completed");
  });
});

describe("runStep() with a failing executor", () => {
  for (
    const [label, executor] of [
      ["throws", {
        execute: () => {
          throw new Error("boom");
        },
      }],
      ["rejects", { execute: () => Promise.reject(new TypeError("bad things")) }],
      ["returns garbage", { execute: () => ({ nope: true }) as never }],
      ["returns non-string stdout lines", {
        execute: () => ({ ok: true, outcome: "completed", summary: "x", stdout: [42] }) as never,
      }],
    ] as const
  ) {
    it(`records a failed run when the executor ${label}, and resolves`, async () => {
      const storage = createMemoryStorage();
      const result = await runStep(baseRequest(), executor as WorkerExecutor, { storage });
      assert.equal(result.outcome, "failed");
      assert.equal(result.ok, false);
      assert.equal(result.exitCode, 1);
      assert.equal(result.reason, "executor_error");
      const stored = await readRun(storage, ref);
      assert.equal(stored.state?.status, "failed");
      assert.equal(stored.events.at(-1)?.type, "step_failed");
      assert.equal(stored.events.at(-1)?.level, "error");
      assert.match(stored.events.at(-1)!.message, /Executor failed/);
    });
  }
});

describe("runStep() input validation", () => {
  const longId = "x".repeat(5000);
  const cases: [string, (r: StepExecutionRequest) => unknown, string][] = [
    ["taskId '..'", (r) => ({ ...r, taskId: ".." }), "taskId"],
    ["taskId with '..' inside", (r) => ({ ...r, taskId: "a..b" }), "taskId"],
    ["taskId with '/'", (r) => ({ ...r, taskId: "a/b" }), "taskId"],
    ["taskId with '\\'", (r) => ({ ...r, taskId: "a\\b" }), "taskId"],
    ["taskId with NUL", (r) => ({ ...r, taskId: "a\u0000b" }), "taskId"],
    ["taskId empty", (r) => ({ ...r, taskId: "" }), "taskId"],
    ["taskId of 5,000 chars", (r) => ({ ...r, taskId: longId }), "taskId"],
    ["taskId '.'", (r) => ({ ...r, taskId: "." }), "taskId"],
    ["taskId with newline", (r) => ({ ...r, taskId: "a\nb" }), "taskId"],
    ["taskId a number", (r) => ({ ...r, taskId: 42 }), "taskId"],
    ["runId '../../etc'", (r) => ({ ...r, runId: "../../etc" }), "runId"],
    ["runId with '/'", (r) => ({ ...r, runId: "x/y" }), "runId"],
    ["runId empty", (r) => ({ ...r, runId: "" }), "runId"],
    ["runId of 5,000 chars", (r) => ({ ...r, runId: longId }), "runId"],
    ["runId with DEL", (r) => ({ ...r, runId: "a\u007f" }), "runId"],
    ["runId with leading space", (r) => ({ ...r, runId: " run" }), "runId"],
    ["stepId with '\\'", (r) => ({ ...r, stepId: "..\\x" }), "stepId"],
    ["stepId missing", (r) => ({ ...r, stepId: undefined }), "stepId"],
    ["stepName empty", (r) => ({ ...r, stepName: "" }), "stepName"],
    ["stepKind missing", (r) => ({ ...r, stepKind: undefined }), "stepKind"],
    ["attempt 0", (r) => ({ ...r, attempt: 0 }), "attempt"],
    ["attempt 1.5", (r) => ({ ...r, attempt: 1.5 }), "attempt"],
    ["attempt a string", (r) => ({ ...r, attempt: "1" }), "attempt"],
    ["workerKind null", (r) => ({ ...r, workerKind: null }), "workerKind"],
    ["timeoutSec negative", (r) => ({ ...r, timeoutSec: -1 }), "timeoutSec"],
    ["timeoutSec NaN", (r) => ({ ...r, timeoutSec: Number.NaN }), "timeoutSec"],
    ["timeoutSec missing", (r) => ({ ...r, timeoutSec: undefined }), "timeoutSec"],
    ["runtime missing", (r) => ({ ...r, runtime: undefined }), "runtime"],
    [
      "repoRoot empty",
      (r) => ({ ...r, runtime: { ...r.runtime, repoRoot: "" } }),
      "runtime.repoRoot",
    ],
    [
      "worktreePath a number",
      (r) => ({ ...r, runtime: { ...r.runtime, worktreePath: 7 } }),
      "runtime.worktreePath",
    ],
    [
      "runsRootDir with '..'",
      (r) => ({ ...r, runtime: { ...r.runtime, runsRootDir: "../outside" } }),
      "runtime.runsRootDir",
    ],
    ["createdAt not a date", (r) => ({ ...r, createdAt: "yesterday" }), "createdAt"],
    ["command an empty array", (r) => ({ ...r, command: [] }), "command"],
    [
      "checkpoint mode unknown",
      (r) => ({ ...r, checkpoint: { mode: "sometimes" } }),
      "checkpoint.mode",
    ],
    [
      "logTailLines 0",
      (r) => ({ ...r, checkpoint: { logTailLines: 0 } }),
      "checkpoint.logTailLines",
    ],
    ["request null", () => null, "(root)"],
  ];
  for (const [label, mutate, field] of cases) {
    it(`refuses ${label} with a ValidationError naming '${field}' and writes nothing`, async () => {
      const storage = createMemoryStorage();
      const request = mutate(baseRequest()) as StepExecutionRequest;
      await assert.rejects(runStep(request, undefined, { storage }), (error: unknown) => {
        assert.ok(error instanceof ValidationError, String(error));
        assert.equal(error.field, field);
        assert.equal(error.code, "validation_failed");
        assert.ok(error.message.includes(`'${field}'`), error.message);
        assert.ok(error.message.length < 500, "the message does not echo huge input");
        return true;
      });
      assert.deepEqual(await allKeys(storage), []);
    });
  }

  it("refuses bad options with a ValidationError naming the option", async () => {
    const storage = createMemoryStorage();
    await assert.rejects(runStep(baseRequest(), undefined, { storage, flushIntervalMs: -5 }), {
      field: "flushIntervalMs",
    });
    await assert.rejects(
      runStep(baseRequest(), undefined, { storage: { name: "broken" } as never }),
      { field: "storage" },
    );
    await assert.rejects(
      runStep(baseRequest(), undefined, {
        storage,
        maxOutputBytes: { stdout: 10, headRatio: 1.5 },
      }),
      { field: "maxOutputBytes.headRatio" },
    );
    assert.deepEqual(await allKeys(storage), []);
  });

  it("refuses an executor without execute() with a ValidationError, writing nothing", async () => {
    const storage = createMemoryStorage();
    await assert.rejects(runStep(baseRequest(), {} as WorkerExecutor, { storage }), {
      name: "ValidationError",
      field: "executor.execute",
    });
    assert.deepEqual(await allKeys(storage), []);
  });
});

describe("runStep() duplicate runs", () => {
  const storages = { memory: localStorages.memory, fs: localStorages.fs };
  for (const [name, make] of Object.entries(storages)) {
    it(`refuses a second run with the same ids on ${name}, leaving the first untouched`, async () => {
      const { storage, done } = await make();
      try {
        await runStep(baseRequest(), {
          execute: () => ({ ok: true, outcome: "completed", summary: "first", stdout: ["one"] }),
        }, { storage });
        const before = await Promise.all(
          ["meta.json", "state.json", "stdout.log", "worker.log"].map((f) =>
            readText(storage, `runs/task-1/run-1/${f}`)
          ),
        );
        let executed = false;
        await assert.rejects(
          runStep(baseRequest({ stepName: "second" }), {
            execute: () => {
              executed = true;
              return { ok: true, outcome: "completed", summary: "second" };
            },
          }, { storage }),
          (error: unknown) => error instanceof RunConflictError && error.code === "run_conflict",
        );
        assert.equal(executed, false);
        const after = await Promise.all(
          ["meta.json", "state.json", "stdout.log", "worker.log"].map((f) =>
            readText(storage, `runs/task-1/run-1/${f}`)
          ),
        );
        assert.deepEqual(after, before);
      } finally {
        await done();
      }
    });

    it(`lets exactly one of 10 concurrent duplicates run on ${name}`, async () => {
      const { storage, done } = await make();
      try {
        const results = await Promise.allSettled(
          Array.from(
            { length: 10 },
            (_, i) =>
              runStep(baseRequest({ stepName: `contender ${i}` }), {
                execute: () => ({
                  ok: true,
                  outcome: "completed",
                  summary: `winner ${i}`,
                  stdout: [`from ${i}`],
                }),
              }, { storage }),
          ),
        );
        const winners = results.filter((r) => r.status === "fulfilled");
        assert.equal(winners.length, 1);
        for (const r of results) {
          if (r.status === "rejected") assert.ok(r.reason instanceof RunConflictError);
        }
        const winner =
          (winners[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof runStep>>>).value;
        const stored = await readRun(storage, ref);
        assert.equal(stored.metadata.stepName, winner.metadata.stepName);
        assert.equal(stored.state?.summary, winner.summary);
        assert.equal(
          await readRunLog(storage, ref, "stdout"),
          `${winner.summary.replace("winner", "from")}\n`,
        );
        assert.equal(stored.events.filter((e) => e.type === "run_prepared").length, 1);
      } finally {
        await done();
      }
    });
  }
});

function streamingExecutor(chunks: number, line: (i: number) => string): WorkerExecutor {
  return {
    async execute(_run, context) {
      for (let i = 0; i < chunks; i++) {
        const pending = context.stdout(line(i));
        if (pending) await pending;
      }
      return { ok: true, outcome: "completed", summary: `Printed ${chunks} chunks.` };
    },
  };
}

describe("runStep() write batching", () => {
  const line = (i: number) => `chunk ${i} ${"é".repeat(i % 5)} ${"x".repeat(i % 40)}\n`;
  const expected = Array.from({ length: 20_000 }, (_, i) => line(i)).join("");
  for (const [name, make] of Object.entries(localStorages)) {
    it(`stores 20,000 context.stdout chunks byte-exact in at most 200 writes on ${name}`, async () => {
      const { storage: inner, done } = await make();
      try {
        const { storage, counts } = countingStorage(inner);
        const result = await runStep(baseRequest(), streamingExecutor(20_000, line), {
          storage,
          flushBytes: 64 * 1024,
        });
        assert.equal(await readRunLog(inner, ref, "stdout"), expected);
        assert.equal(result.metrics.stdoutChunkCount, 20_000);
        assert.equal(result.metrics.stdoutBytes, new TextEncoder().encode(expected).byteLength);
        assert.ok(counts.mutations <= 200, `${counts.mutations} storage writes`);
        assert.ok(
          result.logSession.stdout.entries.length <= 200,
          "the session keeps a tail, not every chunk",
        );
        assert.equal(result.logSession.stdout.entries.at(-1)?.text, line(19_999));
        assert.equal(
          (await allKeys(inner)).filter((k) => k.includes(".segments/")).length,
          0,
          "no segments left",
        );
      } finally {
        await done();
      }
    });
  }

  it("copies byte chunks, so an executor may reuse its buffer", async () => {
    const storage = createMemoryStorage();
    const buffer = new Uint8Array(1024);
    const expected: number[] = [];
    await runStep(baseRequest(), {
      async execute(_run, context) {
        for (let i = 0; i < 3000; i++) {
          buffer.fill(i % 251);
          for (let j = 0; j < buffer.length; j++) expected.push(i % 251);
          const pending = context.stdout(buffer);
          if (pending) await pending;
        }
        return { ok: true, outcome: "completed", summary: "reused" };
      },
    }, { storage, flushBytes: 64 * 1024 });
    const stored = await readRunLogBytes(storage, ref, "stdout");
    assert.equal(stored.byteLength, expected.length);
    assert.deepEqual(stored, new Uint8Array(expected));
  });

  it("keeps 40 concurrent runs on one storage apart", async () => {
    const storage = createMemoryStorage();
    const results = await Promise.all(
      Array.from(
        { length: 40 },
        (_, i) =>
          runStep(baseRequest({ runId: `run-${i}`, taskId: `task-${i % 4}` }), {
            async execute(run, context) {
              for (let j = 0; j < 50; j++) {
                await context.stdout(`${run.request.runId} line ${j}\n`);
                if (j % 10 === 0) {
                  await new Promise((r) => setTimeout(r, 1));
                }
              }
              await context.stderr(`${run.request.runId} done\n`);
              return { ok: true, outcome: "completed", summary: run.request.runId };
            },
          }, { storage }),
      ),
    );
    for (let i = 0; i < 40; i++) {
      const r = { taskId: `task-${i % 4}`, runId: `run-${i}` };
      assert.equal(results[i].summary, `run-${i}`);
      const stdout = await readRunLog(storage, r, "stdout");
      assert.equal(stdout, Array.from({ length: 50 }, (_, j) => `run-${i} line ${j}\n`).join(""));
      assert.equal(await readRunLog(storage, r, "stderr"), `run-${i} done\n`);
      const stored = await readRun(storage, r);
      assert.equal(stored.metadata.runId, `run-${i}`);
      assert.ok(stored.events.every((e) => e.runId === `run-${i}`));
    }
  });
});

describe("runStep() live readers", () => {
  for (
    const [name, make] of [["memory", () => createMemoryStorage()], [
      "segments",
      () => withoutAppend(createMemoryStorage()),
    ]] as const
  ) {
    it(`lets a reader see output while the run is live (${name})`, async () => {
      const storage = make();
      let seenLive = "";
      let stateLive = "";
      await runStep(baseRequest(), {
        async execute(_run, context) {
          await context.stdout("first line\n");
          // Poll like a separate reader would; the run must publish within about a second.
          for (let i = 0; i < 50 && seenLive === ""; i++) {
            await new Promise((r) => setTimeout(r, 100));
            seenLive = await readRunLog(storage, ref, "stdout");
            stateLive = (await readRun(storage, ref)).state?.status ?? "";
          }
          await context.stdout("second line\n");
          return { ok: true, outcome: "completed", summary: "ok" };
        },
      }, { storage, flushIntervalMs: 200 });
      assert.equal(seenLive, "first line\n");
      assert.equal(stateLive, "running");
      assert.equal(await readRunLog(storage, ref, "stdout"), "first line\nsecond line\n");
    });
  }

  it("advances state.json's updatedAt while a silent worker runs (heartbeat)", async () => {
    const storage = createMemoryStorage();
    const seen = new Set<string>();
    await runStep(baseRequest(), {
      async execute() {
        for (let i = 0; i < 30 && seen.size < 3; i++) {
          await new Promise((r) => setTimeout(r, 100));
          const state = JSON.parse((await readText(storage, "runs/task-1/run-1/state.json"))!);
          if (state.status === "running") seen.add(state.updatedAt);
        }
        return { ok: true, outcome: "completed", summary: "quiet" };
      },
    }, { storage, flushIntervalMs: 100, heartbeatMs: 300 });
    assert.ok(seen.size >= 3, `saw ${seen.size} distinct heartbeats`);
  });
});

describe("prepareStepRun()", () => {
  it("writes the layout and preparation events without executing", async () => {
    const storage = createMemoryStorage();
    const run = await prepareStepRun(baseRequest(), { storage });
    assert.equal(run.state.status, "prepared");
    assert.equal(run.logPaths.metaPath, "memory://runs/task-1/run-1/meta.json");
    const stored = await readRun(storage, ref);
    assert.deepEqual(stored.events.map((e) => e.type), [
      "run_prepared",
      "checkpoint_slot_reserved",
    ]);
    assert.equal(stored.checkpoints[0].type, "summary");
  });

  it("records no checkpoints and no slot event when checkpoints are disabled", async () => {
    const storage = createMemoryStorage();
    const result = await runStep(baseRequest({ checkpoint: { mode: "disabled" } }), undefined, {
      storage,
    });
    assert.deepEqual(result.lifecycleEvents.map((e) => e.type), [
      "run_prepared",
      "worker_started",
      "worker_execution_deferred",
      "worker_exited",
      "step_prepared",
    ]);
    assert.deepEqual(await allKeys(storage, "runs/task-1/run-1/checkpoints/"), []);
  });

  it("keeps the git diff plan in the checkpoint config and the slot event", async () => {
    const storage = createMemoryStorage();
    const result = await runStep(
      baseRequest({
        checkpoint: {
          gitDiff: { baseRef: "main", cadenceSec: { min: 10, max: 60 } },
          logTailLines: 3,
        },
      }),
      {
        execute: () => ({
          ok: true,
          outcome: "completed",
          summary: "ok",
          stdout: ["a", "b", "c", "d", "e"],
        }),
      },
      { storage },
    );
    assert.deepEqual(result.checkpoint.supportedTypes, ["summary", "log_tail", "git_diff"]);
    assert.deepEqual(result.checkpoint.gitDiffPlan?.commands.binaryDiff.args, [
      "git",
      "diff",
      "--binary",
      "main",
    ]);
    const slot = result.lifecycleEvents.find((e) => e.type === "checkpoint_slot_reserved")!;
    assert.deepEqual((slot.data.gitDiffCommands as { cadenceSec: unknown }).cadenceSec, {
      min: 10,
      max: 60,
    });
    const tail = result.checkpoint.records.find((r) => r.type === "log_tail")!;
    assert.deepEqual((tail.data.lines as { text: string }[]).map((l) => l.text), ["c", "d", "e"]);
  });
});

describe("readRun()", () => {
  it("names a corrupted record instead of throwing a bare SyntaxError", async () => {
    const storage = createMemoryStorage();
    await runStep(baseRequest(), undefined, { storage });
    await storage.write("runs/task-1/run-1/state.json", "{ torn");
    await assert.rejects(readRun(storage, ref), (error: unknown) => {
      assert.ok(error instanceof ValidationError);
      assert.match(error.message, /runs\/task-1\/run-1\/state\.json/);
      return true;
    });
  });

  it("throws NotFoundError for a run that does not exist", async () => {
    const storage = createMemoryStorage();
    await assert.rejects(readRun(storage, ref), { name: "NotFoundError", code: "not_found" });
    await assert.rejects(readRunLog(storage, ref, "stdout"), { code: "not_found" });
  });

  it("refuses a path-unsafe reference with a ValidationError", async () => {
    await assert.rejects(
      readRun(createMemoryStorage(), { taskId: "..", runId: "r" }),
      { field: "taskId" },
    );
  });
});

describe("runLiveness()", () => {
  it("tells a live run, a finished run and a run whose writer died apart", async () => {
    const storage = createMemoryStorage();
    let during: ReturnType<typeof runLiveness> | undefined;
    let later: ReturnType<typeof runLiveness> | undefined;
    const result = await runStep(baseRequest(), {
      async execute() {
        const state = (await readRun(storage, ref)).state!;
        during = runLiveness(state);
        // The same snapshot seen 20 s later with no heartbeat since: the writer is gone.
        later = runLiveness(state, { now: new Date(Date.parse(state.updatedAt) + 20_000) });
        return { ok: true, outcome: "completed", summary: "ok" };
      },
    }, { storage });
    assert.equal(during, "live");
    assert.equal(later, "stale");
    assert.equal(runLiveness(result.state), "finished");
  });
});
