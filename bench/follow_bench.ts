// The read side on S3 (Ceph RGW): requests per follower poll at 10, 100 and 1,000 segments
// (against re-reading the log every poll, the only way to follow a run before followRunLog),
// follower lag (printed -> yielded), and readRun + readRunLog round trips behind a 25 ms delay.
//
// Run (needs the env printed by scripts/rgw.sh):
//   source "$(bash scripts/rgw.sh start | tail -n1)"
//   npx -y deno@2.9.6 run -A bench/follow_bench.ts [--lines 100] [--mod <path to a mod.ts>]
//
// `--mod` points the readRun measurement at another tree's mod.ts (e.g. an export of the commit
// before this work) so "before" and "after" run the same script. The 25 ms delay is added in
// front of every request by the S3 client's `fetch` option: a round trip costs at least 25 ms,
// so elapsed / 25 ms counts the sequential round trips.

import process from "node:process";
import { createBucket, deleteBucketRecursive, uniqueBucketName } from "../tests/s3/bucket.ts";
import { rgwEnv } from "../tests/s3/rgw_env.ts";
import { benchRequest, median, numberArg, stringArg } from "./_harness.ts";

const otherMod = stringArg("--mod", "");
const modPath = otherMod !== "" ? otherMod : new URL("../mod.ts", import.meta.url).href;
const LINES = numberArg("--lines", 100);
// deno-lint-ignore no-explicit-any
const lib: any = await import(modPath.startsWith("file:") ? modPath : `file://${modPath}`);
const env = rgwEnv();
if (env === undefined) {
  console.error("S3_ENDPOINT etc. are not set: source the env file scripts/rgw.sh start prints");
  process.exit(1);
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const p95 = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length * 0.95)];

function counted(delayMs = 0): { fetch: typeof fetch; count: () => number } {
  let n = 0;
  return {
    count: () => n,
    fetch: async (input, init) => {
      n++;
      if (delayMs > 0) await sleep(delayMs);
      return fetch(input, init);
    },
  };
}

const bucket = uniqueBucketName("followbench");
await createBucket(env, bucket);
const storage = (extra: Record<string, unknown> = {}) =>
  lib.createS3Storage({
    endpoint: env.endpoint,
    region: env.region,
    bucket,
    accessKeyId: env.accessKeyId,
    secretAccessKey: env.secretAccessKey,
    ...extra,
  });

try {
  if (otherMod === "") {
    // --- requests per poll at N segments: a live run whose writer is paused ---
    for (const segments of [10, 100, 1_000]) {
      const writer = storage();
      const ref = { taskId: "poll", runId: `n-${segments}` };
      const dir = `runs/${ref.taskId}/${ref.runId}`;
      const now = new Date().toISOString();
      await writer.write(
        `${dir}/meta.json`,
        JSON.stringify({
          layoutVersion: "local-run-v1",
          taskId: ref.taskId,
          stepId: "s",
          stepName: "S",
          runId: ref.runId,
          workerKind: "script",
          attempt: 1,
          repoRoot: "/r",
          worktreePath: "/r",
          createdAt: now,
          checkpointMode: "none",
        }),
      );
      const state = (updatedAt: string) =>
        JSON.stringify({
          status: "running",
          attempt: 1,
          startedAt: now,
          updatedAt,
          lastEventSeq: 1,
          checkpointSeq: 0,
        });
      await writer.write(`${dir}/state.json`, state(now));
      const segmentKey = (i: number) => `${dir}/stdout.log.segments/${String(i).padStart(10, "0")}`;
      const pending = Array.from({ length: segments }, (_, i) => i + 1);
      await Promise.all(Array.from({ length: 16 }, async () => {
        for (let i = pending.shift(); i !== undefined; i = pending.shift()) {
          await writer.write(segmentKey(i), `segment ${i}\n`);
        }
      }));
      const client = counted();
      const reader = storage({ fetch: client.fetch });
      const controller = new AbortController();
      let received = 0;
      const follower = (async () => {
        for await (
          const chunk of lib.followRunLog(reader, ref, "stdout", {
            signal: controller.signal,
            pollMs: 200,
            staleAfterMs: 3_600_000,
          })
        ) received += chunk.byteLength;
      })();
      let total = 0;
      for (let i = 1; i <= segments; i++) total += `segment ${i}\n`.length;
      while (received < total) await sleep(50); // caught up
      // Before followRunLog: a poll was readRunLogBytes, the whole log again.
      const legacyClient = counted();
      await lib.readRunLogBytes(storage({ fetch: legacyClient.fetch }), ref, "stdout");
      // Idle polls: nothing new.
      let before = client.count();
      await sleep(2_000);
      const idle = (client.count() - before) / 10;
      // One new segment per poll.
      before = client.count();
      for (let i = 1; i <= 10; i++) {
        await writer.write(segmentKey(segments + i), `segment ${segments + i}\n`);
        await writer.write(`${dir}/state.json`, state(new Date().toISOString()));
        await sleep(200);
      }
      const busy = (client.count() - before) / 10;
      controller.abort();
      await follower;
      console.log(
        `[follow-bench] ${segments} segments: follower ${idle.toFixed(1)} requests/poll idle, ` +
          `${busy.toFixed(1)} with one new segment per poll; re-reading the log: ` +
          `${legacyClient.count()} requests/poll`,
      );
    }

    // --- lag: printed -> yielded, defaults (flush 1 s, poll 500 ms) and tighter settings ---
    for (
      const [label, flushIntervalMs, pollMs] of [["defaults", 1000, 500], [
        "flush 200 ms, poll 100 ms",
        200,
        100,
      ]] as const
    ) {
      const ref = { taskId: "lag", runId: `lag-${flushIntervalMs}` };
      const printed = new Map<number, number>();
      const lags: number[] = [];
      const follower = (async () => {
        let text = "";
        const decoder = new TextDecoder();
        for await (const chunk of lib.followRunLog(storage(), ref, "stdout", { pollMs })) {
          const at = performance.now();
          text += decoder.decode(chunk, { stream: true });
          const lines = text.split("\n");
          text = lines.pop()!;
          for (const line of lines) lags.push(at - printed.get(Number(line.split(" ")[1]))!);
        }
      })();
      await lib.runStep({ ...benchRequest("/r", ref.runId), taskId: ref.taskId }, {
        async execute(_run: unknown, context: { stdout(text: string): unknown }) {
          for (let i = 0; i < LINES; i++) {
            printed.set(i, performance.now());
            await context.stdout(`line ${i}\n`);
            await sleep(50);
          }
          return { ok: true, outcome: "completed", summary: "" };
        },
      }, { storage: storage(), flushIntervalMs });
      await follower;
      console.log(
        `[follow-bench] lag (${label}), ${lags.length} lines: median ${
          median(lags).toFixed(0)
        } ms, ` +
          `p95 ${p95(lags).toFixed(0)} ms`,
      );
    }
  }

  // --- readRun + readRunLog round trips behind a 25 ms delay ---
  const ref = { taskId: "rr", runId: "rr-1" };
  await lib.runStep({ ...benchRequest("/r", ref.runId), taskId: ref.taskId }, {
    async execute(
      _run: unknown,
      context: { stdout(text: string): unknown; saveArtifact(n: string, d: string): unknown },
    ) {
      await context.stdout("hello\n");
      await context.saveArtifact("report.txt", "ok");
      return { ok: true, outcome: "completed", summary: "" };
    },
  }, { storage: storage() });
  const times: number[] = [];
  const requests: number[] = [];
  for (let i = 0; i < 5; i++) {
    const client = counted(25);
    const reader = storage({ fetch: client.fetch });
    const started = performance.now();
    await lib.readRun(reader, ref);
    await lib.readRunLog(reader, ref, "stdout");
    times.push(performance.now() - started);
    requests.push(client.count());
  }
  console.log(
    `[follow-bench] readRun + readRunLog behind 25 ms (${
      otherMod !== "" ? modPath : "this tree"
    }): ` +
      `median ${median(times).toFixed(0)} ms = ~${(median(times) / 25).toFixed(1)} sequential ` +
      `round trips, ${median(requests)} requests`,
  );
} finally {
  await deleteBucketRecursive(env, bucket);
}
