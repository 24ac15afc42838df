// The batched write path of one run: buffers logs, flushes on an interval and on size, refreshes
// state.json on the interval and on a heartbeat that never stops while the writer lives, and
// composes log segments on storages without native append.
//
// Round trips: storage calls that do not depend on each other go out together (a flush writes
// its log segments at once; checkpoints and artifacts are written as soon as they are made, beside
// the logs), and a run that ends before its first interval writes nothing between meta.json and
// its close. Crash consistency: state.json only ever describes stored data (lastEventSeq, byte
// counts, checkpointSeq), output is stored before the lifecycle log that closes it, and the
// terminal state is written by close() last, once every other record of the run is stored.

import { isPreconditionFailed, RunConflictError } from "./errors.ts";
import { concatBytes, encodePartList } from "./bytes.ts";
import { logKey, segmentKey, type StoredLog } from "./layout.ts";
import { composeLog, deleteKeys } from "./segments.ts";
import type { RunStorage } from "../storage/types.ts";
import type {
  OutputIndexEntry,
  RunKeys,
  RunStatePatch,
  RunStateSnapshot,
  StreamLogChannel,
  WorkerLogChannel,
} from "./types.ts";

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
  /** Whether the log exists at its key (append storages: appended to at least once). */
  exists: boolean;
  /**
   * The bytes of this log's segments, kept while the run's kept bytes stay under
   * RETAIN_BYTES, so closing writes the log whole from memory instead of reading it back.
   */
  retained: Uint8Array[] | undefined;
  retainedBytes: number;
}

/** Segment bytes kept in memory, all logs together, to compose small logs without reading. */
const RETAIN_BYTES = 4 * 1024 * 1024;

/** Longest output index entry, in bytes: a reader holds at most this much of one in memory. */
export const MAX_INDEX_ENTRY_BYTES = 1024 * 1024;

// Output (and its index) before the lifecycle log: a terminal event found in worker.log means the
// output it closes is stored and indexed too (the reaper relies on it to roll a run forward).
const OUTPUT_LOGS: readonly StoredLog[] = ["stdout", "stderr", "index"];
const LOGS: readonly StoredLog[] = ["stdout", "stderr", "index", "worker"];

/**
 * One index line, keys in the documented order (every value is a number or an ASCII word).
 * Internal: the writer's and the reaper's.
 */
export function indexLine(entry: OutputIndexEntry): string {
  const { seq, lastSeq, stream, offset, length, at } = entry;
  const range = lastSeq === undefined ? "" : `"lastSeq":${lastSeq},`;
  return `{"seq":${seq},${range}"stream":"${stream}","offset":${offset},"length":${length},"at":"${at}"}\n`;
}

/**
 * The entries indexing `length` bytes of one chunk from `offset`: as many as entries of at most
 * MAX_INDEX_ENTRY_BYTES take, all with the chunk's sequence number. Internal: the writer's and
 * the reaper's.
 */
export function* indexEntries(
  seq: number,
  stream: StreamLogChannel,
  offset: number,
  length: number,
  at: string,
): Generator<OutputIndexEntry> {
  const end = offset + length;
  for (let start = offset; start < end; start += MAX_INDEX_ENTRY_BYTES) {
    yield { seq, stream, offset: start, length: Math.min(MAX_INDEX_ENTRY_BYTES, end - start), at };
  }
}

/** ISO 8601 of epoch ms, remembering the last one (chunks printed in the same ms share it). */
function isoTime(): (ms: number) => string {
  let lastMs = NaN;
  let lastIso = "";
  return (ms) => ms === lastMs ? lastIso : (lastMs = ms, lastIso = new Date(ms).toISOString());
}

/** Internal: the write path of one run. */
export interface RunWriter {
  /**
   * Buffers log bytes; returns a promise when the buffer is over its high-water mark. Output
   * bytes carry the sequence number of the worker chunk they belong to, for the output index.
   */
  push(
    channel: WorkerLogChannel,
    chunk: string | Uint8Array,
    byteLength: number,
    seq?: number,
  ): void | Promise<void>;
  /** Runs a storage operation in the run's log queue (after the flushes queued before it). */
  enqueue<T>(operation: () => Promise<T>): Promise<T>;
  /**
   * Writes a record whole (counted) at once, beside the log queue; `onStored` runs as soon as
   * it is stored (before any later state write can see the run). close() waits for it.
   */
  writeRecord(key: string, data: string | Uint8Array, onStored?: () => void): Promise<void>;
  /** Stores buffered logs and records written so far, then refreshes state.json. */
  flush(): Promise<void>;
  /** Starts the interval/heartbeat timer, and the first state.json write when none was made. */
  start(): void;
  /**
   * Stores everything buffered and every record in flight, writes segmented logs whole at their
   * keys (segments deleted), then writes the terminal state (`final` over the live state): the
   * run's commit point.
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
  /**
   * Creates meta.json (create-only): the run's fence. state.json (create-only too) follows with
   * start() or the first flush.
   */
  create(meta: string): Promise<void>;
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
    exists: false,
    retained: [],
    retainedBytes: 0,
  });
  const pending: Record<StoredLog, Pending> = {
    worker: newPending(),
    stdout: newPending(),
    stderr: newPending(),
    index: newPending(),
  };
  // The output index: the entry still growing (same stream, consecutive sequence numbers), and
  // the bytes handed to each stream so far (where the next entry of that stream starts).
  let openEntry: OutputIndexEntry | undefined;
  const iso = isoTime();
  const indexed: Record<StreamLogChannel, number> = { stdout: 0, stderr: 0 };
  const persisted: PersistedProgress = { seq: 0, stdoutBytes: 0, stderrBytes: 0 };
  let retainedTotal = 0;
  let pendingBytes = 0;
  let drainWaiters: (() => void)[] = [];
  let writes = 0;
  let queue: Promise<unknown> = Promise.resolve();
  // Records (checkpoints, artifacts) in flight: they go out at once, beside the log queue.
  const records = new Set<Promise<void>>();
  // State writes are chained on their own, so a heartbeat can go out while the queue is busy
  // with a long flush or with composing logs.
  let stateChain: Promise<unknown> = Promise.resolve();
  let stateCreated = false;
  let initialStateQueued = false;
  let stateEtag: string | undefined;
  let lastStateWrite = 0;
  // What the last state write claimed; the interval refreshes state.json when it moved.
  let stateClaim = "";
  let timer: ReturnType<typeof setInterval> | undefined;
  let closing = false;
  let committed = false;
  // A flush that is queued but has not started yet: later calls share it, since it will still
  // take everything buffered when it starts.
  let queuedFlush: { promise: Promise<void>; state: boolean } | undefined;
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

  function progressClaim(): string {
    return `${persisted.seq}/${persisted.stdoutBytes}/${persisted.stderrBytes}`;
  }

  /** Writes state.json from what is stored; serialized with other state writes. */
  function writeState(final?: RunStatePatch): Promise<void> {
    const next = stateChain.then(async () => {
      if (failed !== undefined) throw failed;
      if (committed) return;
      const claim = progressClaim();
      const body = JSON.stringify(snapshot({ ...persisted }, final), null, 2) + "\n";
      const result = await conflictOnPrecondition(
        () =>
          !stateCreated
            // The first state.json is create-only too: one already there despite meta.json (a
            // reaper that closed a run it found without state, a backend that lost track of a
            // retried create) is a conflict, never an overwrite.
            ? storage.write(keys.state, body, { ifNoneMatch: "*" })
            : stateEtag !== undefined && storage.replace
            ? storage.replace(keys.state, body, { ifMatch: stateEtag })
            : storage.write(keys.state, body),
        `State of run '${ids.runId}' of task '${ids.taskId}' was replaced by another writer ` +
          "(was the run reaped?)",
      );
      stateCreated = true;
      stateEtag = result?.etag ?? undefined;
      stateClaim = claim;
      lastStateWrite = Date.now();
      if (final !== undefined) committed = true;
    });
    stateChain = next.catch(() => {});
    return next.catch((error) => fail(error));
  }

  /** Moves the growing index entry into the index's buffer: nothing more joins it. */
  function sealEntry(): void {
    if (openEntry === undefined) return;
    const line = indexLine(openEntry);
    openEntry = undefined;
    const buffer = pending.index;
    buffer.parts.push(line);
    const size = line.length; // ASCII only
    buffer.bytes += size;
    pendingBytes += size;
  }

  /**
   * Indexes output bytes: they join the growing entry when they follow it in the same stream
   * and sequence (the same chunk, or the next one), else start an entry of their own.
   */
  function indexOutput(stream: StreamLogChannel, seq: number, length: number, at: number): void {
    let offset = indexed[stream];
    indexed[stream] += length;
    const last = openEntry;
    if (
      last !== undefined && last.stream === stream && last.offset + last.length === offset &&
      seq - (last.lastSeq ?? last.seq) <= 1 && seq >= (last.lastSeq ?? last.seq)
    ) {
      const room = MAX_INDEX_ENTRY_BYTES - last.length;
      const joined = Math.min(room, length);
      last.length += joined;
      if (seq !== last.seq && joined > 0) last.lastSeq = seq;
      offset += joined;
      length -= joined;
      if (length === 0) return;
    }
    // A chunk larger than an entry may be is indexed as several entries with its sequence.
    for (const entry of indexEntries(seq, stream, offset, length, iso(at))) {
      sealEntry();
      openEntry = entry;
    }
  }

  /** Takes every buffer at once: everything sequenced so far is in them. */
  function takeBuffers(): {
    seq: number;
    outputAt: number | undefined;
    data: Record<StoredLog, Uint8Array[] | undefined>;
  } {
    const seq = currentSeq();
    sealEntry();
    const data: Record<StoredLog, Uint8Array[] | undefined> = {
      stdout: undefined,
      stderr: undefined,
      index: undefined,
      worker: undefined,
    };
    let outputAt: number | undefined;
    for (const channel of LOGS) {
      const buffer = pending[channel];
      if (buffer.parts.length === 0) continue;
      const parts = encodePartList(buffer.parts);
      buffer.parts = [];
      pendingBytes -= buffer.bytes;
      buffer.bytes = 0;
      if (channel === "stdout" || channel === "stderr") {
        outputAt = Math.max(outputAt ?? 0, buffer.lastPushAt);
      }
      if (parts.length > 0) data[channel] = parts;
    }
    releaseProducers();
    return { seq, outputAt, data };
  }

  function recordProgress(seq: number, outputAt: number | undefined): void {
    persisted.seq = seq;
    persisted.stdoutBytes = pending.stdout.totalBytes;
    persisted.stderrBytes = pending.stderr.totalBytes;
    if (outputAt !== undefined) persisted.lastOutputAt = outputAt;
  }

  /**
   * Appends to a log (its parts as they are where the storage can write them so), or writes its
   * next segment (kept in memory while the budget allows).
   */
  async function storeChunk(channel: StoredLog, parts: Uint8Array[]): Promise<void> {
    const buffer = pending[channel];
    const key = logKey(keys, channel);
    let size = 0;
    for (const part of parts) size += part.byteLength;
    if (nativeAppend) {
      if (storage.appendParts && parts.length > 1) {
        await counted(() => storage.appendParts!(key, parts));
      } else {
        await counted(() => storage.append!(key, concatBytes(parts, size)));
      }
      buffer.exists = true;
    } else {
      const data = concatBytes(parts, size);
      const index = ++buffer.segments;
      if (buffer.retained !== undefined) {
        if (retainedTotal + data.byteLength <= RETAIN_BYTES) {
          buffer.retained.push(data);
          buffer.retainedBytes += data.byteLength;
          retainedTotal += data.byteLength;
        } else {
          retainedTotal -= buffer.retainedBytes;
          buffer.retained = undefined;
          buffer.retainedBytes = 0;
        }
      }
      await counted(() => storage.write(segmentKey(key, index), data));
    }
    buffer.totalBytes += size;
  }

  /** One flush's logs, all channels at once (each flush waits for the previous one). */
  async function writeLogs(): Promise<void> {
    const { seq, outputAt, data } = takeBuffers();
    await Promise.all(
      LOGS.map((channel) => {
        const bytes = data[channel];
        return bytes === undefined ? undefined : storeChunk(channel, bytes);
      }),
    );
    recordProgress(seq, outputAt);
  }

  function releaseProducers(): void {
    const waiters = drainWaiters;
    drainWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Waits for the records in flight (those started so far). */
  async function settleRecords(): Promise<void> {
    while (records.size > 0) await Promise.all([...records]);
  }

  /**
   * Queues a flush of the logs; `state` also refreshes state.json afterwards (the interval and
   * explicit flushes do; a flush triggered by size does not, the interval covers it).
   */
  function queueFlush(state: boolean): Promise<void> {
    if (queuedFlush) {
      queuedFlush.state ||= state;
      return queuedFlush.promise;
    }
    inFlight++;
    const entry = { promise: Promise.resolve(), state };
    entry.promise = enqueue(async () => {
      queuedFlush = undefined;
      await writeLogs();
      if (entry.state) await writeState();
    }).finally(() => {
      inFlight--;
    });
    queuedFlush = entry;
    return entry.promise;
  }

  async function flush(): Promise<void> {
    await Promise.all([queueFlush(false), settleRecords()]);
    await writeState();
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

  /** Writes a log whole at its key: its last bytes, after its segments (kept or read back). */
  async function storeWhole(channel: StoredLog, last: Uint8Array[] | undefined) {
    const buffer = pending[channel];
    const key = logKey(keys, channel);
    const extra = concatBytes(last ?? [new Uint8Array(0)]);
    if (buffer.retained !== undefined) {
      await counted(() => storage.write(key, concatBytes([...buffer.retained!, extra])));
    } else {
      const segments = segmentKeys(channel);
      try {
        await counted(() => composeLog(storage, key, segments, { size: buffer.totalBytes, extra }));
      } catch (error) {
        await fencedOut(error);
      }
    }
    buffer.totalBytes += extra.byteLength;
  }

  function segmentKeys(channel: StoredLog): string[] {
    const key = logKey(keys, channel);
    return Array.from({ length: pending[channel].segments }, (_, i) => segmentKey(key, i + 1));
  }

  /**
   * Whether a log is stored at the end: the three logs always (appending nothing still creates a
   * log that was never written), the output index only for a run that printed something.
   */
  function kept(channel: StoredLog, data: Uint8Array[] | undefined): boolean {
    const buffer = pending[channel];
    return channel !== "index" || data !== undefined || buffer.exists || buffer.segments > 0;
  }

  /**
   * The last logs, in waves: output and its index (with the records in flight), then the
   * lifecycle log (with the output's segments deleted), then the lifecycle log's segments
   * deleted.
   */
  async function storeLast(): Promise<void> {
    const { seq, outputAt, data } = takeBuffers();
    const outputs = OUTPUT_LOGS.filter((channel) => kept(channel, data[channel]));
    if (nativeAppend) {
      const append = (channel: StoredLog) =>
        data[channel] !== undefined || !pending[channel].exists
          ? storeChunk(channel, data[channel] ?? [new Uint8Array(0)])
          : undefined;
      await Promise.all([...outputs.map(append), settleRecords()]);
      await append("worker");
    } else {
      await Promise.all([
        ...outputs.map((channel) => storeWhole(channel, data[channel])),
        settleRecords(),
      ]);
      await Promise.all([
        storeWhole("worker", data.worker),
        deleteKeys(storage, outputs.flatMap(segmentKeys)),
      ]);
      await deleteKeys(storage, segmentKeys("worker"));
    }
    recordProgress(seq, outputAt);
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
    // The first state.json (claiming nothing stored yet, with the status the run has now) goes
    // out at once, beside whatever the run writes next: nobody waits for it, and every later
    // state write is chained after it.
    if (!stateCreated && !initialStateQueued) {
      initialStateQueued = true;
      writeState().catch(() => {});
    }
    timer = setInterval(() => {
      if (failed !== undefined) return;
      if (inFlight > 0 || closing) {
        // The queue is busy (a long run of size-triggered flushes, or composing at close):
        // state.json goes out on its own chain, so a live writer never looks dead and a reader
        // sees the progress of the interval.
        if (heartbeatDue() || (!closing && progressClaim() !== stateClaim)) {
          writeState().catch(() => {});
        }
        return;
      }
      if (pendingBytes > 0) queueFlush(true).catch(() => {});
      else if (heartbeatDue() || progressClaim() !== stateClaim) writeState().catch(() => {});
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
    push(channel, chunk, byteLength, seq) {
      const buffer = pending[channel];
      buffer.parts.push(chunk);
      buffer.bytes += byteLength;
      buffer.lastPushAt = Date.now();
      if (channel !== "worker" && seq !== undefined && byteLength > 0) {
        indexOutput(channel, seq, byteLength, buffer.lastPushAt);
      }
      pendingBytes += byteLength;
      if (pendingBytes >= flushBytes && !closing) {
        const flushed = queueFlush(false);
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
    writeRecord(key, data, onStored) {
      const stored = Promise.resolve().then(async () => {
        if (failed !== undefined) throw failed;
        await counted(() => storage.write(key, data));
        onStored?.();
      }).catch((error) => fail(error));
      const tracked = stored.catch(() => {});
      records.add(tracked);
      void tracked.then(() => records.delete(tracked));
      return stored;
    },
    flush,
    start: startTimer,
    async close(final) {
      // The timer keeps beating while the last logs are stored and composed.
      closing = true;
      startTimer();
      inFlight++;
      try {
        await enqueue(storeLast);
      } finally {
        inFlight--;
      }
      if (failed !== undefined) throw failed;
      stopTimer();
      // The commit point: nothing of the run is written after this.
      await writeState(final);
    },
    abandon: stopTimer,
    async create(meta) {
      await enqueue(async () => {
        await conflictOnPrecondition(() => storage.write(keys.meta, meta, { ifNoneMatch: "*" }));
      });
    },
  };
}
