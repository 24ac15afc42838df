// Both streams in one view, in the order the worker printed them (the run's output index): the
// event stream that follows it live, whose `id:` is each item's cursor so a reconnecting browser
// resumes after the last item it showed.

import { ValidationError } from "../core/errors.ts";
import { followRunOutput } from "../core/output.ts";
import { readRunLogBytes, type RunRef } from "../core/read.ts";
import type { StreamLogChannel } from "../core/types.ts";
import type { RunStorage } from "../storage/types.ts";
import { createStreamDecoder, type StreamDecoder } from "./logs.ts";
import { type EventStreamOptions, followedEventStream } from "./sse.ts";

const isContinuation = (byte: number | undefined) => byte !== undefined && (byte & 0xc0) === 0x80;

/**
 * Whether `from` is a cursor {@linkcode followRunOutput} takes. It is asked itself, reading
 * nothing: with its signal already aborted it checks its options and ends.
 *
 * @param storage The storage.
 * @param ref The run.
 * @param from The cursor offered.
 * @returns Whether it is one.
 */
export async function isOutputCursor(
  storage: RunStorage,
  ref: RunRef,
  from: string,
): Promise<boolean> {
  try {
    await followRunOutput(storage, ref, { from, signal: AbortSignal.abort() }).next();
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
