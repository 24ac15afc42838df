// listRuns()/listRunsPage() filters and cursor paging, runLiveness() on what they give, and
// ranged log reads, on the local storages.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  createMemoryStorage,
  listRuns,
  listRunsPage,
  readRun,
  readRunLogBytes,
  type RunListEntry,
  runLiveness,
  runStep,
  type RunStorage,
  ValidationError,
} from "../mod.ts";
import { baseRequest, localStorages } from "./helpers.ts";
import { type Kind, kindOf, seedRun } from "./fixtures/seed_runs.ts";

async function all(iterable: AsyncIterable<RunListEntry>): Promise<RunListEntry[]> {
  const out: RunListEntry[] = [];
  for await (const entry of iterable) out.push(entry);
  return out;
}

for (const [name, make] of Object.entries(localStorages)) {
  describe(`listRuns() on ${name}`, () => {
    it("filters by status, liveness and start time, and pages every run exactly once", async () => {
      const { storage, done } = await make();
      try {
        const now = Date.now();
        const day = 86_400_000;
        const seeded: { taskId: string; runId: string; kind: Kind; startedAt: number }[] = [];
        for (let i = 0; i < 60; i++) {
          const taskId = i % 3 === 0 ? "task-a" : i % 3 === 1 ? "task-b" : "task-a-2";
          const runId = `run-${i}`;
          const startedAt = now - (i % 4) * day - 60_000;
          seeded.push({ taskId, runId, kind: kindOf(i), startedAt });
          await seedRun(storage, taskId, runId, kindOf(i), new Date(startedAt), now);
        }
        const ids = (entries: RunListEntry[]) => entries.map((e) => `${e.taskId}/${e.runId}`);
        const expect = (pick: (s: (typeof seeded)[number]) => boolean) =>
          seeded.filter(pick).map((s) => `${s.taskId}/${s.runId}`).sort();

        assert.deepEqual(ids(await all(listRuns(storage))).sort(), expect(() => true));
        assert.deepEqual(
          ids(await all(listRuns(storage, { taskId: "task-a", status: "failed" }))).sort(),
          expect((s) => s.taskId === "task-a" && s.kind === "failed"),
        );
        assert.deepEqual(
          ids(await all(listRuns(storage, { liveness: ["live", "stale"], now }))).sort(),
          expect((s) => s.kind === "live" || s.kind === "stale"),
        );
        assert.deepEqual(
          ids(await all(listRuns(storage, { liveness: "stale", now }))).sort(),
          expect((s) => s.kind === "stale"),
        );
        const since = new Date(now - day - 120_000);
        assert.deepEqual(
          ids(await all(listRuns(storage, { since, status: ["completed", "failed"] }))).sort(),
          expect((s) => s.startedAt >= since.getTime() && ["completed", "failed"].includes(s.kind)),
        );

        // Pages of 7, filtered, across tasks: every matching run once, in order.
        const seen: string[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const page = await listRunsPage(storage, { limit: 7, cursor, liveness: "finished" });
          assert.ok(page.runs.length <= 7);
          seen.push(...ids(page.runs));
          cursor = page.cursor;
          pages++;
        } while (cursor !== undefined && pages < 100);
        assert.deepEqual(
          [...seen].sort(),
          expect((s) => s.kind === "completed" || s.kind === "failed"),
        );
        assert.equal(new Set(seen).size, seen.length, "no run twice");
        assert.deepEqual(seen, [...seen].sort((a, b) => (a + "/" < b + "/" ? -1 : 1)), "in order");

        // Task-scoped paging with the entries' own cursors.
        const first = await all(listRuns(storage, { taskId: "task-b", limit: 5 }));
        const rest = await all(
          listRuns(storage, { taskId: "task-b", cursor: first.at(-1)!.cursor }),
        );
        assert.deepEqual(
          [...ids(first), ...ids(rest)].sort(),
          expect((s) => s.taskId === "task-b"),
        );
      } finally {
        await done();
      }
    });
  });
}

describe("listRuns()", () => {
  it("refuses bad filters and a cursor from another task with ValidationError naming the field", async () => {
    const storage = createMemoryStorage();
    await seedRun(storage, "t1", "r1", "completed", new Date());
    const entries = await all(listRuns(storage, { taskId: "t1" }));
    const attempts: [() => Promise<unknown>, string][] = [
      [() => all(listRuns(storage, { status: "done" as "completed" })), "status"],
      [() => all(listRuns(storage, { liveness: "dead" as "stale" })), "liveness"],
      [() => all(listRuns(storage, { since: "yesterday" })), "since"],
      [() => all(listRuns(storage, { limit: 0 })), "limit"],
      [() => all(listRuns(storage, { taskId: "../x" })), "taskId"],
      [() => all(listRuns(storage, { cursor: "garbage!" })), "cursor"],
      [() => all(listRuns(storage, { taskId: "t2", cursor: entries[0].cursor })), "cursor"],
    ];
    for (const [attempt, field] of attempts) {
      await assert.rejects(attempt(), (error: unknown) => {
        assert.ok(error instanceof ValidationError, `${field}: ${error}`);
        assert.equal(error.field, field);
        return true;
      });
    }
  });

  it("lists a run whose state.json is missing as stale, and skips folders without records", async () => {
    const storage = createMemoryStorage();
    await seedRun(storage, "t", "whole", "completed", new Date());
    await storage.write("runs/t/no-state/meta.json", "{}");
    await storage.write("runs/t/debris/stdout.log.segments/0000000001", "x");
    const entries = await all(listRuns(storage, { taskId: "t" }));
    assert.deepEqual(entries.map((e) => [e.runId, e.liveness]), [
      ["no-state", "stale"],
      ["whole", "finished"],
    ]);
  });
});

describe("readRun()", () => {
  it("issues its independent reads at once, not one after the other", async () => {
    const inner = createMemoryStorage();
    await runStep(baseRequest(), {
      async execute(_run, context) {
        await context.saveArtifact("a.txt", "x");
        return { ok: true, outcome: "completed", summary: "" };
      },
    }, { storage: inner });
    let inFlight = 0;
    let most = 0;
    const slow = async <T>(call: () => Promise<T>): Promise<T> => {
      most = Math.max(most, ++inFlight);
      await new Promise((resolve) => setTimeout(resolve, 20));
      try {
        return await call();
      } finally {
        inFlight--;
      }
    };
    const storage: RunStorage = {
      ...inner,
      read: (key) => slow(() => inner.read(key)),
      readRange: (key, range) => slow(() => inner.readRange!(key, range)),
      async *list(prefix, options) {
        yield* await slow(async () => {
          const keys: string[] = [];
          for await (const key of inner.list(prefix, options)) keys.push(key);
          return keys;
        });
      },
    };
    const run = await readRun(storage, { taskId: "task-1", runId: "run-1" });
    assert.equal(run.metadata.runId, "run-1");
    assert.equal(run.artifacts.length, 1);
    // meta.json, state.json, worker.log, the checkpoints and the artifacts listings.
    assert.ok(most >= 5, `at most ${most} reads in flight`);
  });
});

describe("runLiveness()", () => {
  const state = {
    status: "running" as const,
    attempt: 1,
    startedAt: "2026-01-01T00:00:00.000Z",
    updatedAt: "2026-01-01T00:00:10.000Z",
    lastEventSeq: 1,
    checkpointSeq: 0,
  };
  it("takes now as a Date or epoch ms, and a missing or malformed state is stale", () => {
    const at = Date.parse(state.updatedAt);
    assert.equal(runLiveness(state, { now: at + 1_000 }), "live");
    assert.equal(runLiveness(state, { now: new Date(at + 1_000) }), "live");
    assert.equal(runLiveness(state, { now: at + 16_000 }), "stale");
    assert.equal(runLiveness(state, { now: at + 16_000, staleAfterMs: 60_000 }), "live");
    assert.equal(runLiveness(undefined), "stale");
    assert.equal(runLiveness({ ...state, updatedAt: "not a date" }, { now: at }), "stale");
    assert.equal(runLiveness({ ...state, status: "failed" }, { now: at + 1e9 }), "finished");
  });
});

describe("readRunLogBytes() ranges", () => {
  for (const [name, make] of Object.entries(localStorages)) {
    it(`reads offset/length and tail ranges of a live and a finished log on ${name}`, async () => {
      const { storage, done } = await make();
      try {
        const ref = { taskId: "task-1", runId: "run-1" };
        const text = Array.from({ length: 200 }, (_, i) => `line ${i} ü\n`).join("");
        const bytes = new TextEncoder().encode(text);
        let liveChecked = false;
        await runStep(baseRequest(), {
          async execute(_run, context) {
            for (const line of text.split(/(?<=\n)/)) {
              await context.stdout(line);
              await new Promise((resolve) => setTimeout(resolve, 1));
            }
            // Live: wait (at most 20 s on a busy machine) until a flush stored every line.
            for (let waited = 0; waited < 20_000; waited += 20) {
              const stored = await readRunLogBytes(storage, ref, "stdout");
              if (stored.byteLength === bytes.byteLength) break;
              await new Promise((resolve) => setTimeout(resolve, 20));
            }
            const live = await readRunLogBytes(storage, ref, "stdout", { offset: 100, length: 50 });
            assert.deepEqual(live, bytes.subarray(100, 150));
            const tail = await readRunLogBytes(storage, ref, "stdout", { tail: 33 });
            assert.deepEqual(tail, bytes.subarray(bytes.length - 33));
            liveChecked = true;
            return { ok: true, outcome: "completed", summary: "" };
          },
        }, { storage, flushIntervalMs: 10 });
        assert.ok(liveChecked);
        assert.deepEqual(
          await readRunLogBytes(storage, ref, "stdout", { offset: 7, length: 1000 }),
          bytes.subarray(7, 1007),
        );
        assert.deepEqual(
          await readRunLogBytes(storage, ref, "stdout", { tail: 10 }),
          bytes.subarray(bytes.length - 10),
        );
        assert.deepEqual(await readRunLogBytes(storage, ref, "stdout", { tail: 1e9 }), bytes);
        assert.deepEqual(
          await readRunLogBytes(storage, ref, "stdout", { offset: bytes.length + 5 }),
          new Uint8Array(0),
        );
        await assert.rejects(
          readRunLogBytes(storage, ref, "stdout", { tail: 5, offset: 1 }),
          (error: unknown) => error instanceof ValidationError && error.field === "tail",
        );
        await assert.rejects(
          readRunLogBytes(storage, ref, "stdout", { length: -1 }),
          (error: unknown) => error instanceof ValidationError && error.field === "length",
        );
      } finally {
        await done();
      }
    });
  }
});
