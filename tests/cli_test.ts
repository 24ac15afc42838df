// The `runs` CLI as a user runs it, spawned as a child process, against the filesystem and
// Ceph RGW: listings and their filters, show, logs (whole, tailed, followed live to a failure,
// followed to a killed writer), diff and restore of a git checkpoint, reap and prune dry runs,
// wrong credentials, and --help everywhere.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { readRun, readRunLogBytes } from "../core/read.ts";
import { runStep } from "../core/runner.ts";
import { COMMANDS } from "../cli/commands.ts";
import { assertSameTree, createRepos, git, leaves, put, sleep } from "./git_helpers.ts";
import {
  type Backend,
  cliCommand,
  exited,
  runCli,
  startCli,
  stepRequest,
  waitFor,
  withBackend,
} from "./cli/run_cli.ts";
import { seedRun } from "./fixtures/seed_runs.ts";

const KINDS = ["fs", "s3"] as const;
const HOUR = 3_600_000;
// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[/;

/** Keeps a seeded live run's heartbeat fresh (as its writer would) until `stop()`. */
function heartbeat(backend: Backend, key: string): { stop(): Promise<void> } {
  let beating = true;
  const loop = (async () => {
    while (beating) {
      await sleep(1_000);
      const state = JSON.parse(new TextDecoder().decode(await backend.storage.read(key)));
      await backend.storage.write(
        key,
        JSON.stringify({ ...state, updatedAt: new Date().toISOString() }),
      );
    }
  })();
  return {
    async stop() {
      beating = false;
      await loop;
    },
  };
}

/** Seeds runs of every kind and age (the live one heartbeating); returns them newest first. */
async function withMix(backend: Backend, body: (order: string[]) => Promise<void>): Promise<void> {
  const order = await seedMix(backend);
  const beat = heartbeat(backend, "runs/t-b/r-live/state.json");
  try {
    await body(order);
  } finally {
    await beat.stop();
  }
}

/** Seeds runs of every kind and age; returns them newest first. */
async function seedMix(backend: Backend): Promise<string[]> {
  const now = Date.now();
  const s = backend.storage;
  await seedRun(s, "t-a", "r-old", "completed", new Date(now - 72 * HOUR), now);
  await seedRun(s, "t-a", "r-fail", "failed", new Date(now - 2 * HOUR), now);
  await seedRun(s, "t-b", "r-ok", "completed", new Date(now - 1 * HOUR), now);
  await seedRun(s, "t-b", "r-stale", "stale", new Date(now - 5 * HOUR), now);
  await seedRun(s, "t-b", "r-live", "live", new Date(now - 600_000), now);
  return ["r-live", "r-ok", "r-fail", "r-stale", "r-old"];
}

async function lsJson(backend: Backend, ...args: string[]) {
  const result = await runCli(["ls", ...args, "--json", ...backend.args], backend.env);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as {
    taskId: string;
    runId: string;
    status: string;
    liveness: string;
    stepId: string;
    workerKind: string;
  }[];
}

for (const kind of KINDS) {
  describe(`runs CLI on ${kind === "fs" ? "the filesystem" : "S3 (Ceph RGW)"}`, () => {
    it("ls lists newest first, filters by task, status, liveness, since and limit, as a table or JSON", async (t) => {
      await withBackend(t, kind, (backend) =>
        withMix(backend, async (order) => {
          const all = await lsJson(backend);
          assert.deepEqual(all.map((r) => r.runId), order);
          assert.equal(all[0].stepId, "s");
          assert.equal(all[0].workerKind, "script");
          assert.deepEqual((await lsJson(backend, "--task", "t-a")).map((r) => r.runId), [
            "r-fail",
            "r-old",
          ]);
          assert.deepEqual((await lsJson(backend, "--status", "failed")).map((r) => r.runId), [
            "r-fail",
          ]);
          const stale = await lsJson(backend, "--liveness", "stale");
          assert.deepEqual(stale.map((r) => [r.runId, r.status, r.liveness]), [
            ["r-stale", "running", "stale"],
          ]);
          assert.deepEqual(
            (await lsJson(backend, "--since", "24h")).map((r) => r.runId),
            order.filter((id) => id !== "r-old"),
          );
          assert.deepEqual((await lsJson(backend, "--limit", "2")).map((r) => r.runId), [
            "r-live",
            "r-ok",
          ]);
          // A table when not asked for JSON; no colour on a pipe.
          const table = await runCli(["ls", ...backend.args, "--status", "running"], backend.env);
          assert.equal(table.code, 0, table.stderr);
          const lines = table.stdout.trimEnd().split("\n");
          assert.match(
            lines[0],
            /^TASK\s+RUN\s+STEP\s+WORKER\s+ATTEMPT\s+STATUS\s+STARTED\s+DURATION\s+EXIT\s+TRUNCATED$/,
          );
          assert.match(lines[1], /^t-b\s+r-live\s+s\s+script\s+1\s+running\/live\s/);
          assert.match(lines[2], /^t-b\s+r-stale\s+s\s+script\s+1\s+running\/stale\s/);
          assert.doesNotMatch(table.stdout, ANSI);
          // A bad filter value is a usage error, in one line.
          const bad = await runCli(["ls", "--status", "done", ...backend.args], backend.env);
          assert.equal(bad.code, 64);
          assert.equal(bad.stderr.trim().split("\n").length, 1, bad.stderr);
        }));
    });

    it("reap --dry-run and prune --dry-run report what they would do and change nothing; reap then closes the stale run", async (t) => {
      await withBackend(t, kind, (backend) =>
        withMix(backend, async () => {
          const before = await lsJson(backend, "--limit", "0");
          const reap = await runCli(["reap", "--dry-run", "--json", ...backend.args], backend.env);
          assert.equal(reap.code, 0, reap.stderr);
          const wouldReap = JSON.parse(reap.stdout);
          assert.equal(wouldReap.dryRun, true);
          assert.deepEqual(
            wouldReap.wouldReap.map((r: { runId: string; status: string }) => [r.runId, r.status]),
            [["r-stale", "running"]],
          );
          const reapText = await runCli(["reap", ...backend.args, "--dry-run"], backend.env);
          assert.match(reapText.stdout, /^Would reap 1 stale run \(dry run: nothing changed\):/);
          assert.match(reapText.stdout, /t-b\s+r-stale\s+running/);

          const prune = await runCli(
            ["prune", "--older-than", "30m", "--dry-run", "--json", ...backend.args],
            backend.env,
          );
          assert.equal(prune.code, 0, prune.stderr);
          const plan = JSON.parse(prune.stdout);
          assert.equal(plan.dryRun, true);
          assert.deepEqual(
            plan.wouldDelete.map((r: { runId: string }) => r.runId).sort(),
            ["r-fail", "r-ok", "r-old"],
          );
          assert.deepEqual(
            plan.skipped.map((r: { runId: string; reason: string }) => `${r.runId}:${r.reason}`)
              .sort(),
            ["r-live:live", "r-stale:stale"],
          );
          const failedOnly = await runCli(
            ["prune", "--dry-run", ...backend.args, "--older-than", "0d", "--status", "failed"],
            backend.env,
          );
          assert.equal(failedOnly.code, 0, failedOnly.stderr);
          assert.match(failedOnly.stdout, /^Would delete 1 run \(dry run: nothing changed\):/);
          assert.match(failedOnly.stdout, /t-a\s+r-fail\s+failed/);
          const after = await lsJson(backend, "--limit", "0");
          const still = (rows: typeof before) =>
            rows.map((r) => `${r.taskId}/${r.runId}:${r.status}`);
          assert.deepEqual(still(after), still(before), "nothing changed");
          // events -f on the dead run ends at once with 3; reap then closes it, and only it.
          const watched = await runCli(
            ["events", "t-b/r-stale", "-f", ...backend.args],
            backend.env,
          );
          assert.equal(watched.code, 3, watched.stderr);
          assert.match(watched.stderr, /^runs: t-b\/r-stale is stale: /);
          const reaped = await runCli(["reap", "--json", ...backend.args], backend.env);
          assert.equal(reaped.code, 0, reaped.stderr);
          assert.deepEqual(
            JSON.parse(reaped.stdout).reaped.map((r: { runId: string; status: string }) => [
              r.runId,
              r.status,
            ]),
            [["r-stale", "failed"]],
          );
          const closed = await runCli(
            ["events", "t-b/r-stale", "-f", ...backend.args],
            backend.env,
          );
          assert.equal(closed.code, 1, "a reaped run is failed");
          // Without --older-than, prune refuses.
          const missing = await runCli(["prune", ...backend.args], backend.env);
          assert.equal(missing.code, 64);
          assert.match(missing.stderr, /^runs: prune needs --older-than/);
        }));
    });

    it("show, logs, --tail, events and artifacts get read a finished run", async (t) => {
      await withBackend(t, kind, async (backend) => {
        const result = await runStep(stepRequest(backend.dir), {
          async execute(_run, context) {
            await context.stdout("first\nsecond\nthird\n");
            await context.stderr("warning: careful\n");
            await context.saveArtifact("report.txt", "the report", { description: "Findings" });
            return { ok: false, outcome: "failed", summary: "tests failed", exitCode: 3 };
          },
        }, { storage: backend.storage });
        assert.equal(result.outcome, "failed");
        const ref = "task-1/run-1";

        const shown = await runCli(["show", ref, "--json", ...backend.args], backend.env);
        assert.equal(shown.code, 0, shown.stderr);
        const doc = JSON.parse(shown.stdout);
        assert.equal(doc.metadata.stepId, "step-1");
        assert.equal(doc.state.status, "failed");
        assert.equal(doc.state.exitCode, 3);
        assert.equal(doc.liveness, "finished");
        assert.equal(typeof doc.heartbeatAgeMs, "number");
        assert.deepEqual(doc.artifacts.map((a: { name: string }) => a.name), ["report.txt"]);
        assert.ok(doc.checkpoints.some((c: { type: string }) => c.type === "log_tail"));
        const text = await runCli(["show", ...backend.args, ref], backend.env);
        assert.equal(text.code, 0, text.stderr);
        assert.match(text.stdout, /^Status\s+failed$/m);
        assert.match(text.stdout, /^Exit\s+code 3$/m);
        assert.match(text.stdout, /^Heartbeat\s+\S+ ago/m);
        assert.match(text.stdout, /^\s+report\.txt\s+file\s+10 B\s+Findings$/m);

        const stdout = await runCli(
          ["logs", ref, "--stream", "stdout", ...backend.args],
          backend.env,
        );
        assert.equal(stdout.code, 0, stdout.stderr);
        assert.equal(stdout.stdout, "first\nsecond\nthird\n");
        assert.equal(stdout.stderr, "", "a log read prints no status on its own");
        const tail = await runCli(
          ["logs", ref, "--stream", "stdout", "--tail", "2", ...backend.args],
          backend.env,
        );
        assert.equal(tail.stdout, "second\nthird\n");
        const all = await runCli(["logs", ref, ...backend.args], backend.env);
        const lines = all.stdout.trimEnd().split("\n");
        const started = lines.findIndex((l) => / #\d+ worker_started: /.test(l));
        assert.ok(started >= 0, all.stdout);
        assert.deepEqual(lines.slice(started + 1, started + 5), [
          "first",
          "second",
          "third",
          "warning: careful",
        ]);
        assert.match(lines.at(-1)!, / step_failed: tests failed$/);

        const events = await runCli(["events", ref, "--json", ...backend.args], backend.env);
        const parsed = JSON.parse(events.stdout) as { type: string }[];
        assert.equal(parsed.at(-1)!.type, "step_failed");

        const out = join(backend.dir, "report-copy.txt");
        const got = await runCli(
          ["artifacts", ref, "get", "report.txt", "-o", out, ...backend.args],
          backend.env,
        );
        assert.equal(got.code, 0, got.stderr);
        assert.equal(await readFile(out, "utf8"), "the report");
        const missing = await runCli(["show", "task-1/run-9", ...backend.args], backend.env);
        assert.equal(missing.code, 4);
        assert.equal(missing.stderr, "runs: Run 'run-9' of task 'task-1' does not exist\n");
      });
    });

    it("logs -f prints a live run's output as it comes and exits 1 when the run fails", async (t) => {
      await withBackend(t, kind, async (backend) => {
        let shown = "";
        let cliStarted!: () => void;
        const started = new Promise<void>((resolve) => (cliStarted = resolve));
        const run = runStep(stepRequest(backend.dir), {
          async execute(_run, context) {
            await started;
            for (let i = 0; i < 3; i++) {
              await context.stdout(`line ${i}\n`);
              // The next line is printed only once the CLI has shown this one.
              await waitFor(
                `the CLI to show line ${i}`,
                async () => shown.includes(`line ${i}\n`) ? true : undefined,
              );
            }
            return { ok: false, outcome: "failed", summary: "it broke", exitCode: 1 };
          },
        }, { storage: backend.storage, flushIntervalMs: 100 });
        await waitFor("the run", () => backend.storage.read("runs/task-1/run-1/meta.json"));
        const cli = startCli(
          ["logs", "task-1/run-1", "-f", "--stream", "stdout", "--poll", "50ms", ...backend.args],
          backend.env,
        );
        // A second follower of all three logs, as JSON lines.
        const mixed = startCli(
          ["logs", "task-1/run-1", "-f", "--json", "--poll", "50ms", ...backend.args],
          backend.env,
        );
        let stderr = "";
        let jsonLines = "";
        cli.stdout!.on("data", (b: Buffer) => (shown += b.toString("utf8")));
        cli.stderr!.on("data", (b: Buffer) => (stderr += b.toString("utf8")));
        mixed.stdout!.on("data", (b: Buffer) => (jsonLines += b.toString("utf8")));
        cliStarted();
        const result = await run;
        assert.equal(result.outcome, "failed");
        assert.equal(await exited(cli), 1, stderr);
        assert.equal(shown, "line 0\nline 1\nline 2\n");
        assert.match(stderr, /^runs: task-1\/run-1 failed \(exit code 1\): it broke\n$/);
        assert.equal(await exited(mixed), 1);
        const entries = jsonLines.trimEnd().split("\n").map((l) => JSON.parse(l));
        assert.deepEqual(
          entries.filter((e) => e.channel === "stdout").map((e) => e.line),
          ["line 0", "line 1", "line 2"],
        );
        const events = entries.filter((e) => e.channel === "worker");
        assert.deepEqual(
          events.map((e) => e.seq),
          [...events.map((e) => e.seq)].sort((a, b) => a - b),
        );
        assert.equal(new Set(events.map((e) => e.seq)).size, events.length, "each event once");
        assert.equal(entries.at(-1).type, "step_failed");
      });
    });

    it("logs -f on a run whose writer was killed with kill -9 prints every stored byte and exits 3 after the stale threshold", async (t) => {
      // The orchestrator fixture writes to the bucket root: no prefix here.
      await withBackend(t, kind, async (backend) => {
        const repo = join(backend.dir, "repo");
        await put(repo, ".keep", "");
        const env = backend.kind === "s3"
          ? {
            S3_ENDPOINT: backend.env.AWS_ENDPOINT_URL_S3,
            S3_REGION: backend.env.AWS_REGION,
            S3_ACCESS_KEY_ID: backend.env.AWS_ACCESS_KEY_ID,
            S3_SECRET_ACCESS_KEY: backend.env.AWS_SECRET_ACCESS_KEY,
            S3_BUCKET: backend.bucket!,
          }
          : {};
        const fixture = fileURLToPath(new URL("./fixtures/orchestrator.ts", import.meta.url));
        // deno-lint-ignore no-explicit-any
        const deno = (globalThis as any).Deno;
        const [command, argv] = deno
          ? [deno.execPath(), ["run", "--allow-all", fixture, "stream", repo, backend.kind]]
          : [process.execPath, ["--import", "tsx", fixture, "stream", repo, backend.kind]];
        const writer = spawn(command, argv, {
          stdio: ["ignore", "ignore", "inherit"],
          env: { ...process.env, ...env },
        });
        const args = backend.kind === "fs" ? ["--storage", repo] : backend.args;
        const ref = { taskId: "crash", runId: "run-1" };
        const storage = backend.kind === "fs"
          ? (await import("../storage/fs.ts")).createFsStorage({ root: repo })
          : backend.storage;
        let cli: ChildProcess | undefined;
        // Beside it, the interleaved view (--stream all) of the same run.
        let mixed: ChildProcess | undefined;
        try {
          await waitFor(
            "the first output",
            async () =>
              (await readRunLogBytes(storage, ref, "stdout")).byteLength > 1000 ? true : undefined,
          );
          const follow = ["logs", "crash/run-1", "-f", "--stale-after", "2s", "--poll", "100ms"];
          cli = startCli([...follow, "--stream", "stdout", ...args], backend.env);
          mixed = startCli([...follow, ...args], backend.env);
          await sleep(500);
        } finally {
          writer.kill("SIGKILL");
          await exited(writer);
        }
        const killedAt = Date.now();
        let printed = 0;
        let stderr = "";
        let mixedOut = "";
        let mixedErr = "";
        cli.stdout!.on("data", (b: Buffer) => (printed += b.byteLength));
        cli.stderr!.on("data", (b: Buffer) => (stderr += b.toString("utf8")));
        mixed!.stdout!.on("data", (b: Buffer) => (mixedOut += b.toString("utf8")));
        mixed!.stderr!.on("data", (b: Buffer) => (mixedErr += b.toString("utf8")));
        const [code, mixedCode] = await Promise.all([exited(cli), exited(mixed!)]);
        const waited = Date.now() - killedAt;
        const staleNote =
          /^runs: crash\/run-1 is stale: no heartbeat since .+; 'runs reap' closes it\n$/;
        assert.equal(code, 3, stderr);
        assert.match(stderr, staleNote);
        const stored = await readRunLogBytes(storage, ref, "stdout");
        assert.equal(printed, stored.byteLength, "every stored byte, once");
        assert.ok(waited < 20_000, `exited ${waited} ms after the kill`);
        assert.equal(mixedCode, 3, mixedErr);
        assert.match(mixedErr, staleNote);
        const lines = mixedOut.replace(/\n$/, "").split("\n").filter((l) => !/ #\d+ \w+: /.test(l));
        assert.equal(
          lines.join("\n"),
          new TextDecoder().decode(stored).replace(/\n$/, ""),
          "--stream all: every stored line, once, in order",
        );
        // Still a running record: logs -f reports, it does not reap.
        assert.equal((await readRun(storage, ref)).state?.status, "running");
      }, { prefix: "" });
    });

    it("diff prints a git checkpoint's patch and restore round-trips it onto a fresh clone", async (t) => {
      await withBackend(t, kind, async (backend) => {
        const { upstream, agent, base } = await createRepos(backend.dir, async (dir) => {
          await put(dir, "src/app.ts", "export const answer = 41;\n");
          await put(dir, "README.md", "# demo\n");
        });
        const result = await runStep(
          stepRequest(agent, {
            taskId: "task-g",
            checkpoint: { gitDiff: { cadenceSec: { min: 30, max: 300 } } },
          }),
          {
            async execute() {
              await put(agent, "src/app.ts", "export const answer = 42;\n");
              await put(agent, "notes/new file.txt", "untracked, with a space\n");
              await rm(join(agent, "README.md"));
              return { ok: true, outcome: "completed", summary: "edited" };
            },
          },
          { storage: backend.storage },
        );
        assert.equal(result.outcome, "completed");
        const ref = "task-g/run-1";

        const diff = await runCli(["diff", ref, ...backend.args], backend.env);
        assert.equal(diff.code, 0, diff.stderr);
        assert.match(diff.stdout, /^\+export const answer = 42;$/m);
        assert.match(diff.stdout, /^diff --git a\/README\.md b\/README\.md$/m);
        assert.match(
          diff.stderr,
          new RegExp(`^git checkpoint #\\d+ \\(final\\) against ${base.slice(0, 12)}: 3 files`),
        );
        assert.doesNotMatch(diff.stdout, ANSI);
        // The printed patch is the change: git applies it to a clean clone.
        const byPatch = join(backend.dir, "by-patch");
        await git(backend.dir, "clone", "-q", upstream, byPatch);
        await put(backend.dir, "change.patch", diff.stdout);
        await git(byPatch, "apply", join(backend.dir, "change.patch"));
        assertSameTree(await leaves(byPatch), await leaves(agent));

        const clone = join(backend.dir, "clone");
        await git(backend.dir, "clone", "-q", upstream, clone);
        const dry = await runCli(
          ["restore", ref, "--worktree", clone, "--dry-run", ...backend.args],
          backend.env,
        );
        assert.equal(dry.code, 0, dry.stderr);
        assert.match(
          dry.stdout,
          /^Would apply git checkpoint #\d+ of task-g\/run-1 .*applies cleanly$/m,
        );
        assert.equal(await git(clone, "status", "--porcelain"), "", "a dry run changes nothing");
        const restored = await runCli(
          ["restore", ref, "--worktree", clone, "--json", ...backend.args],
          backend.env,
        );
        assert.equal(restored.code, 0, restored.stderr);
        const report = JSON.parse(restored.stdout);
        assert.equal(report.applied, true);
        assert.deepEqual(report.conflicts, []);
        assert.equal(report.baseCommit, base);
        assertSameTree(await leaves(clone), await leaves(agent));
        // Restoring again onto the now-dirty tree is refused, in one line.
        const again = await runCli(
          ["restore", ref, "--worktree", clone, ...backend.args],
          backend.env,
        );
        assert.equal(again.code, 4);
        assert.equal(again.stderr.trim().split("\n").length, 1, again.stderr);
      });
    });
  });
}

describe("runs CLI errors and help", () => {
  it("wrong S3 credentials give one line on stderr without the secret, and exit 4", async (t) => {
    await withBackend(t, "s3", async (backend) => {
      const secret = `wrong-secret-${crypto.randomUUID()}`;
      const session = `session-${crypto.randomUUID()}`;
      for (const command of [["ls"], ["show", "task-1/run-1"], ["logs", "task-1/run-1", "-f"]]) {
        const result = await runCli([...command, ...backend.args], {
          ...backend.env,
          AWS_SECRET_ACCESS_KEY: secret,
          AWS_SESSION_TOKEN: session,
        }, { timeoutMs: 60_000 });
        assert.equal(result.code, 4, `${command[0]}: ${result.stderr}`);
        const lines = result.stderr.trimEnd().split("\n");
        assert.equal(lines.length, 1, result.stderr);
        assert.match(lines[0], /^runs: access denied \(check the credentials\): /);
        assert.ok(!result.stderr.includes(secret) && !result.stdout.includes(secret));
        assert.ok(!result.stderr.includes(session) && !result.stdout.includes(session));
        assert.equal(result.stdout, "");
      }
      const none = await runCli(["ls", ...backend.args], {});
      assert.equal(none.code, 64);
      assert.equal(
        none.stderr,
        "runs: S3 storage needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment\n",
      );
    });
  });

  it("every command has --help (exit 0, its usage on stdout); unknown commands and flags exit 64", async () => {
    for (const name of Object.keys(COMMANDS)) {
      const result = await runCli([name, "--help"]);
      assert.equal(result.code, 0, `${name}: ${result.stderr}`);
      assert.match(result.stdout, new RegExp(`^Usage: runs ${name}`, "m"), name);
    }
    const top = await runCli(["--help"]);
    assert.match(top.stdout, /^Exit codes:$/m);
    const unknown = await runCli(["lsx"]);
    assert.equal(unknown.code, 64);
    assert.equal(unknown.stderr, "runs: unknown command 'lsx' (try 'runs --help')\n");
    const flag = await runCli(["show", "a/b", "--colour"]);
    assert.equal(flag.code, 64);
    assert.equal(
      flag.stderr,
      "runs: unknown flag '--colour' for 'show' (try 'runs show --help')\n",
    );
  });

  it("colours only on a terminal, and never with NO_COLOR set", async (t) => {
    if (process.platform !== "linux") return t.skip("needs util-linux script(1) for a terminal");
    await withBackend(t, "fs", async (backend) => {
      await seedRun(backend.storage, "t-a", "r-1", "failed", new Date());
      // script(1) runs the CLI on a pseudo-terminal.
      const onTty = (args: string[], env: Record<string, string>) => {
        const [command, argv] = cliCommand([...args, ...backend.args]);
        const line = [command, ...argv].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
        return runCli([], {}, { command: ["script", "-qec", line, "/dev/null"], env });
      };
      const coloured = await onTty(["ls"], {});
      assert.equal(coloured.code, 0, coloured.stderr);
      assert.ok(
        coloured.stdout.includes("\x1b[31mfailed\x1b[39m"),
        JSON.stringify(coloured.stdout),
      );
      const plain = await onTty(["ls"], { NO_COLOR: "1" });
      assert.equal(plain.code, 0, plain.stderr);
      assert.match(plain.stdout, /r-1\s+s\s+script\s+1\s+failed/);
      assert.doesNotMatch(plain.stdout, ANSI);

      // The interleaved log: stderr red, events dim, stdout as printed.
      await runStep(stepRequest(backend.dir), {
        async execute(_run, context) {
          await context.stdout("plain\n");
          await context.stderr("warned\n");
          return { ok: true, outcome: "completed", summary: "ok" };
        },
      }, { storage: backend.storage });
      const log = await onTty(["logs", "task-1/run-1"], {});
      assert.equal(log.code, 0, log.stderr);
      const lines = log.stdout.split(/\r?\n/);
      const at = lines.indexOf("plain");
      assert.equal(lines[at + 1], "\x1b[31mwarned\x1b[39m", JSON.stringify(log.stdout));
      assert.ok(lines[at - 1].startsWith("\x1b[2m"), JSON.stringify(lines[at - 1]));
      assert.ok(lines[at - 1].endsWith("\x1b[22m"), JSON.stringify(lines[at - 1]));
      assert.match(lines[at - 1], / #\d+ worker_started: /);
      const plainLog = await onTty(["logs", "task-1/run-1"], { NO_COLOR: "1" });
      assert.match(plainLog.stdout, /\r?\nplain\r?\nwarned\r?\n/);
      assert.doesNotMatch(plainLog.stdout, ANSI);
    });
  });

  it("--storage defaults to the current directory's runs/", async (t) => {
    await withBackend(t, "fs", async (backend) => {
      await seedRun(backend.storage, "t-a", "r-1", "completed", new Date());
      const result = await runCli(["ls", "--json"], {}, { cwd: join(backend.dir, "repo") });
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(JSON.parse(result.stdout).map((r: { runId: string }) => r.runId), ["r-1"]);
    });
  });

  it("serve: the viewer on 127.0.0.1 lists the runs; another address without a token is refused", async (t) => {
    await withBackend(t, "fs", async (backend) => {
      await seedRun(backend.storage, "t-a", "r-served", "completed", new Date());
      const refused = await runCli(["serve", "--host", "0.0.0.0", "--port", "0", ...backend.args]);
      assert.equal(refused.code, 64);
      assert.match(
        refused.stderr,
        /^runs: serving on '0\.0\.0\.0' needs a token: set RUNS_VIEWER_TOKEN/,
      );
      assert.equal(refused.stderr.split("\n").filter(Boolean).length, 1);

      const child = startCli(["serve", "--port", "0", ...backend.args], backend.env);
      try {
        let stderr = "";
        child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
        const url = await new Promise<string>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no URL in: ${stderr}`)), 30_000);
          const check = () => {
            const found = /Viewer on (http:\/\/\S+)/.exec(stderr);
            if (found) {
              clearTimeout(timer);
              resolve(found[1]);
            }
          };
          child.stderr!.on("data", check);
          child.once("exit", () => reject(new Error(`serve exited: ${stderr}`)));
        });
        const page = await fetch(url);
        assert.equal(page.status, 200);
        const html = await page.text();
        assert.match(html, /r-served/);
        const runPage = await fetch(new URL("/runs/t-a/r-served", url));
        assert.equal(runPage.status, 200);
        await runPage.body?.cancel();
      } finally {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
    });
  });
});
