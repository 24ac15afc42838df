// How fast a worker's process group dies after its orchestrator is killed with SIGKILL: the
// orchestrator fixture runs `sleep 300` (plus a grandchild) through the process executor; we
// SIGKILL it and time until no live process of the worker's group is left.
//
//   deno run -A bench/orphan_kill.ts [--runs 10]

import { readRun } from "../mod.ts";
import { createFsStorage } from "../storage/fs.ts";

const runsArg = Deno.args.indexOf("--runs");
const runs = runsArg >= 0 ? Number(Deno.args[runsArg + 1]) : 10;
const fixture = new URL("../tests/fixtures/orchestrator.ts", import.meta.url).pathname;

async function groupMembers(pgid: number): Promise<number> {
  let live = 0;
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let stat = "";
    try {
      stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
    } catch {
      continue;
    }
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ", 3);
    if (Number(fields[2]) === pgid && fields[0] !== "Z" && fields[0] !== "X") live++;
  }
  return live;
}

const times: number[] = [];
for (let i = 0; i < runs; i++) {
  const repoRoot = await Deno.makeTempDir({ prefix: "orphan-bench-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", fixture, "sleep", repoRoot],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const storage = createFsStorage({ root: repoRoot });
  let pgid: number | undefined;
  for (let t = 0; t < 300 && pgid === undefined; t++) {
    await new Promise((r) => setTimeout(r, 20));
    const run = await readRun(storage, { taskId: "crash", runId: "run-1" }).catch(() => undefined);
    const worker = run?.state?.owner?.worker;
    if (worker?.pgid !== undefined && (await groupMembers(worker.pgid)) >= 3) pgid = worker.pgid;
  }
  if (pgid === undefined) throw new Error("the worker never started");
  const killedAt = performance.now();
  child.kill("SIGKILL");
  await child.status;
  while ((await groupMembers(pgid)) > 0) await new Promise((r) => setTimeout(r, 5));
  times.push(performance.now() - killedAt);
  await Deno.remove(repoRoot, { recursive: true });
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
console.log(
  `SIGKILL of the orchestrator -> worker group gone, ${runs} runs: median ${
    median.toFixed(0)
  } ms, ` +
    `min ${times[0].toFixed(0)} ms, max ${times.at(-1)!.toFixed(0)} ms`,
);
console.log(
  "(the watchdog sends SIGTERM at once, SIGKILL once the command is gone or after min(killGraceMs, 2 s))",
);
