// Reading and following a run's logs and events: `runs logs` and `runs events`.

import { NotFoundError, RunStaleError } from "../core/errors.ts";
import { followRunLog, watchRun } from "../core/follow.ts";
import {
  keysOf,
  parseEventLine,
  readRun,
  readRunLogBytes,
  readRunStatus,
  type RunRef,
} from "../core/read.ts";
import type { RunStateSnapshot, WorkerLogChannel } from "../core/types.ts";
import type { RunStorage } from "../storage/types.ts";
import { followCombined, printCombined } from "./combined.ts";
import { durationFlag, intFlag, json, runRef, stringFlag } from "./flags.ts";
import { formatTime } from "./format.ts";
import { LineSplitter } from "./lines.ts";
import type { CommandContext } from "./main.ts";
import { EXIT, UsageError } from "./usage.ts";

const CHUNK = 4 * 1024 * 1024;
const CHANNELS: readonly WorkerLogChannel[] = ["stdout", "stderr", "worker"];

/** The exit code that tells a followed run's outcome. */
export function outcomeCode(state: RunStateSnapshot | undefined): number {
  switch (state?.status) {
    case "failed":
      return EXIT.failed;
    case "blocked":
      return EXIT.blocked;
    default:
      return EXIT.ok;
  }
}

/** Writes one channel's lines: an event's rendered line, or JSON lines. */
function lineWriter(context: CommandContext, channel: WorkerLogChannel) {
  const asJson = context.values.json === true;
  const render = (line: string): string | undefined => {
    if (channel === "worker") {
      const entry = parseEventLine(line); // undefined: blank, or torn by a killed writer
      if (entry === undefined) return undefined;
      if (asJson) return JSON.stringify(entry);
      return entry.renderedLine ?? `${entry.createdAt} ${entry.type}: ${entry.message}`;
    }
    return asJson ? JSON.stringify({ channel, line }) : line;
  };
  return async (lines: string[]) => {
    const out = lines.map(render).filter((l): l is string => l !== undefined);
    if (out.length > 0) await context.output.out(out.map((l) => `${l}\n`).join(""));
  };
}

/** Reads a log from `offset` to its current end, chunk by chunk. */
async function* readFrom(
  storage: RunStorage,
  ref: RunRef,
  channel: WorkerLogChannel,
  offset: number,
): AsyncGenerator<Uint8Array> {
  for (;;) {
    const bytes = await readRunLogBytes(storage, ref, channel, { offset, length: CHUNK });
    if (bytes.byteLength > 0) yield bytes;
    offset += bytes.byteLength;
    if (bytes.byteLength < CHUNK) return;
  }
}

/**
 * Where the last `lines` lines of a log start: reads back from the state's byte count (what is
 * surely stored), widening the window until it holds enough lines or reaches the start.
 */
async function tailStart(
  storage: RunStorage,
  ref: RunRef,
  channel: WorkerLogChannel,
  lines: number,
  known: number | undefined,
): Promise<number> {
  if (known === undefined) return 0;
  if (lines === 0) return known;
  let window = 64 * 1024;
  for (;;) {
    const start = Math.max(0, known - window);
    const bytes = await readRunLogBytes(storage, ref, channel, {
      offset: start,
      length: known - start,
    });
    // Count newlines back from the end (a final newline ends the last line, it starts none).
    let seen = 0;
    let end = bytes.byteLength;
    if (end > 0 && bytes[end - 1] === 0x0a) end--;
    for (let i = end - 1; i >= 0; i--) {
      if (bytes[i] === 0x0a && ++seen === lines) return start + i + 1;
    }
    if (start === 0) return 0;
    window *= 4;
  }
}

/** Prints one log from `from` to its current end; returns where it ended. */
async function printStored(
  context: CommandContext,
  ref: RunRef,
  channel: WorkerLogChannel,
  from: number,
): Promise<number> {
  const storage = context.storage();
  const raw = channel !== "worker" && context.values.json !== true;
  const splitter = new LineSplitter();
  const write = lineWriter(context, channel);
  let offset = from;
  for await (const chunk of readFrom(storage, ref, channel, from)) {
    offset += chunk.byteLength;
    if (raw) await context.output.out(chunk);
    else await write(splitter.push(chunk));
  }
  // A line without its newline yet is held back while following: printed now, the follower
  // would print its rest as a line of its own.
  if (!raw && !context.values.follow) await write(splitter.end());
  else if (!raw) {
    const rest = splitter.end();
    if (rest.length > 0) offset -= new TextEncoder().encode(rest[0]).byteLength;
  }
  return offset;
}

/** Follows one log from `from` until the run ends; the error when it went stale. */
async function followLog(
  context: CommandContext,
  ref: RunRef,
  channel: WorkerLogChannel,
  from: number,
  poll: { pollMs: number; staleAfterMs: number },
): Promise<RunStaleError | undefined> {
  const raw = channel !== "worker" && context.values.json !== true;
  const splitter = new LineSplitter();
  const write = lineWriter(context, channel);
  let stale: RunStaleError | undefined;
  try {
    for await (const chunk of followRunLog(context.storage(), ref, channel, { from, ...poll })) {
      if (raw) await context.output.out(chunk);
      else await write(splitter.push(chunk));
    }
  } catch (error) {
    if (!(error instanceof RunStaleError)) throw error;
    stale = error;
  }
  if (!raw) await write(splitter.end());
  return stale;
}

/** Says how a followed run ended, on stderr; resolves with the exit code that tells it. */
async function reportEnd(
  context: CommandContext,
  ref: RunRef,
  stale: RunStaleError | undefined,
  staleAfterMs: number,
): Promise<number> {
  if (stale !== undefined) {
    await context.output.note(
      `runs: ${ref.taskId}/${ref.runId} is stale: no heartbeat since ${
        formatTime(stale.updatedAt)
      } (its writer died); 'runs reap' closes it`,
    );
    return EXIT.stale;
  }
  const { state } = await readRunStatus(context.storage(), keysOf(ref), { staleAfterMs });
  await context.output.note(endLine(ref, state));
  return outcomeCode(state);
}

function endLine(ref: RunRef, state: RunStateSnapshot | undefined): string {
  const detail = [
    state?.exitCode !== undefined ? `exit code ${state.exitCode}` : undefined,
    state?.signal,
    state?.reason !== undefined ? `reason ${state.reason}` : undefined,
  ].filter(Boolean).join(", ");
  return `runs: ${ref.taskId}/${ref.runId} ${state?.status ?? "ended"}${
    detail ? ` (${detail})` : ""
  }${state?.summary ? `: ${state.summary}` : ""}`;
}

async function requireRun(storage: RunStorage, ref: RunRef) {
  const keys = keysOf(ref);
  const status = await readRunStatus(storage, keys);
  if (!status.exists) {
    throw new NotFoundError(`Run '${ref.runId}' of task '${ref.taskId}' does not exist`, keys.meta);
  }
  return status;
}

/**
 * `runs logs`: prints a log, or all three interleaved, whole or its last lines, then follows it
 * with `-f`.
 *
 * @param context The command's context.
 * @returns The exit code: 0, or with `-f` the run's outcome (1 failed, 2 blocked, 3 stale).
 */
export async function logsCommand(context: CommandContext): Promise<number> {
  const ref = runRef(context);
  const stream = stringFlag(context, "stream") ?? "all";
  if (stream !== "all" && !CHANNELS.includes(stream as WorkerLogChannel)) {
    throw new UsageError(`--stream '${stream}' is not one of stdout, stderr, worker, all`);
  }
  const tail = intFlag(context, "tail");
  const poll = {
    pollMs: durationFlag(context, "poll", 250)!,
    staleAfterMs: durationFlag(context, "stale-after", 15_000)!,
  };
  const follow = context.values.follow === true;
  const storage = context.storage();
  const status = await requireRun(storage, ref);
  if (stream === "all") {
    const view = await printCombined(context, ref, {
      tail,
      // A finished run's view is whole: its last unfinished line and its end are shown now.
      finish: !follow || status.liveness === "finished",
      knownBytes: (status.state?.stdoutBytes ?? 0) + (status.state?.stderrBytes ?? 0),
    });
    if (!follow) return EXIT.ok;
    return await reportEnd(
      context,
      ref,
      await followCombined(context, ref, view, poll),
      poll.staleAfterMs,
    );
  }
  const channel = stream as WorkerLogChannel;
  let end: number;
  if (tail !== undefined && channel === "worker") {
    // Events are few: the last N whole lines of worker.log.
    const bytes = await readRunLogBytes(storage, ref, "worker");
    end = bytes.lastIndexOf(0x0a) + 1;
    const lines = new TextDecoder().decode(bytes.subarray(0, end)).split("\n").slice(0, -1);
    await lineWriter(context, "worker")(lines.slice(Math.max(0, lines.length - tail)));
  } else {
    const known = channel === "stdout" ? status.state?.stdoutBytes : status.state?.stderrBytes;
    const start = tail === undefined ? 0 : await tailStart(storage, ref, channel, tail, known);
    end = await printStored(context, ref, channel, start);
  }
  if (!follow) return EXIT.ok;
  return await reportEnd(
    context,
    ref,
    await followLog(context, ref, channel, end, poll),
    poll.staleAfterMs,
  );
}

/**
 * `runs events`: prints a run's lifecycle events; with `-f`, follows them and its state.
 *
 * @param context The command's context.
 * @returns The exit code: 0, or with `-f` the run's outcome (1 failed, 2 blocked, 3 stale).
 */
export async function eventsCommand(context: CommandContext): Promise<number> {
  const ref = runRef(context);
  const storage = context.storage();
  const asJson = context.values.json === true;
  if (!context.values.follow) {
    const run = await readRun(storage, ref);
    if (asJson) await json(context, run.events);
    else await context.output.out(run.events.map((e) => `${e.renderedLine}\n`).join(""));
    return EXIT.ok;
  }
  const staleAfterMs = durationFlag(context, "stale-after", 15_000)!;
  await requireRun(storage, ref);
  let last: RunStateSnapshot | undefined;
  const s = context.style;
  for await (
    const change of watchRun(storage, ref, {
      pollMs: durationFlag(context, "poll", 250)!,
      staleAfterMs,
    })
  ) {
    if (asJson) await json(context, change, false);
    if (change.type === "event") {
      if (!asJson) await context.output.out(`${change.event.renderedLine}\n`);
    } else if (change.type === "state") {
      last = change.state;
      if (!asJson) {
        await context.output.out(s.dim(`state: ${change.state.status} (${change.liveness})\n`));
      }
    } else {
      await context.output.note(
        `runs: ${ref.taskId}/${ref.runId} is stale: no heartbeat since ${
          formatTime(change.state?.updatedAt)
        } (its writer died); 'runs reap' closes it`,
      );
      return EXIT.stale;
    }
  }
  await context.output.note(endLine(ref, last));
  return outcomeCode(last);
}
