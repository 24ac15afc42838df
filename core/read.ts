// The read side: a run, its logs and the list of runs, read back from any storage, live or not.

import type { RunStorage } from "../storage/types.ts";
import { concatBytes } from "./bytes.ts";
import type { CheckpointRecord } from "./checkpoints.ts";
import { NotFoundError, ValidationError } from "./errors.ts";
import {
  createLocalRunPaths,
  createRunKeys,
  logKey,
  normalizePrefix,
  segmentPrefix,
} from "./layout.ts";
import {
  IdSchema,
  idSchema,
  parseOrThrow,
  RunMetadataSchema,
  type RunnerSchema,
  RunStateSnapshotSchema,
} from "./schemas.ts";
import type {
  LocalRunPaths,
  RunKeys,
  RunMetadata,
  RunStateSnapshot,
  WorkerLifecycleLogEntry,
  WorkerLogChannel,
} from "./types.ts";
import { z } from "zod";

/** Which run to read. */
export interface RunRef {
  /** Task id. */
  taskId: string;
  /** Run id. */
  runId: string;
  /** Runs prefix the run was written under (default `runs`). */
  runsRootDir?: string;
}

/** An artifact as read back from storage. */
export interface StoredArtifact {
  /** Path under `artifacts/`. */
  name: string;
  /** Kind given when saved (`file` when unknown). */
  kind: string;
  /** Description given when saved. */
  description?: string;
  /** Size in bytes. */
  size: number;
  /** User-facing location. */
  location: string;
}

/** A run read back from storage. */
export interface StoredRun {
  /** `meta.json`. */
  metadata: RunMetadata;
  /** `state.json` (undefined only if the writer died between the two first writes). */
  state: RunStateSnapshot | undefined;
  /** Lifecycle entries from `worker.log`, in order. */
  events: WorkerLifecycleLogEntry[];
  /** Checkpoint records, by sequence. */
  checkpoints: CheckpointRecord[];
  /**
   * What is stored under `artifacts/` (saved through `context.saveArtifact`). Unlike
   * `result.artifacts`, no layout records and no artifacts an executor only reported.
   */
  artifacts: StoredArtifact[];
  /** Locations of the run's records. */
  paths: LocalRunPaths;
  /** Keys of the run's records. */
  keys: RunKeys;
}

/** One entry of {@linkcode listRuns}. */
export interface RunListEntry {
  /** Task id. */
  taskId: string;
  /** Run id. */
  runId: string;
  /** `state.json`, when present. */
  state: RunStateSnapshot | undefined;
}

/** Options of {@linkcode listRuns}. */
export interface ListRunsOptions {
  /** Only this task's runs. */
  taskId?: string;
  /** Runs prefix (default `runs`). */
  runsRootDir?: string;
}

const RunRefSchema = z.object({
  taskId: idSchema(),
  runId: idSchema(),
  runsRootDir: z.string().optional(),
});
const decoder = new TextDecoder();
const LIST_CONCURRENCY = 16;

function keysOf(ref: RunRef): RunKeys {
  parseOrThrow(RunRefSchema, ref, "Invalid run reference");
  return createRunKeys(normalizePrefix(ref.runsRootDir), ref.taskId, ref.runId);
}

async function readJson<T>(
  storage: RunStorage,
  key: string,
  schema: RunnerSchema<T>,
): Promise<T | undefined> {
  const bytes = await storage.read(key);
  if (bytes === undefined) return undefined;
  return parseOrThrow(schema, parseRecord(key, bytes), `Malformed record '${key}'`);
}

/** Parses a stored JSON record; a record that is not JSON is a ValidationError naming its key. */
function parseRecord(key: string, bytes: Uint8Array): unknown {
  try {
    return JSON.parse(decoder.decode(bytes));
  } catch (error) {
    throw new ValidationError(
      [{ path: "(root)", message: `is not JSON (${(error as Error).message})` }],
      `Malformed record '${key}'`,
    );
  }
}

async function collect(iterable: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

async function readLogBytes(storage: RunStorage, key: string): Promise<Uint8Array | undefined> {
  // Twice at most: a live log is its segments; once the run ends the whole log is written at
  // its key before the segments are deleted, so a segment vanishing mid-read means "read the key".
  for (let attempt = 0; attempt < 2; attempt++) {
    const whole = await storage.read(key);
    if (whole !== undefined) return whole;
    const segments = (await collect(storage.list(segmentPrefix(key)))).sort();
    if (segments.length === 0) return undefined;
    const parts: Uint8Array[] = [];
    let complete = true;
    for (const segment of segments) {
      const part = await storage.read(segment);
      if (part === undefined) {
        complete = false;
        break;
      }
      parts.push(part);
    }
    if (complete) return concatBytes(parts);
  }
  return await storage.read(key);
}

/**
 * Reads one log of a run as bytes, whether the run is live (segments) or finished.
 *
 * @param storage The storage the run lives on.
 * @param ref Which run.
 * @param channel `stdout`, `stderr` or `worker`.
 * @returns The log's bytes.
 * @throws {NotFoundError} Neither the log nor its segments exist.
 */
export async function readRunLogBytes(
  storage: RunStorage,
  ref: RunRef,
  channel: WorkerLogChannel,
): Promise<Uint8Array> {
  const keys = keysOf(ref);
  const key = logKey(keys, channel);
  const bytes = await readLogBytes(storage, key);
  if (bytes === undefined) {
    if (await storage.read(keys.meta) !== undefined) return new Uint8Array(0);
    throw new NotFoundError(
      `Run '${ref.runId}' of task '${ref.taskId}' has no ${channel} log`,
      key,
    );
  }
  return bytes;
}

/**
 * Reads one log of a run as text (UTF-8), whether the run is live or finished.
 *
 * @param storage The storage the run lives on.
 * @param ref Which run.
 * @param channel `stdout`, `stderr` or `worker`.
 * @returns The log's text.
 * @throws {NotFoundError} The run does not exist.
 *
 * @example
 * ```ts
 * import { createMemoryStorage, readRunLog, runStep } from "../mod.ts";
 * const storage = createMemoryStorage();
 * await runStep({
 *   taskId: "t", stepId: "s", stepName: "S", stepKind: "k", runId: "r", attempt: 1,
 *   workerKind: "script", timeoutSec: 10, runtime: { repoRoot: "/repo", worktreePath: "/repo" },
 * }, { execute: () => ({ ok: true, outcome: "completed", summary: "ok", stdout: ["hello"] }) }, { storage });
 * console.log(await readRunLog(storage, { taskId: "t", runId: "r" }, "stdout")); // "hello\n"
 * ```
 */
export async function readRunLog(
  storage: RunStorage,
  ref: RunRef,
  channel: WorkerLogChannel,
): Promise<string> {
  return decoder.decode(await readRunLogBytes(storage, ref, channel));
}

function parseEvents(text: string): WorkerLifecycleLogEntry[] {
  const events: WorkerLifecycleLogEntry[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      events.push(JSON.parse(line) as WorkerLifecycleLogEntry);
    } catch {
      // A torn last line from a killed writer: everything before it is intact.
    }
  }
  return events;
}

/**
 * Reads a whole run back: metadata, state, lifecycle events, checkpoints and artifacts. Needs
 * nothing from the process that wrote it and works while the run is live.
 *
 * @param storage The storage the run lives on.
 * @param ref Which run.
 * @returns The run.
 * @throws {NotFoundError} The run does not exist.
 * @throws {ValidationError} A bad id, or a malformed record.
 */
export async function readRun(storage: RunStorage, ref: RunRef): Promise<StoredRun> {
  const keys = keysOf(ref);
  const metadata = await readJson(storage, keys.meta, RunMetadataSchema);
  if (metadata === undefined) {
    throw new NotFoundError(`Run '${ref.runId}' of task '${ref.taskId}' does not exist`, keys.meta);
  }
  const state = await readJson(storage, keys.state, RunStateSnapshotSchema);
  const events = parseEvents(
    decoder.decode(await readLogBytes(storage, keys.workerLog) ?? new Uint8Array(0)),
  );

  const checkpoints: CheckpointRecord[] = [];
  for (const key of (await collect(storage.list(`${keys.checkpointsDir}/`))).sort()) {
    const bytes = await storage.read(key);
    if (bytes !== undefined) {
      checkpoints.push(parseRecord(key, bytes) as CheckpointRecord);
    }
  }
  checkpoints.sort((a, b) => a.seq - b.seq);

  const saved = new Map<string, { kind?: string; description?: string; size?: number }>();
  for (const event of events) {
    if (event.type !== "artifact_saved") continue;
    const data = event.data as {
      name?: string;
      kind?: string;
      description?: string;
      size?: number;
    };
    if (typeof data.name === "string") saved.set(data.name, data);
  }
  const artifacts: StoredArtifact[] = [];
  for (const key of (await collect(storage.list(`${keys.artifactsDir}/`))).sort()) {
    const name = key.slice(keys.artifactsDir.length + 1);
    const known = saved.get(name);
    const size = known?.size ?? (await storage.read(key))?.byteLength ?? 0;
    const artifact: StoredArtifact = {
      name,
      kind: known?.kind ?? "file",
      size,
      location: storage.locate(key),
    };
    if (known?.description !== undefined) artifact.description = known.description;
    artifacts.push(artifact);
  }
  return {
    metadata,
    state,
    events,
    checkpoints,
    artifacts,
    paths: createLocalRunPaths(storage, keys, metadata.repoRoot),
    keys,
  };
}

/**
 * Lists runs on a storage, with each run's current state. Works while runs are live.
 *
 * @param storage The storage.
 * @param options Only one task's runs; the runs prefix.
 * @returns An async iterable of `{ taskId, runId, state }`.
 *
 * @example
 * ```ts
 * import { createMemoryStorage, listRuns } from "../mod.ts";
 * for await (const run of listRuns(createMemoryStorage(), { taskId: "task-1" })) {
 *   console.log(run.runId, run.state?.status);
 * }
 * ```
 */
export async function* listRuns(
  storage: RunStorage,
  options: ListRunsOptions = {},
): AsyncGenerator<RunListEntry> {
  if (options.taskId !== undefined) parseOrThrow(IdSchema, options.taskId, "Invalid taskId");
  const root = normalizePrefix(options.runsRootDir);
  const base = root === "" ? "" : `${root}/`;
  const prefix = options.taskId === undefined ? base : `${base}${options.taskId}/`;
  // States are read a batch at a time, concurrently: one GET per run, sequentially, is minutes
  // for thousands of runs on object storage.
  const readState = ([taskId, runId]: [string, string]) =>
    readJson(storage, createRunKeys(root, taskId, runId).state, RunStateSnapshotSchema)
      .catch(() => undefined)
      .then((state): RunListEntry => ({ taskId, runId, state }));
  let batch: [string, string][] = [];
  for await (const key of storage.list(prefix)) {
    const parts = key.slice(base.length).split("/");
    if (parts.length !== 3 || parts[2] !== "meta.json") continue;
    batch.push([parts[0], parts[1]]);
    if (batch.length === LIST_CONCURRENCY) {
      yield* await Promise.all(batch.map(readState));
      batch = [];
    }
  }
  if (batch.length > 0) yield* await Promise.all(batch.map(readState));
}

/** Whether a run is still being written, finished, or abandoned by a writer that died. */
export type RunLiveness = "live" | "finished" | "stale";

/**
 * Tells a live run from a dead one by its heartbeat: a run not yet finished whose `updatedAt`
 * is older than `staleAfterMs` (default 15 s, three missed 5 s heartbeats) was abandoned.
 *
 * @param state The run's `state.json`.
 * @param options `now` and `staleAfterMs`.
 * @returns `live`, `finished` or `stale`.
 */
export function runLiveness(
  state: RunStateSnapshot,
  options: { now?: Date; staleAfterMs?: number } = {},
): RunLiveness {
  if (state.finishedAt !== undefined || ["completed", "failed", "blocked"].includes(state.status)) {
    return "finished";
  }
  const age = (options.now ?? new Date()).getTime() - Date.parse(state.updatedAt);
  return age > (options.staleAfterMs ?? 15_000) ? "stale" : "live";
}
