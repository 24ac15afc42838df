// Captures a git work tree as a binary patch against a base commit, without writing to its .git.

import { z } from "zod";
import { sha256Hex } from "../core/bytes.ts";
import { RunnerError, ValidationError } from "../core/errors.ts";
import { parseOrThrow } from "../core/schemas.ts";
import { diffFromBase, type GitCaptureStats } from "./diff.ts";
import { alternateObjectDirectories, runGit, type RunGitOptions } from "./exec.ts";
import { candidatePathspecs, compileExcludes, DEFAULT_GIT_EXCLUDES } from "./patterns.ts";

export type { GitCaptureStats, GitChangedPath } from "./diff.ts";

/** Options of {@linkcode createGitCapturer}. */
export interface GitCapturerOptions {
  /** The work tree to capture (any directory in it; its top level is used). */
  worktree: string;
  /**
   * A directory of this capturer alone, outside the work tree's `.git`, for the private index
   * and object directory; created if missing. The caller removes it when the run ends
   * ({@linkcode GitCapturer.dispose} removes what the capturer put there).
   */
  stateDir: string;
  /** The commit patches are taken against; default `HEAD` when the capturer is created. */
  baseRef?: string;
  /**
   * Patterns left out, in `.gitignore` syntax, after {@linkcode DEFAULT_GIT_EXCLUDES} (so
   * `!*.pem` takes `.pem` files back in). Matching untracked files are never read; matching
   * tracked files keep their base-commit content.
   */
  exclude?: readonly string[];
  /** Apply {@linkcode DEFAULT_GIT_EXCLUDES} first. Default true. */
  defaultExcludes?: boolean;
  /**
   * Largest patch kept, in bytes; a larger one is dropped and the result is marked `truncated`
   * (its stats are kept). Default 32 MiB.
   */
  maxPatchBytes?: number;
  /** New files larger than this (bytes) are left out and listed. Default 5 MiB. */
  maxUntrackedFileBytes?: number;
  /**
   * A new directory (absent from the base commit) holding more files than this is left out
   * whole and listed, e.g. an unignored `node_modules`. Default 1000.
   */
  maxUntrackedDirFiles?: number;
  /** How many changed paths a result names. Default 20. */
  maxListedPaths?: number;
  /** Deadline of creating the capturer and of each snapshot or capture, in ms. Default 60000. */
  timeoutMs?: number;
}

/** Per-call options of {@linkcode GitCapturer.capture} and {@linkcode GitCapturer.snapshot}. */
export interface GitCaptureCallOptions {
  /** Stops the git command under way; the call rejects with a `GitError` (`aborted`). */
  signal?: AbortSignal;
  /** Deadline of this call in ms; default the capturer's `timeoutMs`. */
  timeoutMs?: number;
}

/** Options of {@linkcode GitCapturer.capture}. */
export interface GitCaptureOptions extends GitCaptureCallOptions {
  /** Return a result even when the tree equals the last captured one. */
  force?: boolean;
}

/** The state of the work tree at one tick, without a patch. */
export interface GitSnapshot {
  /** The tree id of the work tree as captured (exclusions applied). */
  tree: string;
  /** True when `tree` differs from the last captured tree (the base tree before any). */
  changed: boolean;
  /** Wall time of the snapshot, ms. */
  durationMs: number;
}

/** Why a path was left out of a patch. */
export type GitExcludeReason =
  | "pattern"
  | "file_size"
  | "directory_size"
  | "nested_repository"
  | "unreadable";

/** A path left out of a patch, and why. */
export interface GitExcludedPath {
  /** Path from the work tree root; a directory ends with `/`. */
  path: string;
  /** Why it was left out. */
  reason: GitExcludeReason;
  /** The exclude pattern that matched (`pattern`). */
  pattern?: string;
  /** The file's size in bytes (`file_size`). */
  bytes?: number;
  /** Files found in the directory (`directory_size`). */
  files?: number;
  /** True when the path is tracked in the base commit (its changes were left out). */
  tracked?: boolean;
}

/** A git repository found inside the work tree; its content is not in the patch. */
export interface GitNestedRepository {
  /** Path from the work tree root, ending with `/`. */
  path: string;
  /** Its checked-out commit, when it has one. */
  head?: string;
  /** True for a submodule of the base commit (its recorded commit is in the patch when it moved). */
  submodule: boolean;
}

/** One capture: the work tree as a patch against the base commit. */
export interface GitCaptureResult {
  /**
   * The patch (`git apply --3way --index` input), uncompressed; `undefined` when it was larger
   * than `maxPatchBytes` (`truncated`). Empty when the work tree equals the base commit.
   */
  patch?: Uint8Array;
  /** Hex SHA-256 of `patch`; `undefined` with it. */
  sha256?: string;
  /** Size of the patch in bytes; when truncated, a lower bound (more than `maxPatchBytes`). */
  patchBytes: number;
  /** True when the patch was dropped for being larger than `maxPatchBytes`. */
  truncated: boolean;
  /** The tree id the patch leads to. */
  tree: string;
  /** The commit the patch applies to. */
  baseCommit: string;
  /** The agent's `HEAD` commit at capture time (`undefined` on an unborn branch). */
  head?: string;
  /** What changed. */
  stats: GitCaptureStats;
  /** Paths left out and why (at most 1000; directories are listed once). */
  excluded: GitExcludedPath[];
  /** Repositories inside the work tree (untracked clones, submodules). */
  nestedRepositories: GitNestedRepository[];
  /** Start of the capture, ISO 8601. */
  capturedAt: string;
  /** Wall time of the capture, ms. */
  durationMs: number;
}

/** A work tree capturer; see {@linkcode createGitCapturer}. */
export interface GitCapturer {
  /** The work tree's top level. */
  readonly worktree: string;
  /** The base commit, resolved when the capturer was created. */
  readonly baseCommit: string;
  /** The base commit's tree (a capture of an unchanged work tree yields it). */
  readonly baseTree: string;
  /** The agent's current `HEAD` commit, `undefined` on an unborn branch. */
  head(): Promise<string | undefined>;
  /**
   * Stages the work tree into the private index and returns its tree id: the cheap tick of a
   * cadence loop (about the cost of a `git status` when nothing changed).
   */
  snapshot(options?: GitCaptureCallOptions): Promise<GitSnapshot>;
  /**
   * Takes a snapshot and, when its tree differs from the last captured one (or `force`),
   * returns the patch against the base commit; `undefined` when unchanged.
   */
  capture(options?: GitCaptureOptions): Promise<GitCaptureResult | undefined>;
  /** Waits for the call under way and removes the private index and objects. */
  dispose(): Promise<void>;
}

const DEFAULTS = {
  maxPatchBytes: 32 * 1024 * 1024,
  maxUntrackedFileBytes: 5 * 1024 * 1024,
  maxUntrackedDirFiles: 1000,
  maxListedPaths: 20,
  timeoutMs: 60_000,
};
const MAX_EXCLUDED_LISTED = 1000;
const MIN_TREES_TO_PACK = 64;
const REFRESH_EVERY_MS = 60_000;

const positiveInt = z.number().int().positive();
const GitCapturerOptionsSchema = z.strictObject({
  worktree: z.string().min(1),
  stateDir: z.string().min(1),
  baseRef: z.string().min(1).refine((ref) => !ref.startsWith("-"), {
    message: "Must not start with '-'",
  }).optional(),
  exclude: z.array(z.string()).optional(),
  defaultExcludes: z.boolean().optional(),
  maxPatchBytes: positiveInt.optional(),
  maxUntrackedFileBytes: positiveInt.optional(),
  maxUntrackedDirFiles: positiveInt.optional(),
  maxListedPaths: z.number().int().min(0).optional(),
  timeoutMs: positiveInt.optional(),
});

// The parts of node:fs/promises and node:path used here, typed structurally.
interface FsModule {
  stat(path: string): Promise<{ isDirectory(): boolean }>;
  open(path: string, flags: "r"): Promise<FileHandle>;
  mkdir(path: string, options: { recursive: true }): Promise<unknown>;
  copyFile(from: string, to: string): Promise<void>;
  writeFile(path: string, data: Uint8Array): Promise<void>;
  utimes(path: string, atime: Date, mtime: Date): Promise<void>;
  lstat(path: string): Promise<{ size: number; isFile(): boolean }>;
  access(path: string, mode: number): Promise<void>;
  readdir(path: string): Promise<string[]>;
  rm(path: string, options: { force: true; recursive?: boolean }): Promise<void>;
  realpath(path: string): Promise<string>;
}
interface FileHandle {
  stat(): Promise<{ size: number; atime: Date; mtime: Date }>;
  readFile(): Promise<Uint8Array>;
  close(): Promise<void>;
}
interface PathModule {
  join(...parts: string[]): string;
  dirname(path: string): string;
  resolve(...parts: string[]): string;
  relative(from: string, to: string): string;
  isAbsolute(path: string): boolean;
  sep: string;
}

const decoder = new TextDecoder();

/**
 * Creates a capturer of a git work tree: each capture is a binary patch from a base commit to
 * the work tree as it is, tracked and untracked files alike (not ignored ones), that
 * `git apply --3way --index` replays on any clone holding the base commit.
 *
 * Nothing is written under the work tree's `.git`: no index, object, ref, lock or mtime. The
 * capturer keeps a private index (seeded once from the agent's index, so unchanged files are
 * not re-read) and a private object directory in `stateDir`. Commands that write objects see
 * only the private directory, so git never "freshens" (touches) an existing object of the
 * repository; commands that read reach the repository's objects as alternates. Every call sets
 * its own environment (inherited `GIT_*` variables are dropped) and `GIT_OPTIONAL_LOCKS=0`, so
 * it never takes `.git/index.lock` and never races the agent's own git commands. LFS clean
 * filters are turned off, so LFS files are captured as their bytes in the work tree.
 *
 * A snapshot is one read-only `git ls-files` walk of the work tree against the private index
 * (about the cost of a `git status`) and, when something changed, `git update-index` of the
 * changed paths and `git write-tree`; a capture adds `git diff-tree --binary` from the base.
 *
 * Left out, and listed in each result: paths matching the exclude patterns, new files over
 * `maxUntrackedFileBytes`, new directories with more than `maxUntrackedDirFiles` files, new
 * files that cannot be read, and nested repositories (their path and commit are recorded
 * instead). Ignored files are never part of a capture.
 *
 * Calls run one at a time, each within its deadline.
 *
 * @param options Work tree, state directory, base, exclusions, limits and deadline.
 * @returns The capturer, with its base commit resolved and its private index seeded.
 * @throws {ValidationError} When an option is invalid, the directory is not in a git work
 *   tree, or `baseRef` does not name a commit.
 * @throws {GitError} When git fails.
 *
 * @example
 * ```ts ignore
 * import { createGitCapturer } from "./capture.ts";
 *
 * const capturer = await createGitCapturer({ worktree: "/work/repo", stateDir: "/tmp/run-1-git" });
 * const result = await capturer.capture();
 * if (result?.patch) console.log(result.stats.files, result.sha256);
 * await capturer.dispose();
 * ```
 */
export async function createGitCapturer(options: GitCapturerOptions): Promise<GitCapturer> {
  const parsed = parseOrThrow(GitCapturerOptionsSchema, options, "Invalid git capture options");
  const settings = { ...DEFAULTS, ...withoutUndefined(parsed) };
  const [fs, path] = await Promise.all([
    import("node:fs/promises") as Promise<unknown> as Promise<FsModule>,
    import("node:path") as Promise<unknown> as Promise<{ default: PathModule }>,
  ]).then(([fs, path]) => [fs, path.default] as const);

  const worktreeStat = await fs.stat(parsed.worktree).catch(() => undefined);
  if (worktreeStat === undefined || !worktreeStat.isDirectory()) {
    throw new ValidationError(
      [{ path: "worktree", message: `Is not a directory: '${parsed.worktree}'` }],
      "Invalid git capture options",
    );
  }
  const deadline = Date.now() + settings.timeoutMs;
  const inWorktree = (args: string[], extra: Partial<RunGitOptions> = {}) =>
    runGit(args, { cwd: parsed.worktree, timeoutMs: remaining(deadline), ...extra });

  const baseRef = parsed.baseRef ?? "HEAD";
  // --git-path resolves the per-worktree index and the shared object directory of a linked
  // worktree alike.
  const locate = ["rev-parse", "--path-format=absolute", "--show-toplevel", "--git-path", "index"];
  locate.push("--git-path", "objects");
  const [resolved, config, listing] = await Promise.all([
    inWorktree([...locate, `${baseRef}^{commit}`, `${baseRef}^{tree}`], { okExitCodes: [0, 128] }),
    // LFS (and any filter running git-lfs) goes off; a sparse checkout is seeded differently.
    inWorktree(
      ["config", "-z", "--get-regexp", "^(filter\\..*\\.(clean|process)|core\\.sparsecheckout)$"],
      { okExitCodes: [0, 1, 128] },
    ),
    // Trees only (and submodules): a few thousand entries even for a large repository.
    inWorktree(["ls-tree", "-r", "-d", "-z", "--full-tree", `${baseRef}^{commit}`], {
      okExitCodes: [0, 128],
    }),
  ]);
  if (resolved.exitCode !== 0 || listing.exitCode !== 0) {
    // Which one: the directory, or the base?
    const located = await inWorktree(locate, { okExitCodes: [0, 128] });
    const field = located.exitCode === 0 ? "baseRef" : "worktree";
    throw new ValidationError(
      [{
        path: field,
        message: field === "worktree"
          ? `Is not inside a git work tree: '${parsed.worktree}'`
          : `Does not name a commit: '${baseRef}'`,
      }],
      "Invalid git capture options",
    );
  }
  const [topLevel, agentIndex, repoObjects, baseCommit, baseTree] = lines(resolved.stdout);
  const run = (args: string[], extra: Partial<RunGitOptions> = {}) =>
    runGit(args, { cwd: topLevel, timeoutMs: remaining(deadline), ...extra });

  // The private state.
  const stateDir = path.resolve(parsed.stateDir);
  await fs.mkdir(path.join(stateDir, "objects"), { recursive: true });
  const privateIndex = path.join(stateDir, "index");
  const baseIndex = path.join(stateDir, "base-index");
  const privateObjects = path.join(stateDir, "objects");
  const stateReal = await fs.realpath(stateDir);
  const relativeState = path.relative(topLevel, stateReal);
  const stateInside = relativeState !== "" && !relativeState.startsWith("..") &&
    !path.isAbsolute(relativeState);
  const stateRel = stateInside ? relativeState.split(path.sep).join("/") : undefined;

  // Writers see only the private object directory: an object git finds in an alternate, it
  // "freshens" (touches) instead of writing. Readers see the repository's objects as well.
  const writeEnv = { GIT_INDEX_FILE: privateIndex, GIT_OBJECT_DIRECTORY: privateObjects };
  const readEnv = (index: string) => ({
    GIT_INDEX_FILE: index,
    GIT_OBJECT_DIRECTORY: privateObjects,
    GIT_ALTERNATE_OBJECT_DIRECTORIES: alternateObjectDirectories([repoObjects]),
  });

  const lfsDrivers = new Set<string>(["lfs"]);
  let sparse = false;
  for (const record of text(config.stdout).split("\0")) {
    if (record === "") continue;
    const newline = record.indexOf("\n");
    const key = newline < 0 ? record : record.slice(0, newline);
    const value = newline < 0 ? "" : record.slice(newline + 1);
    if (key.toLowerCase() === "core.sparsecheckout") sparse = value.toLowerCase() === "true";
    const driver = /^filter\.(.+)\.(clean|process)$/i.exec(key);
    if (driver && value.includes("git-lfs")) lfsDrivers.add(driver[1]);
  }
  // Also: no fsmonitor hook, no split or sparse private index, no refusal of CRLF round trips.
  const configArgs = [
    "-c",
    "core.safecrlf=false",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.splitIndex=false",
    "-c",
    "index.sparse=false",
    ...[...lfsDrivers].flatMap((driver) => [
      "-c",
      `filter.${driver}.clean=`,
      "-c",
      `filter.${driver}.process=`,
      "-c",
      `filter.${driver}.required=false`,
    ]),
  ];

  // The base commit's directories (to tell a new directory from a changed one), its trees and
  // its submodules.
  const baseDirs = new Set<string>();
  const baseTrees = [baseTree];
  const submodules: string[] = [];
  for (const entry of text(listing.stdout).split("\0")) {
    const tab = entry.indexOf("\t");
    if (tab < 0) continue;
    const dir = entry.slice(tab + 1);
    if (entry.startsWith("160000 ")) submodules.push(dir);
    else {
      baseDirs.add(dir);
      baseTrees.push(entry.slice(entry.indexOf(" ", 7) + 1, tab));
    }
  }
  const patterns = [
    ...(settings.defaultExcludes === false ? [] : DEFAULT_GIT_EXCLUDES),
    ...(settings.exclude ?? []),
  ];
  const matcher = compileExcludes(patterns);
  // Files of the base commit that match an exclude pattern (and the pattern): their changes
  // are left out.
  const trackedExcluded = new Map<string, string>();

  // Seed the private index from the agent's (its stat data spares re-reading unchanged files),
  // then make it the base commit's, keeping stat data where the content matches. Meanwhile,
  // copy the base commit's trees into the private object directory: write-tree trusts a
  // directory's cached tree only when it finds that tree, and writers see no alternates.
  await Promise.all([seedIndex(), packBaseTrees()]);

  async function packBaseTrees(): Promise<void> {
    // A few trees are cheaper to write again on the first capture than to pack.
    if (baseTrees.length <= MIN_TREES_TO_PACK) return;
    await fs.mkdir(path.join(privateObjects, "pack"), { recursive: true });
    await run(["pack-objects", "-q", path.join(privateObjects, "pack", "pack")], {
      env: {
        GIT_OBJECT_DIRECTORY: privateObjects,
        GIT_ALTERNATE_OBJECT_DIRECTORIES: alternateObjectDirectories([repoObjects]),
      },
      stdin: new TextEncoder().encode(baseTrees.join("\n") + "\n"),
    });
  }

  async function seedIndex(): Promise<void> {
    let copied = false;
    const gitDir = path.dirname(agentIndex);
    const splitIndex = (await fs.readdir(gitDir).catch(() => [] as string[]))
      .some((name) => name.startsWith("sharedindex."));
    // A split index's shared part would be read, and touched, in .git: start from the tree.
    if (!splitIndex) copied = await copyIndex(fs, agentIndex, privateIndex);
    if (copied && sparse) {
      // A sparse checkout keeps the agent's index as it is: its skip-worktree bits matter.
      await run(["read-tree", baseCommit], { env: readEnv(baseIndex) });
      await listTrackedExcluded(baseIndex);
      return;
    }
    let merged = false;
    if (copied) {
      const result = await run([...configArgs, "read-tree", "-m", baseCommit], {
        env: readEnv(privateIndex),
        okExitCodes: [0, 128],
      });
      merged = result.exitCode === 0;
    }
    if (!merged) {
      await run([...configArgs, "read-tree", baseCommit], { env: readEnv(privateIndex) });
    }
    await Promise.all([
      // Check "racily clean" entries (files written in the second the agent's index was) once,
      // by content, without writing objects; add -u would otherwise write each of them again.
      run([...configArgs, "update-index", "-q", "--refresh"], {
        env: writeEnv,
        okExitCodes: [0, 1],
      }),
      listTrackedExcluded(privateIndex),
    ]);
  }

  /** Lists the base commit's files matching an exclude pattern, from an index holding them. */
  async function listTrackedExcluded(index: string): Promise<void> {
    const pathspecs = candidatePathspecs(patterns);
    if (pathspecs.length === 0) return;
    const listed = await run(["ls-files", "-z", "--", ...pathspecs], { env: readEnv(index) });
    for (const file of text(listed.stdout).split("\0")) {
      const pattern = file === "" ? undefined : matcher.match(file);
      if (pattern !== undefined) trackedExcluded.set(file, pattern);
    }
  }

  // Paths added to the private index beyond the base commit's: only this capturer adds them.
  let added = new Set<string>();
  // Base commit's paths staged since (changed or deleted): one that shows up as untracked is a
  // deleted file back, not a new one.
  const touchedBase = new Set<string>();
  let lastTree = baseTree;
  // The private index's tree when it was last written; the index changes only through us. A
  // sparse checkout's index is the agent's, not the base commit's: its tree is not known yet.
  let stagedTree: string | undefined = sparse ? undefined : baseTree;
  let lastRefresh = Date.now();
  let disposed = false;
  let tail: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    if (disposed) return Promise.reject(new RunnerError("The git capturer was disposed"));
    const result = tail.then(fn, fn);
    tail = result.catch(() => {});
    return result;
  };

  interface Staged {
    tree: string;
    excluded: GitExcludedPath[];
    nested: string[];
  }

  async function stage(callDeadline: number, signal: AbortSignal | undefined): Promise<Staged> {
    const git = (args: string[], extra: Partial<RunGitOptions> = {}) =>
      runGit(args, { cwd: topLevel, timeoutMs: remaining(callDeadline), signal, ...extra });
    // An interrupted command of ours may have left our lock behind; nobody else uses it.
    await fs.rm(`${privateIndex}.lock`, { force: true });

    // Files touched but unchanged are compared by content at each walk until their stat data
    // is refreshed in the index: refresh it now and then (a mass touch, e.g. a checkout).
    if (Date.now() - lastRefresh > REFRESH_EVERY_MS) {
      await git([...configArgs, "update-index", "-q", "--refresh"], {
        env: writeEnv,
        okExitCodes: [0, 1],
      });
      lastRefresh = Date.now();
    }

    // One read-only walk against the private index (the base commit's files plus the new files
    // added so far): what changed or went, and what it lacks. Tags: C changed (deleted files
    // too), R deleted, ? untracked; a nested repository is one `dir/` entry.
    const listed = await git([
      ...configArgs,
      "ls-files",
      "-z",
      "-t",
      "--others",
      "--modified",
      "--deleted",
      "--exclude-standard",
    ], { env: readEnv(privateIndex) });
    const changed = new Set<string>();
    const deleted = new Set<string>();
    const untracked: string[] = [];
    for (const record of text(listed.stdout).split("\0")) {
      if (record.length < 3) continue;
      const file = record.slice(2);
      if (stateRel !== undefined && (file === stateRel || file.startsWith(`${stateRel}/`))) {
        continue;
      }
      if (record[0] === "?") untracked.push(file);
      else if (record[0] === "C") changed.add(file);
      else if (record[0] === "R") {
        changed.add(file);
        deleted.add(file);
      }
    }

    const excluded: GitExcludedPath[] = [];
    const nested: string[] = [];
    // Base commit's paths to stage as they are now (never left out, but for the patterns).
    const update: string[] = [];
    for (const file of changed) {
      if (added.has(file)) continue; // a new file: judged below
      const pattern = trackedExcluded.get(file);
      if (pattern !== undefined) {
        excluded.push({ path: file, reason: "pattern", pattern, tracked: true });
        continue;
      }
      update.push(file);
      touchedBase.add(file);
    }
    // New files (absent from the base commit): those untracked, and those added before.
    const candidates: string[] = [];
    for (const file of untracked) {
      if (file.endsWith("/")) {
        nested.push(file.slice(0, -1));
        excluded.push({ path: file, reason: "nested_repository" });
      } else if (touchedBase.has(file)) update.push(file);
      else candidates.push(file);
    }
    for (const file of added) if (!deleted.has(file)) candidates.push(file);

    const groups = new Map<string, string[]>();
    const loose: string[] = [];
    for (const file of candidates) {
      const pattern = matcher.match(file);
      if (pattern !== undefined) {
        excluded.push({ path: file, reason: "pattern", pattern });
        continue;
      }
      const dir = topNewDirectory(file, baseDirs);
      if (dir === undefined) loose.push(file);
      else {
        const files = groups.get(dir);
        if (files === undefined) groups.set(dir, [file]);
        else files.push(file);
      }
    }
    for (const [dir, files] of groups) {
      if (files.length > settings.maxUntrackedDirFiles) {
        excluded.push({ path: `${dir}/`, reason: "directory_size", files: files.length });
      } else loose.push(...files);
    }
    // Size and readability of the new files that are new or changed since the last tick.
    const fresh = loose.filter((file) => !added.has(file) || changed.has(file));
    const infos = await lstatAll(fs, topLevel, fresh, path, added);
    const included = new Set(loose);
    for (let i = 0; i < fresh.length; i++) {
      const info = infos[i];
      if (info === undefined) included.delete(fresh[i]); // gone since it was listed
      else if (info.isFile && info.size > settings.maxUntrackedFileBytes) {
        excluded.push({ path: fresh[i], reason: "file_size", bytes: info.size });
        included.delete(fresh[i]);
      } else if (!info.readable) {
        // git would stop at it, and every capture after it.
        excluded.push({ path: fresh[i], reason: "unreadable" });
        included.delete(fresh[i]);
      }
    }

    const remove = [...added].filter((file) => !included.has(file));
    for (const file of fresh) if (included.has(file)) update.push(file);
    // The cached tree is stale from the moment the index may change: a command stopped at its
    // deadline can still have written the index, and the next stage must not trust the cache.
    if (remove.length > 0 || update.length > 0) stagedTree = undefined;
    if (remove.length > 0) {
      await git([...configArgs, "update-index", "--force-remove", "-z", "--stdin"], {
        env: writeEnv,
        stdin: nulList(remove),
      });
    }
    if (update.length > 0) {
      await git(
        [...configArgs, "update-index", "--add", "--remove", "--replace", "-z", "--stdin"],
        { env: writeEnv, stdin: nulList(update) },
      );
    }
    added = included;
    if (stagedTree === undefined) {
      const written = await git([...configArgs, "write-tree", "--missing-ok"], { env: writeEnv });
      stagedTree = text(written.stdout).trim();
    }
    return { tree: stagedTree, excluded, nested };
  }

  async function nestedRepositories(nested: string[]): Promise<GitNestedRepository[]> {
    const found: GitNestedRepository[] = [];
    const populated = await Promise.all(
      submodules.map(async (dir) => {
        try {
          await fs.lstat(path.join(topLevel, dir, ".git"));
          return dir;
        } catch {
          return undefined;
        }
      }),
    );
    const all = [
      ...nested.map((dir) => ({ dir, submodule: false })),
      ...populated.filter((dir): dir is string => dir !== undefined)
        .map((dir) => ({ dir, submodule: true })),
    ];
    for (const { dir, submodule } of all) {
      const head = await readHead(path.join(topLevel, dir));
      found.push({ path: `${dir}/`, ...(head !== undefined ? { head } : {}), submodule });
    }
    return found;
  }

  async function readHead(dir: string): Promise<string | undefined> {
    try {
      const result = await runGit(["rev-parse", "--verify", "-q", "HEAD"], {
        cwd: dir,
        okExitCodes: [0, 1, 128],
        timeoutMs: 10_000,
      });
      const head = text(result.stdout).trim();
      return result.exitCode === 0 && head !== "" ? head : undefined;
    } catch {
      return undefined;
    }
  }

  const capturer: GitCapturer = {
    worktree: topLevel,
    baseCommit,
    baseTree,
    head: () => readHead(topLevel),
    snapshot: (callOptions = {}) =>
      exclusive(async () => {
        const started = performance.now();
        const callDeadline = Date.now() + (callOptions.timeoutMs ?? settings.timeoutMs);
        const { tree } = await stage(callDeadline, callOptions.signal);
        return { tree, changed: tree !== lastTree, durationMs: performance.now() - started };
      }),
    capture: (callOptions = {}) =>
      exclusive(async () => {
        const started = performance.now();
        const capturedAt = new Date().toISOString();
        const callDeadline = Date.now() + (callOptions.timeoutMs ?? settings.timeoutMs);
        const signal = callOptions.signal;
        const staged = await stage(callDeadline, signal);
        if (staged.tree === lastTree && !callOptions.force) return undefined;
        const [diffed, head, nested] = await Promise.all([
          diffFromBase({
            cwd: topLevel,
            env: readEnv(privateIndex),
            baseCommit,
            tree: staged.tree,
            maxPatchBytes: settings.maxPatchBytes,
            maxListedPaths: settings.maxListedPaths,
            timeoutMs: remaining(callDeadline),
            signal,
          }),
          readHead(topLevel),
          nestedRepositories(staged.nested),
        ]);
        const excluded = staged.excluded
          .sort((a, b) => compare(a.path, b.path))
          .slice(0, MAX_EXCLUDED_LISTED);
        const result: GitCaptureResult = {
          ...(diffed.patch !== undefined
            ? { patch: diffed.patch, sha256: await sha256Hex(diffed.patch) }
            : {}),
          patchBytes: diffed.patch?.byteLength ?? diffed.patchBytes,
          truncated: diffed.truncated,
          tree: staged.tree,
          baseCommit,
          ...(head !== undefined ? { head } : {}),
          stats: diffed.stats,
          excluded,
          nestedRepositories: nested,
          capturedAt,
          durationMs: 0,
        };
        lastTree = staged.tree;
        result.durationMs = performance.now() - started;
        return result;
      }),
    dispose: async () => {
      if (disposed) return;
      disposed = true;
      await tail;
      await Promise.all([
        fs.rm(privateIndex, { force: true }),
        fs.rm(`${privateIndex}.lock`, { force: true }),
        fs.rm(baseIndex, { force: true }),
        fs.rm(privateObjects, { force: true, recursive: true }),
      ]);
    },
  };
  return capturer;
}

/**
 * Copies an index file with its mtime: git tells "racily clean" entries (files changed in the
 * same second the index was written) by comparing with the index's mtime, so a copy with a
 * newer mtime would trust stat data it must not. False when there is no index.
 */
async function copyIndex(fs: FsModule, from: string, to: string): Promise<boolean> {
  let handle: FileHandle | undefined;
  try {
    handle = await fs.open(from, "r");
    // One open file: its content and its mtime belong together even if git replaces the index.
    const stat = await handle.stat();
    const data = await handle.readFile();
    await fs.writeFile(to, data);
    await fs.utimes(to, stat.atime, stat.mtime);
    return true;
  } catch {
    return false;
  } finally {
    await handle?.close();
  }
}

/** The topmost directory of `file` that the base commit lacks, if any. */
function topNewDirectory(file: string, baseDirs: ReadonlySet<string>): string | undefined {
  for (let slash = file.indexOf("/"); slash > 0; slash = file.indexOf("/", slash + 1)) {
    const dir = file.slice(0, slash);
    if (!baseDirs.has(dir)) return dir;
  }
  return undefined;
}

interface FileInfo {
  size: number;
  isFile: boolean;
  readable: boolean;
}

/**
 * Size and type of each file (`undefined` when gone); files not in `known` are also checked
 * for readability.
 */
async function lstatAll(
  fs: FsModule,
  root: string,
  files: readonly string[],
  path: PathModule,
  known: ReadonlySet<string>,
): Promise<(FileInfo | undefined)[]> {
  const out: (FileInfo | undefined)[] = new Array(files.length);
  const width = 64;
  for (let start = 0; start < files.length; start += width) {
    await Promise.all(
      files.slice(start, start + width).map(async (file, i) => {
        try {
          const full = path.join(root, file);
          const stat = await fs.lstat(full);
          const isFile = stat.isFile();
          let readable = true;
          if (isFile && !known.has(file)) {
            readable = await fs.access(full, READABLE).then(() => true, () => false);
          }
          out[start + i] = { size: stat.size, isFile, readable };
        } catch {
          out[start + i] = undefined;
        }
      }),
    );
  }
  return out;
}

const READABLE = 4; // fs.constants.R_OK

function nulList(paths: readonly string[]): Uint8Array {
  return new TextEncoder().encode(paths.map((p) => `${p}\0`).join(""));
}

function text(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

function lines(bytes: Uint8Array): string[] {
  return text(bytes).split("\n").filter((line) => line !== "");
}

function remaining(deadline: number): number {
  return Math.max(1, deadline - Date.now());
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
