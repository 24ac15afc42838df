// Process executor costs, side by side, on Deno and on Node (through tsx), each scenario run in a
// fresh process, scenarios and runtimes interleaved, medians reported:
// (i) 200 MiB printed by a cheap generator (dd copying a cached file to its stdout in 64 KiB
//     blocks) recorded to fs through createProcessExecutor + runStep, against the same command
//     redirected to a file by the shell, and against reading the pipe in the runtime and dropping
//     the bytes: the floor of any design that sees the bytes;
// (ii) ms per run of `true` through runStep + createProcessExecutor on memory storage.
// Run: npx -y deno@2.9.6 run -A bench/process_compare.ts [--reps 5] [--bytes 209715200]
//        [--runtimes deno,node]

import { loadAverage, mb, median, numberArg, printTable, stringArg } from "./_harness.ts";

const CHILD = new URL("./_process_child.ts", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;
const REPS = numberArg("--reps", 5);
const SIZE = numberArg("--bytes", 209_715_200);
const RUNTIMES = stringArg("--runtimes", "deno,node").split(",");
const SCENARIOS = [
  "runner-fs",
  "redirect",
  "pipe-discard",
  "pipe-discard-deno",
  "pipe-discard-detached",
  "runner-true",
];
const scenariosOf = (runtime: string) =>
  SCENARIOS.filter((s) => runtime === "deno" || s !== "pipe-discard-deno");
/** The floor: the faster way this runtime has to read the pipe and drop the bytes. */
const floorOf = (runtime: string) =>
  runtime === "deno" &&
    med("deno pipe-discard-deno") < med("deno pipe-discard")
    ? "deno pipe-discard-deno"
    : `${runtime} pipe-discard`;

interface Report {
  ms: number;
  peakRss: number;
  ok: boolean;
  writes?: number;
}

function commandOf(runtime: string, args: string[]): [string, string[]] {
  return runtime === "node"
    ? ["node", ["--import", "tsx", CHILD, ...args]]
    : [Deno.execPath(), ["run", "-A", CHILD, ...args]];
}

async function runChild(runtime: string, scenario: string, source: string): Promise<Report> {
  const [bin, args] = commandOf(runtime, [scenario, source, String(SIZE)]);
  const output = await new Deno.Command(bin, {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  const line = text.split("\n").find((l) => l.startsWith("@@BENCH "));
  if (!output.success || line === undefined) {
    console.error(text);
    throw new Error(`${runtime} ${scenario} failed (exit code ${output.code})`);
  }
  return JSON.parse(line.slice(8)) as Report;
}

async function makeSource(): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "baa-bench-source-" });
  const file = await Deno.open(path, { write: true });
  const block = new Uint8Array(1024 * 1024).fill(0x61);
  for (let written = 0; written < SIZE; written += block.byteLength) {
    const part = block.subarray(0, Math.min(block.byteLength, SIZE - written));
    for (let off = 0; off < part.byteLength;) off += await file.write(part.subarray(off));
  }
  file.close();
  // Read it once so every scenario finds it in the page cache.
  await Deno.readFile(path);
  return path;
}

const results = new Map<string, Report[]>();
const med = (name: string) => median(results.get(name)!.map((r) => r.ms));
const source = await makeSource();
try {
  console.log(
    `process_compare: deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores, ` +
      `${REPS} interleaved reps, runtimes ${RUNTIMES.join(", ")}`,
  );
  console.log(`generator: dd if=<cached ${SIZE}-byte file> bs=64K status=none`);
  console.log(`load average at start: ${loadAverage()}`);
  const started = performance.now();
  for (let rep = 1; rep <= REPS; rep++) {
    for (const runtime of RUNTIMES) {
      for (const scenario of scenariosOf(runtime)) {
        const r = await runChild(runtime, scenario, source);
        const name = `${runtime} ${scenario}`;
        results.set(name, [...(results.get(name) ?? []), r]);
        console.log(
          `  rep ${rep} ${name.padEnd(20)} ${r.ms.toFixed(1).padStart(8)} ms  rss ${
            mb(r.peakRss)
          } MB${r.ok ? "" : "  OUTPUT WRONG"}`,
        );
      }
    }
  }
  console.log(
    `\n(total ${
      ((performance.now() - started) / 1000).toFixed(1)
    } s, load average at end: ${loadAverage()})\n`,
  );
  /** Median over repetitions of a/b, pairing runs of the same repetition. */
  const paired = (a: string, b: string) =>
    median(results.get(a)!.map((r, i) => results.get(b)![i].ms / r.ms));
  let ok = true;
  const rows: string[][] = [];
  for (const runtime of RUNTIMES) {
    for (const scenario of scenariosOf(runtime).filter((s) => s !== "runner-true")) {
      const name = `${runtime} ${scenario}`;
      const runs = results.get(name)!;
      if (!runs.every((r) => r.ok)) ok = false;
      rows.push([
        name,
        med(name).toFixed(0),
        (SIZE / 1e6 / (med(name) / 1000)).toFixed(0),
        scenario === "runner-fs"
          ? paired(name, floorOf(runtime)).toFixed(2)
          : scenario === "pipe-discard-detached"
          ? paired(name, floorOf(runtime)).toFixed(2)
          : "-",
        paired(name, `${runtime} redirect`).toFixed(2),
        String(runs[0].writes ?? "-"),
        mb(median(runs.map((r) => r.peakRss))),
        runs.every((r) => r.ok) ? "yes" : "NO",
      ]);
    }
  }
  console.log(
    `(i) ${SIZE} bytes of output (ratios: throughput, per-repetition medians; floor: ` +
      `${RUNTIMES.map(floorOf).join(", ")})`,
  );
  printTable(
    ["scenario", "median ms", "MB/s", "x floor", "x redirect", "writes", "RSS MB", "ok"],
    rows,
  );
  console.log(`\n(ii) one run of \`true\` through runStep (median of 10 runs per child)`);
  printTable(
    ["runtime", "median ms"],
    RUNTIMES.map((runtime) => [runtime, med(`${runtime} runner-true`).toFixed(2)]),
  );
  if (!ok) {
    console.error("\nFAIL: recorded output differs from what the command printed");
    Deno.exitCode = 1;
  }
} finally {
  await Deno.remove(source);
}
