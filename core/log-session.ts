// The in-memory log session: one sequence for events and chunks, exact counts, bounded tails.

import { concatBytes, encodeText } from "./bytes.ts";
import type {
  LocalRunLogContext,
  LocalRunLogSession,
  LocalRunLogSummary,
  LocalRunPaths,
  StreamChunkLogEntry,
  StreamChunkLogStream,
  StreamLogChannel,
  WorkerLifecycleEventInput,
  WorkerLifecycleLogEntry,
} from "./types.ts";

/** Chunks kept per stream tail unless configured otherwise. */
export const DEFAULT_TAIL_ENTRIES = 200;
/** Longest text kept for one chunk in a tail (the end of the chunk is kept). */
export const TAIL_CHUNK_CHARS = 4096;

const decoder = new TextDecoder();

interface TailSlot {
  seq: number;
  at: number;
  chunk: string | Uint8Array;
}

/** A stream whose tail is a ring buffer materialized on read. */
interface StreamState extends StreamChunkLogStream {
  /** Sequence number of the stream's last chunk (0 before the first). */
  lastSeq: number;
  push(seq: number, at: number, chunk: string | Uint8Array, byteLength: number): void;
  extend(bytes: Uint8Array): void;
}

/** The last TAIL_CHUNK_CHARS of `kept` followed by `added` (never a view of `added`). */
function appendKept(kept: string | Uint8Array, added: Uint8Array): Uint8Array {
  if (added.byteLength >= TAIL_CHUNK_CHARS) return added.slice(added.byteLength - TAIL_CHUNK_CHARS);
  const before = typeof kept === "string" ? encodeText(kept) : kept;
  const room = TAIL_CHUNK_CHARS - added.byteLength;
  const head = before.subarray(Math.max(0, before.byteLength - room));
  return concatBytes([head, added], head.byteLength + added.byteLength);
}

function createStream(
  channel: StreamLogChannel,
  filePath: string,
  context: LocalRunLogContext,
  capacity: number,
): StreamState {
  const ring: (TailSlot | undefined)[] = new Array(capacity);
  let next = 0;
  const stream = {
    channel,
    filePath,
    chunkCount: 0,
    byteCount: 0,
    droppedBytes: 0,
    lastSeq: 0,
    push(seq: number, at: number, chunk: string | Uint8Array, byteLength: number) {
      this.lastSeq = seq;
      this.chunkCount++;
      this.byteCount += byteLength;
      if (capacity === 0) return;
      const kept = chunk.length > TAIL_CHUNK_CHARS
        ? chunk.slice(chunk.length - TAIL_CHUNK_CHARS)
        : chunk;
      ring[next] = { seq, at, chunk: kept };
      next = (next + 1) % capacity;
    },
    extend(bytes: Uint8Array) {
      this.byteCount += bytes.byteLength;
      if (capacity === 0) return;
      const last = ring[(next + capacity - 1) % capacity];
      if (last !== undefined) last.chunk = appendKept(last.chunk, bytes);
    },
    get entries(): StreamChunkLogEntry[] {
      const out: StreamChunkLogEntry[] = [];
      for (let i = 0; i < capacity; i++) {
        const slot = ring[(next + i) % capacity];
        if (slot === undefined) continue;
        out.push({
          ...context,
          seq: slot.seq,
          channel,
          createdAt: new Date(slot.at).toISOString(),
          text: typeof slot.chunk === "string" ? slot.chunk : decoder.decode(slot.chunk),
        });
      }
      return out;
    },
  };
  return stream;
}

/** A log session plus the internal operations the runner uses. */
export interface RunLogSession extends LocalRunLogSession {
  /** stdout with its ring-buffer tail. */
  stdout: StreamState;
  /** stderr with its ring-buffer tail. */
  stderr: StreamState;
}

/**
 * Creates an empty session.
 *
 * @param paths Locations of the run's logs.
 * @param context Ids stamped on every entry.
 * @param tailEntries Chunks kept per stream tail.
 * @returns The session.
 */
export function createLocalRunLogSession(
  paths: LocalRunPaths,
  context: LocalRunLogContext,
  tailEntries: number = DEFAULT_TAIL_ENTRIES,
): RunLogSession {
  return {
    context,
    paths,
    nextSeq: 1,
    worker: { channel: "worker", filePath: paths.workerLogPath, entries: [] },
    stdout: createStream("stdout", paths.stdoutLogPath, context, tailEntries),
    stderr: createStream("stderr", paths.stderrLogPath, context, tailEntries),
  };
}

/**
 * Renders a lifecycle entry as one human-readable line:
 * `<createdAt> <LEVEL> <taskId>/<stepId>/<runId> #<seq> <type>: <message>`.
 */
export function renderLifecycleLine(entry: Omit<WorkerLifecycleLogEntry, "renderedLine">): string {
  const message = entry.message.replace(/[\r\n]+/g, " ");
  return `${entry.createdAt} ${entry.level.toUpperCase()} ${entry.taskId}/${entry.stepId}/${entry.runId} #${entry.seq} ${entry.type}: ${message}`;
}

/**
 * Sequences a lifecycle event and keeps it in the session.
 *
 * @param session The session.
 * @param input The event.
 * @returns The entry, with its sequence number and rendered line.
 */
export function recordLifecycleEvent(
  session: LocalRunLogSession,
  input: WorkerLifecycleEventInput,
): WorkerLifecycleLogEntry {
  const seq = session.nextSeq++;
  const base = {
    ...session.context,
    seq,
    channel: "worker" as const,
    eventId: `${session.context.runId}:${seq}`,
    type: input.type,
    level: input.level,
    createdAt: input.createdAt ?? new Date().toISOString(),
    message: input.message,
    data: input.data ?? {},
  };
  const entry: WorkerLifecycleLogEntry = { ...base, renderedLine: renderLifecycleLine(base) };
  session.worker.entries.push(entry);
  return entry;
}

/**
 * Sequences a stream chunk: counts it exactly and keeps it in the tail.
 *
 * @param session The session.
 * @param channel Which stream.
 * @param chunk The chunk as stored.
 * @param byteLength Its stored size in bytes.
 * @returns The chunk's sequence number.
 */
export function recordStreamChunk(
  session: RunLogSession,
  channel: StreamLogChannel,
  chunk: string | Uint8Array,
  byteLength: number,
): number {
  const seq = session.nextSeq++;
  session[channel].push(seq, Date.now(), chunk, byteLength);
  return seq;
}

/**
 * Adds bytes stored after the channel's last chunk was sequenced (held back by the redactor, or
 * the tail of a capped stream) to that chunk: counted exactly, and shown in the tail at that
 * chunk's place in the sequence, since the worker had printed them by then.
 *
 * @param session The session.
 * @param channel Which stream.
 * @param bytes The bytes as stored.
 */
export function extendLastStreamChunk(
  session: RunLogSession,
  channel: StreamLogChannel,
  bytes: Uint8Array,
): void {
  session[channel].extend(bytes);
}

/**
 * Counts of a session.
 *
 * @param session The session.
 * @returns Exact counts.
 */
export function summarizeLocalRunLogSession(session: LocalRunLogSession): LocalRunLogSummary {
  const lifecycleEventCount = session.worker.entries.length;
  return {
    totalEntries: lifecycleEventCount + session.stdout.chunkCount + session.stderr.chunkCount,
    lastSeq: session.nextSeq - 1,
    lifecycleEventCount,
    stdoutChunkCount: session.stdout.chunkCount,
    stderrChunkCount: session.stderr.chunkCount,
    stdoutBytes: session.stdout.byteCount,
    stderrBytes: session.stderr.byteCount,
  };
}
