// A run's output in sequence: stdout and stderr interleaved as the worker printed them (by the
// run's output index), optionally merged with the lifecycle events, read as stored or followed
// live. Every item carries a cursor to resume after it.

import type { RunStorage } from "../storage/types.ts";
import { concatBytes } from "./bytes.ts";
import { NotFoundError, RunStaleError } from "./errors.ts";
import { TERMINAL_EVENT_TYPES } from "./outcome.ts";
import { LogCursor, pollSchema, sleep } from "./follow.ts";
import { readLogRange } from "./log-range.ts";
import { keysOf, parseEventLine, readRunStatus, type RunRef } from "./read.ts";
import { parseOrThrow } from "./schemas.ts";
import type {
  OutputIndexEntry,
  RunKeys,
  StreamLogChannel,
  WorkerLifecycleLogEntry,
} from "./types.ts";
import { z } from "zod";

/** Bytes of stdout or stderr, in the run's sequence. */
export interface RunOutputChunk {
  /** Which stream. */
  channel: StreamLogChannel;
  /**
   * Sequence number of the worker chunk the bytes belong to (the sequence lifecycle events
   * share). Absent for bytes the output index does not cover: a run stored before the index
   * existed, or the last bytes of a writer that died between storing them and their index.
   */
  seq?: number;
  /** Sequence number of the last chunk, when the bytes span consecutive chunks. */
  lastSeq?: number;
  /** When the worker printed the first of these bytes (ISO 8601), when indexed. */
  at?: string;
  /** Byte offset of the bytes in the stream's log. */
  offset: number;
  /**
   * The bytes, verbatim: they may end inside a multi-byte UTF-8 character whose rest comes with
   * the stream's next chunk (decode each stream with its own `TextDecoder` and `stream: true`).
   */
  bytes: Uint8Array;
  /**
   * Resumes after this item: pass it as `from`. Opaque; two cursors of the same place may
   * differ (one from a reader with `events`, one without).
   */
  cursor: string;
}

/** A lifecycle event, in the run's sequence (with `events: true`). */
export interface RunOutputEvent {
  /** Always `worker`. */
  channel: "worker";
  /** The event's sequence number. */
  seq: number;
  /** The `worker.log` entry. */
  event: WorkerLifecycleLogEntry;
  /** Resumes after this item: pass it as `from`. Opaque. */
  cursor: string;
}

/** One item of a run's output in sequence. */
export type RunOutputItem = RunOutputChunk | RunOutputEvent;

/** Options of {@linkcode readRunOutput}. */
export interface ReadRunOutputOptions {
  /** A `cursor` of an item read before: start after it. Not with `tail`. */
  from?: string;
  /**
   * Only the last `tail` bytes of output (stdout and stderr together, as stored now; the first
   * chunk may start inside a line), with the events from there on. Not with `from`.
   */
  tail?: number;
  /** Merge the lifecycle events into the sequence (`channel: "worker"` items). */
  events?: boolean;
}

/** Options of {@linkcode followRunOutput}. */
export interface FollowRunOutputOptions {
  /** A `cursor` of an item read before: start after it. Default: the start. Not with `tail`. */
  from?: string;
  /**
   * Start with the last `tail` bytes of output stored when the follower starts (as
   * {@linkcode readRunOutput}'s `tail`), then follow. Not with `from`.
   */
  tail?: number;
  /** Merge the lifecycle events into the sequence (`channel: "worker"` items). */
  events?: boolean;
  /** Stops the follower: the iteration then simply ends. */
  signal?: AbortSignal;
  /** Time between polls while nothing is new, in ms. Default 500. */
  pollMs?: number;
  /** A run whose heartbeat is older than this is stale, in ms. Default 15,000. */
  staleAfterMs?: number;
}

const STREAMS: readonly StreamLogChannel[] = ["stdout", "stderr"];
const CURSOR = /^(\d{1,16})\.(\d{1,16})\.(\d{1,16})\.(\d{1,16})$/;
const CursorSchema = z.string().regex(CURSOR, "must be a cursor from an item read before");
const startSchema = {
  from: CursorSchema.optional(),
  tail: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  events: z.boolean().optional(),
};
const oneStart = (o: { from?: string; tail?: number }) =>
  o.from === undefined || o.tail === undefined;
const oneStartIssue = { message: "cannot be combined with from", path: ["tail"] };
const ReadOptionsSchema = z.strictObject(startSchema).refine(oneStart, oneStartIssue);
const FollowOptionsSchema = z.strictObject({ ...startSchema, ...pollSchema }).refine(
  oneStart,
  oneStartIssue,
);

/** Where a reader stands: byte offsets in the index, each stream and worker.log. */
interface Position {
  index: number;
  stdout: number;
  stderr: number;
  worker: number;
}

function encodeCursor(p: Position): string {
  return `${p.index}.${p.stdout}.${p.stderr}.${p.worker}`;
}

function decodeCursor(cursor: string | undefined): Position {
  const m = cursor === undefined ? undefined : CURSOR.exec(cursor);
  if (m === undefined || m === null) return { index: 0, stdout: 0, stderr: 0, worker: 0 };
  return { index: Number(m[1]), stdout: Number(m[2]), stderr: Number(m[3]), worker: Number(m[4]) };
}

const decoder = new TextDecoder();

/**
 * Parses one line of an output index; `undefined` for a line that is not an entry (a torn last
 * line of a writer that died).
 */
function parseEntry(line: string): OutputIndexEntry | undefined {
  let value: Partial<OutputIndexEntry> | null;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  // What OutputIndexEntrySchema checks, by hand: this runs once per entry of a long log.
  if (typeof value !== "object" || value === null) return undefined;
  const { seq, lastSeq, stream, offset, length, at } = value;
  const count = (n: unknown, min: number) => Number.isSafeInteger(n) && (n as number) >= min;
  const valid = count(seq, 1) && (lastSeq === undefined || count(lastSeq, 1)) &&
    (stream === "stdout" || stream === "stderr") && count(offset, 0) && count(length, 0) &&
    typeof at === "string";
  return valid ? value as OutputIndexEntry : undefined;
}

/** A `worker.log` line's entry, when it has the sequence number events are merged by. */
function parseEvent(line: string): WorkerLifecycleLogEntry | undefined {
  const event = parseEventLine(line);
  return typeof event?.seq === "number" ? event : undefined;
}

/**
 * The whole lines of `bytes`, parsed, with the byte offset (from `base`) after each; returns
 * where the last whole line ends. Decodes once when the bytes are ASCII (an index always is).
 */
function parseLines<T>(
  bytes: Uint8Array,
  base: number,
  parse: (line: string) => T | undefined,
  into: { item: T; end: number }[],
): number {
  const last = bytes.lastIndexOf(0x0a);
  if (last === -1) return 0;
  const text = decoder.decode(bytes.subarray(0, last + 1));
  if (text.length === last + 1) {
    // ASCII: character offsets are byte offsets.
    let start = 0;
    for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n", start)) {
      const item = parse(text.slice(start, nl));
      start = nl + 1;
      if (item !== undefined) into.push({ item, end: base + start });
    }
  } else {
    let start = 0;
    for (let nl = bytes.indexOf(0x0a); nl !== -1 && nl <= last; nl = bytes.indexOf(0x0a, start)) {
      const item = parse(decoder.decode(bytes.subarray(start, nl)));
      start = nl + 1;
      if (item !== undefined) into.push({ item, end: base + start });
    }
  }
  return last + 1;
}

/**
 * The entries of a whole output index with the byte offset after each line. Internal to the
 * read side (the reaper repairs an index with it).
 *
 * @param bytes The index's bytes.
 * @returns Entries in stored order, torn or malformed lines left out.
 */
export function parseOutputIndex(
  bytes: Uint8Array,
): { entry: OutputIndexEntry; end: number }[] {
  const lines: { item: OutputIndexEntry; end: number }[] = [];
  parseLines(bytes, 0, parseEntry, lines);
  return lines.map(({ item, end }) => ({ entry: item, end }));
}

/**
 * A log read one stored chunk at a time from an offset, polling the storage at most once per
 * round (a follower's round: one read of the state, then what is new in each log).
 */
class RoundReader {
  readonly #cursor: LogCursor;
  #iterator: AsyncIterator<Uint8Array> | undefined;
  #polled = false;
  #live = false;

  constructor(storage: RunStorage, key: string, from: number) {
    this.#cursor = new LogCursor(storage, key, from);
  }

  /** Starts a new round: the next read may poll the storage again (`live`: the run is). */
  newRound(live: boolean): void {
    this.#polled = false;
    this.#live = live;
  }

  /** The next stored chunk; `undefined` once this round's poll has nothing more. */
  async next(): Promise<Uint8Array | undefined> {
    for (;;) {
      if (this.#iterator === undefined) {
        if (this.#polled) return undefined;
        this.#polled = true;
        this.#iterator = this.#cursor.poll(this.#live)[Symbol.asyncIterator]();
      }
      const next = await this.#iterator.next();
      if (!next.done) return next.value;
      this.#iterator = undefined;
    }
  }

  /** Stops reading (the iteration ended). */
  async close(): Promise<void> {
    await this.#iterator?.return?.();
    this.#iterator = undefined;
  }
}

/** Lines of a followed log (the index or worker.log), with the byte offset after each. */
class LineSource<T> {
  readonly reader: RoundReader;
  readonly #parse: (line: string) => T | undefined;
  #partial: Uint8Array = new Uint8Array(0);
  #partialStart: number;
  /** Parsed lines; those before `#next` were taken. */
  #queue: { item: T; end: number }[] = [];
  #next = 0;

  constructor(
    storage: RunStorage,
    key: string,
    from: number,
    parse: (line: string) => T | undefined,
  ) {
    this.reader = new RoundReader(storage, key, from);
    this.#partialStart = from;
    this.#parse = parse;
  }

  /** The first line not taken yet, among those read. */
  peek(): { item: T; end: number } | undefined {
    return this.#queue[this.#next];
  }

  /** Takes the first line. */
  take(): void {
    this.#next++;
    if (this.#next === this.#queue.length) {
      this.#queue = [];
      this.#next = 0;
    }
  }

  /** Reads more lines when none is left (the storage is polled once per round at most). */
  async fill(): Promise<boolean> {
    while (this.#next === this.#queue.length) {
      const chunk = await this.reader.next();
      if (chunk === undefined) return false;
      const bytes = this.#partial.byteLength === 0 ? chunk : concatBytes([this.#partial, chunk]);
      const used = parseLines(bytes, this.#partialStart, this.#parse, this.#queue);
      this.#partialStart += used;
      this.#partial = bytes.slice(used);
    }
    return true;
  }
}

/**
 * The bytes of one stream, served by offset and length in the order the index asks for them,
 * read one stored chunk at a time.
 */
class StreamSource {
  readonly reader: RoundReader;
  /** Bytes read and not served yet, from `#start`. */
  #buffer: Uint8Array = new Uint8Array(0);
  #start: number;

  constructor(storage: RunStorage, key: string, from: number) {
    this.reader = new RoundReader(storage, key, from);
    this.#start = from;
  }

  async #more(): Promise<boolean> {
    const chunk = await this.reader.next();
    if (chunk === undefined) return false;
    this.#buffer = this.#buffer.byteLength === 0 ? chunk : concatBytes([this.#buffer, chunk]);
    return true;
  }

  /** Bytes `[offset, offset + length)` when they are read already (see `take`). */
  taken(offset: number, length: number): Uint8Array | undefined {
    return this.#start + this.#buffer.byteLength >= offset + length
      ? this.#cut(offset, length)
      : undefined;
  }

  /**
   * Bytes `[offset, offset + length)` once all are stored; `undefined` while they are not, unless
   * `partial`, which takes what there is (the run is over and the rest will never come).
   */
  async take(offset: number, length: number, partial: boolean): Promise<Uint8Array | undefined> {
    while (this.#start + this.#buffer.byteLength < offset + length) {
      if (!(await this.#more())) {
        if (!partial) return undefined;
        break;
      }
    }
    return this.#cut(offset, length);
  }

  #cut(offset: number, length: number): Uint8Array {
    // Entries of a stream follow each other byte for byte; bytes an entry skips (never in a
    // consistent index) are passed over, bytes served already are not served twice.
    const end = offset + length;
    if (end <= this.#start) return new Uint8Array(0);
    const from = Math.max(0, offset - this.#start);
    const to = Math.min(this.#buffer.byteLength, end - this.#start);
    const bytes = this.#buffer.slice(Math.min(from, to), to);
    this.#buffer = this.#buffer.subarray(to);
    this.#start += to;
    return bytes;
  }

  /** The bytes after everything served: what no index entry covers. */
  async *rest(): AsyncGenerator<{ offset: number; bytes: Uint8Array }> {
    for (;;) {
      if (this.#buffer.byteLength > 0) {
        const bytes = this.#buffer.slice();
        const offset = this.#start;
        this.#start += bytes.byteLength;
        this.#buffer = new Uint8Array(0);
        yield { offset, bytes };
      }
      if (!(await this.#more())) return;
    }
  }
}

/** Reads a run's output in sequence from a position, round by round. */
class OutputReader {
  readonly position: Position;
  readonly #index: LineSource<OutputIndexEntry>;
  readonly #events: LineSource<WorkerLifecycleLogEntry> | undefined;
  readonly #streams: Record<StreamLogChannel, StreamSource>;

  constructor(storage: RunStorage, keys: RunKeys, from: Position, events: boolean) {
    this.position = { ...from };
    this.#index = new LineSource(storage, keys.outputIndex, from.index, parseEntry);
    this.#events = events
      ? new LineSource(storage, keys.workerLog, from.worker, parseEvent)
      : undefined;
    this.#streams = {
      stdout: new StreamSource(storage, keys.stdoutLog, from.stdout),
      stderr: new StreamSource(storage, keys.stderrLog, from.stderr),
    };
  }

  /** Starts a round: each log may be polled once more (`live`: the run's state says it is). */
  newRound(live: boolean): void {
    for (const reader of this.#readers()) reader.newRound(live);
  }

  #readers(): RoundReader[] {
    const sources = [this.#index, this.#events, this.#streams.stdout, this.#streams.stderr];
    return sources.flatMap((source) => source === undefined ? [] : [source.reader]);
  }

  /**
   * Yields what is stored, in sequence: index entries with their bytes and (when asked) events,
   * merged by sequence number up to `limit`. `over`: the run is finished or stale, so bytes an
   * entry names but the log lacks will never come (what there is is yielded).
   */
  async *drain(limit: number, over: boolean): AsyncGenerator<RunOutputItem> {
    const index = this.#index;
    const events = this.#events;
    for (;;) {
      // Awaited only when a source has nothing read: most items are served synchronously.
      let entry = index.peek();
      if (entry === undefined && await index.fill()) entry = index.peek();
      let event = events?.peek();
      if (events !== undefined && event === undefined && await events.fill()) {
        event = events.peek();
      }
      if (entry === undefined && event === undefined) return;
      if (event !== undefined && (entry === undefined || event.item.seq < entry.item.seq)) {
        if (event.item.seq > limit) return;
        if (over && entry === undefined && TERMINAL_EVENT_TYPES.has(event.item.type)) {
          // Output no entry covers (a run stored before the index existed) was printed before
          // the run ended: it comes before the terminal event.
          yield* this.rest();
        }
        events!.take();
        this.position.worker = event.end;
        yield {
          channel: "worker",
          seq: event.item.seq,
          event: event.item,
          cursor: encodeCursor(this.position),
        };
        continue;
      }
      const { item, end } = entry!;
      if (item.seq > limit) return;
      const source = this.#streams[item.stream];
      const bytes = source.taken(item.offset, item.length) ??
        await source.take(item.offset, item.length, over);
      if (bytes === undefined) return; // indexed before its bytes were stored: next round
      index.take();
      this.position.index = end;
      this.position[item.stream] = Math.max(this.position[item.stream], item.offset + item.length);
      if (bytes.byteLength === 0) continue;
      const chunk: RunOutputChunk = {
        channel: item.stream,
        seq: item.seq,
        offset: item.offset + item.length - bytes.byteLength,
        bytes,
        cursor: "",
      };
      if (item.lastSeq !== undefined) chunk.lastSeq = item.lastSeq;
      chunk.at = item.at;
      // A stream cut short (a writer that died mid-flush) ends where its bytes end.
      if (over) this.position[item.stream] = chunk.offset + bytes.byteLength;
      chunk.cursor = encodeCursor(this.position);
      yield chunk;
    }
  }

  /**
   * Once the run is over and everything indexed was yielded: the bytes no entry covers (a run
   * stored before the index existed, or bytes whose index a dying writer did not store).
   */
  async *rest(): AsyncGenerator<RunOutputChunk> {
    for (const stream of STREAMS) {
      for await (const { offset, bytes } of this.#streams[stream].rest()) {
        this.position[stream] = offset + bytes.byteLength;
        yield { channel: stream, offset, bytes, cursor: encodeCursor(this.position) };
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.#readers().map((reader) => reader.close()));
  }
}

/**
 * Where reading the last `tail` bytes of output starts: inside the index entry holding the first
 * of them (the index is read whole: it is small beside the output it describes). Events (only
 * when asked for) from that entry's sequence on.
 */
async function tailPosition(
  storage: RunStorage,
  keys: RunKeys,
  tail: number,
  events: boolean,
  sizes: Record<StreamLogChannel, number | undefined>,
): Promise<Position> {
  const index = await readLogRange(storage, keys.outputIndex, { offset: 0 });
  const entries = parseOutputIndex(index ?? new Uint8Array(0));
  if (entries.length === 0) {
    // No index (a run stored before it existed): each stream's own tail.
    return {
      index: 0,
      stdout: Math.max(0, (sizes.stdout ?? 0) - tail),
      stderr: Math.max(0, (sizes.stderr ?? 0) - tail),
      worker: 0,
    };
  }
  let first = entries.length;
  let have = 0;
  while (first > 0 && have < tail) have += entries[--first].entry.length;
  const position: Position = {
    index: first === 0 ? 0 : entries[first - 1].end,
    stdout: 0,
    stderr: 0,
    worker: 0,
  };
  // Each stream starts at its first entry from there (the very first one cut to the tail), or
  // after its last entry before.
  for (const stream of STREAMS) {
    const next = entries.slice(first).find((e) => e.entry.stream === stream);
    const before = entries.slice(0, first).findLast((e) => e.entry.stream === stream);
    position[stream] = next?.entry.offset ??
      (before === undefined ? 0 : before.entry.offset + before.entry.length);
  }
  if (first < entries.length && have > tail) {
    position[entries[first].entry.stream] += have - tail;
  }
  if (events && first > 0) {
    // Events from the first entry's sequence on; after the last entry when no output is shown.
    const last = entries[entries.length - 1].entry;
    const from = first < entries.length ? entries[first].entry.seq : (last.lastSeq ?? last.seq) + 1;
    const worker = await readLogRange(storage, keys.workerLog, { offset: 0 }) ??
      new Uint8Array(0);
    let start = 0;
    for (let nl = worker.indexOf(0x0a); nl !== -1; nl = worker.indexOf(0x0a, start)) {
      const event = parseEvent(decoder.decode(worker.subarray(start, nl)));
      if (event !== undefined && event.seq >= from) break;
      start = nl + 1;
    }
    position.worker = start;
  }
  return position;
}

/** Where a reader starts: after a cursor, at the last `tail` bytes, or at the beginning. */
async function startOf(
  storage: RunStorage,
  keys: RunKeys,
  o: { from?: string; tail?: number; events?: boolean },
  state: { stdoutBytes?: number; stderrBytes?: number } | undefined,
): Promise<Position> {
  if (o.tail === undefined) return decodeCursor(o.from);
  return await tailPosition(storage, keys, o.tail, o.events === true, {
    stdout: state?.stdoutBytes,
    stderr: state?.stderrBytes,
  });
}

/**
 * Reads a run's stdout and stderr as stored, interleaved in the order the worker printed them
 * (the run's sequence, from its output index), optionally merged with its lifecycle events. A
 * live run is read up to what is stored; follow on from the last item's `cursor` with
 * {@linkcode followRunOutput}.
 *
 * Bytes come in index entries (at most 1 MiB each), so a large log is read in bounded memory.
 * Bytes the index does not cover (a run stored before the index existed, or the last bytes of a
 * writer that died before storing their index) come without a `seq` once the run is over: after
 * everything indexed, before the run's terminal event.
 *
 * @param storage The storage the run lives on.
 * @param ref Which run.
 * @param options `from` (a cursor), or `tail` (bytes); `events` to include lifecycle events.
 * @returns An async iterable of {@linkcode RunOutputItem}.
 * @throws {NotFoundError} The run does not exist.
 * @throws {ValidationError} A bad id or option, naming the field.
 *
 * @example Print a run's output as a terminal showed it
 * ```ts
 * import { createMemoryStorage, readRunOutput, runStep } from "../mod.ts";
 * const storage = createMemoryStorage();
 * await runStep({
 *   taskId: "t", stepId: "s", stepName: "S", stepKind: "k", runId: "r", attempt: 1,
 *   workerKind: "script", timeoutSec: 10, runtime: { repoRoot: "/repo", worktreePath: "/repo" },
 * }, {
 *   async execute(_run, context) {
 *     await context.stdout("compiling\n");
 *     await context.stderr("warning: unused import\n");
 *     await context.stdout("done\n");
 *     return { ok: true, outcome: "completed", summary: "ok" };
 *   },
 * }, { storage });
 * let text = "";
 * for await (const item of readRunOutput(storage, { taskId: "t", runId: "r" })) {
 *   if (item.channel !== "worker") text += new TextDecoder().decode(item.bytes);
 * }
 * console.log(text); // "compiling\nwarning: unused import\ndone\n"
 * ```
 */
export function readRunOutput(
  storage: RunStorage,
  ref: RunRef,
  options: ReadRunOutputOptions = {},
): AsyncGenerator<RunOutputItem, void, undefined> {
  // Checked at the call, before any iteration: a bad cursor is the caller's error at once.
  const keys = keysOf(ref);
  const o = parseOrThrow(ReadOptionsSchema, options ?? {}, "Invalid output options");
  return readOutput(storage, ref, keys, o);
}

async function* readOutput(
  storage: RunStorage,
  ref: RunRef,
  keys: RunKeys,
  o: ReadRunOutputOptions,
): AsyncGenerator<RunOutputItem, void, undefined> {
  const status = await readRunStatus(storage, keys);
  if (!status.exists) {
    throw new NotFoundError(`Run '${ref.runId}' of task '${ref.taskId}' does not exist`, keys.meta);
  }
  const from = await startOf(storage, keys, o, status.state);
  const over = status.liveness !== "live";
  const reader = new OutputReader(storage, keys, from, o.events === true);
  try {
    yield* reader.drain(limitOf(status, o.events === true), over);
    if (over) yield* reader.rest();
  } finally {
    await reader.close();
  }
}

/**
 * How far events may be merged: everything once the run is over; while it is live, up to the
 * sequence `state.json` says is stored (every event and index entry up to it is in its log, so
 * none can come later and belong before).
 */
function limitOf(
  status: { liveness: string; state?: { lastEventSeq: number } },
  events: boolean,
): number {
  if (!events || status.liveness !== "live") return Infinity;
  return status.state?.lastEventSeq ?? 0;
}

/**
 * Follows a run's stdout and stderr interleaved in the order the worker printed them,
 * optionally merged with its lifecycle events: yields what is stored, then what is stored next,
 * live. A follower started before the run exists waits for it to appear.
 *
 * The iteration ends once the run finished and everything was yielded. When the run goes stale
 * (its writer died), it yields what was stored and then throws {@linkcode RunStaleError}, whose
 * `cursor` resumes after the last item. Aborting `signal` ends it without an error. Each item's
 * `cursor` resumes after it (a reconnecting viewer passes the last one it showed as `from`).
 *
 * Each poll costs one read of `state.json` and a poll of the output index (see
 * {@linkcode followRunLog}); the streams are read only when the index names new bytes, and
 * `worker.log` only with `events`.
 *
 * @param storage The storage the run lives on.
 * @param ref Which run.
 * @param options `from` (a cursor), `events`, `signal`, `pollMs` (default 500), `staleAfterMs`
 *   (default 15,000).
 * @returns An async iterable of {@linkcode RunOutputItem}.
 * @throws {ValidationError} A bad id or option, naming the field.
 * @throws {RunStaleError} The run stopped heartbeating before it finished.
 *
 * @example Show a live run's output and events in order
 * ```ts
 * import { createMemoryStorage, followRunOutput, runStep } from "../mod.ts";
 * const storage = createMemoryStorage();
 * const done = runStep({
 *   taskId: "t", stepId: "s", stepName: "S", stepKind: "k", runId: "r", attempt: 1,
 *   workerKind: "script", timeoutSec: 10, runtime: { repoRoot: "/repo", worktreePath: "/repo" },
 * }, {
 *   async execute(_run, context) {
 *     await context.stdout("working\n");
 *     await context.stderr("careful\n");
 *     return { ok: true, outcome: "completed", summary: "ok" };
 *   },
 * }, { storage });
 * const ref = { taskId: "t", runId: "r" };
 * for await (const item of followRunOutput(storage, ref, { events: true, pollMs: 20 })) {
 *   if (item.channel === "worker") console.log(`#${item.seq} ${item.event.type}`);
 *   else console.log(`#${item.seq} ${item.channel}: ${new TextDecoder().decode(item.bytes)}`);
 * }
 * await done;
 * ```
 */
export function followRunOutput(
  storage: RunStorage,
  ref: RunRef,
  options: FollowRunOutputOptions = {},
): AsyncGenerator<RunOutputItem, void, undefined> {
  // Checked at the call, before any iteration: a bad cursor is the caller's error at once.
  const keys = keysOf(ref);
  const o = parseOrThrow(FollowOptionsSchema, options ?? {}, "Invalid follow options");
  return followOutput(storage, ref, keys, o);
}

async function* followOutput(
  storage: RunStorage,
  ref: RunRef,
  keys: RunKeys,
  o: FollowRunOutputOptions,
): AsyncGenerator<RunOutputItem, void, undefined> {
  const pollMs = o.pollMs ?? 500;
  const staleAfterMs = o.staleAfterMs ?? 15_000;
  const events = o.events === true;
  let reader: OutputReader | undefined;
  try {
    while (!o.signal?.aborted) {
      // The state is read before the logs: a terminal state then means the logs read after it
      // are complete, and a live one's sequence is stored in every log read after it.
      const status = await readRunStatus(storage, keys, { staleAfterMs });
      if (status.exists) {
        const start = reader === undefined
          ? await startOf(storage, keys, o, status.state)
          : undefined;
        reader ??= new OutputReader(storage, keys, start!, events);
        const over = status.liveness !== "live";
        reader.newRound(!over);
        for await (const item of reader.drain(limitOf(status, events), over)) {
          yield item;
          if (o.signal?.aborted) return;
        }
        if (over) {
          for await (const item of reader.rest()) {
            yield item;
            if (o.signal?.aborted) return;
          }
          if (status.liveness === "finished") return;
          throw new RunStaleError(ref.taskId, ref.runId, {
            offset: reader.position.index,
            cursor: encodeCursor(reader.position),
            updatedAt: status.state?.updatedAt,
          });
        }
      }
      await sleep(pollMs, o.signal);
    }
  } finally {
    await reader?.close();
  }
}
