// What the CLI's commands share: reading flags (durations, numbers, lists, the run), JSON output,
// and how a run's status, duration and dropped bytes are shown.

import type { RunLiveness, RunRef } from "../core/read.ts";
import type { RunStateSnapshot, RunStatus } from "../core/types.ts";
import { parseDuration } from "./format.ts";
import type { CommandContext } from "./main.ts";
import type { Styles } from "./output.ts";
import { UsageError } from "./usage.ts";

/** The storage flags, for every command's help. */
export const STORAGE_HELP = `Storage:
  --storage DIR|s3://BUCKET[/PREFIX]   where the runs are (default: .; see 'runs --help')
  --runs-root P                        runs folder or key prefix (default: runs)
`;

/** Run statuses, for flag checks. */
export const STATUSES: readonly RunStatus[] = [
  "prepared",
  "running",
  "completed",
  "failed",
  "blocked",
];
/** Livenesses, for flag checks. */
export const LIVENESSES: readonly RunLiveness[] = ["live", "finished", "stale"];

/** A string flag's value. */
export function stringFlag(context: CommandContext, name: string): string | undefined {
  const value = context.values[name];
  return typeof value === "string" ? value : undefined;
}

/** A duration flag in ms (`30d`, `24h`, `0d`), or `fallback`. */
export function durationFlag(
  context: CommandContext,
  name: string,
  fallback?: number,
): number | undefined {
  const text = stringFlag(context, name);
  if (text === undefined) return fallback;
  const ms = parseDuration(text);
  if (ms === undefined) {
    throw new UsageError(`--${name} '${text}' is not a duration (like 30s, 10m, 24h, 30d)`);
  }
  return ms;
}

/** A non-negative integer flag, or `fallback`. */
export function intFlag(
  context: CommandContext,
  name: string,
  fallback?: number,
): number | undefined {
  const text = stringFlag(context, name);
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text)) throw new UsageError(`--${name} '${text}' is not a whole number`);
  return Number(text);
}

/** Values of a repeatable, comma-separable flag, checked against `allowed`. */
export function listFlag<T extends string>(
  context: CommandContext,
  name: string,
  allowed: readonly T[],
): T[] | undefined {
  const raw = context.values[name];
  if (raw === undefined) return undefined;
  const values = [raw].flat().flatMap((v) => String(v).split(",")).map((v) => v.trim())
    .filter((v) => v !== "");
  for (const value of values) {
    if (!allowed.includes(value as T)) {
      throw new UsageError(`--${name} '${value}' is not one of ${allowed.join(", ")}`);
    }
  }
  return values as T[];
}

/** `<task>/<run>` from the first positional. */
export function runRef(context: CommandContext, text = context.positionals[0]): RunRef {
  const parts = (text ?? "").split("/");
  if (parts.length !== 2 || parts[0] === "" || parts[1] === "") {
    throw new UsageError(`'${text ?? ""}' is not a run; give it as <task>/<run>`);
  }
  return { taskId: parts[0], runId: parts[1], runsRootDir: context.runsRootDir() };
}

/** Writes a JSON document (one line per document when following). */
export function json(context: CommandContext, value: unknown, pretty = true): Promise<void> {
  return context.output.out(`${JSON.stringify(value, null, pretty ? 2 : undefined)}\n`);
}

/** The default staleness threshold and its flag. */
export const STALE_AFTER_HELP =
  "  --stale-after D      a run without a heartbeat for D is stale (default: 15s)\n";

/** A status coloured by what it means. */
export function statusText(
  state: RunStateSnapshot | undefined,
  liveness: RunLiveness,
  style: Styles,
): string {
  const status = state?.status ?? "unknown";
  if (liveness === "stale") return style.red(`${status}/stale`);
  if (liveness === "live") return style.cyan(`${status}/live`);
  if (status === "completed") return style.green(status);
  if (status === "failed") return style.red(status);
  if (status === "blocked") return style.yellow(status);
  return status;
}

/** Wall time of a run so far: to its end, its last heartbeat (stale) or now (live). */
export function durationOf(
  state: RunStateSnapshot | undefined,
  liveness: RunLiveness,
  now: number,
) {
  const start = Date.parse(state?.startedAt ?? "");
  if (state === undefined || Number.isNaN(start)) return undefined;
  const end = state.finishedAt !== undefined
    ? Date.parse(state.finishedAt)
    : liveness === "live"
    ? now
    : Date.parse(state.updatedAt);
  return Number.isNaN(end) ? undefined : end - start;
}

/** Bytes dropped over the byte cap, both streams. */
export function dropped(state: RunStateSnapshot | undefined): number {
  return (state?.droppedBytes?.stdout ?? 0) + (state?.droppedBytes?.stderr ?? 0);
}
