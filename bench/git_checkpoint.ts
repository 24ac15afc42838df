// Git checkpoint costs on generated repositories: capture time (first and later capture) for
// no change, a small change, 1,000 changed files and a 20 MB untracked binary; restore time of
// the 1,000-file change; and, on the large repository, the first capture and disk use of a
// shadow repository (a second GIT_DIR over the same work tree) beside ours. Medians.
// Run: npx -y deno@2.9.6 run -A bench/git_checkpoint.ts [--reps 5] [--small-files 3000]
//        [--small-mb 30] [--large-files 50000] [--large-mb 1000] [--skip-large] [--verbose]

import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, realpath, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { createGitCapturer, type GitCaptureResult } from "../git/capture.ts";
import { applyGitPatch } from "../git/restore.ts";
import { loadAverage, median, numberArg, printTable } from "./_harness.ts";

const REPS = numberArg("--reps", 5);
const SMALL = { files: numberArg("--small-files", 3000), mb: numberArg("--small-mb", 30) };
const LARGE = { files: numberArg("--large-files", 50_000), mb: numberArg("--large-mb", 1000) };
const SKIP_LARGE = Deno.args.includes("--skip-large");
const VERBOSE = Deno.args.includes("--verbose");

const TARGETS: Record<string, { small: number; large: number }> = {
  "no change": { small: 40, large: 120 },
  "small change": { small: 60, large: 200 },
  "1,000 files": { small: 500, large: 2500 },
  "restore 1,000 files": { small: 500, large: 2000 },
};

function env(extra: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith("GIT_")) out[k] = v;
  }
  return {
    ...out,
    GIT_AUTHOR_NAME: "Bench",
    GIT_AUTHOR_EMAIL: "bench@example.com",
    GIT_COMMITTER_NAME: "Bench",
    GIT_COMMITTER_EMAIL: "bench@example.com",
    ...extra,
  };
}

function git(cwd: string, args: string[], extra: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      "git",
      args,
      { cwd, env: env(extra), maxBuffer: 1 << 30, encoding: "utf8" },
      (e, out, err) => {
        if (e) reject(new Error(`git ${args.join(" ")}: ${err}`));
        else resolve(out);
      },
    );
  });
}

/** Deterministic text: lines of pseudo-random words (compresses like source code, ~3x). */
function textBlock(bytes: number, seed: number): string {
  const words = [
    "const",
    "return",
    "value",
    "index",
    "export",
    "function",
    "if",
    "else",
    "for",
    "await",
    "result",
    "error",
    "data",
    "item",
    "list",
    "map",
    "string",
    "number",
    "=",
    "{",
    "}",
    "(",
    ")",
    ";",
    "import",
    "from",
    "type",
    "interface",
    "let",
    "new",
  ];
  let x = seed >>> 0 || 1;
  let out = "";
  let line = "";
  while (out.length < bytes) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    line += words[(x >>> 0) % words.length] + " ";
    if (line.length > 60) {
      out += line + "\n";
      line = "";
    }
  }
  return out.slice(0, bytes - 1) + "\n";
}

/** File i of a generated repository: 20 files a directory, 20 directories a module. */
function filePath(i: number): string {
  return `src/mod${Math.floor(i / 400)}/pkg${Math.floor(i / 20)}/file${i}.ts`;
}

async function generate(dir: string, files: number, totalMb: number): Promise<void> {
  const size = Math.max(64, Math.floor((totalMb * 1e6) / files));
  await git(dir, ["init", "-q", "-b", "main"]);
  const made = new Set<string>();
  for (let i = 0; i < files; i++) {
    const path = join(dir, filePath(i));
    const parent = path.slice(0, path.lastIndexOf("/"));
    if (!made.has(parent)) {
      await mkdir(parent, { recursive: true });
      made.add(parent);
    }
    await writeFile(path, textBlock(size, i + 1));
  }
  await writeFile(join(dir, ".gitignore"), "*.log\n");
  await git(dir, ["add", "-A"]);
  await git(dir, ["commit", "-q", "-m", "base"]);
  // Real repositories are packed.
  await git(dir, ["-c", "pack.window=0", "-c", "pack.compression=1", "repack", "-adq"]);
  await git(dir, ["prune-packed"]);
}

/**
 * CPU time of this process and its finished children (git), ms (Linux; 0 elsewhere): wall time
 * on a busy machine is mostly waiting for a CPU, this is not.
 */
function cpuMs(): number {
  try {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime, stime, cutime, cstime, in clock ticks (100 a second on Linux).
    return [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0) * 10;
  } catch {
    return 0;
  }
}

/** The share of time some task waited for a CPU over the last 60 s (Linux PSI), as text. */
function cpuPressure(): string {
  try {
    const text = Deno.readTextFileSync("/proc/pressure/cpu");
    return /some avg10=([\d.]+) avg60=([\d.]+)/.exec(text)?.slice(1, 3).join("% / ") + "%";
  } catch {
    return "n/a";
  }
}

async function du(path: string): Promise<number> {
  let total = 0;
  const info = await stat(path);
  if (!info.isDirectory()) return info.blocks * 512;
  for (const name of await readdir(path)) total += await du(join(path, name));
  return total + info.blocks * 512;
}

interface Scenario {
  name: string;
  /** The change seen by the first capture. */
  first(dir: string, rep: number): Promise<void>;
  /** The change seen by the later capture. */
  later(dir: string, rep: number): Promise<void>;
}

const scenarios: Scenario[] = [
  { name: "no change", first: async () => {}, later: async () => {} },
  {
    name: "small change",
    first: async (dir, rep) => {
      await writeFile(join(dir, filePath(7)), textBlock(2000, 1000 + rep));
      await writeFile(join(dir, `notes-${rep}.md`), "a new file\n");
    },
    later: async (dir, rep) => {
      await writeFile(join(dir, filePath(8)), textBlock(2000, 2000 + rep));
    },
  },
  {
    name: "1,000 files",
    first: async (dir, rep) => {
      for (let i = 0; i < 1000; i++) {
        await writeFile(join(dir, filePath(i * 3)), textBlock(1500, 3000 + rep * 7 + i));
      }
    },
    later: async (dir, rep) => {
      for (let i = 0; i < 1000; i++) {
        await writeFile(join(dir, filePath(i * 3)), textBlock(1500, 9000 + rep * 7 + i));
      }
    },
  },
  {
    name: "20 MB untracked binary",
    // With a small change beside it, so that the first capture stores a record listing it.
    first: async (dir, rep) => {
      await writeFile(join(dir, filePath(10)), textBlock(2000, 5000 + rep));
      const bytes = new Uint8Array(20 * 1024 * 1024);
      crypto.getRandomValues(bytes.subarray(0, 65536));
      for (let o = 65536; o < bytes.length; o += 65536) bytes.copyWithin(o, 0, 65536);
      bytes[0] = rep;
      await writeFile(join(dir, "assets.bin"), bytes);
    },
    later: async (dir, rep) => {
      await writeFile(join(dir, filePath(9)), textBlock(2000, 4000 + rep));
    },
  },
];

async function reset(dir: string): Promise<void> {
  await git(dir, ["reset", "-q", "--hard"]);
  await git(dir, ["clean", "-fdxq"]);
}

interface SizeResult {
  rows: (string | number)[][];
  restoreMs: number;
  firstCaptureMs: number;
  stateBytes: number;
}

async function benchRepo(
  label: string,
  root: string,
  files: number,
  mb: number,
): Promise<SizeResult> {
  const dir = join(root, label);
  await mkdir(dir);
  let start = performance.now();
  await generate(dir, files, mb);
  const repoBytes = await du(join(dir, ".git"));
  console.error(
    `${label}: ${files} files, ${mb} MB generated and committed in ${
      ((performance.now() - start) / 1000).toFixed(1)
    } s (.git ${(repoBytes / 1e6).toFixed(0)} MB)`,
  );
  const size = label as "small" | "large";
  const rows: (string | number)[][] = [];
  let patch1000: GitCaptureResult | undefined;
  let firstCaptureMs = 0;
  let stateBytes = 0;
  for (const scenario of scenarios) {
    const create: number[] = [];
    const first: number[] = [];
    const later: number[] = [];
    const firstCpu: number[] = [];
    const laterCpu: number[] = [];
    let patchBytes = 0;
    for (let rep = 0; rep < REPS; rep++) {
      const stateDir = join(root, `state-${label}-${rep}`);
      start = performance.now();
      const capturer = await createGitCapturer({ worktree: dir, stateDir, timeoutMs: 600_000 });
      create.push(performance.now() - start);
      await scenario.first(dir, rep);
      let cpu = cpuMs();
      start = performance.now();
      const a = await capturer.capture();
      first.push(performance.now() - start);
      firstCpu.push(cpuMs() - cpu);
      await scenario.later(dir, rep);
      cpu = cpuMs();
      start = performance.now();
      const b = await capturer.capture();
      later.push(performance.now() - start);
      laterCpu.push(cpuMs() - cpu);
      if (scenario.name === "1,000 files") {
        patch1000 = a;
        patchBytes = a?.patchBytes ?? 0;
      }
      if (scenario.name === "small change" && rep === 0) {
        firstCaptureMs = create[0] + first[0];
        stateBytes = await du(stateDir);
      }
      if (scenario.name === "20 MB untracked binary") {
        if (a?.excluded.find((e) => e.path === "assets.bin")?.reason !== "file_size") {
          throw new Error("The 20 MB binary was not left out");
        }
      }
      if (scenario.name !== "no change" && (a === undefined || b === undefined)) {
        throw new Error(`${scenario.name}: a change was not captured`);
      }
      await capturer.dispose();
      await rm(stateDir, { recursive: true, force: true });
      const r0 = performance.now();
      await reset(dir);
      if (VERBOSE) {
        console.error(
          `  ${label} ${scenario.name} #${rep}: create ${create[rep].toFixed(0)} first ${
            first[rep].toFixed(0)
          } later ${later[rep].toFixed(0)} reset ${(performance.now() - r0).toFixed(0)}`,
        );
      }
    }
    const target = TARGETS[scenario.name]?.[size];
    rows.push([
      `${label} (${files} files)`,
      scenario.name,
      median(create).toFixed(0),
      `${median(first).toFixed(0)} (${median(firstCpu).toFixed(0)})`,
      `${median(later).toFixed(0)} (${median(laterCpu).toFixed(0)})`,
      target === undefined ? "-" : `<= ${target}`,
      patchBytes ? (patchBytes / 1e3).toFixed(0) + " KB" : "",
    ]);
  }

  // For reference: what a plain `git status` costs on the same unchanged work tree.
  const status: number[] = [];
  const statusCpu: number[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    const cpu = cpuMs();
    start = performance.now();
    await git(dir, ["status", "--porcelain"], { GIT_OPTIONAL_LOCKS: "0" });
    status.push(performance.now() - start);
    statusCpu.push(cpuMs() - cpu);
  }
  rows.push([
    `${label} (${files} files)`,
    "git status (reference)",
    "",
    "",
    `${median(status).toFixed(0)} (${median(statusCpu).toFixed(0)})`,
    "",
    "",
  ]);

  // Restore of the 1,000-file change onto a checkout of the base commit.
  const targetDir = join(root, `${label}-target`);
  await git(dir, ["worktree", "add", "-q", "--detach", targetDir, "HEAD"]);
  const restore: number[] = [];
  const restoreCpu: number[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    const cpu = cpuMs();
    start = performance.now();
    const result = await applyGitPatch({
      worktree: targetDir,
      patch: patch1000!.patch!,
      baseCommit: patch1000!.baseCommit,
      timeoutMs: 600_000,
    });
    restore.push(performance.now() - start);
    restoreCpu.push(cpuMs() - cpu);
    if (!result.applied || result.conflicts.length > 0) throw new Error("Restore failed");
    await reset(targetDir);
  }
  await git(dir, ["worktree", "remove", "--force", targetDir]);
  const restoreMs = median(restore);
  rows.push([
    `${label} (${files} files)`,
    "restore 1,000 files",
    "",
    `${restoreMs.toFixed(0)} (${median(restoreCpu).toFixed(0)})`,
    "",
    `<= ${TARGETS["restore 1,000 files"][size]}`,
    "",
  ]);
  return { rows, restoreMs, firstCaptureMs, stateBytes };
}

/** A shadow repository over the same work tree: first capture (add -A, commit) and disk use. */
async function shadow(
  root: string,
  dir: string,
): Promise<{ firstMs: number; laterMs: number; bytes: number }> {
  const gitDir = join(root, "shadow.git");
  const shadowEnv = { GIT_DIR: gitDir, GIT_WORK_TREE: dir };
  const start = performance.now();
  await git(dir, ["init", "-q"], shadowEnv);
  await git(dir, ["add", "-A"], shadowEnv);
  await git(dir, ["commit", "-q", "-m", "checkpoint"], shadowEnv);
  const firstMs = performance.now() - start;
  await writeFile(join(dir, filePath(8)), textBlock(2000, 77));
  const later = performance.now();
  await git(dir, ["add", "-A"], shadowEnv);
  await git(dir, ["commit", "-q", "-m", "checkpoint"], shadowEnv);
  const laterMs = performance.now() - later;
  const bytes = await du(gitDir);
  await reset(dir);
  return { firstMs, laterMs, bytes };
}

async function spawnBaseline(): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 10; i++) {
    const start = performance.now();
    await git(tmpdir(), ["--version"]);
    times.push(performance.now() - start);
  }
  return median(times);
}

const root = await realpath(await mkdtemp(join(tmpdir(), "baa-bench-git-")));
try {
  console.error(
    `load average at start: ${loadAverage()}; CPU pressure ${cpuPressure()}; reps: ${REPS}`,
  );
  const spawnMs = await spawnBaseline();
  const small = await benchRepo("small", root, SMALL.files, SMALL.mb);
  const all = [...small.rows];
  let shadowRows: (string | number)[][] = [];
  if (!SKIP_LARGE) {
    const large = await benchRepo("large", root, LARGE.files, LARGE.mb);
    all.push(...large.rows);
    const dir = join(root, "large");
    const ours = await (async () => {
      const stateDir = join(root, "state-ours");
      const start = performance.now();
      const capturer = await createGitCapturer({ worktree: dir, stateDir, timeoutMs: 600_000 });
      await writeFile(join(dir, filePath(7)), textBlock(2000, 55));
      await capturer.capture();
      const ms = performance.now() - start;
      const bytes = await du(stateDir);
      await capturer.dispose();
      await rm(stateDir, { recursive: true, force: true });
      await reset(dir);
      return { ms, bytes };
    })();
    const theirs = await shadow(root, dir);
    shadowRows = [
      ["private index + objects (this)", ours.ms.toFixed(0), "", (ours.bytes / 1e6).toFixed(1)],
      [
        "shadow repository (GIT_DIR over the work tree)",
        theirs.firstMs.toFixed(0),
        theirs.laterMs.toFixed(0),
        (theirs.bytes / 1e6).toFixed(1),
      ],
    ];
  }
  console.log(
    `\nGit checkpoints, medians of ${REPS}: wall ms (CPU ms of this process and git). ` +
      `git --version takes ${spawnMs.toFixed(1)} ms here; load average ${loadAverage()}; ` +
      `CPU pressure (some, 10 s / 60 s) ${cpuPressure()}\n`,
  );
  printTable(
    ["repository", "scenario", "create", "first capture", "later capture", "target", "patch"],
    all,
  );
  if (shadowRows.length > 0) {
    console.log(`\nLarge repository (${LARGE.files} files, ${LARGE.mb} MB), one run each:\n`);
    printTable(["approach", "first capture ms", "later ms", "disk MB"], shadowRows);
  }
} finally {
  await rm(root, { recursive: true, force: true });
}
