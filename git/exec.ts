// The one subprocess helper for git: explicit environment, bounded time, bytes out, typed errors.

import { concatBytes } from "../core/bytes.ts";
import { GitError } from "../core/errors.ts";

/** Options of {@linkcode runGit}. */
export interface RunGitOptions {
  /** Working directory of the command. */
  cwd: string;
  /**
   * Variables set for this call only, on top of the sanitized environment (see
   * {@linkcode gitEnvironment}); they never reach any other process.
   */
  env?: Readonly<Record<string, string>>;
  /** Bytes written to the command's stdin (closed right after); stdin is empty otherwise. */
  stdin?: Uint8Array;
  /**
   * Deadline in milliseconds; past it the command gets SIGTERM (git then removes its lock
   * files), SIGKILL a second later, and the call rejects with reason `timeout`. Default 30000.
   */
  timeoutMs?: number;
  /** Aborting stops the command the same way and rejects with reason `aborted`. */
  signal?: AbortSignal;
  /**
   * Stop reading stdout after this many bytes: the command is stopped and the result has
   * `truncated: true` (not an error). Default: unbounded.
   */
  maxStdoutBytes?: number;
  /** Exit codes that are not failures. Default `[0]`. */
  okExitCodes?: readonly number[];
}

/** What {@linkcode runGit} resolves to. */
export interface RunGitResult {
  /** The exit code; -1 when the command was stopped because stdout hit its limit. */
  exitCode: number;
  /** Stdout bytes (at most `maxStdoutBytes` of them). */
  stdout: Uint8Array;
  /** The end of stderr as text (at most 64 KB). */
  stderr: string;
  /** True when stdout went past `maxStdoutBytes` and the command was stopped. */
  truncated: boolean;
}

// Variables of the caller that git may use; everything else, every other GIT_* above all
// (GIT_DIR, GIT_WORK_TREE, GIT_INDEX_FILE, GIT_OBJECT_DIRECTORY, GIT_ALTERNATE_OBJECT_DIRECTORIES,
// GIT_CEILING_DIRECTORIES, GIT_CONFIG_PARAMETERS, GIT_CONFIG_COUNT, ... as set inside a hook or an
// agent's shell), is dropped.
const KEPT_VARIABLES = [
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "TMPDIR",
  "XDG_CONFIG_HOME",
  "GIT_CONFIG_GLOBAL",
  "GIT_CONFIG_SYSTEM",
  "GIT_CONFIG_NOSYSTEM",
  "GIT_EXEC_PATH",
  // Windows needs these to start anything at all.
  "SYSTEMROOT",
  "SystemRoot",
  "COMSPEC",
  "PATHEXT",
  "WINDIR",
];

const FIXED_VARIABLES: Readonly<Record<string, string>> = {
  LC_ALL: "C",
  LANG: "C",
  GIT_TERMINAL_PROMPT: "0",
  GIT_PAGER: "cat",
  PAGER: "cat",
  GIT_EDITOR: ":",
  GIT_ASKPASS: "",
  SSH_ASKPASS: "",
  // Read-only commands (status, diff) must not refresh and rewrite an index they read.
  GIT_OPTIONAL_LOCKS: "0",
  // glibc: keep freed heap instead of shrinking and growing it again around every object
  // (zlib's buffers); brk churn was half the CPU time of writing 1,000 objects in a VM.
  // Short-lived processes, untouched pages: no memory cost. Other C libraries ignore these.
  MALLOC_TRIM_THRESHOLD_: "134217728",
  MALLOC_TOP_PAD_: "16777216",
};

const DEFAULT_TIMEOUT_MS = 30_000;
const KILL_GRACE_MS = 1000;
const STOPPED_DRAIN_MS = 100;
const STDERR_KEEP = 64 * 1024;

/**
 * The environment of a git call: the caller's `PATH`, `HOME`, `USER`, `TMPDIR`,
 * `XDG_CONFIG_HOME` and `GIT_CONFIG_GLOBAL`/`GIT_CONFIG_SYSTEM`/`GIT_CONFIG_NOSYSTEM`/`GIT_EXEC_PATH`
 * only (no other `GIT_*` variable survives), then `LC_ALL=C`, `GIT_TERMINAL_PROMPT=0`, no pager
 * or editor, `GIT_OPTIONAL_LOCKS=0`, glibc heap trimming relaxed, then `extra`.
 *
 * @param callerEnv The caller's environment (`process.env`).
 * @param extra Variables of this call.
 * @returns A fresh object.
 *
 * @example
 * ```ts
 * import { gitEnvironment } from "./exec.ts";
 * const env = gitEnvironment({ PATH: "/usr/bin", GIT_DIR: "/elsewhere/.git" }, { GIT_INDEX_FILE: "/tmp/i" });
 * console.log(env.GIT_DIR, env.GIT_INDEX_FILE, env.LC_ALL); // undefined "/tmp/i" "C"
 * ```
 */
export function gitEnvironment(
  callerEnv: Readonly<Record<string, string | undefined>>,
  extra: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of KEPT_VARIABLES) {
    const value = callerEnv[name];
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...FIXED_VARIABLES, ...extra };
}

// The parts of node:child_process and node:process used here, typed structurally so this module
// needs no @types/node and type-checks the same on Deno and Node.
interface ReadableLike {
  on(event: "data", listener: (chunk: Uint8Array | string) => void): unknown;
  destroy(): void;
}
interface WritableLike {
  on(event: "error", listener: (error: Error) => void): unknown;
  end(chunk?: Uint8Array): unknown;
}
interface ChildLike {
  readonly pid?: number;
  readonly stdin: WritableLike | null;
  readonly stdout: ReadableLike | null;
  readonly stderr: ReadableLike | null;
  kill(signal?: string): boolean;
  once(event: "error", listener: (error: Error) => void): unknown;
  once(event: "exit", listener: (code: number | null, signal: string | null) => void): unknown;
  once(event: "close", listener: () => void): unknown;
}
interface ChildProcessModule {
  spawn(file: string, args: readonly string[], options: {
    cwd: string;
    env: Record<string, string>;
    stdio: ["pipe" | "ignore", "pipe", "pipe"];
    detached: boolean;
    windowsHide: boolean;
  }): ChildLike;
}
interface ProcessModule {
  env: Record<string, string | undefined>;
  platform: string;
  kill(pid: number, signal: string): boolean;
}
interface Runtime {
  spawn: ChildProcessModule["spawn"];
  process: ProcessModule;
}

let runtime: Promise<Runtime> | undefined;

function loadRuntime(): Promise<Runtime> {
  runtime ??= Promise.all([
    import("node:child_process") as Promise<unknown> as Promise<ChildProcessModule>,
    import("node:process") as Promise<unknown> as Promise<{ default: ProcessModule }>,
  ]).then(([childProcess, process]) => ({ spawn: childProcess.spawn, process: process.default }));
  return runtime;
}

/**
 * Runs `git <args>` and collects its output as bytes.
 *
 * The environment is built by {@linkcode gitEnvironment} from the caller's one, so an inherited
 * `GIT_DIR`, `GIT_INDEX_FILE` and the like never redirect the command, and `options.env` reaches
 * this call only. The command is stopped (SIGTERM, then SIGKILL) at its deadline or on abort.
 * `node:child_process` is imported on first use, so importing this module loads no runtime
 * module (Deno 2, Node 20+).
 *
 * @param args Arguments after `git`.
 * @param options Working directory, extra environment, stdin, deadline, signal, limits.
 * @returns Exit code, stdout bytes, stderr text, and whether stdout was cut at its limit.
 * @throws {GitError} When git cannot start, exits with a code not in `okExitCodes`, overruns its
 *   deadline or is aborted.
 *
 * @example
 * ```ts
 * import { runGit } from "./exec.ts";
 * const { stdout } = await runGit(["--version"], { cwd: ".", timeoutMs: 5000 });
 * console.log(new TextDecoder().decode(stdout).startsWith("git version")); // true
 * ```
 */
export async function runGit(
  args: readonly string[],
  options: RunGitOptions,
): Promise<RunGitResult> {
  const { spawn, process } = await loadRuntime();
  // Its own process group (POSIX), so that stopping it also stops what it started (a hook, a
  // filter, an alias).
  const group = process.platform !== "win32";
  const okExitCodes = options.okExitCodes ?? [0];
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxStdout = options.maxStdoutBytes ?? Infinity;
  const signal = options.signal;
  const name = args.find((arg) => !arg.startsWith("-") && !arg.includes("=")) ?? "";
  const describe = `git ${name}`.trim();
  if (signal?.aborted) {
    throw new GitError(`'${describe}' was not started: aborted`, {
      args,
      reason: "aborted",
      cause: signal.reason,
    });
  }

  let child: ChildLike;
  try {
    child = spawn("git", args, {
      cwd: options.cwd,
      env: gitEnvironment(process.env, options.env),
      stdio: [options.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      detached: group,
      windowsHide: true,
    });
  } catch (error) {
    throw new GitError(`Could not start '${describe}' in '${options.cwd}'`, {
      args,
      reason: "spawn",
      cause: error,
    });
  }

  const stdout: Uint8Array[] = [];
  let stdoutBytes = 0;
  let truncated = false;
  let stderr = "";
  const decoder = new TextDecoder();
  let stopReason: "timeout" | "aborted" | "truncated" | undefined;
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  let exited = false;
  let giveUp = () => {};
  const gaveUp = new Promise<void>((resolve) => (giveUp = resolve));
  const signalChild = (name: string) => {
    try {
      // The group outlives git while something it started still runs.
      if (group && child.pid !== undefined) process.kill(-child.pid, name);
      else if (!exited) child.kill(name);
    } catch {
      // Gone already.
    }
  };
  const stop = (reason: "timeout" | "aborted" | "truncated") => {
    if (stopReason !== undefined) return;
    stopReason = reason;
    giveUp();
    // SIGTERM first: git removes its lock files on it.
    signalChild("SIGTERM");
    killTimer = setTimeout(() => signalChild("SIGKILL"), KILL_GRACE_MS);
  };

  child.stdout?.on("data", (chunk) => {
    if (truncated) return;
    const bytes = typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk;
    if (stdoutBytes + bytes.byteLength > maxStdout) {
      const room = maxStdout - stdoutBytes;
      if (room > 0) stdout.push(bytes.slice(0, room));
      stdoutBytes += Math.max(0, room);
      truncated = true;
      stop("truncated");
      return;
    }
    // A view of a larger (pooled) buffer is copied; a chunk of its own is kept as it is.
    stdout.push(
      bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.byteLength
        ? bytes
        : bytes.slice(),
    );
    stdoutBytes += bytes.byteLength;
  });
  child.stderr?.on("data", (chunk) => {
    stderr += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
    if (stderr.length > STDERR_KEEP * 2) stderr = stderr.slice(-STDERR_KEEP);
  });
  if (child.stdin !== null) {
    // git may exit before reading everything (EPIPE); its exit code tells what happened.
    child.stdin.on("error", () => {});
    child.stdin.end(options.stdin);
  }

  const deadline = setTimeout(() => stop("timeout"), timeoutMs);
  const onAbort = () => stop("aborted");
  signal?.addEventListener("abort", onAbort, { once: true });

  let exit: { code: number | null; signal: string | null };
  try {
    const closed = new Promise<void>((resolve) => child.once("close", resolve));
    exit = await new Promise((resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (code, exitSignal) => resolve({ code, signal: exitSignal }));
    });
    exited = true;
    // Its output is complete once the pipes close ('exit' may come before the last data).
    // Something it started may hold them open: then the deadline or an abort ends the wait.
    if (stopReason === undefined) await Promise.race([closed, gaveUp]);
    else {
      let drainTimer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        closed,
        new Promise<void>((resolve) => (drainTimer = setTimeout(resolve, STOPPED_DRAIN_MS))),
      ]);
      clearTimeout(drainTimer);
    }
    child.stdout?.destroy();
    child.stderr?.destroy();
  } catch (error) {
    throw new GitError(`Could not start '${describe}' in '${options.cwd}'`, {
      args,
      reason: "spawn",
      cause: error,
    });
  } finally {
    clearTimeout(deadline);
    if (killTimer !== undefined) clearTimeout(killTimer);
    signal?.removeEventListener("abort", onAbort);
  }
  stderr = (stderr + decoder.decode()).slice(-STDERR_KEEP);
  const details = {
    args,
    stderr,
    ...(exit.code !== null ? { exitCode: exit.code } : {}),
    ...(exit.signal !== null ? { signal: exit.signal } : {}),
  };
  if (stopReason === "timeout") {
    throw new GitError(`'${describe}' did not finish within ${timeoutMs} ms`, {
      ...details,
      reason: "timeout",
    });
  }
  if (stopReason === "aborted") {
    throw new GitError(`'${describe}' was aborted`, {
      ...details,
      reason: "aborted",
      cause: signal?.reason,
    });
  }
  const result: RunGitResult = {
    exitCode: truncated ? -1 : exit.code ?? -1,
    stdout: concatBytes(stdout, stdoutBytes),
    stderr,
    truncated,
  };
  if (truncated) return result;
  if (exit.code === null || !okExitCodes.includes(exit.code)) {
    const how = exit.code !== null ? `exit code ${exit.code}` : `signal ${exit.signal}`;
    const firstLine = stderr.split("\n").find((line) => line.trim() !== "")?.trim();
    throw new GitError(`'${describe}' failed (${how})${firstLine ? `: ${firstLine}` : ""}`, {
      ...details,
      reason: "exit",
    });
  }
  return result;
}

/**
 * Formats directories for `GIT_ALTERNATE_OBJECT_DIRECTORIES`: joined with `:`, each holding a
 * `:`, `"` or `\\` C-quoted as git expects.
 *
 * @param dirs Object directories.
 * @returns The variable's value.
 *
 * @example
 * ```ts
 * import { alternateObjectDirectories } from "./exec.ts";
 * console.log(alternateObjectDirectories(["/a/objects", "/b:c/objects"])); // /a/objects:"/b:c/objects"
 * ```
 */
export function alternateObjectDirectories(dirs: readonly string[]): string {
  return dirs.map((dir) =>
    /[:"\\]/.test(dir) ? `"${dir.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"` : dir
  ).join(":");
}
