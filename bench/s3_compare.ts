// Compares a 20,000-chunk runStep on S3 (Ceph RGW) with the seed's write-through pattern on the
// same server: requests (RGW's own counter) and wall time, repetitions interleaved, medians.
//
// Run (needs the env printed by scripts/rgw.sh):
//   source "$(bash scripts/rgw.sh start | tail -n1)"
//   npx -y deno@2.9.6 run -A bench/s3_compare.ts [--reps 3] [--chunks 20000] [--wt-chunks 2000]
//
// Write-through = the seed's appendStreamChunkPersisted on an object store: per chunk, the whole
// stdout.log is PUT again (the accumulated bytes are kept in memory, so no GET is needed) and
// state.json is PUT again. Rewriting a growing object 20,000 times uploads ~16 GB, so it is
// measured at --wt-chunks and at half that, and the 20,000-chunk time is extrapolated from a
// fit t(n) = a·n + b·n² (per-chunk cost plus re-uploaded bytes); its request count is exact
// arithmetic (2n + 3). Both scenarios use the same S3 client (createS3Storage), so the numbers
// compare the write patterns, not HTTP stacks.

import process from "node:process";
import { createS3Storage, runStep } from "../mod.ts";
import type { RunStorage, StepExecutionRequest } from "../mod.ts";
import { createBucket, deleteBucketRecursive, uniqueBucketName } from "../tests/s3/bucket.ts";
import { rgwEnv, rgwRequestCount } from "../tests/s3/rgw_env.ts";
import { median, numberArg } from "./_harness.ts";

const CHUNKS = numberArg("--chunks", 20_000);
const WT_CHUNKS = numberArg("--wt-chunks", 2_000);
const WT_HALF = Math.max(1, Math.floor(WT_CHUNKS / 2));
const REPS = Math.max(3, numberArg("--reps", 3));

const encoder = new TextEncoder();
/** Chunk i: `line <i> ` padded to 79 characters, then a newline: 80 bytes. */
const lineOf = (i: number): string => `line ${i} `.padEnd(79, "x") + "\n";
const LINE_BYTES = 80;

function expectedStdout(chunks: number): Uint8Array {
  const parts: string[] = [];
  for (let i = 0; i < chunks; i++) parts.push(lineOf(i));
  return encoder.encode(parts.join(""));
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  if (a === undefined || a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

function request(runId: string): StepExecutionRequest {
  return {
    taskId: "bench",
    stepId: "step-1",
    stepName: "Stream output",
    stepKind: "bench",
    runId,
    attempt: 1,
    workerKind: "script",
    timeoutSec: 3600,
    runtime: { repoRoot: "/repo", worktreePath: "/repo" },
  };
}

interface Sample {
  /** Requests RGW counted (or the client's count when the counter is unavailable). */
  requests: number;
  /** HTTP attempts the adapter made. */
  sent: number;
  ms: number;
  exact: boolean;
}

const env = rgwEnv();
if (env === undefined) {
  console.log(
    "bench/s3_compare.ts: no S3 server configured (S3_ENDPOINT, S3_ACCESS_KEY_ID, " +
      "S3_SECRET_ACCESS_KEY unset).\nStart Ceph RGW first:\n" +
      '  source "$(bash scripts/rgw.sh start | tail -n1)"\n' +
      "  npx -y deno@2.9.6 run -A bench/s3_compare.ts",
  );
  process.exit(0);
}

let counterWorks = true;
function serverCount(): number {
  if (!counterWorks) return 0;
  try {
    return rgwRequestCount();
  } catch (error) {
    counterWorks = false;
    console.warn(
      `RGW's request counter is unavailable (${(error as Error).message.split("\n")[0]}); ` +
        "falling back to the adapter's own count of HTTP attempts.",
    );
    return 0;
  }
}

const bucket = uniqueBucketName("bench-s3-compare");
let sent = 0;
const storage: RunStorage = createS3Storage({
  endpoint: env.endpoint,
  region: env.region,
  bucket,
  accessKeyId: env.accessKeyId,
  secretAccessKey: env.secretAccessKey,
  fetch: (input, init) => {
    sent++;
    return fetch(input, init);
  },
});

async function measure(work: () => Promise<boolean>): Promise<Sample> {
  const sentBefore = sent;
  const before = serverCount();
  const started = performance.now();
  const exact = await work();
  const ms = performance.now() - started;
  const attempts = sent - sentBefore;
  const after = serverCount();
  const requests = counterWorks ? after - before : attempts;
  return { requests, sent: attempts, ms, exact };
}

let runCounter = 0;

/** runStep with an executor that prints `chunks` lines as fast as it can. */
function ours(chunks: number): Promise<Sample> {
  const runId = `ours-${chunks}-${++runCounter}`;
  let stdoutKey = "";
  return measure(async () => {
    const result = await runStep(request(runId), {
      async execute(_run, context) {
        for (let i = 0; i < chunks; i++) await context.stdout(lineOf(i));
        return { ok: true, outcome: "completed", summary: `Printed ${chunks} lines.` };
      },
    }, { storage });
    stdoutKey = result.keys.stdoutLog;
    return result.outcome === "completed";
  }).then(async (sample) => ({
    ...sample,
    exact: sample.exact && sameBytes(await storage.read(stdoutKey), expectedStdout(chunks)),
  }));
}

/** The seed's write-through pattern: per chunk, PUT the whole stdout.log, then PUT state.json. */
function writeThrough(chunks: number): Promise<Sample> {
  const dir = `runs/bench/wt-${chunks}-${++runCounter}`;
  return measure(async () => {
    const startedAt = new Date().toISOString();
    const state = {
      status: "running",
      attempt: 1,
      startedAt,
      updatedAt: startedAt,
      lastEventSeq: 0,
      checkpointSeq: 0,
      summary: "Running.",
      stdoutBytes: 0,
      stderrBytes: 0,
    };
    const stateBody = () => JSON.stringify(state, null, 2) + "\n";
    await storage.write(`${dir}/meta.json`, JSON.stringify({ runId: dir }) + "\n", {
      ifNoneMatch: "*",
    });
    await storage.write(`${dir}/state.json`, stateBody());
    const stdout = new Uint8Array(chunks * LINE_BYTES);
    let length = 0;
    for (let i = 0; i < chunks; i++) {
      length += encoder.encodeInto(lineOf(i), stdout.subarray(length)).written;
      await storage.write(`${dir}/stdout.log`, stdout.subarray(0, length));
      state.lastEventSeq = i + 1;
      state.updatedAt = new Date().toISOString();
      state.stdoutBytes = length;
      await storage.write(`${dir}/state.json`, stateBody());
    }
    state.status = "completed";
    await storage.write(`${dir}/state.json`, stateBody());
    return true;
  }).then(async (sample) => ({
    ...sample,
    exact: sample.exact &&
      sameBytes(await storage.read(`${dir}/stdout.log`), expectedStdout(chunks)),
  }));
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

await createBucket(env, bucket);
const samples: Record<string, Sample[]> = {};
const record = (name: string, sample: Sample) => {
  (samples[name] ??= []).push(sample);
  console.log(
    `  ${name.padEnd(24)} ${fmt(sample.requests).padStart(7)} requests  ${
      fmt(sample.ms).padStart(7)
    } ms` +
      (sample.sent !== sample.requests ? `  (adapter sent ${sample.sent})` : "") +
      (sample.exact ? "" : "  STORED BYTES WRONG"),
  );
};
console.log(
  `S3 compare on ${env.endpoint}: ${fmt(CHUNKS)} chunks of ${LINE_BYTES} B through runStep vs ` +
    `write-through at ${fmt(WT_HALF)} and ${
      fmt(WT_CHUNKS)
    } chunks; ${REPS} repetitions, interleaved.`,
);
try {
  // One warm-up of each (connection pool, JIT), not counted.
  await ours(200);
  await writeThrough(50);
  for (let rep = 1; rep <= REPS; rep++) {
    console.log(`repetition ${rep}/${REPS}`);
    const order: [string, () => Promise<Sample>][] = [
      [`runStep ${CHUNKS}`, () => ours(CHUNKS)],
      [`write-through ${WT_HALF}`, () => writeThrough(WT_HALF)],
      [`runStep ${WT_CHUNKS}`, () => ours(WT_CHUNKS)],
      [`write-through ${WT_CHUNKS}`, () => writeThrough(WT_CHUNKS)],
    ];
    // Rotate the order so no scenario always runs first (or right after the heaviest one).
    for (let i = 0; i < order.length; i++) {
      const [name, run] = order[(i + rep - 1) % order.length];
      record(name, await run());
    }
  }
} finally {
  await deleteBucketRecursive(env, bucket);
}

const med = (name: string, field: "requests" | "ms") => median(samples[name].map((s) => s[field]));
const ourReq = med(`runStep ${CHUNKS}`, "requests");
const ourMs = med(`runStep ${CHUNKS}`, "ms");
const ourSmallReq = med(`runStep ${WT_CHUNKS}`, "requests");
const ourSmallMs = med(`runStep ${WT_CHUNKS}`, "ms");
const wtReq = med(`write-through ${WT_CHUNKS}`, "requests");
const wtMs = med(`write-through ${WT_CHUNKS}`, "ms");
const wtHalfMs = med(`write-through ${WT_HALF}`, "ms");
// t(n) = a·n + b·n² through the two measured points.
const n1 = WT_HALF, n2 = WT_CHUNKS;
let b = (wtMs / n2 - wtHalfMs / n1) / (n2 - n1);
if (!(b > 0)) b = 0; // noise: fall back to linear
const a = wtMs / n2 - b * n2;
const wtFullMs = a * CHUNKS + b * CHUNKS * CHUNKS;
const wtFullLinearMs = (wtMs / n2) * CHUNKS;
const wtFullReq = 2 * CHUNKS + 3;
const allExact = Object.values(samples).every((list) => list.every((s) => s.exact));

console.log(
  `\nMedians of ${REPS} (requests: ${
    counterWorks ? "RGW's own counter, rgw.req" : "adapter's count"
  }):`,
);
const rows: string[][] = [
  ["scenario", "requests", "wall ms", "requests/chunk", "ms/chunk"],
  [
    `runStep, ${fmt(CHUNKS)} chunks`,
    fmt(ourReq),
    fmt(ourMs),
    fmt(ourReq / CHUNKS, 4),
    fmt(ourMs / CHUNKS, 3),
  ],
  [
    `runStep, ${fmt(WT_CHUNKS)} chunks`,
    fmt(ourSmallReq),
    fmt(ourSmallMs),
    fmt(ourSmallReq / WT_CHUNKS, 4),
    fmt(ourSmallMs / WT_CHUNKS, 3),
  ],
  [
    `write-through, ${fmt(WT_HALF)} chunks`,
    fmt(med(`write-through ${WT_HALF}`, "requests")),
    fmt(wtHalfMs),
    fmt(med(`write-through ${WT_HALF}`, "requests") / WT_HALF, 2),
    fmt(wtHalfMs / WT_HALF, 2),
  ],
  [
    `write-through, ${fmt(WT_CHUNKS)} chunks`,
    fmt(wtReq),
    fmt(wtMs),
    fmt(wtReq / WT_CHUNKS, 2),
    fmt(wtMs / WT_CHUNKS, 2),
  ],
  [
    `write-through, ${fmt(CHUNKS)} chunks (EXTRAPOLATED)`,
    `${fmt(wtFullReq)} (2n+3)`,
    `~${fmt(wtFullMs)}`,
    fmt(wtFullReq / CHUNKS, 2),
    `~${fmt(wtFullMs / CHUNKS, 2)}`,
  ],
];
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
for (const row of rows) {
  console.log(
    "  " +
      row.map((cell, c) => c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])).join("  "),
  );
}

console.log(`\nSame ${fmt(WT_CHUNKS)} chunks, both measured:`);
console.log(`  requests: write-through / runStep = ${fmt(wtReq / ourSmallReq, 1)}x`);
console.log(`  wall time: write-through / runStep = ${fmt(wtMs / ourSmallMs, 1)}x`);
console.log(
  `${fmt(CHUNKS)} chunks (runStep measured; write-through EXTRAPOLATED from ${fmt(WT_HALF)} and ${
    fmt(WT_CHUNKS)
  }):`,
);
console.log(
  `  requests: ${fmt(wtFullReq)} / ${fmt(ourReq)} = ${
    fmt(wtFullReq / ourReq, 0)
  }x fewer (target >= 100x: ${wtFullReq / ourReq >= 100 ? "met" : "NOT met"})`,
);
console.log(
  `  wall time: ~${fmt(wtFullMs / 1000, 0)} s (fit t = ${fmt(a, 3)}·n + ${
    b.toExponential(2)
  }·n² ms; ` +
    `linear lower bound ${fmt(wtFullLinearMs / 1000, 0)} s) / ${fmt(ourMs / 1000, 2)} s = ~${
      fmt(wtFullMs / ourMs, 0)
    }x ` +
    `(at least ${fmt(wtFullLinearMs / ourMs, 0)}x)`,
);
console.log(`stored stdout byte-exact in every run: ${allExact ? "yes" : "NO"}`);
if (!allExact) process.exitCode = 1;
