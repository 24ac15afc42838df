// Compares streaming 100,000 small stdout chunks through runStep (memory and fs storage) with the
// seed's write-through pattern (append + state.json rewrite per chunk) and with pino's fast
// destination. Each scenario run is its own child process; scenarios are interleaved.
// Run: npx -y deno@2.9.6 run -A bench/stream_compare.ts [--reps 3] [--chunks 100000]

import { appendFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import pino from "pino";
import { createFsStorage, createMemoryStorage, runStep } from "../mod.ts";
import type { RunStorage } from "../mod.ts";
import {
  benchRequest,
  type ChildReport,
  childScenario,
  loadAverage,
  mb,
  median,
  numberArg,
  pairedRatio,
  printTable,
  report,
  runChild,
  startRssSampler,
  vmHwm,
} from "./_harness.ts";

const SCRIPT = new URL(import.meta.url).pathname;
const CHUNKS = numberArg("--chunks", 100_000);
const REPS = numberArg("--reps", 3);

const encoder = new TextEncoder();
/** Chunk i: `line <i> ` padded to 79 characters, then a newline: 80 bytes. */
const lineOf = (i: number) => `line ${i} `.padEnd(79, "x") + "\n";

function expectedBytes(): Uint8Array {
  const parts: string[] = [];
  for (let i = 0; i < CHUNKS; i++) parts.push(lineOf(i));
  return encoder.encode(parts.join(""));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Wraps a storage, counting appends, writes, replaces and stream writes; keeps its capabilities. */
function countingStorage(
  inner: RunStorage,
): { storage: RunStorage; counts: Record<string, number> } {
  const counts: Record<string, number> = { write: 0, append: 0, replace: 0, writeStream: 0 };
  const storage: RunStorage = {
    ...inner,
    name: inner.name,
    read: (key) => inner.read(key),
    write: (key, data, options) => (counts.write++, inner.write(key, data, options)),
    list: (prefix) => inner.list(prefix),
    delete: (key) => inner.delete(key),
    locate: (key) => inner.locate(key),
  };
  if (inner.append) storage.append = (key, data) => (counts.append++, inner.append!(key, data));
  if (inner.replace) {
    storage.replace = (
      key,
      data,
      options,
    ) => (counts.replace++, inner.replace!(key, data, options));
  }
  if (inner.writeStream) {
    storage.writeStream = (
      key,
      source,
      options,
    ) => (counts.writeStream++, inner.writeStream!(key, source, options));
  }
  return { storage, counts };
}

async function runnerScenario(kind: "memory" | "fs"): Promise<ChildReport> {
  const root = await Deno.makeTempDir({ prefix: "baa-bench-stream-" });
  try {
    const base = kind === "fs" ? createFsStorage({ root }) : createMemoryStorage();
    const { storage, counts } = countingStorage(base);
    const sampler = startRssSampler();
    const start = performance.now();
    const result = await runStep(benchRequest(root), {
      async execute(_run, context) {
        for (let i = 0; i < CHUNKS; i++) {
          const p = context.stdout(lineOf(i));
          if (p) await p;
        }
        return { ok: true, outcome: "completed", summary: "done" };
      },
    }, { storage });
    const ms = performance.now() - start;
    const peakRss = sampler.stop();
    const hwm = vmHwm();
    if (result.outcome !== "completed") {
      throw new Error(`Run ended ${result.outcome}: ${result.summary}`);
    }
    const stored = kind === "fs"
      ? new Uint8Array(await readFile(result.logPaths.stdoutLogPath))
      : await base.read(result.keys.stdoutLog);
    const exact = stored !== undefined && sameBytes(stored, expectedBytes());
    const writes = counts.write + counts.append + counts.replace + counts.writeStream;
    return {
      scenario: `runner-${kind}`,
      ms,
      peakRss,
      hwm,
      extra: {
        writes,
        metricsWrites: result.metrics.storageWrites,
        appends: counts.append,
        exact,
        bytes: stored?.byteLength ?? 0,
      },
    };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** The seed's appendStreamChunkPersisted: append the chunk, then rewrite state.json, per chunk. */
async function writeThroughScenario(kind: "memory" | "fs"): Promise<ChildReport> {
  const root = await Deno.makeTempDir({ prefix: "baa-bench-wt-" });
  try {
    const dir = `${root}/runs/bench/run-1`;
    const memory = createMemoryStorage();
    const state = {
      status: "running",
      attempt: 1,
      startedAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(),
      lastEventSeq: 0,
      checkpointSeq: 0,
      summary: "Running.",
      stdoutBytes: 0,
      stderrBytes: 0,
    };
    let writes = 0;
    const sampler = startRssSampler();
    const start = performance.now();
    if (kind === "fs") {
      await mkdir(dir, { recursive: true });
      await writeFile(`${dir}/stdout.log`, "");
    }
    for (let i = 0; i < CHUNKS; i++) {
      const line = lineOf(i);
      state.lastEventSeq = i + 1;
      state.updatedAt = new Date().toISOString();
      state.stdoutBytes += line.length;
      const body = JSON.stringify(state, null, 2) + "\n";
      if (kind === "fs") {
        await appendFile(`${dir}/stdout.log`, line);
        await writeFile(`${dir}/state.json`, body);
      } else {
        await memory.append!("runs/bench/run-1/stdout.log", encoder.encode(line));
        await memory.write("runs/bench/run-1/state.json", body);
      }
      writes += 2;
    }
    const ms = performance.now() - start;
    const peakRss = sampler.stop();
    const hwm = vmHwm();
    const stored = kind === "fs"
      ? new Uint8Array(await readFile(`${dir}/stdout.log`))
      : await memory.read("runs/bench/run-1/stdout.log");
    const exact = stored !== undefined && sameBytes(stored, expectedBytes());
    return {
      scenario: `writethrough-${kind}`,
      ms,
      peakRss,
      hwm,
      extra: { writes, exact, bytes: stored?.byteLength ?? 0 },
    };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** pino's fast destination (sonic-boom, async, 4 KiB minimum write), raw lines or pino JSON records. */
async function pinoScenario(mode: "raw" | "logger"): Promise<ChildReport> {
  const root = await Deno.makeTempDir({ prefix: "baa-bench-pino-" });
  try {
    const dest = `${root}/stdout.log`;
    const sampler = startRssSampler();
    const start = performance.now();
    const destination = pino.destination({ dest, sync: false, minLength: 4096 });
    // pino without base fields or time: the smallest record it writes for the same message.
    const logger = mode === "logger"
      ? pino({ base: null, timestamp: false }, destination)
      : undefined;
    // Count sonic-boom's fs.write calls (each goes through its per-instance _actualWrite).
    let writes = 0;
    const internal = destination as unknown as { _actualWrite: () => void };
    const actualWrite = internal._actualWrite;
    internal._actualWrite = function (this: unknown) {
      writes++;
      return actualWrite.call(this);
    };
    for (let i = 0; i < CHUNKS; i++) {
      if (logger) logger.info(lineOf(i));
      else if (!destination.write(lineOf(i))) {
        await new Promise((resolve) => destination.once("drain", resolve));
      }
    }
    await new Promise<void>((resolve, reject) => {
      destination.once("close", () => resolve());
      destination.once("error", reject);
      destination.end();
    });
    const ms = performance.now() - start;
    const peakRss = sampler.stop();
    const hwm = vmHwm();
    const stored = new Uint8Array(await readFile(dest));
    const exact = mode === "raw" ? sameBytes(stored, expectedBytes()) : stored.byteLength > 0;
    return {
      scenario: mode === "raw" ? "pino-dest-fs" : "pino-logger-fs",
      ms,
      peakRss,
      hwm,
      extra: { writes, exact, bytes: stored.byteLength },
    };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** Nothing but the child's module graph loaded and a 50 ms sample: the RSS floor of a child. */
async function idleScenario(): Promise<ChildReport> {
  const sampler = startRssSampler();
  await new Promise((resolve) => setTimeout(resolve, 50));
  return { scenario: "idle-child", ms: 0, peakRss: sampler.stop(), hwm: vmHwm(), extra: {} };
}

const SCENARIOS: Record<string, () => Promise<ChildReport>> = {
  "runner-memory": () => runnerScenario("memory"),
  "runner-fs": () => runnerScenario("fs"),
  "writethrough-memory": () => writeThroughScenario("memory"),
  "writethrough-fs": () => writeThroughScenario("fs"),
  "pino-dest-fs": () => pinoScenario("raw"),
  "pino-logger-fs": () => pinoScenario("logger"),
};
const FLOOR = "idle-child";

async function parent(): Promise<void> {
  const names = Object.keys(SCENARIOS);
  const results = new Map<string, ChildReport[]>([...names, FLOOR].map((n) => [n, []]));
  console.log(
    `stream_compare: ${CHUNKS} chunks of 80 bytes through context.stdout, ${REPS} interleaved reps`,
  );
  console.log(
    `deno ${Deno.version.deno}, v8 ${Deno.version.v8}, ${navigator.hardwareConcurrency} cores\n`,
  );
  const started = performance.now();
  console.log(`load average at start: ${loadAverage()}`);
  for (let rep = 1; rep <= REPS; rep++) {
    results.get(FLOOR)!.push(await runChild(SCRIPT, FLOOR));
    for (const name of names) {
      const extraArgs = ["--chunks", String(CHUNKS)];
      const r = await runChild(SCRIPT, name, extraArgs);
      results.get(name)!.push(r);
      console.log(
        `  rep ${rep} ${name.padEnd(20)} ${r.ms.toFixed(0).padStart(7)} ms  rss ${
          mb(r.peakRss)
        } MB`,
      );
    }
  }
  console.log(
    `\n(total ${
      ((performance.now() - started) / 1000).toFixed(1)
    } s, load average at end: ${loadAverage()})\n`,
  );

  let failure = false;
  const med = (name: string) => median(results.get(name)!.map((r) => r.ms));
  const rows = names.map((name) => {
    const runs = results.get(name)!;
    const ms = med(name);
    const exact = runs.every((r) => r.extra.exact === true);
    if (name.startsWith("runner-") && !exact) failure = true;
    return [
      name,
      ms.toFixed(1),
      Math.round(CHUNKS / (ms / 1000)).toLocaleString("en-US"),
      String(runs[0].extra.writes),
      mb(median(runs.map((r) => r.peakRss))),
      mb(median(runs.map((r) => r.hwm))),
      exact ? "yes" : "NO",
    ];
  });
  printTable([
    "scenario",
    "median ms",
    "chunks/s",
    "writes",
    "peak RSS MB",
    "VmHWM MB",
    "bytes exact",
  ], rows);
  console.log(
    `(RSS floor of an idle child with the same imports: ${
      mb(median(results.get(FLOOR)!.map((r) => r.peakRss)))
    } MB)`,
  );

  const ratio = (a: string, b: string) => med(b) / med(a);
  const wt = ratio("runner-fs", "writethrough-fs");
  const wtMem = ratio("runner-memory", "writethrough-memory");
  const pinoRaw = ratio("runner-fs", "pino-dest-fs");
  const pinoLogger = ratio("runner-fs", "pino-logger-fs");
  console.log("\nratios (throughput, i.e. inverse of median time):");
  console.log(
    `  runner-fs / writethrough-fs      ${wt.toFixed(1)}x   (target >= 20x: ${
      wt >= 20 ? "met" : "MISSED"
    })`,
  );
  console.log(`  runner-memory / writethrough-mem ${wtMem.toFixed(1)}x`);
  console.log(
    `  runner-fs / pino-dest-fs         ${pinoRaw.toFixed(2)}x  (target >= 0.5x: ${
      pinoRaw >= 0.5 ? "met" : "MISSED"
    })`,
  );
  console.log(
    `  runner-fs / pino-logger-fs       ${pinoLogger.toFixed(2)}x  (target >= 0.5x: ${
      pinoLogger >= 0.5 ? "met" : "MISSED"
    })`,
  );
  const paired = (a: string, b: string) => pairedRatio(results.get(a)!, results.get(b)!).toFixed(2);
  console.log(
    `  medians of the per-repetition ratios: vs writethrough-fs ${
      paired("runner-fs", "writethrough-fs")
    }x, ` +
      `vs pino-dest-fs ${paired("runner-fs", "pino-dest-fs")}x, vs pino-logger-fs ${
        paired("runner-fs", "pino-logger-fs")
      }x`,
  );
  console.log(
    `  metrics.storageWrites (runner-fs): ${results.get("runner-fs")![0].extra.metricsWrites}`,
  );
  if (failure) {
    console.error("\nFAIL: stdout.log of a runner scenario is not byte-exact");
    Deno.exit(1);
  }
}

const child = childScenario();
if (child !== undefined) {
  const scenario = SCENARIOS[child];
  if (child === FLOOR) {
    report(await idleScenario());
    Deno.exit(0);
  }
  if (!scenario) throw new Error(`Unknown scenario '${child}'`);
  report(await scenario());
  Deno.exit(0);
} else {
  await parent();
}
