// Checkpoint configuration, sequencing and records (preparation summary, log tail, git-diff plan).

import type {
  CheckpointConfigInput,
  LocalRunLogSession,
  StepExecutionRequest,
  StructuredData,
} from "./types.ts";

/** Kinds of checkpoint records. */
export type CheckpointType = "summary" | "log_tail" | "git_diff";

/** A git command the git-diff plan will run. */
export interface GitCommandPlan {
  /** Why it runs. */
  purpose: string;
  /** Its argv, starting with `git`. */
  args: string[];
}

/** How git-diff checkpoints will be captured and replayed. */
export interface GitDiffPlan {
  /** Always `git_diff`. */
  checkpointType: "git_diff";
  /** Capture cadence bounds in seconds. */
  cadenceSec: { min: number; max: number };
  /** Commands run at each capture. */
  commands: { statusShort: GitCommandPlan; binaryDiff: GitCommandPlan; diffStat?: GitCommandPlan };
  /** How a captured diff is replayed. */
  replay: { strategy: "git_apply"; args: string[]; baseRef?: string };
}

/** Checkpoint options after defaults. */
export interface CheckpointConfig {
  /** `capture` or `disabled`. */
  mode: "capture" | "disabled";
  /** Write the preparation summary record. */
  summary: boolean;
  /** Write the log-tail record at the end. */
  logTail: boolean;
  /** Lines in the log-tail record. */
  logTailLines: number;
  /** Types this run can record. */
  supportedTypes: CheckpointType[];
  /** Git diff plan, when configured. */
  gitDiffPlan?: GitDiffPlan;
  /** Git capture settings with defaults applied, when configured (capture mode only). */
  git?: GitCheckpointConfig;
}

/** Git checkpoint settings after defaults. */
export interface GitCheckpointConfig {
  /** Poll interval and maximum gap, in seconds. */
  cadenceSec: { min: number; max: number };
  /** The base ref as given (resolved to a commit at run start). */
  baseRef?: string;
  /** Largest patch kept, bytes. */
  maxPatchBytes?: number;
  /** Largest new file captured, bytes. */
  maxUntrackedFileBytes?: number;
  /** Most files in a new directory captured. */
  maxUntrackedDirFiles?: number;
  /** Extra exclude patterns. */
  exclude: string[];
  /** Whether the default exclusions apply. */
  defaultExcludes: boolean;
  /** Patches kept (Infinity: all). */
  keepPatches: number;
  /** Deadline of one capture, ms. */
  captureTimeoutMs: number;
}

/** A stored checkpoint record (`checkpoints/<seq>-<type>.json`). */
export interface CheckpointRecord {
  /** `<runId>:checkpoint:<seq>`. */
  checkpointId: string;
  /** Task id. */
  taskId: string;
  /** Step id. */
  stepId: string;
  /** Run id. */
  runId: string;
  /** Checkpoint sequence, from 1. */
  seq: number;
  /** Kind. */
  type: CheckpointType;
  /** Creation time. */
  createdAt: string;
  /** Summary for humans. */
  summary: string;
  /** Kind-specific data. */
  data: StructuredData;
  /** Where the record is stored. */
  file: { storageKey: string; storagePath: string };
}

/** The checkpoint state of a run. */
export interface CheckpointState {
  /** `capture` or `disabled`. */
  mode: "capture" | "disabled";
  /** Types this run can record. */
  supportedTypes: CheckpointType[];
  /** Next checkpoint sequence. */
  nextCheckpointSeq: number;
  /** Last checkpoint sequence written (0 when none). */
  lastCheckpointSeq: number;
  /** Location of `checkpoints/`. */
  checkpointsDir: string;
  /** Git diff plan, when configured. */
  gitDiffPlan?: GitDiffPlan;
  /** Records written, in order. */
  records: CheckpointRecord[];
}

/** Creates checkpoint records for one run. */
export interface RunCheckpointManager {
  /** Key of `checkpoints/`. */
  readonly checkpointsKey: string;
  /** Sequences a new record (not yet stored). */
  create(
    state: CheckpointState,
    type: CheckpointType,
    summary: string,
    data: StructuredData,
    createdAt?: string,
  ): CheckpointRecord;
}

/**
 * Applies defaults to the request's checkpoint options.
 *
 * @param input The request's `checkpoint`.
 * @returns The resolved config.
 */
export function resolveCheckpointConfig(
  input: CheckpointConfigInput | undefined,
): CheckpointConfig {
  const mode = input?.mode ?? "capture";
  const gitDiffPlan = input?.gitDiff === undefined ? undefined : createGitDiffPlan(input.gitDiff);
  const config: CheckpointConfig = {
    mode,
    summary: input?.summary ?? true,
    logTail: input?.logTail ?? true,
    logTailLines: input?.logTailLines ?? 20,
    supportedTypes: mode === "disabled"
      ? []
      : ["summary", "log_tail", ...(gitDiffPlan ? ["git_diff" as const] : [])],
  };
  if (gitDiffPlan !== undefined && mode === "capture") {
    config.gitDiffPlan = gitDiffPlan;
    const git = input!.gitDiff!;
    config.git = {
      cadenceSec: gitDiffPlan.cadenceSec,
      exclude: git.exclude ?? [],
      defaultExcludes: git.defaultExcludes ?? true,
      keepPatches: git.keepPatches ?? Infinity,
      captureTimeoutMs: (git.captureTimeoutSec ?? 60) * 1000,
    };
    if (git.baseRef !== undefined) config.git.baseRef = git.baseRef;
    if (git.maxPatchBytes !== undefined) config.git.maxPatchBytes = git.maxPatchBytes;
    if (git.maxUntrackedFileBytes !== undefined) {
      config.git.maxUntrackedFileBytes = git.maxUntrackedFileBytes;
    }
    if (git.maxUntrackedDirFiles !== undefined) {
      config.git.maxUntrackedDirFiles = git.maxUntrackedDirFiles;
    }
  }
  return config;
}

function createGitDiffPlan(input: NonNullable<CheckpointConfigInput["gitDiff"]>): GitDiffPlan {
  const plan: GitDiffPlan = {
    checkpointType: "git_diff",
    cadenceSec: { min: input.cadenceSec?.min ?? 30, max: input.cadenceSec?.max ?? 300 },
    // The commands each capture runs, against the run's private index and object directory
    // (GIT_INDEX_FILE, GIT_OBJECT_DIRECTORY, GIT_OPTIONAL_LOCKS=0): never the agent's .git.
    commands: {
      statusShort: {
        purpose: "Stage the worktree, untracked files included, into the run's private index.",
        args: ["git", "-c", "core.safecrlf=false", "add", "-A"],
      },
      binaryDiff: {
        purpose: "Capture a replayable diff of the worktree against the base, binary included.",
        args: ["git", "diff-tree", "-r", "--binary", input.baseRef ?? "HEAD", "<tree>"],
      },
    },
    replay: { strategy: "git_apply", args: ["git", "apply", "--3way", "--index"] },
  };
  if (input.includeStat ?? true) {
    plan.commands.diffStat = {
      purpose: "Summarize the size of the change.",
      args: ["git", "diff-tree", "-r", "--numstat", input.baseRef ?? "HEAD", "<tree>"],
    };
  }
  if (input.baseRef !== undefined) plan.replay.baseRef = input.baseRef;
  return plan;
}

/**
 * Creates the checkpoint manager of a run.
 *
 * @param request The request (ids).
 * @param checkpointsKey Key of the run's `checkpoints/`.
 * @param locate Resolves a key to its user-facing location.
 * @returns The manager.
 */
export function createRunCheckpointManager(
  request: Pick<StepExecutionRequest, "taskId" | "stepId" | "runId">,
  checkpointsKey: string,
  locate: (key: string) => string,
): RunCheckpointManager {
  return {
    checkpointsKey,
    create(state, type, summary, data, createdAt = new Date().toISOString()) {
      const seq = state.nextCheckpointSeq;
      const storageKey = `${checkpointsKey}/${String(seq).padStart(4, "0")}-${type}.json`;
      const record: CheckpointRecord = {
        checkpointId: `${request.runId}:checkpoint:${seq}`,
        taskId: request.taskId,
        stepId: request.stepId,
        runId: request.runId,
        seq,
        type,
        createdAt,
        summary,
        data,
        file: { storageKey, storagePath: locate(storageKey) },
      };
      state.nextCheckpointSeq = seq + 1;
      state.lastCheckpointSeq = seq;
      state.records.push(record);
      return record;
    },
  };
}

/**
 * The initial checkpoint state of a run.
 *
 * @param config Resolved config.
 * @param checkpointsDir Location of `checkpoints/`.
 * @returns The state.
 */
export function createPreparedCheckpointState(
  config: CheckpointConfig,
  checkpointsDir: string,
): CheckpointState {
  const state: CheckpointState = {
    mode: config.mode,
    supportedTypes: [...config.supportedTypes],
    nextCheckpointSeq: 1,
    lastCheckpointSeq: 0,
    checkpointsDir,
    records: [],
  };
  if (config.gitDiffPlan !== undefined) state.gitDiffPlan = config.gitDiffPlan;
  return state;
}

/**
 * Creates the preparation summary record, when the config asks for one.
 *
 * @returns The record, or undefined.
 */
export function emitPreparationCheckpoint(
  manager: RunCheckpointManager,
  state: CheckpointState,
  config: CheckpointConfig,
  request: StepExecutionRequest,
  createdAt: string,
): CheckpointRecord | undefined {
  if (config.mode !== "capture" || !config.summary) return undefined;
  const data: StructuredData = {
    stepName: request.stepName,
    stepKind: request.stepKind,
    workerKind: request.workerKind,
    attempt: request.attempt,
    timeoutSec: request.timeoutSec,
  };
  if (request.promptSummary !== undefined) data.promptSummary = request.promptSummary;
  return manager.create(
    state,
    "summary",
    `Prepared ${request.workerKind} attempt ${request.attempt} of step ${request.stepId}.`,
    data,
    createdAt,
  );
}

/**
 * Creates the log-tail record from the session's stream tails, when the config asks for one:
 * the last `lines` lines of stdout and stderr, interleaved in sequence order.
 *
 * @returns The record, or undefined.
 */
export function emitLogTailCheckpoint(
  manager: RunCheckpointManager,
  state: CheckpointState,
  config: CheckpointConfig,
  session: LocalRunLogSession,
  summary: string,
): CheckpointRecord | undefined {
  if (config.mode !== "capture" || !config.logTail) return undefined;
  const entries = [...session.stdout.entries, ...session.stderr.entries].sort((a, b) =>
    a.seq - b.seq
  );
  const lines: { seq: number; channel: string; text: string }[] = [];
  const open: Record<string, { seq: number; channel: string; text: string } | undefined> = {};
  for (const entry of entries) {
    const pieces = entry.text.split("\n");
    pieces.forEach((piece, index) => {
      const last = index === pieces.length - 1;
      const current = open[entry.channel];
      if (current !== undefined) {
        current.text += piece;
        if (!last) open[entry.channel] = undefined;
        return;
      }
      if (last && piece === "") return;
      const line = { seq: entry.seq, channel: entry.channel, text: piece };
      lines.push(line);
      if (last) open[entry.channel] = line;
    });
  }
  const tail = lines.slice(-config.logTailLines);
  return manager.create(state, "log_tail", summary, {
    lineCount: tail.length,
    lines: tail.map((line) => ({ seq: line.seq, channel: line.channel, text: line.text })),
    text: tail.map((line) => `[${line.channel}] ${line.text}`).join("\n"),
  });
}
