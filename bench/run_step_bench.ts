// deno bench: runStep throughput on memory storage with the placeholder executor, and with a
// small executor that prints 10 lines.
// Run: npx -y deno@2.9.6 bench -A bench/run_step_bench.ts

import { createMemoryStorage, runStep, type StepExecutionRequest } from "../mod.ts";

const storage = createMemoryStorage();
let counter = 0;
const request = (): StepExecutionRequest => ({
  taskId: "bench",
  stepId: "step",
  stepName: "Bench",
  stepKind: "bench",
  runId: `run-${counter++}`,
  attempt: 1,
  workerKind: "placeholder",
  timeoutSec: 60,
  runtime: { repoRoot: "/repo", worktreePath: "/repo" },
});

Deno.bench("runStep, placeholder executor, memory storage", async () => {
  await runStep(request(), undefined, { storage });
});

Deno.bench("runStep, 10 stdout lines, memory storage", async () => {
  await runStep(request(), {
    async execute(_run, context) {
      for (let i = 0; i < 10; i++) await context.stdout(`line ${i}\n`);
      return { ok: true, outcome: "completed", summary: "ok" };
    },
  }, { storage });
});
