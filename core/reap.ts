// Recovery: closing a run whose writer died. A stale run gets a terminal record (failed,
// "abandoned", or the outcome its writer had already logged), fenced so a late writer or a second
// reaper cannot overwrite it.

import type { RunStorage } from "../storage/types.ts";
import { guardStorage } from "../storage/guard.ts";
import { concatBytes, encodeText } from "./bytes.ts";
import { isPreconditionFailed, NotFoundError, ValidationError } from "./errors.ts";
import { createRunKeys, logKey, normalizePrefix, type StoredLog } from "./layout.ts";
import { renderLifecycleLine } from "./log-session.ts";
import { listRuns } from "./list.ts";
import { TERMINAL_EVENT } from "./outcome.ts";
import { parseOutputIndex } from "./output.ts";
import { parseEvents, type RunLiveness, runLiveness, type RunRef } from "./read.ts";
import { indexEntries, indexLine } from "./run-writer.ts";
import { IdSchema, parseOrThrow, RunMetadataSchema, RunStateSnapshotSchema } from "./schemas.ts";
import { composeLog, deleteKeys, listSegments } from "./segments.ts";
import type {
  OutputIndexEntry,
  RunKeys,
  RunMetadata,
  RunStateSnapshot,
  RunStatus,
  StreamLogChannel,
  StructuredData,
  WorkerLifecycleLogEntry,
} from "./types.ts";

/** Options of {@linkcode reapRun}. */
export interface ReapRunOptions {
  /** A run without a heartbeat for this long is dead (default 15 000 ms). */
  staleAfterMs?: number;
  /** The time to judge by and to record (default: now); a `Date` or epoch milliseconds. */
  now?: Date | number;
}

/** What {@linkcode reapRun} found and did. */
export interface ReapResult {
  /** Whether this call closed the run. */
  reaped: boolean;
  /** The liveness the run had when it was looked at. */
  liveness: RunLiveness;
  /** `state.json` after the call (the terminal record when `reaped`). */
  state: RunStateSnapshot | undefined;
}

/** Options of {@linkcode reapRuns}. */
export interface ReapRunsOptions extends ReapRunOptions {
  /** Only this task's runs. */
  taskId?: string;
  /** Runs prefix (default `runs`). */
  runsRootDir?: string;
  /** Runs reaped at once (default 8). */
  concurrency?: number;
}

/** One run of {@linkcode reapRuns}. */
export interface ReapRunsEntry extends ReapResult {
  /** Task id. */
  taskId: string;
  /** Run id. */
  runId: string;
}

const DEFAULT_STALE_AFTER_MS = 15_000;
// The terminal event of each outcome, looked up the other way: event type to the status it sets.
const TERMINAL: Partial<Record<string, RunStatus>> = Object.fromEntries(
  Object.entries(TERMINAL_EVENT).map(([outcome, type]) => [type, outcome as RunStatus]),
);
const LOGS: readonly StoredLog[] = ["stdout", "stderr", "index", "worker"];
const STREAMS: readonly StreamLogChannel[] = ["stdout", "stderr"];
const decoder = new TextDecoder();

function epochMs(now: Date | number | undefined): number {
  if (now === undefined) return Date.now();
  const ms = typeof now === "number" ? now : now.getTime();
  if (!Number.isFinite(ms)) {
    throw new ValidationError([{ path: "now", message: "must be a valid Date or epoch ms" }]);
  }
  return ms;
}

function parseJson(bytes: Uint8Array | undefined): unknown {
  if (bytes === undefined) return undefined;
  try {
    return JSON.parse(decoder.decode(bytes));
  } catch {
    return undefined;
  }
}

/** A log as the reaper finds it: its whole object when composed, else its segments. */
interface FoundLog {
  key: string;
  whole: Uint8Array | undefined;
  segments: string[];
  segmentBytes: Uint8Array[];
}

async function findLog(storage: RunStorage, keys: RunKeys, channel: StoredLog) {
  const key = logKey(keys, channel);
  const [whole, segments] = await Promise.all([storage.read(key), listSegments(storage, key)]);
  const found: FoundLog = { key, whole, segments, segmentBytes: [] };
  // Only the lifecycle log's and the index's segments are needed in memory (to find the last
  // event, to repair the index); output segments are streamed into the composed log.
  if (whole === undefined && (channel === "worker" || channel === "index")) {
    for (const segment of segments) {
      found.segmentBytes.push(await storage.read(segment) ?? new Uint8Array(0));
    }
  }
  return found;
}

async function lastCheckpointSeq(storage: RunStorage, keys: RunKeys): Promise<number> {
  let last = 0;
  for await (const key of storage.list(`${keys.checkpointsDir}/`)) {
    const seq = Number(/\/(\d+)-[^/]*\.json$/.exec(key)?.[1] ?? 0);
    if (seq > last) last = seq;
  }
  return last;
}

/**
 * Closes a dead run. A run is dead ("stale") when its `state.json` has not been written for
 * `staleAfterMs` (its heartbeat stopped), or when it has `meta.json` but no `state.json` and the
 * storage says `meta.json` is older than that (the writer died between its first two writes).
 *
 * Closing it first claims `state.json` with a conditional replace (the fence: the original writer
 * gets `RunConflictError` at its next state write, a second reaper loses the race), then stores
 * the logs whole (on a storage without append, composed from their segments, segments deleted),
 * then writes the terminal `state.json`: `failed` with `reason: "abandoned"` and a summary saying
 * when the heartbeat stopped, after a `step_failed` event that continues the stored sequence. When
 * `worker.log` already holds the run's terminal event (the writer died just before its last
 * write), the run is closed with that outcome instead: every record it closes is stored.
 *
 * A live or finished run is left alone. On a storage without `stat` and `replace` the close is
 * not fenced (a late writer could overwrite it).
 *
 * @param storage The storage the run lives on.
 * @param ref Which run.
 * @param options `staleAfterMs` (default 15 s) and `now`.
 * @returns What was found and whether this call closed it.
 * @throws {NotFoundError} The run has no `meta.json`.
 * @throws {StorageError} The storage failed.
 *
 * @example
 * ```ts
 * import { createMemoryStorage, prepareStepRun, reapRun } from "../mod.ts";
 * const storage = createMemoryStorage();
 * await prepareStepRun({
 *   taskId: "t", stepId: "s", stepName: "S", stepKind: "k", runId: "r", attempt: 1,
 *   workerKind: "script", timeoutSec: 60, runtime: { repoRoot: "/repo", worktreePath: "/repo" },
 * }, { storage }); // prepared, then nobody ran it
 * const later = Date.now() + 60_000;
 * const result = await reapRun(storage, { taskId: "t", runId: "r" }, { now: later });
 * console.log(result.reaped, result.state?.status, result.state?.reason); // true "failed" "abandoned"
 * ```
 */
export async function reapRun(
  storage: RunStorage,
  ref: RunRef,
  options: ReapRunOptions = {},
): Promise<ReapResult> {
  parseOrThrow(IdSchema, ref?.taskId, "Invalid run reference 'taskId'");
  parseOrThrow(IdSchema, ref?.runId, "Invalid run reference 'runId'");
  const store = guardStorage(storage);
  const keys = createRunKeys(normalizePrefix(ref.runsRootDir), ref.taskId, ref.runId);
  const nowMs = epochMs(options.now);
  const staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const fenced = typeof store.stat === "function" && typeof store.replace === "function";

  const [metaBytes, stateStat] = await Promise.all([
    store.read(keys.meta),
    fenced ? store.stat!(keys.state) : Promise.resolve(undefined),
  ]);
  if (metaBytes === undefined) {
    throw new NotFoundError(`Run '${ref.runId}' of task '${ref.taskId}' does not exist`, keys.meta);
  }
  const metadata = parseOrThrow(
    RunMetadataSchema,
    parseJson(metaBytes),
    `Malformed record '${keys.meta}'`,
  );
  const stateBytes = await store.read(keys.state);
  const parsedState = RunStateSnapshotSchema.safeParse(parseJson(stateBytes));
  const state = parsedState.success ? parsedState.data : undefined;

  let liveness: RunLiveness;
  let stoppedAt: number;
  if (stateBytes === undefined) {
    // No state.json: the age comes from the storage's clock, not from a createdAt the caller set.
    const metaStat = await store.stat?.(keys.meta);
    stoppedAt = metaStat?.modifiedAt?.getTime() ?? Date.parse(metadata.createdAt);
    liveness = nowMs - stoppedAt > staleAfterMs ? "stale" : "live";
  } else if (state === undefined) {
    // A state.json that does not parse was not written by a live writer (writes are atomic).
    stoppedAt = (await store.stat?.(keys.state))?.modifiedAt?.getTime() ?? nowMs;
    liveness = "stale";
  } else {
    liveness = runLiveness(state, { now: new Date(nowMs), staleAfterMs });
    stoppedAt = Date.parse(state.updatedAt);
  }
  if (liveness !== "stale") return { reaped: false, liveness, state };

  // Claim: a non-terminal state.json that says a reaper is closing the run, written
  // conditionally. It fences the original writer and any other reaper from here on.
  const base: RunStateSnapshot = state ?? {
    status: "running",
    attempt: metadata.attempt,
    startedAt: metadata.createdAt,
    updatedAt: new Date(nowMs).toISOString(),
    lastEventSeq: 0,
    checkpointSeq: 0,
  };
  const claim: RunStateSnapshot = {
    ...base,
    updatedAt: new Date(nowMs).toISOString(),
    summary: "Closing: the run's writer stopped; a reaper is storing its records.",
  };
  let etag: string | undefined;
  try {
    const written = stateBytes === undefined
      ? await store.write(keys.state, json(claim), { ifNoneMatch: "*" })
      : fenced && stateStat?.etag !== undefined
      ? await store.replace!(keys.state, json(claim), { ifMatch: stateStat.etag })
      : await store.write(keys.state, json(claim));
    etag = written?.etag ?? undefined;
  } catch (error) {
    if (!isPreconditionFailed(error)) throw error;
    // Someone else wrote state.json since we looked: the writer is back, or another reaper won.
    const now = RunStateSnapshotSchema.safeParse(parseJson(await store.read(keys.state)));
    return { reaped: false, liveness, state: now.success ? now.data : undefined };
  }

  const [stdoutLog, stderrLog, indexLog, worker] = await Promise.all(
    LOGS.map((channel) => findLog(store, keys, channel)),
  );
  const events = parseEvents(decoder.decode(worker.whole ?? concatBytes(worker.segmentBytes)));
  const index = indexLog.whole ?? concatBytes(indexLog.segmentBytes);
  const entries = parseOutputIndex(index);
  // A loop, not Math.max(...): an index can hold more entries than a call takes arguments.
  let lastSeq = state?.lastEventSeq ?? 0;
  for (const event of events) lastSeq = Math.max(lastSeq, event.seq ?? 0);
  for (const { entry } of entries) lastSeq = Math.max(lastSeq, entry.lastSeq ?? entry.seq);
  const terminal = [...events].reverse().find((event) => TERMINAL[event.type] !== undefined);

  // The output, whole at its keys; then the index made to describe exactly the stored bytes.
  await Promise.all([stdoutLog, stderrLog].map((found) => storeWhole(store, found)));
  const sizes = await Promise.all(
    [stdoutLog, stderrLog].map(async (found) => {
      const stat = await store.stat?.(found.key);
      return stat?.size ?? (await store.read(found.key))?.byteLength ?? 0;
    }),
  );
  const repaired = repairIndex(
    entries.map((e) => e.entry),
    { stdout: sizes[0], stderr: sizes[1] },
    lastSeq,
    new Date(Number.isFinite(stoppedAt) ? stoppedAt : nowMs).toISOString(),
  );
  lastSeq = repaired.lastSeq;
  // Whole at its key: repaired, or as found (its segments are in memory already).
  if (repaired.lines !== undefined) await store.write(indexLog.key, repaired.lines);
  else if (indexLog.whole === undefined && indexLog.segments.length > 0) {
    await store.write(indexLog.key, index);
  }
  await deleteKeys(store, indexLog.segments);

  const finishedAt = new Date(nowMs).toISOString();
  let closing: Partial<RunStateSnapshot>;
  let line: Uint8Array | undefined;
  let seq = lastSeq;
  if (terminal !== undefined) {
    // Roll forward: the writer logged its outcome (after its output) and died before committing.
    const data = terminal.data as StructuredData;
    closing = {
      status: TERMINAL[terminal.type]!,
      finishedAt: terminal.createdAt,
      summary: terminal.message,
      ...(typeof data.exitCode === "number" ? { exitCode: data.exitCode } : {}),
      ...(typeof data.reason === "string" ? { reason: data.reason } : {}),
      ...(typeof data.signal === "string" ? { signal: data.signal } : {}),
    };
  } else {
    seq = lastSeq + 1;
    const summary = `Abandoned: the run's writer stopped; its last heartbeat was at ${
      Number.isFinite(stoppedAt) ? new Date(stoppedAt).toISOString() : "an unknown time"
    } (closed at ${finishedAt}).`;
    const event = abandonedEvent(metadata, seq, finishedAt, summary, state);
    line = encodeText(JSON.stringify(event) + "\n");
    closing = { status: "failed", finishedAt, summary, reason: "abandoned" };
  }

  // The lifecycle log last, with the abandonment event when there is one.
  await storeWhole(store, worker, line);

  // The commit point: the terminal state.json, fenced by the claim's version tag.
  const final: RunStateSnapshot = {
    ...claim,
    ...closing,
    updatedAt: finishedAt,
    lastEventSeq: seq,
    checkpointSeq: Math.max(base.checkpointSeq, await lastCheckpointSeq(store, keys)),
    stdoutBytes: sizes[0],
    stderrBytes: sizes[1],
  };
  try {
    if (etag !== undefined && store.replace) {
      await store.replace(keys.state, json(final), { ifMatch: etag });
    } else await store.write(keys.state, json(final));
  } catch (error) {
    if (!isPreconditionFailed(error)) throw error;
    const now = RunStateSnapshotSchema.safeParse(parseJson(await store.read(keys.state)));
    return { reaped: false, liveness, state: now.success ? now.data : undefined };
  }
  return { reaped: true, liveness, state: final };
}

/**
 * Stores a log whole at its key (composed from its segments, `extra` after them), segments
 * removed once it is stored.
 */
async function storeWhole(store: RunStorage, found: FoundLog, extra?: Uint8Array): Promise<void> {
  if (found.whole !== undefined) {
    if (extra !== undefined) {
      if (store.append) await store.append(found.key, extra);
      else await store.write(found.key, concatBytes([found.whole, extra]));
    }
  } else if (found.segments.length > 0 || !store.append) {
    await composeLog(store, found.key, found.segments, { extra });
  } else {
    await store.write(found.key, extra ?? new Uint8Array(0));
  }
  await deleteKeys(store, found.segments);
}

/**
 * Makes a dead writer's output index describe exactly the stored output: entries naming bytes
 * that were never stored are dropped (with the rest of their stream after them), and stored
 * bytes no entry names (stored just before the writer died, their index not) get entries of
 * their own, sequenced after everything stored. Returns the new lines when anything changed.
 */
function repairIndex(
  entries: readonly OutputIndexEntry[],
  sizes: Record<StreamLogChannel, number>,
  lastSeq: number,
  at: string,
): { lines: Uint8Array | undefined; lastSeq: number } {
  const covered: Record<StreamLogChannel, number> = { stdout: 0, stderr: 0 };
  const broken: Record<StreamLogChannel, boolean> = { stdout: false, stderr: false };
  const kept: OutputIndexEntry[] = [];
  for (const entry of entries) {
    const { stream } = entry;
    if (
      broken[stream] || entry.offset !== covered[stream] ||
      entry.offset + entry.length > sizes[stream]
    ) {
      broken[stream] = true;
      continue;
    }
    kept.push(entry);
    covered[stream] += entry.length;
  }
  let changed = kept.length !== entries.length;
  for (const stream of STREAMS) {
    if (covered[stream] >= sizes[stream]) continue;
    changed = true;
    const seq = ++lastSeq;
    kept.push(...indexEntries(seq, stream, covered[stream], sizes[stream] - covered[stream], at));
  }
  if (!changed) return { lines: undefined, lastSeq };
  return { lines: encodeText(kept.map(indexLine).join("")), lastSeq };
}

function abandonedEvent(
  metadata: RunMetadata,
  seq: number,
  createdAt: string,
  summary: string,
  state: RunStateSnapshot | undefined,
): WorkerLifecycleLogEntry {
  const data: StructuredData = {
    ok: false,
    blocked: false,
    needsHuman: false,
    exitCode: state?.exitCode ?? 1,
    reason: "abandoned",
    lastHeartbeatAt: state?.updatedAt ?? null,
  };
  const base = {
    taskId: metadata.taskId,
    stepId: metadata.stepId,
    runId: metadata.runId,
    seq,
    channel: "worker" as const,
    eventId: `${metadata.runId}:${seq}`,
    type: "step_failed" as const,
    level: "error" as const,
    createdAt,
    message: summary,
    data,
  };
  return { ...base, renderedLine: renderLifecycleLine(base) };
}

function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}

/**
 * Reaps every stale run on a storage (or of one task): {@linkcode reapRun} for each run whose
 * state is stale or missing, a few at a time. Live and finished runs are reported, untouched.
 *
 * @param storage The storage.
 * @param options Which runs (`taskId`, `runsRootDir`), `staleAfterMs`, `now`, `concurrency`.
 * @returns One entry per run looked at.
 *
 * @example
 * ```ts
 * import { createMemoryStorage, reapRuns } from "../mod.ts";
 * const results = await reapRuns(createMemoryStorage(), { taskId: "task-1" });
 * console.log(results.filter((r) => r.reaped).length); // 0
 * ```
 */
export async function reapRuns(
  storage: RunStorage,
  options: ReapRunsOptions = {},
): Promise<ReapRunsEntry[]> {
  const concurrency = options.concurrency ?? 8;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new ValidationError([{ path: "concurrency", message: "must be a positive integer" }]);
  }
  const nowMs = epochMs(options.now);
  const staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const store = guardStorage(storage);
  const results: ReapRunsEntry[] = [];
  const running = new Set<Promise<void>>();
  for await (
    const entry of listRuns(store, { taskId: options.taskId, runsRootDir: options.runsRootDir })
  ) {
    const liveness = entry.state === undefined
      ? undefined
      : runLiveness(entry.state, { now: new Date(nowMs), staleAfterMs });
    if (liveness !== undefined && liveness !== "stale") {
      results.push({
        taskId: entry.taskId,
        runId: entry.runId,
        reaped: false,
        liveness,
        state: entry.state,
      });
      continue;
    }
    const ref: RunRef = {
      taskId: entry.taskId,
      runId: entry.runId,
      runsRootDir: options.runsRootDir,
    };
    const task: Promise<void> = reapRun(store, ref, { now: nowMs, staleAfterMs })
      .then((result) => {
        results.push({ taskId: entry.taskId, runId: entry.runId, ...result });
      })
      .finally(() => running.delete(task));
    running.add(task);
    if (running.size >= concurrency) await Promise.race(running);
  }
  await Promise.all(running);
  return results;
}
