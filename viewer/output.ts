// Both streams in one view, in the order the worker printed them (the run's output index): the
// run page's tail of it, and the event stream that follows it live, whose `id:` is each item's
// cursor so a reconnecting browser resumes after the last item it showed.

import { type AnsiLine, applyOps, type LineState } from "./ansi.ts";
import { ValidationError } from "../core/errors.ts";
import { followRunOutput, readRunOutput, type RunOutputChunk } from "../core/output.ts";
import { readRunLogBytes, type RunRef } from "../core/read.ts";
import type { StreamLogChannel } from "../core/types.ts";
import type { RunStorage } from "../storage/types.ts";
import { type Html, markup } from "./html.ts";
import {
  createStreamDecoder,
  fromCharacterStart,
  linesMarkup,
  type StreamDecoder,
} from "./logs.ts";
import { type EventStreamOptions, followedEventStream } from "./sse.ts";

const CHANNELS: readonly StreamLogChannel[] = ["stdout", "stderr"];
const isContinuation = (byte: number | undefined) => byte !== undefined && (byte & 0xc0) === 0x80;

/** The end of a run's output, both streams in print order, as terminal lines. */
export interface OutputTail {
  /** The lines, in the order they were started. */
  lines: AnsiLine[];
  /** The stream of each line. */
  channels: StreamLogChannel[];
  /** Per stream: its last line has no newline yet (its next bytes go on with it). */
  open: Record<StreamLogChannel, boolean>;
  /** Resumes after the last item shown (`undefined`: nothing was read). */
  cursor?: string;
  /** Bytes shown. */
  bytes: number;
  /** Whether output before what is shown exists (the view is a tail, not all of it). */
  cut: boolean;
}

/**
 * Reads and renders about the last `tailBytes` of a run's output, both streams interleaved as
 * printed. At most `tailBytes` plus one stored item is held in memory; what is shown starts at a
 * line of the first stream shown, each stream keeps its own current line.
 *
 * @param storage The storage.
 * @param ref The run.
 * @param tailBytes How much to show.
 * @param sizes Each stream's size as the run's state reports it (to tell a tail from the whole).
 * @returns The lines, their streams, and the cursor after them.
 * @throws {NotFoundError} The run does not exist.
 */
export async function readOutputTail(
  storage: RunStorage,
  ref: RunRef,
  tailBytes: number,
  sizes: Partial<Record<StreamLogChannel, number>>,
): Promise<OutputTail> {
  const window: RunOutputChunk[] = [];
  let held = 0;
  let cursor: string | undefined;
  let cut = false;
  for await (const item of readRunOutput(storage, ref, { tail: tailBytes })) {
    if (item.channel === "worker") continue;
    window.push(item);
    held += item.bytes.byteLength;
    cursor = item.cursor;
  }
  const first = window[0];
  if (first !== undefined && first.offset > 0) {
    // The tail starts inside the stream: show it from the first item's next line, when it has
    // one (a line cut at its start would show as a line of its own).
    const newline = first.bytes.indexOf(0x0a);
    if (newline !== -1) {
      const start = newline + 1;
      held -= start;
      if (start === first.bytes.byteLength) window.shift();
      else {
        window[0] = { ...first, offset: first.offset + start, bytes: first.bytes.subarray(start) };
      }
    }
    cut = true;
  }
  const lines: AnsiLine[] = [];
  const channels: StreamLogChannel[] = [];
  const states: Record<StreamLogChannel, LineState> = {
    stdout: { open: false, pendingReturn: false },
    stderr: { open: false, pendingReturn: false },
  };
  const decoders: Partial<Record<StreamLogChannel, StreamDecoder>> = {};
  for (const item of window) {
    let bytes = item.bytes;
    if (decoders[item.channel] === undefined) {
      decoders[item.channel] = createStreamDecoder();
      if (item.offset > 0) {
        cut = true;
        bytes = fromCharacterStart(bytes); // a start mid-character: its rest is not text
      }
    }
    const before = lines.length;
    applyOps(lines, decoders[item.channel]!.push(bytes).ops, states[item.channel]);
    for (let i = before; i < lines.length; i++) channels.push(item.channel);
  }
  // A stream with output but none shown is all before the tail.
  if (CHANNELS.some((c) => decoders[c] === undefined && (sizes[c] ?? 0) > 0)) cut = true;
  return {
    lines,
    channels,
    open: { stdout: states.stdout.open, stderr: states.stderr.open },
    cursor,
    bytes: held,
    cut,
  };
}

/**
 * Markup of the combined view's lines: each line marked with its stream's class.
 *
 * @param tail The lines and their streams.
 * @returns The markup.
 */
export function outputMarkup(tail: Pick<OutputTail, "lines" | "channels">): Html {
  const groups: Html[] = [];
  for (let start = 0; start < tail.lines.length;) {
    let end = start + 1;
    while (end < tail.lines.length && tail.channels[end] === tail.channels[start]) end++;
    groups.push(linesMarkup(tail.lines.slice(start, end), tail.channels[start]));
    start = end;
  }
  return markup`${groups}`;
}

/**
 * Whether `from` is a cursor {@linkcode followRunOutput} takes: it checks its options when
 * called, before reading anything (the follower made here is never started).
 *
 * @param storage The storage.
 * @param ref The run.
 * @param from The cursor offered.
 * @returns Whether it is one.
 */
export function isOutputCursor(storage: RunStorage, ref: RunRef, from: string): boolean {
  try {
    void followRunOutput(storage, ref, { from });
    return true;
  } catch (error) {
    if (error instanceof ValidationError) return false;
    throw error;
  }
}

/** Options of {@linkcode outputEventStream}. */
export interface OutputEventStreamOptions extends EventStreamOptions {
  /** A cursor of an item sent before (checked with {@linkcode isOutputCursor}); default the start. */
  from?: string;
}

/**
 * A `text/event-stream` body following both streams in print order: each `message` event's
 * data is `{ "c": channel, "ops": [...] }` (terminal operations, one ANSI parser per stream),
 * its `id:` the item's cursor; then `end`, `stale` or `failure` (see `followedEventStream`),
 * whose data carries the last cursor sent.
 *
 * @param storage The storage.
 * @param ref The run.
 * @param options Cursor, polling, staleness, signal.
 * @returns The stream.
 */
export function outputEventStream(
  storage: RunStorage,
  ref: RunRef,
  options: OutputEventStreamOptions,
): ReadableStream<Uint8Array> {
  const decoders: Partial<Record<StreamLogChannel, StreamDecoder>> = {};
  let cursor = options.from;
  return followedEventStream(storage, ref, {
    opening: `following stdout and stderr from ${cursor ?? "the start"}`,
    follow: (signal) =>
      followRunOutput(storage, ref, {
        from: options.from,
        pollMs: options.pollMs,
        staleAfterMs: options.staleAfterMs,
        signal,
      }),
    async message(item) {
      if (item.channel === "worker") return undefined;
      let decoder = decoders[item.channel];
      if (decoder === undefined) {
        decoder = decoders[item.channel] = createStreamDecoder();
        // Resumed after a stored piece that ended mid-character (its cursor is past the whole
        // piece): that character's start is read back, so it is shown whole, and once.
        if (item.offset > 0 && isContinuation(item.bytes[0])) {
          const start = Math.max(0, item.offset - 3);
          decoder.resumeAfter(
            await readRunLogBytes(storage, ref, item.channel, {
              offset: start,
              length: item.offset - start,
            }),
          );
        }
      }
      const { ops } = decoder.push(item.bytes);
      cursor = item.cursor;
      // Sent even when no text is whole yet: the cursor moved, a reconnect resumes after it.
      return `id: ${cursor}\ndata: ${JSON.stringify({ c: item.channel, ops })}\n\n`;
    },
    position: () => (cursor === undefined ? {} : { cursor }),
  }, options);
}
