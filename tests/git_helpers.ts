// Shared helpers of the git checkpoint tests: real repositories in temp dirs, tree comparison.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  realpath,
  rm,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";

/** The environment of the tests' own git commands (the "agent"): no inherited GIT_* variable. */
export function agentEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith("GIT_")) env[name] = value;
  }
  return {
    ...env,
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_AUTHOR_NAME: "Agent",
    GIT_AUTHOR_EMAIL: "agent@example.com",
    GIT_COMMITTER_NAME: "Agent",
    GIT_COMMITTER_EMAIL: "agent@example.com",
    LC_ALL: "C",
    // As runGit() does: glibc heap churn is slow in VMs.
    MALLOC_TRIM_THRESHOLD_: "134217728",
    MALLOC_TOP_PAD_: "16777216",
  };
}

/** Runs git in `cwd` as the agent would; rejects with its stderr on failure. */
export function git(cwd: string, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      "git",
      ["-c", "init.defaultBranch=main", "-c", "core.autocrlf=false", ...args],
      { cwd, env: agentEnv(), maxBuffer: 256 * 1024 * 1024, encoding: "utf8" },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`git ${args.join(" ")} failed in ${cwd}: ${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

/** Runs `fn` with a fresh temp dir (real path), removed afterwards. */
export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await realpath(await mkdtemp(join(tmpdir(), prefix)));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Writes a file, creating its directories. */
export async function put(root: string, path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(join(root, path)), { recursive: true });
  await writeFile(join(root, path), data);
}

/**
 * Creates `upstream.git` (bare) holding one commit of `files` and `agent` cloned from it;
 * returns their paths and the base commit.
 */
export async function createRepos(
  root: string,
  files: (dir: string) => Promise<void>,
): Promise<{ upstream: string; agent: string; base: string }> {
  const seed = join(root, "seed");
  await mkdir(seed);
  await git(seed, "init", "-q");
  await files(seed);
  await git(seed, "add", "-A");
  await git(seed, "commit", "-q", "-m", "base");
  const upstream = join(root, "upstream.git");
  await git(root, "clone", "-q", "--bare", seed, upstream);
  await rm(seed, { recursive: true, force: true });
  const agent = join(root, "agent");
  await git(root, "clone", "-q", upstream, agent);
  const base = (await git(agent, "rev-parse", "HEAD")).trim();
  return { upstream, agent, base };
}

/** What a path is, for byte-for-byte comparison. */
export type Leaf =
  | { type: "file"; exec: boolean; sha: string; size: number }
  | { type: "symlink"; target: string };

/**
 * Every file and symlink under `root` (directories are implied), skipping `.git` entries and
 * anything under the `skip` prefixes (paths; a directory prefix ends with `/`).
 */
export async function leaves(
  root: string,
  skip: readonly string[] = [],
): Promise<Map<string, Leaf>> {
  const out = new Map<string, Leaf>();
  const skipped = (path: string) =>
    skip.some((prefix) => path === prefix || (prefix.endsWith("/") && path.startsWith(prefix)));
  async function walk(dir: string, prefix: string): Promise<void> {
    for (const name of (await readdir(dir)).sort()) {
      if (name === ".git") continue;
      const path = prefix + name;
      const full = join(dir, name);
      const stat = await lstat(full);
      if (stat.isDirectory()) {
        if (!skipped(`${path}/`)) await walk(full, `${path}/`);
      } else if (skipped(path)) continue;
      else if (stat.isSymbolicLink()) {
        out.set(path, { type: "symlink", target: await readlink(full) });
      } else {
        const bytes = await readFile(full);
        out.set(path, {
          type: "file",
          exec: (stat.mode & 0o111) !== 0,
          sha: createHash("sha256").update(bytes).digest("hex"),
          size: bytes.byteLength,
        });
      }
    }
  }
  await walk(root, "");
  return out;
}

/** Asserts two trees hold the same paths with the same type, exec bit, bytes and link target. */
export function assertSameTree(actual: Map<string, Leaf>, expected: Map<string, Leaf>): void {
  const problems: string[] = [];
  for (const [path, leaf] of expected) {
    const other = actual.get(path);
    if (other === undefined) problems.push(`missing ${path}`);
    else if (JSON.stringify(other) !== JSON.stringify(leaf)) {
      problems.push(`differs ${path}: ${JSON.stringify(other)} != ${JSON.stringify(leaf)}`);
    }
  }
  for (const path of actual.keys()) if (!expected.has(path)) problems.push(`extra ${path}`);
  assert.deepEqual(problems, []);
}

/** Paths git ignores in `worktree` (untracked and ignored), directories ending with `/`. */
export async function ignoredPaths(worktree: string): Promise<string[]> {
  const out = await git(
    worktree,
    "ls-files",
    "-z",
    "--others",
    "--ignored",
    "--exclude-standard",
    "--directory",
  );
  return out.split("\0").filter((path) => path !== "");
}

/** Every entry under a `.git` directory with its type, size, mode and mtime. */
export async function snapshotDir(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  async function walk(dir: string, prefix: string): Promise<void> {
    for (const name of (await readdir(dir)).sort()) {
      const full = join(dir, name);
      const stat = await lstat(full);
      const kind = stat.isDirectory() ? "d" : stat.isSymbolicLink() ? "l" : "f";
      out.set(prefix + name, `${kind} ${stat.size} ${stat.mode.toString(8)} ${stat.mtimeMs}`);
      if (stat.isDirectory()) await walk(full, `${prefix}${name}/`);
    }
  }
  await walk(root, "");
  return out;
}

/** Random bytes (with NULs, so git sees a binary file). */
export function randomBytes(size: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  bytes[0] = 0;
  return bytes;
}

/** Waits `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
