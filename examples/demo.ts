// The README's demo: one real run on the filesystem default, written under ./runs.
// Run: npx -y deno@2.9.6 task demo

import { readRun, runStep } from "../mod.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const cwd: string = g.Deno?.cwd() ?? g.process.cwd();
const runId = `demo-${new Date().toISOString().replace(/[:.]/g, "-")}`;

const result = await runStep({
  taskId: "demo-task",
  stepId: "count-files",
  stepName: "Count the files of a pretend repository",
  stepKind: "script",
  runId,
  attempt: 1,
  workerKind: "function",
  timeoutSec: 30,
  promptSummary: "Stream some progress, save a report, finish.",
  runtime: { repoRoot: cwd, worktreePath: cwd },
}, {
  async execute(_run, context) {
    const files = [
      "mod.ts",
      "core/runner.ts",
      "storage/fs.ts",
      "storage/s3.ts",
      "executors/process.ts",
    ];
    for (const [index, file] of files.entries()) {
      await context.stdout(`[${index + 1}/${files.length}] scanning ${file}\n`);
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    await context.stderr("note: this is a demo; nothing was modified\n");
    const report = files.map((file) => `- ${file}`).join("\n") + "\n";
    await context.saveArtifact("report.md", `# Files\n${report}`, {
      kind: "report",
      description: "Files scanned.",
    });
    return {
      ok: true,
      outcome: "completed",
      summary: `Scanned ${files.length} files.`,
      suggestedFollowup: ["review"],
    };
  },
});

console.log(`${result.outcome}: ${result.summary} (${result.durationMs} ms)`);
console.log(
  `events: ${result.metrics.lifecycleEventCount}, stdout chunks: ${result.metrics.stdoutChunkCount}, storage writes: ${result.metrics.storageWrites}`,
);
console.log(`run folder: ${result.logPaths.runDir}`);
for (
  const name of [
    "metaPath",
    "statePath",
    "workerLogPath",
    "stdoutLogPath",
    "stderrLogPath",
    "outputIndexPath",
  ] as const
) {
  console.log(`  ${name.padEnd(15)} ${result.logPaths[name]}`);
}
const stored = await readRun((await import("../storage/fs.ts")).createFsStorage({ root: cwd }), {
  taskId: "demo-task",
  runId,
});
console.log(`artifacts: ${stored.artifacts.map((a) => `${a.name} (${a.size} bytes)`).join(", ")}`);
console.log(`try: tail -n 3 ${result.logPaths.workerLogPath} | jq .type`);
console.log(
  `     npx -y deno@2.9.6 task runs logs demo-task/${runId}   (events and output, in order)`,
);
