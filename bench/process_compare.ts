// Process executor costs, side by side, each scenario run in its own child process:
// (i) throughput of a command printing 200 MB, recorded to fs through createProcessExecutor +
//     runStep, against the same command redirected to a file by the shell (and, as a diagnostic,
//     against reading its stdout pipe in this runtime and discarding it);
// (ii) per-run overhead of `true` through runStep + createProcessExecutor + memory storage,
//     against spawning `true` directly with node:child_process.
// Run: npx -y deno@2.9.6 run -A bench/process_compare.ts [--reps 5] [--bytes 209715200] [--iterations 10]

import { spawn } from "node:child_process";
import { open, rm, stat } from "node:fs/promises";
import { createFsStorage, createMemoryStorage, createProcessExecutor, runStep } from "../mod.ts";
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
const REPS = numberArg("--reps", 5);
const SIZE = numberArg("--bytes", 209_715_200);
const ITERATIONS = numberArg("--iterations", 10);
const WARMUP = 3;
const COMMAND = `head -c ${SIZE} /dev/zero | tr '\\0' 'a'`;
const A = 0x61;

/** Size of a file and whether every byte is 'a', read incrementally. */
async function checkFile(path: string): Promise<{ size: number; allA: boolean }> {
  const handle = await open(path, "r");
  const buffer = new Uint8Array(1024 * 1024);
  let size = 0;
  let allA = true;
  try {
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.byteLength, null);
      if (bytesRead === 0) break;
      for (let i = 0; i < bytesRead && allA; i++) if (buffer[i] !== A) allA = false;
      size += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return { size, allA };
}

function waitClose(child: ReturnType<typeof spawn>): Promise<number | null> {
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve(code));
  });
}

// ---- (i) throughput -------------------------------------------------------------------------

async function throughput(kind: "runner" | "redirect" | "pipe"): Promise<ChildReport> {
  const root = await Deno.makeTempDir({ prefix: "baa-bench-proc-" });
  try {
    const file = `${root}/out.txt`;
    let path = file;
    let writes = 0;
    let pipeBytes = 0;
    const sampler = startRssSampler();
    const start = performance.now();
    if (kind === "runner") {
      const result = await runStep(
        { ...benchRequest(root), command: COMMAND },
        createProcessExecutor(),
        { storage: createFsStorage({ root }) },
      );
      if (result.outcome !== "completed") {
        throw new Error(`Run ended ${result.outcome}: ${result.summary}`);
      }
      path = result.logPaths.stdoutLogPath;
      writes = result.metrics.storageWrites;
    } else if (kind === "redirect") {
      const child = spawn("/bin/sh", ["-c", `${COMMAND} > '${file}'`], { stdio: "ignore" });
      const code = await waitClose(child);
      if (code !== 0) throw new Error(`Command exited with ${code}`);
    } else {
      const child = spawn("/bin/sh", ["-c", COMMAND], { stdio: ["ignore", "pipe", "pipe"] });
      const closed = waitClose(child);
      for await (const chunk of child.stdout!) pipeBytes += (chunk as Uint8Array).byteLength;
      if ((await closed) !== 0) throw new Error("Command failed");
    }
    const ms = performance.now() - start;
    const peakRss = sampler.stop();
    const hwm = vmHwm();
    const checked = kind === "pipe" ? { size: pipeBytes, allA: true } : await checkFile(path);
    if (kind !== "pipe") {
      const statSize = (await stat(path)).size;
      if (statSize !== checked.size) checked.allA = false;
    }
    return {
      scenario: kind,
      ms,
      peakRss,
      hwm,
      extra: { size: checked.size, ok: checked.size === SIZE && checked.allA, writes },
    };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

// ---- (ii) overhead of a trivial command ------------------------------------------------------

async function overhead(
  kind: "runner-true" | "spawn-true" | "spawn-true-ignore",
): Promise<ChildReport> {
  const root = await Deno.makeTempDir({ prefix: "baa-bench-true-" });
  try {
    const executor = createProcessExecutor({ command: ["true"] });
    const times: number[] = [];
    const sampler = startRssSampler();
    for (let i = 0; i < WARMUP + ITERATIONS; i++) {
      const start = performance.now();
      if (kind === "runner-true") {
        const result = await runStep(benchRequest(root, `run-${i}`), executor, {
          storage: createMemoryStorage(),
        });
        if (result.outcome !== "completed") {
          throw new Error(`Run ended ${result.outcome}: ${result.summary}`);
        }
      } else {
        // The executor's stdio (stdout/stderr piped) or none at all.
        const child = kind === "spawn-true"
          ? spawn("true", [], { stdio: ["ignore", "pipe", "pipe"], detached: true })
          : spawn("true", [], { stdio: "ignore" });
        if ((await waitClose(child)) !== 0) throw new Error("true failed");
      }
      if (i >= WARMUP) times.push(performance.now() - start);
    }
    const peakRss = sampler.stop();
    return {
      scenario: kind,
      ms: median(times),
      peakRss,
      hwm: vmHwm(),
      extra: { times: JSON.stringify(times) },
    };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

const SCENARIOS: Record<string, () => Promise<ChildReport>> = {
  "runner-fs": () => throughput("runner"),
  "sh-redirect": () => throughput("redirect"),
  "pipe-discard": () => throughput("pipe"),
  "runner-true": () => overhead("runner-true"),
  "spawn-true": () => overhead("spawn-true"),
  "spawn-true-ignore": () => overhead("spawn-true-ignore"),
};

async function parent(): Promise<void> {
  console.log(
    `process_compare: deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores, ${REPS} interleaved reps`,
  );
  console.log(`(i) command: ${COMMAND}`);
  console.log(
    `(ii) ${REPS} children x ${ITERATIONS} timed runs (after ${WARMUP} warm-up runs) per scenario\n`,
  );
  const started = performance.now();
  console.log(`load average at start: ${loadAverage()}`);
  const through = ["runner-fs", "sh-redirect", "pipe-discard"];
  const over = ["runner-true", "spawn-true", "spawn-true-ignore"];
  const results = new Map<string, ChildReport[]>([...through, ...over].map((n) => [n, []]));
  const args = ["--bytes", String(SIZE), "--iterations", String(ITERATIONS)];
  for (let rep = 1; rep <= REPS; rep++) {
    for (const name of [...through, ...over]) {
      const r = await runChild(SCRIPT, name, args);
      results.get(name)!.push(r);
      console.log(
        `  rep ${rep} ${name.padEnd(18)} ${r.ms.toFixed(2).padStart(9)} ms  rss ${
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

  const med = (name: string) => median(results.get(name)!.map((r) => r.ms));
  let ok = true;
  console.log(`(i) ${SIZE} bytes of output`);
  printTable(
    ["scenario", "median ms", "MB/s", "storage writes", "peak RSS MB", "output ok"],
    through.map((name) => {
      const runs = results.get(name)!;
      const good = runs.every((r) => r.extra.ok === true);
      if (!good) ok = false;
      return [
        name,
        med(name).toFixed(0),
        (SIZE / 1e6 / (med(name) / 1000)).toFixed(0),
        name === "runner-fs" ? String(runs[0].extra.writes) : "-",
        mb(median(runs.map((r) => r.peakRss))),
        good ? "yes" : "NO",
      ];
    }),
  );
  const ratio = med("sh-redirect") / med("runner-fs");
  console.log(
    `  runner-fs / sh-redirect throughput: ${ratio.toFixed(2)}x (target >= 0.8x: ${
      ratio >= 0.8 ? "met" : "MISSED"
    })`,
  );
  const paired = pairedRatio(results.get("runner-fs")!, results.get("sh-redirect")!);
  console.log(`  (median of the per-repetition ratios: ${paired.toFixed(2)}x)`);
  console.log(
    `  runner-fs / pipe-discard throughput: ${
      (med("pipe-discard") / med("runner-fs")).toFixed(2)
    }x`,
  );

  console.log(`\n(ii) one run of \`true\` (${REPS * ITERATIONS} timed runs per scenario)`);
  const all = (name: string) =>
    results.get(name)!.flatMap((r) => JSON.parse(String(r.extra.times)) as number[]);
  printTable(
    ["scenario", "median ms", "min ms", "max ms", "peak RSS MB"],
    over.map((name) => {
      const times = all(name);
      return [
        name,
        median(times).toFixed(2),
        Math.min(...times).toFixed(2),
        Math.max(...times).toFixed(2),
        mb(median(results.get(name)!.map((r) => r.peakRss))),
      ];
    }),
  );
  const runner = median(all("runner-true"));
  const direct = median(all("spawn-true"));
  console.log(
    `  runner-true / spawn-true time: ${(runner / direct).toFixed(2)}x, overhead ${
      (runner - direct).toFixed(2)
    } ms per run`,
  );
  console.log(
    `  runner-true / spawn-true-ignore time: ${
      (runner / median(all("spawn-true-ignore"))).toFixed(2)
    }x`,
  );
  if (!ok) {
    console.error("\nFAIL: recorded output differs from what the command printed");
    Deno.exit(1);
  }
}

const child = childScenario();
if (child !== undefined) {
  const scenario = SCENARIOS[child];
  if (!scenario) throw new Error(`Unknown scenario '${child}'`);
  report(await scenario());
  Deno.exit(0);
} else {
  await parent();
}
