/**
 * `@baa-conductor/runner` runs one attempt of one step of a task through a worker (an agent CLI,
 * a script, a function) and records everything about it durably: immutable metadata, live state,
 * a sequenced lifecycle log, raw stdout/stderr, checkpoints and artifacts, on the filesystem, in
 * memory, or in S3-compatible object storage.
 *
 * Writes are batched (about once a second, on size, and at the end), memory stays bounded however
 * much a worker prints, and a run can be read back — live or finished — by any process.
 *
 * @example Run a step in memory and read it back
 * ```ts
 * import { createMemoryStorage, readRun, readRunLog, runStep } from "./mod.ts";
 *
 * const storage = createMemoryStorage();
 * const result = await runStep({
 *   taskId: "task-1", stepId: "lint", stepName: "Lint", stepKind: "check", runId: "run-1",
 *   attempt: 1, workerKind: "script", timeoutSec: 60,
 *   runtime: { repoRoot: "/repo", worktreePath: "/repo" },
 * }, {
 *   async execute(_run, context) {
 *     await context.stdout("checking 12 files\n");
 *     return { ok: true, outcome: "completed", summary: "No problems." };
 *   },
 * }, { storage });
 *
 * console.log(result.outcome); // "completed"
 * const run = await readRun(storage, { taskId: "task-1", runId: "run-1" });
 * console.log(run.state?.status, run.events.length);
 * console.log(await readRunLog(storage, { taskId: "task-1", runId: "run-1" }, "stdout"));
 * ```
 *
 * @module
 */

export { createPlaceholderWorkerExecutor, prepareStepRun, runStep } from "./core/runner.ts";
export type { OutputCaps, RunStepOptions } from "./core/runner.ts";
export type {
  RunAbortReason,
  SaveArtifactOptions,
  WorkerExecutionContext,
  WorkerExecutionOutcome,
  WorkerExecutor,
} from "./core/executor.ts";
export { readRun, readRunLog, readRunLogBytes, runLiveness } from "./core/read.ts";
export { reapRun, reapRuns } from "./core/reap.ts";
export type { ReapResult, ReapRunOptions, ReapRunsEntry, ReapRunsOptions } from "./core/reap.ts";
export type { WorkerProcessInfo } from "./core/owner.ts";
export type {
  ReadRunLogOptions,
  RunLiveness,
  RunLivenessOptions,
  RunRef,
  StoredArtifact,
  StoredRun,
} from "./core/read.ts";
export { listRuns, listRunsPage } from "./core/list.ts";
export type { ListRunsOptions, RunListEntry, RunListPage } from "./core/list.ts";
export { followRunLog, watchRun } from "./core/follow.ts";
export { deleteRun, pruneRuns } from "./core/retention.ts";
export type {
  DeleteRunOptions,
  DeleteRunResult,
  PrunedRun,
  PruneResult,
  PruneRunsOptions,
  SkippedRun,
} from "./core/retention.ts";
export type { FollowRunLogOptions, RunChange, WatchRunOptions } from "./core/follow.ts";
export { followRunOutput, readRunOutput } from "./core/output.ts";
export type {
  FollowRunOutputOptions,
  ReadRunOutputOptions,
  RunOutputChunk,
  RunOutputEvent,
  RunOutputItem,
} from "./core/output.ts";
export {
  BaseCommitMissingError,
  CheckpointConflictError,
  DirtyWorktreeError,
  GitError,
  IntegrityError,
  isPreconditionFailed,
  NotFoundError,
  RunConflictError,
  RunnerError,
  RunStaleError,
  StorageError,
  ValidationError,
} from "./core/errors.ts";
export { restoreCheckpoint } from "./git/checkpoints.ts";
export type {
  CheckpointRunRef,
  GitCheckpointData,
  GitCheckpointTrigger,
  GitPatchObject,
  RestoreCheckpointOptions,
  RestoreCheckpointResult,
} from "./git/checkpoints.ts";
export type { GitExcludedPath, GitExcludeReason } from "./git/capture.ts";
export type {
  GitErrorCode,
  GitErrorDetails,
  GitFailureReason,
  RunnerErrorCode,
  RunnerErrorOptions,
  StorageErrorCode,
  StorageErrorDetails,
  StorageOperation,
  ValidationIssue,
} from "./core/errors.ts";
export type { RunnerSchema, SchemaParseResult } from "./core/schemas.ts";
export {
  IdSchema,
  OutputIndexEntrySchema,
  RunMetadataSchema,
  RunStateSnapshotSchema,
  StepExecutionRequestSchema,
  WorkerLifecycleLogEntrySchema,
} from "./core/schemas.ts";
export { DEFAULT_RUN_LAYOUT_VERSION, DEFAULT_RUNS_DIRECTORY_NAME } from "./core/types.ts";
export type * from "./core/types.ts";
export type {
  CheckpointConfig,
  CheckpointRecord,
  CheckpointState,
  CheckpointType,
  GitCheckpointConfig,
  GitCommandPlan,
  GitDiffPlan,
  RunCheckpointManager,
} from "./core/checkpoints.ts";
export {
  createRedactor,
  DEFAULT_MAX_PATTERN_BYTES,
  DEFAULT_REDACTION_MASK,
  MIN_SECRET_LENGTH,
} from "./core/redact.ts";
export type { RedactionStream, Redactor, RedactorOptions } from "./core/redact.ts";
export { createProcessExecutor } from "./executors/process.ts";
export type { ProcessExecutorOptions, SecretEnvValue } from "./executors/process.ts";
export { createMemoryStorage } from "./storage/memory.ts";
export { createFsStorage } from "./storage/fs.ts";
export { createS3Storage } from "./storage/s3.ts";
export type { S3RetryOptions, S3StorageOptions } from "./storage/s3.ts";
export { ensureS3Bucket } from "./storage/s3-bucket.ts";
export type { EnsureS3BucketOptions } from "./storage/s3-bucket.ts";
export type { FsStorageOptions } from "./storage/fs.ts";
export type {
  RunStorage,
  StorageListOptions,
  StorageRange,
  StorageReplaceOptions,
  StorageStat,
  StorageWriteOptions,
  StorageWriteResult,
  StorageWriteStreamOptions,
} from "./storage/types.ts";
