// An executor that runs the step's command as a child process in its own process group (POSIX).

import { z } from "zod";
import { handOver } from "../core/bytes.ts";
import { RunnerError, ValidationError } from "../core/errors.ts";
import type {
  RunAbortReason,
  WorkerExecutionContext,
  WorkerExecutionOutcome,
  WorkerExecutor,
} from "../core/executor.ts";
import { MIN_SECRET_LENGTH } from "../core/redact.ts";
import { COMMAND_EXPECTED, parseOrThrow } from "../core/schemas.ts";
import type { PreparedStepRun } from "../core/types.ts";

/** An environment value that the runner must mask wherever it would be stored. */
export interface SecretEnvValue {
  /** The value given to the process. */
  value: string;
  /** Marks the value as secret. */
  secret: true;
}

/** Options of {@linkcode createProcessExecutor}. */
export interface ProcessExecutorOptions {
  /**
   * What to run, overriding `request.command`: a string runs through `/bin/sh -c`, an argv
   * array runs directly (`argv[0]` is looked up on `PATH`).
   */
  command?: string | readonly string[];
  /** Working directory; defaults to `request.runtime.worktreePath`. */
  cwd?: string;
  /**
   * Variables added to the inherited environment. A `{ value, secret: true }` value is passed as
   * `value` and listed in the executor's `secrets`, so the runner masks it in everything stored.
   * Secret values must be at least {@linkcode MIN_SECRET_LENGTH} characters; empty ones are not
   * listed.
   */
  env?: Readonly<Record<string, string | SecretEnvValue>>;
  /**
   * Exit codes with a meaning besides failure: `blocked` codes give `outcome: "blocked"`,
   * `needsHuman` codes give `outcome: "blocked"` with `needsHuman: true`.
   */
  exitCodes?: {
    /** Exit codes meaning the worker is blocked. */
    blocked?: readonly number[];
    /** Exit codes meaning the worker asks for a human. */
    needsHuman?: readonly number[];
  };
  /**
   * Time between SIGTERM and SIGKILL when the process group is stopped (abort, timeout, or
   * processes left behind after the command exited). Defaults to 2000 ms.
   */
  killGraceMs?: number;
}

const DEFAULT_KILL_GRACE_MS = 2000;
const NO_COMMAND = "must be set, as 'request.command' or the process executor's 'command' option";
/** Longest SIGTERM-to-SIGKILL wait of the watchdog once the runner is gone. */
const WATCHDOG_MAX_GRACE_MS = 2000;
/**
 * `sh -c WATCHDOG_SCRIPT baa-watchdog <pgid> <grace polls>`: a watcher in a session of its own,
 * started beside the command. Its stdin is a pipe whose only writer is this process: a line
 * means the runner saw the command end (leave quietly); end-of-file means the runner died (even
 * by SIGKILL: the kernel closes the pipe), so it stops the command's group: SIGTERM, then SIGKILL
 * as soon as the group's leader is gone (or after the grace, 50 ms polls). It ignores the signals
 * a terminal or a supervisor sends the runner's group. Being outside the command's group, it
 * never counts as a process the command left behind.
 */
const WATCHDOG_SCRIPT = [
  'pgid="$1"; polls="$2"',
  'trap "" TERM INT HUP',
  "exec >/dev/null 2>&1",
  "if read -r _; then exit 0; fi",
  'kill -TERM "-$pgid" 2>/dev/null || exit 0',
  "n=0",
  'while [ "$n" -lt "$polls" ]; do',
  '  kill -0 "-$pgid" 2>/dev/null || exit 0',
  '  st=""; read -r st < "/proc/$pgid/stat" 2>/dev/null || break',
  '  case "$st" in *") Z "*|*") X "*) break;; esac',
  "  sleep 0.05 2>/dev/null || break; n=$((n+1))",
  "done",
  'kill -KILL "-$pgid" 2>/dev/null',
].join("\n");
// After the process group is gone, a pipe still open is held by a process outside it (one that
// called setsid); stop reading once it has been silent this long.
const DRAIN_IDLE_MS = 1000;
const ABORTED_DRAIN_IDLE_MS = 100;
const POLL_MS = 50;

const SecretEnvValueSchema = z.strictObject({
  value: z.string().refine((value) => value === "" || [...value].length >= MIN_SECRET_LENGTH, {
    // A shorter secret would mask ordinary output; never echo the value.
    message: `must be empty or at least ${MIN_SECRET_LENGTH} characters to be masked`,
  }),
  secret: z.literal(true),
});
const ProcessExecutorOptionsSchema = z.strictObject({
  command: z.union([z.string().min(1), z.array(z.string()).min(1)], { error: COMMAND_EXPECTED })
    .optional(),
  cwd: z.string().min(1).optional(),
  env: z.record(
    z.string().min(1).refine((name) => !name.includes("=") && !name.includes("\0"), {
      message: "must not contain '=' or NUL",
    }),
    z.union([z.string(), SecretEnvValueSchema], {
      error: "must be a string, or { value: string, secret: true } for a secret",
    }),
  ).optional(),
  exitCodes: z.strictObject({
    blocked: z.array(z.number().int().min(1).max(255)).optional(),
    needsHuman: z.array(z.number().int().min(1).max(255)).optional(),
  }).optional(),
  killGraceMs: z.number().int().min(0).max(600_000).optional(),
});

/**
 * Creates an executor that runs a command as a child process.
 *
 * The command (`options.command`, else `request.command`) runs in
 * `request.runtime.worktreePath` (or `options.cwd`) with stdin closed and the inherited
 * environment plus `options.env`. Its stdout and stderr bytes go to the run verbatim while it
 * runs, and reading pauses while the run's buffers are full. Exit code 0 is `completed`; codes
 * listed in `exitCodes` are `blocked` (or need a human); anything else, or a signal, is `failed`.
 *
 * The command gets its own process group. When the run's signal aborts (timeout, cancel), the
 * whole group gets SIGTERM, then SIGKILL after `killGraceMs`. When the command exits and left
 * processes behind in its group, they are stopped the same way, so nothing outlives the step
 * (a process that must outlive it has to leave the group, e.g. with `setsid`). The executor
 * resolves once the command exited and its output was read. POSIX only. On Deno the command is
 * started with `Deno.Command`, elsewhere with `node:child_process`; `node:` modules are imported
 * on first use, so importing this module loads no runtime module (Deno 2, Node 20+).
 *
 * @param options Command, working directory, environment, exit code mapping and kill grace.
 * @returns A plain executor object; `secrets` lists the secret environment values.
 * @throws {ValidationError} When an option is invalid (the error names it).
 *
 * @example
 * ```ts
 * import { createProcessExecutor } from "./process.ts";
 *
 * const executor = createProcessExecutor({
 *   command: ["codex", "exec", "--full-auto", "Fix the failing test"],
 *   env: { OPENAI_API_KEY: { value: "sk-example-key", secret: true } },
 *   exitCodes: { blocked: [3], needsHuman: [4] },
 * });
 * console.log(executor.secrets); // ["sk-example-key"]
 * // const result = await runStep(request, executor);
 * ```
 */
export function createProcessExecutor(options: ProcessExecutorOptions = {}): WorkerExecutor {
  const parsed = parseOrThrow(
    ProcessExecutorOptionsSchema,
    options,
    "Invalid process executor options",
  );
  const env: Record<string, string> = {};
  const secrets: string[] = [];
  for (const [name, entry] of Object.entries(parsed.env ?? {})) {
    if (typeof entry === "string") {
      env[name] = entry;
      continue;
    }
    env[name] = entry.value;
    if (entry.value !== "") secrets.push(entry.value);
  }
  const settings: Settings = {
    command: parsed.command,
    cwd: parsed.cwd,
    env: parsed.env === undefined ? undefined : env,
    blocked: new Set(parsed.exitCodes?.blocked ?? []),
    needsHuman: new Set(parsed.exitCodes?.needsHuman ?? []),
    killGraceMs: parsed.killGraceMs ?? DEFAULT_KILL_GRACE_MS,
  };
  const executor: WorkerExecutor = {
    secrets: Object.freeze(secrets),
    validate(request) {
      if (settings.command === undefined && request.command === undefined) {
        throw new ValidationError(
          [{ path: "command", message: NO_COMMAND }],
          "Invalid step request for the process executor",
        );
      }
    },
    execute: (run, context) => runProcess(settings, run, context),
  };
  return executor;
}

interface Settings {
  command: string | readonly string[] | undefined;
  cwd: string | undefined;
  env: Record<string, string> | undefined;
  blocked: ReadonlySet<number>;
  needsHuman: ReadonlySet<number>;
  killGraceMs: number;
}

// The few parts of node:child_process / node:process / Deno.Command used here, typed
// structurally so this module needs no @types/node and type-checks the same on Deno and Node.
interface ChildStream {
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array | string>;
  destroy(): void;
}
interface Lifeline {
  readonly destroyed: boolean;
  end(data: string): void;
  on(event: "error", listener: (error: Error) => void): unknown;
}
interface NodeChild {
  readonly pid?: number;
  readonly stdin: unknown;
  readonly stdout: ChildStream | null;
  readonly stderr: ChildStream | null;
  once(event: "spawn", listener: () => void): unknown;
  once(event: "error", listener: (error: Error) => void): unknown;
  once(event: "exit", listener: (code: number | null, signal: string | null) => void): unknown;
  on(event: "error", listener: (error: Error) => void): unknown;
  unref?(): void;
}
interface ChildProcessModule {
  spawn(file: string, args: readonly string[], options: {
    cwd: string;
    env?: Record<string, string | undefined>;
    stdio: ["ignore" | "pipe", "pipe" | "ignore", "pipe" | "ignore"];
    detached: boolean;
  }): NodeChild;
}
interface ProcessModule {
  env: Record<string, string | undefined>;
  kill(pid: number, signal?: string | number): boolean;
}
interface DenoChild {
  readonly pid: number;
  readonly stdin: WritableStream<Uint8Array> | null;
  readonly stdout: ReadableStream<Uint8Array> | null;
  readonly stderr: ReadableStream<Uint8Array> | null;
  readonly status: Promise<{ code: number; signal: string | null }>;
}
interface DenoCommandApi {
  Command: new (file: string, options: {
    args: string[];
    cwd?: string;
    env?: Record<string, string>;
    stdin: "piped" | "null";
    stdout: "piped" | "null";
    stderr: "piped" | "null";
    detached: boolean;
  }) => { spawn(): DenoChild };
}

/** A started command, whichever runtime API started it. */
interface Spawned {
  pid: number;
  exited: Promise<{ code: number | null; signal: string | null }>;
  stdout: ChildStream | null;
  stderr: ChildStream | null;
}

interface Pump {
  done: boolean;
  waiting: boolean;
  lastActivity: number;
  stream: ChildStream | null;
  finished: Promise<void>;
}

async function runProcess(
  settings: Settings,
  run: PreparedStepRun,
  context: WorkerExecutionContext | undefined,
): Promise<WorkerExecutionOutcome> {
  const command = settings.command ?? run.request.command;
  if (command === undefined || command.length === 0) {
    throw new ValidationError([{ path: "command", message: NO_COMMAND }], "The process executor");
  }
  const commandArgv = typeof command === "string" ? ["/bin/sh", "-c", command] : [...command];
  const cwd = settings.cwd ?? run.request.runtime.worktreePath;
  const signal = context?.signal;
  if (signal?.aborted) return notStarted(signal);

  const processModule = await (import("node:process") as Promise<unknown> as Promise<
    { default: ProcessModule }
  >);
  const proc = processModule.default;
  if (signal?.aborted) return notStarted(signal);

  const started = await spawnCommand(commandArgv, cwd, settings.env, proc);
  if ("error" in started) return await spawnFailed(started.error, commandArgv[0], cwd);
  const spawned = started;
  const pid = spawned.pid;
  context?.reportProcess?.({ pid, pgid: pid });
  const exited = spawned.exited;
  // The watchdog: when this process dies, even by SIGKILL, the command's group is stopped. Once
  // the command has exited the watcher is told to leave: from then on this process stops what is
  // left of the group itself.
  // Not awaited: Node drops a pipe's bytes that nobody reads before the child exits, so the
  // pumps below must attach at once.
  const watcher = startWatcher(pid, watchdogGracePolls(settings), proc);
  void exited.then(async () => (await watcher).release());

  const signalGroup = (name: string | 0): boolean => {
    try {
      proc.kill(-pid, name);
      return true;
    } catch (error) {
      // EPERM: the group still exists but a member is not ours to signal.
      return (error as { code?: string }).code === "EPERM";
    }
  };
  // kill(-pgid, 0) also finds zombies, which an init that reaps slowly (or a runtime that is
  // PID 1 in a container) leaves around; on Linux /proc tells them apart.
  const groupAlive = async (): Promise<boolean> => {
    if (!signalGroup(0)) return false;
    const live = await liveGroupMembers(pid);
    return live === undefined || live > 0;
  };
  let stopping: Promise<void> | undefined;
  const stopGroup = (): Promise<void> => {
    stopping ??= (async () => {
      if (!signalGroup("SIGTERM")) return;
      const deadline = Date.now() + settings.killGraceMs;
      while (Date.now() < deadline) {
        await delay(Math.min(POLL_MS, deadline - Date.now()));
        if (!(await groupAlive())) return;
      }
      signalGroup("SIGKILL");
    })();
    return stopping;
  };

  let abortWake: () => void = () => {};
  const aborted = new Promise<void>((resolve) => (abortWake = resolve));
  const onAbort = () => {
    abortWake();
    void stopGroup();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) onAbort();

  let sinkError: { error: unknown } | undefined;
  const pumps = [
    pump(spawned.stdout, (bytes) => context?.stdout(bytes), aborted),
    pump(spawned.stderr, (bytes) => context?.stderr(bytes), aborted),
  ];
  for (const p of pumps) {
    p.finished = p.finished.catch((error) => {
      // Our own destroy() of a held-open pipe is not an error; a failing sink is.
      if (p.stream !== null && sinkError === undefined && !p.done) sinkError = { error };
      void stopGroup();
    }).finally(() => (p.done = true));
  }

  let drainTimer: ReturnType<typeof setInterval> | undefined;
  try {
    const exit = await exited;
    let leftovers = false;
    if (stopping === undefined && (await groupAlive())) {
      leftovers = true;
      await stopGroup();
    } else if (stopping !== undefined) await stopping;

    for (const p of pumps) p.lastActivity = Date.now();
    drainTimer = setInterval(() => {
      const idleLimit = signal?.aborted ? ABORTED_DRAIN_IDLE_MS : DRAIN_IDLE_MS;
      for (const p of pumps) {
        if (!p.done && !p.waiting && Date.now() - p.lastActivity > idleLimit) {
          p.stream?.destroy();
          p.stream = null;
        }
      }
    }, POLL_MS * 5);
    await Promise.all(pumps.map((p) => p.finished));
    if (sinkError !== undefined) throw sinkError.error;
    return await describeExit(settings, exit, signal, leftovers);
  } finally {
    if (drainTimer !== undefined) clearInterval(drainTimer);
    signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * Starts `argv` in its own process group (a new session) with stdin closed and pipes on stdout
 * and stderr: Deno.Command on Deno (cheaper there), node:child_process elsewhere.
 */
async function spawnCommand(
  argv: readonly string[],
  cwd: string,
  env: Record<string, string> | undefined,
  proc: ProcessModule,
): Promise<Spawned | { error: unknown }> {
  const deno = (globalThis as { Deno?: Partial<DenoCommandApi> }).Deno;
  if (typeof deno?.Command === "function") {
    let child: DenoChild;
    try {
      child = new deno.Command(argv[0], {
        args: argv.slice(1),
        cwd,
        ...(env === undefined ? {} : { env }),
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        detached: true,
      }).spawn();
    } catch (error) {
      return { error };
    }
    return {
      pid: child.pid,
      exited: child.status.then((status) => ({
        code: status.signal === null ? status.code : null,
        signal: status.signal,
      })),
      stdout: webStream(child.stdout!),
      stderr: webStream(child.stderr!),
    };
  }
  const { spawn } = await import("node:child_process") as unknown as ChildProcessModule;
  let child: NodeChild;
  try {
    child = spawn(argv[0], argv.slice(1), {
      cwd,
      env: env === undefined ? undefined : { ...proc.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
  } catch (error) {
    return { error };
  }
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.once("exit", (code, exitSignal) => resolve({ code, signal: exitSignal }));
  });
  // Errors after spawn (e.g. a failed kill) must not crash the host as unhandled 'error's.
  child.on("error", () => {});
  try {
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", reject);
    });
  } catch (error) {
    return { error };
  }
  return { pid: child.pid as number, exited, stdout: child.stdout, stderr: child.stderr };
}

/** The watchdog of one command; see WATCHDOG_SCRIPT. */
interface Watcher {
  /** Tells the watcher the command ended (it leaves quietly). */
  release(): void;
}

/**
 * Starts the watchdog of group `pgid` in a session of its own, its stdin a pipe from this
 * process. A watcher that cannot be started leaves the command unwatched (it still runs and is
 * stopped on timeout or cancel; only a runner killed outright would leave it behind).
 */
async function startWatcher(pgid: number, polls: string, proc: ProcessModule): Promise<Watcher> {
  const argv = ["/bin/sh", "-c", WATCHDOG_SCRIPT, "baa-watchdog", String(pgid), polls];
  const deno = (globalThis as { Deno?: Partial<DenoCommandApi> }).Deno;
  if (typeof deno?.Command === "function") {
    let child: DenoChild;
    try {
      child = new deno.Command(argv[0], {
        args: argv.slice(1),
        stdin: "piped",
        stdout: "null",
        stderr: "null",
        detached: true,
      }).spawn();
    } catch {
      return { release() {} };
    }
    const lifeline = child.stdin!.getWriter();
    // Reaped whenever it leaves; nothing waits for it.
    void child.status.catch(() => {});
    let released = false;
    return {
      release() {
        if (released) return;
        released = true;
        lifeline.write(new TextEncoder().encode("done\n"))
          .then(() => lifeline.close())
          .catch(() => {});
      },
    };
  }
  const { spawn } = await import("node:child_process") as unknown as ChildProcessModule;
  let child: NodeChild;
  try {
    child = spawn(argv[0], argv.slice(1), {
      cwd: "/",
      env: { PATH: proc.env.PATH ?? "/usr/bin:/bin" },
      stdio: ["pipe", "ignore", "ignore"],
      detached: true,
    });
  } catch {
    return { release() {} };
  }
  child.on("error", () => {});
  const lifeline = child.stdin as Lifeline | null;
  lifeline?.on("error", () => {});
  // The watcher must not keep this process alive (an orchestrator exits when its work is done).
  child.unref?.();
  (lifeline as { unref?(): void } | null)?.unref?.();
  return {
    release() {
      if (lifeline !== null && !lifeline.destroyed) lifeline.end("done\n");
    },
  };
}

/** A web stream read as a ChildStream; destroy() cancels the read in progress. */
function webStream(stream: ReadableStream<Uint8Array>): ChildStream {
  const reader = stream.getReader();
  return {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        yield value;
      }
    },
    destroy() {
      reader.cancel().catch(() => {});
    },
  };
}

function watchdogGracePolls(settings: Settings): string {
  return String(Math.ceil(Math.min(settings.killGraceMs, WATCHDOG_MAX_GRACE_MS) / 50));
}

function pump(
  stream: ChildStream | null,
  sink: (bytes: Uint8Array) => void | Promise<void>,
  aborted: Promise<void>,
): Pump {
  const state: Pump = {
    done: stream === null,
    waiting: false,
    lastActivity: Date.now(),
    stream,
    finished: Promise.resolve(),
  };
  if (stream === null) return state;
  const encoder = new TextEncoder();
  state.finished = (async () => {
    for await (const chunk of stream) {
      state.lastActivity = Date.now();
      // Each read is a fresh buffer nobody else writes to: handed over, the run keeps it as is.
      const bytes = handOver(
        typeof chunk === "string"
          ? encoder.encode(chunk)
          : new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength),
      );
      const result = sink(bytes);
      if (result !== undefined && typeof (result as Promise<void>).then === "function") {
        // Backpressure: stop reading the pipe until the run has room (or the run was aborted,
        // when the runner ignores further output anyway).
        state.waiting = true;
        try {
          await Promise.race([result, aborted]);
        } finally {
          state.waiting = false;
          state.lastActivity = Date.now();
        }
      }
    }
  })();
  return state;
}

async function describeExit(
  settings: Settings,
  exit: { code: number | null; signal: string | null },
  signal: AbortSignal | undefined,
  leftovers: boolean,
): Promise<WorkerExecutionOutcome> {
  const note = leftovers ? " Processes it left running in its process group were stopped." : "";
  if (signal?.aborted) {
    const how = abortWord(signal);
    const outcome: WorkerExecutionOutcome = {
      ok: false,
      outcome: "failed",
      summary: exit.signal !== null
        ? `Command was ${how} and killed by ${exit.signal}.`
        : `Command was ${how}; it exited with code ${exit.code}.`,
    };
    return withExit(outcome, exit, await signalNumber(exit.signal));
  }
  if (exit.signal !== null) {
    return withExit(
      { ok: false, outcome: "failed", summary: `Command was killed by ${exit.signal}.${note}` },
      exit,
      await signalNumber(exit.signal),
    );
  }
  const code = exit.code ?? 1;
  if (code === 0) {
    return {
      ok: true,
      outcome: "completed",
      summary: `Command exited with code 0.${note}`,
      exitCode: 0,
    };
  }
  const blocked = settings.blocked.has(code);
  const needsHuman = settings.needsHuman.has(code);
  if (blocked || needsHuman) {
    const meaning = needsHuman ? "it needs a human" : "it is blocked";
    return {
      ok: false,
      outcome: "blocked",
      summary: `Command exited with code ${code}: ${meaning}.${note}`,
      exitCode: code,
      blocked: true,
      needsHuman,
    };
  }
  return {
    ok: false,
    outcome: "failed",
    summary: `Command exited with code ${code}.${note}`,
    exitCode: code,
  };
}

function withExit(
  outcome: WorkerExecutionOutcome,
  exit: { code: number | null; signal: string | null },
  signalNo: number | undefined,
): WorkerExecutionOutcome {
  if (exit.signal !== null) {
    outcome.signal = exit.signal;
    // The shell convention: 128 + the signal number.
    if (signalNo !== undefined) outcome.exitCode = 128 + signalNo;
  } else if (exit.code !== null) outcome.exitCode = exit.code;
  return outcome;
}

async function signalNumber(name: string | null): Promise<number | undefined> {
  if (name === null) return undefined;
  try {
    const os = await import("node:os") as unknown as {
      constants: { signals: Record<string, number | undefined> };
    };
    return os.constants.signals[name];
  } catch {
    return undefined;
  }
}

function abortWord(signal: AbortSignal): string {
  const reason = (signal.reason as Partial<RunAbortReason> | undefined)?.reason;
  if (reason === "timeout") return "timed out";
  if (reason === "storage") return "stopped because the run's storage failed";
  return "cancelled";
}

function notStarted(signal: AbortSignal): WorkerExecutionOutcome {
  return {
    ok: false,
    outcome: "failed",
    summary: `Command was not started: the run was already ${abortWord(signal)}.`,
  };
}

/**
 * What a failed spawn means. A missing or non-executable program is a failed run with the exit
 * code a shell gives (127, 126), so `["prog"]` and `"prog"` record the same; a missing working
 * directory or a runtime that refuses to spawn (Deno without --allow-run) is an error, with the
 * original as its cause and its explanation in the message (which the run's record keeps).
 */
async function spawnFailed(
  error: unknown,
  file: string,
  cwd: string,
): Promise<WorkerExecutionOutcome> {
  const code = (error as { code?: string } | null)?.code;
  if (isDenied(error)) {
    // Deno's message names the flag it needs ("run again with the --allow-run flag").
    throw new RunnerError(
      `Could not start command '${file}': ${(error as Error).message} ` +
        "(the process executor needs --allow-run and --allow-env under Deno)",
      { cause: error },
    );
  }
  if (code === "ENOENT") {
    // Node reports a missing cwd as the command being missing; tell them apart.
    let cwdMissing: boolean | undefined;
    try {
      const fs = await import("node:fs/promises") as unknown as {
        stat(path: string): Promise<{ isDirectory(): boolean }>;
      };
      cwdMissing = !(await fs.stat(cwd)).isDirectory();
    } catch (statError) {
      const statCode = (statError as { code?: string } | null)?.code;
      // A refused stat (no read permission) says nothing about the directory.
      cwdMissing = statCode === "ENOENT" || statCode === "ENOTDIR" ? true : undefined;
    }
    if (cwdMissing === true) {
      throw new RunnerError(`Working directory '${cwd}' does not exist`, { cause: error });
    }
    const unsure = cwdMissing === undefined ? ` (or working directory '${cwd}' is missing)` : "";
    return notRunnable(127, `Command '${file}' was not found${unsure}.`);
  }
  if (code === "EACCES") {
    return notRunnable(126, `Command '${file}' could not be executed (permission denied).`);
  }
  const detail = error instanceof Error ? `: ${error.message}` : "";
  throw new RunnerError(`Could not start command '${file}'${detail}`, { cause: error });
}

function notRunnable(exitCode: number, summary: string): WorkerExecutionOutcome {
  return { ok: false, outcome: "failed", summary, exitCode };
}

/** Deno's refusal of an API used without its permission (`NotCapable`; `PermissionDenied` before 2). */
function isDenied(error: unknown): boolean {
  const name = (error as { name?: string } | null)?.name;
  return name === "NotCapable" || name === "PermissionDenied";
}

/**
 * Number of processes of group `pgid` that are not zombies, from Linux's /proc; `undefined` when that
 * cannot be told (no /proc, no permission, or the group's members are not visible).
 */
async function liveGroupMembers(pgid: number): Promise<number | undefined> {
  // Synchronous reads: ~100 tiny files cost a few ms this way, and ten times more through the
  // thread pool on a busy machine; this runs once per command, not per chunk.
  let fs: {
    readdirSync(path: string): string[];
    readFileSync(path: string, encoding: "latin1"): string;
  };
  let names: string[];
  try {
    fs = await import("node:fs") as unknown as typeof fs;
    names = fs.readdirSync("/proc");
  } catch {
    return undefined;
  }
  let live = 0;
  let found = false;
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, "latin1");
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ", 3);
    if (Number(fields[2]) !== pgid) continue;
    found = true;
    if (fields[0] !== "Z" && fields[0] !== "X") live++;
  }
  return found ? live : undefined;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}
