// The open phase of a run: validate, create its records (meta.json first, create-only) and
// record the preparation events; plus the helpers every phase uses to record events.

import type { RunStorage } from "../storage/types.ts";
import { utf8Length } from "./bytes.ts";
import {
  type CheckpointConfig,
  type CheckpointRecord,
  createPreparedCheckpointState,
  createRunCheckpointManager,
  emitPreparationCheckpoint,
  resolveCheckpointConfig,
} from "./checkpoints.ts";
import { createLocalRunPaths, createRunKeys } from "./layout.ts";
import {
  createLocalRunLogSession,
  recordLifecycleEvent,
  type RunLogSession,
} from "./log-session.ts";
import { createRedactor, type Redactor } from "./redact.ts";
import { createRunWriter, type PersistedProgress, type RunWriter } from "./run-writer.ts";
import { describeOwner } from "./owner.ts";
import { CheckpointConflictError } from "./errors.ts";
import type { RunGit } from "../git/checkpoints.ts";
import {
  DEFAULT_RUN_LAYOUT_VERSION,
  type PreparedStepRun,
  type RunMetadata,
  type RunStatePatch,
  type RunStateSnapshot,
  type StepArtifact,
  type StepExecutionRequest,
  type StructuredData,
  type WorkerLifecycleEventInput,
} from "./types.ts";
import { checkDefaultRoot, resolveStorage, type RunStepOptions, validateRun } from "./options.ts";

/** Internal: everything the runner keeps about a live run. */
export interface LiveRun {
  run: PreparedStepRun;
  session: RunLogSession;
  storage: RunStorage;
  writer: RunWriter;
  config: CheckpointConfig;
  redactor: Redactor | undefined;
  startedAt: string;
  savedArtifacts: StepArtifact[];
  /** Git checkpoints and resume of this run, when configured. */
  git?: RunGit;
}

export function patchState(run: PreparedStepRun, patch: RunStatePatch): void {
  run.state = { ...run.state, ...patch };
}

export function recordEvent(
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

/**
 * Starts storing a checkpoint record beside the logs; state.json claims it once it is stored.
 * Not awaited by the phases (close() waits for it): a failure reaches the run through the
 * writer's failure.
 */
export function persistCheckpoint(live: LiveRun, record: CheckpointRecord | undefined): void {
  if (record === undefined) return;
  const body = JSON.stringify(live.redactor ? live.redactor.redactData(record) : record, null, 2) +
    "\n";
  live.writer.writeRecord(record.file.storageKey, body, () => {
    patchState(live.run, { checkpointSeq: Math.max(live.run.state.checkpointSeq, record.seq) });
  }).catch(() => {});
}

export async function openRun(
  request: StepExecutionRequest,
  options: RunStepOptions,
  secrets: readonly (string | RegExp)[],
): Promise<LiveRun> {
  validateRun(request, options);
  await checkDefaultRoot(request, options);
  const startedAt = request.createdAt ?? new Date().toISOString();
  const { storage, runsRoot } = resolveStorage(request, options);
  const keys = createRunKeys(runsRoot, request.taskId, request.runId);
  const logPaths = createLocalRunPaths(storage, keys, request.runtime.repoRoot);
  const redactor = createRedactor(secrets);
  const config = resolveCheckpointConfig(request.checkpoint);
  // Git before anything is written: a resume that would not apply, or a worktree that is not a
  // git work tree, is refused while nothing of the run is stored.
  const git = config.git !== undefined || request.resumeFrom !== undefined
    ? await (await import("../git/checkpoints.ts")).prepareRunGit({
      storage,
      taskId: request.taskId,
      runsRootDir: runsRoot,
      worktree: request.runtime.worktreePath,
      runsPath: logPaths.runsRootDir,
      ...(config.git !== undefined ? { git: config.git } : {}),
      ...(request.resumeFrom !== undefined ? { resumeFrom: request.resumeFrom } : {}),
    })
    : undefined;
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
  if (git?.capturer !== undefined) metadata.git = { baseCommit: git.capturer.baseCommit };
  if (git?.resume !== undefined) {
    const { runId, seq, baseCommit } = git.resume;
    metadata.resumedFrom = { runId, seq, baseCommit };
  }
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
  const owner = await describeOwner();
  run.state.owner = owner;
  // What a state write may claim: the stored sequence and bytes, never what is still buffered.
  // The terminal status comes only with `final`, written once by close(): the commit point.
  const snapshot = (persisted: PersistedProgress, final?: RunStatePatch): RunStateSnapshot => {
    const dropped = { stdout: session.stdout.droppedBytes, stderr: session.stderr.droppedBytes };
    run.state = {
      ...run.state,
      updatedAt: new Date().toISOString(),
      lastEventSeq: persisted.seq,
      stdoutBytes: persisted.stdoutBytes,
      stderrBytes: persisted.stderrBytes,
      ...(persisted.lastOutputAt !== undefined
        ? { lastOutputAt: new Date(persisted.lastOutputAt).toISOString() }
        : {}),
      ...(dropped.stdout + dropped.stderr > 0 ? { droppedBytes: dropped } : {}),
      ...final,
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
    ...(git !== undefined ? { git } : {}),
  };

  // meta.json first, create-only: it is the fence against a duplicate run. Nothing is written
  // before it, so a refused duplicate leaves no trace. Everything after it goes out together:
  // the preparation checkpoint now, the events and state.json with the first flush (within one
  // interval, or at close for a run that ends sooner).
  try {
    await writer.create(JSON.stringify(run.metadata, null, 2) + "\n");
  } catch (error) {
    await git?.dispose();
    throw error;
  }
  persistCheckpoint(live, preparation);
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
    if (git?.capturer !== undefined) data.gitBaseCommit = git.capturer.baseCommit;
    recordEvent(live, {
      type: "checkpoint_slot_reserved",
      level: "info",
      message: `Initialized checkpoint manager at sequence ${checkpoint.lastCheckpointSeq}.`,
      data,
    });
  }
  if (git?.resume !== undefined) await resume(live, git.resume);
  return live;
}

/**
 * Applies the checkpoint a run resumes from (a dry run accepted it before meta.json). When it
 * fails now (the worktree changed meanwhile), the run is closed as failed (`resume_failed`)
 * before any worker starts, and the error is thrown.
 */
async function resume(live: LiveRun, from: NonNullable<RunGit["resume"]>): Promise<void> {
  const worktree = live.run.request.runtime.worktreePath;
  let problem: unknown;
  let conflicts: string[] = [];
  try {
    const { applyResume } = await import("../git/checkpoints.ts");
    conflicts = await applyResume(worktree, from);
  } catch (error) {
    problem = error;
  }
  if (problem === undefined && conflicts.length === 0) {
    recordEvent(live, {
      type: "checkpoint_restored",
      level: "info",
      message:
        `Restored git checkpoint #${from.seq} of run '${from.runId}' into the worktree (base ${from.baseCommit}).`,
      data: {
        fromRunId: from.runId,
        seq: from.seq,
        baseCommit: from.baseCommit,
        excluded: from.excluded.length,
      },
    });
    return;
  }
  const error = problem ??
    new CheckpointConflictError(
      `Checkpoint #${from.seq} of run '${from.runId}' did not apply cleanly to '${worktree}'`,
      conflicts,
    );
  const summary = `Could not resume from run '${from.runId}': ${(error as Error).message}`;
  const finishedAt = new Date().toISOString();
  recordEvent(live, {
    type: "step_failed",
    level: "error",
    createdAt: finishedAt,
    message: summary,
    data: { ok: false, blocked: false, needsHuman: false, exitCode: 1, reason: "resume_failed" },
  });
  try {
    await live.writer.close({
      status: "failed",
      finishedAt,
      summary,
      exitCode: 1,
      reason: "resume_failed",
    });
  } finally {
    await live.git?.dispose();
  }
  throw error;
}
