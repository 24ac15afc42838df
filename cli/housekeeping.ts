// Housekeeping: `runs reap` closes stale runs, `runs prune` deletes old finished ones.

import { listRuns } from "../core/list.ts";
import { reapRuns } from "../core/reap.ts";
import { pruneRuns } from "../core/retention.ts";
import { durationFlag, intFlag, json, listFlag, STATUSES, stringFlag } from "./flags.ts";
import { formatDuration, formatTime, table } from "./format.ts";
import type { CommandContext } from "./main.ts";
import { EXIT, UsageError } from "./usage.ts";

/** `runs reap`. */
export async function reap(context: CommandContext): Promise<number> {
  const storage = context.storage();
  const staleAfterMs = durationFlag(context, "stale-after", 15_000)!;
  const taskId = stringFlag(context, "task");
  const dryRun = context.values["dry-run"] === true;
  const s = context.style;
  type Row = { taskId: string; runId: string; status: string | null; updatedAt: string | null };
  // The stale runs as they are now: what a dry run reports, and the last heartbeat each had
  // before reaping (a reaped run's updatedAt is the reap's own time).
  const stale: Row[] = [];
  for await (
    const entry of listRuns(storage, {
      taskId,
      runsRootDir: context.runsRootDir(),
      liveness: "stale",
      staleAfterMs,
    })
  ) {
    stale.push({
      taskId: entry.taskId,
      runId: entry.runId,
      status: entry.state?.status ?? null,
      updatedAt: entry.state?.updatedAt ?? null,
    });
  }
  let rows = stale;
  if (!dryRun) {
    const results = await reapRuns(storage, {
      taskId,
      runsRootDir: context.runsRootDir(),
      staleAfterMs,
    });
    const before = new Map(stale.map((row) => [`${row.taskId}/${row.runId}`, row.updatedAt]));
    rows = results.filter((r) => r.reaped).map((r) => ({
      taskId: r.taskId,
      runId: r.runId,
      status: r.state?.status ?? null,
      updatedAt: before.get(`${r.taskId}/${r.runId}`) ?? null,
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

/** `runs prune`. */
export async function prune(context: CommandContext): Promise<number> {
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
