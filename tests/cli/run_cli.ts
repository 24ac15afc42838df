// Test helpers for the `runs` CLI: spawn it as a user would, under the runtime running the test
// (Deno: `deno run -A cli.ts`; Node: `node --import tsx cli.ts`), on a filesystem or S3 storage.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { StepExecutionRequest } from "../../core/types.ts";
import { createFsStorage } from "../../storage/fs.ts";
import { createS3Storage } from "../../storage/s3.ts";
import type { RunStorage } from "../../storage/types.ts";
import { createBucket, deleteBucketRecursive, uniqueBucketName } from "../s3/bucket.ts";
import { sleep } from "../git_helpers.ts";
import { requireRgw, type SkippableTest } from "../s3/rgw_env.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const CLI = join(root, "cli.ts");
// By path: a child started in another directory (a temp repo) must still find the loader.
const TSX = pathToFileURL(join(root, "node_modules", "tsx", "dist", "loader.mjs")).href;

/** What a finished CLI process gave. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The command line that runs the CLI under this test's runtime. */
export function cliCommand(args: string[]): [string, string[]] {
  // deno-lint-ignore no-explicit-any
  const deno = (globalThis as any).Deno;
  return deno
    ? [deno.execPath(), ["run", "-A", "--config", join(root, "deno.json"), CLI, ...args]]
    : [process.execPath, ["--import", TSX, CLI, ...args]];
}

/** Starts the CLI with a clean environment (no inherited AWS_* or NO_COLOR) plus `env`. */
export function startCli(
  args: string[],
  env: Record<string, string> = {},
  cwd = root,
  commandLine?: string[],
): ChildProcess {
  const base: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith("AWS_") && name !== "NO_COLOR") {
      base[name] = value;
    }
  }
  const [command, argv] = commandLine === undefined
    ? cliCommand(args)
    : [commandLine[0], commandLine.slice(1)];
  return spawn(command, argv, { cwd, env: { ...base, ...env }, stdio: ["ignore", "pipe", "pipe"] });
}

/** Runs the CLI to its end (at most `timeoutMs`). */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
  options: { cwd?: string; timeoutMs?: number; command?: string[]; env?: Record<string, string> } =
    {},
): Promise<CliResult> {
  const child = startCli(args, { ...env, ...options.env }, options.cwd, options.command);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on("data", (b: Buffer) => out.push(b));
  child.stderr!.on("data", (b: Buffer) => err.push(b));
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({
        code,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      });
    });
  });
}

/** A storage as the test writes it, and how the CLI is pointed at it. */
export interface Backend {
  kind: "fs" | "s3";
  /** The storage (runs under `runs/`). */
  storage: RunStorage;
  /** `--storage ...` for the CLI. */
  args: string[];
  /** Environment for the CLI (S3 credentials). */
  env: Record<string, string>;
  /** A scratch directory for the test's own files. */
  dir: string;
  /** For S3: the bucket (the CLI's `s3://` location has `prefix`). */
  bucket?: string;
}

/**
 * Runs `body` with a fresh backend: a temp dir (the CLI gets it as `--storage`), or a fresh
 * bucket on the local RGW with a key prefix (`s3://bucket/prefix`, credentials in AWS_*).
 * Returns without running `body` when S3 is asked for and RGW is not there (the test skips).
 */
export async function withBackend(
  t: SkippableTest,
  kind: "fs" | "s3",
  body: (backend: Backend) => Promise<void>,
  options: { prefix?: string } = {},
): Promise<void> {
  const dir = await realpath(await mkdtemp(join(tmpdir(), "runs-cli-")));
  try {
    if (kind === "fs") {
      const store = join(dir, "repo");
      await body({
        kind,
        storage: createFsStorage({ root: store }),
        args: ["--storage", store],
        env: {},
        dir,
      });
      return;
    }
    const env = requireRgw(t);
    if (env === undefined) return;
    const bucket = uniqueBucketName("cli");
    const prefix = options.prefix ?? "team/prod";
    await createBucket(env, bucket);
    try {
      await body({
        kind,
        storage: createS3Storage({ ...env, bucket, ...(prefix === "" ? {} : { prefix }) }),
        args: ["--storage", `s3://${bucket}${prefix === "" ? "" : `/${prefix}`}`],
        env: {
          AWS_ACCESS_KEY_ID: env.accessKeyId,
          AWS_SECRET_ACCESS_KEY: env.secretAccessKey,
          AWS_REGION: env.region,
          AWS_ENDPOINT_URL_S3: env.endpoint,
        },
        dir,
        bucket,
      });
    } finally {
      await deleteBucketRecursive(env, bucket);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The step request of the CLI tests' runs: `task-1/run-1` in `repo` unless overridden. */
export function stepRequest(
  repo: string,
  overrides: Partial<StepExecutionRequest> = {},
): StepExecutionRequest {
  return {
    taskId: "task-1",
    stepId: "step-1",
    stepName: "Step one",
    stepKind: "codegen",
    runId: "run-1",
    attempt: 1,
    workerKind: "script",
    timeoutSec: 60,
    runtime: { repoRoot: repo, worktreePath: repo },
    ...overrides,
  };
}

/** Waits until `probe` gives a value (at most `ms`). */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  ms = 30_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** A child's exit code, once it has exited. */
export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve(child.exitCode);
  }
  return new Promise((resolve) => child.once("close", (code) => resolve(code)));
}
