// The `local-run-v1` run layout: which key holds what, and where a user finds it.

import type { RunStorage } from "../storage/types.ts";
import {
  DEFAULT_RUN_LAYOUT_VERSION,
  DEFAULT_RUNS_DIRECTORY_NAME,
  type LocalRunPaths,
  type RunKeys,
  type WorkerLogChannel,
} from "./types.ts";

/** File name of each log channel inside a run folder. */
export const LOG_FILE_NAMES: Readonly<Record<WorkerLogChannel, string>> = {
  worker: "worker.log",
  stdout: "stdout.log",
  stderr: "stderr.log",
};

/** File name of the output index inside a run folder (see {@linkcode OutputIndexEntry}). */
export const OUTPUT_INDEX_FILE_NAME = "output-index.jsonl";

/** A log the writer stores: a channel, or the output index. Internal. */
export type StoredLog = WorkerLogChannel | "index";

/** True for `/abs`, `\\share` and `C:\dir` style paths. */
export function isAbsolutePath(path: string): boolean {
  return /^([A-Za-z]:)?[\\/]/.test(path);
}

/**
 * Normalizes a relative runs dir or key prefix to `a/b` form (no leading, trailing or doubled
 * slashes, no `.` segments). `""` means the storage root.
 *
 * @param prefix The runs dir as given.
 * @returns The normalized prefix.
 */
export function normalizePrefix(prefix: string | undefined): string {
  if (prefix === undefined) return DEFAULT_RUNS_DIRECTORY_NAME;
  return prefix.replace(/^([A-Za-z]:)/, "").split(/[\\/]+/).filter((s) => s !== "" && s !== ".")
    .join("/");
}

/** Joins key segments, skipping empty ones. */
export function joinKey(...parts: string[]): string {
  return parts.filter((part) => part !== "").join("/");
}

/**
 * Builds the keys of one run under `runsRoot`.
 *
 * @param runsRoot Normalized runs prefix (`runs`, or `""`).
 * @param taskId Task id (already validated).
 * @param runId Run id (already validated).
 * @returns The run's keys.
 */
export function createRunKeys(runsRoot: string, taskId: string, runId: string): RunKeys {
  const taskRunsDir = joinKey(runsRoot, taskId);
  const runDir = joinKey(taskRunsDir, runId);
  return {
    runsRoot,
    taskRunsDir,
    runDir,
    checkpointsDir: `${runDir}/checkpoints`,
    artifactsDir: `${runDir}/artifacts`,
    meta: `${runDir}/meta.json`,
    state: `${runDir}/state.json`,
    workerLog: `${runDir}/${LOG_FILE_NAMES.worker}`,
    stdoutLog: `${runDir}/${LOG_FILE_NAMES.stdout}`,
    stderrLog: `${runDir}/${LOG_FILE_NAMES.stderr}`,
    outputIndex: `${runDir}/${OUTPUT_INDEX_FILE_NAME}`,
  };
}

/** The key of a log channel of a run, or of its output index. */
export function logKey(keys: RunKeys, channel: StoredLog): string {
  return channel === "worker"
    ? keys.workerLog
    : channel === "stdout"
    ? keys.stdoutLog
    : channel === "stderr"
    ? keys.stderrLog
    : keys.outputIndex;
}

/**
 * Prefix of the segment objects of a log on a storage without native append:
 * `<runDir>/<log>.segments/`. Segment `n` (from 1) is `<prefix><n as 10 digits>`.
 */
export function segmentPrefix(logKeyValue: string): string {
  return `${logKeyValue}.segments/`;
}

/** Key of segment `index` (from 1) of a log. */
export function segmentKey(logKeyValue: string, index: number): string {
  return `${segmentPrefix(logKeyValue)}${String(index).padStart(10, "0")}`;
}

/**
 * Resolves every key of a run to its user-facing location on `storage`.
 *
 * @param storage The storage the run lives on.
 * @param keys The run's keys.
 * @param repoRoot The request's repo root, echoed in the paths.
 * @returns Locations: absolute file paths on disk, URLs elsewhere.
 */
export function createLocalRunPaths(
  storage: RunStorage,
  keys: RunKeys,
  repoRoot: string,
): LocalRunPaths {
  const at = (key: string) => storage.locate(key);
  return {
    layoutVersion: DEFAULT_RUN_LAYOUT_VERSION,
    repoRoot,
    runsRootDir: at(keys.runsRoot),
    taskRunsDir: at(keys.taskRunsDir),
    runDir: at(keys.runDir),
    checkpointsDir: at(keys.checkpointsDir),
    artifactsDir: at(keys.artifactsDir),
    metaPath: at(keys.meta),
    statePath: at(keys.state),
    workerLogPath: at(keys.workerLog),
    stdoutLogPath: at(keys.stdoutLog),
    stderrLogPath: at(keys.stderrLog),
    outputIndexPath: at(keys.outputIndex),
  };
}
