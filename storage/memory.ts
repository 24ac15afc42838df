// In-memory storage: for tests and short-lived runs. No disk, no network, every capability.

import { concatBytes, encodeText } from "../core/bytes.ts";
import { StorageError } from "../core/errors.ts";
import { assertValidKey, assertValidRange } from "./keys.ts";
import type { RunStorage } from "./types.ts";

interface Entry {
  chunks: Uint8Array[];
  size: number;
  etag: string;
  modifiedAt: Date;
}

/**
 * Creates a storage that keeps every key in memory. Appends are kept as chunks and joined on
 * read, so appending a large log stays linear. Offers `append`, `replace` (with etags),
 * `writeStream`, `deleteMany`, `stat`, `readRange` and `listPrefixes`.
 *
 * @returns The storage; `locate(key)` is `memory://<key>`.
 *
 * @example
 * ```ts
 * import { createMemoryStorage } from "./memory.ts";
 * const storage = createMemoryStorage();
 * await storage.write("a/b.txt", "hello");
 * console.log(new TextDecoder().decode(await storage.read("a/b.txt"))); // "hello"
 * ```
 */
export function createMemoryStorage(): RunStorage {
  const entries = new Map<string, Entry>();
  let version = 0;
  const name = "memory";
  const toBytes = (data: Uint8Array | string) =>
    typeof data === "string" ? encodeText(data) : data.slice();
  const put = (key: string, data: Uint8Array) => {
    const etag = `m${++version}`;
    entries.set(key, { chunks: [data], size: data.byteLength, etag, modifiedAt: new Date() });
    return { etag };
  };

  return {
    name,
    async read(key) {
      assertValidKey(name, "read", key);
      const entry = entries.get(key);
      if (entry === undefined) return undefined;
      if (entry.chunks.length > 1) entry.chunks = [concatBytes(entry.chunks, entry.size)];
      return entry.chunks[0].slice();
    },
    async readRange(key, range) {
      assertValidKey(name, "readRange", key);
      assertValidRange(range);
      const entry = entries.get(key);
      if (entry === undefined) return undefined;
      if (entry.chunks.length > 1) entry.chunks = [concatBytes(entry.chunks, entry.size)];
      const end = range.length === undefined ? entry.size : range.offset + range.length;
      return entry.chunks[0].slice(range.offset, end);
    },
    async write(key, data, options) {
      assertValidKey(name, "write", key);
      if (options?.ifNoneMatch === "*" && entries.has(key)) {
        throw new StorageError("Key already exists", {
          adapter: name,
          operation: "write",
          key,
          code: "precondition_failed",
        });
      }
      return put(key, toBytes(data));
    },
    async *list(prefix, options) {
      assertValidKey(name, "list", prefix, true);
      const after = options?.startAfter;
      for (const key of [...entries.keys()]) {
        if (key.startsWith(prefix) && (after === undefined || key > after)) yield key;
      }
    },
    async *listPrefixes(prefix, options) {
      assertValidKey(name, "listPrefixes", prefix, true);
      const found = new Set<string>();
      for (const key of entries.keys()) {
        if (!key.startsWith(prefix)) continue;
        const slash = key.indexOf("/", prefix.length);
        if (slash > prefix.length) found.add(key.slice(0, slash + 1));
      }
      const after = options?.startAfter;
      for (const folder of [...found].sort()) {
        if (after === undefined || folder > after) yield folder;
      }
    },
    async delete(key) {
      assertValidKey(name, "delete", key);
      entries.delete(key);
    },
    locate(key) {
      return `memory://${key}`;
    },
    async stat(key) {
      assertValidKey(name, "stat", key);
      const entry = entries.get(key);
      if (entry === undefined) return undefined;
      return { size: entry.size, etag: entry.etag, modifiedAt: entry.modifiedAt };
    },
    async append(key, data) {
      assertValidKey(name, "append", key);
      const entry = entries.get(key);
      if (entry === undefined) put(key, data.slice());
      else {
        entry.chunks.push(data.slice());
        entry.size += data.byteLength;
        entry.etag = `m${++version}`;
        entry.modifiedAt = new Date();
      }
    },
    async replace(key, data, options) {
      assertValidKey(name, "replace", key);
      const entry = entries.get(key);
      if (entry === undefined || entry.etag !== options.ifMatch) {
        throw new StorageError("Key changed since it was read", {
          adapter: name,
          operation: "replace",
          key,
          code: "precondition_failed",
        });
      }
      return put(key, toBytes(data));
    },
    async writeStream(key, source) {
      assertValidKey(name, "writeStream", key);
      const parts: Uint8Array[] = [];
      for await (const part of source) parts.push(part.slice());
      return put(key, concatBytes(parts));
    },
    async deleteMany(keys) {
      for (const key of keys) assertValidKey(name, "delete", key);
      for (const key of keys) entries.delete(key);
    },
  };
}
