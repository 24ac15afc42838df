// Retention: deleting runs explicitly. Nothing here runs on its own, a live run is never
// touched without `force`, and a stale run is reported (or reaped first when asked), never
// deleted silently.

import type { RunStorage } from "../storage/types.ts";
import { NotFoundError, RunConflictError } from "./errors.ts";
import { listRuns } from "./list.ts";
import { keysOf, mapLimited, readRunStatus, type RunLiveness, type RunRef } from "./read.ts";
import { reapRun } from "./reap.ts";
import { idSchema, parseOrThrow } from "./schemas.ts";
import { deleteKeys } from "./segments.ts";
import type { RunStateSnapshot, RunStatus } from "./types.ts";
import { z } from "zod";

/** Options of {@linkcode deleteRun}. */
export interface DeleteRunOptions {
  /** Delete even a live run (its writer will fail on its next write). Default `false`. */
  force?: boolean;
  /** A heartbeat older than this means stale, not live, in ms. Default 15,000. */
  staleAfterMs?: number;
  /** The time liveness is judged at. Default: now. */
  now?: Date | number;
}

/** What {@linkcode deleteRun} did. */
export interface DeleteRunResult {
  /** The run's liveness when it was deleted. */
  liveness: RunLiveness;
  /** How many keys were deleted (records, logs, segments, checkpoints, artifacts). */
  deletedKeys: number;
}

/** Options of {@linkcode pruneRuns}. */
export interface PruneRunsOptions {
  /**
   * Delete finished runs that finished before this time (a Date, an ISO string or epoch ms).
   * A run's age is its `finishedAt` (its last `updatedAt` when it has none).
   */
  olderThan: Date | string | number;
  /** Only this task's runs. */
  taskId?: string;
  /** Runs prefix (default `runs`). */
  runsRootDir?: string;
  /** Only runs with this status, or one of these (`completed`, `failed`, `blocked`). */
  status?: RunStatus | readonly RunStatus[];
  /**
   * Keep the most recently started N finished runs of each task (among those `status`
   * selects), whatever their age. Default 0.
   */
  keepLast?: number;
  /** Report what would be deleted; delete (and reap) nothing. Default `false`. */
  dryRun?: boolean;
  /**
   * Close stale runs first (`reapRun`: failed, `abandoned`), then treat them as finished at the
   * time they stopped. Without it stale runs are left alone and reported in `skipped`.
   * Default `false`.
   */
  reapStale?: boolean;
  /** A heartbeat older than this means stale, in ms. Default 15,000. */
  staleAfterMs?: number;
  /** The time liveness is judged at. Default: now. */
  now?: Date | number;
}

/** A run {@linkcode pruneRuns} deleted (or, with `dryRun`, would delete). */
export interface PrunedRun {
  /** Which run. */
  ref: RunRef;
  /** Its state when it was chosen. */
  state: RunStateSnapshot | undefined;
}

/** A run {@linkcode pruneRuns} left alone although it was in scope. */
export interface SkippedRun {
  /** Which run. */
  ref: RunRef;
  /**
   * `live`: still being written. `stale`: its writer died and nothing closed it (pass
   * `reapStale`). `kept`: one of the `keepLast` newest.
   */
  reason: "live" | "stale" | "kept";
}

/** What {@linkcode pruneRuns} did. */
export interface PruneResult {
  /** Whether this was a dry run (nothing deleted or reaped). */
  dryRun: boolean;
  /** Runs deleted (or that would be, on a dry run). */
  deleted: PrunedRun[];
  /** Stale runs closed by `reapStale` (or that would be, on a dry run). */
  reaped: RunRef[];
  /** Runs in scope left alone, and why. */
  skipped: SkippedRun[];
}

const when = z.union([
  z.date().refine((d) => !Number.isNaN(d.getTime()), "must be a valid date"),
  z.string().refine((s) => !Number.isNaN(Date.parse(s)), "must be an ISO date"),
  z.number().finite(),
]);
const STATUSES = ["prepared", "running", "completed", "failed", "blocked"] as const;
const DeleteRunOptionsSchema = z.strictObject({
  force: z.boolean().optional(),
  staleAfterMs: z.number().min(0).optional(),
  now: z.union([z.date(), z.number().finite()]).optional(),
});
const PruneRunsOptionsSchema = z.strictObject({
  olderThan: when,
  taskId: idSchema().optional(),
  runsRootDir: z.string().optional(),
  status: z.union([z.enum(STATUSES), z.array(z.enum(STATUSES)).min(1)]).optional(),
  keepLast: z.number().int().min(0).optional(),
  dryRun: z.boolean().optional(),
  reapStale: z.boolean().optional(),
  staleAfterMs: z.number().min(0).optional(),
  now: z.union([z.date(), z.number().finite()]).optional(),
});

/**
 * Deletes every key of a run: its records, logs, log segments, checkpoints and artifacts.
 * Refuses a live run unless `force` is set. `state.json` goes last, so a deletion cut short
 * leaves a run that lists as it was and can be deleted again.
 *
 * @param storage The storage the run lives on.
 * @param ref Which run.
 * @param options `force`, `staleAfterMs`, `now`.
 * @returns The run's liveness and how many keys were deleted.
 * @throws {RunConflictError} The run is live and `force` is not set.
 * @throws {NotFoundError} The run has no key at all.
 * @throws {ValidationError} A bad id or option, naming the field.
 *
 * @example
 * ```ts
 * import { createMemoryStorage, deleteRun, runStep } from "../mod.ts";
 * const storage = createMemoryStorage();
 * await runStep({
 *   taskId: "t", stepId: "s", stepName: "S", stepKind: "k", runId: "r", attempt: 1,
 *   workerKind: "script", timeoutSec: 10, runtime: { repoRoot: "/repo", worktreePath: "/repo" },
 * }, { execute: () => ({ ok: true, outcome: "completed", summary: "ok" }) }, { storage });
 * const result = await deleteRun(storage, { taskId: "t", runId: "r" });
 * console.log(result.liveness, result.deletedKeys > 0); // "finished" true
 * ```
 */
export async function deleteRun(
  storage: RunStorage,
  ref: RunRef,
  options: DeleteRunOptions = {},
): Promise<DeleteRunResult> {
  const keys = keysOf(ref);
  const o = parseOrThrow(DeleteRunOptionsSchema, options ?? {}, "Invalid delete options");
  const [status, all] = await Promise.all([
    readRunStatus(storage, keys, { staleAfterMs: o.staleAfterMs, now: o.now }),
    collect(storage.list(`${keys.runDir}/`)),
  ]);
  if (all.length === 0) {
    throw new NotFoundError(`Run '${ref.runId}' of task '${ref.taskId}' does not exist`, keys.meta);
  }
  const liveness = status.exists ? status.liveness : "stale";
  if (liveness === "live" && o.force !== true) {
    throw new RunConflictError(ref.taskId, ref.runId, {
      message:
        `Run '${ref.runId}' of task '${ref.taskId}' is live; pass { force: true } to delete it`,
    });
  }
  const records = new Set([keys.meta, keys.state]);
  await deleteKeys(storage, all.filter((key) => !records.has(key)));
  if (all.includes(keys.meta)) await storage.delete(keys.meta);
  if (all.includes(keys.state)) await storage.delete(keys.state);
  return { liveness, deletedKeys: all.length };
}

async function collect(iterable: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

const TERMINAL = new Set<RunStatus>(["completed", "failed", "blocked"]);

/**
 * Deletes the finished runs that finished before `olderThan`, optionally only one task's, only
 * some statuses, keeping the newest `keepLast` of each task. Live runs are never touched;
 * stale runs are left alone and reported unless `reapStale` closes them first. Runs are chosen
 * in one pass over `listRuns` and each is checked again right before it is deleted.
 *
 * @param storage The storage.
 * @param options `olderThan` (required), `taskId`, `status`, `keepLast`, `dryRun`,
 *   `reapStale`, `staleAfterMs`, `now`, `runsRootDir`.
 * @returns What was deleted (or would be), reaped, and skipped.
 * @throws {ValidationError} A bad option, naming the field.
 *
 * @example Delete a week's old failed runs, keeping the last 10 of each task
 * ```ts
 * import { createMemoryStorage, pruneRuns } from "../mod.ts";
 * const storage = createMemoryStorage();
 * const result = await pruneRuns(storage, {
 *   olderThan: Date.now() - 7 * 86_400_000, status: "failed", keepLast: 10, dryRun: true,
 * });
 * for (const run of result.deleted) console.log("would delete", run.ref.taskId, run.ref.runId);
 * for (const run of result.skipped) console.log("skipped", run.ref.runId, run.reason);
 * ```
 */
export async function pruneRuns(
  storage: RunStorage,
  options: PruneRunsOptions,
): Promise<PruneResult> {
  const o = parseOrThrow(PruneRunsOptionsSchema, options, "Invalid prune options");
  const cutoff = new Date(o.olderThan).getTime();
  const now = o.now ?? Date.now();
  const dryRun = o.dryRun === true;
  const statuses = o.status === undefined ? undefined : new Set<RunStatus>([o.status].flat());
  const keepLast = o.keepLast ?? 0;
  const result: PruneResult = { dryRun, deleted: [], reaped: [], skipped: [] };
  const refOf = (taskId: string, runId: string): RunRef =>
    o.runsRootDir === undefined ? { taskId, runId } : { taskId, runId, runsRootDir: o.runsRootDir };

  // Finished runs of the task being scanned: keepLast needs all of a task's runs at once, and
  // listRuns gives them task by task.
  let task: string | undefined;
  let finished: (PrunedRun & { endedAt: number })[] = [];
  const settleTask = () => {
    finished.sort((a, b) =>
      Date.parse(b.state?.startedAt ?? "") - Date.parse(a.state?.startedAt ?? "")
    );
    finished.forEach(({ endedAt, ...run }, index) => {
      if (Number.isNaN(endedAt) || endedAt >= cutoff) return;
      if (index < keepLast) result.skipped.push({ ref: run.ref, reason: "kept" });
      else result.deleted.push(run);
    });
    finished = [];
  };

  for await (
    const entry of listRuns(storage, {
      taskId: o.taskId,
      runsRootDir: o.runsRootDir,
      staleAfterMs: o.staleAfterMs,
      now,
    })
  ) {
    if (entry.taskId !== task) {
      settleTask();
      task = entry.taskId;
    }
    const ref = refOf(entry.taskId, entry.runId);
    let state = entry.state;
    // When it ended: finishedAt, else its last heartbeat (a stale run stopped then, whatever
    // time a reaper closes it at).
    let endedAt = Date.parse(state?.finishedAt ?? state?.updatedAt ?? "");
    if (entry.liveness === "live") {
      result.skipped.push({ ref, reason: "live" });
      continue;
    }
    if (entry.liveness === "stale") {
      if (o.reapStale !== true) {
        result.skipped.push({ ref, reason: "stale" });
        continue;
      }
      if (!dryRun) {
        const reaped = await reapRun(storage, ref, { staleAfterMs: o.staleAfterMs, now });
        if (!reaped.reaped && reaped.liveness !== "finished") {
          result.skipped.push({ ref, reason: reaped.liveness === "live" ? "live" : "stale" });
          continue;
        }
        state = reaped.state;
        if (Number.isNaN(endedAt)) endedAt = Date.parse(state?.finishedAt ?? "");
      }
      result.reaped.push(ref);
    }
    // A stale run not reaped yet (dry run) would be closed as failed.
    const status: RunStatus = entry.liveness === "stale" && dryRun
      ? "failed"
      : state?.status ?? "failed";
    if (!TERMINAL.has(status)) continue;
    if (statuses !== undefined && !statuses.has(status)) continue;
    finished.push({ ref, state, endedAt });
  }
  settleTask();

  if (!dryRun) {
    const outcomes = await mapLimited(result.deleted, async (run) => {
      try {
        await deleteRun(storage, run.ref, { staleAfterMs: o.staleAfterMs, now });
        return undefined;
      } catch (error) {
        // Came back to life, or a second pruner got there first: not deleted by this call.
        if (error instanceof RunConflictError) return { ref: run.ref, reason: "live" as const };
        if (error instanceof NotFoundError) return { ref: run.ref, reason: undefined };
        throw error;
      }
    }, 8);
    const dropped = new Set<PrunedRun>();
    outcomes.forEach((outcome, index) => {
      if (outcome === undefined) return;
      dropped.add(result.deleted[index]);
      if (outcome.reason !== undefined) result.skipped.push({ ref: outcome.ref, reason: "live" });
    });
    result.deleted = result.deleted.filter((run) => !dropped.has(run));
  }
  return result;
}
