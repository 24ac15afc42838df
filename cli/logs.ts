// Reading and following a run's logs and events: `runs logs` and `runs events`.

import { NotFoundError, RunStaleError } from "../core/errors.ts";
import { followRunLog, watchRun } from "../core/follow.ts";
import { keysOf, readRun, readRunLogBytes, readRunStatus, type RunRef } from "../core/read.ts";
import type { RunStateSnapshot, WorkerLifecycleLogEntry, WorkerLogChannel } from "../core/types.ts";
import type { RunStorage } from "../storage/types.ts";
import { durationFlag, intFlag, json, runRef, stringFlag } from "./flags.ts";
import { formatTime } from "./format.ts";
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

/** Splits a channel's bytes into whole lines, decoding UTF-8 across chunk boundaries. */
class LineSplitter {
  #decoder = new TextDecoder();
  #partial = "";

  /** The whole lines in `chunk` (and before it), without their newlines. */
  push(chunk: Uint8Array): string[] {
    const lines = (this.#partial + this.#decoder.decode(chunk, { stream: true })).split("\n");
    this.#partial = lines.pop() ?? "";
    return lines;
  }

  /** What is left without a newline (a last line, or a line torn by a killed writer). */
  end(): string[] {
    const rest = this.#partial + this.#decoder.decode();
    this.#partial = "";
    return rest === "" ? [] : [rest];
  }
}

/** Whether a worker.log line is the run's terminal event. */
function isTerminalLine(line: string): boolean {
  return /"type":"step_(completed|failed|blocked|prepared)"/.test(line);
}

/** Writes one channel's lines: raw, styled for a terminal, or as JSON lines. */
function lineWriter(context: CommandContext, channel: WorkerLogChannel, mixed: boolean) {
  const asJson = context.values.json === true;
  const s = context.style;
  const render = (line: string): string | undefined => {
    if (channel === "worker") {
      if (line.trim() === "") return undefined;
      let entry: WorkerLifecycleLogEntry;
      try {
        entry = JSON.parse(line) as WorkerLifecycleLogEntry;
      } catch {
        return undefined; // a torn last line from a killed writer
      }
      if (asJson) return JSON.stringify(entry);
      const rendered = entry.renderedLine ?? `${entry.createdAt} ${entry.type}: ${entry.message}`;
      return mixed ? s.dim(rendered) : rendered;
    }
    if (asJson) return JSON.stringify({ channel, line });
    return channel === "stderr" && mixed ? s.red(line) : line;
  };
  return async (lines: string[]) => {
    const out = lines.map(render).filter((l): l is string => l !== undefined);
    if (out.length > 0) await context.output.out(out.map((l) => `${l}\n`).join(""));
  };
}

/** Where each channel's stored bytes end, after printing them (the followers go on from there). */
type Offsets = Record<WorkerLogChannel, number>;

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

/** Prints one channel from `from` to its current end; returns where it ended. */
async function printStored(
  context: CommandContext,
  ref: RunRef,
  channel: WorkerLogChannel,
  from: number,
  mixed: boolean,
  filter?: (lines: string[]) => string[],
): Promise<number> {
  const storage = context.storage();
  const raw = !mixed && channel !== "worker" && context.values.json !== true;
  const splitter = new LineSplitter();
  const write = lineWriter(context, channel, mixed);
  let offset = from;
  for await (const chunk of readFrom(storage, ref, channel, from)) {
    offset += chunk.byteLength;
    if (raw) await context.output.out(chunk);
    else {
      const lines = splitter.push(chunk);
      await write(filter ? filter(lines) : lines);
    }
  }
  // A line without its newline yet stays unprinted in a mixed view only while it may grow;
  // printed now, a follower would print its rest as a line of its own, so it is held back.
  if (!raw && !context.values.follow) await write(splitter.end());
  else if (!raw) {
    const rest = splitter.end();
    if (rest.length > 0) offset -= new TextEncoder().encode(rest[0]).byteLength;
  }
  return offset;
}

function parseEntry(line: string): { seq?: number; type?: string } | undefined {
  try {
    return JSON.parse(line) as { seq?: number; type?: string };
  } catch {
    return undefined; // a torn last line from a killed writer
  }
}

function seqOf(line: string): number | undefined {
  return parseEntry(line)?.seq;
}

/**
 * The stored part of a view, printed. `all`: lifecycle events up to the worker's start, then
 * stdout, then stderr, then the remaining events (stream bytes carry no sequence numbers).
 */
async function printView(
  context: CommandContext,
  ref: RunRef,
  channels: readonly WorkerLogChannel[],
  starts: Offsets,
): Promise<Offsets> {
  const ends = { ...starts };
  if (channels.length === 1) {
    ends[channels[0]] = await printStored(context, ref, channels[0], starts[channels[0]], false);
    return ends;
  }
  // worker.log is small (lifecycle events only): read once, its whole lines split around the
  // worker's start, so what follows starts exactly where this read ended.
  const bytes = await readRunLogBytes(context.storage(), ref, "worker", { offset: starts.worker });
  const whole = context.values.follow ? bytes.lastIndexOf(0x0a) + 1 : bytes.byteLength;
  const lines = new TextDecoder().decode(bytes.subarray(0, whole)).split("\n")
    .filter((line) => line !== "");
  const started = lines.map(parseEntry).find((e) => e?.type === "worker_started")?.seq ?? 0;
  const events = lineWriter(context, "worker", true);
  await events(lines.filter((l) => (seqOf(l) ?? Infinity) <= started));
  ends.stdout = await printStored(context, ref, "stdout", starts.stdout, true);
  ends.stderr = await printStored(context, ref, "stderr", starts.stderr, true);
  await events(lines.filter((l) => (seqOf(l) ?? 0) > started));
  ends.worker = starts.worker + whole;
  return ends;
}

/** Follows channels from their offsets until the run ends; resolves with the exit code. */
async function followView(
  context: CommandContext,
  ref: RunRef,
  channels: readonly WorkerLogChannel[],
  from: Offsets,
  pollMs: number,
  staleAfterMs: number,
): Promise<number> {
  const storage = context.storage();
  const controller = new AbortController();
  const mixed = channels.length > 1;
  let stale: RunStaleError | undefined;
  // Interleaved, the streams are polled apart: the run's terminal event is held until every
  // stream has delivered its last bytes, so it is always the last line shown.
  const held: string[] = [];
  const pump = async (channel: WorkerLogChannel) => {
    const raw = !mixed && channel !== "worker" && context.values.json !== true;
    const splitter = new LineSplitter();
    const write = lineWriter(context, channel, mixed);
    const holdTerminal = mixed && channel === "worker";
    try {
      for await (
        const chunk of followRunLog(storage, ref, channel, {
          from: from[channel],
          pollMs,
          staleAfterMs,
          signal: controller.signal,
        })
      ) {
        if (raw) await context.output.out(chunk);
        else if (!holdTerminal) await write(splitter.push(chunk));
        else {
          const lines = splitter.push(chunk);
          held.push(...lines.filter(isTerminalLine));
          await write(lines.filter((line) => !isTerminalLine(line)));
        }
      }
    } catch (error) {
      if (!(error instanceof RunStaleError)) {
        controller.abort();
        throw error;
      }
      stale ??= error;
      controller.abort();
    }
    if (!raw) await write(splitter.end());
  };
  await Promise.all(channels.map(pump));
  if (held.length > 0) await lineWriter(context, "worker", mixed)(held);
  if (stale !== undefined) {
    await context.output.note(
      `runs: ${ref.taskId}/${ref.runId} is stale: no heartbeat since ${
        formatTime(stale.updatedAt)
      } (its writer died); 'runs reap' closes it`,
    );
    return EXIT.stale;
  }
  const { state } = await readRunStatus(storage, keysOf(ref), { staleAfterMs });
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
 * `runs logs`: prints a log (or all three), whole or its last lines, then follows it with `-f`.
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
  const channels = stream === "all" ? CHANNELS : [stream as WorkerLogChannel];
  const tail = intFlag(context, "tail");
  const pollMs = durationFlag(context, "poll", 250)!;
  const staleAfterMs = durationFlag(context, "stale-after", 15_000)!;
  const storage = context.storage();
  const status = await requireRun(storage, ref);
  const starts: Offsets = { stdout: 0, stderr: 0, worker: 0 };
  if (tail !== undefined) {
    for (const channel of channels) {
      const known = channel === "worker"
        ? undefined
        : channel === "stdout"
        ? status.state?.stdoutBytes
        : status.state?.stderrBytes;
      starts[channel] = channel === "worker"
        ? 0
        : await tailStart(storage, ref, channel, tail, known);
    }
  }
  let ends: Offsets;
  if (tail !== undefined && channels.includes("worker")) {
    // Events are few: the last N whole lines of worker.log, then the streams' tails.
    const bytes = await readRunLogBytes(storage, ref, "worker");
    const whole = bytes.lastIndexOf(0x0a) + 1;
    const lines = new TextDecoder().decode(bytes.subarray(0, whole)).split("\n").slice(0, -1);
    await lineWriter(context, "worker", channels.length > 1)(
      lines.slice(Math.max(0, lines.length - tail)),
    );
    ends = { ...starts, worker: whole };
    for (const channel of channels.filter((c) => c !== "worker")) {
      ends[channel] = await printStored(
        context,
        ref,
        channel,
        starts[channel],
        channels.length > 1,
      );
    }
  } else {
    ends = await printView(context, ref, channels, starts);
  }
  if (!context.values.follow) return EXIT.ok;
  return await followView(context, ref, channels, ends, pollMs, staleAfterMs);
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
