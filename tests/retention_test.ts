// deleteRun() and pruneRuns() on the local storages: live runs are never touched without force,
// stale runs are reported (or reaped first when asked), a dry run deletes nothing, and a deleted
// run leaves no key behind (segments included).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  deleteRun,
  listRuns,
  NotFoundError,
  pruneRuns,
  readRun,
  RunConflictError,
  runStep,
  ValidationError,
} from "../mod.ts";
import { allKeys, baseRequest, localStorages } from "./helpers.ts";
import { kindOf, seedRun } from "./fixtures/seed_runs.ts";

const day = 86_400_000;

for (const [name, make] of Object.entries(localStorages)) {
  describe(`deleteRun() on ${name}`, () => {
    it("refuses a live run unless forced, and removes every key of the run (segments included)", async () => {
      const { storage, done } = await make();
      try {
        const ref = { taskId: "task-1", runId: "run-1" };
        let refused: unknown;
        let forced: { deletedKeys: number } | undefined;
        await runStep(baseRequest(), {
          async execute(_run, context) {
            await context.stdout("some output\n");
            await new Promise((resolve) => setTimeout(resolve, 50)); // flushed: segments exist
            refused = await deleteRun(storage, ref).catch((error) => error);
            return { ok: true, outcome: "completed", summary: "" };
          },
        }, { storage, flushIntervalMs: 10 });
        assert.ok(refused instanceof RunConflictError, `got ${refused}`);
        await runStep(baseRequest({ runId: "run-2" }), {
          async execute(_run, context) {
            await context.stdout("more\n");
            await new Promise((resolve) => setTimeout(resolve, 50));
            forced = await deleteRun(storage, { ...ref, runId: "run-2" }, { force: true });
            return { ok: true, outcome: "completed", summary: "" };
          },
        }, { storage, flushIntervalMs: 10 }).catch(() => {}); // its writer may now fail
        assert.ok(forced !== undefined && forced.deletedKeys >= 3);

        await storage.write("runs/task-1/run-10/meta.json", "{}"); // a neighbour with a longer id
        const result = await deleteRun(storage, ref);
        assert.equal(result.liveness, "finished");
        assert.deepEqual(
          (await allKeys(storage, "runs/task-1/")).filter((k) => !k.includes("/run-2/")),
          ["runs/task-1/run-10/meta.json"],
        );
        await assert.rejects(readRun(storage, ref), NotFoundError);
        await assert.rejects(deleteRun(storage, ref), NotFoundError);
      } finally {
        await done();
      }
    });
  });

  describe(`pruneRuns() on ${name}`, () => {
    it("deletes only finished runs older than the cutoff, leaves live ones, reports stale ones; dryRun deletes nothing", async () => {
      const { storage, done } = await make();
      try {
        const now = Date.now();
        const kinds = new Map<string, string>();
        for (let i = 0; i < 40; i++) {
          const taskId = i % 2 === 0 ? "even" : "odd";
          const runId = `run-${String(i).padStart(2, "0")}`;
          // Half the runs started ten days ago, half an hour ago.
          const startedAt = new Date(now - (i < 20 ? 10 * day : 1_800_000));
          kinds.set(`${taskId}/${runId}`, `${kindOf(i)}:${i < 20 ? "old" : "new"}`);
          await seedRun(storage, taskId, runId, kindOf(i), startedAt, now);
        }
        const keysBefore = await allKeys(storage);
        const olderThan = new Date(now - day);
        const expected = [...kinds].filter(([, k]) =>
          (k.startsWith("completed") || k.startsWith("failed")) && k.endsWith(":old")
        ).map(([id]) => id).sort();
        const idsOf = (runs: { ref: { taskId: string; runId: string } }[]) =>
          runs.map((r) => `${r.ref.taskId}/${r.ref.runId}`).sort();

        const dry = await pruneRuns(storage, { olderThan, dryRun: true, now });
        assert.equal(dry.dryRun, true);
        assert.deepEqual(idsOf(dry.deleted), expected);
        assert.deepEqual(await allKeys(storage), keysBefore, "a dry run deletes nothing");

        const result = await pruneRuns(storage, { olderThan, now });
        assert.deepEqual(idsOf(result.deleted), expected);
        const stale = [...kinds].filter(([, k]) => k.startsWith("stale")).map(([id]) => id).sort();
        const live = [...kinds].filter(([, k]) => k.startsWith("live")).map(([id]) => id).sort();
        assert.deepEqual(idsOf(result.skipped.filter((s) => s.reason === "stale")), stale);
        assert.deepEqual(idsOf(result.skipped.filter((s) => s.reason === "live")), live);
        const left: string[] = [];
        for await (const run of listRuns(storage, { now })) left.push(`${run.taskId}/${run.runId}`);
        assert.deepEqual(
          left.sort(),
          [...kinds.keys()].filter((id) => !expected.includes(id)).sort(),
        );
        for (const id of expected) {
          assert.deepEqual(await allKeys(storage, `runs/${id}/`), [], `no key of ${id} remains`);
        }
      } finally {
        await done();
      }
    });

    it("keeps the newest keepLast finished runs of each task, filters by status, reaps stale runs when asked", async () => {
      const { storage, done } = await make();
      try {
        const now = Date.now();
        for (let i = 0; i < 6; i++) {
          await seedRun(
            storage,
            "t",
            `done-${i}`,
            i % 2 ? "failed" : "completed",
            new Date(now - (10 + i) * day),
            now,
          );
        }
        await seedRun(storage, "t", "dead", "stale", new Date(now - 20 * day), now);
        const olderThan = now - day;

        const failedOnly = await pruneRuns(storage, {
          olderThan,
          status: "failed",
          keepLast: 1,
          dryRun: true,
          now,
        });
        // Failed runs: done-1 (newest), done-3, done-5; keepLast keeps done-1.
        assert.deepEqual(failedOnly.deleted.map((r) => r.ref.runId).sort(), ["done-3", "done-5"]);
        assert.deepEqual(
          failedOnly.skipped.filter((s) => s.reason === "kept").map((s) => s.ref.runId),
          ["done-1"],
        );

        const reaped = await pruneRuns(storage, { olderThan, keepLast: 2, reapStale: true, now });
        assert.deepEqual(reaped.reaped.map((r) => r.runId), ["dead"]);
        assert.deepEqual(
          reaped.deleted.map((r) => r.ref.runId).sort(),
          ["dead", "done-2", "done-3", "done-4", "done-5"],
        );
        const left: string[] = [];
        for await (const run of listRuns(storage, { taskId: "t" })) left.push(run.runId);
        assert.deepEqual(left, ["done-0", "done-1"]);

        await assert.rejects(
          pruneRuns(storage, { olderThan: "last week" }),
          (error: unknown) => error instanceof ValidationError && error.field === "olderThan",
        );
      } finally {
        await done();
      }
    });
  });
}
