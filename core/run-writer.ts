// The batched, serialized write path of one run: buffers logs, flushes on an interval, on size
// and at the end, refreshes state.json at each flush, and composes log segments on storages
// without native append.

import { isPreconditionFailed, RunConflictError, StorageError } from "./errors.ts";
import { encodeParts } from "./bytes.ts";
import { logKey, segmentKey } from "./layout.ts";
import type { RunStorage } from "../storage/types.ts";
import type { RunKeys, RunStateSnapshot, WorkerLogChannel } from "./types.ts";

/** Tuning of the write path. */
export interface RunWriterOptions {
  /** Flush interval in ms; a live reader sees output within about this long. Default 1000. */
  flushIntervalMs?: number;
  /** Buffered bytes (all logs) that trigger a flush before the interval. Default 1 MiB. */
  flushBytes?: number;
  /** `state.json` is rewritten at least this often while the run is live. Default 2000. */
  heartbeatMs?: number;
}

interface Pending {
  parts: (string | Uint8Array)[];
  bytes: number;
  segments: number;
  totalBytes: number;
}

const CHANNELS: readonly WorkerLogChannel[] = ["worker", "stdout", "stderr"];

/** Internal: the write path of one run. */
export interface RunWriter {
  /** Buffers log bytes; returns a promise when the buffer is over its high-water mark. */
  push(
    channel: WorkerLogChannel,
    chunk: string | Uint8Array,
    byteLength: number,
  ): void | Promise<void>;
  /** Runs a storage operation in the run's write queue. */
  enqueue<T>(operation: () => Promise<T>): Promise<T>;
  /** Writes a record whole (counted), in the queue. */
  writeRecord(key: string, data: string | Uint8Array): Promise<void>;
  /** Flushes buffered logs and refreshes state.json. */
  flush(): Promise<void>;
  /** Starts the interval/heartbeat timer. */
  start(): void;
  /** Stops the timer, flushes, composes segments; the final state is written by `flush`. */
  close(): Promise<void>;
  /** Stops the timer without writing anything more. */
  abandon(): void;
  /** Storage writes made so far. */
  readonly writes: number;
  /** The first storage failure, once one happened. */
  readonly failure: Promise<never>;
  /** Creates meta.json (create-only) and the initial state.json. */
  create(meta: string, state: RunStateSnapshot): Promise<void>;
}

/**
 * Creates the write path of one run.
 *
 * @param storage Where the run lives.
 * @param keys The run's keys.
 * @param snapshot Returns the state to persist, given the last sequence whose data is stored.
 * @param ids Task and run ids, for conflict errors.
 * @param options Tuning.
 * @returns The writer.
 */
export function createRunWriter(
  storage: RunStorage,
  keys: RunKeys,
  snapshot: (persistedSeq: number) => RunStateSnapshot,
  currentSeq: () => number,
  ids: { taskId: string; runId: string },
  options: RunWriterOptions = {},
): RunWriter {
  const flushIntervalMs = options.flushIntervalMs ?? 1000;
  const flushBytes = options.flushBytes ?? 1024 * 1024;
  const heartbeatMs = options.heartbeatMs ?? 2000;
  const nativeAppend = typeof storage.append === "function";
  // One timer serves both the flush interval and the heartbeat.
  const tickMs = Math.min(flushIntervalMs, heartbeatMs);
  const pending: Record<WorkerLogChannel, Pending> = {
    worker: { parts: [], bytes: 0, segments: 0, totalBytes: 0 },
    stdout: { parts: [], bytes: 0, segments: 0, totalBytes: 0 },
    stderr: { parts: [], bytes: 0, segments: 0, totalBytes: 0 },
  };
  let pendingBytes = 0;
  let drainWaiters: (() => void)[] = [];
  let writes = 0;
  let queue: Promise<unknown> = Promise.resolve();
  let stateEtag: string | undefined;
  let lastStateWrite = 0;
  let timer: ReturnType<typeof setInterval> | undefined;
  // A flush that is queued but has not started yet: later calls share it, since it will still
  // take everything buffered when it starts.
  let queuedFlush: Promise<void> | undefined;
  let inFlight = 0;
  let failed: unknown;
  let rejectFailure!: (error: unknown) => void;
  const failure = new Promise<never>((_, reject) => (rejectFailure = reject));
  failure.catch(() => {}); // observed by the runner through race(); never an unhandled rejection

  function fail(error: unknown): never {
    if (failed === undefined) {
      failed = error;
      rejectFailure(error);
    }
    throw error;
  }

  function enqueue<T>(operation: () => Promise<T>): Promise<T> {
    const next = queue.then(() => {
      if (failed !== undefined) throw failed;
      return operation();
    });
    queue = next.catch(() => {});
    return next.catch((error) => fail(error));
  }

  async function counted<T>(operation: () => Promise<T>): Promise<T> {
    writes++;
    return await operation();
  }

  /** A counted write whose lost precondition means another run owns these keys. */
  async function conflictOnPrecondition<T>(
    operation: () => Promise<T>,
    message?: string,
  ): Promise<T> {
    try {
      return await counted(operation);
    } catch (error) {
      if (!isPreconditionFailed(error)) throw error;
      throw new RunConflictError(ids.taskId, ids.runId, { message, cause: error });
    }
  }

  async function writeState(): Promise<void> {
    const state = snapshot(persistedSeq);
    const body = JSON.stringify(state, null, 2) + "\n";
    const result = await conflictOnPrecondition(
      () =>
        stateEtag !== undefined && storage.replace
          ? storage.replace(keys.state, body, { ifMatch: stateEtag })
          : storage.write(keys.state, body),
      `State of run '${ids.runId}' of task '${ids.taskId}' was replaced by another writer`,
    );
    stateEtag = result?.etag ?? undefined;
    lastStateWrite = Date.now();
  }

  let persistedSeq = 0;

  async function writeLogs(): Promise<void> {
    // Take every buffer at once: everything sequenced so far is in them.
    const seqAtSwap = currentSeq();
    const taken: [WorkerLogChannel, Uint8Array][] = [];
    for (const channel of CHANNELS) {
      const buffer = pending[channel];
      if (buffer.parts.length === 0) continue;
      const data = encodeParts(buffer.parts);
      buffer.parts = [];
      pendingBytes -= buffer.bytes;
      buffer.bytes = 0;
      if (data.byteLength > 0) taken.push([channel, data]);
    }
    releaseProducers();
    for (const [channel, data] of taken) {
      const buffer = pending[channel];
      const key = logKey(keys, channel);
      if (nativeAppend) {
        await counted(() => storage.append!(key, data));
      } else {
        const index = buffer.segments + 1;
        await counted(() => storage.write(segmentKey(key, index), data));
        buffer.segments = index;
      }
      buffer.totalBytes += data.byteLength;
    }
    persistedSeq = seqAtSwap;
  }

  function releaseProducers(): void {
    const waiters = drainWaiters;
    drainWaiters = [];
    for (const resolve of waiters) resolve();
  }

  function flush(): Promise<void> {
    if (queuedFlush) return queuedFlush;
    inFlight++;
    const current = enqueue(async () => {
      queuedFlush = undefined;
      await writeLogs();
      await writeState();
    }).finally(() => {
      inFlight--;
    });
    queuedFlush = current;
    return current;
  }

  async function* readSegments(key: string, count: number): AsyncIterable<Uint8Array> {
    for (let index = 1; index <= count; index++) {
      const segment = segmentKey(key, index);
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
  }

  async function composeSegments(): Promise<void> {
    const obsolete: string[] = [];
    for (const channel of CHANNELS) {
      const buffer = pending[channel];
      const key = logKey(keys, channel);
      if (buffer.segments === 0) {
        await counted(() => storage.write(key, new Uint8Array(0)));
        continue;
      }
      if (storage.writeStream) {
        await counted(() =>
          storage.writeStream!(key, readSegments(key, buffer.segments), { size: buffer.totalBytes })
        );
      } else {
        const parts: Uint8Array[] = [];
        for await (const part of readSegments(key, buffer.segments)) parts.push(part);
        await counted(() => storage.write(key, encodeParts(parts)));
      }
      for (let index = 1; index <= buffer.segments; index++) obsolete.push(segmentKey(key, index));
    }
    if (obsolete.length === 0) return;
    if (storage.deleteMany) await storage.deleteMany(obsolete);
    else for (const key of obsolete) await storage.delete(key);
  }

  return {
    get writes() {
      return writes;
    },
    failure,
    push(channel, chunk, byteLength) {
      const buffer = pending[channel];
      buffer.parts.push(chunk);
      buffer.bytes += byteLength;
      pendingBytes += byteLength;
      if (pendingBytes >= flushBytes) {
        const flushed = flush();
        // Past twice the threshold the producer waits until a flush has taken the buffers (not
        // until it has written them), so reading and writing overlap and memory stays bounded
        // at about four thresholds: two being written, two filling.
        if (pendingBytes >= 2 * flushBytes) {
          return new Promise<void>((resolve) => {
            drainWaiters.push(resolve);
            flushed.catch(resolve);
          });
        }
      }
      return undefined;
    },
    enqueue,
    writeRecord(key, data) {
      return enqueue(() => counted(() => storage.write(key, data))).then(() => {});
    },
    flush,
    start() {
      if (timer !== undefined) return;
      timer = setInterval(() => {
        if (failed !== undefined || inFlight > 0) return;
        if (pendingBytes > 0 || Date.now() - lastStateWrite >= heartbeatMs - tickMs / 2) {
          flush().catch(() => {});
        }
      }, tickMs);
    },
    async close() {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      if (!nativeAppend) {
        await enqueue(async () => {
          await writeLogs();
          await composeSegments();
        });
      }
      await flush();
    },
    abandon() {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
    },
    async create(meta, state) {
      await enqueue(async () => {
        await conflictOnPrecondition(() => storage.write(keys.meta, meta, { ifNoneMatch: "*" }));
        // A state.json already there despite meta.json (e.g. a backend that lost track of a
        // retried create) is still a duplicate run, never an overwrite.
        const result = await conflictOnPrecondition(() =>
          storage.write(keys.state, JSON.stringify(state, null, 2) + "\n", { ifNoneMatch: "*" })
        );
        stateEtag = result?.etag ?? undefined;
        lastStateWrite = Date.now();
        if (nativeAppend) {
          for (const channel of CHANNELS) {
            await counted(() => storage.write(logKey(keys, channel), ""));
          }
        }
      });
    },
  };
}
