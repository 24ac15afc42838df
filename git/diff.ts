// The patch of a capture: `git diff-tree --binary` from the base commit, with its stats, bounded.

import { runGit, type RunGitOptions } from "./exec.ts";

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

/** Options of {@linkcode diffFromBase}. */
export interface DiffFromBaseOptions {
  /** The work tree's top level. */
  cwd: string;
  /** The environment that reaches both trees' objects. */
  env: Readonly<Record<string, string>>;
  /** The base commit. */
  baseCommit: string;
  /** The captured tree. */
  tree: string;
  /** Largest patch kept, in bytes. */
  maxPatchBytes: number;
  /** How many changed paths the stats name. */
  maxListedPaths: number;
  /** Deadline, ms. */
  timeoutMs: number;
  /** Stops git. */
  signal?: AbortSignal;
}

/** What {@linkcode diffFromBase} resolves to. */
export interface DiffFromBase {
  /** The patch; `undefined` when larger than `maxPatchBytes`. */
  patch?: Uint8Array;
  /** Its size; when truncated, a lower bound (more than `maxPatchBytes`). */
  patchBytes: number;
  /** True when the patch was dropped for its size. */
  truncated: boolean;
  /** What changed (complete even when truncated). */
  stats: GitCaptureStats;
}

// Room for the --raw part of the output, read before the patch.
const STATS_ALLOWANCE = 4 * 1024 * 1024;
const decoder = new TextDecoder();

/**
 * The binary patch from a base commit to a tree (no rename detection, so every path is a plain
 * add, delete or modify, and `git apply` rebuilds symlinks, modes and binary files exactly),
 * with per-path stats from the same `git diff-tree` run. Output past `maxPatchBytes` is not
 * read: the patch is dropped and the result says `truncated`, with its stats intact.
 *
 * @param options Where, the two trees, the limits, deadline and signal.
 * @returns The patch (unless truncated), its size, and the stats.
 * @throws {GitError} When git fails.
 *
 * @example
 * ```ts ignore
 * import { diffFromBase } from "./diff.ts";
 * const diffed = await diffFromBase({
 *   cwd: "/work/repo",
 *   env: {},
 *   baseCommit: "4e1243bd22c66e76c2ba9eddc1f91394e57f9f83",
 *   tree: "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
 *   maxPatchBytes: 1 << 20,
 *   maxListedPaths: 20,
 *   timeoutMs: 10_000,
 * });
 * console.log(diffed.stats.files);
 * ```
 */
export async function diffFromBase(options: DiffFromBaseOptions): Promise<DiffFromBase> {
  const git = (args: string[], extra: Partial<RunGitOptions> = {}) =>
    runGit(args, {
      cwd: options.cwd,
      env: options.env,
      timeoutMs: options.timeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
      ...extra,
    });
  const { baseCommit, tree, maxPatchBytes } = options;
  const common = [
    "diff-tree",
    "-r",
    "-z",
    "--raw",
    "--no-renames",
    "--no-ext-diff",
    "--no-textconv",
    "--ignore-submodules=none",
  ];
  // With -z: raw records, an empty record, then the patch. Line counts come from the patch:
  // --numstat would make git diff every file twice.
  const out = await git(
    [...common, "--binary", "--full-index", "--src-prefix=a/", "--dst-prefix=b/", baseCommit, tree],
    { maxStdoutBytes: maxPatchBytes + STATS_ALLOWANCE },
  );
  let bytes = out.stdout;
  let boundary = findDoubleNul(bytes);
  let patch: Uint8Array | undefined;
  let patchBytes = 0;
  let truncated = false;
  if (bytes.byteLength === 0) patch = new Uint8Array(0);
  else if (boundary >= 0) {
    patchBytes = bytes.byteLength - boundary - 2;
    if (out.truncated || patchBytes > maxPatchBytes) truncated = true;
    else patch = bytes.subarray(boundary + 2);
  } else if (!out.truncated) {
    // Stats without a patch section (nothing git can show as a patch).
    patch = new Uint8Array(0);
    boundary = bytes.byteLength;
  } else {
    // The path list alone outgrew its allowance.
    truncated = true;
  }
  let stats: GitCaptureStats;
  if (!truncated) {
    stats = parseStats(decoder.decode(bytes.subarray(0, Math.max(0, boundary))));
    Object.assign(stats, countLines(patch ?? new Uint8Array(0)));
  } else {
    // The patch was not read to its end: ask git for the counts alone.
    patchBytes = Math.max(patchBytes, maxPatchBytes + 1);
    bytes = (await git([...common, "--numstat", baseCommit, tree])).stdout;
    stats = parseStats(decoder.decode(bytes));
  }
  stats.paths = stats.paths.slice(0, options.maxListedPaths);
  return { ...(patch !== undefined ? { patch } : {}), patchBytes, truncated, stats };
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

/** Lines added and deleted, and binary files, counted from a patch's hunks. */
function countLines(
  patch: Uint8Array,
): Pick<GitCaptureStats, "insertions" | "deletions" | "binaryFiles"> {
  const counts = { insertions: 0, deletions: 0, binaryFiles: 0 };
  // Inside a hunk, its header's line counts say where it ends: a line "+++ x" may be content.
  let oldLeft = 0;
  let newLeft = 0;
  for (let start = 0; start < patch.byteLength;) {
    let end = patch.indexOf(NEWLINE, start);
    if (end < 0) end = patch.byteLength;
    const first = patch[start];
    if (oldLeft > 0 || newLeft > 0) {
      if (first === PLUS) {
        counts.insertions++;
        newLeft--;
      } else if (first === MINUS) {
        counts.deletions++;
        oldLeft--;
      } else if (first !== BACKSLASH) {
        // Context (an empty line too: git writes a blank context line so when told to).
        oldLeft--;
        newLeft--;
      }
    } else if (first === AT && patch[start + 1] === AT) {
      const header = /^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@/.exec(
        decoder.decode(patch.subarray(start, Math.min(end, start + 200))),
      );
      oldLeft = header ? Number(header[1] ?? 1) : 0;
      newLeft = header ? Number(header[2] ?? 1) : 0;
    } else if (first === 0x47 && startsWith(patch, start, BINARY_MARK)) counts.binaryFiles++;
    start = end + 1;
  }
  return counts;
}

const NEWLINE = 0x0a;
const PLUS = 0x2b;
const MINUS = 0x2d;
const BACKSLASH = 0x5c;
const AT = 0x40;
const BINARY_MARK = new TextEncoder().encode("GIT binary patch");

function startsWith(bytes: Uint8Array, at: number, prefix: Uint8Array): boolean {
  if (at + prefix.byteLength > bytes.byteLength) return false;
  for (let i = 0; i < prefix.byteLength; i++) if (bytes[at + i] !== prefix[i]) return false;
  return true;
}

function findDoubleNul(bytes: Uint8Array): number {
  let i = bytes.indexOf(0);
  while (i >= 0 && i + 1 < bytes.byteLength) {
    if (bytes[i + 1] === 0) return i;
    i = bytes.indexOf(0, i + 1);
  }
  return -1;
}
