// Git checkpoints through runStep: captured on a cadence, on timeout and cancel before the worker
// is stopped, once more at the end; restored onto a fresh clone; a next attempt resumed from them.

import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DirtyWorktreeError, NotFoundError } from "../core/errors.ts";
import { readRun } from "../core/read.ts";
import { runStep } from "../core/runner.ts";
import type { StepExecutionRequest } from "../core/types.ts";
import { restoreCheckpoint } from "../git/checkpoints.ts";
import { createFsStorage } from "../storage/fs.ts";
import { createMemoryStorage } from "../storage/memory.ts";
import { createS3Storage } from "../storage/s3.ts";
import type { RunStorage } from "../storage/types.ts";
import { allKeys } from "./helpers.ts";
import {
  assertSameTree,
  createRepos,
  git,
  leaves,
  put,
  sleep,
  withTempDir,
} from "./git_helpers.ts";
import { createBucket, deleteBucketRecursive, uniqueBucketName } from "./s3/bucket.ts";
import { requireRgw } from "./s3/rgw_env.ts";

function request(
  worktree: string,
  overrides: Partial<StepExecutionRequest> = {},
): StepExecutionRequest {
  return {
    taskId: "task-g",
    stepId: "edit",
    stepName: "Edit files",
    stepKind: "codegen",
    runId: "run-1",
    attempt: 1,
    workerKind: "script",
    timeoutSec: 30,
    runtime: { repoRoot: worktree, worktreePath: worktree },
    checkpoint: { gitDiff: { cadenceSec: { min: 0.1, max: 1 } } },
    ...overrides,
  };
}

async function setup(root: string) {
  return await createRepos(root, async (dir) => {
    await put(dir, "src/app.ts", "export const answer = 41;\n");
    await put(dir, "README.md", "# demo\n");
    await put(dir, ".gitignore", "runs/\n");
  });
}

/** Waits until a run has `count` git checkpoint records (at most 20 s). */
async function waitForCaptures(storage: RunStorage, count: number) {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if ((await gitRecords(storage).catch(() => [])).length >= count) return;
    await sleep(50);
  }
  assert.fail(`fewer than ${count} checkpoints within 20 s`);
}

/** Waits until a run's lifecycle log has a `checkpoint_captured` event (at most 20 s). */
async function waitForCapture(storage: RunStorage, runId = "run-1") {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const run = await readRun(storage, { taskId: "task-g", runId }).catch(() => undefined);
    if (run?.events.some((e) => e.type === "checkpoint_captured")) return;
    await sleep(50);
  }
  assert.fail("no checkpoint was captured within 20 s");
}

async function gitRecords(storage: RunStorage, runId = "run-1") {
  const run = await readRun(storage, { taskId: "task-g", runId });
  return run.checkpoints.filter((c) => c.type === "git_diff") as unknown as {
    seq: number;
    data: {
      trigger: string;
      patch: { key: string; deletedAt?: string } | null;
      stats: { files: number };
    };
  }[];
}

describe("git checkpoints through runStep", () => {
  it("captures edits while the worker runs and at the end; restore reproduces the worktree on a fresh clone", async () => {
    await withTempDir("gitcp-", async (root) => {
      const { upstream, agent, base } = await setup(root);
      const storage = createMemoryStorage();
      const result = await runStep(request(agent), {
        async execute() {
          await put(agent, "src/app.ts", "export const answer = 42;\n");
          // Quiet until the cadence loop stored the edit (polls every 100 ms).
          await waitForCapture(storage);
          await put(agent, "notes/new file.txt", "untracked, with a space\n");
          await rm(join(agent, "README.md"));
          return { ok: true, outcome: "completed", summary: "edited" };
        },
      }, { storage });
      assert.equal(result.outcome, "completed");
      const records = await gitRecords(storage);
      assert.ok(records.length >= 2, `${records.length} git checkpoints`);
      assert.ok(records.some((r) => r.data.trigger === "quiet" || r.data.trigger === "cadence"));
      assert.equal(records.at(-1)!.data.trigger, "final");
      const run = await readRun(storage, { taskId: "task-g", runId: "run-1" });
      assert.equal(run.metadata.git?.baseCommit, base);
      assert.ok(run.events.some((e) => e.type === "checkpoint_captured"));
      assert.equal(run.state?.checkpointSeq, run.checkpoints.at(-1)!.seq);

      const clone = join(root, "clone");
      await git(root, "clone", "-q", upstream, clone);
      const restored = await restoreCheckpoint(storage, { taskId: "task-g", runId: "run-1" }, {
        worktree: clone,
      });
      assert.equal(restored.applied, true);
      assert.deepEqual(restored.conflicts, []);
      assert.equal(restored.baseCommit, base);
      assertSameTree(await leaves(clone), await leaves(agent));
    });
  });

  it("a worker that edits then hangs past its timeout: a 'timeout' capture with the edits, before it is stopped", async () => {
    await withTempDir("gitcp-", async (root) => {
      const { agent } = await setup(root);
      const storage = createMemoryStorage();
      let editedAt = 0;
      const result = await runStep(
        request(agent, {
          timeoutSec: 0.5,
          checkpoint: { gitDiff: { cadenceSec: { min: 30, max: 300 } } },
        }),
        {
          async execute(_run, context) {
            await put(agent, "src/app.ts", "export const answer = 43;\n");
            editedAt = Date.now();
            await new Promise((resolve) => context.signal.addEventListener("abort", resolve));
            // Stopped only after the capture: the edit below is not part of it.
            await put(agent, "src/late.ts", "written after the signal\n");
            return { ok: false, outcome: "failed", summary: "stopped" };
          },
        },
        { storage },
      );
      assert.equal(result.reason, "timeout");
      assert.ok(editedAt > 0);
      const records = await gitRecords(storage);
      const timeout = records.find((r) => r.data.trigger === "timeout");
      assert.ok(timeout, JSON.stringify(records.map((r) => r.data.trigger)));
      assert.equal(timeout.data.stats.files, 1);
      // The final capture after the worker exited holds the late file too.
      assert.equal(records.at(-1)!.data.trigger, "final");
      assert.equal(records.at(-1)!.data.stats.files, 2);
    });
  });

  it("cancel: a 'cancel' capture before the worker is stopped", async () => {
    await withTempDir("gitcp-", async (root) => {
      const { agent } = await setup(root);
      const storage = createMemoryStorage();
      const controller = new AbortController();
      const result = await runStep(
        request(agent, {
          checkpoint: { gitDiff: { cadenceSec: { min: 30, max: 300 } } },
        }),
        {
          async execute(_run, context) {
            await put(agent, "src/app.ts", "export const answer = 44;\n");
            setTimeout(() => controller.abort(), 50);
            await new Promise((resolve) => context.signal.addEventListener("abort", resolve));
            return { ok: false, outcome: "failed", summary: "stopped" };
          },
        },
        { storage, signal: controller.signal },
      );
      assert.equal(result.reason, "cancelled");
      const triggers = (await gitRecords(storage)).map((r) => r.data.trigger);
      assert.deepEqual(triggers, ["cancel"], "the final capture found nothing new");
    });
  });

  it("stores nothing for a run that changed nothing", async () => {
    await withTempDir("gitcp-", async (root) => {
      const { agent } = await setup(root);
      const storage = createMemoryStorage();
      await runStep(request(agent), {
        async execute() {
          await sleep(300);
          return { ok: true, outcome: "completed", summary: "nothing" };
        },
      }, { storage });
      assert.deepEqual(await gitRecords(storage), []);
      await assert.rejects(
        restoreCheckpoint(storage, { taskId: "task-g", runId: "run-1" }, { worktree: agent }),
        NotFoundError,
      );
    });
  });

  it("leaves the run's own logs out when runs are written inside the worktree (not ignored)", async () => {
    await withTempDir("gitcp-", async (root) => {
      const { agent } = await createRepos(root, (dir) => put(dir, "a.txt", "a\n"));
      // The filesystem default: runs under <repoRoot>/runs, here the worktree itself.
      const result = await runStep(request(agent), {
        async execute(_run, context) {
          for (let i = 0; i < 5; i++) {
            await context.stdout(`line ${i}\n`);
            await sleep(150);
          }
          return { ok: true, outcome: "completed", summary: "printed, changed nothing" };
        },
      });
      assert.equal(result.outcome, "completed");
      const storage = createFsStorage({ root: agent });
      assert.deepEqual(await gitRecords(storage), [], "no checkpoint of the run's own logs");
    });
  });

  it("keepPatches deletes older patches; their records stay and say so", async () => {
    await withTempDir("gitcp-", async (root) => {
      const { agent } = await setup(root);
      const storage = createMemoryStorage();
      await runStep(
        request(agent, {
          checkpoint: { gitDiff: { cadenceSec: { min: 0.1, max: 0.2 }, keepPatches: 1 } },
        }),
        {
          async execute() {
            for (let i = 0; i < 3; i++) {
              await put(agent, "src/app.ts", `export const answer = ${50 + i};\n`);
              await waitForCaptures(storage, i + 1);
            }
            return { ok: true, outcome: "completed", summary: "edited thrice" };
          },
        },
        { storage },
      );
      const records = await gitRecords(storage);
      assert.ok(records.length >= 2, `${records.length} records`);
      const kept = records.filter((r) => r.data.patch && r.data.patch.deletedAt === undefined);
      assert.equal(kept.length, 1);
      assert.equal(kept[0].seq, records.at(-1)!.seq);
      const keys = await allKeys(storage);
      for (const record of records.slice(0, -1)) {
        assert.ok(record.data.patch?.deletedAt, `record #${record.seq} says its patch was deleted`);
        assert.ok(!keys.includes(record.data.patch!.key), `patch of #${record.seq} is gone`);
      }
      await assert.rejects(
        restoreCheckpoint(storage, { taskId: "task-g", runId: "run-1" }, {
          worktree: agent,
          seq: records[0].seq,
        }),
        NotFoundError,
      );
    });
  });
});

/** Attempt 1 edits and is killed by its timeout; attempt 2 resumes from it. */
async function resumeEndToEnd(storage: RunStorage) {
  await withTempDir("gitresume-", async (root) => {
    const { upstream, agent } = await setup(root);
    const first = await runStep(
      request(agent, {
        timeoutSec: 0.5,
        checkpoint: { gitDiff: { cadenceSec: { min: 30, max: 300 } } },
      }),
      {
        async execute(_run, context) {
          await put(agent, "src/app.ts", "export const answer = 42; // attempt 1\n");
          await put(agent, "src/helper.ts", "export const helper = true;\n");
          await new Promise((resolve) => context.signal.addEventListener("abort", resolve));
          return { ok: false, outcome: "failed", summary: "killed" };
        },
      },
      { storage },
    );
    assert.equal(first.reason, "timeout");

    // Attempt 2 in a fresh worktree at the base commit.
    const second = join(root, "attempt-2");
    await git(root, "clone", "-q", upstream, second);
    let seen = "";
    const result = await runStep(
      request(second, {
        runId: "run-2",
        attempt: 2,
        resumeFrom: { runId: "run-1" },
        checkpoint: { gitDiff: { cadenceSec: { min: 30, max: 300 } } },
      }),
      {
        async execute() {
          seen = await readFile(join(second, "src/app.ts"), "utf8") +
            await readFile(join(second, "src/helper.ts"), "utf8");
          await writeFile(join(second, "src/app.ts"), "export const answer = 42; // attempt 2\n");
          return { ok: true, outcome: "completed", summary: "finished the job" };
        },
      },
      { storage },
    );
    assert.equal(result.outcome, "completed");
    assert.equal(seen, "export const answer = 42; // attempt 1\nexport const helper = true;\n");
    const run = await readRun(storage, { taskId: "task-g", runId: "run-2" });
    assert.equal(run.metadata.resumedFrom?.runId, "run-1");
    assert.equal(run.metadata.git?.baseCommit, run.metadata.resumedFrom?.baseCommit);
    assert.ok(run.events.some((e) => e.type === "checkpoint_restored"));
    // Attempt 2's checkpoint is cumulative against the same base: both attempts' work.
    const final = (await gitRecords(storage, "run-2")).at(-1)!;
    assert.equal(final.data.stats.files, 2);
  });
}

describe("resume from another attempt's checkpoint", () => {
  it("fs: attempt 2 starts with attempt 1's edits", () =>
    withTempDir("gitresume-store-", (dir) => resumeEndToEnd(createFsStorage({ root: dir }))));

  it("S3 (Ceph RGW): attempt 2 starts with attempt 1's edits", async (t) => {
    const env = requireRgw(t);
    if (env === undefined) return;
    const bucket = uniqueBucketName("resume");
    await createBucket(env, bucket);
    try {
      await resumeEndToEnd(createS3Storage({ ...env, bucket }));
    } finally {
      await deleteBucketRecursive(env, bucket);
    }
  });

  it("a dirty worktree is refused before anything of the new run is written", async () => {
    await withTempDir("gitresume-", async (root) => {
      const { agent } = await setup(root);
      const storage = createMemoryStorage();
      await runStep(request(agent), {
        async execute() {
          await put(agent, "src/app.ts", "export const answer = 45;\n");
          return { ok: true, outcome: "completed", summary: "edited" };
        },
      }, { storage });
      // The same worktree still holds attempt 1's edit: dirty.
      await assert.rejects(
        runStep(request(agent, { runId: "run-2", resumeFrom: { runId: "run-1" } }), undefined, {
          storage,
        }),
        DirtyWorktreeError,
      );
      const keys = await allKeys(storage);
      assert.ok(!keys.some((k) => k.includes("/run-2/")), "nothing of run-2 was written");
    });
  });
});
