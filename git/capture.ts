// Captures a git work tree as a binary patch against a base commit, without writing to its .git.

import { z } from "zod";
import { RunnerError, ValidationError } from "../core/errors.ts";
import { parseOrThrow } from "../core/schemas.ts";
import { alternateObjectDirectories, runGit, type RunGitOptions } from "./exec.ts";
import { compileExcludes, DEFAULT_GIT_EXCLUDES } from "./patterns.ts";

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
  | "nested_repository";

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

/** One changed path of a patch. */
export interface GitChangedPath {
  /** Path from the work tree root. */
  path: string;
  /** `A` added, `D` deleted, `M` modified, `T` type changed (file, symlink, submodule). */
  status: string;
}

/** Size of a patch's change. */
export interface GitCaptureStats {
  /** Changed paths. */
  files: number;
  /** Lines added in text files. */
  insertions: number;
  /** Lines deleted in text files. */
  deletions: number;
  /** Changed binary files. */
  binaryFiles: number;
  /** The first changed paths (at most `maxListedPaths`), in path order. */
  paths: GitChangedPath[];
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
// Room for the --raw/--numstat part of the diff output read beside the patch.
const STATS_ALLOWANCE = 4 * 1024 * 1024;

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
  readdir(path: string): Promise<string[]>;
  rm(path: string, options: { force: true; recursive?: boolean }): Promise<void>;
  realpath(path: string): Promise<string>;
}
interface FileHandle {
  stat(): Promise<{ size: number; atime: Date; mtime: Date }>;
  readFile(): Promise<Uint8Array>;
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<unknown>;
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
 * Left out, and listed in each result: paths matching the exclude patterns, new files over
 * `maxUntrackedFileBytes`, new directories with more than `maxUntrackedDirFiles` files, and
 * nested repositories (their path and commit are recorded instead).
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
  const [located, resolved, config, listing] = await Promise.all([
    // --git-path resolves the per-worktree index and the shared object directory of a linked
    // worktree alike.
    inWorktree([
      "rev-parse",
      "--path-format=absolute",
      "--show-toplevel",
      "--git-path",
      "index",
      "--git-path",
      "objects",
    ], { okExitCodes: [0, 128] }),
    inWorktree(["rev-parse", `${baseRef}^{commit}`, `${baseRef}^{tree}`], {
      okExitCodes: [0, 128],
    }),
    // LFS (and any filter running git-lfs) goes off; a sparse checkout is seeded differently.
    inWorktree(
      ["config", "-z", "--get-regexp", "^(filter\\..*\\.(clean|process)|core\\.sparsecheckout)$"],
      { okExitCodes: [0, 1, 128] },
    ),
    inWorktree(["ls-tree", "-r", "-t", "-z", "--full-tree", `${baseRef}^{commit}`], {
      okExitCodes: [0, 128],
    }),
  ]);
  if (located.exitCode !== 0) {
    throw new ValidationError(
      [{ path: "worktree", message: `Is not inside a git work tree: '${parsed.worktree}'` }],
      "Invalid git capture options",
    );
  }
  const [topLevel, agentIndex, repoObjects] = lines(located.stdout);
  const run = (args: string[], extra: Partial<RunGitOptions> = {}) =>
    runGit(args, { cwd: topLevel, timeoutMs: remaining(deadline), ...extra });
  if (resolved.exitCode !== 0 || listing.exitCode !== 0) {
    throw new ValidationError(
      [{ path: "baseRef", message: `Does not name a commit: '${baseRef}'` }],
      "Invalid git capture options",
    );
  }
  const [baseCommit, baseTree] = lines(resolved.stdout);

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

  // The base commit's paths: its directories (to tell new directories), its submodules, and its
  // files that match an exclude pattern (their changes are left out).
  const matcher = compileExcludes([
    ...(settings.defaultExcludes === false ? [] : DEFAULT_GIT_EXCLUDES),
    ...(settings.exclude ?? []),
  ]);
  const baseDirs = new Set<string>();
  const submodules: string[] = [];
  const trackedExcluded: { path: string; pattern: string }[] = [];
  const baseTrees = [baseTree];
  for (const entry of text(listing.stdout).split("\0")) {
    const tab = entry.indexOf("\t");
    if (tab < 0) continue;
    if (entry.startsWith("040000 tree ")) {
      baseTrees.push(entry.slice(12, tab));
      continue;
    }
    const file = entry.slice(tab + 1);
    if (entry.startsWith("160000 ")) submodules.push(file);
    const pattern = matcher.match(file);
    if (pattern !== undefined) trackedExcluded.push({ path: file, pattern });
    for (let slash = file.lastIndexOf("/"); slash > 0; slash = file.lastIndexOf("/", slash - 1)) {
      const dir = file.slice(0, slash);
      if (baseDirs.has(dir)) break;
      baseDirs.add(dir);
    }
  }

  // Seed the private index from the agent's (its stat data spares re-reading unchanged files),
  // then make it the base commit's, keeping stat data where the content matches. Meanwhile,
  // copy the base commit's trees into the private object directory: write-tree trusts a
  // directory's cached tree only when it finds that tree, and writers see no alternates.
  await Promise.all([seedIndex(), packBaseTrees()]);
  if (sparse) await run(["read-tree", baseCommit], { env: readEnv(baseIndex) });
  else await fs.copyFile(privateIndex, baseIndex);

  async function packBaseTrees(): Promise<void> {
    await fs.mkdir(path.join(privateObjects, "pack"), { recursive: true });
    await run(["pack-objects", "-q", path.join(privateObjects, "pack", "pack")], {
      env: readEnv(privateIndex),
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
    // A sparse checkout keeps the agent's index as it is: its skip-worktree bits matter.
    if (copied && sparse) return;
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
    // Check "racily clean" entries (files written in the second the agent's index was) once,
    // by content, without writing objects; add -u would otherwise write each of them again.
    await run([...configArgs, "update-index", "-q", "--refresh"], {
      env: writeEnv,
      okExitCodes: [0, 1],
    });
  }

  // Paths added to the private index beyond the base commit's: only this capturer adds them.
  let added = new Set<string>();
  let lastTree = baseTree;
  // The private index's trailing checksum when its tree was last written: while it holds, the
  // tree is the same and write-tree can be skipped.
  let stagedChecksum: string | undefined;
  let stagedTree = baseTree;
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

    // New paths (everything not ignored that the base commit lacks), and meanwhile the files
    // of the private index: changes, deletions, type changes. Files about to be left out may
    // be staged here; they are removed from the private index below.
    const pathspecs = ["."];
    for (const { path: file } of trackedExcluded) pathspecs.push(`:(exclude,literal)${file}`);
    if (stateRel !== undefined) pathspecs.push(`:(exclude,literal)${stateRel}`);
    const [others] = await Promise.all([
      git(["ls-files", "-z", "--others", "--exclude-standard"], { env: readEnv(baseIndex) }),
      git(
        [...configArgs, "add", "-u", "--pathspec-from-file=-", "--pathspec-file-nul"],
        { env: writeEnv, stdin: nulList(pathspecs) },
      ),
    ]);
    const excluded: GitExcludedPath[] = [];
    const nested: string[] = [];
    const groups = new Map<string, string[]>();
    const loose: string[] = [];
    for (const entry of text(others.stdout).split("\0")) {
      if (entry === "") continue;
      if (stateRel !== undefined && (entry === stateRel || entry.startsWith(`${stateRel}/`))) {
        continue;
      }
      if (entry.endsWith("/")) {
        // git lists a directory holding a .git as one entry: a nested repository.
        nested.push(entry.slice(0, -1));
        excluded.push({ path: entry, reason: "nested_repository" });
        continue;
      }
      const pattern = matcher.match(entry);
      if (pattern !== undefined) {
        excluded.push({ path: entry, reason: "pattern", pattern });
        continue;
      }
      const dir = topNewDirectory(entry, baseDirs);
      if (dir === undefined) loose.push(entry);
      else {
        const files = groups.get(dir);
        if (files === undefined) groups.set(dir, [entry]);
        else files.push(entry);
      }
    }
    for (const [dir, files] of groups) {
      if (files.length > settings.maxUntrackedDirFiles) {
        excluded.push({ path: `${dir}/`, reason: "directory_size", files: files.length });
      } else loose.push(...files);
    }
    const included: string[] = [];
    const sizes = await lstatAll(fs, topLevel, loose, path);
    for (let i = 0; i < loose.length; i++) {
      const stat = sizes[i];
      if (stat === undefined) continue; // gone since it was listed
      if (stat.isFile && stat.size > settings.maxUntrackedFileBytes) {
        excluded.push({ path: loose[i], reason: "file_size", bytes: stat.size });
      } else included.push(loose[i]);
    }

    const keep = new Set(included);
    const remove = [...added].filter((file) => !keep.has(file));
    if (remove.length > 0) {
      await git([...configArgs, "update-index", "--force-remove", "-z", "--stdin"], {
        env: writeEnv,
        stdin: nulList(remove),
      });
    }
    const fresh = included.filter((file) => !added.has(file));
    if (fresh.length > 0) {
      await git(
        [...configArgs, "update-index", "--add", "--remove", "--replace", "-z", "--stdin"],
        { env: writeEnv, stdin: nulList(fresh) },
      );
    }
    added = keep;
    const checksum = await indexChecksum(fs, privateIndex);
    if (checksum === undefined || checksum !== stagedChecksum) {
      const written = await git([...configArgs, "write-tree", "--missing-ok"], { env: writeEnv });
      stagedTree = text(written.stdout).trim();
      // write-tree may have rewritten the index to store its cache-tree.
      stagedChecksum = await indexChecksum(fs, privateIndex);
    }
    return { tree: stagedTree, excluded, nested };
  }

  async function diff(
    tree: string,
    callDeadline: number,
    signal: AbortSignal | undefined,
  ): Promise<
    { patch?: Uint8Array; patchBytes: number; truncated: boolean; stats: GitCaptureStats }
  > {
    const git = (args: string[], extra: Partial<RunGitOptions> = {}) =>
      runGit(args, { cwd: topLevel, timeoutMs: remaining(callDeadline), signal, ...extra });
    const common = [
      "diff-tree",
      "-r",
      "-z",
      "--raw",
      "--numstat",
      "--no-renames",
      "--no-ext-diff",
      "--no-textconv",
      "--ignore-submodules=none",
    ];
    const out = await git(
      [
        ...common,
        "--binary",
        "--full-index",
        "--src-prefix=a/",
        "--dst-prefix=b/",
        baseCommit,
        tree,
      ],
      { env: readEnv(privateIndex), maxStdoutBytes: settings.maxPatchBytes + STATS_ALLOWANCE },
    );
    let bytes = out.stdout;
    let boundary = findDoubleNul(bytes);
    let patch: Uint8Array | undefined;
    let patchBytes = 0;
    let truncated = false;
    if (bytes.byteLength === 0) patch = new Uint8Array(0);
    else if (boundary >= 0) {
      patchBytes = bytes.byteLength - boundary - 2;
      if (out.truncated || patchBytes > settings.maxPatchBytes) truncated = true;
      else patch = bytes.slice(boundary + 2);
    } else if (!out.truncated) {
      // Stats without a patch section (nothing git can show as a patch).
      patch = new Uint8Array(0);
      boundary = bytes.byteLength;
    } else {
      // The stats alone outgrew their allowance: read them without the patch.
      truncated = true;
      patchBytes = settings.maxPatchBytes + 1;
      bytes = (await git([...common, baseCommit, tree], { env: readEnv(privateIndex) })).stdout;
      boundary = bytes.byteLength;
    }
    if (truncated) patchBytes = Math.max(patchBytes, settings.maxPatchBytes + 1);
    const stats = parseStats(text(bytes.subarray(0, Math.max(0, boundary))));
    stats.paths = stats.paths.slice(0, settings.maxListedPaths);
    return { ...(patch !== undefined ? { patch } : {}), patchBytes, truncated, stats };
  }

  async function trackedExcludedChanges(
    callDeadline: number,
    signal: AbortSignal | undefined,
  ): Promise<GitExcludedPath[]> {
    if (trackedExcluded.length === 0) return [];
    const patterns = new Map(trackedExcluded.map((entry) => [entry.path, entry.pattern]));
    // Few paths: name them; many: list every changed file and keep theirs.
    const pathspecs = trackedExcluded.length <= 200
      ? ["--", ...trackedExcluded.map((entry) => `:(literal)${entry.path}`)]
      : [];
    const changed = await runGit(
      ["diff-files", "--name-only", "-z", ...pathspecs],
      { cwd: topLevel, env: readEnv(privateIndex), timeoutMs: remaining(callDeadline), signal },
    );
    const files = text(changed.stdout).split("\0").filter((file) => patterns.has(file));
    return files.map((file) => ({
      path: file,
      reason: "pattern" as const,
      pattern: patterns.get(file) ?? "",
      tracked: true,
    }));
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
        const [diffed, head, trackedChanges, nested] = await Promise.all([
          diff(staged.tree, callDeadline, signal),
          readHead(topLevel),
          trackedExcludedChanges(callDeadline, signal),
          nestedRepositories(staged.nested),
        ]);
        const excluded = [...trackedChanges, ...staged.excluded]
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

/**
 * The hex trailer of an index file (the hash of everything before it), or `undefined` when it
 * cannot be read or is all zeros (`index.skipHash`).
 */
async function indexChecksum(fs: FsModule, file: string): Promise<string | undefined> {
  let handle: FileHandle | undefined;
  try {
    handle = await fs.open(file, "r");
    const { size } = await handle.stat();
    // SHA-1 repositories end the index with 20 bytes, SHA-256 ones with 32: read 32.
    if (size < 64) return undefined;
    const trailer = new Uint8Array(32);
    await handle.read(trailer, 0, 32, size - 32);
    if (trailer.subarray(12).every((byte) => byte === 0)) return undefined;
    return `${size}:${Array.from(trailer, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  } catch {
    return undefined;
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

async function lstatAll(
  fs: FsModule,
  root: string,
  files: readonly string[],
  path: PathModule,
): Promise<({ size: number; isFile: boolean } | undefined)[]> {
  const out: ({ size: number; isFile: boolean } | undefined)[] = new Array(files.length);
  const width = 64;
  for (let start = 0; start < files.length; start += width) {
    await Promise.all(
      files.slice(start, start + width).map(async (file, i) => {
        try {
          const stat = await fs.lstat(path.join(root, file));
          out[start + i] = { size: stat.size, isFile: stat.isFile() };
        } catch {
          out[start + i] = undefined;
        }
      }),
    );
  }
  return out;
}

function parseStats(prefix: string): GitCaptureStats {
  const stats: GitCaptureStats = {
    files: 0,
    insertions: 0,
    deletions: 0,
    binaryFiles: 0,
    paths: [],
  };
  const tokens = prefix.split("\0");
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (token.startsWith(":")) {
      const file = tokens[++i] ?? "";
      stats.files++;
      stats.paths.push({ path: file, status: token.slice(token.lastIndexOf(" ") + 1) });
      continue;
    }
    const match = /^(-|\d+)\t(-|\d+)\t/.exec(token);
    if (match === null) continue;
    if (match[1] === "-") stats.binaryFiles++;
    else {
      stats.insertions += Number(match[1]);
      stats.deletions += Number(match[2]);
    }
  }
  return stats;
}

function findDoubleNul(bytes: Uint8Array): number {
  let i = bytes.indexOf(0);
  while (i >= 0 && i + 1 < bytes.byteLength) {
    if (bytes[i + 1] === 0) return i;
    i = bytes.indexOf(0, i + 1);
  }
  return -1;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

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
