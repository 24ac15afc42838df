// Crash consistency and recovery: every crash point of a run leaves a live/stale run or a
// finished, complete one; reapRun closes dead runs, fenced against late writers; storage errors
// are typed; the heartbeat never stops while the writer lives.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { concatBytes } from "../core/bytes.ts";
import { isPreconditionFailed, RunConflictError, StorageError } from "../core/errors.ts";
import { reapRun, reapRuns } from "../core/reap.ts";
import { readRunOutput, type RunOutputItem } from "../core/output.ts";
import { readRun, readRunLog, runLiveness } from "../core/read.ts";
import { runStep } from "../core/runner.ts";
import type { WorkerExecutor } from "../core/executor.ts";
import type { RunStateSnapshot, WorkerLifecycleLogEntry } from "../core/types.ts";
import { createFsStorage } from "../storage/fs.ts";
import { createMemoryStorage } from "../storage/memory.ts";
import { createS3Storage } from "../storage/s3.ts";
import type { RunStorage } from "../storage/types.ts";
import {
  allKeys,
  baseRequest,
  readText,
  streamRuns,
  withoutAppend,
  withTempDir,
} from "./helpers.ts";
import { createBucket, deleteBucketRecursive, uniqueBucketName } from "./s3/bucket.ts";
import { requireRgw } from "./s3/rgw_env.ts";

const ref = { taskId: "task-1", runId: "run-1" };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const FAR_FUTURE = () => Date.now() + 3_600_000;

/** One storage mutation, as it landed (recorded when the call completed). */
type Mutation =
  | { op: "set"; key: string; data: Uint8Array }
  | { op: "append"; key: string; data: Uint8Array }
  | { op: "delete"; keys: string[] };

const toBytes = (data: Uint8Array | string) =>
  typeof data === "string" ? new TextEncoder().encode(data) : data.slice();

/**
 * Wraps a storage and journals every mutation at the moment it completed: any prefix of the
 * journal is what a crash right after that call would leave (calls still in flight at a crash
 * either landed or not, which is again some prefix).
 */
function journaling(inner: RunStorage): { storage: RunStorage; journal: Mutation[] } {
  const journal: Mutation[] = [];
  const storage: RunStorage = {
    name: inner.name,
    read: (key) => inner.read(key),
    list: (prefix, options) => inner.list(prefix, options),
    locate: (key) => inner.locate(key),
    async write(key, data, options) {
      const result = await inner.write(key, data, options);
      journal.push({ op: "set", key, data: toBytes(data) });
      return result;
    },
    async delete(key) {
      await inner.delete(key);
      journal.push({ op: "delete", keys: [key] });
    },
  };
  if (inner.append) {
    storage.append = async (key, data) => {
      await inner.append!(key, data);
      journal.push({ op: "append", key, data: data.slice() });
    };
  }
  if (inner.replace) {
    storage.replace = async (key, data, options) => {
      const result = await inner.replace!(key, data, options);
      journal.push({ op: "set", key, data: toBytes(data) });
      return result;
    };
  }
  if (inner.stat) storage.stat = (key) => inner.stat!(key);
  if (inner.writeStream) {
    storage.writeStream = async (key, source, options) => {
      const parts: Uint8Array[] = [];
      async function* tee() {
        for await (const part of source) {
          parts.push(part.slice());
          yield part;
        }
      }
      const result = await inner.writeStream!(key, tee(), options);
      const data = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
      let offset = 0;
      for (const part of parts) {
        data.set(part, offset);
        offset += part.byteLength;
      }
      journal.push({ op: "set", key, data });
      return result;
    };
  }
  if (inner.deleteMany) {
    storage.deleteMany = async (keys) => {
      await inner.deleteMany!(keys);
      journal.push({ op: "delete", keys: [...keys] });
    };
  }
  return { storage, journal };
}

async function replay(journal: readonly Mutation[], append: boolean): Promise<RunStorage> {
  const memory = createMemoryStorage();
  for (const m of journal) {
    if (m.op === "set") await memory.write(m.key, m.data);
    else if (m.op === "append") await memory.append!(m.key, m.data);
    else for (const key of m.keys) await memory.delete(key);
  }
  return append ? memory : withoutAppend(memory);
}

const TERMINAL_TYPES = ["step_completed", "step_failed", "step_blocked", "step_prepared"];
const finished = (state: RunStateSnapshot) => runLiveness(state) === "finished";

/** A worker with several flushes, stderr, an artifact and a final line. */
const busyExecutor: WorkerExecutor = {
  async execute(_run, context) {
    for (let i = 0; i < 12; i++) {
      await context.stdout(`out ${i}\n`);
      if (i % 4 === 0) await context.stderr(`err ${i}\n`);
      await sleep(6);
    }
    await context.saveArtifact("report.txt", "all good");
    await context.stdout("last line, no newline");
    return { ok: true, outcome: "completed", summary: "Done." };
  },
};
const EXPECTED_STDOUT = Array.from({ length: 12 }, (_, i) => `out ${i}\n`).join("") +
  "last line, no newline";
const EXPECTED_STDERR = [0, 4, 8].map((i) => `err ${i}\n`).join("");
/** What a terminal showed, runs of one stream merged: stdout and stderr in print order. */
const EXPECTED_SHOWN = streamRuns([
  ...Array.from(
    { length: 12 },
    (_, i) =>
      i % 4 === 0
        ? [["stdout", `out ${i}\n`], ["stderr", `err ${i}\n`]] as [string, string][]
        : [["stdout", `out ${i}\n`]] as [string, string][],
  ).flat(),
  ["stdout", "last line, no newline"],
]);

/**
 * The run's output read in sequence (events merged), checked: sequence numbers increase, and,
 * when `complete`, every byte is indexed and the streams are whole in print order.
 */
async function checkOutputInOrder(storage: RunStorage, where: string, complete: boolean) {
  const items: RunOutputItem[] = [];
  for await (const item of readRunOutput(storage, ref, { events: true })) items.push(item);
  const decoder = new TextDecoder();
  const shown = streamRuns(
    items.filter((i) => i.channel !== "worker").map((i) =>
      [i.channel, decoder.decode((i as { bytes: Uint8Array }).bytes)] as [string, string]
    ),
  );
  const stream = (channel: string) =>
    shown.filter(([c]) => c === channel).map(([, t]) => t).join("");
  assert.ok(EXPECTED_STDOUT.startsWith(stream("stdout")), `${where}: stdout in order is a prefix`);
  assert.ok(EXPECTED_STDERR.startsWith(stream("stderr")), `${where}: stderr in order is a prefix`);
  if (!complete) return items;
  let last = 0;
  for (const item of items) {
    assert.ok(item.seq !== undefined, `${where}: every byte is indexed`);
    assert.ok(item.seq > last, `${where}: #${item.seq} after #${last}`);
    last = (item.channel === "worker" ? undefined : item.lastSeq) ?? item.seq;
  }
  return items;
}

async function checkCrashPoint(
  storage: RunStorage,
  point: number,
  allEvents: readonly WorkerLifecycleLogEntry[],
) {
  const expectedEvents = allEvents.length;
  const where = `crash point ${point}`;
  const keys = await allKeys(storage);
  if (!keys.includes("runs/task-1/run-1/meta.json")) {
    assert.deepEqual(keys, [], `${where}: nothing is written before meta.json`);
    return "empty";
  }
  const run = await readRun(storage, ref);
  const stdout = await readRunLog(storage, ref, "stdout");
  if (run.state === undefined) return "no state";
  const state = run.state;
  if (finished(state)) {
    // Terminal: everything the run stored is there, whole, and the state describes it.
    assert.equal(state.status, "completed", where);
    assert.equal(stdout, EXPECTED_STDOUT, `${where}: stdout.log is whole`);
    assert.equal(state.stdoutBytes, new TextEncoder().encode(stdout).byteLength, where);
    assert.equal(run.events.length, expectedEvents, `${where}: every event is stored`);
    assert.equal(run.events.at(-1)!.type, "step_completed", where);
    assert.equal(run.events.at(-1)!.seq, state.lastEventSeq, where);
    assert.deepEqual(keys.filter((k) => k.includes(".segments/")), [], `${where}: no segments`);
    assert.ok(keys.includes("runs/task-1/run-1/artifacts/report.txt"), where);
    assert.equal(run.checkpoints.length, state.checkpointSeq, where);
    assert.deepEqual(
      streamRuns(
        (await checkOutputInOrder(storage, where, true)).filter((i) => i.channel !== "worker")
          .map((i) => [i.channel, new TextDecoder().decode((i as { bytes: Uint8Array }).bytes)]),
      ),
      EXPECTED_SHOWN,
      `${where}: stdout and stderr interleaved as printed`,
    );
    return "finished";
  }
  // Not terminal: state.json claims only what is stored.
  assert.ok(EXPECTED_STDOUT.startsWith(stdout), `${where}: stdout is a prefix`);
  const storedBytes = new TextEncoder().encode(stdout).byteLength;
  assert.ok((state.stdoutBytes ?? 0) <= storedBytes, `${where}: stdoutBytes <= stored`);
  assert.ok(state.checkpointSeq <= run.checkpoints.length, `${where}: checkpoints stored`);
  // Every event up to lastEventSeq is stored (chunks share the sequence but carry no number in
  // the raw logs, so the events are what can be checked).
  const storedSeqs = new Set(run.events.map((e) => e.seq));
  for (const event of allEvents) {
    if (event.seq <= state.lastEventSeq) {
      assert.ok(storedSeqs.has(event.seq), `${where}: event #${event.seq} (${event.type}) stored`);
    }
  }
  await checkOutputInOrder(storage, where, false);
  return "live";
}

async function checkReapAt(storage: RunStorage, point: number) {
  const where = `reap after crash point ${point}`;
  const before = await readRun(storage, ref).catch(() => undefined);
  if (before === undefined) return;
  const result = await reapRun(storage, ref, { now: FAR_FUTURE() });
  if (before.state !== undefined && finished(before.state)) {
    assert.equal(result.reaped, false, `${where}: a finished run is left alone`);
    return;
  }
  assert.equal(result.reaped, true, where);
  const after = await readRun(storage, ref);
  const state = after.state!;
  assert.ok(finished(state), where);
  const stdout = await readText(storage, "runs/task-1/run-1/stdout.log");
  assert.ok(stdout !== undefined && EXPECTED_STDOUT.startsWith(stdout), `${where}: stdout prefix`);
  assert.equal(state.stdoutBytes, new TextEncoder().encode(stdout).byteLength, where);
  const stderr = await readText(storage, "runs/task-1/run-1/stderr.log") ?? "";
  assert.equal(state.stderrBytes, new TextEncoder().encode(stderr).byteLength, where);
  const last = after.events.at(-1)!;
  assert.ok(TERMINAL_TYPES.includes(last.type), `${where}: ends with a terminal event`);
  assert.equal(after.events.filter((e) => TERMINAL_TYPES.includes(e.type)).length, 1, where);
  assert.equal(last.seq, state.lastEventSeq, where);
  // The index describes exactly the stored output, all of it before the terminal event.
  const items = await checkOutputInOrder(storage, where, true);
  const text = (channel: string) =>
    new TextDecoder().decode(
      concatBytes(
        items.filter((i) => i.channel === channel).map((i) => (i as { bytes: Uint8Array }).bytes),
      ),
    );
  assert.equal(text("stdout"), stdout, `${where}: the index covers stdout.log`);
  assert.equal(text("stderr"), stderr, `${where}: the index covers stderr.log`);
  assert.equal(items.at(-1)?.channel, "worker", `${where}: the terminal event comes last`);
  if (last.type === "step_failed") {
    assert.equal(state.status, "failed", where);
    assert.equal(state.reason, "abandoned", where);
  } else {
    assert.equal(state.status, "completed", `${where}: rolled forward`);
  }
  assert.deepEqual((await allKeys(storage)).filter((k) => k.includes(".segments/")), [], where);
  const again = await reapRun(storage, ref, { now: FAR_FUTURE() });
  assert.equal(again.reaped, false, `${where}: a second reap changes nothing`);
  assert.deepEqual((await readRun(storage, ref)).state, state, where);
}

describe("crash points of a run (every storage call replayed)", () => {
  for (
    const [kind, append] of [["append storage", true], ["storage without append", false]] as const
  ) {
    it(`${kind}: every crash point is live/stale or finished and complete, and reaps cleanly`, async () => {
      const inner = append ? createMemoryStorage() : withoutAppend(createMemoryStorage());
      const { storage, journal } = journaling(inner);
      const result = await runStep(baseRequest(), busyExecutor, {
        storage,
        flushIntervalMs: 10,
        heartbeatMs: 30,
      });
      assert.equal(result.outcome, "completed");

      const seen: Record<string, number> = {};
      for (let point = 0; point <= journal.length; point++) {
        const crashed = await replay(journal.slice(0, point), append);
        const kindSeen = await checkCrashPoint(crashed, point, result.lifecycleEvents);
        seen[kindSeen] = (seen[kindSeen] ?? 0) + 1;
        await checkReapAt(crashed, point);
      }
      // The run really went through every phase.
      assert.ok((seen.live ?? 0) > 5, JSON.stringify(seen));
      assert.equal(
        seen.finished,
        1,
        `only the last call finishes the run: ${JSON.stringify(seen)}`,
      );
      console.log(`  ${kind}: ${journal.length + 1} crash points survived ${JSON.stringify(seen)}`);
    });
  }

  it("never stores 'completed' ahead of the last events (the slow-append reproducer)", async () => {
    const memory = createMemoryStorage();
    let committed = false;
    let appendStarted!: () => void;
    const started = new Promise<void>((resolve) => (appendStarted = resolve));
    const storage: RunStorage = {
      ...memory,
      async append(key, data) {
        if (key.endsWith("stdout.log")) {
          appendStarted();
          await sleep(50);
        }
        if (committed) throw new Error("write after the commit point");
        return memory.append!(key, data);
      },
      async write(key, data, options) {
        if (committed) throw new Error("write after the commit point");
        return memory.write(key, data, options);
      },
      async replace(key, data, options) {
        if (committed) throw new Error("write after the commit point");
        const result = await memory.replace!(key, data, options);
        if (
          key.endsWith("state.json") &&
          new TextDecoder().decode(toBytes(data)).includes('"completed"')
        ) {
          committed = true;
        }
        return result;
      },
    };
    const result = await runStep(baseRequest(), {
      async execute(_run, context) {
        await context.stdout("one line\n");
        await started;
        return { ok: true, outcome: "completed", summary: "ok" };
      },
    }, { storage, flushIntervalMs: 10 });
    assert.equal(result.outcome, "completed");
    const run = await readRun(memory, ref);
    assert.equal(run.state?.status, "completed");
    assert.equal(run.events.at(-1)?.type, "step_completed");
    assert.equal(run.events.at(-1)?.seq, run.state?.lastEventSeq);
  });
});

describe("storage failures reach the caller as StorageError", () => {
  it("a storage throwing plain Errors after N writes: StorageError naming adapter, operation and key", async () => {
    const memory = createMemoryStorage();
    let writes = 0;
    const failing: RunStorage = {
      name: "flaky-custom",
      read: (key) => memory.read(key),
      list: (prefix) => memory.list(prefix),
      delete: (key) => memory.delete(key),
      locate: (key) => memory.locate(key),
      write(key, data, options) {
        if (++writes > 4) throw new Error("EIO: disk on fire");
        return memory.write(key, data, options);
      },
      append(key, data) {
        if (++writes > 4) return Promise.reject(new Error("EIO: disk on fire"));
        return memory.append!(key, data);
      },
    };
    const started = Date.now();
    let error: unknown;
    try {
      await runStep(baseRequest(), {
        async execute(_run, context) {
          for (let i = 0; i < 1000 && !context.signal.aborted; i++) {
            await context.stdout(`line ${i}\n`);
            await sleep(2);
          }
          return { ok: true, outcome: "completed", summary: "ok" };
        },
      }, { storage: failing, flushIntervalMs: 10 });
    } catch (caught) {
      error = caught;
    }
    assert.ok(error instanceof StorageError, `got ${error}`);
    assert.equal(error.adapter, "flaky-custom");
    assert.ok(["write", "append"].includes(error.operation), error.operation);
    assert.match(error.key, /^runs\/task-1\/run-1\//);
    assert.match(error.message, /EIO: disk on fire/);
    assert.ok(error.cause instanceof Error);
    assert.ok(Date.now() - started < 10_000, "rejected in bounded time");
    // What was stored stays readable, and is not terminal.
    const run = await readRun(memory, ref);
    assert.equal(run.metadata.runId, "run-1");
    assert.notEqual(run.state && runLiveness(run.state, { now: new Date() }), "finished");
  });
});

describe("the heartbeat while logs are composed", () => {
  it("storage without append, slow segment reads: no state.json gap longer than heartbeatMs plus a margin", async () => {
    const memory = withoutAppend(createMemoryStorage());
    const stateWrites: number[] = [];
    let composing = false;
    const storage: RunStorage = {
      ...memory,
      async read(key) {
        if (key.includes(".segments/")) {
          composing = true;
          await sleep(150);
        }
        return memory.read(key);
      },
      async write(key, data, options) {
        const result = await memory.write(key, data, options);
        if (key.endsWith("state.json")) stateWrites.push(Date.now());
        return result;
      },
      async replace(key, data, options) {
        const result = await memory.replace!(key, data, options);
        if (key.endsWith("state.json")) stateWrites.push(Date.now());
        return result;
      },
    };
    const heartbeatMs = 300;
    // Past the few MiB the writer keeps to compose from memory, a log is read back: 6 MiB in
    // 1 MiB segments, each read slowly.
    const line = "x".repeat(64 * 1024 - 1) + "\n";
    await runStep(baseRequest(), {
      async execute(_run, context) {
        for (let i = 0; i < 96; i++) await context.stdout(line);
        return { ok: true, outcome: "completed", summary: "ok" };
      },
    }, { storage, flushBytes: 1024 * 1024, heartbeatMs, flushIntervalMs: 1000 });
    assert.ok(composing, "segments were read back to compose");
    assert.equal((await memory.read("runs/task-1/run-1/stdout.log"))?.byteLength, 96 * 65536);
    const gaps = stateWrites.slice(1).map((t, i) => t - stateWrites[i]);
    const longest = Math.max(...gaps);
    assert.ok(
      longest <= heartbeatMs + 400,
      `longest state.json gap ${longest} ms (${gaps.length} gaps)`,
    );
  });
});

describe("reapRun()", () => {
  it("leaves a live run and a finished run alone", async () => {
    const storage = createMemoryStorage();
    await runStep(baseRequest(), undefined, { storage });
    const finishedRun = await reapRun(storage, ref, { now: FAR_FUTURE() });
    assert.deepEqual([finishedRun.reaped, finishedRun.liveness], [false, "finished"]);
    const live = await reapRun(storage, ref);
    assert.equal(live.reaped, false);
  });

  it("closes a run killed between meta.json and state.json, by the storage's clock", async () => {
    const storage = createMemoryStorage();
    await storage.write(
      "runs/task-1/run-1/meta.json",
      JSON.stringify({
        layoutVersion: "local-run-v1",
        taskId: "task-1",
        stepId: "step-1",
        stepName: "S",
        runId: "run-1",
        workerKind: "script",
        attempt: 1,
        repoRoot: "/repo",
        worktreePath: "/repo",
        // A caller-set createdAt far in the past must not make a fresh run look dead.
        createdAt: "2001-01-01T00:00:00.000Z",
        checkpointMode: "capture",
      }),
      { ifNoneMatch: "*" },
    );
    const fresh = await reapRun(storage, ref);
    assert.deepEqual([fresh.reaped, fresh.liveness], [false, "live"]);
    const later = await reapRun(storage, ref, { now: FAR_FUTURE() });
    assert.equal(later.reaped, true);
    assert.equal(later.state?.status, "failed");
    assert.equal(later.state?.reason, "abandoned");
    const run = await readRun(storage, ref);
    assert.equal(run.events.length, 1);
    assert.equal(run.events[0].type, "step_failed");
    assert.equal(run.events[0].seq, 1);
  });

  it("two reapers racing leave one terminal record", async () => {
    for (const make of [() => createMemoryStorage(), () => withoutAppend(createMemoryStorage())]) {
      const storage = make();
      let release!: () => void;
      const hold = new Promise<void>((resolve) => (release = resolve));
      const running = runStep(baseRequest(), {
        async execute(_run, context) {
          await context.stdout("working\n");
          await hold;
          return { ok: true, outcome: "completed", summary: "ok" };
        },
      }, { storage: pausable(storage).storage, flushIntervalMs: 10 }).catch((e) => e);
      await sleep(100);
      const now = FAR_FUTURE();
      const results = await Promise.all([
        reapRun(storage, ref, { now }),
        reapRun(storage, ref, { now }),
        reapRun(storage, ref, { now }),
      ]);
      assert.equal(results.filter((r) => r.reaped).length, 1, JSON.stringify(results));
      const run = await readRun(storage, ref);
      assert.equal(run.events.filter((e) => TERMINAL_TYPES.includes(e.type)).length, 1);
      release();
      const outcome = await running;
      assert.ok(outcome instanceof RunConflictError, `the writer is fenced: ${outcome}`);
    }
  });

  it("reapRuns() closes every stale run of a task and reports the rest", async () => {
    const storage = createMemoryStorage();
    for (const runId of ["a", "b"]) {
      await runStep(baseRequest({ runId }), undefined, { storage });
    }
    for (const runId of ["c", "d", "e"]) {
      const { prepareStepRun } = await import("../core/runner.ts");
      await prepareStepRun(baseRequest({ runId }), { storage });
    }
    const results = await reapRuns(storage, {
      taskId: "task-1",
      now: FAR_FUTURE(),
      concurrency: 2,
    });
    const reaped = results.filter((r) => r.reaped).map((r) => r.runId).sort();
    assert.deepEqual(reaped, ["c", "d", "e"]);
    assert.deepEqual(
      results.filter((r) => !r.reaped).map((r) => [r.runId, r.liveness]).sort(),
      [["a", "finished"], ["b", "finished"]],
    );
  });
});

/** A storage whose writes can be held (a writer paused mid-run, e.g. a frozen VM). */
function pausable(inner: RunStorage) {
  let gate: Promise<void> | undefined;
  let open: () => void = () => {};
  const wait = async () => {
    while (gate) await gate;
  };
  const storage: RunStorage = {
    ...inner,
    async write(key, data, options) {
      await wait();
      return inner.write(key, data, options);
    },
  };
  if (inner.append) {
    storage.append = async (key, data) => {
      await wait();
      return inner.append!(key, data);
    };
  }
  if (inner.replace) {
    storage.replace = async (key, data, options) => {
      await wait();
      return inner.replace!(key, data, options);
    };
  }
  return {
    storage,
    pause() {
      gate = new Promise<void>((resolve) => (open = resolve));
    },
    resume() {
      gate = undefined;
      open();
    },
  };
}

/** The fencing scenario on any storage: a paused writer comes back after its run was reaped. */
async function checkFencing(storage: RunStorage): Promise<void> {
  const control = pausable(storage);
  let printed = 0;
  const running = runStep(baseRequest(), {
    async execute(_run, context) {
      while (!context.signal.aborted && printed < 2000) {
        await context.stdout(`tick ${printed++}\n`);
        await sleep(20);
      }
      return { ok: true, outcome: "completed", summary: "ok" };
    },
  }, { storage: control.storage, flushIntervalMs: 50, heartbeatMs: 200 }).then(
    (result) => ({ result }),
    (error) => ({ error }),
  );
  await sleep(400);
  control.pause();
  await sleep(200);
  const reaped = await reapRun(storage, ref, { now: FAR_FUTURE() });
  assert.equal(reaped.reaped, true);
  const afterReap = await readRun(storage, ref);
  control.resume();
  const outcome = await running;
  assert.ok("error" in outcome, "the late writer does not finish");
  assert.ok(outcome.error instanceof RunConflictError, `got ${outcome.error}`);
  assert.ok(isPreconditionFailed(outcome.error.cause), "caused by the lost conditional write");
  const final = await readRun(storage, ref);
  assert.deepEqual(final.state, afterReap.state, "the reaped state.json is unchanged");
  const terminal = final.events.filter((e) => TERMINAL_TYPES.includes(e.type));
  assert.equal(terminal.length, 1);
  assert.equal(terminal[0].data.reason, "abandoned");
}

describe("fencing: a writer that comes back after its run was reaped", () => {
  it("memory: RunConflictError, the reaped record unchanged", () =>
    checkFencing(createMemoryStorage()));
  it("memory without append: RunConflictError, the reaped record unchanged", () =>
    checkFencing(withoutAppend(createMemoryStorage())));
  it("fs: RunConflictError, the reaped record unchanged", () =>
    withTempDir((root) => checkFencing(createFsStorage({ root }))));
  it("S3 (Ceph RGW): RunConflictError, the reaped record unchanged", async (t) => {
    const env = requireRgw(t);
    if (env === undefined) return;
    const bucket = uniqueBucketName("fence");
    await createBucket(env, bucket);
    try {
      await checkFencing(createS3Storage({ ...env, bucket }));
    } finally {
      await deleteBucketRecursive(env, bucket);
    }
  });
});
