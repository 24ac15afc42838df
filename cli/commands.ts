// The `runs` commands other than following: ls, show, artifacts, diff, restore, reap, prune,
// serve. Each reads its flags from the context and returns an exit code.

import type { ParseArgsConfig } from "node:util";
import { NotFoundError } from "../core/errors.ts";
import { listRuns } from "../core/list.ts";
import {
  keysOf,
  mapLimited,
  readJson,
  readRun,
  type RunLiveness,
  runLiveness,
  type RunRef,
} from "../core/read.ts";
import { reapRuns } from "../core/reap.ts";
import { pruneRuns } from "../core/retention.ts";
import { RunMetadataSchema } from "../core/schemas.ts";
import type { RunMetadata, RunStateSnapshot, RunStatus } from "../core/types.ts";
import {
  type GitCheckpointData,
  loadGitCheckpoint,
  restoreCheckpoint,
} from "../git/checkpoints.ts";
import { formatBytes, formatDuration, formatTime, parseDuration, table } from "./format.ts";
import { eventsCommand, logsCommand } from "./logs.ts";
import type { CommandContext } from "./main.ts";
import type { Styles } from "./output.ts";
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

const STORAGE_HELP = `Storage:
  --storage DIR|s3://BUCKET[/PREFIX]   where the runs are (default: .; see 'runs --help')
  --runs-root P                        runs folder or key prefix (default: runs)
`;

const STATUSES: readonly RunStatus[] = ["prepared", "running", "completed", "failed", "blocked"];
const LIVENESSES: readonly RunLiveness[] = ["live", "finished", "stale"];

// ---- flag helpers ----------------------------------------------------------------------

/** A string flag's value. */
export function stringFlag(context: CommandContext, name: string): string | undefined {
  const value = context.values[name];
  return typeof value === "string" ? value : undefined;
}

/** A duration flag in ms (`30d`, `24h`, `0d`), or `fallback`. */
export function durationFlag(
  context: CommandContext,
  name: string,
  fallback?: number,
): number | undefined {
  const text = stringFlag(context, name);
  if (text === undefined) return fallback;
  const ms = parseDuration(text);
  if (ms === undefined) {
    throw new UsageError(`--${name} '${text}' is not a duration (like 30s, 10m, 24h, 30d)`);
  }
  return ms;
}

/** A non-negative integer flag, or `fallback`. */
export function intFlag(
  context: CommandContext,
  name: string,
  fallback?: number,
): number | undefined {
  const text = stringFlag(context, name);
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text)) throw new UsageError(`--${name} '${text}' is not a whole number`);
  return Number(text);
}

/** Values of a repeatable, comma-separable flag, checked against `allowed`. */
function listFlag<T extends string>(
  context: CommandContext,
  name: string,
  allowed: readonly T[],
): T[] | undefined {
  const raw = context.values[name];
  if (raw === undefined) return undefined;
  const values = [raw].flat().flatMap((v) => String(v).split(",")).map((v) => v.trim())
    .filter((v) => v !== "");
  for (const value of values) {
    if (!allowed.includes(value as T)) {
      throw new UsageError(`--${name} '${value}' is not one of ${allowed.join(", ")}`);
    }
  }
  return values as T[];
}

/** `<task>/<run>` from the first positional. */
export function runRef(context: CommandContext, text = context.positionals[0]): RunRef {
  const parts = (text ?? "").split("/");
  if (parts.length !== 2 || parts[0] === "" || parts[1] === "") {
    throw new UsageError(`'${text ?? ""}' is not a run; give it as <task>/<run>`);
  }
  return { taskId: parts[0], runId: parts[1], runsRootDir: context.runsRootDir() };
}

/** Writes a JSON document (one line per document when following). */
export function json(context: CommandContext, value: unknown, pretty = true): Promise<void> {
  return context.output.out(`${JSON.stringify(value, null, pretty ? 2 : undefined)}\n`);
}

/** The default staleness threshold and its flag. */
export const STALE_AFTER_HELP =
  "  --stale-after D      a run without a heartbeat for D is stale (default: 15s)\n";

/** A status coloured by what it means. */
export function statusText(
  state: RunStateSnapshot | undefined,
  liveness: RunLiveness,
  style: Styles,
): string {
  const status = state?.status ?? "unknown";
  if (liveness === "stale") return style.red(`${status}/stale`);
  if (liveness === "live") return style.cyan(`${status}/live`);
  if (status === "completed") return style.green(status);
  if (status === "failed") return style.red(status);
  if (status === "blocked") return style.yellow(status);
  return status;
}

/** Wall time of a run so far: to its end, its last heartbeat (stale) or now (live). */
function durationOf(state: RunStateSnapshot | undefined, liveness: RunLiveness, now: number) {
  const start = Date.parse(state?.startedAt ?? "");
  if (state === undefined || Number.isNaN(start)) return undefined;
  const end = state.finishedAt !== undefined
    ? Date.parse(state.finishedAt)
    : liveness === "live"
    ? now
    : Date.parse(state.updatedAt);
  return Number.isNaN(end) ? undefined : end - start;
}

function dropped(state: RunStateSnapshot | undefined): number {
  return (state?.droppedBytes?.stdout ?? 0) + (state?.droppedBytes?.stderr ?? 0);
}

// ---- ls ------------------------------------------------------------------------------

async function ls(context: CommandContext): Promise<number> {
  const storage = context.storage();
  const staleAfterMs = durationFlag(context, "stale-after", 15_000);
  const sinceText = stringFlag(context, "since");
  let since: number | undefined;
  if (sinceText !== undefined) {
    const ms = parseDuration(sinceText);
    since = ms !== undefined ? Date.now() - ms : Date.parse(sinceText);
    if (Number.isNaN(since)) {
      throw new UsageError(`--since '${sinceText}' is neither a duration (24h) nor a date`);
    }
  }
  const limit = intFlag(context, "limit", 50)!;
  const now = Date.now();
  const entries = [];
  for await (
    const entry of listRuns(storage, {
      taskId: stringFlag(context, "task"),
      runsRootDir: context.runsRootDir(),
      status: listFlag(context, "status", STATUSES),
      liveness: listFlag(context, "liveness", LIVENESSES),
      since,
      staleAfterMs,
      now,
    })
  ) entries.push(entry);
  // Newest first: by start time, then by ids (runs without a state last).
  entries.sort((a, b) =>
    (b.state?.startedAt ?? "").localeCompare(a.state?.startedAt ?? "") ||
    a.taskId.localeCompare(b.taskId) || b.runId.localeCompare(a.runId)
  );
  const shown = limit === 0 ? entries : entries.slice(0, limit);
  const metas = await mapLimited(
    shown,
    (entry) =>
      readJson(
        storage,
        keysOf({ ...entry, runsRootDir: context.runsRootDir() }).meta,
        RunMetadataSchema,
      )
        .catch(() => undefined as RunMetadata | undefined),
  );
  const rows = shown.map((entry, i) => {
    const state = entry.state;
    return {
      taskId: entry.taskId,
      runId: entry.runId,
      stepId: metas[i]?.stepId ?? null,
      workerKind: metas[i]?.workerKind ?? null,
      attempt: state?.attempt ?? metas[i]?.attempt ?? null,
      status: state?.status ?? null,
      liveness: entry.liveness,
      startedAt: state?.startedAt ?? null,
      finishedAt: state?.finishedAt ?? null,
      durationMs: durationOf(state, entry.liveness, now) ?? null,
      exitCode: state?.exitCode ?? null,
      signal: state?.signal ?? null,
      reason: state?.reason ?? null,
      truncated: dropped(state) > 0,
      droppedBytes: state?.droppedBytes ?? { stdout: 0, stderr: 0 },
      summary: state?.summary ?? null,
    };
  });
  if (context.values.json) {
    await json(context, rows);
    return EXIT.ok;
  }
  if (rows.length === 0) {
    await context.output.note("No runs found.");
    return EXIT.ok;
  }
  const s = context.style;
  await context.output.out(table(
    [
      "TASK",
      "RUN",
      "STEP",
      "WORKER",
      "ATTEMPT",
      "STATUS",
      "STARTED",
      "DURATION",
      "EXIT",
      "TRUNCATED",
    ],
    rows.map((row, i) => [
      row.taskId,
      row.runId,
      row.stepId ?? "-",
      row.workerKind ?? "-",
      String(row.attempt ?? "-"),
      statusText(shown[i].state, row.liveness, s),
      formatTime(row.startedAt ?? undefined),
      row.durationMs === null ? "-" : formatDuration(row.durationMs),
      row.exitCode !== null ? String(row.exitCode) : row.signal ?? "-",
      row.truncated ? s.yellow("yes") : "",
    ]),
    s,
  ));
  if (limit !== 0 && entries.length > limit) {
    await context.output.note(
      `(${entries.length - limit} older runs not shown; --limit 0 shows all)`,
    );
  }
  return EXIT.ok;
}

// ---- show ----------------------------------------------------------------------------

function checkpointLine(
  record: { seq: number; type: string; createdAt: string; summary: string; data: unknown },
): string {
  if (record.type === "git_diff") {
    const data = record.data as unknown as GitCheckpointData;
    const stats = `${data.stats.files} files +${data.stats.insertions} -${data.stats.deletions}`;
    const patch = data.patch === null
      ? "no patch (over maxPatchBytes)"
      : data.patch.deletedAt !== undefined
      ? "patch deleted by retention"
      : formatBytes(data.patch.bytes);
    return `#${record.seq}  git_diff  ${
      formatTime(record.createdAt)
    }  ${data.trigger}, ${stats}, ${patch}`;
  }
  return `#${record.seq}  ${record.type}  ${formatTime(record.createdAt)}  ${record.summary}`;
}

async function show(context: CommandContext): Promise<number> {
  const ref = runRef(context);
  const staleAfterMs = durationFlag(context, "stale-after", 15_000);
  const run = await readRun(context.storage(), ref);
  const now = Date.now();
  const state = run.state;
  const liveness = runLiveness(state, { now, staleAfterMs });
  const heartbeatAgeMs = state === undefined ? null : now - Date.parse(state.updatedAt);
  const lastOutput = state?.lastOutputAt ?? state?.startedAt;
  const silenceMs = liveness === "finished" || lastOutput === undefined
    ? null
    : now - Date.parse(lastOutput);
  if (context.values.json) {
    await json(context, {
      metadata: run.metadata,
      state: state ?? null,
      liveness,
      heartbeatAgeMs,
      silenceMs,
      checkpoints: run.checkpoints,
      artifacts: run.artifacts,
      paths: run.paths,
    });
    return EXIT.ok;
  }
  const s = context.style;
  const m = run.metadata;
  const lines: [string, string][] = [
    ["Run", `${m.taskId}/${m.runId}`],
    ["Step", `${m.stepId} (${m.stepName})`],
    ["Worker", `${m.workerKind}, attempt ${m.attempt}`],
    ["Status", statusText(state, liveness, s)],
  ];
  if (state?.summary) lines.push(["Summary", state.summary]);
  lines.push(["Started", formatTime(state?.startedAt ?? m.createdAt)]);
  if (state?.finishedAt) lines.push(["Finished", formatTime(state.finishedAt)]);
  const duration = durationOf(state, liveness, now);
  if (duration !== undefined) lines.push(["Duration", formatDuration(duration)]);
  if (heartbeatAgeMs !== null) {
    lines.push([
      "Heartbeat",
      `${formatDuration(heartbeatAgeMs)} ago (${formatTime(state!.updatedAt)})${
        liveness === "stale" ? s.red(" — stale: its writer stopped heartbeating") : ""
      }`,
    ]);
  }
  if (silenceMs !== null) {
    lines.push([
      "Silence",
      `${formatDuration(silenceMs)} ${
        state?.lastOutputAt ? `since its last output` : "(no output yet)"
      }`,
    ]);
  } else if (state?.lastOutputAt) lines.push(["Last output", formatTime(state.lastOutputAt)]);
  const exit = [
    state?.exitCode !== undefined ? `code ${state.exitCode}` : undefined,
    state?.signal !== undefined ? `signal ${state.signal}` : undefined,
    state?.reason !== undefined ? `reason ${state.reason}` : undefined,
  ].filter((part) => part !== undefined);
  if (exit.length > 0) lines.push(["Exit", exit.join(", ")]);
  lines.push([
    "Output",
    `stdout ${formatBytes(state?.stdoutBytes ?? 0)}, stderr ${
      formatBytes(state?.stderrBytes ?? 0)
    }`,
  ]);
  if (dropped(state) > 0) {
    lines.push([
      "Dropped",
      s.yellow(
        `stdout ${formatBytes(state!.droppedBytes!.stdout)}, stderr ${
          formatBytes(state!.droppedBytes!.stderr)
        } (over the byte cap)`,
      ),
    ]);
  }
  if (m.command !== undefined) {
    lines.push(["Command", Array.isArray(m.command) ? m.command.join(" ") : m.command]);
  }
  if (m.resumedFrom) {
    lines.push(["Resumed", `from ${m.resumedFrom.runId} checkpoint #${m.resumedFrom.seq}`]);
  }
  const owner = state?.owner;
  if (owner?.host || owner?.pid) {
    lines.push([
      "Owner",
      [owner.host, owner.pid && `pid ${owner.pid}`, owner.runtime].filter(Boolean).join(", "),
    ]);
  }
  lines.push(["Location", run.paths.runDir]);
  let text = lines.map(([label, value]) => `${s.bold(label.padEnd(12))}${value}\n`).join("");
  text += `${s.bold("Checkpoints")}${run.checkpoints.length === 0 ? "  none" : ""}\n`;
  for (const record of run.checkpoints) text += `  ${checkpointLine(record)}\n`;
  text += `${s.bold("Artifacts")}${run.artifacts.length === 0 ? "    none" : ""}\n`;
  for (const artifact of run.artifacts) {
    text += `  ${artifact.name}  ${artifact.kind}  ${formatBytes(artifact.size)}${
      artifact.description ? `  ${artifact.description}` : ""
    }\n`;
  }
  await context.output.out(text);
  return EXIT.ok;
}

// ---- artifacts -----------------------------------------------------------------------

async function artifacts(context: CommandContext): Promise<number> {
  const ref = runRef(context);
  const [, verb, name] = context.positionals;
  if (verb !== undefined && verb !== "get") {
    throw new UsageError(`unknown artifacts action '${verb}' (only 'get NAME')`);
  }
  if (verb === "get") {
    if (name === undefined) {
      throw new UsageError("usage: runs artifacts <task>/<run> get NAME [-o FILE]");
    }
    const storage = context.storage();
    const keys = keysOf(ref);
    const key = `${keys.artifactsDir}/${name}`;
    const bytes = await storage.read(key);
    if (bytes === undefined) {
      if (await storage.read(keys.meta) === undefined) {
        throw new NotFoundError(
          `Run '${ref.runId}' of task '${ref.taskId}' does not exist`,
          keys.meta,
        );
      }
      throw new NotFoundError(`Run '${ref.runId}' has no artifact '${name}'`, key);
    }
    const file = stringFlag(context, "output");
    if (file === undefined || file === "-") {
      await context.output.out(bytes);
    } else {
      const { writeFile } = await import("node:fs/promises");
      await writeFile(file, bytes);
      await context.output.note(`Wrote ${formatBytes(bytes.byteLength)} to ${file}`);
    }
    return EXIT.ok;
  }
  const run = await readRun(context.storage(), ref);
  if (context.values.json) {
    await json(context, run.artifacts);
    return EXIT.ok;
  }
  if (run.artifacts.length === 0) {
    await context.output.note("No artifacts.");
    return EXIT.ok;
  }
  await context.output.out(table(
    ["NAME", "KIND", "SIZE", "DESCRIPTION"],
    run.artifacts.map((a) => [a.name, a.kind, formatBytes(a.size), a.description ?? ""]),
    context.style,
  ));
  return EXIT.ok;
}

// ---- diff and restore ----------------------------------------------------------------

async function diff(context: CommandContext): Promise<number> {
  const ref = runRef(context);
  const seq = intFlag(context, "seq");
  const { record, data, patch } = await loadGitCheckpoint(context.storage(), ref, seq);
  await context.output.note(
    `git checkpoint #${record.seq} (${data.trigger}) against ${
      data.baseCommit.slice(0, 12)
    }: ${data.stats.files} files +${data.stats.insertions} -${data.stats.deletions}`,
  );
  if (!context.output.colour) {
    await context.output.out(patch);
    return EXIT.ok;
  }
  const s = context.style;
  const text = new TextDecoder().decode(patch).split("\n").map((line) =>
    line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff ")
      ? s.bold(line)
      : line.startsWith("+")
      ? s.green(line)
      : line.startsWith("-")
      ? s.red(line)
      : line.startsWith("@@")
      ? s.cyan(line)
      : line
  ).join("\n");
  await context.output.out(text);
  return EXIT.ok;
}

async function restore(context: CommandContext): Promise<number> {
  const ref = runRef(context);
  const worktree = stringFlag(context, "worktree");
  if (worktree === undefined) throw new UsageError("restore needs --worktree DIR");
  const dryRun = context.values["dry-run"] === true;
  const result = await restoreCheckpoint(context.storage(), ref, {
    worktree,
    seq: intFlag(context, "seq"),
    dryRun,
  });
  const code = result.conflicts.length > 0 ? EXIT.failed : EXIT.ok;
  if (context.values.json) {
    await json(context, { ...result, dryRun, worktree });
    return code;
  }
  const s = context.style;
  const what = `git checkpoint #${result.seq} of ${ref.taskId}/${ref.runId} (base ${
    result.baseCommit.slice(0, 12)
  })`;
  let text = dryRun
    ? `Would apply ${what} to ${worktree}: ${
      result.conflicts.length === 0 ? "applies cleanly" : "with conflicts"
    }\n`
    : `${
      result.conflicts.length === 0 ? "Restored" : "Restored with conflicts"
    } ${what} into ${worktree}\n`;
  for (const path of result.conflicts) text += `  ${s.red("conflict")}  ${path}\n`;
  for (const excluded of result.excluded) {
    text += `  ${s.yellow("not restored")}  ${excluded.path} (${excluded.reason})\n`;
  }
  await context.output.out(text);
  return code;
}

// ---- reap and prune ------------------------------------------------------------------

async function reap(context: CommandContext): Promise<number> {
  const storage = context.storage();
  const staleAfterMs = durationFlag(context, "stale-after", 15_000)!;
  const taskId = stringFlag(context, "task");
  const dryRun = context.values["dry-run"] === true;
  const s = context.style;
  type Row = { taskId: string; runId: string; status: string | null; updatedAt: string | null };
  let rows: Row[];
  if (dryRun) {
    rows = [];
    for await (
      const entry of listRuns(storage, {
        taskId,
        runsRootDir: context.runsRootDir(),
        liveness: "stale",
        staleAfterMs,
      })
    ) {
      rows.push({
        taskId: entry.taskId,
        runId: entry.runId,
        status: entry.state?.status ?? null,
        updatedAt: entry.state?.updatedAt ?? null,
      });
    }
  } else {
    const results = await reapRuns(storage, {
      taskId,
      runsRootDir: context.runsRootDir(),
      staleAfterMs,
    });
    rows = results.filter((r) => r.reaped).map((r) => ({
      taskId: r.taskId,
      runId: r.runId,
      status: r.state?.status ?? null,
      updatedAt: r.state?.updatedAt ?? null,
    }));
  }
  if (context.values.json) {
    await json(context, { dryRun, [dryRun ? "wouldReap" : "reaped"]: rows });
    return EXIT.ok;
  }
  if (rows.length === 0) {
    await context.output.out("No stale runs.\n");
    return EXIT.ok;
  }
  const now = Date.now();
  await context.output.out(
    `${dryRun ? "Would reap" : "Reaped"} ${rows.length} stale run${rows.length === 1 ? "" : "s"}${
      dryRun ? " (dry run: nothing changed)" : " (now failed, reason abandoned)"
    }:\n` +
      table(
        ["TASK", "RUN", "STATUS", "LAST HEARTBEAT"],
        rows.map((r) => [
          r.taskId,
          r.runId,
          r.status ?? "-",
          r.updatedAt === null ? "never" : `${formatDuration(now - Date.parse(r.updatedAt))} ago`,
        ]),
        s,
      ),
  );
  return EXIT.ok;
}

async function prune(context: CommandContext): Promise<number> {
  const olderThan = durationFlag(context, "older-than");
  if (olderThan === undefined) throw new UsageError("prune needs --older-than D (like 30d)");
  const dryRun = context.values["dry-run"] === true;
  const result = await pruneRuns(context.storage(), {
    olderThan: Date.now() - olderThan,
    taskId: stringFlag(context, "task"),
    runsRootDir: context.runsRootDir(),
    status: listFlag(context, "status", STATUSES),
    keepLast: intFlag(context, "keep-last"),
    dryRun,
    reapStale: context.values["reap-stale"] === true,
    staleAfterMs: durationFlag(context, "stale-after", 15_000),
  });
  const deleted = result.deleted.map((run) => ({
    taskId: run.ref.taskId,
    runId: run.ref.runId,
    status: run.state?.status ?? null,
    finishedAt: run.state?.finishedAt ?? run.state?.updatedAt ?? null,
  }));
  const reaped = result.reaped.map((ref) => ({ taskId: ref.taskId, runId: ref.runId }));
  const skipped = result.skipped.map((skip) => ({
    taskId: skip.ref.taskId,
    runId: skip.ref.runId,
    reason: skip.reason,
  }));
  if (context.values.json) {
    await json(context, { dryRun, [dryRun ? "wouldDelete" : "deleted"]: deleted, reaped, skipped });
    return EXIT.ok;
  }
  const s = context.style;
  let text = `${dryRun ? "Would delete" : "Deleted"} ${deleted.length} run${
    deleted.length === 1 ? "" : "s"
  }${dryRun ? " (dry run: nothing changed)" : ""}${deleted.length > 0 ? ":" : "."}\n`;
  if (deleted.length > 0) {
    text += table(
      ["TASK", "RUN", "STATUS", "FINISHED"],
      deleted.map((
        r,
      ) => [r.taskId, r.runId, r.status ?? "-", formatTime(r.finishedAt ?? undefined)]),
      s,
    );
  }
  if (reaped.length > 0) {
    text += `${dryRun ? "Would reap first" : "Reaped first"}: ${
      reaped.map((r) => `${r.taskId}/${r.runId}`).join(", ")
    }\n`;
  }
  if (skipped.length > 0) {
    text += `Left alone: ${
      skipped.map((r) => `${r.taskId}/${r.runId} (${r.reason})`).join(", ")
    }\n`;
  }
  await context.output.out(text);
  return EXIT.ok;
}

// ---- serve ---------------------------------------------------------------------------

async function serve(context: CommandContext): Promise<number> {
  const port = intFlag(context, "port", 8080)!;
  const host = stringFlag(context, "host") ?? "127.0.0.1";
  // The viewer is loaded only here: importing the CLI (or mod.ts) never loads it.
  const own = import.meta.url;
  const specifier = new URL(`../viewer/mod${own.endsWith(".ts") ? ".ts" : ".js"}`, own).href;
  let viewer: { createRunViewer?: unknown };
  try {
    viewer = await import(specifier);
  } catch (error) {
    const message = String((error as Error)?.message ?? error);
    if (/viewer\/mod\.(ts|js)/.test(message) && /not found|cannot find|no such/i.test(message)) {
      throw new Error("the web viewer is not part of this build (viewer/mod.ts is missing)");
    }
    throw error;
  }
  if (typeof viewer.createRunViewer !== "function") {
    throw new Error("the web viewer module does not export createRunViewer");
  }
  const handler = (viewer.createRunViewer as (
    storage: unknown,
    options?: { runsRootDir?: string },
  ) => (request: Request) => Promise<Response>)(context.storage(), {
    runsRootDir: context.runsRootDir(),
  });
  const { serveHandler } = await import("./serve.ts");
  const server = await serveHandler(handler, { port, hostname: host });
  await context.output.note(`Viewer on ${server.url} (Ctrl-C stops it)`);
  await server.finished;
  return EXIT.ok;
}

// ---- the table of commands -----------------------------------------------------------

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
                       all (default): the three together, events in sequence order
  -f, --follow         keep printing as the run writes, until it ends; the exit code is then
                       the run's outcome: 0 completed, 1 failed, 2 blocked, 3 stale
  --tail N             only the last N lines (then follow with -f)
${STALE_AFTER_HELP}  --poll D             time between polls while following (default: 250ms)
  --json               JSON lines: {"channel","line"} per line, worker events whole
${STORAGE_HELP}
stdout and stderr are stored without per-chunk sequence numbers: with --stream all a finished
log prints events up to the worker's start, then stdout, then stderr, then the rest; while
following, lines appear in the order they are stored (flushed about once a second).

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
    usage: "runs serve [--port N] [--host H]",
    options: { port: { type: "string" }, host: { type: "string" } },
    positionals: [0, 0],
    help: `Starts the read-only web viewer over the storage.

Usage: runs serve [flags]

  --port N             port (default 8080; 0 picks a free one)
  --host H             address to bind (default 127.0.0.1: this machine only)
${STORAGE_HELP}`,
    run: serve,
  },
};
