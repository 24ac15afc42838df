// The table of `runs` commands: each one's flags, positionals, help and implementation (in
// inspect.ts, logs.ts, git.ts, housekeeping.ts), and `serve`.

import type { ParseArgsConfig } from "node:util";
import { diff, restore } from "./git.ts";
import { intFlag, STALE_AFTER_HELP, STORAGE_HELP, stringFlag } from "./flags.ts";
import { prune, reap } from "./housekeeping.ts";
import { artifacts, ls, show } from "./inspect.ts";
import { eventsCommand, logsCommand } from "./logs.ts";
import type { CommandContext } from "./main.ts";
import { EXIT, UsageError } from "./usage.ts";

/** A command: its flags, how many positionals, its help, and what it does. */
export interface CommandSpec {
  /** One usage line. */
  usage: string;
  /** Flags besides `--storage`, `--runs-root` and `--help`. */
  options: NonNullable<ParseArgsConfig["options"]>;
  /** Positional arguments: at least, at most. */
  positionals: [number, number];
  /** The `--help` text. */
  help: string;
  /** Runs the command; resolves to the exit code. */
  run(context: CommandContext): Promise<number>;
}

async function serve(context: CommandContext): Promise<number> {
  const port = intFlag(context, "port", 8080)!;
  const host = stringFlag(context, "host") ?? "127.0.0.1";
  // A token on the command line would land in shell history and `ps`: the environment only.
  const token = context.env.RUNS_VIEWER_TOKEN || undefined;
  const loopback = ["127.0.0.1", "localhost", "::1", "[::1]"].includes(host);
  if (!loopback && token === undefined) {
    throw new UsageError(
      `serving on '${host}' needs a token: set RUNS_VIEWER_TOKEN (16+ characters); browsers then ` +
        "open the URL with ?token=... once",
    );
  }
  const allowed = context.values["allow-host"];
  const allowedHosts = (Array.isArray(allowed) ? allowed : allowed === undefined ? [] : [allowed])
    .map(String);
  const storageFlag = typeof context.values.storage === "string" ? context.values.storage : ".";
  const runsRoot = context.runsRootDir();
  // The viewer is loaded only here: importing the CLI (or mod.ts) never loads it.
  const { createRunViewer } = await import("../viewer/mod.ts");
  const handler = createRunViewer(context.storage(), {
    runsRootDir: runsRoot,
    ...(token !== undefined ? { token } : {}),
    ...(allowedHosts.length > 0 ? { allowedHosts } : {}),
    // The restore command a checkpoint shows names this storage, so it can be pasted as is.
    restoreCommand: ({ taskId, runId, seq }) =>
      [
        "runs restore",
        `${taskId}/${runId}`,
        `--seq ${seq}`,
        "--worktree DIR",
        storageFlag === "." ? "" : `--storage ${quote(storageFlag)}`,
        runsRoot === "runs" ? "" : `--runs-root ${quote(runsRoot)}`,
      ].filter(Boolean).join(" "),
  });
  const { serveHandler } = await import("./serve.ts");
  const server = await serveHandler(handler, { port, hostname: host });
  await context.output.note(`Viewer on ${server.url} (Ctrl-C stops it)`);
  await server.finished;
  return EXIT.ok;
}

/** Quotes a shell word when it needs it. */
function quote(word: string): string {
  return /^[A-Za-z0-9_./:@%+=-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

const JSON_FLAG = { json: { type: "boolean" } } as const;

/** Every command, by name. */
export const COMMANDS: Record<string, CommandSpec> = {
  ls: {
    usage: "runs ls [--task T] [--status S] [--liveness L] [--since 24h] [--limit N] [--json]",
    options: {
      task: { type: "string" },
      status: { type: "string", multiple: true },
      liveness: { type: "string", multiple: true },
      since: { type: "string" },
      limit: { type: "string" },
      "stale-after": { type: "string" },
      ...JSON_FLAG,
    },
    positionals: [0, 0],
    help: `Lists runs, newest first.

Usage: runs ls [flags]

  --task T             only this task's runs
  --status S           prepared, running, completed, failed, blocked (repeat or comma-separate)
  --liveness L         live, stale or finished (repeat or comma-separate)
  --since D            started within D (24h, 7d) or since a date (2026-12-01)
  --limit N            show the newest N runs (default 50; 0 shows all)
${STALE_AFTER_HELP}  --json               one JSON array
${STORAGE_HELP}
Columns: task, run, step, worker, attempt, status (/live or /stale while unfinished), started
(UTC), duration, exit (code or signal), truncated (output dropped over the byte cap).
Cost: one read of state.json per run in scope, one of meta.json per run shown.

Example: runs ls --status failed --since 24h --storage s3://my-bucket/prod
`,
    run: ls,
  },
  show: {
    usage: "runs show <task>/<run> [--json]",
    options: { "stale-after": { type: "string" }, ...JSON_FLAG },
    positionals: [1, 1],
    help: `Shows a run: metadata, state, heartbeat age, silence, exit code, signal and reason,
dropped bytes, checkpoints and artifacts.

Usage: runs show <task>/<run> [flags]

${STALE_AFTER_HELP}  --json               one JSON document
${STORAGE_HELP}`,
    run: show,
  },
  logs: {
    usage: "runs logs <task>/<run> [--stream stdout|stderr|worker|all] [-f] [--tail N]",
    options: {
      stream: { type: "string" },
      follow: { type: "boolean", short: "f" },
      tail: { type: "string" },
      "stale-after": { type: "string" },
      "poll": { type: "string" },
      ...JSON_FLAG,
    },
    positionals: [1, 1],
    help: `Prints a run's log from its start (the last N lines with --tail). The log goes to stdout,
status messages to stderr.

Usage: runs logs <task>/<run> [flags]

  --stream S           stdout, stderr, worker (lifecycle events as their rendered lines) or
                       all (default): the three interleaved in the order the worker printed
                       them, by the run's sequence numbers
  -f, --follow         keep printing as the run writes, until it ends; the exit code is then
                       the run's outcome: 0 completed, 1 failed, 2 blocked, 3 stale
  --tail N             only the last N lines (with all: of the interleaved view, events
                       included); then follow with -f
${STALE_AFTER_HELP}  --poll D             time between polls while following (default: 250ms)
  --json               JSON lines: {"channel","seq","line"} per line ({"channel","line"} with
                       --stream stdout|stderr), worker events whole
${STORAGE_HELP}
With --stream all each stream is cut into lines on its own, so a stdout line is never glued to
a stderr line: a line shows once its newline is stored, an unfinished one when the worker exits.
stderr is red and events dim on a terminal. Output stored before runs had an output index
(output-index.jsonl) shows after the events, before the last one. --stream stdout and stderr
print the stored bytes verbatim. Following, lines come a flush (about a second) at a time.

Example: runs logs task-42/run-001 -f --storage s3://my-bucket; echo "outcome $?"
`,
    run: logsCommand,
  },
  events: {
    usage: "runs events <task>/<run> [-f] [--json]",
    options: {
      follow: { type: "boolean", short: "f" },
      "stale-after": { type: "string" },
      "poll": { type: "string" },
      ...JSON_FLAG,
    },
    positionals: [1, 1],
    help: `Prints a run's lifecycle events (worker.log) as rendered lines.

Usage: runs events <task>/<run> [flags]

  -f, --follow         keep printing events and state changes until the run ends; the exit
                       code is the run's outcome: 0 completed, 1 failed, 2 blocked, 3 stale
${STALE_AFTER_HELP}  --poll D             time between polls while following (default: 250ms)
  --json               one JSON array; JSON lines ({"type": "event"|"state"|"stale"}) with -f
${STORAGE_HELP}`,
    run: eventsCommand,
  },
  artifacts: {
    usage: "runs artifacts <task>/<run> [get NAME [-o FILE]] [--json]",
    options: { output: { type: "string", short: "o" }, ...JSON_FLAG },
    positionals: [1, 3],
    help: `Lists a run's artifacts, or fetches one.

Usage: runs artifacts <task>/<run> [--json]
       runs artifacts <task>/<run> get NAME [-o FILE]

  -o, --output FILE    write the artifact to FILE (default: stdout)
  --json               one JSON array
${STORAGE_HELP}`,
    run: artifacts,
  },
  diff: {
    usage: "runs diff <task>/<run> [--seq N]",
    options: { seq: { type: "string" } },
    positionals: [1, 1],
    help: `Prints the patch of a git checkpoint (verified against its sha256): what the run changed
against its base commit. A one-line summary goes to stderr.

Usage: runs diff <task>/<run> [--seq N]

  --seq N              the checkpoint's sequence (default: the latest with a stored patch)
${STORAGE_HELP}
Example: runs diff task-42/run-001 | git apply --check
`,
    run: diff,
  },
  restore: {
    usage: "runs restore <task>/<run> --worktree DIR [--seq N] [--dry-run]",
    options: {
      worktree: { type: "string" },
      seq: { type: "string" },
      "dry-run": { type: "boolean" },
      ...JSON_FLAG,
    },
    positionals: [1, 1],
    help: `Applies a git checkpoint of a run to a work tree (3-way). The work tree must be clean and
hold the checkpoint's base commit; nothing is committed, cleaned or reset. Exit code 1 when
some paths were left with conflicts.

Usage: runs restore <task>/<run> --worktree DIR [flags]

  --worktree DIR       the work tree to restore into
  --seq N              the checkpoint's sequence (default: the latest with a stored patch)
  --dry-run            say whether it would apply, change nothing
  --json               one JSON document
${STORAGE_HELP}`,
    run: restore,
  },
  reap: {
    usage: "runs reap [--task T] [--dry-run]",
    options: {
      task: { type: "string" },
      "dry-run": { type: "boolean" },
      "stale-after": { type: "string" },
      ...JSON_FLAG,
    },
    positionals: [0, 0],
    help: `Closes stale runs (their writer stopped heartbeating: a killed process, a function that
timed out) as failed with reason 'abandoned'. Live and finished runs are not touched.

Usage: runs reap [flags]

  --task T             only this task's runs
  --dry-run            list the runs it would close, change nothing
${STALE_AFTER_HELP}  --json               one JSON document
${STORAGE_HELP}`,
    run: reap,
  },
  prune: {
    usage: "runs prune --older-than 30d [--status S] [--task T] [--keep-last N] [--dry-run]",
    options: {
      "older-than": { type: "string" },
      status: { type: "string", multiple: true },
      task: { type: "string" },
      "keep-last": { type: "string" },
      "reap-stale": { type: "boolean" },
      "dry-run": { type: "boolean" },
      "stale-after": { type: "string" },
      ...JSON_FLAG,
    },
    positionals: [0, 0],
    help: `Deletes finished runs that finished longer ago than --older-than. Live runs are never
touched; stale runs are left alone unless --reap-stale closes them first.

Usage: runs prune --older-than D [flags]

  --older-than D       finished more than D ago (30d, 12h, 0d for every finished run)
  --status S           only completed, failed or blocked runs (repeat or comma-separate)
  --task T             only this task's runs
  --keep-last N        keep each task's newest N finished runs whatever their age
  --reap-stale         close stale runs first, then prune them like finished ones
  --dry-run            list what would be deleted, delete nothing
${STALE_AFTER_HELP}  --json               one JSON document
${STORAGE_HELP}`,
    run: prune,
  },
  serve: {
    usage: "runs serve [--port N] [--host H] [--allow-host NAME]",
    options: {
      port: { type: "string" },
      host: { type: "string" },
      "allow-host": { type: "string", multiple: true },
    },
    positionals: [0, 0],
    help: `Starts the read-only web viewer over the storage.

Usage: runs serve [flags]

  --port N             port (default 8080; 0 picks a free one)
  --host H             address to bind (default 127.0.0.1: this machine only); any other
                       address needs RUNS_VIEWER_TOKEN (a bearer token, 16+ characters)
  --allow-host NAME    a Host header the viewer answers besides localhost (repeatable),
                       e.g. the name a proxy forwards
${STORAGE_HELP}`,
    run: serve,
  },
};
