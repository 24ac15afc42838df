// Output streams of a run: redaction, byte caps, sequencing, into the write path.

import { encodeText, isHandedOver, utf8Length } from "./bytes.ts";
import { recordStreamChunk } from "./log-session.ts";
import type { RedactionStream } from "./redact.ts";
import type { StreamLogChannel } from "./types.ts";
import { type LiveRun, recordEvent } from "./open-run.ts";

export interface StreamWriter {
  write(chunk: string | Uint8Array): void | Promise<void>;
  end(): void;
}

function truncationMarker(channel: StreamLogChannel, limit: number): string {
  return `\n[baa-conductor: ${channel} truncated after ${limit} bytes]\n`;
}

export function createStreamWriter(
  live: LiveRun,
  channel: StreamLogChannel,
  limit: number | undefined,
): StreamWriter {
  const stream = live.session[channel];
  const redaction: RedactionStream | undefined = live.redactor?.stream();
  let truncated = false;

  function store(
    data: string | Uint8Array,
    length: number,
    sequenced: boolean,
  ): void | Promise<void> {
    if (limit !== undefined && stream.byteCount + length > limit) {
      if (truncated) {
        stream.droppedBytes += length;
        if (sequenced) recordStreamChunk(live.session, channel, "", 0);
        return;
      }
      truncated = true;
      const bytes = typeof data === "string" ? encodeText(data) : data;
      const room = Math.max(0, limit - stream.byteCount);
      const kept = bytes.subarray(0, room);
      stream.droppedBytes += bytes.byteLength - room;
      const marker = truncationMarker(channel, limit);
      const markerBytes = encodeText(marker);
      if (sequenced) {
        recordStreamChunk(live.session, channel, kept, kept.byteLength + markerBytes.byteLength);
      } else stream.byteCount += kept.byteLength + markerBytes.byteLength;
      live.writer.push(channel, kept, kept.byteLength);
      recordEvent(live, {
        type: "output_truncated",
        level: "warn",
        message: `${channel} passed its ${limit}-byte cap; further output is dropped.`,
        data: { channel, limitBytes: limit },
      });
      return live.writer.push(channel, markerBytes, markerBytes.byteLength);
    }
    if (sequenced) recordStreamChunk(live.session, channel, data, length);
    else stream.byteCount += length;
    return live.writer.push(channel, data, length);
  }

  return {
    write(chunk) {
      if (typeof chunk !== "string" && !(chunk instanceof Uint8Array)) {
        throw new TypeError(`context.${channel}() takes a string or a Uint8Array`);
      }
      if (redaction !== undefined) {
        const out = redaction.push(typeof chunk === "string" ? encodeText(chunk) : chunk);
        return store(out, out.byteLength, true);
      }
      if (typeof chunk === "string") return store(chunk, utf8Length(chunk), true);
      // Copy: the caller may reuse its buffer before the flush (a reused read buffer would
      // otherwise corrupt the log silently); bytes handed over (a pipe's fresh reads) are kept.
      return store(isHandedOver(chunk) ? chunk : chunk.slice(), chunk.byteLength, true);
    },
    end() {
      if (redaction === undefined) return;
      const rest = redaction.end();
      if (rest.byteLength > 0) void store(rest, rest.byteLength, false);
    },
  };
}
