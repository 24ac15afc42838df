// Shared test helpers: a base request, storages that count or lack capabilities, temp dirs.

import { mkdtemp, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { StepExecutionRequest } from "../core/types.ts";
import { createFsStorage } from "../storage/fs.ts";
import { createMemoryStorage } from "../storage/memory.ts";
import type { RunStorage } from "../storage/types.ts";

/** A valid request; override what a test is about. */
export function baseRequest(overrides: Partial<StepExecutionRequest> = {}): StepExecutionRequest {
  return {
    taskId: "task-1",
    stepId: "step-1",
    stepName: "Implement feature",
    stepKind: "codegen",
    runId: "run-1",
    attempt: 1,
    workerKind: "script",
    timeoutSec: 30,
    runtime: { repoRoot: "/repo", worktreePath: "/repo/worktree" },
    ...overrides,
  };
}

/** Counts of calls made to a storage. */
export interface StorageCounts {
  writes: number;
  appends: number;
  replaces: number;
  streams: number;
  reads: number;
  deletes: number;
  /** writes + appends + replaces + streams. */
  readonly mutations: number;
}

/** Wraps a storage, counting every call. */
export function countingStorage(inner: RunStorage): { storage: RunStorage; counts: StorageCounts } {
  const counts: StorageCounts = {
    writes: 0,
    appends: 0,
    replaces: 0,
    streams: 0,
    reads: 0,
    deletes: 0,
    get mutations() {
      return this.writes + this.appends + this.replaces + this.streams;
    },
  };
  const storage: RunStorage = {
    name: inner.name,
    read: (key) => (counts.reads++, inner.read(key)),
    write: (key, data, options) => (counts.writes++, inner.write(key, data, options)),
    list: (prefix) => inner.list(prefix),
    delete: (key) => (counts.deletes++, inner.delete(key)),
    locate: (key) => inner.locate(key),
  };
  if (inner.append) storage.append = (key, data) => (counts.appends++, inner.append!(key, data));
  if (inner.replace) {
    storage.replace = (key, data, o) => (counts.replaces++, inner.replace!(key, data, o));
  }
  if (inner.writeStream) {
    storage.writeStream = (key, s, o) => (counts.streams++, inner.writeStream!(key, s, o));
  }
  if (inner.deleteMany) storage.deleteMany = (keys) => (counts.deletes++, inner.deleteMany!(keys));
  return { storage, counts };
}

/** The same storage without native append (as S3): logs go through segments. */
export function withoutAppend(inner: RunStorage): RunStorage {
  const { append: _append, ...rest } = inner;
  return rest;
}

/** Every key of a storage, sorted. */
export async function allKeys(storage: RunStorage, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const key of storage.list(prefix)) out.push(key);
  return out.sort();
}

/** Reads a key as text. */
export async function readText(storage: RunStorage, key: string): Promise<string | undefined> {
  const bytes = await storage.read(key);
  return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
}

/** Runs `body` with a fresh temp dir (real path), removed afterwards. */
export async function withTempDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await realpath(await mkdtemp(join(tmpdir(), "runner-test-")));
  try {
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A storage for one test and how to dispose of it. */
export interface TestStorage {
  storage: RunStorage;
  done(): Promise<void>;
}

/** Factories of the local storages a runner test runs on: memory, memory without append, fs. */
export const localStorages: Readonly<Record<string, () => Promise<TestStorage>>> = {
  memory: () => Promise.resolve({ storage: createMemoryStorage(), done: () => Promise.resolve() }),
  "memory without append (segments)": () =>
    Promise.resolve({
      storage: withoutAppend(createMemoryStorage()),
      done: () => Promise.resolve(),
    }),
  fs: async () => {
    const root = await mkdtemp(join(tmpdir(), "runner-storage-"));
    return {
      storage: createFsStorage({ root }),
      done: () => rm(root, { recursive: true, force: true }),
    };
  },
};

/**
 * Adjacent pieces of one stream joined: what a terminal showed of interleaved streams,
 * whatever the chunking. Pieces are `[channel, text]`.
 */
export function streamRuns(pieces: readonly [string, string][]): [string, string][] {
  const out: [string, string][] = [];
  for (const [channel, text] of pieces) {
    const last = out.at(-1);
    if (last !== undefined && last[0] === channel) last[1] += text;
    else out.push([channel, text]);
  }
  return out;
}
