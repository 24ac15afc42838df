// Runs for the viewer's tests: a finished run (ANSI colours, `\r` progress, hostile markup, an
// artifact), a failed run, one printing on both streams in turn, a live run the test prints into,
// and a run with a git checkpoint.

import { mkdir } from "node:fs/promises";
import { runStep } from "../core/runner.ts";
import type { RunStorage } from "../storage/types.ts";
import { baseRequest } from "./helpers.ts";
import { createRepos, put } from "./git_helpers.ts";

/** Lines the finished run prints, each a case the viewer must render as a terminal would. */
export const HOSTILE_SCRIPT = "<script>alert(1)</script>";
/** An image whose error handler would run script if the log became markup. */
export const HOSTILE_IMG = '<img src=x onerror="alert(2)">';

/** Creates the finished run `demo/ok-1`. */
export async function seedFinishedRun(storage: RunStorage): Promise<void> {
  await runStep(baseRequest({ taskId: "demo", runId: "ok-1", stepName: "Build" }), {
    async execute(_run, context) {
      await context.stdout("plain line\n");
      await context.stdout("\x1b[31mred error text\x1b[0m and \x1b[1;32mbold green\x1b[0m\n");
      await context.stdout("progress 10%\rprogress 50%\rprogress 100%\n");
      await context.stdout(`${HOSTILE_SCRIPT}\n${HOSTILE_IMG}\n`);
      await context.stderr("warning: something odd\n");
      await context.saveArtifact("report.txt", "report body\n", {
        kind: "report",
        description: "the report",
      });
      return { ok: true, outcome: "completed", summary: "built", exitCode: 0 };
    },
  }, { storage });
}

/** Creates the failed run `demo/fail-1`. */
export async function seedFailedRun(storage: RunStorage): Promise<void> {
  await runStep(baseRequest({ taskId: "demo", runId: "fail-1", stepName: "Test" }), {
    async execute(_run, context) {
      await context.stderr("3 tests failed\n");
      return { ok: false, outcome: "failed", summary: "tests failed", exitCode: 1 };
    },
  }, { storage });
}

/** What `demo/mixed-1` prints, in order: each line's stream and text. */
export const MIXED_LINES: readonly (readonly ["stdout" | "stderr", string])[] = [
  ["stdout", "out 1"],
  ["stderr", "err 1"],
  ["stdout", "out 2"],
  ["stderr", "err 2"],
  ["stdout", `out ${HOSTILE_SCRIPT}`],
  ["stderr", `err ${HOSTILE_SCRIPT}`],
];

/** Creates the finished run `demo/mixed-1`, whose worker prints {@linkcode MIXED_LINES}. */
export async function seedMixedRun(storage: RunStorage): Promise<void> {
  await runStep(baseRequest({ taskId: "demo", runId: "mixed-1", stepName: "Mix" }), {
    async execute(_run, context) {
      for (const [channel, text] of MIXED_LINES) await context[channel](`${text}\n`);
      return { ok: true, outcome: "completed", summary: "mixed", exitCode: 0 };
    },
  }, { storage });
}

/** A run kept live until `finish()`: `print` writes to its stdout, `printErr` to its stderr. */
export interface LiveRun {
  /** Prints text on the run's stdout. */
  print(text: string | Uint8Array): Promise<void>;
  /** Prints text on the run's stderr. */
  printErr(text: string | Uint8Array): Promise<void>;
  /** Lets the run complete; resolves once runStep has. */
  finish(): Promise<void>;
}

/** Starts the live run `demo/live-1` and resolves once it printed its first line. */
export async function startLiveRun(storage: RunStorage, runId = "live-1"): Promise<LiveRun> {
  let print!: (text: string | Uint8Array) => Promise<void>;
  let printErr!: (text: string | Uint8Array) => Promise<void>;
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let ready!: () => void;
  const started = new Promise<void>((resolve) => (ready = resolve));
  const done = runStep(baseRequest({ taskId: "demo", runId, stepName: "Watch" }), {
    async execute(_run, context) {
      print = async (text) => await context.stdout(text);
      printErr = async (text) => await context.stderr(text);
      await context.stdout("live run started\n");
      ready();
      await released;
      return { ok: true, outcome: "completed", summary: "watched", exitCode: 0 };
    },
  }, { storage });
  await started;
  return {
    print: (text) => print(text),
    printErr: (text) => printErr(text),
    async finish() {
      release();
      await done;
    },
  };
}

/**
 * Creates `gitdemo/git-1` in a real repository under `root`: the worker changes a tracked file
 * and adds one, so the final git checkpoint's diff holds both.
 */
export async function seedGitRun(storage: RunStorage, root: string): Promise<void> {
  await mkdir(root, { recursive: true });
  const { agent } = await createRepos(root, async (dir) => {
    await put(dir, "src/app.ts", "export const answer = 41;\n");
    await put(dir, ".gitignore", "runs/\n");
  });
  await runStep(
    baseRequest({
      taskId: "gitdemo",
      runId: "git-1",
      runtime: { repoRoot: agent, worktreePath: agent },
      checkpoint: { gitDiff: { cadenceSec: { min: 30, max: 300 } } },
    }),
    {
      async execute() {
        await put(agent, "src/app.ts", "export const answer = 42;\n");
        await put(agent, "docs/<b>new</b>.md", "# added\n");
        return { ok: true, outcome: "completed", summary: "edited", exitCode: 0 };
      },
    },
    { storage },
  );
}
