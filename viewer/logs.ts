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
import { followRunLog } from "../core/follow.ts";
import { RunStaleError } from "../core/errors.ts";
import { keysOf, readRunStatus, type RunRef } from "../core/read.ts";
import type { RunStorage } from "../storage/types.ts";
import type { StreamLogChannel } from "../core/types.ts";
import { badgeWord } from "./shell.ts";

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
  let start = 0;
  if (skipPartialStart) { while (start < 3 && (bytes[start] & 0xc0) === 0x80) start++; }
  const text = new TextDecoder().decode(bytes.subarray(start));
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
  const attr = channel ? markup` data-channel="${channel}"` : "";
  const span = (seg: AnsiSegment) =>
    seg.s === undefined
      ? markup`<span>${seg.t}</span>`
      : markup`<span style="${seg.s}">${seg.t}</span>`;
  // No whitespace between the elements: inside <pre> it would show.
  return markup`${lines.map((line) => markup`<div class="${cls}"${attr}>${line.map(span)}</div>`)}`;
}

/** Options of {@linkcode logEventStream}. */
export interface LogEventStreamOptions {
  /** Byte offset to start from. */
  from: number;
  /** Poll interval of the follower, ms. */
  pollMs: number;
  /** Heartbeat age past which the run is stale, ms. */
  staleAfterMs: number;
  /** Ends the stream (the client went away). */
  signal?: AbortSignal;
  /** Comment lines sent while nothing is new, ms (keeps proxies from closing the stream). */
  keepAliveMs?: number;
}

const encoder = new TextEncoder();

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
  const abort = new AbortController();
  options.signal?.addEventListener("abort", () => abort.abort(), { once: true });
  const parser = createAnsiParser();
  const decoder = new TextDecoder();
  let offset = options.from;
  let carry = new Uint8Array(0);
  let iterator: AsyncIterator<Uint8Array> | undefined;
  let keepAlive: ReturnType<typeof setInterval> | undefined;
  let closed = false;
  const stop = () => {
    closed = true;
    if (keepAlive !== undefined) clearInterval(keepAlive);
    abort.abort();
  };
  const message = (ops: AnsiOp[], id: number) =>
    encoder.encode(`id: ${id}\ndata: ${JSON.stringify(ops)}\n\n`);
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(`retry: 1000\n: following ${channel} from ${offset}\n\n`));
      keepAlive = setInterval(() => {
        try {
          if (!closed) controller.enqueue(encoder.encode(": keep-alive\n\n"));
        } catch {
          stop();
        }
      }, options.keepAliveMs ?? 15_000);
      iterator = followRunLog(storage, ref, channel, {
        from: options.from,
        pollMs: options.pollMs,
        staleAfterMs: options.staleAfterMs,
        signal: abort.signal,
      })[Symbol.asyncIterator]();
    },
    async pull(controller) {
      try {
        const next = await iterator!.next();
        if (closed) return;
        if (!next.done) {
          const joined = new Uint8Array(carry.byteLength + next.value.byteLength);
          joined.set(carry);
          joined.set(next.value, carry.byteLength);
          const cut = incompleteUtf8Tail(joined);
          const whole = joined.subarray(0, joined.byteLength - cut);
          carry = joined.slice(joined.byteLength - cut);
          offset += whole.byteLength;
          if (whole.byteLength === 0) return;
          const ops = parser.push(decoder.decode(whole, { stream: true }));
          // Even with no visible text the offset moved: send it so a reconnect skips it.
          controller.enqueue(message(ops, offset));
          return;
        }
        if (abort.signal.aborted) {
          stop();
          controller.close();
          return;
        }
        const status = await readRunStatus(storage, keysOf(ref), {
          staleAfterMs: options.staleAfterMs,
        });
        const info = {
          status: status.state?.status,
          badge: badgeWord(status.state, status.liveness),
          exitCode: status.state?.exitCode,
          offset,
        };
        controller.enqueue(encoder.encode(`event: end\ndata: ${JSON.stringify(info)}\n\n`));
        stop();
        controller.close();
      } catch (error) {
        if (error instanceof RunStaleError) {
          const info = { offset };
          controller.enqueue(encoder.encode(`event: stale\ndata: ${JSON.stringify(info)}\n\n`));
          stop();
          controller.close();
          return;
        }
        stop();
        // A storage failure: end the stream with a note; the browser reconnects from the offset.
        controller.enqueue(encoder.encode(`event: failure\ndata: {"offset":${offset}}\n\n`));
        controller.close();
      }
    },
    cancel() {
      stop();
      void iterator?.return?.();
    },
  });
}
