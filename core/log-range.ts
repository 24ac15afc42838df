// Reading part of a run's log, live (segment objects) or finished (one object), without loading
// the whole log: the shared ground of readRunLogBytes, followRunLog and watchRun.

import type { RunStorage } from "../storage/types.ts";
import { concatBytes } from "./bytes.ts";
import { listSegments } from "./segments.ts";

/** Which bytes to read: a range from `offset`, or the last `tail` bytes. */
export type LogRange = { offset: number; length?: number } | { tail: number };

/**
 * Reads part of a key's bytes with `readRange` when the storage has it, else reads the whole
 * value and cuts (the documented fallback for adapters without ranged reads).
 *
 * @param storage The storage.
 * @param key The key.
 * @param range Offset and optional length.
 * @returns The bytes (possibly none), or `undefined` when the key does not exist.
 */
export async function readKeyRange(
  storage: RunStorage,
  key: string,
  range: { offset: number; length?: number },
): Promise<Uint8Array | undefined> {
  if (storage.readRange) return await storage.readRange(key, range);
  const whole = await storage.read(key);
  if (whole === undefined) return undefined;
  const end = range.length === undefined ? undefined : range.offset + range.length;
  return whole.slice(range.offset, end);
}

async function readKeyTail(
  storage: RunStorage,
  key: string,
  tail: number,
): Promise<Uint8Array | undefined> {
  if (storage.stat && storage.readRange) {
    const stat = await storage.stat(key);
    if (stat === undefined) return undefined;
    const bytes = await storage.readRange(key, { offset: Math.max(0, stat.size - tail) });
    // An appended log may have grown between the two calls: keep the last `tail` bytes.
    return bytes === undefined || bytes.byteLength <= tail
      ? bytes
      : bytes.slice(bytes.byteLength - tail);
  }
  const whole = await storage.read(key);
  return whole === undefined ? undefined : whole.slice(Math.max(0, whole.byteLength - tail));
}

/**
 * Reads a range of a live log from its segments, holding only the segment being read and the
 * range. Segment sizes are only known once read, so a range costs the segments up to its end
 * (a tail: the segments from the end back to its start).
 *
 * @returns The bytes, `undefined` when the log has no segments, or `"vanished"` when a segment
 *   disappeared meanwhile (the run ended and its log was composed: read the log's key).
 */
async function readSegmentsRange(
  storage: RunStorage,
  logKey: string,
  range: LogRange,
): Promise<Uint8Array | undefined | "vanished"> {
  const segments = await listSegments(storage, logKey);
  if (segments.length === 0) return undefined;
  const parts: Uint8Array[] = [];
  if ("tail" in range) {
    let have = 0;
    for (let i = segments.length - 1; i >= 0 && have < range.tail; i--) {
      const bytes = await storage.read(segments[i]);
      if (bytes === undefined) return "vanished";
      parts.unshift(bytes);
      have += bytes.byteLength;
    }
    const joined = concatBytes(parts);
    return joined.slice(Math.max(0, joined.byteLength - range.tail));
  }
  const end = range.length === undefined ? Infinity : range.offset + range.length;
  let position = 0;
  for (const segment of segments) {
    if (position >= end) break;
    const bytes = await storage.read(segment);
    if (bytes === undefined) return "vanished";
    const start = position;
    position += bytes.byteLength;
    if (position <= range.offset) continue;
    parts.push(bytes.slice(Math.max(0, range.offset - start), Math.max(0, end - start)));
  }
  return concatBytes(parts);
}

/**
 * Reads a range of a log, whether the run is live (segments) or finished (one object). A live
 * log on a storage with `append`, or a finished one, is one object read with `readRange`.
 *
 * @param storage The storage.
 * @param logKey The log's key.
 * @param range What to read; the whole log is `{ offset: 0 }`.
 * @returns The bytes, or `undefined` when neither the log nor any segment exists.
 */
export async function readLogRange(
  storage: RunStorage,
  logKey: string,
  range: LogRange,
): Promise<Uint8Array | undefined> {
  const readWhole = () =>
    "tail" in range
      ? readKeyTail(storage, logKey, range.tail)
      : readKeyRange(storage, logKey, range);
  // Twice at most: once the run ends the whole log is written at its key before the segments
  // are deleted, so a segment vanishing mid-read, or none left, means "read the key again".
  for (let attempt = 0; attempt < 2; attempt++) {
    const whole = await readWhole();
    if (whole !== undefined) return whole;
    const segments = await readSegmentsRange(storage, logKey, range);
    if (segments instanceof Uint8Array) return segments;
    if (segments === undefined && attempt === 0) {
      // No key and no segment: a run that printed nothing yet, or one whose log was composed
      // between the two reads. One more read of the key tells.
      return await readWhole();
    }
  }
  return await readWhole();
}
