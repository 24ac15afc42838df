// Streams 512 MiB through one run on fs storage (64 KiB Uint8Array chunks, awaiting
// backpressure) and reports MB/s and peak RSS; then checks the stored stdout.log's size and
// SHA-256 against the bytes sent. Each repetition is its own child process.
// Run: npx -y deno@2.9.6 run -A bench/big_output.ts [--reps 3] [--mib 512]

import { createHash } from "node:crypto";
import { open, rm, stat } from "node:fs/promises";
import { createFsStorage, runStep } from "../mod.ts";
import {
  benchRequest,
  type ChildReport,
  childScenario,
  loadAverage,
  mb,
  median,
  numberArg,
  printTable,
  report,
  runChild,
  startRssSampler,
  vmHwm,
} from "./_harness.ts";

const SCRIPT = new URL(import.meta.url).pathname;
const MIB = numberArg("--mib", 512);
const REPS = numberArg("--reps", 3);
const CHUNK = 64 * 1024;
const CHUNKS = (MIB * 1024 * 1024) / CHUNK;
const TOTAL = CHUNKS * CHUNK;
const RSS_TARGET = 200e6;

/** A fixed pseudo-random 64 KiB pattern; chunk i is the pattern with i in its first 4 bytes. */
function pattern(): Uint8Array {
  const bytes = new Uint8Array(CHUNK);
  let x = 0x2545f491;
  for (let i = 0; i < CHUNK; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

function stamp(chunk: Uint8Array, i: number): Uint8Array {
  new DataView(chunk.buffer, chunk.byteOffset, 4).setUint32(0, i);
  return chunk;
}

/** SHA-256 of what the executor sent, regenerated after the run (outside the timing). */
function expectedDigest(): string {
  const hash = createHash("sha256");
  const chunk = pattern();
  for (let i = 0; i < CHUNKS; i++) hash.update(stamp(chunk, i));
  return hash.digest("hex");
}

/** SHA-256 of a file, read incrementally in 1 MiB slices. */
async function fileDigest(path: string): Promise<{ size: number; digest: string }> {
  const hash = createHash("sha256");
  const handle = await open(path, "r");
  const buffer = new Uint8Array(1024 * 1024);
  let size = 0;
  try {
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.byteLength, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return { size, digest: hash.digest("hex") };
}

async function child(): Promise<ChildReport> {
  const root = await Deno.makeTempDir({ prefix: "baa-bench-big-" });
  try {
    const chunk = pattern();
    let waits = 0;
    const sampler = startRssSampler();
    const start = performance.now();
    const result = await runStep(benchRequest(root), {
      async execute(_run, context) {
        // One buffer reused: the runner copies what it keeps.
        for (let i = 0; i < CHUNKS; i++) {
          const p = context.stdout(stamp(chunk, i));
          if (p) {
            waits++;
            await p;
          }
        }
        return { ok: true, outcome: "completed", summary: "done" };
      },
    }, { storage: createFsStorage({ root }) });
    const ms = performance.now() - start;
    const peakRss = sampler.stop();
    const hwm = vmHwm();
    if (result.outcome !== "completed") {
      throw new Error(`Run ended ${result.outcome}: ${result.summary}`);
    }
    const path = result.logPaths.stdoutLogPath;
    const { size, digest } = await fileDigest(path);
    const expected = expectedDigest();
    const statSize = (await stat(path)).size;
    return {
      scenario: "runner-fs-512MiB",
      ms,
      peakRss,
      hwm,
      extra: {
        size,
        statSize,
        sizeOk: size === TOTAL && statSize === TOTAL,
        digestOk: digest === expected,
        digest,
        writes: result.metrics.storageWrites,
        waits,
        reportedBytes: result.metrics.stdoutBytes,
      },
    };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

async function parent(): Promise<void> {
  console.log(
    `big_output: ${MIB} MiB in ${CHUNKS} chunks of 64 KiB through context.stdout on fs storage, ${REPS} reps`,
  );
  console.log(`deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores\n`);
  console.log(`load average at start: ${loadAverage()}`);
  const runs: ChildReport[] = [];
  for (let rep = 1; rep <= REPS; rep++) {
    const r = await runChild(SCRIPT, "big", ["--mib", String(MIB)]);
    runs.push(r);
    console.log(
      `  rep ${rep}: ${r.ms.toFixed(0)} ms, ${
        (TOTAL / 1e6 / (r.ms / 1000)).toFixed(0)
      } MB/s, peak RSS ${mb(r.peakRss)} MB, ` +
        `VmHWM ${mb(r.hwm)} MB, size ${r.extra.size} (${r.extra.sizeOk ? "ok" : "WRONG"}), sha256 ${
          r.extra.digestOk ? "ok" : "MISMATCH"
        }, ` +
        `storage writes ${r.extra.writes}, backpressure waits ${r.extra.waits}`,
    );
  }
  console.log(`load average at end: ${loadAverage()}`);
  const ms = median(runs.map((r) => r.ms));
  const peak = Math.max(...runs.map((r) => r.peakRss));
  const hwm = Math.max(...runs.map((r) => r.hwm));
  const ok = runs.every((r) => r.extra.sizeOk === true && r.extra.digestOk === true);
  console.log();
  printTable([
    "scenario",
    "median ms",
    "MB/s",
    "MiB/s",
    "max peak RSS MB",
    "max VmHWM MB",
    "size+sha256",
  ], [[
    "runner-fs",
    ms.toFixed(0),
    (TOTAL / 1e6 / (ms / 1000)).toFixed(0),
    (TOTAL / 1048576 / (ms / 1000)).toFixed(0),
    mb(peak),
    mb(hwm),
    ok ? "ok" : "FAIL",
  ]]);
  console.log(`\nsha256 of the ${TOTAL} bytes: ${runs[0].extra.digest}`);
  console.log(`peak RSS target < 200 MB: ${Math.max(peak, hwm) < RSS_TARGET ? "met" : "MISSED"}`);
  if (!ok) {
    console.error("FAIL: stdout.log size or checksum differs from what was sent");
    Deno.exit(1);
  }
}

if (childScenario() !== undefined) {
  report(await child());
  Deno.exit(0);
} else {
  await parent();
}
