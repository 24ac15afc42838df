// The storage interface every adapter implements: a small required part and optional capabilities.

/** Options of {@linkcode RunStorage.write}. */
export interface StorageWriteOptions {
  /**
   * `"*"` makes the write create-only: when the key exists the write rejects with a
   * `StorageError` whose `code` is `"precondition_failed"` and the stored bytes are untouched.
   */
  ifNoneMatch?: "*";
}

/** Options of {@linkcode RunStorage.replace}. */
export interface StorageReplaceOptions {
  /** The version tag the key must still have (as returned by a previous write); bare, unquoted. */
  ifMatch: string;
}

/** What a write reports back. Adapters without versioning may return nothing. */
export interface StorageWriteResult {
  /** Version tag of the bytes just written, usable with {@linkcode RunStorage.replace}. */
  etag?: string;
}

/** Options of {@linkcode RunStorage.list}. */
export interface StorageListOptions {
  /**
   * Only keys that sort after this one (byte order). Adapters that can skip ahead (S3's
   * `start-after`) do so; the core filters again, so an adapter may ignore it.
   */
  startAfter?: string;
}

/** What {@linkcode RunStorage.stat} reports about a key. */
export interface StorageStat {
  /** Size in bytes. */
  size: number;
  /** Version tag of the current bytes, usable with {@linkcode RunStorage.replace}. */
  etag?: string;
  /** When the key was last written, by the storage's clock (file mtime, `Last-Modified`). */
  modifiedAt?: Date;
}

/** A byte range of {@linkcode RunStorage.readRange}. */
export interface StorageRange {
  /** First byte, from 0. */
  offset: number;
  /** Bytes to read at most; to the end when omitted. */
  length?: number;
}

/** Options of {@linkcode RunStorage.writeStream}. */
export interface StorageWriteStreamOptions {
  /** Total byte length when known in advance; lets adapters choose a single request. */
  size?: number;
}

/**
 * Where the runner keeps a run's bytes.
 *
 * Keys are `/`-separated relative paths (`runs/task-1/run-1/meta.json`); adapters refuse keys
 * with empty, `.` or `..` segments, a leading `/`, `\` or control characters. The required
 * part is all a backend needs; the optional members are capabilities the core detects by
 * their presence (never by `name`) and uses when offered.
 *
 * @example A minimal custom storage over a Map
 * ```ts
 * import type { RunStorage } from "./types.ts";
 * const map = new Map<string, Uint8Array>();
 * const storage: RunStorage = {
 *   name: "map",
 *   read: (key) => Promise.resolve(map.get(key)),
 *   async write(key, data, options) {
 *     if (options?.ifNoneMatch === "*" && map.has(key)) throw new Error("exists");
 *     map.set(key, typeof data === "string" ? new TextEncoder().encode(data) : data);
 *   },
 *   async *list(prefix) { for (const key of map.keys()) if (key.startsWith(prefix)) yield key; },
 *   delete: (key) => { map.delete(key); return Promise.resolve(); },
 *   locate: (key) => `map://${key}`,
 * };
 * ```
 */
export interface RunStorage {
  /** Short adapter name used in errors (`memory`, `fs`, `s3`, ...). */
  readonly name: string;

  /** Reads a key's bytes; resolves `undefined` when the key does not exist. */
  read(key: string): Promise<Uint8Array | undefined>;

  /**
   * Writes a key's bytes whole. Readers never see a half-written value: adapters replace
   * atomically (rename on disk, single PUT on S3). With `ifNoneMatch: "*"` the write is
   * create-only and rejects with `StorageError` code `"precondition_failed"` if the key exists.
   */
  write(
    key: string,
    data: Uint8Array | string,
    options?: StorageWriteOptions,
  ): Promise<StorageWriteResult | void>;

  /**
   * Lists every key starting with `prefix` (not only direct children), in any order.
   * `options.startAfter` is a hint an adapter may ignore (the core filters again).
   */
  list(prefix: string, options?: StorageListOptions): AsyncIterable<string>;

  /** Deletes a key; deleting a missing key succeeds. */
  delete(key: string): Promise<void>;

  /** The user-facing location of a key: a file path, `s3://bucket/key`, `memory://key`. */
  locate(key: string): string;

  /**
   * Capability: appends bytes to a key, creating it when missing. Storages that offer it get
   * logs appended in place; others get logs as segment objects composed when the run ends.
   */
  append?(key: string, data: Uint8Array): Promise<void>;

  /**
   * Capability: appends several byte arrays in order, as one append, without joining them first
   * (a vectored write). The runner uses it over `append` for logs when offered.
   */
  appendParts?(key: string, parts: readonly Uint8Array[]): Promise<void>;

  /**
   * Capability: replaces a key only while it still has version `ifMatch`; otherwise rejects
   * with `StorageError` code `"precondition_failed"`. Lets the runner fence `state.json`
   * against a second writer.
   */
  replace?(
    key: string,
    data: Uint8Array | string,
    options: StorageReplaceOptions,
  ): Promise<StorageWriteResult>;

  /**
   * Capability: writes a key from a stream of chunks without holding it all in memory
   * (S3 multipart upload). The value appears whole or not at all.
   */
  writeStream?(
    key: string,
    source: AsyncIterable<Uint8Array>,
    options?: StorageWriteStreamOptions,
  ): Promise<StorageWriteResult | void>;

  /**
   * Capability: the size, version tag and modification time of a key, or `undefined` when it
   * does not exist. A process other than the writer needs the version tag to replace a record
   * conditionally (a reaper fencing `state.json`); a storage without `stat` and `replace` cannot
   * be fenced.
   */
  stat?(key: string): Promise<StorageStat | undefined>;

  /**
   * Capability: reads part of a key's bytes; `undefined` when the key does not exist. A range
   * past the end yields the bytes that exist (possibly none). Lets a follower read only what is
   * new, and a tail read cost the tail, not the log.
   */
  readRange?(key: string, range: StorageRange): Promise<Uint8Array | undefined>;

  /**
   * Capability: the distinct "folders" right under `prefix` (which is `""` or ends in `/`):
   * `prefix + name + "/"` for every `name` such that some key starts with it, each once, in
   * byte order, only those after `options.startAfter` when given. Lets a listing of runs cost
   * one entry per run instead of one per key (S3 `delimiter=/`). Without it the core lists
   * every key under `prefix`.
   */
  listPrefixes?(prefix: string, options?: StorageListOptions): AsyncIterable<string>;

  /** Capability: deletes many keys at once (S3 DeleteObjects). */
  deleteMany?(keys: readonly string[]): Promise<void>;

  /** Capability: releases sockets, timers or handles held by the adapter. */
  close?(): Promise<void>;
}
