// One scenario of bench/process_compare.ts, in a fresh process of either runtime (Deno, or Node
// through tsx): node:* APIs only, so both run the same code. Prints one `@@BENCH {...}` line.
//
//   <runtime> bench/_process_child.ts <scenario> <source file> <bytes>
// scenarios: runner-fs (createProcessExecutor + runStep on fs), redirect (the generator's
// output redirected to a file by the shell), pipe-discard (the generator's stdout read in this
// runtime and dropped; pipe-discard-deno: the same through Deno.Command; pipe-discard-detached:
// that with the generator in its own session, as the executor starts commands), runner-true (ms per run of `true` through runStep on memory storage).

import { spawn } from "node:child_process";
import { mkdtemp, open, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import process from "node:process";
import { createFsStorage, createMemoryStorage, createProcessExecutor, runStep } from "../mod.ts";
import { benchRequest } from "./_harness.ts";

const [scenario, source, sizeArg] = process.argv.slice(2);
const SIZE = Number(sizeArg);
/** The cheap generator: dd copying a cached file to its stdout in 64 KiB blocks. */
const COMMAND = ["dd", `if=${source}`, "bs=64K", "status=none"];

interface DenoApi {
  Command: new (file: string, options: {
    args: string[];
    stdin: "null";
    stdout: "piped";
    stderr: "null";
    detached: boolean;
  }) => {
    spawn(): { stdout: ReadableStream<Uint8Array>; status: Promise<{ success: boolean }> };
  };
}

const request = benchRequest;

/** Peak RSS sampled every 10 ms. */
function sampler(): () => number {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  return () => {
    clearInterval(timer);
    return Math.max(peak, process.memoryUsage().rss);
  };
}

/** Whether a file has `SIZE` bytes, all 'a' (the source's content). */
async function checkFile(path: string): Promise<boolean> {
  const handle = await open(path, "r");
  const buffer = new Uint8Array(1024 * 1024);
  let size = 0;
  try {
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.byteLength, null);
      if (bytesRead === 0) break;
      for (let i = 0; i < bytesRead; i++) if (buffer[i] !== 0x61) return false;
      size += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return size === SIZE && (await stat(path)).size === SIZE;
}

function closed(child: ReturnType<typeof spawn>): Promise<number | null> {
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve(code));
  });
}

async function main(): Promise<Record<string, unknown>> {
  const root = await mkdtemp(`${tmpdir()}/baa-bench-proc-`);
  try {
    const peak = sampler();
    if (scenario === "runner-true") {
      const executor = createProcessExecutor({ command: ["true"] });
      const times: number[] = [];
      for (let i = 0; i < 13; i++) {
        const start = performance.now();
        const result = await runStep(request(root, `run-${i}`), executor, {
          storage: createMemoryStorage(),
        });
        if (result.outcome !== "completed") throw new Error(result.summary);
        if (i >= 3) times.push(performance.now() - start);
      }
      times.sort((a, b) => a - b);
      return { ms: times[times.length >> 1], peakRss: peak(), ok: true };
    }
    const start = performance.now();
    let ok = true;
    let writes = 0;
    if (scenario === "runner-fs") {
      const result = await runStep(
        { ...request(root), command: COMMAND },
        createProcessExecutor(),
        {
          storage: createFsStorage({ root }),
        },
      );
      if (result.outcome !== "completed") throw new Error(result.summary);
      writes = result.metrics.storageWrites;
      const ms = performance.now() - start;
      const rss = peak();
      ok = await checkFile(result.logPaths.stdoutLogPath);
      return { ms, peakRss: rss, ok, writes };
    }
    if (scenario === "redirect") {
      const file = `${root}/out.txt`;
      const child = spawn("/bin/sh", ["-c", `${COMMAND.join(" ")} > '${file}'`], {
        stdio: "ignore",
      });
      if ((await closed(child)) !== 0) throw new Error("generator failed");
      const ms = performance.now() - start;
      const rss = peak();
      return { ms, peakRss: rss, ok: await checkFile(file) };
    }
    if (scenario === "pipe-discard") {
      const child = spawn(COMMAND[0], COMMAND.slice(1), { stdio: ["ignore", "pipe", "ignore"] });
      const done = closed(child);
      let bytes = 0;
      for await (const chunk of child.stdout!) bytes += (chunk as Uint8Array).byteLength;
      if ((await done) !== 0) throw new Error("generator failed");
      return { ms: performance.now() - start, peakRss: peak(), ok: bytes === SIZE };
    }
    if (
      scenario === "pipe-discard-detached" && (globalThis as { Deno?: unknown }).Deno === undefined
    ) {
      // Node: the generator in a session of its own, as the executor starts commands.
      const child = spawn(COMMAND[0], COMMAND.slice(1), {
        stdio: ["ignore", "pipe", "ignore"],
        detached: true,
      });
      const done = closed(child);
      let bytes = 0;
      for await (const chunk of child.stdout!) bytes += (chunk as Uint8Array).byteLength;
      if ((await done) !== 0) throw new Error("generator failed");
      return { ms: performance.now() - start, peakRss: peak(), ok: bytes === SIZE };
    }
    if (scenario === "pipe-discard-deno" || scenario === "pipe-discard-detached") {
      // The same floor read through Deno.Command, which the process executor uses on Deno;
      // "detached" starts the generator in a session of its own, as the executor must (its
      // process group is what a stop signals).
      const deno = (globalThis as { Deno?: DenoApi }).Deno;
      if (deno === undefined) throw new Error(`${scenario} runs on Deno only`);
      const child = new deno.Command(COMMAND[0], {
        args: COMMAND.slice(1),
        stdin: "null",
        stdout: "piped",
        stderr: "null",
        detached: scenario === "pipe-discard-detached",
      }).spawn();
      let bytes = 0;
      for await (const chunk of child.stdout) bytes += chunk.byteLength;
      if (!(await child.status).success) throw new Error("generator failed");
      return { ms: performance.now() - start, peakRss: peak(), ok: bytes === SIZE };
    }
    throw new Error(`Unknown scenario '${scenario}'`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

console.log("@@BENCH " + JSON.stringify(await main()));
process.exit(0);
