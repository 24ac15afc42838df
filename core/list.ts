// Listing runs: by task, filtered by status, liveness and start time, paged with a cursor.

import type { RunStorage } from "../storage/types.ts";
import { ValidationError } from "./errors.ts";
import { createRunKeys, normalizePrefix } from "./layout.ts";
import { mapLimited, readJson, type RunLiveness, runLiveness } from "./read.ts";
import { idProblem, idSchema, parseOrThrow, RunStateSnapshotSchema } from "./schemas.ts";
import type { RunStateSnapshot, RunStatus } from "./types.ts";
import { z } from "zod";

/** One entry of {@linkcode listRuns}. */
export interface RunListEntry {
  /** Task id. */
  taskId: string;
  /** Run id. */
  runId: string;
  /** `state.json`, when present and well-formed. */
  state: RunStateSnapshot | undefined;
  /** Live, finished or stale, judged when listed (see {@linkcode runLiveness}). */
  liveness: RunLiveness;
  /** Opaque: pass it as `cursor` to list the runs after this one. */
  cursor: string;
}

/** Options of {@linkcode listRuns}. */
export interface ListRunsOptions {
  /** Only this task's runs. */
  taskId?: string;
  /** Runs prefix (default `runs`). */
  runsRootDir?: string;
  /** Only runs with this status, or one of these. */
  status?: RunStatus | readonly RunStatus[];
  /** Only runs that are live, finished or stale (or one of several). */
  liveness?: RunLiveness | readonly RunLiveness[];
  /** Only runs started at or after this time (a Date, an ISO string or epoch ms). */
  since?: Date | string | number;
  /** Return at most this many runs. */
  limit?: number;
  /** Continue after the run whose `cursor` this is (from an earlier listing with the same filters). */
  cursor?: string;
  /** Heartbeat age past which a run is stale, in ms. Default 15,000. */
  staleAfterMs?: number;
  /** The time liveness is judged at. Default: now. */
  now?: Date | number;
}

/** A page of {@linkcode listRunsPage}. */
export interface RunListPage {
  /** The runs, in order (task id, then run id, byte order). */
  runs: RunListEntry[];
  /**
   * Where the next page starts; `undefined` once the listing is exhausted. A page that is full
   * (`limit` runs) always has a cursor, even when no run follows it.
   */
  cursor: string | undefined;
}

const STATUSES = ["prepared", "running", "completed", "failed", "blocked"] as const;
const LIVENESS = ["live", "finished", "stale"] as const;
const oneOrMany = <T extends readonly [string, ...string[]]>(values: T) =>
  z.union([z.enum(values), z.array(z.enum(values)).min(1)]);
const ListRunsOptionsSchema = z.strictObject({
  taskId: idSchema().optional(),
  runsRootDir: z.string().optional(),
  status: oneOrMany(STATUSES).optional(),
  liveness: oneOrMany(LIVENESS).optional(),
  since: z.union([
    z.date().refine((d) => !Number.isNaN(d.getTime()), "must be a valid date"),
    z.string().refine((s) => !Number.isNaN(Date.parse(s)), "must be an ISO date"),
    z.number().finite(),
  ]).optional(),
  limit: z.number().int().min(1).optional(),
  cursor: z.string().max(4096).optional(),
  staleAfterMs: z.number().min(0).optional(),
  now: z.union([z.date(), z.number().finite()]).optional(),
});

interface Position {
  taskId: string;
  runId: string;
}

function encodeCursor(position: Position): string {
  const json = JSON.stringify({ v: 1, t: position.taskId, r: position.runId });
  return btoa(String.fromCharCode(...new TextEncoder().encode(json)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodeCursor(cursor: string, taskId: string | undefined): Position {
  const bad = (message: string) =>
    new ValidationError([{ path: "cursor", message }], "Invalid listing options");
  let parsed: { v?: unknown; t?: unknown; r?: unknown };
  try {
    const binary = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
    parsed = JSON.parse(
      new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))),
    );
  } catch {
    throw bad("is not a cursor from listRuns");
  }
  const ids = [parsed?.t, parsed?.r];
  if (
    parsed?.v !== 1 || !ids.every((id) => typeof id === "string" && idProblem(id) === undefined)
  ) {
    throw bad("is not a cursor from listRuns");
  }
  if (taskId !== undefined && parsed.t !== taskId) {
    throw bad(`belongs to task '${parsed.t}', not '${taskId}'`);
  }
  return { taskId: parsed.t as string, runId: parsed.r as string };
}

/**
 * The folders right under `prefix`, in byte order, after `startAfter`: one entry per folder
 * with `listPrefixes`, else derived from every key under `prefix` (slow on object storage).
 */
async function* folders(
  storage: RunStorage,
  prefix: string,
  startAfter: string | undefined,
): AsyncGenerator<string> {
  if (storage.listPrefixes) {
    const options = startAfter === undefined ? undefined : { startAfter };
    for await (const folder of storage.listPrefixes(prefix, options)) {
      if (startAfter === undefined || folder > startAfter) yield folder;
    }
    return;
  }
  const found = new Set<string>();
  for await (const key of storage.list(prefix)) {
    const slash = key.indexOf("/", prefix.length);
    if (slash > prefix.length) found.add(key.slice(0, slash + 1));
  }
  for (const folder of [...found].sort()) {
    if (startAfter === undefined || folder > startAfter) yield folder;
  }
}

/** Run folders in order, task by task, from `after` on. */
async function* runFolders(
  storage: RunStorage,
  base: string,
  taskId: string | undefined,
  after: Position | undefined,
): AsyncGenerator<Position> {
  async function* tasks(): AsyncGenerator<string> {
    if (taskId !== undefined) {
      yield `${base}${taskId}/`;
      return;
    }
    // The cursor's own task first (its later runs), then the tasks after it.
    if (after !== undefined) yield `${base}${after.taskId}/`;
    yield* folders(storage, base, after === undefined ? undefined : `${base}${after.taskId}/`);
  }
  for await (const taskFolder of tasks()) {
    const task = taskFolder.slice(base.length, -1);
    if (idProblem(task) !== undefined) continue;
    const startAfter = after !== undefined && after.taskId === task
      ? `${taskFolder}${after.runId}/`
      : undefined;
    for await (const runFolder of folders(storage, taskFolder, startAfter)) {
      const run = runFolder.slice(taskFolder.length, -1);
      if (idProblem(run) === undefined) yield { taskId: task, runId: run };
    }
  }
}

/**
 * Lists runs with their current state, in order (task id, then run id), filtered and paged.
 * Works while runs are live.
 *
 * Cost: a task-scoped listing makes one folder listing per 1,000 runs plus one read of
 * `state.json` per run scanned (runs filtered out by status, liveness or `since` are scanned
 * too), never a read of a log or a listing of a run's keys. A listing across all tasks adds
 * one folder listing per task. Storages without `listPrefixes` list every key instead.
 *
 * @param storage The storage.
 * @param options Task, filters (`status`, `liveness`, `since`), `limit` and `cursor`.
 * @returns An async iterable of `{ taskId, runId, state, liveness, cursor }`.
 * @throws {ValidationError} A bad option, naming it (a foreign or malformed `cursor` too).
 *
 * @example Failed runs of a task since yesterday, 50 at a time
 * ```ts
 * import { createMemoryStorage, listRuns } from "../mod.ts";
 * const storage = createMemoryStorage();
 * let cursor: string | undefined;
 * for await (const run of listRuns(storage, {
 *   taskId: "task-1", status: "failed", since: Date.now() - 86_400_000, limit: 50,
 * })) {
 *   console.log(run.runId, run.state?.summary);
 *   cursor = run.cursor; // pass it as `cursor` for the next 50
 * }
 * ```
 */
export async function* listRuns(
  storage: RunStorage,
  options: ListRunsOptions = {},
): AsyncGenerator<RunListEntry> {
  const o = parseOrThrow(ListRunsOptionsSchema, options ?? {}, "Invalid listing options");
  const root = normalizePrefix(o.runsRootDir);
  const base = root === "" ? "" : `${root}/`;
  const after = o.cursor === undefined ? undefined : decodeCursor(o.cursor, o.taskId);
  const statuses = o.status === undefined ? undefined : new Set([o.status].flat());
  const livenesses = o.liveness === undefined ? undefined : new Set([o.liveness].flat());
  const since = o.since === undefined ? undefined : new Date(o.since).getTime();
  const now = o.now ?? Date.now();
  const limit = o.limit ?? Infinity;

  const read = async (position: Position): Promise<RunListEntry | undefined> => {
    const keys = createRunKeys(root, position.taskId, position.runId);
    // A malformed state.json lists as a run without state (stale); a storage failure throws.
    const state = await readJson(storage, keys.state, RunStateSnapshotSchema)
      .catch((error) => {
        if (error instanceof ValidationError) return undefined;
        throw error;
      });
    // A folder with neither record is a run being deleted (or debris): not a run.
    if (state === undefined && await storage.read(keys.meta) === undefined) return undefined;
    return {
      ...position,
      state,
      liveness: runLiveness(state, { now, staleAfterMs: o.staleAfterMs }),
      cursor: encodeCursor(position),
    };
  };
  const wanted = (entry: RunListEntry | undefined): entry is RunListEntry => {
    if (entry === undefined) return false;
    if (statuses !== undefined && !statuses.has(entry.state?.status as RunStatus)) return false;
    if (livenesses !== undefined && !livenesses.has(entry.liveness)) return false;
    if (since !== undefined) {
      const started = Date.parse(entry.state?.startedAt ?? "");
      if (Number.isNaN(started) || started < since) return false;
    }
    return true;
  };

  // States are read a batch at a time, concurrently: one GET per run, sequentially, is minutes
  // for thousands of runs on object storage. A batch never outgrows what the limit still needs
  // when nothing is filtered out.
  const filtered = statuses !== undefined || livenesses !== undefined || since !== undefined;
  let yielded = 0;
  let batch: Position[] = [];
  const flush = async function* (): AsyncGenerator<RunListEntry> {
    const entries = await mapLimited(batch, read);
    batch = [];
    for (const entry of entries) {
      if (!wanted(entry)) continue;
      yield entry;
      if (++yielded >= limit) return;
    }
  };
  if (limit <= 0) return;
  for await (const position of runFolders(storage, base, o.taskId, after)) {
    batch.push(position);
    const size = filtered ? 16 : Math.min(16, limit - yielded);
    if (batch.length >= size) {
      yield* flush();
      if (yielded >= limit) return;
    }
  }
  if (batch.length > 0) yield* flush();
}

/**
 * One page of {@linkcode listRuns}: the runs and the cursor of the next page.
 *
 * @param storage The storage.
 * @param options As for {@linkcode listRuns}; `limit` defaults to 100.
 * @returns `{ runs, cursor }`; `cursor` is `undefined` once the listing is exhausted.
 * @throws {ValidationError} A bad option, naming it.
 *
 * @example Every run, page by page
 * ```ts
 * import { createMemoryStorage, listRunsPage } from "../mod.ts";
 * const storage = createMemoryStorage();
 * let cursor: string | undefined;
 * do {
 *   const page = await listRunsPage(storage, { limit: 100, cursor });
 *   for (const run of page.runs) console.log(run.taskId, run.runId, run.liveness);
 *   cursor = page.cursor;
 * } while (cursor !== undefined);
 * ```
 */
export async function listRunsPage(
  storage: RunStorage,
  options: ListRunsOptions = {},
): Promise<RunListPage> {
  const limit = options?.limit ?? 100;
  const runs: RunListEntry[] = [];
  for await (const run of listRuns(storage, { ...options, limit })) runs.push(run);
  return { runs, cursor: runs.length === limit ? runs.at(-1)!.cursor : undefined };
}
