// The order and the concurrency of a run's storage calls: nothing before meta.json, the terminal
// state.json after every other record, independent writes sent together (few round trips).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runStep } from "../core/runner.ts";
import type { WorkerExecutor } from "../core/executor.ts";
import { readRun, readRunLog } from "../core/read.ts";
import { createFsStorage } from "../storage/fs.ts";
import { createMemoryStorage } from "../storage/memory.ts";
import { createS3Storage } from "../storage/s3.ts";
import type { RunStorage } from "../storage/types.ts";
import { baseRequest, withoutAppend, withTempDir } from "./helpers.ts";
import { createBucket, deleteBucketRecursive, uniqueBucketName } from "./s3/bucket.ts";
import { requireRgw } from "./s3/rgw_env.ts";

/** One storage call: when it was sent and answered, on one logical clock. */
interface Call {
  op: string;
  key: string;
  sent: number;
  answered: number;
  body?: string;
}

/**
 * Wraps a storage and records every call's send and answer on a logical clock; each call is
 * answered `delayMs` later than the inner storage answers, so calls that do not wait for each
 * other overlap, as requests to a remote server do.
 */
function recording(inner: RunStorage, delayMs: number): { storage: RunStorage; calls: Call[] } {
  const calls: Call[] = [];
  let clock = 0;
  const sleep = () => new Promise((resolve) => setTimeout(resolve, delayMs));
  async function record<T>(op: string, key: string, run: () => Promise<T>, body?: unknown) {
    const call: Call = { op, key, sent: ++clock, answered: 0 };
    if (typeof body === "string") call.body = body;
    calls.push(call);
    try {
      const [result] = await Promise.all([run(), sleep()]);
      return result;
    } finally {
      call.answered = ++clock;
    }
  }
  const storage: RunStorage = {
    name: inner.name,
    locate: (key) => inner.locate(key),
    read: (key) => record("read", key, () => inner.read(key)),
    write: (key, data, options) =>
      record("write", key, () => inner.write(key, data, options), data),
    delete: (key) => record("delete", key, () => inner.delete(key)),
    async *list(prefix, options) {
      const keys: string[] = [];
      await record("list", prefix, async () => {
        for await (const key of inner.list(prefix, options)) keys.push(key);
      });
      yield* keys;
    },
  };
  if (inner.append) {
    storage.append = (key, data) => record("append", key, () => inner.append!(key, data));
  }
  if (inner.replace) {
    storage.replace = (key, data, options) =>
      record("replace", key, () => inner.replace!(key, data, options), data);
  }
  if (inner.stat) storage.stat = (key) => record("stat", key, () => inner.stat!(key));
  if (inner.writeStream) {
    storage.writeStream = (key, source, options) =>
      record("writeStream", key, () => inner.writeStream!(key, source, options));
  }
  if (inner.deleteMany) {
    storage.deleteMany = (keys) =>
      record("deleteMany", keys.join(","), () => inner.deleteMany!(keys));
  }
  return { storage, calls };
}

/** The longest chain of calls each sent only after the previous one was answered. */
function roundTrips(calls: readonly Call[]): number {
  const depth = new Map<Call, number>();
  const bySend = [...calls].sort((a, b) => a.sent - b.sent);
  for (const call of bySend) {
    let before = 0;
    for (const other of bySend) {
      if (other.answered < call.sent) before = Math.max(before, depth.get(other)!);
    }
    depth.set(call, before + 1);
  }
  return Math.max(0, ...depth.values());
}

const MUTATIONS = new Set(["write", "append", "replace", "writeStream", "delete", "deleteMany"]);

/** A plain-object executor printing three lines. */
const trivial: WorkerExecutor = {
  async execute(_run, context) {
    await context.stdout("one\n");
    await context.stdout("two\n");
    await context.stdout("three\n");
    return { ok: true, outcome: "completed", summary: "Printed three lines." };
  },
};

function assertOrder(calls: readonly Call[], where: string): void {
  const mutations = calls.filter((c) => MUTATIONS.has(c.op));
  const meta = mutations.filter((c) => c.key.endsWith("/meta.json"));
  assert.equal(meta.length, 1, `${where}: one meta.json write`);
  for (const call of calls) {
    if (call === meta[0]) continue;
    assert.ok(
      call.sent > meta[0].answered,
      `${where}: ${call.op} ${call.key} was sent before meta.json was stored`,
    );
  }
  const terminal = mutations.filter((c) =>
    c.key.endsWith("/state.json") && /"finishedAt"/.test(c.body ?? "")
  );
  assert.equal(terminal.length, 1, `${where}: one terminal state.json write`);
  assert.match(terminal[0].body!, /"status": "completed"/, where);
  for (const call of calls) {
    if (call === terminal[0]) continue;
    assert.ok(
      call.answered < terminal[0].sent,
      `${where}: ${call.op} ${call.key} was not stored before the terminal state.json was sent`,
    );
  }
}

async function checkTrivialRun(storage: RunStorage, calls: Call[], where: string) {
  const result = await runStep(baseRequest(), trivial, { storage });
  assert.equal(result.outcome, "completed");
  assertOrder(calls, where);
  const trips = roundTrips(calls);
  const requests = calls.length;
  const run = await readRun(storage, { taskId: "task-1", runId: "run-1" });
  assert.equal(run.state?.status, "completed", where);
  assert.equal(run.state?.lastEventSeq, result.state.lastEventSeq, where);
  assert.equal(run.checkpoints.length, run.state?.checkpointSeq, where);
  assert.equal(
    await readRunLog(storage, { taskId: "task-1", runId: "run-1" }, "stdout"),
    "one\ntwo\nthree\n",
    where,
  );
  return { trips, requests };
}

describe("the storage calls of a trivial run (three lines, plain-object executor)", () => {
  it("storage without append: nothing before meta.json, terminal state.json last, 4 round trips", async () => {
    const { storage, calls } = recording(withoutAppend(createMemoryStorage()), 15);
    const { trips, requests } = await checkTrivialRun(storage, calls, "memory without append");
    // meta.json; state.json, checkpoints and output; the lifecycle log; the terminal state.
    assert.equal(trips, 4, `round trips: ${trips}`);
    assert.ok(requests <= 9, `requests: ${requests}`);
    assert.deepEqual(calls.filter((c) => c.key.includes(".segments/")), [], "no segments");
  });

  it("append storage: the same order, 4 round trips", async () => {
    const { storage, calls } = recording(createMemoryStorage(), 15);
    const { trips } = await checkTrivialRun(storage, calls, "memory with append");
    assert.equal(trips, 4, `round trips: ${trips}`);
  });

  it("fs: the same order", async () => {
    await withTempDir(async (root) => {
      const { storage, calls } = recording(createFsStorage({ root }), 5);
      const { trips } = await checkTrivialRun(storage, calls, "fs");
      assert.ok(trips <= 4, `round trips: ${trips}`);
    });
  });

  it("a run that outlives its first flush: segments deleted before the terminal state.json", async () => {
    const { storage, calls } = recording(withoutAppend(createMemoryStorage()), 5);
    const result = await runStep(baseRequest(), {
      async execute(_run, context) {
        for (let i = 0; i < 6; i++) {
          await context.stdout(`line ${i}\n`);
          await context.stderr(`err ${i}\n`);
          await new Promise((resolve) => setTimeout(resolve, 30));
        }
        await context.saveArtifact("report.txt", "ok");
        return { ok: true, outcome: "completed", summary: "ok" };
      },
    }, { storage, flushIntervalMs: 40, heartbeatMs: 100 });
    assert.equal(result.outcome, "completed");
    assertOrder(calls, "segmented run");
    const segmentWrites = calls.filter((c) => c.op === "write" && c.key.includes(".segments/"));
    assert.ok(segmentWrites.length >= 3, `${segmentWrites.length} segments written`);
    const deletes = calls.filter((c) => c.op === "delete" || c.op === "deleteMany");
    assert.ok(deletes.length > 0, "segments deleted");
    // Closing wrote the logs from memory: no segment was read back.
    assert.deepEqual(calls.filter((c) => c.op === "read"), [], "no reads while writing");
    const keys: string[] = [];
    for await (const key of storage.list("runs/")) keys.push(key);
    assert.deepEqual(keys.filter((k) => k.includes(".segments/")), []);
  });
});

describe("the storage calls of a trivial run on Ceph RGW", () => {
  it("nothing before meta.json, terminal state.json last, at most 4 round trips", async (t) => {
    const env = requireRgw(t);
    if (env === undefined) return;
    const bucket = uniqueBucketName("order");
    await createBucket(env, bucket);
    try {
      const { storage, calls } = recording(
        createS3Storage({
          endpoint: env.endpoint,
          region: env.region,
          bucket,
          accessKeyId: env.accessKeyId,
          secretAccessKey: env.secretAccessKey,
        }),
        0,
      );
      const { trips, requests } = await checkTrivialRun(storage, calls, "S3");
      assert.ok(trips <= 4, `round trips: ${trips}`);
      console.log(`  [s3] trivial run: ${requests} calls, ${trips} round trips`);
    } finally {
      await deleteBucketRecursive(env, bucket);
    }
  });
});
