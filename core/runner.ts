// The runner: prepares a run's layout, drives one executor through it, and records the outcome.

import { emitLogTailCheckpoint } from "./checkpoints.ts";
import { RunnerError } from "./errors.ts";
import type {
  RunAbortReason,
  WorkerExecutionContext,
  WorkerExecutionOutcome,
  WorkerExecutor,
} from "./executor.ts";
import { summarizeLocalRunLogSession } from "./log-session.ts";
import type {
  PreparedStepRun,
  RunStatus,
  StepExecutionRequest,
  StepExecutionResult,
  StructuredData,
} from "./types.ts";
import { type RunStepOptions, streamCap, validateRun } from "./options.ts";
import { openRun, patchState, persistCheckpoint, recordEvent } from "./open-run.ts";
import type { WorkerProcessInfo } from "./owner.ts";
import { createStreamWriter } from "./streams.ts";
import {
  abortReason,
  checkOutcome,
  type Ending,
  errorMessage,
  outcomeLevel,
  settle,
  TERMINAL_EVENT,
} from "./outcome.ts";
import { mergeArtifacts, saveArtifact } from "./artifacts.ts";
import { startRunCheckpoints } from "./run-git.ts";
import type { GitCheckpointer } from "../git/checkpoints.ts";

/** Deadline of the capture taken on timeout or cancel, before the worker is stopped. */
const ABORT_CAPTURE_TIMEOUT_MS = 15_000;
export type { OutputCaps, RunStepOptions } from "./options.ts";

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
  // Null options reach validation (a ValidationError) rather than failing here.
  const live = await openRun(request, options, options?.secrets ?? []);
  await live.writer.flush();
  // Nothing runs after preparation: the capturer's private state is not needed.
  await live.git?.dispose();
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
 * @throws {ValidationError} Bad request, options or executor (including its own
 *   `validate(request)`); nothing was written.
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
  validateRun(request, options, executor);
  const secrets = [...(options.secrets ?? []), ...(executor.secrets ?? [])];
  const live = await openRun(request, options, secrets);
  const { run, writer, session } = live;
  const timeoutGraceMs = options.timeoutGraceMs ?? 5000;
  const controller = new AbortController();
  let closed = false;
  const quietMs = options.flushIntervalMs ?? 1000;
  const stdout = createStreamWriter(live, "stdout", { cap: streamCap(options, "stdout"), quietMs });
  const stderr = createStreamWriter(live, "stderr", { cap: streamCap(options, "stderr"), quietMs });
  let checkpointer: GitCheckpointer | undefined;
  let aborting = false;
  const abort = (reason: RunAbortReason) => {
    if (controller.signal.aborted || aborting) return;
    if (checkpointer !== undefined && reason.reason !== "storage") {
      // The worker's work is captured before the worker is stopped.
      aborting = true;
      const trigger = reason.reason === "timeout" ? "timeout" : "cancel";
      void checkpointer.capture(trigger, { timeoutMs: ABORT_CAPTURE_TIMEOUT_MS })
        .finally(() => controller.abort(reason));
      return;
    }
    controller.abort(reason);
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
    // The first flush comes with the interval (or at close, for a run that ends sooner).
    writer.start();
    checkpointer = await startRunCheckpoints(live);

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
      reportProcess: (info) => {
        if (closed) return;
        const worker: WorkerProcessInfo = { pid: info.pid };
        if (info.pgid !== undefined) worker.pgid = info.pgid;
        patchState(run, { owner: { ...run.state.owner, worker } });
        // Stored at once: a reaper or an operator needs it while the worker runs.
        writer.flush().catch(() => {});
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
    if (checkpointer !== undefined) {
      // Once more after the worker exited (nothing is stored when the tree did not change).
      await checkpointer.stop();
      await checkpointer.capture("final");
    }

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
    });

    persistCheckpoint(
      live,
      emitLogTailCheckpoint(
        run.checkpointManager,
        run.checkpoint,
        live.config,
        session,
        `Captured combined log tail after ${outcome.outcome} for ${request.stepId}.`,
      ),
    );
    // The commit point: the terminal state is written after every other record is stored.
    await writer.close({
      status,
      finishedAt,
      summary,
      exitCode,
      ...(reason !== undefined ? { reason } : {}),
      ...(outcome.signal !== undefined ? { signal: outcome.signal } : {}),
    });

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
    if (outcome.signal !== undefined) result.signal = outcome.signal;
    return result;
  } finally {
    closed = true;
    clearTimeout(timeout);
    if (graceTimer !== undefined) clearTimeout(graceTimer);
    options.signal?.removeEventListener("abort", onCancel);
    stdout.abandon();
    stderr.abandon();
    writer.abandon();
  }
}
