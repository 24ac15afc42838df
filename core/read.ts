// The read side: a run, its logs and the list of runs, read back from any storage, live or not.

import type { RunStorage } from "../storage/types.ts";
import type { CheckpointRecord } from "./checkpoints.ts";
import { NotFoundError, ValidationError } from "./errors.ts";
import { createLocalRunPaths, createRunKeys, logKey, normalizePrefix } from "./layout.ts";
import { type LogRange, readLogRange } from "./log-range.ts";
import {
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

const RunRefSchema = z.object({
  taskId: idSchema(),
  runId: idSchema(),
  runsRootDir: z.string().optional(),
});
const decoder = new TextDecoder();
const ChannelSchema = z.enum(["stdout", "stderr", "worker"]);

/**
 * The keys of a run, after checking its ids. Internal to the read side.
 *
 * @param ref Which run.
 * @returns Its keys.
 * @throws {ValidationError} A bad id.
 */
export function keysOf(ref: RunRef): RunKeys {
  parseOrThrow(RunRefSchema, ref, "Invalid run reference");
  return createRunKeys(normalizePrefix(ref.runsRootDir), ref.taskId, ref.runId);
}

/**
 * Refuses anything but `stdout`, `stderr` and `worker` with a ValidationError naming
 * `channel`. Internal to the read side.
 *
 * @param channel The channel asked for.
 * @returns The channel.
 */
export function checkChannel(channel: unknown): WorkerLogChannel {
  const parsed = ChannelSchema.safeParse(channel);
  if (!parsed.success) {
    throw new ValidationError(
      [{
        path: "channel",
        message: `must be 'stdout', 'stderr' or 'worker'; got '${String(channel).slice(0, 40)}'`,
      }],
      "Invalid log channel",
    );
  }
  return parsed.data;
}

/**
 * Reads and checks a JSON record; `undefined` when absent. Internal to the read side.
 *
 * @param storage The storage.
 * @param key The record's key.
 * @param schema Its schema.
 * @returns The record.
 * @throws {ValidationError} The record is not JSON or does not fit the schema.
 */
export async function readJson<T>(
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

/** Options of {@linkcode readRunLogBytes}: a byte range, or the last bytes of the log. */
export interface ReadRunLogOptions {
  /** First byte to read, from 0. Default 0. Not with `tail`. */
  offset?: number;
  /** Bytes to read at most; to the end of the log when omitted. Not with `tail`. */
  length?: number;
  /** Read only the last `tail` bytes. Not with `offset` or `length`. */
  tail?: number;
}

const ByteCount = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const ReadRunLogOptionsSchema = z.strictObject({
  offset: ByteCount.optional(),
  length: ByteCount.optional(),
  tail: ByteCount.optional(),
}).refine((o) => o.tail === undefined || (o.offset === undefined && o.length === undefined), {
  message: "cannot be combined with offset or length",
  path: ["tail"],
});

/**
 * Reads one log of a run as bytes, whole or a range of it, whether the run is live (segment
 * objects) or finished. A range costs the range: on disk one positioned read, on S3 one ranged
 * GET of a finished log (a live log's segments are read up to the range's end, or, for `tail`,
 * back from the last one).
 *
 * @param storage The storage the run lives on.
 * @param ref Which run.
 * @param channel `stdout`, `stderr` or `worker`.
 * @param options `offset` and `length`, or `tail`; the whole log when omitted.
 * @returns The bytes; empty when the run exists but printed nothing on this channel (yet).
 * @throws {NotFoundError} The run does not exist.
 * @throws {ValidationError} A bad id, channel or range, naming the field.
 *
 * @example The last 64 KiB of a log
 * ```ts
 * import { createMemoryStorage, readRunLogBytes, runStep } from "../mod.ts";
 * const storage = createMemoryStorage();
 * await runStep({
 *   taskId: "t", stepId: "s", stepName: "S", stepKind: "k", runId: "r", attempt: 1,
 *   workerKind: "script", timeoutSec: 10, runtime: { repoRoot: "/repo", worktreePath: "/repo" },
 * }, { execute: () => ({ ok: true, outcome: "completed", summary: "ok", stdout: ["a", "b"] }) }, { storage });
 * const ref = { taskId: "t", runId: "r" };
 * const tail = await readRunLogBytes(storage, ref, "stdout", { tail: 64 * 1024 });
 * const second = await readRunLogBytes(storage, ref, "stdout", { offset: 2, length: 1 });
 * console.log(new TextDecoder().decode(tail), new TextDecoder().decode(second)); // "a\nb\n" "b"
 * ```
 */
export async function readRunLogBytes(
  storage: RunStorage,
  ref: RunRef,
  channel: WorkerLogChannel,
  options: ReadRunLogOptions = {},
): Promise<Uint8Array> {
  const keys = keysOf(ref);
  const key = logKey(keys, checkChannel(channel));
  const parsed = parseOrThrow(ReadRunLogOptionsSchema, options ?? {}, "Invalid log range");
  const range: LogRange = parsed.tail !== undefined
    ? { tail: parsed.tail }
    : { offset: parsed.offset ?? 0, length: parsed.length };
  const bytes = await readLogRange(storage, key, range);
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
 * @throws {ValidationError} A bad id or channel.
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

/**
 * The lifecycle entries of a `worker.log` text, in order; a torn last line (a killed writer) is
 * left out.
 */
export function parseEvents(text: string): WorkerLifecycleLogEntry[] {
  const events: WorkerLifecycleLogEntry[] = [];
  for (const line of text.split("\n")) {
    const event = parseEventLine(line);
    if (event !== undefined) events.push(event);
  }
  return events;
}

/**
 * One `worker.log` line's entry; `undefined` for a blank line or a torn last line of a killed
 * writer (everything before it is intact). Internal to the read side.
 *
 * @param line The line, without its newline.
 * @returns The entry.
 */
export function parseEventLine(line: string): WorkerLifecycleLogEntry | undefined {
  if (line.trim() === "") return undefined;
  try {
    return JSON.parse(line) as WorkerLifecycleLogEntry;
  } catch {
    return undefined;
  }
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
  // Every read below is independent of the others: one round trip, not seven, on S3.
  const [metadata, state, workerLog, checkpointKeys, artifactKeys] = await Promise.all([
    readJson(storage, keys.meta, RunMetadataSchema),
    readJson(storage, keys.state, RunStateSnapshotSchema),
    readLogRange(storage, keys.workerLog, { offset: 0 }),
    collect(storage.list(`${keys.checkpointsDir}/`)),
    collect(storage.list(`${keys.artifactsDir}/`)),
  ]);
  if (metadata === undefined) {
    throw new NotFoundError(`Run '${ref.runId}' of task '${ref.taskId}' does not exist`, keys.meta);
  }
  const events = parseEvents(decoder.decode(workerLog ?? new Uint8Array(0)));

  // Records only: a git checkpoint stores its patch (`.patch.gz`) beside its record.
  const recordKeys = checkpointKeys.filter((key) => key.endsWith(".json")).sort();
  const checkpoints = (await mapLimited(recordKeys, async (key) => {
    const bytes = await storage.read(key);
    return bytes === undefined ? undefined : parseRecord(key, bytes) as CheckpointRecord;
  })).filter((record): record is CheckpointRecord => record !== undefined);
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
  const artifacts = await mapLimited(artifactKeys.sort(), async (key) => {
    const name = key.slice(keys.artifactsDir.length + 1);
    const known = saved.get(name);
    const size = known?.size ??
      (storage.stat ? (await storage.stat(key))?.size : (await storage.read(key))?.byteLength) ??
      0;
    const artifact: StoredArtifact = {
      name,
      kind: known?.kind ?? "file",
      size,
      location: storage.locate(key),
    };
    if (known?.description !== undefined) artifact.description = known.description;
    return artifact;
  });
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
 * Maps `items` through `fn` with at most `limit` calls in flight, keeping the order.
 * Internal to the read side.
 *
 * @param items The inputs.
 * @param fn The async mapping.
 * @param limit Calls in flight at most.
 * @returns The outputs, in input order.
 */
export async function mapLimited<T, R>(
  items: readonly T[],
  fn: (item: T) => Promise<R>,
  limit = 16,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      out[index] = await fn(items[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Whether a run is still being written, finished, or abandoned by a writer that died. */
export type RunLiveness = "live" | "finished" | "stale";

/** Options of {@linkcode runLiveness}. */
export interface RunLivenessOptions {
  /** The time to judge at (a Date or epoch ms). Default: now. */
  now?: Date | number;
  /** A heartbeat older than this means stale, in ms. Default 15,000 (three missed 5 s beats). */
  staleAfterMs?: number;
}

/**
 * Tells a live run from a dead one by its heartbeat: a run not yet finished whose `updatedAt`
 * is older than `staleAfterMs` was abandoned. Takes what {@linkcode readRun} and `listRuns`
 * give: a missing state (a writer that died between its first two writes) or one whose
 * `updatedAt` does not parse is `stale`, never `live`. The heartbeat is the writer's clock;
 * clocks that disagree by more than `staleAfterMs` make live runs look stale.
 *
 * @param state The run's `state.json`, or `undefined` when it has none.
 * @param options `now` (Date or epoch ms) and `staleAfterMs`.
 * @returns `live`, `finished` or `stale`.
 *
 * @example
 * ```ts
 * import { runLiveness } from "../mod.ts";
 * const state = {
 *   status: "running" as const, attempt: 1, startedAt: "2026-01-01T00:00:00.000Z",
 *   updatedAt: "2026-01-01T00:00:10.000Z", lastEventSeq: 3, checkpointSeq: 0,
 * };
 * console.log(runLiveness(state, { now: Date.parse("2026-01-01T00:00:12.000Z") })); // "live"
 * console.log(runLiveness(state, { now: Date.parse("2026-01-01T00:01:00.000Z") })); // "stale"
 * console.log(runLiveness(undefined)); // "stale"
 * ```
 */
export function runLiveness(
  state: RunStateSnapshot | undefined,
  options: RunLivenessOptions = {},
): RunLiveness {
  if (state === undefined || state === null || typeof state !== "object") return "stale";
  if (
    state.finishedAt !== undefined ||
    ["completed", "failed", "blocked"].includes(state.status)
  ) {
    return "finished";
  }
  const updated = typeof state.updatedAt === "string" ? Date.parse(state.updatedAt) : NaN;
  if (Number.isNaN(updated)) return "stale";
  const now = options.now instanceof Date ? options.now.getTime() : options.now ?? Date.now();
  return now - updated > (options.staleAfterMs ?? 15_000) ? "stale" : "live";
}

/** What {@linkcode readRunStatus} found. Internal to the read side. */
export interface RunStatusRead {
  /** `meta.json` or `state.json` exists. */
  exists: boolean;
  /** `state.json`, when present and well-formed. */
  state: RunStateSnapshot | undefined;
  /** The run's liveness; `live` for a run that does not exist (yet). */
  liveness: RunLiveness;
}

/**
 * Reads `state.json` (and `meta.json` only while there is no state) and judges liveness: a run
 * with `meta.json` but no `state.json` yet is live while `meta.json` is younger than
 * `staleAfterMs` (the writer creates them one right after the other). Internal to the read side.
 *
 * @param storage The storage.
 * @param keys The run's keys.
 * @param options `staleAfterMs` and `now`.
 * @returns Whether the run exists, its state and its liveness.
 */
export async function readRunStatus(
  storage: RunStorage,
  keys: RunKeys,
  options: RunLivenessOptions = {},
): Promise<RunStatusRead> {
  let state: RunStateSnapshot | undefined;
  try {
    state = await readJson(storage, keys.state, RunStateSnapshotSchema);
  } catch (error) {
    // A state.json that does not parse was not written by a live writer (writes are atomic).
    if (error instanceof ValidationError) return { exists: true, state, liveness: "stale" };
    throw error;
  }
  if (state !== undefined) return { exists: true, state, liveness: runLiveness(state, options) };
  const meta = await storage.read(keys.meta);
  if (meta === undefined) return { exists: false, state, liveness: "live" };
  let created = NaN;
  try {
    created = Date.parse(
      parseOrThrow(RunMetadataSchema, parseRecord(keys.meta, meta), "").createdAt,
    );
  } catch {
    // Malformed meta: stale below.
  }
  const now = options.now instanceof Date ? options.now.getTime() : options.now ?? Date.now();
  const fresh = !Number.isNaN(created) && now - created <= (options.staleAfterMs ?? 15_000);
  return { exists: true, state, liveness: fresh ? "live" : "stale" };
}
