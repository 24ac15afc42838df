// Applies a captured git patch to a clean work tree with a 3-way apply; never cleans, resets or commits.

import { z } from "zod";
import { concatBytes } from "../core/bytes.ts";
import {
  BaseCommitMissingError,
  DirtyWorktreeError,
  GitError,
  ValidationError,
} from "../core/errors.ts";
import { parseOrThrow } from "../core/schemas.ts";
import { alternateObjectDirectories, runGit, type RunGitOptions } from "./exec.ts";

/** Options of {@linkcode applyGitPatch}. */
export interface ApplyGitPatchOptions {
  /** The target work tree (any directory in it; its top level is used). */
  worktree: string;
  /** The patch, as a capture produced it (uncompressed, its sha256 already checked). */
  patch: Uint8Array;
  /** The commit the patch was captured against; the target must have it. */
  baseCommit: string;
  /**
   * Work out the outcome (conflicts included) without changing the work tree, the index or
   * any ref; the trial merge writes its objects to a temporary directory.
   */
  dryRun?: boolean;
  /** Deadline of the whole restore, ms. Default 120000. */
  timeoutMs?: number;
  /** Stops the git command under way; the call rejects with a `GitError` (`aborted`). */
  signal?: AbortSignal;
}

/** What {@linkcode applyGitPatch} resolves to. */
export interface ApplyGitPatchResult {
  /** True when the work tree was changed (never for a dry run). */
  applied: boolean;
  /**
   * Paths that did not apply cleanly, sorted: files left with conflict markers and unmerged
   * index entries by the 3-way merge, and files whose change could not be applied at all
   * (e.g. the patch deletes a file changed upstream), which are left as they were. For a dry
   * run, the paths that would be.
   */
  conflicts: string[];
}

const DEFAULT_TIMEOUT_MS = 120_000;
const MAX_ROUNDS = 4;

const ApplyGitPatchOptionsSchema = z.strictObject({
  worktree: z.string().min(1),
  patch: z.instanceof(Uint8Array),
  baseCommit: z.string().regex(/^(?:[0-9a-f]{40}|[0-9a-f]{64})$/, {
    message: "Must be a full commit id (40 or 64 lowercase hex digits)",
  }),
  dryRun: z.boolean().optional(),
  timeoutMs: z.number().int().positive().optional(),
  signal: z.instanceof(AbortSignal).optional(),
});

interface FsModule {
  mkdtemp(prefix: string): Promise<string>;
  mkdir(path: string, options: { recursive: true }): Promise<unknown>;
  copyFile(from: string, to: string): Promise<void>;
  rm(path: string, options: { force: true; recursive: true }): Promise<void>;
}

const decoder = new TextDecoder();

/**
 * Applies a patch captured by a git capturer to a work tree, the way `git apply --3way --index`
 * does: changes that apply cleanly are written to the work tree and staged; overlapping
 * changes are merged with conflict markers and listed in `conflicts`; nothing is committed,
 * and nothing is removed beyond what the patch itself deletes (no `git clean`, no
 * `git reset --hard`). A file whose change cannot be applied even by a 3-way merge (e.g. the
 * patch deletes it but it changed upstream) is left as it is and listed too.
 *
 * On a clone checked out at the base commit, the result is the captured work tree, byte for
 * byte, modes and symlinks included. The target must be clean (`git status --porcelain` empty,
 * untracked files included) and must have the base commit.
 *
 * @param options Target, patch, base commit, dry run, deadline and signal.
 * @returns Whether the work tree changed, and the conflicting paths.
 * @throws {ValidationError} When an option is invalid or the directory is not a git work tree.
 * @throws {BaseCommitMissingError} When the target lacks the base commit.
 * @throws {DirtyWorktreeError} When the target has changes; nothing is touched.
 * @throws {GitError} When git fails, or the patch cannot be applied at all (nothing changed).
 *
 * @example
 * ```ts ignore
 * import { applyGitPatch } from "./restore.ts";
 *
 * const { applied, conflicts } = await applyGitPatch({
 *   worktree: "/work/clone",
 *   patch,
 *   baseCommit: "4e1243bd22c66e76c2ba9eddc1f91394e57f9f83",
 * });
 * if (conflicts.length > 0) console.log("Resolve:", conflicts);
 * ```
 */
export async function applyGitPatch(options: ApplyGitPatchOptions): Promise<ApplyGitPatchResult> {
  const parsed = parseOrThrow(ApplyGitPatchOptionsSchema, options, "Invalid git restore options");
  const deadline = Date.now() + (parsed.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const git = (args: string[], extra: Partial<RunGitOptions> & { cwd: string }) =>
    runGit(args, {
      timeoutMs: Math.max(1, deadline - Date.now()),
      signal: parsed.signal,
      ...extra,
    });

  const locate = ["rev-parse", "--path-format=absolute", "--show-toplevel", "--git-path", "index"];
  locate.push("--git-path", "objects");
  const notAWorktree = () =>
    new ValidationError(
      [{ path: "worktree", message: `Is not inside a git work tree: '${parsed.worktree}'` }],
      "Invalid git restore options",
    );
  const inWorktree = (args: string[]) =>
    git(args, { cwd: parsed.worktree, okExitCodes: [0, 128] }).catch(async (error) => {
      // A missing directory cannot be a work tree; anything else is git's failure.
      const fs = await import("node:fs/promises") as unknown as {
        stat(path: string): Promise<unknown>;
      };
      if (await fs.stat(parsed.worktree).then(() => false, () => true)) throw notAWorktree();
      throw error;
    });
  const [location, status] = await Promise.all([
    inWorktree([...locate, `${parsed.baseCommit}^{commit}`]),
    // Porcelain paths are relative to the top level, wherever it runs.
    inWorktree([
      "status",
      "--porcelain=v1",
      "-z",
      "--untracked-files=all",
      "--ignore-submodules=none",
    ]),
  ]);
  if (location.exitCode !== 0) {
    // Which one: the directory, or the commit?
    const located = await inWorktree(locate);
    if (located.exitCode !== 0) throw notAWorktree();
    const topLevel = text(located.stdout).split("\n")[0];
    throw new BaseCommitMissingError(topLevel, parsed.baseCommit);
  }
  const [topLevel, indexPath, objectsPath] = text(location.stdout).split("\n");
  if (status.exitCode !== 0) throw notAWorktree();
  const dirty = statusPaths(text(status.stdout));
  if (dirty.length > 0) throw new DirtyWorktreeError(topLevel, dirty);

  if (options.patch.byteLength === 0) return { applied: !parsed.dryRun, conflicts: [] };

  let env: Record<string, string> = {};
  let scratch: string | undefined;
  let fs: FsModule | undefined;
  if (parsed.dryRun) {
    // The trial runs on a copy of the index, with its objects in a scratch directory.
    fs = await import("node:fs/promises") as unknown as FsModule;
    const os = await import("node:os") as unknown as { tmpdir(): string };
    scratch = await fs.mkdtemp(`${os.tmpdir()}/git-restore-`);
    await fs.mkdir(`${scratch}/objects`, { recursive: true });
    await fs.copyFile(indexPath, `${scratch}/index`).catch(() => {});
    env = {
      GIT_INDEX_FILE: `${scratch}/index`,
      GIT_OBJECT_DIRECTORY: `${scratch}/objects`,
      GIT_ALTERNATE_OBJECT_DIRECTORIES: alternateObjectDirectories([objectsPath]),
    };
  }

  try {
    let patch = options.patch;
    const skipped: string[] = [];
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const applied = await git([
        "-c",
        "core.safecrlf=false",
        "apply",
        parsed.dryRun ? "--cached" : "--index",
        "--3way",
        "--whitespace=nowarn",
        "-",
      ], { cwd: topLevel, env, stdin: patch, okExitCodes: [0, 1] });
      if (applied.exitCode === 0) {
        return { applied: !parsed.dryRun, conflicts: sortedUnique(skipped) };
      }
      const unmerged = await git(["ls-files", "-u", "-z"], { cwd: topLevel, env });
      const conflicts = unmergedPaths(text(unmerged.stdout));
      if (conflicts.length > 0) {
        return { applied: !parsed.dryRun, conflicts: sortedUnique([...conflicts, ...skipped]) };
      }
      // git apply is all or nothing: find the files it refused and apply the rest.
      const sections = splitPatch(patch);
      const failing = sections.filter((section) => refused(applied.stderr, section.path));
      if (failing.length === 0) {
        throw new GitError(`The patch could not be applied to '${topLevel}'; nothing was changed`, {
          args: ["apply", "--3way"],
          reason: "exit",
          exitCode: applied.exitCode,
          stderr: applied.stderr,
        });
      }
      skipped.push(...failing.map((section) => section.path));
      const kept = sections.filter((section) => !failing.includes(section));
      if (kept.length === 0) return { applied: false, conflicts: sortedUnique(skipped) };
      patch = concatBytes(kept.map((section) => section.bytes));
    }
    throw new GitError(`The patch could not be applied to '${topLevel}'; nothing was changed`, {
      args: ["apply", "--3way"],
      reason: "exit",
      exitCode: 1,
    });
  } finally {
    if (scratch !== undefined) await fs!.rm(scratch, { force: true, recursive: true });
  }
}

interface PatchSection {
  path: string;
  bytes: Uint8Array;
}

const HEADER = new TextEncoder().encode("diff --git ");

/** Splits a patch into its per-file sections (each starts with a `diff --git` line). */
function splitPatch(patch: Uint8Array): PatchSection[] {
  const starts: number[] = [];
  for (let i = 0; i < patch.byteLength; i = nextLine(patch, i)) {
    if (startsWith(patch, i, HEADER)) starts.push(i);
  }
  const sections: PatchSection[] = [];
  for (let s = 0; s < starts.length; s++) {
    const start = starts[s];
    const end = s + 1 < starts.length ? starts[s + 1] : patch.byteLength;
    const lineEnd = patch.indexOf(0x0a, start);
    const header = decoder.decode(
      patch.subarray(start + HEADER.length, lineEnd < 0 ? end : lineEnd),
    );
    sections.push({ path: headerPath(header), bytes: patch.subarray(start, end) });
  }
  return sections;
}

/** The path of a `diff --git a/X b/X` header (captures never record renames). */
function headerPath(rest: string): string {
  if (rest.startsWith('"')) return unquote(rest).replace(/^a\//, "");
  const length = (rest.length - 5) / 2;
  return Number.isInteger(length) ? rest.slice(2, 2 + length) : rest.slice(2);
}

/** Decodes git's C-style quoted path at the start of `text`. */
function unquote(text: string): string {
  const bytes: number[] = [];
  const encoder = new TextEncoder();
  const escapes: Record<string, number> = {
    a: 7,
    b: 8,
    t: 9,
    n: 10,
    v: 11,
    f: 12,
    r: 13,
    '"': 34,
    "\\": 92,
  };
  for (let i = 1; i < text.length; i++) {
    const c = text[i];
    if (c === '"') break;
    if (c !== "\\") {
      bytes.push(...encoder.encode(c));
      continue;
    }
    const next = text[++i];
    if (/[0-7]/.test(next)) {
      bytes.push(parseInt(text.slice(i, i + 3), 8));
      i += 2;
    } else bytes.push(escapes[next] ?? next.charCodeAt(0));
  }
  return decoder.decode(new Uint8Array(bytes));
}

/** Whether git apply's stderr names `path` as a file it could not apply. */
function refused(stderr: string, path: string): boolean {
  return stderr.split("\n").some((line) =>
    line.startsWith("error: ") &&
    (line.startsWith(`error: ${path}:`) || line.startsWith(`error: patch failed: ${path}:`) ||
      line.includes(`'${path}'`) || line.startsWith(`error: ${path} `))
  );
}

function statusPaths(output: string): string[] {
  const tokens = output.split("\0");
  const paths: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (token.length < 4) continue;
    paths.push(token.slice(3));
    // A rename or copy is followed by its source path.
    if (token[0] === "R" || token[0] === "C") i++;
  }
  return paths;
}

function unmergedPaths(output: string): string[] {
  const paths = new Set<string>();
  for (const record of output.split("\0")) {
    const tab = record.indexOf("\t");
    if (tab >= 0) paths.add(record.slice(tab + 1));
  }
  return [...paths];
}

function sortedUnique(paths: string[]): string[] {
  return [...new Set(paths)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function nextLine(bytes: Uint8Array, from: number): number {
  const newline = bytes.indexOf(0x0a, from);
  return newline < 0 ? bytes.byteLength : newline + 1;
}

function startsWith(bytes: Uint8Array, at: number, prefix: Uint8Array): boolean {
  if (at + prefix.byteLength > bytes.byteLength) return false;
  for (let i = 0; i < prefix.byteLength; i++) if (bytes[at + i] !== prefix[i]) return false;
  return true;
}

function text(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}
