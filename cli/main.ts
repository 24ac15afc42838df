// The `runs` command line: parses the arguments, opens the storage, runs one command, and turns
// every failure into one line on stderr and a documented exit code.

import process from "node:process";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { RunnerError, StorageError } from "../core/errors.ts";
import type { RunStorage } from "../storage/types.ts";
import { COMMANDS, type CommandSpec } from "./commands.ts";
import { type Output, processOutput, type Styles, styles } from "./output.ts";
import { openStorage } from "./storage.ts";
import { EXIT, UsageError } from "./usage.ts";

/** Options every command takes. */
const COMMON: NonNullable<ParseArgsConfig["options"]> = {
  storage: { type: "string" },
  "runs-root": { type: "string" },
  help: { type: "boolean", short: "h" },
};

/** What a command gets. */
export interface CommandContext {
  /** The storage named by `--storage`, opened on first use. */
  storage(): RunStorage;
  /** The runs prefix (`--runs-root`, default `runs`). */
  runsRootDir(): string;
  /** Parsed flags. */
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  /** Positional arguments after the command. */
  positionals: string[];
  /** Where to write. */
  output: Output;
  /** Colours (identity without a TTY). */
  style: Styles;
  /** The environment. */
  env: Record<string, string | undefined>;
}

const GLOBAL_HELP =
  `runs — look at the runs of @baa-conductor/runner: list, inspect, follow, restore, prune.

Usage: runs <command> [arguments] [flags]

Commands:
  ls                        list runs, newest first
  show <task>/<run>         a run's metadata, state, heartbeat, checkpoints and artifacts
  logs <task>/<run>         print a run's log; -f follows it until the run ends
  events <task>/<run>       the run's lifecycle events; -f follows them
  artifacts <task>/<run>    list a run's artifacts; 'get NAME [-o FILE]' fetches one
  diff <task>/<run>         the patch of a git checkpoint
  restore <task>/<run>      apply a git checkpoint to a work tree
  reap                      close stale runs (their writer died) as failed/abandoned
  prune                     delete finished runs older than a duration
  serve                     start the read-only web viewer

Storage (every command):
  --storage DIR|s3://BUCKET[/PREFIX]
                 a directory holding runs/ (the filesystem default's repoRoot; default: .),
                 or an S3-compatible bucket; credentials from AWS_ACCESS_KEY_ID,
                 AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, region from AWS_REGION, endpoint from
                 AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (R2, MinIO, Ceph)
  --runs-root P  the runs folder or key prefix (default: runs)

Durations: 500ms, 15s, 10m, 24h, 30d, 2w (0d too).
Flags may come anywhere after the command. --json gives one JSON document (JSON lines while
following). Colours only on a terminal, never with NO_COLOR set.

Exit codes:
  0   success; for logs -f / events -f: the run completed
  1   logs -f / events -f: the run failed; restore: applied with conflicts
  2   logs -f / events -f: the run is blocked
  3   logs -f / events -f: the run went stale (its writer stopped heartbeating)
  4   error: run not found, storage unreachable or refusing, git refused, ...
  64  usage: unknown command or flag, bad value

Run 'runs <command> --help' for a command's flags. RUNS_DEBUG=1 adds the stack of an unexpected
error (credentials are masked).
`;

/** Index of the command word: the first argument that is not a flag or a flag's value. */
function commandIndex(args: string[]): number {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--storage" || arg === "--runs-root") i++;
    else if (!arg.startsWith("-")) return i;
  }
  return -1;
}

function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length >= 4) out = out.split(secret).join("***");
  return out;
}

/** One line saying what went wrong, never a stack or a credential. */
function describe(error: unknown): string {
  if (error instanceof StorageError) {
    const why = error.code === "access_denied"
      ? "access denied (check the credentials)"
      : error.code === "unavailable"
      ? "storage unavailable"
      : undefined;
    return why === undefined ? error.message : `${why}: ${error.message}`;
  }
  if (error instanceof Error) return error.message.split("\n")[0];
  return String(error);
}

/**
 * Runs the `runs` command line.
 *
 * @param args The arguments after the program name.
 * @param output Where to write (default: the process's stdout and stderr).
 * @param env The environment (default: the process's).
 * @returns The exit code.
 */
export async function main(
  args: string[],
  output: Output = processOutput(),
  env: Record<string, string | undefined> = process.env,
): Promise<number> {
  const secrets: string[] = [];
  try {
    const at = commandIndex(args);
    if (at === -1) {
      if (args.includes("--version")) {
        await output.out("runs (@baa-conductor/runner) 0.1.0\n");
        return EXIT.ok;
      }
      if (args.length > 0 && !args.some((a) => a === "--help" || a === "-h")) {
        throw new UsageError("no command given (try 'runs --help')");
      }
      await output.out(GLOBAL_HELP);
      return EXIT.ok;
    }
    const name = args[at];
    if (name === "help") {
      const topic = args[at + 1];
      const spec = topic === undefined ? undefined : COMMANDS[topic];
      await output.out(spec === undefined ? GLOBAL_HELP : spec.help);
      return EXIT.ok;
    }
    const spec: CommandSpec | undefined = Object.hasOwn(COMMANDS, name)
      ? COMMANDS[name]
      : undefined;
    if (spec === undefined) throw new UsageError(`unknown command '${name}' (try 'runs --help')`);
    let parsed;
    try {
      parsed = parseArgs({
        args: [...args.slice(0, at), ...args.slice(at + 1)],
        options: { ...COMMON, ...spec.options },
        allowPositionals: true,
        strict: true,
      });
    } catch (error) {
      const e = error as Error & { code?: string };
      const flag = /'(-[^']*)'/.exec(e.message)?.[1];
      const what = e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && flag !== undefined
        ? `unknown flag '${flag}' for '${name}'`
        : e.code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL"
        ? `too many arguments for '${name}'`
        : e.message.split("\n")[0];
      throw new UsageError(`${what} (try 'runs ${name} --help')`);
    }
    if (parsed.values.help === true) {
      await output.out(spec.help);
      return EXIT.ok;
    }
    const [min, max] = spec.positionals;
    if (parsed.positionals.length < min || parsed.positionals.length > max) {
      throw new UsageError(`usage: ${spec.usage}`);
    }
    let opened: ReturnType<typeof openStorage> | undefined;
    const open = () => {
      opened ??= openStorage(
        parsed.values.storage as string | undefined,
        parsed.values["runs-root"] as string | undefined,
        env,
      );
      secrets.push(...opened.secrets);
      return opened;
    };
    return await spec.run({
      storage: () => open().storage,
      runsRootDir: () => open().runsRootDir,
      values: parsed.values,
      positionals: parsed.positionals,
      output,
      style: styles(output.colour),
      env,
    });
  } catch (error) {
    const usage = error instanceof UsageError;
    await output.note(scrub(`runs: ${describe(error)}`, secrets));
    if (!usage && !(error instanceof RunnerError) && env.RUNS_DEBUG) {
      await output.note(scrub(String((error as Error)?.stack ?? error), secrets));
    }
    return usage ? EXIT.usage : EXIT.error;
  }
}
