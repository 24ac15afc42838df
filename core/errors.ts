// The error classes every part of the runner throws: one base, a stable `code` each.

/** Stable machine-readable codes carried by every {@linkcode RunnerError}. */
export type RunnerErrorCode =
  | "runner_error"
  | "validation_failed"
  | "run_conflict"
  | "not_found"
  | "run_stale"
  | StorageErrorCode
  | GitErrorCode
  | "integrity_failed"
  | "checkpoint_conflict";

/**
 * Codes of {@linkcode StorageError}. `precondition_failed`: a create-only or conditional
 * write found the key in the wrong state. `invalid_key`: the key was refused before any I/O.
 * `access_denied`: the backend refused the credentials. `unavailable`: the backend kept
 * failing after retries. `storage_failed`: anything else.
 */
export type StorageErrorCode =
  | "storage_failed"
  | "precondition_failed"
  | "invalid_key"
  | "access_denied"
  | "unavailable";

/** Options shared by all runner error constructors. */
export interface RunnerErrorOptions {
  /** The underlying error, kept for debugging; never holds credentials. */
  cause?: unknown;
}

/**
 * Base class of every error the runner throws on purpose.
 *
 * Callers branch on `code` (stable) or `instanceof`, never on the message.
 *
 * @example
 * ```ts
 * import { RunnerError } from "./errors.ts";
 * const error = new RunnerError("Something went wrong");
 * console.log(error.code); // "runner_error"
 * ```
 */
export class RunnerError extends Error {
  /** Stable code identifying the kind of failure. */
  readonly code: RunnerErrorCode;

  /**
   * Creates the error.
   *
   * @param message Human-readable, sentence case, values quoted.
   * @param options The cause, if any.
   * @param code The stable code; subclasses pass their own.
   */
  constructor(
    message: string,
    options: RunnerErrorOptions = {},
    code: RunnerErrorCode = "runner_error",
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
  }
}

/** One problem found while validating input. */
export interface ValidationIssue {
  /** Dotted path of the offending field, e.g. `runtime.repoRoot`. */
  path: string;
  /** What is wrong with it. */
  message: string;
}

/**
 * Input was refused before anything was written.
 *
 * @example
 * ```ts
 * import { ValidationError } from "./errors.ts";
 * const error = new ValidationError([{ path: "taskId", message: "Must not contain '..'" }]);
 * console.log(error.field, error.message);
 * ```
 */
export class ValidationError extends RunnerError {
  /** Every problem found, in input order. */
  readonly issues: readonly ValidationIssue[];
  /** The path of the first offending field. */
  readonly field: string;

  /**
   * Creates the error.
   *
   * @param issues The problems found; at least one.
   * @param context What was being validated, used as the message prefix.
   */
  constructor(issues: readonly ValidationIssue[], context = "Invalid input") {
    const first = issues[0] ?? { path: "(root)", message: "Invalid value" };
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : "";
    super(`${context}: '${first.path}' ${first.message}${more}`, {}, "validation_failed");
    this.issues = issues;
    this.field = first.path;
  }
}

/**
 * A run with the same task and run id already exists on the storage, or another writer
 * took over a run's state.
 */
export class RunConflictError extends RunnerError {
  /** Task id of the conflicting run. */
  readonly taskId: string;
  /** Run id of the conflicting run. */
  readonly runId: string;

  /**
   * Creates the error.
   *
   * @param taskId Task id of the conflicting run.
   * @param runId Run id of the conflicting run.
   * @param options Message override and cause.
   */
  constructor(
    taskId: string,
    runId: string,
    options: RunnerErrorOptions & { message?: string } = {},
  ) {
    super(
      options.message ?? `Run '${runId}' of task '${taskId}' already exists`,
      options,
      "run_conflict",
    );
    this.taskId = taskId;
    this.runId = runId;
  }
}

/** Storage operations named in {@linkcode StorageError}. */
export type StorageOperation =
  | "read"
  | "write"
  | "append"
  | "list"
  | "delete"
  | "deleteMany"
  | "replace"
  | "writeStream"
  | "locate";

/** What a storage adapter says about a failure; a safe, credential-free description. */
export interface StorageErrorDetails {
  /** The adapter's `name`, e.g. `fs` or `s3`. */
  adapter: string;
  /** The operation that failed. */
  operation: StorageOperation | string;
  /** The key (or prefix, for `list`) it was applied to. */
  key: string;
  /** The stable code; `storage_failed` when omitted. */
  code?: StorageErrorCode;
  /** HTTP status, for remote adapters. */
  status?: number;
  /** The backend's own error code, e.g. S3's `AccessDenied`. */
  backendCode?: string;
  /** The underlying error. */
  cause?: unknown;
}

/**
 * A storage adapter failed. Carries the adapter, operation and key, never a credential.
 *
 * `code` is `"precondition_failed"` when a create-only or conditional write found the key
 * in the wrong state; the runner turns that into {@linkcode RunConflictError}.
 *
 * @example
 * ```ts
 * import { StorageError } from "./errors.ts";
 * const error = new StorageError("Disk full", { adapter: "fs", operation: "write", key: "runs/a/b/meta.json" });
 * console.log(error.code, error.key); // "storage_failed" "runs/a/b/meta.json"
 * ```
 */
export class StorageError extends RunnerError {
  /** The adapter's `name`. */
  readonly adapter: string;
  /** The failed operation. */
  readonly operation: string;
  /** The key it was applied to. */
  readonly key: string;
  /** HTTP status, for remote adapters. */
  readonly status?: number;
  /** The backend's own error code. */
  readonly backendCode?: string;

  /**
   * Creates the error.
   *
   * @param message What happened, sentence case.
   * @param details Adapter, operation, key and optional code/status/backend code.
   */
  constructor(message: string, details: StorageErrorDetails) {
    super(
      `${message} (${details.adapter} ${details.operation} '${details.key}')`,
      { cause: details.cause },
      details.code ?? "storage_failed",
    );
    this.adapter = details.adapter;
    this.operation = details.operation;
    this.key = details.key;
    if (details.status !== undefined) this.status = details.status;
    if (details.backendCode !== undefined) this.backendCode = details.backendCode;
  }

  /** Plain data for logs and JSON; the cause is reduced to its message. */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      adapter: this.adapter,
      operation: this.operation,
      key: this.key,
      status: this.status,
      backendCode: this.backendCode,
    };
  }
}

/** Returns true when `error` is a storage failure caused by a lost conditional write. */
export function isPreconditionFailed(error: unknown): boolean {
  return error instanceof StorageError && error.code === "precondition_failed";
}

/** A run, log or record that was looked up does not exist. */
export class NotFoundError extends RunnerError {
  /** The storage key or location that was missing. */
  readonly key: string;

  /**
   * Creates the error.
   *
   * @param message What was missing, sentence case.
   * @param key The storage key looked up.
   */
  constructor(message: string, key: string) {
    super(message, {}, "not_found");
    this.key = key;
  }
}

/**
 * A followed or watched run stopped heartbeating before it finished: its writer died (a
 * killed process, a function that timed out) and nothing closed the run. Thrown by
 * `followRunLog` once every stored byte was delivered; `offset` lets a caller resume after a
 * reap or keep what it got.
 *
 * @example
 * ```ts
 * import { RunStaleError } from "./errors.ts";
 * const error = new RunStaleError("task-1", "run-1", { offset: 120, updatedAt: "2026-01-01T00:00:00.000Z" });
 * console.log(error.code, error.offset); // "run_stale" 120
 * ```
 */
export class RunStaleError extends RunnerError {
  /** Task id of the stale run. */
  readonly taskId: string;
  /** Run id of the stale run. */
  readonly runId: string;
  /**
   * Bytes of the log delivered before the run was found stale (the next `from`); for
   * `followRunOutput`, the offset reached in the output index.
   */
  readonly offset: number;
  /** From `followRunOutput`: the cursor after the last item delivered (the next `from`). */
  readonly cursor?: string;
  /** The run's last heartbeat (`state.json` `updatedAt`), when it has a state. */
  readonly updatedAt?: string;

  /**
   * Creates the error.
   *
   * @param taskId Task id of the run.
   * @param runId Run id of the run.
   * @param details Bytes delivered so far (or the cursor reached) and the last heartbeat.
   */
  constructor(
    taskId: string,
    runId: string,
    details: { offset: number; cursor?: string; updatedAt?: string },
  ) {
    super(
      `Run '${runId}' of task '${taskId}' is stale: its writer stopped heartbeating${
        details.updatedAt === undefined ? "" : ` (last at '${details.updatedAt}')`
      }`,
      {},
      "run_stale",
    );
    this.taskId = taskId;
    this.runId = runId;
    this.offset = details.offset;
    if (details.cursor !== undefined) this.cursor = details.cursor;
    if (details.updatedAt !== undefined) this.updatedAt = details.updatedAt;
  }
}

/**
 * Codes of the git errors. `git_failed`: a git command failed, timed out or could not start.
 * `dirty_worktree`: a restore target has changes. `base_commit_missing`: a restore target lacks
 * the checkpoint's base commit.
 */
export type GitErrorCode = "git_failed" | "dirty_worktree" | "base_commit_missing";

/** Why a git command failed: its exit code, its deadline, an abort, or it could not start. */
export type GitFailureReason = "exit" | "timeout" | "aborted" | "spawn";

/** What {@linkcode GitError} records about the failed command. */
export interface GitErrorDetails {
  /** The git arguments (after `git`); paths and object ids, never credentials. */
  args: readonly string[];
  /** Why it failed. */
  reason: GitFailureReason;
  /** The exit code, when git exited. */
  exitCode?: number;
  /** The signal that ended it, when one did. */
  signal?: string;
  /** The end of its stderr, at most a few KB. */
  stderr?: string;
  /** The underlying error. */
  cause?: unknown;
}

/**
 * A git command failed, overran its deadline, was aborted, or could not be started.
 *
 * @example
 * ```ts
 * import { GitError } from "./errors.ts";
 * const error = new GitError("git write-tree failed", { args: ["write-tree"], reason: "exit", exitCode: 128 });
 * console.log(error.code, error.exitCode); // "git_failed" 128
 * ```
 */
export class GitError extends RunnerError {
  /** The git arguments (after `git`). */
  readonly args: readonly string[];
  /** Why it failed. */
  readonly reason: GitFailureReason;
  /** The exit code, when git exited. */
  readonly exitCode?: number;
  /** The signal that ended it, when one did. */
  readonly signal?: string;
  /** The end of its stderr. */
  readonly stderr: string;

  /**
   * Creates the error.
   *
   * @param message What failed, sentence case.
   * @param details The command, the reason, its exit code or signal, and its stderr.
   */
  constructor(message: string, details: GitErrorDetails) {
    super(message, { cause: details.cause }, "git_failed");
    this.args = details.args;
    this.reason = details.reason;
    if (details.exitCode !== undefined) this.exitCode = details.exitCode;
    if (details.signal !== undefined) this.signal = details.signal;
    this.stderr = details.stderr ?? "";
  }
}

/**
 * A restore target has changes (`git status --porcelain` reports something, untracked files
 * included), so applying a checkpoint there was refused and nothing was changed.
 *
 * @example
 * ```ts
 * import { DirtyWorktreeError } from "./errors.ts";
 * const error = new DirtyWorktreeError("/work/repo", ["src/app.ts", "notes.txt"]);
 * console.log(error.code, error.paths); // "dirty_worktree" ["src/app.ts", "notes.txt"]
 * ```
 */
export class DirtyWorktreeError extends RunnerError {
  /** The work tree that was refused. */
  readonly worktree: string;
  /** The first changed paths, as `git status` names them. */
  readonly paths: readonly string[];

  /**
   * Creates the error.
   *
   * @param worktree The work tree that was refused.
   * @param paths The first changed paths.
   */
  constructor(worktree: string, paths: readonly string[]) {
    const shown = paths.slice(0, 3).map((path) => `'${path}'`).join(", ");
    const more = paths.length > 3 ? ` (and ${paths.length - 3} more)` : "";
    super(
      `Work tree '${worktree}' has changes: ${shown}${more}; commit, stash or discard them first`,
      {},
      "dirty_worktree",
    );
    this.worktree = worktree;
    this.paths = paths;
  }
}

/**
 * A restore target does not have the commit a checkpoint was captured against, so its patch
 * cannot be applied there (fetch that commit first).
 *
 * @example
 * ```ts
 * import { BaseCommitMissingError } from "./errors.ts";
 * const error = new BaseCommitMissingError("/work/repo", "4b825dc642cb6eb9a060e54bf8d69288fbee4904");
 * console.log(error.code); // "base_commit_missing"
 * ```
 */
export class BaseCommitMissingError extends RunnerError {
  /** The work tree that lacks the commit. */
  readonly worktree: string;
  /** The missing commit. */
  readonly baseCommit: string;

  /**
   * Creates the error.
   *
   * @param worktree The work tree that lacks the commit.
   * @param baseCommit The missing commit.
   */
  constructor(worktree: string, baseCommit: string) {
    super(
      `Work tree '${worktree}' does not have base commit '${baseCommit}'; fetch it first`,
      {},
      "base_commit_missing",
    );
    this.worktree = worktree;
    this.baseCommit = baseCommit;
  }
}

/**
 * Stored bytes do not match what their record says (a checkpoint patch whose sha256 differs, or
 * that does not decompress): nothing was applied.
 *
 * @example
 * ```ts
 * import { IntegrityError } from "./errors.ts";
 * const error = new IntegrityError("Patch does not match its sha256", { key: "runs/t/r/checkpoints/0002-git_diff.patch.gz" });
 * console.log(error.code, error.key); // "integrity_failed" "runs/t/r/checkpoints/0002-git_diff.patch.gz"
 * ```
 */
export class IntegrityError extends RunnerError {
  /** The key of the bytes that failed the check. */
  readonly key: string;

  /**
   * Creates the error.
   *
   * @param message What did not match, sentence case.
   * @param details The key, and the cause if any.
   */
  constructor(message: string, details: { key: string; cause?: unknown }) {
    super(message, { cause: details.cause }, "integrity_failed");
    this.key = details.key;
  }
}

/**
 * A checkpoint does not apply cleanly to a work tree (resuming refuses it before the worker
 * starts; nothing was changed).
 *
 * @example
 * ```ts
 * import { CheckpointConflictError } from "./errors.ts";
 * const error = new CheckpointConflictError("Checkpoint #3 does not apply", ["src/app.ts"]);
 * console.log(error.code, error.paths); // "checkpoint_conflict" ["src/app.ts"]
 * ```
 */
export class CheckpointConflictError extends RunnerError {
  /** The paths that conflict. */
  readonly paths: readonly string[];

  /**
   * Creates the error.
   *
   * @param message What did not apply, sentence case.
   * @param paths The conflicting paths.
   */
  constructor(message: string, paths: readonly string[]) {
    const shown = paths.slice(0, 3).map((path) => `'${path}'`).join(", ");
    const more = paths.length > 3 ? ` (and ${paths.length - 3} more)` : "";
    super(`${message}: ${shown}${more}`, {}, "checkpoint_conflict");
    this.paths = paths;
  }
}
