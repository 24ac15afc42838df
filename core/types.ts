// The runner's data model: request, stored records, log entries, run handle and result.

import type { CheckpointRecord, CheckpointState, RunCheckpointManager } from "./checkpoints.ts";
import type { RunOwner } from "./owner.ts";

/** Name of the runs folder / key prefix when `runtime.runsRootDir` is not given. */
export const DEFAULT_RUNS_DIRECTORY_NAME = "runs";
/** The run layout this library writes. */
export const DEFAULT_RUN_LAYOUT_VERSION = "local-run-v1";

/** JSON value allowed in event data. */
export type StructuredValue =
  | string
  | number
  | boolean
  | null
  | StructuredValue[]
  | { [key: string]: StructuredValue };

/** JSON object allowed as event data. */
export type StructuredData = Record<string, StructuredValue>;

/** Severity of a lifecycle event. */
export type LogLevel = "debug" | "info" | "warn" | "error";
/** The three logs of a run. */
export type WorkerLogChannel = "worker" | "stdout" | "stderr";
/** The two raw output streams. */
export type StreamLogChannel = "stdout" | "stderr";
/** Status in `state.json`. */
export type RunStatus = "prepared" | "running" | "completed" | "failed" | "blocked";
/** How a step ended. */
export type StepExecutionOutcome = "prepared" | "completed" | "failed" | "blocked";

/**
 * Lifecycle event types, in the order the runner emits them:
 * `run_prepared`, `checkpoint_slot_reserved` (capture mode), `checkpoint_restored` (resume),
 * `worker_started`, `artifact_saved`, `checkpoint_captured` and `checkpoint_failed` (git
 * checkpoints; any number), `output_truncated` (once per capped stream),
 * `worker_execution_deferred` (placeholder outcome), `worker_exited`, then one terminal
 * `step_prepared` | `step_completed` | `step_failed` | `step_blocked`.
 */
export type WorkerLifecycleEventType =
  | "run_prepared"
  | "checkpoint_slot_reserved"
  | "checkpoint_restored"
  | "worker_started"
  | "checkpoint_captured"
  | "checkpoint_failed"
  | "artifact_saved"
  | "output_truncated"
  | "worker_execution_deferred"
  | "worker_exited"
  | "step_prepared"
  | "step_completed"
  | "step_failed"
  | "step_blocked";

/** Where a run's workspace is. */
export interface StepRuntime {
  /** Repository root; the default filesystem storage is rooted here. */
  repoRoot: string;
  /** Working directory of the worker (a git worktree, usually). */
  worktreePath: string;
  /**
   * Runs folder relative to `repoRoot` (default `runs`), or an absolute path used as it is.
   * With a non-default storage, a `/`-separated key prefix.
   */
  runsRootDir?: string;
}

/**
 * Git checkpoints of the worktree: captured while the worker runs, on timeout/cancel before the
 * worker is stopped, and once more after it exits, each as a record plus a gzip patch against a
 * base commit, without touching the agent's `.git`.
 */
export interface GitDiffCheckpointInput {
  /**
   * Cadence in seconds: the worktree is polled every `min` (a cheap tick when nothing changed);
   * a change is stored once it stayed the same for one poll, or `max` after the last stored
   * checkpoint. Default `{ min: 30, max: 300 }`.
   */
  cadenceSec?: { min: number; max: number };
  /** The commit patches are taken against and replayed onto; default `HEAD` at run start. */
  baseRef?: string;
  /** Record the change's stats (files, insertions, deletions). Default true. */
  includeStat?: boolean;
  /** Largest patch kept (bytes); a larger one keeps its stats and is marked truncated. Default 32 MiB. */
  maxPatchBytes?: number;
  /** New files larger than this (bytes) are left out and listed. Default 5 MiB. */
  maxUntrackedFileBytes?: number;
  /** New directories with more files than this are left out and listed. Default 1000. */
  maxUntrackedDirFiles?: number;
  /** Patterns left out (`.gitignore` syntax), after the defaults (`.env*`, key files, ...). */
  exclude?: string[];
  /** Apply the default exclusions first. Default true. */
  defaultExcludes?: boolean;
  /** Patches kept; older ones are deleted and their records say so. Default: all. */
  keepPatches?: number;
  /** Deadline of one capture, in seconds. Default 60. */
  captureTimeoutSec?: number;
}

/** Checkpoint options of a request. */
export interface CheckpointConfigInput {
  /** `capture` (default) writes checkpoint records; `disabled` writes none. */
  mode?: "capture" | "disabled";
  /** Write a preparation summary checkpoint. Default true. */
  summary?: boolean;
  /** Write a log-tail checkpoint when the run ends. Default true. */
  logTail?: boolean;
  /** Lines of combined output in the log-tail checkpoint. Default 20, at most 1000. */
  logTailLines?: number;
  /** Plan git diff checkpoints. */
  gitDiff?: GitDiffCheckpointInput;
}

/** One attempt of one step, as an orchestrator asks for it. */
export interface StepExecutionRequest {
  /** Task id; path-safe (no `/`, `\`, `..`, control characters), 1–128 characters. */
  taskId: string;
  /** Step id; path-safe. */
  stepId: string;
  /** Human-readable step name. */
  stepName: string;
  /** Kind of step, e.g. `"codegen"`, `"review"`. */
  stepKind: string;
  /** Run id; path-safe, unique per task on a storage. */
  runId: string;
  /** Attempt number, from 1. */
  attempt: number;
  /** Kind of worker, e.g. `"codex"`, `"claude"`, `"script"`. */
  workerKind: string;
  /** Time limit in seconds, enforced by the runner. */
  timeoutSec: number;
  /** Start time (ISO 8601); defaults to now. */
  createdAt?: string;
  /** Short description of the prompt, stored in metadata. */
  promptSummary?: string;
  /** Command for process executors: a shell string or an argv array. */
  command?: string | string[];
  /** Where the run happens. */
  runtime: StepRuntime;
  /** Checkpoint options. */
  checkpoint?: CheckpointConfigInput;
  /**
   * Start from another attempt's work: that run's git checkpoint (`seq`, default its latest) is
   * restored into `runtime.worktreePath` before the worker starts. Same task, same storage.
   */
  resumeFrom?: { runId: string; seq?: number };
}

/** Keys (relative to the storage root) of one run's records. */
export interface RunKeys {
  /** Key prefix of all runs (`runs`, or `""` for an absolute default runs dir). */
  runsRoot: string;
  /** Prefix of the task's runs. */
  taskRunsDir: string;
  /** Prefix of the run. */
  runDir: string;
  /** `<runDir>/checkpoints`. */
  checkpointsDir: string;
  /** `<runDir>/artifacts`. */
  artifactsDir: string;
  /** `<runDir>/meta.json`. */
  meta: string;
  /** `<runDir>/state.json`. */
  state: string;
  /** `<runDir>/worker.log`. */
  workerLog: string;
  /** `<runDir>/stdout.log`. */
  stdoutLog: string;
  /** `<runDir>/stderr.log`. */
  stderrLog: string;
  /** `<runDir>/output-index.jsonl`: where each stored piece of stdout and stderr sits in the sequence. */
  outputIndex: string;
}

/**
 * One line of a run's `output-index.jsonl`: where a piece of stdout or stderr sits in the run's
 * sequence (the one lifecycle events and stream chunks share). Lines are in the order the bytes
 * were stored; per stream, entries follow each other byte for byte (`offset` is where the
 * previous entry of that stream ended).
 */
export interface OutputIndexEntry {
  /** Sequence number of the first worker chunk these bytes belong to. */
  seq: number;
  /** Sequence number of the last one, when the entry covers several consecutive chunks. */
  lastSeq?: number;
  /** Which stream. */
  stream: StreamLogChannel;
  /** Byte offset in the stream's log (`stdout.log` or `stderr.log`). */
  offset: number;
  /** Bytes, from `offset`. */
  length: number;
  /** When the first of these chunks was printed (ISO 8601). */
  at: string;
}

/** User-facing locations of a run's records: absolute file paths on disk, URLs elsewhere. */
export interface LocalRunPaths {
  /** Always `local-run-v1`. */
  layoutVersion: string;
  /** The request's repo root. */
  repoRoot: string;
  /** Location of the runs root. */
  runsRootDir: string;
  /** Location of the task's runs. */
  taskRunsDir: string;
  /** Location of the run. */
  runDir: string;
  /** Location of `checkpoints/`. */
  checkpointsDir: string;
  /** Location of `artifacts/`. */
  artifactsDir: string;
  /** Location of `meta.json`. */
  metaPath: string;
  /** Location of `state.json`. */
  statePath: string;
  /** Location of `worker.log`. */
  workerLogPath: string;
  /** Location of `stdout.log`. */
  stdoutLogPath: string;
  /** Location of `stderr.log`. */
  stderrLogPath: string;
  /** Location of `output-index.jsonl` (the order of stdout and stderr in the run's sequence). */
  outputIndexPath: string;
}

/** Ids stamped on every log entry. */
export interface LocalRunLogContext {
  /** Task id. */
  taskId: string;
  /** Step id. */
  stepId: string;
  /** Run id. */
  runId: string;
}

/** A lifecycle event as the runner records it. */
export interface WorkerLifecycleEventInput {
  /** Event type. */
  type: WorkerLifecycleEventType;
  /** Severity. */
  level: LogLevel;
  /** One line for humans. */
  message: string;
  /** Event time; defaults to now. */
  createdAt?: string;
  /** Extra data. */
  data?: StructuredData;
}

/** One line of `worker.log`. */
export interface WorkerLifecycleLogEntry extends LocalRunLogContext {
  /** Position in the run's single sequence (shared with stream chunks), from 1. */
  seq: number;
  /** Always `worker`. */
  channel: "worker";
  /** `<runId>:<seq>`, unique within a storage. */
  eventId: string;
  /** Event type. */
  type: WorkerLifecycleEventType;
  /** Severity. */
  level: LogLevel;
  /** ISO 8601 time. */
  createdAt: string;
  /** One line for humans. */
  message: string;
  /** Extra data. */
  data: StructuredData;
  /** The entry rendered as one human-readable line. */
  renderedLine: string;
}

/** One chunk of stdout or stderr, as kept in the session's tail. */
export interface StreamChunkLogEntry extends LocalRunLogContext {
  /** Position in the run's single sequence, from 1. */
  seq: number;
  /** Which stream. */
  channel: StreamLogChannel;
  /** ISO 8601 time the chunk was recorded. */
  createdAt: string;
  /** The chunk's text (bytes decoded as UTF-8, invalid sequences replaced, for display). */
  text: string;
}

/** The lifecycle log of a session: every entry (there are few). */
export interface WorkerLifecycleLogStream {
  /** Always `worker`. */
  channel: "worker";
  /** Location of `worker.log`. */
  filePath: string;
  /** Every lifecycle entry of the run, in order. */
  entries: WorkerLifecycleLogEntry[];
}

/**
 * A stream of a session. `entries` is a TAIL: the last `tailEntries` chunks (default 200),
 * not every chunk, so a run that prints gigabytes stays small in memory; `chunkCount` and
 * `byteCount` are exact.
 */
export interface StreamChunkLogStream {
  /** Which stream. */
  channel: StreamLogChannel;
  /** Location of the stream's log. */
  filePath: string;
  /** The most recent chunks, oldest first. */
  entries: StreamChunkLogEntry[];
  /** Exact number of chunks recorded. */
  chunkCount: number;
  /** Exact number of bytes stored (after redaction and truncation). */
  byteCount: number;
  /** Bytes dropped because the stream passed its byte cap. */
  droppedBytes: number;
}

/** In-memory view of a run's logs: the sequence, exact counts, lifecycle entries, stream tails. */
export interface LocalRunLogSession {
  /** Ids stamped on every entry. */
  context: LocalRunLogContext;
  /** Locations of the logs. */
  paths: LocalRunPaths;
  /** The next sequence number to hand out. */
  nextSeq: number;
  /** Lifecycle log. */
  worker: WorkerLifecycleLogStream;
  /** stdout tail and counts. */
  stdout: StreamChunkLogStream;
  /** stderr tail and counts. */
  stderr: StreamChunkLogStream;
}

/** Counts of a session. */
export interface LocalRunLogSummary {
  /** Lifecycle events plus stream chunks. */
  totalEntries: number;
  /** Last sequence number handed out (0 when none). */
  lastSeq: number;
  /** Lifecycle events. */
  lifecycleEventCount: number;
  /** stdout chunks. */
  stdoutChunkCount: number;
  /** stderr chunks. */
  stderrChunkCount: number;
  /** stdout bytes stored. */
  stdoutBytes: number;
  /** stderr bytes stored. */
  stderrBytes: number;
}

/** `meta.json`: written once, never changed. */
export interface RunMetadata {
  /** Always `local-run-v1`. */
  layoutVersion: string;
  /** Task id. */
  taskId: string;
  /** Step id. */
  stepId: string;
  /** Step name. */
  stepName: string;
  /** Run id. */
  runId: string;
  /** Worker kind. */
  workerKind: string;
  /** Attempt number. */
  attempt: number;
  /** Repo root. */
  repoRoot: string;
  /** Worktree path. */
  worktreePath: string;
  /** Start time. */
  createdAt: string;
  /** `capture` or `disabled`. */
  checkpointMode: string;
  /** Prompt summary. */
  promptSummary?: string;
  /** Command (redacted). */
  command?: string | string[];
  /** Git checkpoints: the base commit every patch of this run applies to. */
  git?: { baseCommit: string };
  /** The attempt this one resumed from: its run, the checkpoint restored, the base commit. */
  resumedFrom?: { runId: string; seq: number; baseCommit: string };
}

/** `state.json`: the mutable snapshot, replaced whole at each flush. */
export interface RunStateSnapshot {
  /** Current status. */
  status: RunStatus;
  /** Attempt number. */
  attempt: number;
  /** Start time. */
  startedAt: string;
  /** Last write time; advances at least every heartbeat while the run is live. */
  updatedAt: string;
  /** End time. */
  finishedAt?: string;
  /** Last sequence number persisted with this snapshot. */
  lastEventSeq: number;
  /** Last checkpoint sequence number. */
  checkpointSeq: number;
  /** Summary for humans. */
  summary?: string;
  /** Exit code, once known. */
  exitCode?: number;
  /** Bytes stored per stream. */
  stdoutBytes?: number;
  /** Bytes stored per stream. */
  stderrBytes?: number;
  /** Bytes dropped per stream by the byte cap (absent when nothing was dropped). */
  droppedBytes?: { stdout: number; stderr: number };
  /**
   * Why a failed run ended: `timeout`, `cancelled`, `storage`, `executor_error`, or `abandoned`
   * (closed by `reapRun()` after its writer stopped heartbeating).
   */
  reason?: string;
  /** Signal that ended the worker process, e.g. `SIGKILL`. */
  signal?: string;
  /** When the worker last printed output that is stored (ISO 8601). */
  lastOutputAt?: string;
  /** Who runs it: host, runner pid, worker pid and process group (best effort). */
  owner?: RunOwner;
}

/** Fields `state.json` can change: everything but the attempt and the start time. */
export type RunStatePatch = Partial<Omit<RunStateSnapshot, "attempt" | "startedAt">>;

/** An artifact listed in a result. */
export interface StepArtifact {
  /** Name (for saved artifacts, the path under `artifacts/`). */
  name: string;
  /** Kind: `metadata`, `state`, `log`, `directory`, `file`, or the executor's own. */
  kind: string;
  /** User-facing location. */
  path: string;
  /** One line saying what it is. */
  description?: string;
  /** Size in bytes, for saved artifacts. */
  size?: number;
}

/**
 * A prepared run, handed to the executor. `logSession` and `state` are live views updated as
 * the run goes on.
 */
export interface PreparedStepRun {
  /** The validated request. */
  request: StepExecutionRequest;
  /** Locations of the run's records. */
  logPaths: LocalRunPaths;
  /** Storage keys of the run's records. */
  keys: RunKeys;
  /** In-memory log session (tails and counts). */
  logSession: LocalRunLogSession;
  /** `meta.json` contents. */
  metadata: RunMetadata;
  /** Latest `state.json` contents. */
  state: RunStateSnapshot;
  /** Checkpoint state. */
  checkpoint: CheckpointState;
  /** Writes checkpoint records. */
  checkpointManager: RunCheckpointManager;
}

/** Counts of a finished run. */
export interface StepExecutionMetrics {
  /** Wall time from `startedAt` to `finishedAt`. */
  durationMs: number;
  /** Lifecycle events recorded. */
  lifecycleEventCount: number;
  /** stdout chunks recorded. */
  stdoutChunkCount: number;
  /** stderr chunks recorded. */
  stderrChunkCount: number;
  /** Checkpoint records written. */
  checkpointCount: number;
  /** stdout bytes stored. */
  stdoutBytes: number;
  /** stderr bytes stored. */
  stderrBytes: number;
  /** Storage writes (writes, appends, replaces, stream writes) made for the run. */
  storageWrites: number;
}

/** What `runStep` resolves with. */
export interface StepExecutionResult {
  /** Whether the step succeeded. */
  ok: boolean;
  /** How it ended. */
  outcome: StepExecutionOutcome;
  /** Summary for humans. */
  summary: string;
  /** The worker asked for a human. */
  needsHuman: boolean;
  /** The worker is blocked. */
  blocked: boolean;
  /** Task id. */
  taskId: string;
  /** Step id. */
  stepId: string;
  /** Run id. */
  runId: string;
  /** Attempt. */
  attempt: number;
  /** Worker kind. */
  workerKind: string;
  /** Start time. */
  startedAt: string;
  /** End time. */
  finishedAt: string;
  /** Duration. */
  durationMs: number;
  /** `meta.json` contents. */
  metadata: RunMetadata;
  /** Final `state.json` contents. */
  state: RunStateSnapshot;
  /** Locations of the run's records. */
  logPaths: LocalRunPaths;
  /** Storage keys of the run's records. */
  keys: RunKeys;
  /** Log session: every lifecycle entry, the last chunks of each stream, exact counts. */
  logSession: LocalRunLogSession;
  /** Counts of the session. */
  logSummary: LocalRunLogSummary;
  /** Every lifecycle entry, in order. */
  lifecycleEvents: WorkerLifecycleLogEntry[];
  /** Checkpoint state with its records. */
  checkpoint: CheckpointState;
  /**
   * The layout's records (`meta.json`, `state.json`, logs, folders) plus saved and reported
   * artifacts, as in the seed's envelope. `readRun().artifacts` lists only what is stored under
   * `artifacts/`.
   */
  artifacts: StepArtifact[];
  /** Follow-ups the worker suggested. */
  suggestedFollowup: string[];
  /** Exit code. */
  exitCode: number;
  /** Why a failed run ended, when the runner ended it (`timeout`, `cancelled`, `executor_error`). */
  reason?: string;
  /** Signal that ended the worker process, e.g. `"SIGKILL"`, when one did. */
  signal?: string;
  /** Bytes dropped per stream by the byte cap. */
  droppedBytes: { stdout: number; stderr: number };
  /** Counts. */
  metrics: StepExecutionMetrics;
}

export type { CheckpointRecord, RunOwner };
