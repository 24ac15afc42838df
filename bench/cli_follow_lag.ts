// `runs logs -f` lag: time from a line printed by a worker (`context.stdout`) to that line shown
// on the CLI's stdout, median and p95 of 20 lines, on the filesystem and on Ceph RGW. The CLI
// runs as a user runs it (a child process, default poll 250 ms); the runner with its default
// flush (1 s) and with `flushIntervalMs: 200`. Lines are spaced 300-700 ms apart at random so
// they do not lock onto the flush or poll phase.
//
// Run (the S3 leg needs the env printed by scripts/rgw.sh; it is skipped without it):
//   source "$(bash scripts/rgw.sh start | tail -n1)"
//   npx -y deno@2.9.6 run -A bench/cli_follow_lag.ts [--lines 20]

import { mkdtemp, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createFsStorage, createS3Storage, runStep } from "../mod.ts";
import type { RunStorage } from "../mod.ts";
import { createBucket, deleteBucketRecursive, uniqueBucketName } from "../tests/s3/bucket.ts";
import { rgwEnv } from "../tests/s3/rgw_env.ts";
import { startCli } from "../tests/cli/run_cli.ts";
import { loadAverage, median, numberArg, printTable } from "./_harness.ts";

const LINES = numberArg("--lines", 20);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const p95 = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * 0.95))];

/** One run printing LINES lines while `runs logs -f` follows it; the lags in ms. */
async function measure(
  storage: RunStorage,
  cliArgs: string[],
  cliEnv: Record<string, string>,
  flushIntervalMs: number | undefined,
  runId: string,
  repo: string,
  stream: string,
): Promise<number[]> {
  const sentAt = new Map<number, number>();
  const lags: number[] = [];
  let started!: () => void;
  const ready = new Promise<void>((resolve) => (started = resolve));
  const run = runStep({
    taskId: "bench",
    stepId: "s",
    stepName: "Bench",
    stepKind: "bench",
    runId,
    attempt: 1,
    workerKind: "script",
    timeoutSec: 300,
    runtime: { repoRoot: repo, worktreePath: repo },
  }, {
    async execute(_run, context) {
      await ready;
      for (let i = 0; i < LINES; i++) {
        await sleep(300 + Math.random() * 400);
        sentAt.set(i, performance.now());
        await context.stdout(`mark ${i}\n`);
      }
      await sleep(200);
      return { ok: true, outcome: "completed", summary: "done" };
    },
  }, { storage, ...(flushIntervalMs !== undefined ? { flushIntervalMs } : {}) });
  // The CLI starts once the run exists, as a user would start it on a run they found with ls.
  while (await storage.read(`runs/bench/${runId}/meta.json`) === undefined) await sleep(20);
  const cli = startCli(["logs", `bench/${runId}`, "-f", "--stream", stream, ...cliArgs], cliEnv);
  let partial = "";
  cli.stdout!.on("data", (chunk: Uint8Array) => {
    const now = performance.now();
    const lines = (partial + new TextDecoder().decode(chunk)).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      const i = Number(/^mark (\d+)$/.exec(line)?.[1]);
      if (sentAt.has(i)) lags.push(now - sentAt.get(i)!);
    }
  });
  // Give the CLI time to start (a runtime boot) before the first line.
  await sleep(1_500);
  started();
  await run;
  await new Promise((resolve) => cli.once("close", resolve));
  if (lags.length !== LINES) throw new Error(`the CLI showed ${lags.length} of ${LINES} lines`);
  return lags;
}

const rows: (string | number)[][] = [];
const STREAMS = ["stdout", "all"];
const record = (backend: string, flush: string, stream: string, lags: number[]) => {
  rows.push([backend, flush, stream, LINES, Math.round(median(lags)), Math.round(p95(lags))]);
};

const dir = await realpath(await mkdtemp(join(tmpdir(), "cli-lag-")));
try {
  const fs = createFsStorage({ root: dir });
  for (const stream of STREAMS) {
    const args = ["--storage", dir];
    record(
      "fs",
      "1000 (default)",
      stream,
      await measure(fs, args, {}, undefined, `fs-1-${stream}`, dir, stream),
    );
    record("fs", "200", stream, await measure(fs, args, {}, 200, `fs-2-${stream}`, dir, stream));
  }
  const env = rgwEnv();
  if (env === undefined) {
    console.error("S3_ENDPOINT etc. are not set: the RGW leg is skipped");
  } else {
    const bucket = uniqueBucketName("clilag");
    await createBucket(env, bucket);
    try {
      const s3 = createS3Storage({ ...env, bucket });
      const args = ["--storage", `s3://${bucket}`];
      const cliEnv = {
        AWS_ACCESS_KEY_ID: env.accessKeyId,
        AWS_SECRET_ACCESS_KEY: env.secretAccessKey,
        AWS_REGION: env.region,
        AWS_ENDPOINT_URL_S3: env.endpoint,
      };
      for (const stream of STREAMS) {
        const id = (n: number) => `s3-${n}-${stream}`;
        record(
          "RGW",
          "1000 (default)",
          stream,
          await measure(s3, args, cliEnv, undefined, id(1), dir, stream),
        );
        record("RGW", "200", stream, await measure(s3, args, cliEnv, 200, id(2), dir, stream));
      }
    } finally {
      await deleteBucketRecursive(env, bucket);
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
console.log(
  `runs logs -f lag, line printed -> line shown (ms); CLI poll 250 ms; load ${loadAverage()}`,
);
printTable(["storage", "flushIntervalMs", "--stream", "lines", "median", "p95"], rows);
