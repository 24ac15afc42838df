// The batched, serialized write path of one run: buffers logs, flushes on an interval, on size
// and at the end, refreshes state.json at each flush and on a heartbeat that never stops while
// the writer lives, and composes log segments on storages without native append.
//
// Crash consistency: state.json only ever describes stored data (lastEventSeq, byte counts), and
// the terminal state is written by close() last, once every other record of the run is stored.

import { isPreconditionFailed, RunConflictError } from "./errors.ts";
import { encodeParts } from "./bytes.ts";
import { logKey, segmentKey } from "./layout.ts";
import { composeLog, deleteKeys } from "./segments.ts";
import type { RunStorage } from "../storage/types.ts";
import type { RunKeys, RunStatePatch, RunStateSnapshot, WorkerLogChannel } from "./types.ts";

/** Tuning of the write path. */
export interface RunWriterOptions {
  /** Flush interval in ms; a live reader sees output within about this long. Default 1000. */
  flushIntervalMs?: number;
  /** Buffered bytes (all logs) that trigger a flush before the interval. Default 1 MiB. */
  flushBytes?: number;
  /** `state.json` is rewritten at least this often while the run is live. Default 2000. */
  heartbeatMs?: number;
}

/** What is stored, as of the last completed flush: what state.json may claim. */
export interface PersistedProgress {
  /** Highest sequence number whose entry is stored. */
  seq: number;
  /** Bytes stored per stream. */
  stdoutBytes: number;
  /** Bytes stored per stream. */
  stderrBytes: number;
  /** When the worker printed the last output that is stored (epoch ms), if it printed any. */
  lastOutputAt?: number;
}

interface Pending {
  parts: (string | Uint8Array)[];
  bytes: number;
  segments: number;
  totalBytes: number;
  lastPushAt: number;
}

// Output before the lifecycle log: a terminal event found in worker.log means the output it
// closes is stored too (the reaper relies on it to roll a finished run forward).
const CHANNELS: readonly WorkerLogChannel[] = ["stdout", "stderr", "worker"];

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
  /**
   * Stores everything buffered, composes segments into whole logs (segments deleted), then
   * writes the terminal state (`final` over the live state): the run's commit point.
   */
  close(final: RunStatePatch): Promise<void>;
  /** Stops the timer without writing anything more. */
  abandon(): void;
  /** Storage writes made so far. */
  readonly writes: number;
  /** What is stored so far. */
  readonly persisted: PersistedProgress;
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
 * @param snapshot Returns the state to persist, given what is stored (and, once, the terminal
 *   patch).
 * @param currentSeq The last sequence number handed out.
 * @param ids Task and run ids, for conflict errors.
 * @param options Tuning.
 * @returns The writer.
 */
export function createRunWriter(
  storage: RunStorage,
  keys: RunKeys,
  snapshot: (persisted: PersistedProgress, final?: RunStatePatch) => RunStateSnapshot,
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
  const newPending = (): Pending => ({
    parts: [],
    bytes: 0,
    segments: 0,
    totalBytes: 0,
    lastPushAt: 0,
  });
  const pending: Record<WorkerLogChannel, Pending> = {
    worker: newPending(),
    stdout: newPending(),
    stderr: newPending(),
  };
  const persisted: PersistedProgress = { seq: 0, stdoutBytes: 0, stderrBytes: 0 };
  let pendingBytes = 0;
  let drainWaiters: (() => void)[] = [];
  let writes = 0;
  let queue: Promise<unknown> = Promise.resolve();
  // State writes are chained on their own, so a heartbeat can go out while the queue is busy
  // with a long flush or with composing logs.
  let stateChain: Promise<unknown> = Promise.resolve();
  let stateEtag: string | undefined;
  let lastStateWrite = 0;
  let timer: ReturnType<typeof setInterval> | undefined;
  let committed = false;
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
      stopTimer();
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

  /** A counted write whose lost precondition means another run (or a reaper) owns these keys. */
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

  /** Writes state.json from what is stored; serialized with other state writes. */
  function writeState(final?: RunStatePatch): Promise<void> {
    const next = stateChain.then(async () => {
      if (failed !== undefined) throw failed;
      if (committed) return;
      const body = JSON.stringify(snapshot({ ...persisted }, final), null, 2) + "\n";
      const result = await conflictOnPrecondition(
        () =>
          stateEtag !== undefined && storage.replace
            ? storage.replace(keys.state, body, { ifMatch: stateEtag })
            : storage.write(keys.state, body),
        `State of run '${ids.runId}' of task '${ids.taskId}' was replaced by another writer ` +
          "(was the run reaped?)",
      );
      stateEtag = result?.etag ?? undefined;
      lastStateWrite = Date.now();
      if (final !== undefined) committed = true;
    });
    stateChain = next.catch(() => {});
    return next.catch((error) => fail(error));
  }

  async function writeLogs(): Promise<void> {
    // Take every buffer at once: everything sequenced so far is in them.
    const seqAtSwap = currentSeq();
    const taken: [WorkerLogChannel, Uint8Array][] = [];
    let outputAt: number | undefined;
    for (const channel of CHANNELS) {
      const buffer = pending[channel];
      if (buffer.parts.length === 0) continue;
      const data = encodeParts(buffer.parts);
      buffer.parts = [];
      pendingBytes -= buffer.bytes;
      buffer.bytes = 0;
      if (channel !== "worker") outputAt = Math.max(outputAt ?? 0, buffer.lastPushAt);
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
    persisted.seq = seqAtSwap;
    persisted.stdoutBytes = pending.stdout.totalBytes;
    persisted.stderrBytes = pending.stderr.totalBytes;
    if (outputAt !== undefined) persisted.lastOutputAt = outputAt;
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

  /**
   * After a failure while composing (a segment gone), tells whether a reaper took the run over:
   * then the failure is the fence, reported as such.
   */
  async function fencedOut(error: unknown): Promise<never> {
    if (stateEtag !== undefined && storage.stat) {
      const current = await storage.stat(keys.state).catch(() => undefined);
      if (current !== undefined && current.etag !== stateEtag) {
        throw new RunConflictError(ids.taskId, ids.runId, {
          message: `Run '${ids.runId}' of task '${ids.taskId}' was closed by another writer ` +
            "(was the run reaped?)",
          cause: error,
        });
      }
    }
    throw error;
  }

  /** Writes each segmented log whole at its key, then deletes the segments. */
  async function composeSegments(): Promise<void> {
    try {
      await composeAll();
    } catch (error) {
      await fencedOut(error);
    }
  }

  async function composeAll(): Promise<void> {
    const obsolete: string[] = [];
    for (const channel of CHANNELS) {
      const buffer = pending[channel];
      const key = logKey(keys, channel);
      const segments = Array.from({ length: buffer.segments }, (_, i) => segmentKey(key, i + 1));
      await counted(() => composeLog(storage, key, segments, { size: buffer.totalBytes }));
      obsolete.push(...segments);
    }
    await deleteKeys(storage, obsolete);
  }

  function heartbeatDue(): boolean {
    return Date.now() - lastStateWrite >= heartbeatMs - tickMs / 2;
  }

  function stopTimer(): void {
    if (timer !== undefined) clearInterval(timer);
    timer = undefined;
  }

  function startTimer(): void {
    if (timer !== undefined || committed) return;
    timer = setInterval(() => {
      if (failed !== undefined) return;
      if (inFlight > 0) {
        // The queue is busy (a slow flush, or composing at close): the heartbeat goes out on
        // its own so a live writer never looks dead.
        if (heartbeatDue()) writeState().catch(() => {});
        return;
      }
      if (pendingBytes > 0 || heartbeatDue()) flush().catch(() => {});
    }, tickMs);
  }

  return {
    get writes() {
      return writes;
    },
    get persisted() {
      return { ...persisted };
    },
    failure,
    push(channel, chunk, byteLength) {
      const buffer = pending[channel];
      buffer.parts.push(chunk);
      buffer.bytes += byteLength;
      buffer.lastPushAt = Date.now();
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
    start: startTimer,
    async close(final) {
      // The timer keeps beating while the last logs are stored and composed.
      startTimer();
      inFlight++;
      try {
        await enqueue(async () => {
          await writeLogs();
          if (!nativeAppend) await composeSegments();
        });
      } finally {
        inFlight--;
      }
      stopTimer();
      // The commit point: nothing of the run is written after this.
      await enqueue(() => writeState(final));
    },
    abandon: stopTimer,
    async create(meta, state) {
      await enqueue(async () => {
        await conflictOnPrecondition(() => storage.write(keys.meta, meta, { ifNoneMatch: "*" }));
        // A state.json already there despite meta.json (e.g. a backend that lost track of a
        // retried create, or a reaper that closed a run it found without state) is still a
        // conflict, never an overwrite.
        const result = await conflictOnPrecondition(() =>
          storage.write(keys.state, JSON.stringify(state, null, 2) + "\n", { ifNoneMatch: "*" })
        );
        stateEtag = result?.etag ?? undefined;
        lastStateWrite = Date.now();
        if (nativeAppend) {
          await Promise.all(
            CHANNELS.map((channel) => counted(() => storage.write(logKey(keys, channel), ""))),
          );
        }
      });
    },
  };
}
