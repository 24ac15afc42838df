// Git checkpoints of a run: capturing the worktree on a cadence and at the run's events into
// `checkpoints/NNNN-git_diff.json` records plus gzip patches, and restoring one onto a work tree.
// Loaded by the runner only when `checkpoint.gitDiff` is set or a run resumes.

import type { RunStorage } from "../storage/types.ts";
import { guardStorage } from "../storage/guard.ts";
import { concatBytes, sha256Hex } from "../core/bytes.ts";
import type { CheckpointRecord } from "../core/checkpoints.ts";
import {
  CheckpointConflictError,
  IntegrityError,
  NotFoundError,
  RunnerError,
  ValidationError,
} from "../core/errors.ts";
import type { GitCheckpointConfig } from "../core/checkpoints.ts";
import { createRunKeys, normalizePrefix } from "../core/layout.ts";
import { IdSchema, parseOrThrow } from "../core/schemas.ts";
import type { StructuredData, StructuredValue } from "../core/types.ts";
import type { GitCapturer, GitCaptureResult, GitExcludedPath } from "./capture.ts";
import type { GitCheckpointTrigger } from "./schedule.ts";

export type { GitCheckpointTrigger } from "./schedule.ts";

/** How a git checkpoint's patch is stored. */
export interface GitPatchObject {
  /** Storage key of the patch object (`checkpoints/NNNN-git_diff.patch.gz`). */
  key: string;
  /** Its user-facing location. */
  location: string;
  /** Always `gzip`. */
  encoding: "gzip";
  /** Size of the patch, uncompressed. */
  bytes: number;
  /** Size of the stored (compressed) object. */
  storedBytes: number;
  /** Hex SHA-256 of the uncompressed patch. */
  sha256: string;
  /** Set when retention (`keepPatches`) deleted the object; the record stays. */
  deletedAt?: string;
}

/** The `data` of a `git_diff` checkpoint record. */
export interface GitCheckpointData {
  /** Why it was captured. */
  trigger: GitCheckpointTrigger;
  /** The commit the patch applies to. */
  baseCommit: string;
  /** The agent's `HEAD` at capture time (`null` on an unborn branch). */
  head: string | null;
  /** The tree the patch leads to. */
  tree: string;
  /** The patch object; `null` when the patch was over `maxPatchBytes` (`truncated`). */
  patch: GitPatchObject | null;
  /** True when the patch was dropped for its size (the stats are kept). */
  truncated: boolean;
  /** Changed files, insertions, deletions, binary files and the first paths. */
  stats: {
    files: number;
    insertions: number;
    deletions: number;
    binaryFiles: number;
    paths: { path: string; status: string }[];
  };
  /** Paths left out and why. */
  excluded: GitExcludedPath[];
  /** Repositories found inside the worktree (their content is not in the patch). */
  nestedRepositories: { path: string; head?: string; submodule: boolean }[];
  /** When the capture started. */
  capturedAt: string;
  /** How long it took, ms. */
  durationMs: number;
}

/** Options of {@linkcode restoreCheckpoint}. */
export interface RestoreCheckpointOptions {
  /** The work tree to apply the checkpoint to (clean, holding the base commit). */
  worktree: string;
  /** Which git checkpoint (its checkpoint sequence); default the latest with a patch. */
  seq?: number;
  /** Work out the result without changing anything. */
  dryRun?: boolean;
  /** Deadline of the apply, ms (default 120 000). */
  timeoutMs?: number;
}

/** What {@linkcode restoreCheckpoint} resolves to. */
export interface RestoreCheckpointResult {
  /** The checkpoint applied. */
  seq: number;
  /** Its base commit. */
  baseCommit: string;
  /** Whether the work tree was changed (never on a dry run). */
  applied: boolean;
  /** Paths that did not apply cleanly (left with conflict markers or unchanged). */
  conflicts: string[];
  /** Paths the capture had left out, and why (they are not restored). */
  excluded: GitExcludedPath[];
}

/** Which run, for {@linkcode restoreCheckpoint}. */
export interface CheckpointRunRef {
  /** Task id. */
  taskId: string;
  /** Run id. */
  runId: string;
  /** Runs prefix (default `runs`). */
  runsRootDir?: string;
}

const decoder = new TextDecoder();

/** Gzips bytes with the web-standard CompressionStream. */
export async function gzip(data: Uint8Array): Promise<Uint8Array> {
  return await transform(data, new CompressionStream("gzip"));
}

async function gunzip(data: Uint8Array): Promise<Uint8Array> {
  return await transform(data, new DecompressionStream("gzip"));
}

async function transform(
  data: Uint8Array,
  stream: CompressionStream | DecompressionStream,
): Promise<Uint8Array> {
  const writer = stream.writable.getWriter();
  const written = writer.write(data as Uint8Array<ArrayBuffer>).then(() => writer.close());
  const parts: Uint8Array[] = [];
  const reader = stream.readable.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
  }
  await written;
  return concatBytes(parts);
}

/** The patch key beside a record key. */
export function patchKeyOf(recordKey: string): string {
  return recordKey.replace(/\.json$/, ".patch.gz");
}

/**
 * Turns a capture into the `data` of its record (the patch object's key and sizes included).
 *
 * @param capture The capture.
 * @param trigger Why it was taken.
 * @param patch Where its patch is stored (undefined when truncated).
 * @returns The record data, plain JSON.
 */
export function checkpointData(
  capture: GitCaptureResult,
  trigger: GitCheckpointTrigger,
  patch: GitPatchObject | undefined,
): StructuredData {
  const data: GitCheckpointData = {
    trigger,
    baseCommit: capture.baseCommit,
    head: capture.head ?? null,
    tree: capture.tree,
    patch: patch ?? null,
    truncated: capture.truncated,
    stats: {
      files: capture.stats.files,
      insertions: capture.stats.insertions,
      deletions: capture.stats.deletions,
      binaryFiles: capture.stats.binaryFiles,
      paths: capture.stats.paths.map((p) => ({ path: p.path, status: p.status })),
    },
    excluded: capture.excluded,
    nestedRepositories: capture.nestedRepositories,
    capturedAt: capture.capturedAt,
    durationMs: Math.round(capture.durationMs),
  };
  return JSON.parse(JSON.stringify(data)) as Record<string, StructuredValue>;
}

/** The git checkpoints of a run, read from storage, by sequence. */
export async function readGitCheckpoints(
  storage: RunStorage,
  checkpointsDir: string,
): Promise<CheckpointRecord[]> {
  const keys: string[] = [];
  for await (const key of storage.list(`${checkpointsDir}/`)) {
    if (/\/\d+-git_diff\.json$/.test(key)) keys.push(key);
  }
  const records = await Promise.all(keys.map(async (key) => {
    const bytes = await storage.read(key);
    if (bytes === undefined) return undefined;
    try {
      return JSON.parse(decoder.decode(bytes)) as CheckpointRecord;
    } catch {
      throw new ValidationError(
        [{ path: "(root)", message: "is not JSON" }],
        `Malformed record '${key}'`,
      );
    }
  }));
  return records.filter((r): r is CheckpointRecord => r !== undefined).sort((a, b) =>
    a.seq - b.seq
  );
}

/**
 * Picks a git checkpoint of a run and reads its patch, verified.
 *
 * @returns The record, its data and the uncompressed patch.
 * @throws {NotFoundError} No such run, no git checkpoint (or none with a stored patch).
 * @throws {IntegrityError} The stored patch does not match its recorded sha256.
 */
export async function loadGitCheckpoint(
  storage: RunStorage,
  ref: CheckpointRunRef,
  seq?: number,
): Promise<{ record: CheckpointRecord; data: GitCheckpointData; patch: Uint8Array }> {
  parseOrThrow(IdSchema, ref?.taskId, "Invalid run reference 'taskId'");
  parseOrThrow(IdSchema, ref?.runId, "Invalid run reference 'runId'");
  if (seq !== undefined && (!Number.isInteger(seq) || seq < 1)) {
    throw new ValidationError([{ path: "seq", message: "must be a positive integer" }]);
  }
  const store = guardStorage(storage);
  const keys = createRunKeys(normalizePrefix(ref.runsRootDir), ref.taskId, ref.runId);
  if (await store.read(keys.meta) === undefined) {
    throw new NotFoundError(`Run '${ref.runId}' of task '${ref.taskId}' does not exist`, keys.meta);
  }
  const records = await readGitCheckpoints(store, keys.checkpointsDir);
  const usable = (r: CheckpointRecord) => {
    const data = r.data as unknown as GitCheckpointData;
    return data.patch !== null && data.patch.deletedAt === undefined;
  };
  const record = seq === undefined
    ? [...records].reverse().find(usable)
    : records.find((r) => r.seq === seq);
  if (record === undefined) {
    throw new NotFoundError(
      seq === undefined
        ? `Run '${ref.runId}' of task '${ref.taskId}' has no git checkpoint to restore`
        : `Run '${ref.runId}' of task '${ref.taskId}' has no git checkpoint #${seq}`,
      keys.checkpointsDir,
    );
  }
  const data = record.data as unknown as GitCheckpointData;
  if (data.patch === null) {
    throw new NotFoundError(
      `Git checkpoint #${record.seq} of run '${ref.runId}' kept no patch (it was over maxPatchBytes)`,
      record.file.storageKey,
    );
  }
  if (data.patch.deletedAt !== undefined) {
    throw new NotFoundError(
      `The patch of git checkpoint #${record.seq} of run '${ref.runId}' was deleted by retention at ${data.patch.deletedAt}`,
      data.patch.key,
    );
  }
  const stored = await store.read(data.patch.key);
  if (stored === undefined) {
    throw new NotFoundError(
      `The patch of git checkpoint #${record.seq} of run '${ref.runId}' is missing`,
      data.patch.key,
    );
  }
  let patch: Uint8Array;
  try {
    patch = await gunzip(stored);
  } catch (error) {
    throw new IntegrityError(`The patch of git checkpoint #${record.seq} is not valid gzip`, {
      key: data.patch.key,
      cause: error,
    });
  }
  const actual = await sha256Hex(patch);
  if (actual !== data.patch.sha256) {
    throw new IntegrityError(
      `The patch of git checkpoint #${record.seq} does not match its sha256 (recorded ${data.patch.sha256}, read ${actual})`,
      { key: data.patch.key },
    );
  }
  return { record, data, patch };
}

/**
 * Restores a run's git checkpoint onto a work tree: reads the record (by `seq`, or the latest
 * with a stored patch), verifies the patch's sha256, and applies it with a 3-way apply. The
 * target must be clean (`git status --porcelain` empty, untracked files included) and hold the
 * base commit. Nothing is deleted beyond what the patch deletes (no `clean`, no `reset --hard`)
 * and nothing is committed; changes that overlap the target's own are merged with conflict
 * markers and listed in `conflicts`.
 *
 * @param storage The storage the run lives on.
 * @param ref Which run.
 * @param options The target work tree, `seq`, `dryRun`.
 * @returns The checkpoint applied, whether the tree changed, conflicts and what the capture
 *   had left out.
 * @throws {NotFoundError} No such run, or no git checkpoint to restore.
 * @throws {IntegrityError} The stored patch does not match its sha256.
 * @throws {DirtyWorktreeError} The target has changes; nothing was touched.
 * @throws {BaseCommitMissingError} The target lacks the base commit.
 * @throws {GitError} git failed.
 *
 * @example
 * ```ts ignore
 * import { createFsStorage, restoreCheckpoint } from "../mod.ts";
 * const storage = createFsStorage({ root: "/srv/repo" });
 * const result = await restoreCheckpoint(storage, { taskId: "task-42", runId: "run-001" }, {
 *   worktree: "/srv/repo/.worktrees/retry",
 * });
 * console.log(result.seq, result.applied, result.conflicts);
 * ```
 */
export async function restoreCheckpoint(
  storage: RunStorage,
  ref: CheckpointRunRef,
  options: RestoreCheckpointOptions,
): Promise<RestoreCheckpointResult> {
  if (typeof options?.worktree !== "string" || options.worktree === "") {
    throw new ValidationError([{ path: "worktree", message: "must be a non-empty path" }]);
  }
  const { record, data, patch } = await loadGitCheckpoint(storage, ref, options.seq);
  const { applyGitPatch } = await import("./restore.ts");
  const result = await applyGitPatch({
    worktree: options.worktree,
    patch,
    baseCommit: data.baseCommit,
    dryRun: options.dryRun ?? false,
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
  });
  return {
    seq: record.seq,
    baseCommit: data.baseCommit,
    applied: result.applied,
    conflicts: result.conflicts,
    excluded: data.excluded,
  };
}

/** What the runner needs to record a capture (kept apart from the runner's internals). */
export interface GitCheckpointSink {
  /** Stores bytes at a key, create-only, in the run's write queue. */
  writeObject(key: string, data: Uint8Array): Promise<void>;
  /** Sequences and stores a checkpoint record; resolves with it once stored. */
  storeRecord(summary: string, data: StructuredData): Promise<CheckpointRecord>;
  /** Rewrites a stored record (retention marks). */
  rewriteRecord(record: CheckpointRecord): Promise<void>;
  /** Deletes a key. */
  deleteObject(key: string): Promise<void>;
  /** Locates a key. */
  locate(key: string): string;
  /** Key of the record the next checkpoint will get. */
  nextRecordKey(): string;
  /** Records a lifecycle event. */
  event(
    type: "checkpoint_captured" | "checkpoint_failed",
    level: "info" | "warn",
    message: string,
    data: StructuredData,
  ): void;
}

/** Settings of the capture loop. */
export interface GitCheckpointSettings {
  /** Poll interval and maximum gap, ms. */
  cadence: { minMs: number; maxMs: number };
  /** Patches kept; older ones are deleted (their records stay, marked). */
  keepPatches: number;
  /** Deadline of one capture, ms. */
  captureTimeoutMs: number;
}

/** A running capture loop over one run; see {@linkcode startGitCheckpoints}. */
export interface GitCheckpointer {
  /** The base commit every patch applies to. */
  readonly baseCommit: string;
  /**
   * Captures now (one capture at a time: waits for the one under way) and stores the result
   * when the tree changed since the last stored one. Never rejects: a failure becomes a
   * `checkpoint_failed` event.
   */
  capture(trigger: GitCheckpointTrigger, options?: { timeoutMs?: number }): Promise<void>;
  /** Stops the cadence timer and waits for the capture under way. */
  stop(): Promise<void>;
  /** Removes the private index and objects. */
  dispose(): Promise<void>;
}

/**
 * Starts capturing a worktree into a run: a poll every `cadence.minMs` (a `git status`-sized
 * tick when nothing changed), a stored checkpoint when the tree changed and then stayed the same
 * for one poll (`quiet`) or when `cadence.maxMs` passed since the last stored one (`cadence`).
 *
 * @param capturer The worktree's capturer.
 * @param sink Where records go.
 * @param settings Cadence, retention, deadline.
 * @param startedAt The run's start, ms.
 * @returns The checkpointer.
 */
export async function startGitCheckpoints(
  capturer: GitCapturer,
  sink: GitCheckpointSink,
  settings: GitCheckpointSettings,
  startedAt: number,
): Promise<GitCheckpointer> {
  const { createCheckpointSchedule } = await import("./schedule.ts");
  const schedule = createCheckpointSchedule(settings.cadence, {
    startedAt,
    baseTree: capturer.baseTree,
  });
  let chain: Promise<void> = Promise.resolve();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const stored: CheckpointRecord[] = [];

  function run<T>(work: () => Promise<T>): Promise<T> {
    const next = chain.then(work);
    chain = next.then(() => {}, () => {});
    return next;
  }

  async function storeCapture(capture: GitCaptureResult, trigger: GitCheckpointTrigger) {
    const recordKey = sink.nextRecordKey();
    let patch: GitPatchObject | undefined;
    if (!capture.truncated && capture.patch !== undefined) {
      const compressed = await gzip(capture.patch);
      const key = patchKeyOf(recordKey);
      await sink.writeObject(key, compressed);
      patch = {
        key,
        location: sink.locate(key),
        encoding: "gzip",
        bytes: capture.patch.byteLength,
        storedBytes: compressed.byteLength,
        sha256: capture.sha256!,
      };
    }
    const { stats } = capture;
    const summary = capture.truncated
      ? `Git checkpoint (${trigger}): ${stats.files} files changed; patch over its size limit, not kept.`
      : `Git checkpoint (${trigger}): ${stats.files} files changed, +${stats.insertions} -${stats.deletions}.`;
    const record = await sink.storeRecord(summary, checkpointData(capture, trigger, patch));
    schedule.stored(capture.tree, Date.now());
    sink.event("checkpoint_captured", "info", summary, {
      seq: record.seq,
      trigger,
      files: stats.files,
      patchBytes: capture.patchBytes,
      truncated: capture.truncated,
      record: record.file.storagePath,
    });
    if (patch !== undefined) stored.push(record);
    await applyRetention();
  }

  async function applyRetention() {
    while (stored.length > settings.keepPatches) {
      const old = stored.shift()!;
      const data = old.data as unknown as GitCheckpointData;
      if (data.patch === null) continue;
      await sink.deleteObject(data.patch.key);
      data.patch.deletedAt = new Date().toISOString();
      await sink.rewriteRecord(old);
    }
  }

  // The last tree actually stored (the base tree before any): a capture whose store failed is
  // taken again, and an unchanged worktree stores nothing.
  let storedTree = capturer.baseTree;
  async function attempt(trigger: GitCheckpointTrigger, timeoutMs: number) {
    try {
      const capture = await capturer.capture({ timeoutMs, force: true });
      if (capture !== undefined && capture.tree !== storedTree) {
        await storeCapture(capture, trigger);
        storedTree = capture.tree;
      }
    } catch (error) {
      sink.event(
        "checkpoint_failed",
        "warn",
        `Git checkpoint (${trigger}) failed: ${describe(error)}`,
        {
          trigger,
          error: describe(error),
        },
      );
    }
  }

  async function tick() {
    timer = undefined;
    if (stopped) return;
    await run(async () => {
      if (stopped) return;
      try {
        const snapshot = await capturer.snapshot({ timeoutMs: settings.captureTimeoutMs });
        const trigger = schedule.tick(snapshot.tree, Date.now());
        if (trigger !== undefined) await attempt(trigger, settings.captureTimeoutMs);
      } catch (error) {
        sink.event("checkpoint_failed", "warn", `Git checkpoint poll failed: ${describe(error)}`, {
          trigger: "cadence",
          error: describe(error),
        });
      }
    });
    if (!stopped) timer = setTimeout(tick, schedule.pollMs);
  }
  timer = setTimeout(tick, schedule.pollMs);

  const stop = async () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    await chain;
  };
  return {
    baseCommit: capturer.baseCommit,
    capture(trigger, options = {}) {
      return run(() => attempt(trigger, options.timeoutMs ?? settings.captureTimeoutMs));
    },
    stop,
    async dispose() {
      await stop();
      await capturer.dispose();
    },
  };
}

function describe(error: unknown): string {
  const text = error instanceof RunnerError || error instanceof Error
    ? error.message
    : String(error);
  return text.length > 500 ? `${text.slice(0, 500)}…` : text;
}

/** What a run needs from git before its records are created; see {@linkcode prepareRunGit}. */
export interface RunGit {
  /** The capturer of the run's worktree, when git checkpoints are on. */
  capturer?: GitCapturer;
  /** The checkpoint this run resumes from, checked by a dry run (not applied yet). */
  resume?: {
    runId: string;
    seq: number;
    baseCommit: string;
    patch: Uint8Array;
    excluded: GitExcludedPath[];
  };
  /** Removes the capturer's private state. */
  dispose(): Promise<void>;
}

/**
 * Before anything of a run is written: loads and dry-runs the checkpoint it resumes from (so a
 * dirty worktree, a missing base commit or a conflict is refused while nothing is stored), and
 * creates the worktree's capturer (its base: the resumed run's base commit, else `baseRef`, else
 * `HEAD`), whose private index and objects live in a fresh temporary directory.
 *
 * @param options The storage, the run's ids, its worktree, the git settings and the resume point.
 * @returns The capturer and the verified resume patch.
 * @throws {NotFoundError} The run to resume from, or its checkpoint, does not exist.
 * @throws {DirtyWorktreeError} The worktree has changes (resume).
 * @throws {CheckpointConflictError} The checkpoint would not apply cleanly (resume).
 * @throws {ValidationError} The worktree is not in a git work tree, or the base is not a commit.
 */
export async function prepareRunGit(options: {
  storage: RunStorage;
  taskId: string;
  runsRootDir?: string;
  worktree: string;
  git?: GitCheckpointConfig;
  resumeFrom?: { runId: string; seq?: number };
  /** Where the runs are written, when on this machine's disk: left out of captures. */
  runsPath?: string;
}): Promise<RunGit> {
  const result: RunGit = {
    async dispose() {
      await result.capturer?.dispose();
      if (stateDir !== undefined) {
        const fs = await import("node:fs/promises");
        await fs.rm(stateDir, { recursive: true, force: true });
      }
    },
  };
  let stateDir: string | undefined;
  if (options.resumeFrom !== undefined) {
    const source = { taskId: options.taskId, runId: options.resumeFrom.runId };
    const { record, data, patch } = await loadGitCheckpoint(
      options.storage,
      options.runsRootDir === undefined ? source : { ...source, runsRootDir: options.runsRootDir },
      options.resumeFrom.seq,
    );
    const { applyGitPatch } = await import("./restore.ts");
    const trial = await applyGitPatch({
      worktree: options.worktree,
      patch,
      baseCommit: data.baseCommit,
      dryRun: true,
    });
    if (trial.conflicts.length > 0) {
      throw new CheckpointConflictError(
        `Checkpoint #${record.seq} of run '${options.resumeFrom.runId}' does not apply cleanly to '${options.worktree}'`,
        trial.conflicts,
      );
    }
    result.resume = {
      runId: options.resumeFrom.runId,
      seq: record.seq,
      baseCommit: data.baseCommit,
      patch,
      excluded: data.excluded,
    };
  }
  if (options.git !== undefined) {
    const [{ createGitCapturer }, fs, os, path] = await Promise.all([
      import("./capture.ts"),
      import("node:fs/promises"),
      import("node:os"),
      import("node:path"),
    ]);
    stateDir = await fs.mkdtemp(path.join(os.tmpdir(), "baa-git-"));
    try {
      const git = options.git;
      const runsExclude = await runsDirExclude(options.worktree, options.runsPath);
      result.capturer = await createGitCapturer({
        worktree: options.worktree,
        stateDir,
        ...(result.resume !== undefined
          ? { baseRef: result.resume.baseCommit }
          : git.baseRef !== undefined
          ? { baseRef: git.baseRef }
          : {}),
        exclude: runsExclude === undefined ? git.exclude : [...git.exclude, runsExclude],
        defaultExcludes: git.defaultExcludes,
        ...(git.maxPatchBytes !== undefined ? { maxPatchBytes: git.maxPatchBytes } : {}),
        ...(git.maxUntrackedFileBytes !== undefined
          ? { maxUntrackedFileBytes: git.maxUntrackedFileBytes }
          : {}),
        ...(git.maxUntrackedDirFiles !== undefined
          ? { maxUntrackedDirFiles: git.maxUntrackedDirFiles }
          : {}),
        timeoutMs: git.captureTimeoutMs,
      });
    } catch (error) {
      await result.dispose();
      throw error;
    }
  }
  return result;
}

/**
 * The exclude pattern of a runs directory inside the worktree (the default filesystem storage
 * writes `<repoRoot>/runs`): without it every tick would see the run's own logs change.
 */
async function runsDirExclude(
  worktree: string,
  runsPath: string | undefined,
): Promise<string | undefined> {
  if (runsPath === undefined || !runsPath.startsWith("/")) return undefined;
  const [{ runGit }, fs] = await Promise.all([import("./exec.ts"), import("node:fs/promises")]);
  const top = new TextDecoder().decode(
    (await runGit(["rev-parse", "--show-toplevel"], { cwd: worktree, okExitCodes: [0, 128] }))
      .stdout,
  ).trim();
  if (top === "") return undefined;
  const runs = await fs.realpath(runsPath).catch(() => runsPath);
  const root = await fs.realpath(top).catch(() => top);
  if (runs !== root && !runs.startsWith(`${root}/`)) return undefined;
  const relative = runs.slice(root.length + 1);
  // The whole worktree as the runs folder would exclude everything: leave that to the caller.
  return relative === "" ? undefined : `/${relative}/`;
}

/**
 * Applies a resume patch that a dry run accepted (the worktree may have changed since).
 *
 * @param worktree The run's worktree.
 * @param resume The verified patch and its base.
 * @returns Conflicting paths (empty on success).
 */
export async function applyResume(
  worktree: string,
  resume: NonNullable<RunGit["resume"]>,
): Promise<string[]> {
  const { applyGitPatch } = await import("./restore.ts");
  const result = await applyGitPatch({
    worktree,
    patch: resume.patch,
    baseCommit: resume.baseCommit,
  });
  return result.conflicts;
}
