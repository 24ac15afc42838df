// What the output index costs and what reading in sequence costs. Write side, with the library at
// `--lib` (this checkout by default; pass another checkout's mod.ts to compare side by side):
//   stdout        100,000 chunks of 80 bytes on stdout only (fs storage)
//   alternating   100,000 chunks of 80 bytes, stdout and stderr in turn: the index's worst case
// Read side (this checkout), over the alternating run:
//   floor         both logs read whole (readRunLogBytes), what any reader must read
//   index-floor   both logs and the index read whole, every index line JSON.parse'd and its
//                 bytes cut out: the least an index-based reader does, with no checks, cursors
//                 or bounded memory
//   in-sequence   readRunOutput with events: every chunk in print order
// Each scenario run is its own child process; scenarios and libraries are interleaved.
// Run: npx -y deno@2.9.6 run -A bench/output_index.ts [--reps 5] [--chunks 100000]
//        [--before ../other-checkout/mod.ts]

import { rm, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  benchRequest,
  type ChildReport,
  childScenario,
  loadAverage,
  median,
  numberArg,
  printTable,
  report,
  runChild,
  startRssSampler,
  stringArg,
  vmHwm,
} from "./_harness.ts";

const SCRIPT = new URL(import.meta.url).pathname;
const CHUNKS = numberArg("--chunks", 100_000);
const REPS = numberArg("--reps", 5);
const HERE = new URL("../mod.ts", import.meta.url).pathname;
const BEFORE = stringArg("--before", "");

/** Chunk i: `line <i> ` padded to 79 characters, then a newline: 80 bytes. */
const lineOf = (i: number) => `line ${i} `.padEnd(79, "x") + "\n";

async function sizeOf(path: string): Promise<number> {
  return await stat(path).then((s) => s.size, () => 0);
}

async function writeScenario(kind: string, lib: string): Promise<ChildReport> {
  const mod = await import(lib) as typeof import("../mod.ts");
  const root = await Deno.makeTempDir({ prefix: "baa-bench-index-" });
  try {
    const storage = mod.createFsStorage({ root });
    // The chunks exist before the clock starts: generating them is not the run's cost.
    const lines = Array.from({ length: CHUNKS }, (_, i) => lineOf(i));
    const sampler = startRssSampler();
    const start = performance.now();
    const result = await mod.runStep(benchRequest(root), {
      async execute(_run, context) {
        for (let i = 0; i < lines.length; i++) {
          const p = kind === "alternating" && i % 2 === 1
            ? context.stderr(lines[i])
            : context.stdout(lines[i]);
          if (p) await p;
        }
        return { ok: true, outcome: "completed", summary: "done" };
      },
    }, { storage });
    const ms = performance.now() - start;
    const peakRss = sampler.stop();
    if (result.outcome !== "completed") throw new Error(result.summary);
    const runDir = join(root, "runs", "bench", "run-1");
    const output = await sizeOf(join(runDir, "stdout.log")) +
      await sizeOf(join(runDir, "stderr.log"));
    const index = await sizeOf(join(runDir, "output-index.jsonl"));
    return {
      scenario: kind,
      ms,
      peakRss,
      hwm: vmHwm(),
      extra: { output, index, writes: result.metrics.storageWrites },
    };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

async function readScenario(kind: string): Promise<ChildReport> {
  const mod = await import(HERE) as typeof import("../mod.ts");
  const root = await Deno.makeTempDir({ prefix: "baa-bench-read-" });
  try {
    const storage = mod.createFsStorage({ root });
    await mod.runStep(benchRequest(root), {
      async execute(_run, context) {
        for (let i = 0; i < CHUNKS; i++) {
          const p = i % 2 === 1 ? context.stderr(lineOf(i)) : context.stdout(lineOf(i));
          if (p) await p;
        }
        return { ok: true, outcome: "completed", summary: "done" };
      },
    }, { storage });
    const ref = { taskId: "bench", runId: "run-1" };
    const sampler = startRssSampler();
    const start = performance.now();
    let bytes = 0;
    let items = 0;
    if (kind === "floor") {
      for (const channel of ["stdout", "stderr"] as const) {
        bytes += (await mod.readRunLogBytes(storage, ref, channel)).byteLength;
      }
    } else if (kind === "index-floor") {
      const logs = {
        stdout: await mod.readRunLogBytes(storage, ref, "stdout"),
        stderr: await mod.readRunLogBytes(storage, ref, "stderr"),
      };
      const index = await Deno.readTextFile(
        join(root, "runs", "bench", "run-1", "output-index.jsonl"),
      );
      for (const line of index.split("\n")) {
        if (line === "") continue;
        const entry = JSON.parse(line);
        const log = logs[entry.stream as "stdout" | "stderr"];
        bytes += log.subarray(entry.offset, entry.offset + entry.length).byteLength;
        items++;
      }
    } else {
      for await (const item of mod.readRunOutput(storage, ref, { events: true })) {
        items++;
        if (item.channel !== "worker") bytes += item.bytes.byteLength;
      }
    }
    const ms = performance.now() - start;
    return { scenario: kind, ms, peakRss: sampler.stop(), hwm: vmHwm(), extra: { bytes, items } };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

const child = childScenario();
if (child !== undefined) {
  const [kind, lib] = child.split("@");
  report(
    kind === "floor" || kind === "index-floor" || kind === "in-sequence"
      ? await readScenario(kind)
      : await writeScenario(kind, lib || HERE),
  );
} else {
  console.log(`output index: ${CHUNKS} chunks, ${REPS} reps, load ${loadAverage()}`);
  const libs: [string, string][] = [["after", HERE]];
  if (BEFORE !== "") libs.unshift(["before", new URL(BEFORE, `file://${Deno.cwd()}/`).pathname]);
  const writes = ["stdout", "alternating"].flatMap((kind) =>
    libs.map(([label, lib]) => ({ name: `${kind} (${label})`, id: `${kind}@${lib}` }))
  );
  const reads = ["floor", "index-floor", "in-sequence"].map((kind) => ({ name: kind, id: kind }));
  const runs = new Map<string, ChildReport[]>();
  for (let rep = 0; rep < REPS; rep++) {
    for (const scenario of [...writes, ...reads]) {
      const result = await runChild(SCRIPT, scenario.id, ["--chunks", String(CHUNKS)]);
      runs.set(scenario.name, [...(runs.get(scenario.name) ?? []), result]);
    }
  }
  const row = (name: string) => {
    const list = runs.get(name)!;
    const extra = list[0].extra;
    return [
      name,
      median(list.map((r) => r.ms)).toFixed(0),
      (median(list.map((r) => r.peakRss)) / 1e6).toFixed(0),
      String(extra.output ?? extra.bytes ?? ""),
      String(extra.index ?? ""),
      String(extra.writes ?? extra.items ?? ""),
    ];
  };
  printTable(
    ["scenario", "median ms", "peak RSS MB", "output B", "index B", "writes/items"],
    [...writes, ...reads].map((s) => row(s.name)),
  );
  for (const kind of ["stdout", "alternating"]) {
    if (BEFORE === "") break;
    const before = runs.get(`${kind} (before)`)!;
    const after = runs.get(`${kind} (after)`)!;
    const ratio = median(after.map((r, i) => r.ms / before[i].ms));
    console.log(`${kind}: after/before paired median ${ratio.toFixed(2)}x`);
  }
  const seq = runs.get("in-sequence")!;
  for (const name of ["floor", "index-floor"]) {
    const floor = runs.get(name)!;
    const ratio = median(seq.map((r, i) => r.ms / floor[i].ms));
    console.log(`in-sequence/${name} paired median ${ratio.toFixed(2)}x`);
  }
}
