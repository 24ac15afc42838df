// Following both streams in sequence on S3 (Ceph RGW): requests per follower poll while the run
// is silent and while it prints a stdout and a stderr line between polls, for followRunOutput
// (with and without events) beside followRunLog of one stream; and the lag from printed to
// yielded in sequence.
//
// Run (needs the env printed by scripts/rgw.sh):
//   source "$(bash scripts/rgw.sh start | tail -n1)"
//   npx -y deno@2.9.6 run -A bench/output_follow_s3.ts [--polls 20]

import process from "node:process";
import { createS3Storage, followRunLog, followRunOutput, runStep } from "../mod.ts";
import type { RunStorage } from "../mod.ts";
import { createBucket, deleteBucketRecursive, uniqueBucketName } from "../tests/s3/bucket.ts";
import { rgwEnv } from "../tests/s3/rgw_env.ts";
import { benchRequest, loadAverage, median, numberArg } from "./_harness.ts";

const POLLS = numberArg("--polls", 20);
const POLL_MS = 200;
const env = rgwEnv();
if (env === undefined) {
  console.error("S3_ENDPOINT etc. are not set: source the env file scripts/rgw.sh start prints");
  process.exit(1);
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function storageFor(bucket: string, counter?: { n: number }): RunStorage {
  return createS3Storage({
    endpoint: env!.endpoint,
    region: env!.region,
    bucket,
    accessKeyId: env!.accessKeyId,
    secretAccessKey: env!.secretAccessKey,
    fetch: counter === undefined ? undefined : (input, init) => {
      counter.n++;
      return fetch(input, init);
    },
  });
}

type Follower = "output" | "output+events" | "stdout log";

/** Runs a live run with a silent phase and a printing phase; counts one follower's requests. */
async function measure(bucket: string, kind: Follower, runId: string) {
  const writer = storageFor(bucket);
  const ref = { taskId: "follow", runId };
  let phase: "silent" | "printing" | "done" = "silent";
  const printedAt = new Map<string, number>();
  const run = runStep({ ...benchRequest("/bench", runId), taskId: "follow" }, {
    async execute(_run, context) {
      while (phase === "silent") await sleep(20);
      for (let i = 0; phase === "printing"; i++) {
        printedAt.set(`out ${i}`, performance.now());
        await context.stdout(`out ${i}\n`);
        await context.stderr(`err ${i}\n`);
        await sleep(POLL_MS);
      }
      return { ok: true, outcome: "completed", summary: "done" };
    },
  }, { storage: writer, flushIntervalMs: 100 });
  const counter = { n: 0 };
  const reader = storageFor(bucket, counter);
  const lags: number[] = [];
  const follower = (async () => {
    const decoder = new TextDecoder();
    const iterable = kind === "stdout log"
      ? followRunLog(reader, ref, "stdout", { pollMs: POLL_MS })
      : followRunOutput(reader, ref, { pollMs: POLL_MS, events: kind === "output+events" });
    for await (const item of iterable) {
      const bytes = item instanceof Uint8Array
        ? item
        : item.channel === "worker"
        ? undefined
        : item.bytes;
      if (bytes === undefined) continue;
      for (const line of decoder.decode(bytes).split("\n")) {
        const at = printedAt.get(line);
        if (at !== undefined) lags.push(performance.now() - at);
      }
    }
  })();
  await sleep(1_000); // the follower has found the run
  let before = counter.n;
  await sleep(POLLS * POLL_MS);
  const silent = (counter.n - before) / POLLS;
  phase = "printing";
  await sleep(500);
  before = counter.n;
  await sleep(POLLS * POLL_MS);
  const printing = (counter.n - before) / POLLS;
  phase = "done";
  await run;
  await follower;
  return { silent, printing, lag: median(lags) };
}

const bucket = uniqueBucketName("bench-output-follow");
await createBucket(env, bucket);
try {
  console.log(`following in sequence on RGW, poll ${POLL_MS} ms, load ${loadAverage()}`);
  let n = 0;
  for (const kind of ["stdout log", "output", "output+events"] as Follower[]) {
    const r = await measure(bucket, kind, `run-${n++}`);
    console.log(
      `${kind.padEnd(14)} requests/poll: ${r.silent.toFixed(1)} silent, ${
        r.printing.toFixed(1)
      } printing; lag printed -> yielded median ${r.lag.toFixed(0)} ms`,
    );
  }
} finally {
  await deleteBucketRecursive(env, bucket);
}
