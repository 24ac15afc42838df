// Log segments on storages without native append: listing them, composing a log from them into
// one object at its layout key, and removing them. Shared by the writer's close and the reaper.

import type { RunStorage } from "../storage/types.ts";
import { concatBytes } from "./bytes.ts";
import { StorageError } from "./errors.ts";
import { segmentPrefix } from "./layout.ts";

const SEGMENT_NAME = /^\d{10}$/;

/**
 * The index of a segment key (`<log>.segments/0000000042` → 42), or `undefined` for a key
 * that is no segment.
 *
 * @param logKey The log's layout key.
 * @param key A listed key.
 * @returns The index, from 1.
 */
export function segmentIndex(logKey: string, key: string): number | undefined {
  const prefix = segmentPrefix(logKey);
  if (!key.startsWith(prefix)) return undefined;
  const name = key.slice(prefix.length);
  return SEGMENT_NAME.test(name) ? Number(name) : undefined;
}

/**
 * The segment keys of a log, in order (their names are zero-padded indexes, so byte order is
 * numeric order), only those after `afterKey` when given. The storage's `startAfter` hint makes
 * that cost what is new on S3; the filter here keeps it right on adapters that ignore the hint.
 *
 * @param storage Where the log lives.
 * @param logKey The log's layout key.
 * @param afterKey The last segment key already seen.
 * @returns Segment keys, first to last.
 */
export async function listSegments(
  storage: RunStorage,
  logKey: string,
  afterKey?: string,
): Promise<string[]> {
  const keys: string[] = [];
  const options = afterKey === undefined ? undefined : { startAfter: afterKey };
  for await (const key of storage.list(segmentPrefix(logKey), options)) {
    if (segmentIndex(logKey, key) === undefined) continue;
    if (afterKey === undefined || key > afterKey) keys.push(key);
  }
  return keys.sort();
}

async function* readAll(
  storage: RunStorage,
  segments: readonly string[],
  extra: Uint8Array | undefined,
): AsyncIterable<Uint8Array> {
  for (const segment of segments) {
    const data = await storage.read(segment);
    if (data === undefined) {
      throw new StorageError("Log segment is missing", {
        adapter: storage.name,
        operation: "read",
        key: segment,
      });
    }
    yield data;
  }
  if (extra !== undefined && extra.byteLength > 0) yield extra;
}

/**
 * Writes a log whole at `logKey` from its segments, followed by `extra`, holding at most one
 * segment in memory when the storage can write a stream. The write is atomic: the log appears
 * whole or not at all, so a crash here leaves the segments as they were.
 *
 * @param storage Where the log lives.
 * @param logKey The log's layout key.
 * @param segments The segment keys, in order.
 * @param options `size`: the total when known (lets S3 pick one PUT); `extra`: bytes appended.
 */
export async function composeLog(
  storage: RunStorage,
  logKey: string,
  segments: readonly string[],
  options: { size?: number; extra?: Uint8Array } = {},
): Promise<void> {
  if (segments.length === 0) {
    await storage.write(logKey, options.extra ?? new Uint8Array(0));
    return;
  }
  if (storage.writeStream) {
    const size = options.size === undefined
      ? undefined
      : options.size + (options.extra?.byteLength ?? 0);
    await storage.writeStream(logKey, readAll(storage, segments, options.extra), { size });
    return;
  }
  const parts: Uint8Array[] = [];
  for await (const part of readAll(storage, segments, options.extra)) parts.push(part);
  await storage.write(logKey, concatBytes(parts));
}

/**
 * Deletes keys, many at once where the storage can.
 *
 * @param storage The storage.
 * @param keys Keys to delete.
 */
export async function deleteKeys(storage: RunStorage, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  if (storage.deleteMany) await storage.deleteMany(keys);
  else await Promise.all(keys.map((key) => storage.delete(key)));
}
