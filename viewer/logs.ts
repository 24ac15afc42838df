// Log bytes into terminal lines and markup, and the server-sent event stream that follows a
// live log: each event's `id:` is the byte offset after it, so a reconnecting browser resumes
// where it left off (Last-Event-ID).

import {
  type AnsiLine,
  type AnsiOp,
  type AnsiSegment,
  applyOps,
  createAnsiParser,
} from "./ansi.ts";
import { type Html, markup } from "./html.ts";
import { concatBytes } from "../core/bytes.ts";
import { followRunLog } from "../core/follow.ts";
import type { RunRef } from "../core/read.ts";
import type { RunStorage } from "../storage/types.ts";
import type { StreamLogChannel } from "../core/types.ts";
import { type EventStreamOptions, followedEventStream } from "./sse.ts";

/**
 * How many bytes at the end of `bytes` belong to a UTF-8 character cut short (0–3), so a
 * chunk's text never ends in a replacement character and an offset never splits a character.
 *
 * @param bytes The bytes.
 * @returns The length of the incomplete tail.
 */
export function incompleteUtf8Tail(bytes: Uint8Array): number {
  const n = bytes.byteLength;
  for (let back = 1; back <= Math.min(3, n); back++) {
    const b = bytes[n - back];
    if ((b & 0xc0) === 0x80) continue; // continuation byte: keep looking for the lead
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

/**
 * `bytes` without the continuation bytes it starts with: the rest of a character a range cut
 * (at most 3), which is not text.
 *
 * @param bytes The bytes.
 * @returns A view from the first byte that starts a character.
 */
export function fromCharacterStart(bytes: Uint8Array): Uint8Array {
  let start = 0;
  while (start < 3 && start < bytes.byteLength && (bytes[start] & 0xc0) === 0x80) start++;
  return bytes.subarray(start);
}

/**
 * Renders log bytes (a whole log or a part of it) as terminal lines.
 *
 * @param bytes The bytes.
 * @param skipPartialStart Drop continuation bytes at the start (a range cut mid-character).
 * @returns The lines and whether the last one is open (no newline yet).
 */
export function renderLogLines(
  bytes: Uint8Array,
  skipPartialStart = false,
): { lines: AnsiLine[]; open: boolean } {
  const text = new TextDecoder().decode(skipPartialStart ? fromCharacterStart(bytes) : bytes);
  const lines: AnsiLine[] = [];
  const state = { open: false, pendingReturn: false };
  applyOps(lines, createAnsiParser().push(text), state);
  return { lines, open: state.open };
}

/**
 * Markup of terminal lines: one `div.line` per line, one `span` per styled segment. The text is
 * escaped; the style is the parser's own CSS.
 *
 * @param lines The lines.
 * @param channel A channel class for each line (the combined view), if any.
 * @returns The markup.
 */
export function linesMarkup(lines: readonly AnsiLine[], channel?: string): Html {
  const cls = channel ? `line ch-${channel}` : "line";
  const span = (seg: AnsiSegment) =>
    seg.s === undefined
      ? markup`<span>${seg.t}</span>`
      : markup`<span style="${seg.s}">${seg.t}</span>`;
  // No whitespace between the elements: inside <pre> it would show.
  return markup`${lines.map((line) => markup`<div class="${cls}">${line.map(span)}</div>`)}`;
}

/** Bytes of one stream as terminal operations, chunk by chunk. */
export interface StreamDecoder {
  /**
   * Decodes a chunk. A character cut at its end waits for the next chunk (so no text ends in a
   * replacement character), as does an escape sequence cut there; style carries over.
   *
   * @returns The operations, and how many bytes they cover (carried bytes included).
   */
  push(bytes: Uint8Array): { ops: AnsiOp[]; whole: number };
  /**
   * Resuming mid-stream: `before` are the bytes just before the first chunk to come; the start
   * of a character they cut short goes in front of that chunk.
   */
  resumeAfter(before: Uint8Array): void;
}

/**
 * Creates a {@linkcode StreamDecoder}: one ANSI parser, UTF-8 cut safely between chunks.
 *
 * @returns A decoder with nothing carried.
 */
export function createStreamDecoder(): StreamDecoder {
  const parser = createAnsiParser();
  const decoder = new TextDecoder();
  let carry = new Uint8Array(0);
  return {
    push(bytes) {
      const joined = carry.byteLength === 0 ? bytes : concatBytes([carry, bytes]);
      const whole = joined.byteLength - incompleteUtf8Tail(joined);
      carry = joined.slice(whole);
      if (whole === 0) return { ops: [], whole };
      return {
        ops: parser.push(decoder.decode(joined.subarray(0, whole), { stream: true })),
        whole,
      };
    },
    resumeAfter(before) {
      carry = before.slice(before.byteLength - incompleteUtf8Tail(before));
    },
  };
}

/** Options of {@linkcode logEventStream}. */
export interface LogEventStreamOptions extends EventStreamOptions {
  /** Byte offset to start from. */
  from: number;
}

/**
 * A `text/event-stream` body following one log: `message` events carry JSON terminal operations
 * (see `AnsiOp`), `id:` the byte offset reached; an `end` event carries the final status once
 * the run finished and every byte was sent; a `stale` event says the writer died.
 *
 * @param storage The storage.
 * @param ref The run.
 * @param channel `stdout` or `stderr`.
 * @param options Offset, polling, staleness, signal.
 * @returns The stream.
 */
export function logEventStream(
  storage: RunStorage,
  ref: RunRef,
  channel: StreamLogChannel,
  options: LogEventStreamOptions,
): ReadableStream<Uint8Array> {
  const decoder = createStreamDecoder();
  let offset = options.from;
  return followedEventStream<Uint8Array>(storage, ref, {
    opening: `following ${channel} from ${offset}`,
    follow: (signal) =>
      followRunLog(storage, ref, channel, {
        from: options.from,
        pollMs: options.pollMs,
        staleAfterMs: options.staleAfterMs,
        signal,
      }),
    message(bytes) {
      const { ops, whole } = decoder.push(bytes);
      if (whole === 0) return undefined;
      offset += whole;
      // Even with no visible text the offset moved: send it so a reconnect skips it.
      return `id: ${offset}\ndata: ${JSON.stringify(ops)}\n\n`;
    },
    position: () => ({ offset }),
  }, options);
}
