// The read side on a real S3 server (Ceph RGW): a follower of a 2,000-flush run (byte-exact,
// requests linear in the flushes), a follower of a run killed with SIGKILL (stale), listRuns over
// 1,500 runs (filters, cursor paging, requests per run), and pruneRuns (no key left behind).
//
// Needs `source "$(bash scripts/rgw.sh start | tail -n1)"`; without it every test here is
// skipped loudly, or fails when CI=true.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import { describe, it } from "node:test";
import {
  createS3Storage,
  followRunLog,
  listRuns,
  listRunsPage,
  pruneRuns,
  readRunLogBytes,
  type RunListEntry,
  RunStaleError,
  runStep,
  type RunStorage,
  type S3StorageOptions,
  type WorkerExecutor,
} from "../mod.ts";
import { baseRequest } from "./helpers.ts";
import { type Kind, kindOf, seedRun } from "./fixtures/seed_runs.ts";
import { createBucket, deleteBucketRecursive, runLimited, uniqueBucketName } from "./s3/bucket.ts";
import { requireRgw, type RgwEnv, rgwRequestCount } from "./s3/rgw_env.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Counts of the HTTP requests one storage instance sent, by kind. */
interface RequestCounts {
  total: number;
  lists: number;
  segmentGets: number;
  otherGets: number;
  heads: number;
  puts: number;
}

function counting(): { counts: RequestCounts; fetch: typeof fetch } {
  const counts: RequestCounts = {
    total: 0,
    lists: 0,
    segmentGets: 0,
    otherGets: 0,
    heads: 0,
    puts: 0,
  };
  return {
    counts,
    fetch: (input, init) => {
      const request = input instanceof Request ? input : new Request(input, init);
      const url = new URL(request.url);
      counts.total++;
      if (request.method === "GET" && url.searchParams.has("list-type")) counts.lists++;
      else if (request.method === "GET" && url.pathname.includes(".segments/")) {
        counts.segmentGets++;
      } else if (request.method === "GET") counts.otherGets++;
      else if (request.method === "HEAD") counts.heads++;
      else if (request.method === "PUT") counts.puts++;
      return fetch(request);
    },
  };
}

async function withBucket(
  env: RgwEnv,
  label: string,
  fn: (storage: (extra?: Partial<S3StorageOptions>) => RunStorage, name: string) => Promise<void>,
): Promise<void> {
  const name = uniqueBucketName(label);
  await createBucket(env, name);
  try {
    await fn((extra = {}) =>
      createS3Storage({
        endpoint: env.endpoint,
        region: env.region,
        bucket: name,
        accessKeyId: env.accessKeyId,
        secretAccessKey: env.secretAccessKey,
        ...extra,
      }), name);
  } finally {
    await deleteBucketRecursive(env, name);
  }
}

async function keysUnder(storage: RunStorage, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of storage.list(prefix)) keys.push(key);
  return keys.sort();
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

describe("followRunLog() on S3 (Ceph RGW)", () => {
  it("follows a 2,000-flush run byte-exact from its start and from its middle; requests grow with the flushes", async (t) => {
    const env = requireRgw(t);
    if (env === undefined) return;
    await withBucket(env, "follow", async (storage) => {
      const FLUSHES = 2_000;
      const lines = Array.from(
        { length: FLUSHES },
        (_, i) => `[${String(i).padStart(5, "0")}] step ${i % 13} é漢 ${".".repeat(i % 40)}\n`,
      );
      const expected = new TextEncoder().encode(lines.join(""));
      const half = Math.floor(expected.byteLength / 2);
      const pollMs = 100;

      const writerCount = counting();
      const writer = storage({ fetch: writerCount.fetch });
      const fromStart = counting();
      const fromMiddle = counting();
      const follow = async (counts: ReturnType<typeof counting>, from: number) => {
        const parts: Uint8Array[] = [];
        let polls = 0;
        const reader = storage({ fetch: counts.fetch });
        const started = Date.now();
        for await (
          const chunk of followRunLog(reader, { taskId: "task-1", runId: "run-1" }, "stdout", {
            from,
            pollMs,
          })
        ) parts.push(chunk);
        polls = Math.ceil((Date.now() - started) / pollMs);
        return { bytes: concat(parts), polls };
      };
      const rgwBefore = rgwRequestCount();
      const first = follow(fromStart, 0); // started before the run exists
      await sleep(300);
      const executor: WorkerExecutor = {
        async execute(_run, context) {
          // flushBytes: 1 makes each line its own flush: the producer waits for the flush to
          // take the buffer once more than twice the threshold is pending.
          for (const line of lines) {
            const pending = context.stdout(line);
            if (pending) await pending;
          }
          return { ok: true, outcome: "completed", summary: "printed" };
        },
      };
      // 2,000 flushes of two PUTs each take about 40 s here: more than the base request's 30 s.
      const running = runStep(baseRequest({ timeoutSec: 600 }), executor, {
        storage: writer,
        flushBytes: 1,
        flushIntervalMs: 1_000,
      });
      await sleep(2_000);
      const second = follow(fromMiddle, half); // started while the run is live
      const result = await running;
      const [a, b] = await Promise.all([first, second]);
      const rgw = rgwRequestCount() - rgwBefore;
      assert.equal(result.outcome, "completed", `${result.reason}: ${result.summary}`);

      assert.equal(a.bytes.byteLength, expected.byteLength);
      assert.deepEqual(a.bytes, expected, "the follower's bytes are the log's bytes");
      assert.deepEqual(b.bytes, expected.subarray(half), "from the middle: exactly the rest");
      assert.deepEqual(
        await readRunLogBytes(storage(), { taskId: "task-1", runId: "run-1" }, "stdout"),
        expected,
      );

      // Segments written for stdout: at least one per flush with output, at most one per line.
      const segments = fromStart.counts.segmentGets;
      console.log(
        `[s3-follow] ${FLUSHES} lines, writer sent ${writerCount.counts.total} requests ` +
          `(${writerCount.counts.puts} PUTs); follower from 0 sent ${fromStart.counts.total} ` +
          `in ~${a.polls} polls (${fromStart.counts.lists} lists, ${segments} segment GETs, ` +
          `${fromStart.counts.otherGets} other GETs); follower from the middle sent ` +
          `${fromMiddle.counts.total} in ~${b.polls} polls; RGW counted ${rgw} in all`,
      );
      assert.ok(segments >= FLUSHES / 4, `only ${segments} segments fetched`);
      assert.ok(segments <= FLUSHES + 5, `${segments} segment GETs for ${FLUSHES} lines`);
      // Per poll: state.json, the log's key and one listing (meta.json while the run is not
      // there yet); every segment fetched once. Linear in flushes + polls, never their product.
      for (
        const [counts, polls] of [[fromStart.counts, a.polls], [
          fromMiddle.counts,
          b.polls,
        ]] as const
      ) {
        const bound = 4 * (polls + 5) + FLUSHES + 10;
        assert.ok(counts.total <= bound, `${counts.total} requests > ${bound} (${polls} polls)`);
        assert.ok(counts.lists <= polls + 5, `${counts.lists} listings for ${polls} polls`);
      }
      assert.ok(rgw >= writerCount.counts.total + fromStart.counts.total + fromMiddle.counts.total);
    });
  });

  it("a follower of a run whose writer is killed with SIGKILL ends with RunStaleError", async (t) => {
    const env = requireRgw(t);
    if (env === undefined) return;
    await withBucket(env, "follow-kill", async (storage, bucket) => {
      const fixture = new URL("./fixtures/orchestrator.ts", import.meta.url).pathname;
      // deno-lint-ignore no-explicit-any
      const deno = (globalThis as any).Deno;
      const [command, args] = deno
        ? [deno.execPath(), ["run", "--allow-all", fixture, "stream", "/tmp", "s3"]]
        : [process.execPath, ["--import", "tsx", fixture, "stream", "/tmp", "s3"]];
      const child = spawn(command, args, {
        stdio: "ignore",
        env: {
          ...process.env,
          S3_BUCKET: bucket,
          S3_ENDPOINT: env.endpoint,
          S3_ACCESS_KEY_ID: env.accessKeyId,
          S3_SECRET_ACCESS_KEY: env.secretAccessKey,
        },
      });
      const reader = storage();
      const ref = { taskId: "crash", runId: "run-1" };
      const staleAfterMs = 3_000;
      const pollMs = 200;
      let received = 0;
      let killedAt = 0;
      let stale: RunStaleError | undefined;
      try {
        try {
          for await (const chunk of followRunLog(reader, ref, "stdout", { staleAfterMs, pollMs })) {
            received += chunk.byteLength;
            if (killedAt === 0 && received > 50_000) {
              const exited = new Promise((resolve) => child.once("exit", resolve));
              child.kill("SIGKILL");
              await exited;
              killedAt = Date.now();
            }
          }
        } catch (error) {
          if (!(error instanceof RunStaleError)) throw error;
          stale = error;
        }
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      }
      assert.ok(stale !== undefined, "the follower ended with RunStaleError");
      const after = Date.now() - killedAt;
      assert.ok(after <= staleAfterMs + pollMs + 2_000, `stale ${after} ms after the kill`);
      assert.equal(stale.offset, received);
      const stored = await readRunLogBytes(reader, ref, "stdout");
      assert.equal(stored.byteLength, received, "every stored byte was delivered");

      // Retention: the stale run is reported, not deleted; reaped and deleted when asked, and
      // then no key of it (segments included) remains.
      const olderThan = Date.now() + 60_000;
      const left = await pruneRuns(reader, { olderThan, staleAfterMs });
      assert.deepEqual(left.skipped.map((s) => [s.ref.runId, s.reason]), [["run-1", "stale"]]);
      assert.ok(
        (await keysUnder(reader, "runs/crash/run-1/")).some((k) => k.includes(".segments/")),
      );
      const pruned = await pruneRuns(reader, { olderThan, reapStale: true, staleAfterMs });
      assert.deepEqual(pruned.reaped.map((r) => r.runId), ["run-1"]);
      assert.deepEqual(pruned.deleted.map((r) => r.ref.runId), ["run-1"]);
      assert.deepEqual(await keysUnder(reader, "runs/crash/"), [], "no key of the run remains");
    });
  });
});

describe("listRuns() and pruneRuns() on S3 (Ceph RGW)", () => {
  it("filters and pages 1,500 runs of mixed status: every run exactly once, one GET per run", async (t) => {
    const env = requireRgw(t);
    if (env === undefined) return;
    await withBucket(env, "list", async (storage) => {
      const now = Date.now();
      const day = 86_400_000;
      const seeded: { taskId: string; runId: string; kind: Kind; startedAt: number }[] = [];
      for (let i = 0; i < 1_500; i++) {
        const taskId = i < 1_200 ? "big" : `t-${i % 3}`;
        seeded.push({
          taskId,
          runId: `run-${String(i).padStart(4, "0")}`,
          kind: kindOf(i),
          startedAt: now - (i % 3) * day - 60_000,
        });
      }
      const writer = storage();
      await runLimited(
        seeded,
        32,
        (s) => seedRun(writer, s.taskId, s.runId, s.kind, new Date(s.startedAt), now),
      );
      const id = (e: { taskId: string; runId: string }) => `${e.taskId}/${e.runId}`;
      const expect = (pick: (s: (typeof seeded)[number]) => boolean) =>
        seeded.filter(pick).map(id).sort();

      // Every run once across pages of 100, across tasks.
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await listRunsPage(storage(), { limit: 100, cursor, now });
        seen.push(...page.runs.map(id));
        cursor = page.cursor;
        pages++;
      } while (cursor !== undefined && pages < 100);
      assert.equal(seen.length, 1_500);
      assert.equal(new Set(seen).size, 1_500, "no run twice");
      assert.deepEqual([...seen].sort(), expect(() => true));

      // A task-scoped listing of 1,200 runs: one GET per run and two folder listings.
      const counts = counting();
      const scoped: RunListEntry[] = [];
      for await (const run of listRuns(storage({ fetch: counts.fetch }), { taskId: "big", now })) {
        scoped.push(run);
      }
      assert.equal(scoped.length, 1_200);
      assert.equal(counts.counts.lists, 2, "1,200 run folders in two listings");
      assert.equal(counts.counts.otherGets, 1_200, "one state.json GET per run");
      assert.equal(counts.counts.total, 1_202);

      // Filters, paged with the entries' cursors.
      const filtered: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page: RunListEntry[] = [];
        for await (
          const run of listRuns(storage(), {
            taskId: "big",
            status: "failed",
            since: now - day - 120_000,
            limit: 50,
            cursor: after,
            now,
          })
        ) page.push(run);
        filtered.push(...page.map(id));
        if (page.length < 50) break;
        after = page.at(-1)!.cursor;
      }
      assert.deepEqual(
        filtered,
        expect((s) =>
          s.taskId === "big" && s.kind === "failed" && s.startedAt >= now - day - 120_000
        ),
      );
      const stale: string[] = [];
      for await (const run of listRuns(storage(), { liveness: "stale", now })) stale.push(id(run));
      assert.deepEqual(stale.sort(), expect((s) => s.kind === "stale"));
      const live: string[] = [];
      for await (const run of listRuns(storage(), { liveness: "live", now })) live.push(id(run));
      assert.deepEqual(live.sort(), expect((s) => s.kind === "live"));

      // pruneRuns: a dry run deletes nothing; then only old finished runs of one task go.
      const before = (await keysUnder(writer, "runs/t-0/")).length;
      const dry = await pruneRuns(writer, {
        taskId: "t-0",
        olderThan: now - day / 2,
        dryRun: true,
        now,
      });
      assert.equal(
        (await keysUnder(writer, "runs/t-0/")).length,
        before,
        "dry run: nothing deleted",
      );
      const pruned = await pruneRuns(writer, { taskId: "t-0", olderThan: now - day / 2, now });
      const old = expect((s) =>
        s.taskId === "t-0" && (s.kind === "completed" || s.kind === "failed") &&
        s.startedAt + 1000 < now - day / 2
      );
      assert.deepEqual(dry.deleted.map((r) => id(r.ref)).sort(), old);
      assert.deepEqual(pruned.deleted.map((r) => id(r.ref)).sort(), old);
      const remaining: string[] = [];
      for await (const run of listRuns(writer, { taskId: "t-0", now })) remaining.push(id(run));
      assert.deepEqual(remaining.sort(), expect((s) => s.taskId === "t-0" && !old.includes(id(s))));
      for (const gone of old) {
        assert.deepEqual(await keysUnder(writer, `runs/${gone}/`), [], `no key of ${gone} remains`);
      }
    });
  });
});
