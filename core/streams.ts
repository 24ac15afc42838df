// Output streams of a run: redaction, byte caps, sequencing, into the write path.

import { type ByteRing, createByteRing } from "./byte-ring.ts";
import { encodeText, isHandedOver, utf8Length } from "./bytes.ts";
import { extendLastStreamChunk, recordStreamChunk } from "./log-session.ts";
import type { StreamCap } from "./options.ts";
import type { RedactionStream } from "./redact.ts";
import type { StreamLogChannel } from "./types.ts";
import { type LiveRun, recordEvent } from "./open-run.ts";

/** Internal: how one stream of a run is written. */
export interface StreamWriterOptions {
  /** The stream's cap, if it has one. */
  cap?: StreamCap;
  /**
   * After this long without output, bytes the redactor holds back are released, so a quiet
   * worker's last line reaches a live reader (the run's flush interval).
   */
  quietMs: number;
}

/** Internal: one output stream of a run, from the executor's chunks to the write path. */
export interface StreamWriter {
  /** Takes one chunk of the worker's output; a promise when the write path is full. */
  write(chunk: string | Uint8Array): void | Promise<void>;
  /** Stores what is still held (redaction hold-back, a cap's tail and marker). */
  end(): void;
  /** Stops the quiet timer without storing anything more (the run is being abandoned). */
  abandon(): void;
}

/** The line stored between the head and the tail of a stream that passed its cap. */
export function truncationMarker(channel: StreamLogChannel, droppedBytes: number): string {
  return `\n[baa-conductor: ${channel} truncated, ${droppedBytes} bytes dropped here]\n`;
}

/**
 * Creates the writer of one stream. Order of work on a chunk: redaction (which may hold back
 * the end of the output until more arrives, the worker goes quiet, or the stream ends), then the
 * cap (the head is stored as it comes, the rest goes through a ring that keeps the tail).
 *
 * Every worker chunk is sequenced once, with the bytes stored for it then; bytes stored later
 * (released by the redactor, or the tail at the end) are added to the channel's last chunk, so
 * the session's tail and counts describe exactly what is stored.
 */
export function createStreamWriter(
  live: LiveRun,
  channel: StreamLogChannel,
  options: StreamWriterOptions,
): StreamWriter {
  const stream = live.session[channel];
  const redaction: RedactionStream | undefined = live.redactor?.stream();
  const cap = options.cap;
  let headRoom = cap?.headBytes ?? Infinity;
  let tail: ByteRing | undefined; // created once the stream passes its head
  let announced = false;
  let ended = false;
  let lastWriteAt = 0;
  let quietTimer: ReturnType<typeof setTimeout> | undefined;

  /** Keeps the end of `bytes` for the tail; counts what falls out of the ring as dropped. */
  function hold(bytes: Uint8Array): void {
    tail ??= createByteRing(cap!.tailBytes);
    tail.push(bytes);
    stream.droppedBytes = tail.total - tail.size;
    if (announced || stream.droppedBytes === 0) return;
    announced = true;
    recordEvent(live, {
      type: "output_truncated",
      level: "warn",
      message: `${channel} passed its ${cap!.limitBytes}-byte cap; its first ${
        cap!.headBytes
      } and last ${cap!.tailBytes} bytes are kept, the tail is stored when the run ends.`,
      data: {
        channel,
        limitBytes: cap!.limitBytes,
        headBytes: cap!.headBytes,
        tailBytes: cap!.tailBytes,
      },
    });
  }

  /**
   * Stores what fits in the head now and holds the rest. `sequenced`: a new worker chunk (one
   * sequence number, even when nothing is stored for it now); otherwise bytes released later,
   * added to the channel's last chunk.
   */
  function store(
    data: string | Uint8Array,
    length: number,
    sequenced: boolean,
  ): void | Promise<void> {
    let now = data;
    let nowLength = length;
    let rest: Uint8Array | undefined;
    if (length > headRoom) {
      const bytes = typeof data === "string" ? encodeText(data) : data;
      now = bytes.subarray(0, headRoom);
      nowLength = headRoom;
      rest = bytes.subarray(headRoom);
    }
    headRoom -= nowLength;
    if (sequenced) recordStreamChunk(live.session, channel, now, nowLength);
    else if (nowLength > 0) {
      extendLastStreamChunk(live.session, channel, typeof now === "string" ? encodeText(now) : now);
    }
    if (rest !== undefined) hold(rest);
    if (nowLength === 0) return;
    return live.writer.push(channel, now, nowLength, stream.lastSeq);
  }

  /** Releases the redactor's hold-back once the worker has been quiet for `quietMs`. */
  function releaseWhenQuiet(): void {
    quietTimer = undefined;
    if (ended || redaction === undefined || redaction.heldBytes === 0) return;
    const quietFor = Date.now() - lastWriteAt;
    if (quietFor < options.quietMs) {
      quietTimer = setTimeout(releaseWhenQuiet, options.quietMs - quietFor);
      return;
    }
    const released = redaction.flush();
    // The promise only signals back-pressure; nobody is waiting to produce more.
    if (released.byteLength > 0) void store(released, released.byteLength, false);
  }

  return {
    write(chunk) {
      if (typeof chunk !== "string" && !(chunk instanceof Uint8Array)) {
        throw new TypeError(`context.${channel}() takes a string or a Uint8Array`);
      }
      if (redaction !== undefined) {
        const out = redaction.push(typeof chunk === "string" ? encodeText(chunk) : chunk);
        lastWriteAt = Date.now();
        if (redaction.heldBytes > 0 && quietTimer === undefined) {
          quietTimer = setTimeout(releaseWhenQuiet, options.quietMs);
        }
        return store(out, out.byteLength, true);
      }
      if (typeof chunk === "string") return store(chunk, utf8Length(chunk), true);
      // Copy: the caller may reuse its buffer before the flush (a reused read buffer would
      // otherwise corrupt the log silently). Past the head the tail ring copies what it keeps;
      // bytes handed over (a pipe's fresh reads) are kept as they are.
      return store(
        headRoom === 0 || isHandedOver(chunk) ? chunk : chunk.slice(),
        chunk.byteLength,
        true,
      );
    },
    end() {
      if (ended) return;
      ended = true;
      if (quietTimer !== undefined) clearTimeout(quietTimer);
      if (redaction !== undefined) {
        const rest = redaction.end();
        if (rest.byteLength > 0) void store(rest, rest.byteLength, false);
      }
      if (tail === undefined) return;
      // The marker and the tail go in after the head: stored, counted, and shown in the session
      // with the channel's last chunk. The ring's own buffer is handed over, not copied.
      const parts = tail.parts();
      tail = undefined;
      if (stream.droppedBytes > 0) {
        parts.unshift(encodeText(truncationMarker(channel, stream.droppedBytes)));
      }
      for (const part of parts) {
        extendLastStreamChunk(live.session, channel, part);
        void live.writer.push(channel, part, part.byteLength, stream.lastSeq);
      }
    },
    abandon() {
      ended = true;
      if (quietTimer !== undefined) clearTimeout(quietTimer);
      quietTimer = undefined;
    },
  };
}
