// Following a run while it is written: a log's bytes as they are stored, and the run's changes
// (state snapshots and lifecycle events). Each poll costs what is new, not the run's size.

import type { RunStorage } from "../storage/types.ts";
import { RunStaleError } from "./errors.ts";
import { logKey } from "./layout.ts";
import { readKeyRange } from "./log-range.ts";
import { listSegments, segmentIndex } from "./segments.ts";
import {
  checkChannel,
  keysOf,
  parseEventLine,
  readRunStatus,
  type RunLiveness,
  type RunRef,
} from "./read.ts";
import { parseOrThrow } from "./schemas.ts";
import type { RunStateSnapshot, WorkerLifecycleLogEntry, WorkerLogChannel } from "./types.ts";
import { z } from "zod";

/** Options of {@linkcode followRunLog}. */
export interface FollowRunLogOptions {
  /** Byte offset to start from (bytes before it are not yielded). Default 0. */
  from?: number;
  /** Stops the follower: the iteration then simply ends. */
  signal?: AbortSignal;
  /** Time between polls while nothing is new, in ms. Default 500. */
  pollMs?: number;
  /** A run whose heartbeat is older than this is stale, in ms. Default 15,000. */
  staleAfterMs?: number;
}

/** Options of {@linkcode watchRun}. */
export interface WatchRunOptions {
  /** Stops the watcher: the iteration then simply ends. */
  signal?: AbortSignal;
  /** Time between polls, in ms. Default 500. */
  pollMs?: number;
  /** A run whose heartbeat is older than this is stale, in ms. Default 15,000. */
  staleAfterMs?: number;
}

/**
 * One change of a watched run. `state`: `state.json` changed (heartbeats that only move
 * `updatedAt` are not changes); `event`: a new lifecycle entry in `worker.log`; `stale`: the
 * run stopped heartbeating before it finished; always the last change yielded.
 */
export type RunChange =
  | { type: "state"; state: RunStateSnapshot; liveness: RunLiveness }
  | { type: "event"; event: WorkerLifecycleLogEntry }
  | { type: "stale"; state: RunStateSnapshot | undefined };

/** Options shared by the followers, as zod shapes. Internal to the read side. */
export const pollSchema = {
  signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal, "must be an AbortSignal")
    .optional(),
  pollMs: z.number().int().min(1).max(3_600_000).optional(),
  staleAfterMs: z.number().min(0).optional(),
};
const FollowOptionsSchema = z.strictObject({
  from: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  ...pollSchema,
});
const WatchOptionsSchema = z.strictObject(pollSchema);

/** Bytes read from a finished (or appended) log per request. */
const READ_CHUNK = 4 * 1024 * 1024;

/**
 * Reads a log from an offset, poll after poll: from its segments while the run is live on a
 * storage without append, from the log's own key once it exists (at the same byte offset, so
 * no byte is seen twice or missed across the switch). Internal to the read side.
 */
export class LogCursor {
  offset: number;
  /** Whether the last poll reached the end of what is stored. */
  drained = false;
  #storage: RunStorage;
  #key: string;
  #final = false;
  #lastSegment: string | undefined;
  #lastIndex = 0;
  #segmentsEnd = 0;

  constructor(storage: RunStorage, key: string, from: number) {
    this.#storage = storage;
    this.#key = key;
    this.offset = from;
  }

  /**
   * Yields what is new since the last poll. `live`: the run's state (read before this poll) says
   * it is live. Then, once the log is known to be written in segments on a storage without
   * append, its own key is not asked for: it is written only when the run ends, after which the
   * state says so (or a segment vanishes under this poll, which switches to the key at once).
   */
  async *poll(live = false): AsyncGenerator<Uint8Array> {
    this.drained = false;
    if (!this.#final) {
      const segmented = this.#lastIndex > 0 && typeof this.#storage.append !== "function";
      const probe = live && segmented ? undefined : await readKeyRange(this.#storage, this.#key, {
        offset: this.offset,
        length: READ_CHUNK,
      });
      if (probe !== undefined) {
        this.#final = true;
        yield* this.#take(probe);
        if (this.drained) return;
      } else {
        const vanished = yield* this.#pollSegments();
        if (!vanished) return;
        this.#final = true;
      }
    }
    while (!this.drained) {
      const bytes = await readKeyRange(this.#storage, this.#key, {
        offset: this.offset,
        length: READ_CHUNK,
      });
      if (bytes === undefined) {
        // Deleted under us (a pruned run): nothing more will come.
        this.drained = true;
        return;
      }
      yield* this.#take(bytes);
    }
  }

  *#take(bytes: Uint8Array): Generator<Uint8Array> {
    this.drained = bytes.byteLength < READ_CHUNK;
    if (bytes.byteLength === 0) return;
    this.offset += bytes.byteLength;
    yield bytes;
  }

  /** Reads the segments after the last one seen; true when one vanished (the run ended). */
  async *#pollSegments(): AsyncGenerator<Uint8Array, boolean> {
    const keys = await listSegments(this.#storage, this.#key, this.#lastSegment);
    for (const key of keys) {
      // Segments are written one after the other; a gap is a listing that is behind.
      if (segmentIndex(this.#key, key) !== this.#lastIndex + 1) return false;
      const bytes = await this.#storage.read(key);
      if (bytes === undefined) return true;
      const start = this.#segmentsEnd;
      this.#segmentsEnd += bytes.byteLength;
      this.#lastIndex++;
      this.#lastSegment = key;
      if (this.#segmentsEnd > this.offset) {
        const fresh = bytes.subarray(Math.max(0, this.offset - start));
        this.offset = this.#segmentsEnd;
        yield fresh;
      }
    }
    this.drained = true;
    return false;
  }
}

/**
 * Waits `ms`, or less when `signal` aborts. Internal to the read side.
 *
 * @param ms How long.
 * @param signal Cuts the wait short.
 */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Follows one log of a run: yields its bytes from byte `from` on as they are stored, live.
 * A follower started before the run exists waits for it to appear.
 *
 * The iteration ends once the run is finished and every byte of the log was yielded. When
 * the run goes stale (its writer stopped heartbeating, e.g. a killed process), the follower
 * yields what was stored and then throws {@linkcode RunStaleError}, whose `offset` is the byte
 * offset reached; it never ends silently on a dead run. Aborting `signal` ends the iteration
 * without an error.
 *
 * The bytes are exactly the stored log's: concatenated, they equal `readRunLogBytes` of the
 * finished run from `from` on. Each poll costs requests for what is new only: on S3 one read of
 * `state.json`, one listing of the segments after the last seen, and one GET per new segment
 * (until the first segment is seen, also a ranged GET of the log's own key, which exists once
 * the run ended); on disk, a read from the offset.
 *
 * @param storage The storage the run lives on.
 * @param ref Which run.
 * @param channel `stdout`, `stderr` or `worker`.
 * @param options `from`, `signal`, `pollMs` (default 500), `staleAfterMs` (default 15,000).
 * @returns An async iterable of byte chunks.
 * @throws {ValidationError} A bad id, channel or option, naming the field.
 * @throws {RunStaleError} The run stopped heartbeating before it finished.
 *
 * @example Print a run's output while it runs
 * ```ts
 * import { createMemoryStorage, followRunLog, runStep } from "../mod.ts";
 * const storage = createMemoryStorage();
 * const done = runStep({
 *   taskId: "t", stepId: "s", stepName: "S", stepKind: "k", runId: "r", attempt: 1,
 *   workerKind: "script", timeoutSec: 10, runtime: { repoRoot: "/repo", worktreePath: "/repo" },
 * }, {
 *   async execute(_run, context) {
 *     await context.stdout("hello\n");
 *     return { ok: true, outcome: "completed", summary: "ok" };
 *   },
 * }, { storage });
 * let text = "";
 * for await (const chunk of followRunLog(storage, { taskId: "t", runId: "r" }, "stdout", { pollMs: 20 })) {
 *   text += new TextDecoder().decode(chunk);
 * }
 * await done;
 * console.log(text); // "hello\n"
 * ```
 */
export async function* followRunLog(
  storage: RunStorage,
  ref: RunRef,
  channel: WorkerLogChannel,
  options: FollowRunLogOptions = {},
): AsyncGenerator<Uint8Array, void, undefined> {
  const keys = keysOf(ref);
  const key = logKey(keys, checkChannel(channel));
  const o = parseOrThrow(FollowOptionsSchema, options ?? {}, "Invalid follow options");
  const pollMs = o.pollMs ?? 500;
  const staleAfterMs = o.staleAfterMs ?? 15_000;
  const cursor = new LogCursor(storage, key, o.from ?? 0);
  while (!o.signal?.aborted) {
    // The state is read before the log: a terminal state then means the log read after it is
    // complete (a run's terminal state is written once its logs are).
    const status = await readRunStatus(storage, keys, { staleAfterMs });
    if (status.exists) {
      for await (const chunk of cursor.poll(status.liveness === "live")) {
        yield chunk;
        if (o.signal?.aborted) return;
      }
      if (status.liveness === "finished" && cursor.drained) return;
      if (status.liveness === "stale" && cursor.drained) {
        throw new RunStaleError(ref.taskId, ref.runId, {
          offset: cursor.offset,
          updatedAt: status.state?.updatedAt,
        });
      }
    }
    await sleep(pollMs, o.signal);
  }
}

/** A state's content without its heartbeat, to tell a change from a heartbeat. */
function fingerprint(state: RunStateSnapshot): string {
  return JSON.stringify({ ...state, updatedAt: undefined });
}

/**
 * Watches a run: yields its changes as they are stored, live. A watcher started before the
 * run exists waits for it to appear.
 *
 * Changes come in order: new lifecycle events (`{ type: "event" }`, from `worker.log`), then
 * the state when it changed (`{ type: "state" }`; heartbeats that only move `updatedAt` are
 * not changes). The iteration ends after the terminal state (once every event before it was
 * yielded), or with a `{ type: "stale" }` change when the run stopped heartbeating before it
 * finished. Aborting `signal` ends it without an error. Each poll costs one read of
 * `state.json` plus what following `worker.log` costs (see {@linkcode followRunLog}).
 *
 * @param storage The storage the run lives on.
 * @param ref Which run.
 * @param options `signal`, `pollMs` (default 500), `staleAfterMs` (default 15,000).
 * @returns An async iterable of {@linkcode RunChange}.
 * @throws {ValidationError} A bad id or option, naming the field.
 *
 * @example Report a run's events and its end
 * ```ts
 * import { createMemoryStorage, runStep, watchRun } from "../mod.ts";
 * const storage = createMemoryStorage();
 * const done = runStep({
 *   taskId: "t", stepId: "s", stepName: "S", stepKind: "k", runId: "r", attempt: 1,
 *   workerKind: "script", timeoutSec: 10, runtime: { repoRoot: "/repo", worktreePath: "/repo" },
 * }, { execute: () => ({ ok: true, outcome: "completed", summary: "ok" }) }, { storage });
 * for await (const change of watchRun(storage, { taskId: "t", runId: "r" }, { pollMs: 20 })) {
 *   if (change.type === "event") console.log(change.event.type);
 *   if (change.type === "state") console.log(change.state.status, change.liveness);
 *   if (change.type === "stale") console.log("the run died");
 * }
 * await done;
 * ```
 */
export async function* watchRun(
  storage: RunStorage,
  ref: RunRef,
  options: WatchRunOptions = {},
): AsyncGenerator<RunChange, void, undefined> {
  const keys = keysOf(ref);
  const o = parseOrThrow(WatchOptionsSchema, options ?? {}, "Invalid watch options");
  const pollMs = o.pollMs ?? 500;
  const staleAfterMs = o.staleAfterMs ?? 15_000;
  const cursor = new LogCursor(storage, keys.workerLog, 0);
  const decoder = new TextDecoder();
  let partial = "";
  let last: string | undefined;
  while (!o.signal?.aborted) {
    const status = await readRunStatus(storage, keys, { staleAfterMs });
    if (status.exists) {
      for await (const chunk of cursor.poll(status.liveness === "live")) {
        const lines = (partial + decoder.decode(chunk, { stream: true })).split("\n");
        partial = lines.pop() ?? "";
        for (const line of lines) {
          const event = parseEventLine(line);
          if (event !== undefined) yield { type: "event", event };
        }
        if (o.signal?.aborted) return;
      }
      const ending = cursor.drained && status.liveness !== "live";
      if (ending) {
        // The writer is done (or dead): a last line without its newline is all there is.
        const event = parseEventLine(partial + decoder.decode());
        partial = "";
        if (event !== undefined) yield { type: "event", event };
      }
      if (status.state !== undefined && fingerprint(status.state) !== last) {
        last = fingerprint(status.state);
        if (status.liveness !== "stale") {
          yield { type: "state", state: status.state, liveness: status.liveness };
        }
      }
      if (ending && status.liveness === "finished") return;
      if (ending && status.liveness === "stale") {
        yield { type: "stale", state: status.state };
        return;
      }
    }
    await sleep(pollMs, o.signal);
  }
}
