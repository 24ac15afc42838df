// Reading runs: `runs ls`, `runs show` and `runs artifacts`.

import { NotFoundError } from "../core/errors.ts";
import { listRuns } from "../core/list.ts";
import { keysOf, mapLimited, readJson, readRun, runLiveness } from "../core/read.ts";
import { RunMetadataSchema } from "../core/schemas.ts";
import type { RunMetadata } from "../core/types.ts";
import type { GitCheckpointData } from "../git/checkpoints.ts";
import {
  dropped,
  durationFlag,
  durationOf,
  intFlag,
  json,
  listFlag,
  LIVENESSES,
  runRef,
  STATUSES,
  statusText,
  stringFlag,
} from "./flags.ts";
import { formatBytes, formatDuration, formatTime, parseDuration, table } from "./format.ts";
import type { CommandContext } from "./main.ts";
import { EXIT, UsageError } from "./usage.ts";

/** `runs ls`. */
export async function ls(context: CommandContext): Promise<number> {
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

/** `runs show`. */
export async function show(context: CommandContext): Promise<number> {
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

/** `runs artifacts`. */
export async function artifacts(context: CommandContext): Promise<number> {
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
