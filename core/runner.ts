// The runner: prepares a run's layout, drives one executor through it, and records the outcome.

import { z } from "zod";
import { createFsStorage } from "../storage/fs.ts";
import type { RunStorage } from "../storage/types.ts";
import { encodeText, utf8Length } from "./bytes.ts";
import {
  type CheckpointConfig,
  type CheckpointRecord,
  createPreparedCheckpointState,
  createRunCheckpointManager,
  emitLogTailCheckpoint,
  emitPreparationCheckpoint,
  resolveCheckpointConfig,
} from "./checkpoints.ts";
import { RunnerError, ValidationError } from "./errors.ts";
import type {
  RunAbortReason,
  SaveArtifactOptions,
  WorkerExecutionContext,
  WorkerExecutionOutcome,
  WorkerExecutor,
} from "./executor.ts";
import {
  createLocalRunPaths,
  createRunKeys,
  isAbsolutePath,
  joinKey,
  normalizePrefix,
} from "./layout.ts";
import {
  createLocalRunLogSession,
  recordLifecycleEvent,
  recordStreamChunk,
  type RunLogSession,
  summarizeLocalRunLogSession,
} from "./log-session.ts";
import {
  createRedactor,
  MIN_SECRET_LENGTH,
  type RedactionStream,
  type Redactor,
} from "./redact.ts";
import { createRunWriter, type RunWriter } from "./run-writer.ts";
import { idProblem, parseOrThrow, StepExecutionRequestSchema } from "./schemas.ts";
import {
  DEFAULT_RUN_LAYOUT_VERSION,
  type LogLevel,
  type PreparedStepRun,
  type RunMetadata,
  type RunStatePatch,
  type RunStateSnapshot,
  type RunStatus,
  type StepArtifact,
  type StepExecutionOutcome,
  type StepExecutionRequest,
  type StepExecutionResult,
  type StreamLogChannel,
  type StructuredData,
  type WorkerLifecycleEventInput,
  type WorkerLifecycleEventType,
} from "./types.ts";

/** Options of {@linkcode runStep} and {@linkcode prepareStepRun}. */
export interface RunStepOptions {
  /**
   * Where the run is stored. Default: a filesystem storage rooted at `runtime.repoRoot`
   * (or at `runtime.runsRootDir` when that is absolute).
   */
  storage?: RunStorage;
  /** Cancels the run: the executor's signal aborts and the run ends `failed`, "cancelled". */
  signal?: AbortSignal;
  /** Flush interval in ms (default 1000): a live reader sees output within about this long. */
  flushIntervalMs?: number;
  /** Buffered bytes that trigger an early flush (default 1 MiB). */
  flushBytes?: number;
  /** `state.json` is rewritten at least this often while live (default 2000 ms, at most 5000). */
  heartbeatMs?: number;
  /** Stream chunks kept per stream in `result.logSession` (default 200). */
  tailEntries?: number;
  /**
   * After a timeout or cancel, how long the runner waits for the executor to return before it
   * closes the record anyway (default 5000 ms).
   */
  timeoutGraceMs?: number;
  /**
   * Strings and patterns masked (as `[REDACTED]`) in stdout, stderr, events, metadata and
   * artifact metadata before anything is stored. Also taken from `executor.secrets`.
   */
  secrets?: readonly (string | RegExp)[];
  /** Byte cap per stream; output past it is dropped, with one marker and a count. */
  maxOutputBytes?: number | { stdout?: number; stderr?: number };
}

const positiveInt = (max: number) => z.number().int().positive().max(max);
const RunStepOptionsSchema = z.object({
  storage: z.custom<RunStorage>((value) => {
    if (typeof value !== "object" || value === null) return false;
    const storage = value as Record<string, unknown>;
    return ["read", "write", "list", "delete", "locate"].every((m) =>
      typeof storage[m] === "function"
    ) &&
      typeof storage.name === "string";
  }, "must implement name, read, write, list, delete and locate").optional(),
  signal: z.custom<AbortSignal>((value) => value instanceof AbortSignal, "must be an AbortSignal")
    .optional(),
  flushIntervalMs: positiveInt(60_000).optional(),
  flushBytes: positiveInt(256 * 1024 * 1024).optional(),
  heartbeatMs: positiveInt(5_000).optional(),
  tailEntries: z.number().int().min(0).max(100_000).optional(),
  timeoutGraceMs: z.number().int().min(0).max(600_000).optional(),
  secrets: z.array(z.union([
    z.string().refine(
      (secret) => secret === "" || [...secret].length >= MIN_SECRET_LENGTH,
      `must be at least ${MIN_SECRET_LENGTH} characters (a shorter secret would mask ordinary output)`,
    ),
    z.instanceof(RegExp),
  ])).optional(),
  maxOutputBytes: z.union([
    z.number().int().min(0),
    z.object({
      stdout: z.number().int().min(0).optional(),
      stderr: z.number().int().min(0).optional(),
    }),
  ]).optional(),
});

/** Internal: everything the runner keeps about a live run. */
interface LiveRun {
  run: PreparedStepRun;
  session: RunLogSession;
  storage: RunStorage;
  writer: RunWriter;
  config: CheckpointConfig;
  redactor: Redactor | undefined;
  startedAt: string;
  savedArtifacts: StepArtifact[];
}

function resolveStorage(
  request: StepExecutionRequest,
  options: RunStepOptions,
): { storage: RunStorage; runsRoot: string } {
  const runsRootDir = request.runtime.runsRootDir;
  if (options.storage !== undefined) {
    return { storage: options.storage, runsRoot: normalizePrefix(runsRootDir) };
  }
  if (runsRootDir !== undefined && isAbsolutePath(runsRootDir)) {
    return { storage: createFsStorage({ root: runsRootDir }), runsRoot: "" };
  }
  return {
    storage: createFsStorage({ root: request.runtime.repoRoot }),
    runsRoot: normalizePrefix(runsRootDir),
  };
}

function validate(request: StepExecutionRequest, options: RunStepOptions): void {
  parseOrThrow(StepExecutionRequestSchema, request, "Invalid step request");
  parseOrThrow(RunStepOptionsSchema, options, "Invalid runStep options");
}

function patchState(run: PreparedStepRun, patch: RunStatePatch): void {
  run.state = { ...run.state, ...patch };
}

function recordEvent(
  live: LiveRun,
  input: WorkerLifecycleEventInput,
  statePatch: RunStatePatch = {},
): void {
  const redacted = live.redactor === undefined ? input : {
    ...input,
    message: live.redactor.redactText(input.message),
    data: input.data === undefined ? undefined : live.redactor.redactData(input.data),
  };
  const entry = recordLifecycleEvent(live.session, redacted);
  const line = JSON.stringify(entry) + "\n";
  live.writer.push("worker", line, utf8Length(line));
  patchState(live.run, statePatch);
}

async function persistCheckpoint(
  live: LiveRun,
  record: CheckpointRecord | undefined,
): Promise<void> {
  if (record === undefined) return;
  const body = JSON.stringify(live.redactor ? live.redactor.redactData(record) : record, null, 2) +
    "\n";
  await live.writer.writeRecord(record.file.storageKey, body);
  patchState(live.run, { checkpointSeq: record.seq });
}

async function openRun(
  request: StepExecutionRequest,
  options: RunStepOptions,
  secrets: readonly (string | RegExp)[],
): Promise<LiveRun> {
  validate(request, options);
  const startedAt = request.createdAt ?? new Date().toISOString();
  const { storage, runsRoot } = resolveStorage(request, options);
  const keys = createRunKeys(runsRoot, request.taskId, request.runId);
  const logPaths = createLocalRunPaths(storage, keys, request.runtime.repoRoot);
  const redactor = createRedactor(secrets);
  const config = resolveCheckpointConfig(request.checkpoint);
  const checkpointManager = createRunCheckpointManager(
    request,
    keys.checkpointsDir,
    (key) => storage.locate(key),
  );
  const checkpoint = createPreparedCheckpointState(config, logPaths.checkpointsDir);
  const preparation = emitPreparationCheckpoint(
    checkpointManager,
    checkpoint,
    config,
    request,
    startedAt,
  );
  const session = createLocalRunLogSession(
    logPaths,
    { taskId: request.taskId, stepId: request.stepId, runId: request.runId },
    options.tailEntries,
  );
  const metadata: RunMetadata = {
    layoutVersion: DEFAULT_RUN_LAYOUT_VERSION,
    taskId: request.taskId,
    stepId: request.stepId,
    stepName: request.stepName,
    runId: request.runId,
    workerKind: request.workerKind,
    attempt: request.attempt,
    repoRoot: request.runtime.repoRoot,
    worktreePath: request.runtime.worktreePath,
    createdAt: startedAt,
    checkpointMode: config.mode,
  };
  if (request.promptSummary !== undefined) metadata.promptSummary = request.promptSummary;
  if (request.command !== undefined) metadata.command = request.command;
  const run: PreparedStepRun = {
    request,
    logPaths,
    keys,
    logSession: session,
    metadata: redactor ? redactor.redactData(metadata) : metadata,
    state: {
      status: "prepared",
      attempt: request.attempt,
      startedAt,
      updatedAt: startedAt,
      lastEventSeq: 0,
      checkpointSeq: 0,
      summary: preparation?.summary ?? `Prepared local run layout for ${request.stepId}.`,
      stdoutBytes: 0,
      stderrBytes: 0,
    },
    checkpoint,
    checkpointManager,
  };
  if (redactor && run.state.summary) run.state.summary = redactor.redactText(run.state.summary);
  const snapshot = (persistedSeq: number): RunStateSnapshot => {
    const dropped = { stdout: session.stdout.droppedBytes, stderr: session.stderr.droppedBytes };
    run.state = {
      ...run.state,
      updatedAt: new Date().toISOString(),
      lastEventSeq: persistedSeq,
      checkpointSeq: checkpoint.lastCheckpointSeq,
      stdoutBytes: session.stdout.byteCount,
      stderrBytes: session.stderr.byteCount,
      ...(dropped.stdout + dropped.stderr > 0 ? { droppedBytes: dropped } : {}),
    };
    return run.state;
  };
  const writer = createRunWriter(
    storage,
    keys,
    snapshot,
    () => session.nextSeq - 1,
    { taskId: request.taskId, runId: request.runId },
    options,
  );
  const live: LiveRun = {
    run,
    session,
    storage,
    writer,
    config,
    redactor,
    startedAt,
    savedArtifacts: [],
  };

  // meta.json first, create-only: it is the fence against a duplicate run. Nothing is written
  // before it, so a refused duplicate leaves no trace.
  await writer.create(JSON.stringify(run.metadata, null, 2) + "\n", run.state);
  await persistCheckpoint(live, preparation);
  recordEvent(live, {
    type: "run_prepared",
    level: "info",
    createdAt: startedAt,
    message: `Prepared local run layout for ${request.stepId}.`,
    data: {
      stepName: request.stepName,
      stepKind: request.stepKind,
      workerKind: request.workerKind,
      attempt: request.attempt,
      timeoutSec: request.timeoutSec,
      runDir: logPaths.runDir,
      worktreePath: request.runtime.worktreePath,
    },
  });
  if (checkpoint.mode === "capture") {
    const data: StructuredData = {
      checkpointsDir: logPaths.checkpointsDir,
      nextCheckpointSeq: checkpoint.nextCheckpointSeq,
      supportedTypes: checkpoint.supportedTypes,
    };
    if (preparation !== undefined) data.latestCheckpointPath = preparation.file.storagePath;
    if (checkpoint.gitDiffPlan !== undefined) {
      data.gitDiffCommands = JSON.parse(JSON.stringify(checkpoint.gitDiffPlan));
    }
    recordEvent(live, {
      type: "checkpoint_slot_reserved",
      level: "info",
      message: `Initialized checkpoint manager at sequence ${checkpoint.lastCheckpointSeq}.`,
      data,
    });
  }
  await writer.flush();
  return live;
}

/**
 * Validates the request, creates the run's layout (`meta.json` create-only, `state.json`, logs,
 * preparation checkpoint) and records the preparation events. Nothing is executed.
 *
 * @param request The step attempt.
 * @param options Storage and write-path tuning.
 * @returns The prepared run.
 * @throws {ValidationError} Bad request or options; nothing was written.
 * @throws {RunConflictError} The run already exists; it is left untouched.
 * @throws {StorageError} The storage failed.
 *
 * @example
 * ```ts
 * import { createMemoryStorage, prepareStepRun } from "../mod.ts";
 * const storage = createMemoryStorage();
 * const run = await prepareStepRun({
 *   taskId: "task-1", stepId: "step-1", stepName: "Plan", stepKind: "plan", runId: "run-1",
 *   attempt: 1, workerKind: "script", timeoutSec: 60,
 *   runtime: { repoRoot: "/repo", worktreePath: "/repo" },
 * }, { storage });
 * console.log(run.logPaths.metaPath); // memory://runs/task-1/run-1/meta.json
 * ```
 */
export async function prepareStepRun(
  request: StepExecutionRequest,
  options: RunStepOptions = {},
): Promise<PreparedStepRun> {
  const live = await openRun(request, options, options.secrets ?? []);
  return live.run;
}

/**
 * An executor that executes nothing: the run is recorded as `prepared`.
 *
 * @returns The placeholder executor.
 *
 * @example
 * ```ts
 * import { createMemoryStorage, createPlaceholderWorkerExecutor, runStep } from "../mod.ts";
 * const result = await runStep({
 *   taskId: "t", stepId: "s", stepName: "S", stepKind: "k", runId: "r", attempt: 1,
 *   workerKind: "codex", timeoutSec: 60, runtime: { repoRoot: "/repo", worktreePath: "/repo" },
 * }, createPlaceholderWorkerExecutor(), { storage: createMemoryStorage() });
 * console.log(result.outcome); // "prepared"
 * ```
 */
export function createPlaceholderWorkerExecutor(): WorkerExecutor {
  return {
    execute(run: PreparedStepRun): WorkerExecutionOutcome {
      return {
        ok: true,
        outcome: "prepared",
        summary:
          `Prepared local log streams and result envelope for ${run.request.stepId}; real ${run.request.workerKind} execution remains deferred.`,
        needsHuman: false,
        blocked: false,
        exitCode: 0,
      };
    },
  };
}

const OUTCOMES: readonly StepExecutionOutcome[] = ["prepared", "completed", "failed", "blocked"];
const TERMINAL_EVENT: Record<StepExecutionOutcome, WorkerLifecycleEventType> = {
  prepared: "step_prepared",
  completed: "step_completed",
  failed: "step_failed",
  blocked: "step_blocked",
};

function outcomeLevel(outcome: StepExecutionOutcome): LogLevel {
  return outcome === "failed" ? "error" : outcome === "blocked" ? "warn" : "info";
}

function errorMessage(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  // A summary lands in state.json and worker.log: keep a runaway message from bloating them.
  return text.length > 2000
    ? `${text.slice(0, 2000)}… (${text.length - 2000} more characters)`
    : text;
}

const isStringArray = (value: unknown) =>
  value === undefined || (Array.isArray(value) && value.every((item) => typeof item === "string"));

function checkOutcome(value: unknown): WorkerExecutionOutcome {
  const outcome = value as WorkerExecutionOutcome | undefined;
  if (
    typeof outcome !== "object" || outcome === null || !OUTCOMES.includes(outcome.outcome) ||
    typeof outcome.ok !== "boolean" || typeof outcome.summary !== "string"
  ) {
    throw new RunnerError("Executor returned an invalid outcome (needs ok, outcome and summary)");
  }
  if (!isStringArray(outcome.stdout) || !isStringArray(outcome.stderr)) {
    throw new RunnerError(
      "Executor returned an invalid outcome ('stdout' and 'stderr' must be string arrays)",
    );
  }
  if (outcome.exitCode !== undefined && !Number.isInteger(outcome.exitCode)) {
    throw new RunnerError("Executor returned an invalid outcome ('exitCode' must be an integer)");
  }
  return outcome;
}

interface StreamWriter {
  write(chunk: string | Uint8Array): void | Promise<void>;
  end(): void;
}

function truncationMarker(channel: StreamLogChannel, limit: number): string {
  return `\n[baa-conductor: ${channel} truncated after ${limit} bytes]\n`;
}

function createStreamWriter(
  live: LiveRun,
  channel: StreamLogChannel,
  limit: number | undefined,
): StreamWriter {
  const stream = live.session[channel];
  const redaction: RedactionStream | undefined = live.redactor?.stream();
  let truncated = false;

  function store(
    data: string | Uint8Array,
    length: number,
    sequenced: boolean,
  ): void | Promise<void> {
    if (limit !== undefined && stream.byteCount + length > limit) {
      if (truncated) {
        stream.droppedBytes += length;
        if (sequenced) recordStreamChunk(live.session, channel, "", 0);
        return;
      }
      truncated = true;
      const bytes = typeof data === "string" ? encodeText(data) : data;
      const room = Math.max(0, limit - stream.byteCount);
      const kept = bytes.subarray(0, room);
      stream.droppedBytes += bytes.byteLength - room;
      const marker = truncationMarker(channel, limit);
      const markerBytes = encodeText(marker);
      if (sequenced) {
        recordStreamChunk(live.session, channel, kept, kept.byteLength + markerBytes.byteLength);
      } else stream.byteCount += kept.byteLength + markerBytes.byteLength;
      live.writer.push(channel, kept, kept.byteLength);
      recordEvent(live, {
        type: "output_truncated",
        level: "warn",
        message: `${channel} passed its ${limit}-byte cap; further output is dropped.`,
        data: { channel, limitBytes: limit },
      });
      return live.writer.push(channel, markerBytes, markerBytes.byteLength);
    }
    if (sequenced) recordStreamChunk(live.session, channel, data, length);
    else stream.byteCount += length;
    return live.writer.push(channel, data, length);
  }

  return {
    write(chunk) {
      if (typeof chunk !== "string" && !(chunk instanceof Uint8Array)) {
        throw new TypeError(`context.${channel}() takes a string or a Uint8Array`);
      }
      if (redaction !== undefined) {
        const out = redaction.push(typeof chunk === "string" ? encodeText(chunk) : chunk);
        return store(out, out.byteLength, true);
      }
      if (typeof chunk === "string") return store(chunk, utf8Length(chunk), true);
      // Copy: the caller may reuse its buffer before the flush (a reused read buffer would
      // otherwise corrupt the log silently).
      return store(chunk.slice(), chunk.byteLength, true);
    },
    end() {
      if (redaction === undefined) return;
      const rest = redaction.end();
      if (rest.byteLength > 0) void store(rest, rest.byteLength, false);
    },
  };
}

function streamLimit(options: RunStepOptions, channel: StreamLogChannel): number | undefined {
  const cap = options.maxOutputBytes;
  return typeof cap === "number" ? cap : cap?.[channel];
}

async function saveArtifact(
  live: LiveRun,
  name: string,
  data: string | Uint8Array,
  options: SaveArtifactOptions = {},
): Promise<StepArtifact> {
  const problem = typeof name === "string"
    ? name.split("/").map(idProblem).find((p) => p !== undefined)
    : "must be a string";
  if (problem !== undefined) {
    throw new ValidationError([{ path: "name", message: problem }], "Invalid artifact");
  }
  if (typeof data !== "string" && !(data instanceof Uint8Array)) {
    throw new TypeError("saveArtifact() takes a string or a Uint8Array");
  }
  const bytes = typeof data === "string" ? encodeText(data) : data.slice();
  const key = joinKey(live.run.keys.artifactsDir, name);
  await live.writer.writeRecord(key, bytes);
  const redact = (text: string) => live.redactor ? live.redactor.redactText(text) : text;
  const artifact: StepArtifact = {
    name: redact(name),
    kind: redact(options.kind ?? "file"),
    path: redact(live.storage.locate(key)),
    size: bytes.byteLength,
  };
  if (options.description !== undefined) artifact.description = redact(options.description);
  live.savedArtifacts.push(artifact);
  const eventData: StructuredData = {
    name: artifact.name,
    kind: artifact.kind,
    size: artifact.size ?? 0,
    path: artifact.path,
  };
  if (artifact.description !== undefined) eventData.description = artifact.description;
  recordEvent(live, {
    type: "artifact_saved",
    level: "info",
    message: `Saved artifact ${artifact.name}.`,
    data: eventData,
  });
  return artifact;
}

function defaultArtifacts(run: PreparedStepRun): StepArtifact[] {
  const p = run.logPaths;
  return [
    {
      name: "meta.json",
      kind: "metadata",
      path: p.metaPath,
      description: "Immutable run metadata for this step attempt.",
    },
    {
      name: "state.json",
      kind: "state",
      path: p.statePath,
      description: "Mutable run state snapshot for progress tracking and recovery.",
    },
    {
      name: "worker.log",
      kind: "log",
      path: p.workerLogPath,
      description: "Lifecycle events rendered into the worker log stream.",
    },
    {
      name: "stdout.log",
      kind: "log",
      path: p.stdoutLogPath,
      description: "Raw stdout stream produced by the worker process.",
    },
    {
      name: "stderr.log",
      kind: "log",
      path: p.stderrLogPath,
      description: "Raw stderr stream produced by the worker process.",
    },
    {
      name: "checkpoints",
      kind: "directory",
      path: p.checkpointsDir,
      description: "Checkpoint records: preparation summary, log tail, git diff plan.",
    },
    {
      name: "artifacts",
      kind: "directory",
      path: p.artifactsDir,
      description: "Artifacts saved by the worker.",
    },
  ];
}

function mergeArtifacts(run: PreparedStepRun, ...lists: StepArtifact[][]): StepArtifact[] {
  const merged = new Map<string, StepArtifact>();
  for (const artifact of defaultArtifacts(run)) merged.set(artifact.path, artifact);
  for (const list of lists) for (const artifact of list) merged.set(artifact.path, artifact);
  return [...merged.values()];
}

/** How the execution phase ended. */
type Ending =
  | { kind: "returned"; outcome: WorkerExecutionOutcome }
  | { kind: "threw"; error: unknown }
  | { kind: "abandoned" };

function abortReason(signal: AbortSignal): RunAbortReason | undefined {
  if (!signal.aborted) return undefined;
  const reason = signal.reason as RunAbortReason | undefined;
  return reason && typeof reason === "object" && "reason" in reason ? reason : undefined;
}

/**
 * Turns how the execution phase ended into the outcome to record. A timeout or cancel wins over
 * whatever the executor reported: the run is failed, and the summary says why first.
 */
function settle(
  ending: Ending,
  aborted: RunAbortReason | undefined,
): { outcome: WorkerExecutionOutcome; reason?: string } {
  let outcome: WorkerExecutionOutcome;
  let reason: string | undefined;
  if (ending.kind === "returned") outcome = ending.outcome;
  else if (ending.kind === "threw") {
    reason = "executor_error";
    outcome = {
      ok: false,
      outcome: "failed",
      summary: `Executor failed: ${errorMessage(ending.error)}`,
    };
  } else {
    outcome = {
      ok: false,
      outcome: "failed",
      summary: "The executor did not stop within the grace period.",
    };
  }
  if (aborted === undefined || aborted.reason === "storage") return { outcome, reason };
  const detail = ending.kind === "returned" ? "" : ` ${outcome.summary}`;
  const reported = ending.kind === "returned" ? ` ${outcome.summary}` : "";
  return {
    outcome: {
      ...outcome,
      ok: false,
      outcome: "failed",
      summary: `${aborted.message}${detail}${reported}`,
    },
    reason: aborted.reason,
  };
}

/**
 * Runs one attempt of one step through `executor` and records everything about it.
 *
 * Validates the request, creates the run (`meta.json` create-only), streams the executor's
 * output into the logs in batches, enforces `request.timeoutSec` and `options.signal`, and
 * records the outcome. An executor that throws, times out or is cancelled gives a `failed`
 * run; `runStep` still resolves.
 *
 * @param request The step attempt.
 * @param executor The worker; defaults to the placeholder, which executes nothing.
 * @param options Storage, cancellation, redaction, limits and write-path tuning.
 * @returns The result envelope.
 * @throws {ValidationError} Bad request or options; nothing was written.
 * @throws {RunConflictError} The run already exists; it is left untouched.
 * @throws {StorageError} The storage failed; the executor's signal was aborted.
 *
 * @example
 * ```ts
 * import { createMemoryStorage, runStep } from "../mod.ts";
 * const storage = createMemoryStorage();
 * const result = await runStep({
 *   taskId: "task-1", stepId: "build", stepName: "Build", stepKind: "script", runId: "run-1",
 *   attempt: 1, workerKind: "script", timeoutSec: 30,
 *   runtime: { repoRoot: "/repo", worktreePath: "/repo" },
 * }, {
 *   async execute(_run, context) {
 *     await context.stdout("compiling\n");
 *     await context.saveArtifact("report.txt", "all good", { kind: "report" });
 *     return { ok: true, outcome: "completed", summary: "Built." };
 *   },
 * }, { storage });
 * console.log(result.outcome, result.metrics.stdoutChunkCount); // "completed" 1
 * ```
 */
export async function runStep(
  request: StepExecutionRequest,
  executor: WorkerExecutor = createPlaceholderWorkerExecutor(),
  options: RunStepOptions = {},
): Promise<StepExecutionResult> {
  if (typeof executor !== "object" || executor === null || typeof executor.execute !== "function") {
    throw new TypeError(
      "runStep() executor must be an object with an execute(run, context) method",
    );
  }
  const secrets = [...(options.secrets ?? []), ...(executor.secrets ?? [])];
  const live = await openRun(request, options, secrets);
  const { run, writer, session } = live;
  const timeoutGraceMs = options.timeoutGraceMs ?? 5000;
  const controller = new AbortController();
  let closed = false;
  const stdout = createStreamWriter(live, "stdout", streamLimit(options, "stdout"));
  const stderr = createStreamWriter(live, "stderr", streamLimit(options, "stderr"));
  const abort = (reason: RunAbortReason) => {
    if (!controller.signal.aborted) controller.abort(reason);
  };
  const timeout = setTimeout(
    () => abort({ reason: "timeout", message: `Timed out after ${request.timeoutSec}s.` }),
    request.timeoutSec * 1000,
  );
  const onCancel = () => abort({ reason: "cancelled", message: "Cancelled." });
  if (options.signal?.aborted) onCancel();
  options.signal?.addEventListener("abort", onCancel, { once: true });
  let graceTimer: ReturnType<typeof setTimeout> | undefined;

  try {
    recordEvent(live, {
      type: "worker_started",
      level: "info",
      message:
        `Worker runner opened execution scope for ${request.workerKind} step ${request.stepId}.`,
      data: {
        stepKind: request.stepKind,
        timeoutSec: request.timeoutSec,
        worktreePath: request.runtime.worktreePath,
      },
    }, { status: "running" });
    writer.start();
    await writer.flush();

    const context: WorkerExecutionContext = {
      // Output after the run closed (timeout, cancel, storage failure) is ignored.
      stdout: (chunk) => closed ? undefined : stdout.write(chunk),
      stderr: (chunk) => closed ? undefined : stderr.write(chunk),
      signal: controller.signal,
      saveArtifact: (name, data, artifactOptions) => {
        if (closed) {
          return Promise.reject(
            new RunnerError(`Run '${request.runId}' is closed; artifact '${name}' was not saved`),
          );
        }
        return saveArtifact(live, name, data, artifactOptions);
      },
    };
    const execution: Promise<Ending> = Promise.resolve()
      .then(() => executor.execute(run, context))
      .then(checkOutcome)
      .then(
        (outcome): Ending => ({ kind: "returned", outcome }),
        (error): Ending => ({ kind: "threw", error }),
      );
    const abandoned = new Promise<Ending>((resolve) => {
      const startGrace = () => {
        graceTimer = setTimeout(() => resolve({ kind: "abandoned" }), timeoutGraceMs);
      };
      if (controller.signal.aborted) startGrace();
      else controller.signal.addEventListener("abort", startGrace, { once: true });
    });
    const storageFailed = writer.failure.catch((error) => {
      abort({ reason: "storage", message: `Storage failed: ${errorMessage(error)}` });
      throw error;
    });
    const ending = await Promise.race([execution, abandoned, storageFailed]);
    closed = true;

    const { outcome: outcome, reason } = settle(ending, abortReason(controller.signal));
    const summary = live.redactor ? live.redactor.redactText(outcome.summary) : outcome.summary;
    const blocked = outcome.blocked ?? outcome.outcome === "blocked";
    const needsHuman = outcome.needsHuman ?? false;
    const exitCode = outcome.exitCode ?? (outcome.ok ? 0 : 1);

    for (const line of outcome.stdout ?? []) {
      await stdout.write(line.endsWith("\n") ? line : `${line}\n`);
    }
    for (const line of outcome.stderr ?? []) {
      await stderr.write(line.endsWith("\n") ? line : `${line}\n`);
    }
    stdout.end();
    stderr.end();

    if (outcome.outcome === "prepared") {
      recordEvent(live, {
        type: "worker_execution_deferred",
        level: "info",
        message:
          `Real ${request.workerKind} execution is intentionally deferred while checkpoint capture remains active.`,
        data: {
          supportedTypes: run.checkpoint.supportedTypes,
          nextCheckpointSeq: run.checkpoint.nextCheckpointSeq,
        },
      });
    }
    const exitData: StructuredData = { exitCode, outcome: outcome.outcome };
    if (outcome.signal !== undefined) exitData.signal = outcome.signal;
    recordEvent(live, {
      type: "worker_exited",
      level: exitCode === 0 ? "info" : "error",
      message: `Worker runner closed execution scope with outcome ${outcome.outcome}.`,
      data: exitData,
    });
    const finishedAt = new Date().toISOString();
    const terminalData: StructuredData = { ok: outcome.ok, blocked, needsHuman, exitCode };
    if (reason !== undefined) terminalData.reason = reason;
    if (outcome.signal !== undefined) terminalData.signal = outcome.signal;
    if (outcome.data !== undefined) Object.assign(terminalData, { data: outcome.data });
    const status: RunStatus = outcome.outcome;
    recordEvent(live, {
      type: TERMINAL_EVENT[outcome.outcome],
      level: outcomeLevel(outcome.outcome),
      createdAt: finishedAt,
      message: summary,
      data: terminalData,
    }, { status, finishedAt, summary, exitCode, ...(reason !== undefined ? { reason } : {}) });

    await persistCheckpoint(
      live,
      emitLogTailCheckpoint(
        run.checkpointManager,
        run.checkpoint,
        live.config,
        session,
        `Captured combined log tail after ${outcome.outcome} for ${request.stepId}.`,
      ),
    );
    await writer.close();

    const logSummary = summarizeLocalRunLogSession(session);
    const durationMs = Math.max(0, Date.parse(finishedAt) - Date.parse(live.startedAt));
    const droppedBytes = {
      stdout: session.stdout.droppedBytes,
      stderr: session.stderr.droppedBytes,
    };
    const result: StepExecutionResult = {
      ok: outcome.ok,
      outcome: outcome.outcome,
      summary,
      needsHuman,
      blocked,
      taskId: request.taskId,
      stepId: request.stepId,
      runId: request.runId,
      attempt: request.attempt,
      workerKind: request.workerKind,
      startedAt: live.startedAt,
      finishedAt,
      durationMs,
      metadata: run.metadata,
      state: run.state,
      logPaths: run.logPaths,
      keys: run.keys,
      logSession: session,
      logSummary,
      lifecycleEvents: [...session.worker.entries],
      checkpoint: run.checkpoint,
      artifacts: mergeArtifacts(run, live.savedArtifacts, outcome.artifacts ?? []),
      suggestedFollowup: outcome.suggestedFollowup ?? [],
      exitCode,
      droppedBytes,
      metrics: {
        durationMs,
        lifecycleEventCount: logSummary.lifecycleEventCount,
        stdoutChunkCount: logSummary.stdoutChunkCount,
        stderrChunkCount: logSummary.stderrChunkCount,
        checkpointCount: run.checkpoint.records.length,
        stdoutBytes: logSummary.stdoutBytes,
        stderrBytes: logSummary.stderrBytes,
        storageWrites: writer.writes,
      },
    };
    if (reason !== undefined) result.reason = reason;
    return result;
  } finally {
    closed = true;
    clearTimeout(timeout);
    if (graceTimer !== undefined) clearTimeout(graceTimer);
    options.signal?.removeEventListener("abort", onCancel);
    writer.abandon();
  }
}
