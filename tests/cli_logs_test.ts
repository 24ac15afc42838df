// `runs logs --stream all` as a user reads it, on the filesystem and Ceph RGW: lifecycle events,
// stdout and stderr in exactly the order the worker printed them, whole, tailed (never starting
// inside a line), as JSON lines with their sequence numbers, and followed live while a function
// worker or a real process prints.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runStep } from "../core/runner.ts";
import type { WorkerExecutor } from "../core/executor.ts";
import { createProcessExecutor } from "../executors/process.ts";
import {
  type Backend,
  type CliResult,
  exited,
  runCli,
  startCli,
  stepRequest,
  waitFor,
  withBackend,
} from "./cli/run_cli.ts";

const KINDS = ["fs", "s3"] as const;
const REF = "task-1/run-1";
/** A rendered event: `<time> <LEVEL> <task>/<step>/<run> #<seq> <type>: <message>`. */
const EVENT = /^\S+ [A-Z]+ \S+\/\S+\/\S+ #(\d+) (\w+): /;

function eventType(line: string): string | undefined {
  return EVENT.exec(line)?.[2];
}

function linesOf(result: CliResult): string[] {
  return result.stdout === "" ? [] : result.stdout.replace(/\n$/, "").split("\n");
}

/**
 * What a user relies on in a combined view: the output lines exactly in `output`'s order, the
 * worker's start before the first of them, events in sequence order, `terminal` last.
 */
function assertView(lines: string[], output: string[], terminal: string): void {
  assert.deepEqual(lines.filter((l) => eventType(l) === undefined), output);
  const started = lines.findIndex((l) => eventType(l) === "worker_started");
  assert.ok(started >= 0 && started < lines.indexOf(output[0]), lines.join("\n"));
  assert.equal(eventType(lines.at(-1)!), terminal, lines.join("\n"));
  const seqs = lines.map((l) => EVENT.exec(l)?.[1]).filter((s) => s !== undefined).map(Number);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
}

/** Runs the CLI on the backend; asserts it exited with `code`. */
async function cli(backend: Backend, args: string[], code = 0): Promise<CliResult> {
  const result = await runCli([...args, ...backend.args], backend.env);
  assert.equal(result.code, code, result.stderr);
  return result;
}

/** A started follower whose output is collected as it comes. */
function follow(backend: Backend, args: string[]) {
  const child = startCli(["logs", REF, "-f", "--poll", "50ms", ...args, ...backend.args], {
    ...backend.env,
  });
  const seen = { stdout: "", stderr: "" };
  child.stdout!.on("data", (b: Buffer) => (seen.stdout += b.toString("utf8")));
  child.stderr!.on("data", (b: Buffer) => (seen.stderr += b.toString("utf8")));
  return {
    seen,
    /** Waits until the follower has printed `text`. */
    shows: (text: string) =>
      waitFor(
        `the CLI to show ${JSON.stringify(text)}`,
        async () => seen.stdout.includes(text) ? true : undefined,
      ),
    exited: () => exited(child),
  };
}

for (const kind of KINDS) {
  describe(`runs logs --stream all on ${kind === "fs" ? "the filesystem" : "S3 (Ceph RGW)"}`, () => {
    it("prints a finished run's events, stdout and stderr in the order printed; --tail and --json keep that order", async (t) => {
      await withBackend(t, kind, async (backend) => {
        await runStep(stepRequest(backend.dir), {
          async execute(_run, context) {
            for (let i = 1; i <= 3; i++) {
              await context.stdout(`out ${i}\n`);
              await context.stderr(`err ${i}\n`);
            }
            // A stdout line finished after a stderr line: shown whole, once finished.
            await context.stdout("half ");
            await context.stderr("err 4\n");
            await context.stdout("line\nout 5\n");
            await context.stderr("no newline");
            return { ok: true, outcome: "completed", summary: "done" };
          },
        }, { storage: backend.storage });
        const output = [
          ...["out 1", "err 1", "out 2", "err 2", "out 3", "err 3"],
          ...["err 4", "half line", "out 5", "no newline"],
        ];

        const whole = await cli(backend, ["logs", REF]);
        assert.equal(whole.stderr, "");
        const lines = linesOf(whole);
        assertView(lines, output, "step_completed");
        assert.equal(lines.at(-3), "no newline", "the last output line, before the worker exits");
        assert.equal(eventType(lines.at(-2)!), "worker_exited");
        assert.deepEqual(linesOf(await cli(backend, ["logs", REF, "--stream", "all"])), lines);

        for (const n of [1, 4, 9]) {
          const tail = await cli(backend, ["logs", REF, "--tail", String(n)]);
          assert.deepEqual(linesOf(tail), lines.slice(-n), `--tail ${n}`);
        }
        assert.deepEqual(linesOf(await cli(backend, ["logs", REF, "--tail", "1000"])), lines);
        assert.equal((await cli(backend, ["logs", REF, "--tail", "0"])).stdout, "");

        const entries = linesOf(await cli(backend, ["logs", REF, "--json"])).map((l) =>
          JSON.parse(l)
        );
        const printed = entries.filter((e) => e.channel !== "worker");
        const stderr = new Set(["err 1", "err 2", "err 3", "err 4", "no newline"]);
        assert.deepEqual(
          printed.map((e) => [e.channel, e.line]),
          output.map((line) => [stderr.has(line) ? "stderr" : "stdout", line]),
        );
        for (const e of printed) assert.deepEqual(Object.keys(e), ["channel", "seq", "line"]);
        const seqs = entries.map((e) => e.seq);
        assert.ok(seqs.every((s) => Number.isInteger(s)), JSON.stringify(seqs));
        assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), "seq never goes back");
        assert.ok(seqs.at(-1) > seqs.at(-2), "the terminal event has the last seq");
        assert.equal(entries.at(-1).type, "step_completed");
        assert.equal(entries.find((e) => e.channel === "worker").type, "run_prepared");
      });
    });

    it("--tail never starts inside a line when a long line spans stderr output", async (t) => {
      await withBackend(t, kind, async (backend) => {
        const piece = "x".repeat(40_000);
        await runStep(stepRequest(backend.dir), {
          async execute(_run, context) {
            // Three pieces of one stdout line, stderr lines between them: a tail of the last
            // 64 KiB of output starts in the line's second piece.
            await context.stdout(piece);
            await context.stderr("e1\n");
            await context.stdout(piece);
            await context.stderr("e2\n");
            await context.stdout(`${piece}\ntail line\n`);
            return { ok: true, outcome: "completed", summary: "done" };
          },
        }, { storage: backend.storage });
        const lines = linesOf(await cli(backend, ["logs", REF]));
        assertView(lines, ["e1", "e2", piece.repeat(3), "tail line"], "step_completed");
        const tail = linesOf(await cli(backend, ["logs", REF, "--tail", "4"]));
        assert.equal(tail[0].length, 3 * piece.length, "the long line whole");
        assert.deepEqual(tail, lines.slice(-4));
      });
    });

    it("logs -f shows a live run's lines in the order printed, the same as the stored view; --tail -f starts at the last N", async (t) => {
      await withBackend(t, kind, async (backend) => {
        let started!: () => void;
        const workerMayStart = new Promise<void>((resolve) => (started = resolve));
        let tailing!: () => void;
        const tailShown = new Promise<void>((resolve) => (tailing = resolve));
        let firstDone!: () => void;
        const firstPrinted = new Promise<void>((resolve) => (firstDone = resolve));
        const run = runStep(stepRequest(backend.dir), {
          async execute(_run, context) {
            await workerMayStart;
            for (let i = 1; i <= 3; i++) {
              await context.stdout(`out ${i}\n`);
              await context.stderr(`err ${i}\n`);
            }
            firstDone();
            await tailShown;
            await context.stdout("half ");
            await context.stderr("err 4\n");
            await context.stdout("line\nout 5\n");
            await context.stderr("err 5\n");
            return { ok: false, outcome: "blocked", summary: "needs a key" };
          },
        }, { storage: backend.storage, flushIntervalMs: 100 });
        await waitFor("the run", () => backend.storage.read("runs/task-1/run-1/meta.json"));
        const text = follow(backend, []);
        const json = follow(backend, ["--json"]);
        // Both followers show the run live from before the worker's first output.
        await text.shows("worker_started");
        await json.shows('"type":"worker_started"');
        started();
        await firstPrinted;
        await text.shows("err 3\n");
        const tail = follow(backend, ["--tail", "3"]);
        await tail.shows("err 3\n");
        tailing();

        assert.equal((await run).outcome, "blocked");
        for (const f of [text, json, tail]) {
          assert.equal(await f.exited(), 2, f.seen.stderr);
          assert.match(f.seen.stderr, /^runs: task-1\/run-1 blocked .*: needs a key\n$/);
        }
        const output = [
          ...["out 1", "err 1", "out 2", "err 2", "out 3", "err 3"],
          ...["err 4", "half line", "out 5", "err 5"],
        ];
        const stored = await cli(backend, ["logs", REF]);
        assertView(linesOf(stored), output, "step_blocked");
        assert.equal(text.seen.stdout, stored.stdout, "followed live = read when stored");
        const lines = linesOf(stored);
        assert.deepEqual(
          text.seen.stdout.replace(/\n$/, "").split("\n"),
          lines,
        );
        // The tail follower started with the last 3 lines then stored, and went on from there.
        assert.deepEqual(
          tail.seen.stdout.replace(/\n$/, "").split("\n"),
          lines.slice(lines.indexOf("err 2")),
        );
        const entries = json.seen.stdout.replace(/\n$/, "").split("\n").map((l) => JSON.parse(l));
        assert.deepEqual(
          entries.filter((e) => e.channel !== "worker").map((e) => e.line),
          output,
        );
        const seqs = entries.map((e) => e.seq);
        assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), "seq never goes back");
        assert.equal(entries.at(-1).type, "step_blocked");
      });
    });

    it("logs -f on a real process that alternates stdout and stderr shows them in the order printed", async (t) => {
      await withBackend(t, kind, async (backend) => {
        const processExecutor = createProcessExecutor({
          command: "echo a; sleep 0.3; echo b >&2; sleep 0.3; echo c; sleep 0.3; " +
            "echo d >&2; sleep 0.3; printf 'e'; sleep 0.3; echo f >&2; sleep 0.3; echo ' end'",
        });
        let started!: () => void;
        const workerMayStart = new Promise<void>((resolve) => (started = resolve));
        const executor: WorkerExecutor = {
          ...processExecutor,
          async execute(run, context) {
            await workerMayStart;
            return await processExecutor.execute(run, context);
          },
        };
        const run = runStep(stepRequest(backend.dir), executor, {
          storage: backend.storage,
          flushIntervalMs: 100,
        });
        await waitFor("the run", () => backend.storage.read("runs/task-1/run-1/meta.json"));
        const text = follow(backend, []);
        await text.shows("worker_started");
        started();
        assert.equal((await run).outcome, "completed");
        assert.equal(await text.exited(), 0, text.seen.stderr);
        assert.match(text.seen.stderr, /^runs: task-1\/run-1 completed \(exit code 0\)/);
        const stored = await cli(backend, ["logs", REF]);
        assertView(linesOf(stored), ["a", "b", "c", "d", "f", "e end"], "step_completed");
        assert.equal(text.seen.stdout, stored.stdout, "followed live = read when stored");
        const tail = linesOf(await cli(backend, ["logs", REF, "--tail", "4"]));
        assert.deepEqual(tail, linesOf(stored).slice(-4));
        assert.deepEqual(tail.filter((l) => eventType(l) === undefined), ["f", "e end"]);
      });
    });
  });
}
