// Options of runStep and prepareStepRun: their schema, defaults, and where the run is stored.

import { z } from "zod";
import { createFsStorage } from "../storage/fs.ts";
import { guardStorage } from "../storage/guard.ts";
import type { RunStorage } from "../storage/types.ts";
import type { WorkerExecutor } from "./executor.ts";
import { isAbsolutePath, normalizePrefix } from "./layout.ts";
import { MIN_SECRET_LENGTH } from "./redact.ts";
import { ValidationError } from "./errors.ts";
import { parseOrThrow, StepExecutionRequestSchema } from "./schemas.ts";
import type { StepExecutionRequest, StreamLogChannel } from "./types.ts";

/** Options of {@linkcode runStep} and {@linkcode prepareStepRun}. */
export interface RunStepOptions {
  /**
   * Where the run is stored. Default: a filesystem storage rooted at `runtime.repoRoot`
   * (or at `runtime.runsRootDir` when that is absolute).
   */
  storage?: RunStorage;
  /** Cancels the run: the executor's signal aborts and the run ends `failed`, "cancelled". */
  signal?: AbortSignal;
  /** Flush interval in ms (default 1000): a live reader sees output within about this long. */
  flushIntervalMs?: number;
  /** Buffered bytes that trigger an early flush (default 1 MiB). */
  flushBytes?: number;
  /** `state.json` is rewritten at least this often while live (default 2000 ms, at most 5000). */
  heartbeatMs?: number;
  /** Stream chunks kept per stream in `result.logSession` (default 200). */
  tailEntries?: number;
  /**
   * After a timeout or cancel, how long the runner waits for the executor to return before it
   * closes the record anyway (default 5000 ms).
   */
  timeoutGraceMs?: number;
  /**
   * Strings and patterns masked (as `[REDACTED]`) in stdout, stderr, events, metadata and
   * artifact metadata before anything is stored. Also taken from `executor.secrets`.
   */
  secrets?: readonly (string | RegExp)[];
  /**
   * Byte cap per stream: a stream longer than its cap keeps its first and its last bytes (half
   * each unless `headRatio` says otherwise) with one marker between them giving the number of
   * bytes dropped. The head is stored as it arrives; the tail is held in memory (at most its
   * share of the cap) and stored when the run ends.
   */
  maxOutputBytes?: number | OutputCaps;
}

/** Per-stream byte caps and how a cap is split between the start and the end of a stream. */
export interface OutputCaps {
  /** Cap of stdout in bytes (no cap when omitted). */
  stdout?: number;
  /** Cap of stderr in bytes (no cap when omitted). */
  stderr?: number;
  /**
   * Share of a cap kept from the start of the stream, from 0 to 1 (default 0.5); the rest of
   * the cap keeps the end. 1 keeps only the start, as a plain truncation; 0 keeps only the end,
   * so a live reader sees nothing of that stream until the run ends.
   */
  headRatio?: number;
}

/** Default of {@linkcode OutputCaps.headRatio}. */
const DEFAULT_HEAD_RATIO = 0.5;

const positiveInt = (max: number) => z.number().int().positive().max(max);
/** Internal: the schema of {@linkcode RunStepOptions}; unknown keys are refused. */
export const RunStepOptionsSchema = z.strictObject({
  storage: z.custom<RunStorage>((value) => {
    if (typeof value !== "object" || value === null) return false;
    const storage = value as Record<string, unknown>;
    return ["read", "write", "list", "delete", "locate"].every((m) =>
      typeof storage[m] === "function"
    ) &&
      typeof storage.name === "string";
  }, "must implement name, read, write, list, delete and locate").optional(),
  signal: z.custom<AbortSignal>((value) => value instanceof AbortSignal, "must be an AbortSignal")
    .optional(),
  flushIntervalMs: positiveInt(60_000).optional(),
  flushBytes: positiveInt(256 * 1024 * 1024).optional(),
  heartbeatMs: positiveInt(5_000).optional(),
  tailEntries: z.number().int().min(0).max(100_000).optional(),
  timeoutGraceMs: z.number().int().min(0).max(600_000).optional(),
  secrets: z.array(z.union([
    z.string().refine(
      (secret) => secret === "" || [...secret].length >= MIN_SECRET_LENGTH,
      `must be at least ${MIN_SECRET_LENGTH} characters (a shorter secret would mask ordinary output)`,
    ),
    z.instanceof(RegExp),
  ], {
    error: `must be a string of at least ${MIN_SECRET_LENGTH} characters, or a RegExp`,
  })).optional(),
  maxOutputBytes: z.union([
    z.number().int().min(0),
    z.strictObject({
      stdout: z.number().int().min(0).optional(),
      stderr: z.number().int().min(0).optional(),
      headRatio: z.number().min(0).max(1).optional(),
    }),
  ], {
    error: "must be a non-negative integer (bytes per stream) or { stdout?, stderr?, headRatio? }",
  }).optional(),
});

export function resolveStorage(
  request: StepExecutionRequest,
  options: RunStepOptions,
): { storage: RunStorage; runsRoot: string } {
  const runsRootDir = request.runtime.runsRootDir;
  if (options.storage !== undefined) {
    return { storage: guardStorage(options.storage), runsRoot: normalizePrefix(runsRootDir) };
  }
  if (runsRootDir !== undefined && isAbsolutePath(runsRootDir)) {
    return { storage: createFsStorage({ root: runsRootDir }), runsRoot: "" };
  }
  return {
    storage: createFsStorage({ root: request.runtime.repoRoot }),
    runsRoot: normalizePrefix(runsRootDir),
  };
}

const SecretsSchema = z.array(z.union([z.string(), z.instanceof(RegExp)], {
  error: "must be a string or a RegExp",
}));
const isFunction = (value: unknown) => typeof value === "function";
const ExecutorSchema = z.object({
  // Executors are plain objects that may carry fields of their own: only these are checked.
  executor: z.looseObject({
    execute: z.custom(isFunction, "must be a function: execute(run, context)"),
    secrets: SecretsSchema.optional(),
    validate: z.custom(isFunction, "must be a function: validate(request)").optional(),
  }, { error: "must be an object with an execute(run, context) method" }),
});

/**
 * Validates everything a run is given, before anything is written: the request, the options and,
 * when given, the executor (its shape, then its own `validate(request)` hook).
 */
export function validateRun(
  request: StepExecutionRequest,
  options: RunStepOptions,
  executor?: WorkerExecutor,
): void {
  parseOrThrow(StepExecutionRequestSchema, request, "Invalid step request");
  parseOrThrow(RunStepOptionsSchema, options, "Invalid runStep options");
  if (executor === undefined) return;
  parseOrThrow(ExecutorSchema, { executor }, "Invalid runStep executor");
  executor.validate?.(request);
}

/**
 * With the filesystem default (no `storage`), refuses a `runtime.repoRoot` that does not exist:
 * a typo there would otherwise create a new tree and scatter runs where nobody looks. An absolute
 * `runsRootDir` is a runs folder of its own and is created as needed. Only the default storage
 * touches the filesystem; `node:fs` is loaded lazily, like the fs adapter does.
 */
export async function checkDefaultRoot(
  request: StepExecutionRequest,
  options: RunStepOptions,
): Promise<void> {
  const runsRootDir = request.runtime.runsRootDir;
  if (options.storage !== undefined || (runsRootDir !== undefined && isAbsolutePath(runsRootDir))) {
    return;
  }
  const repoRoot = request.runtime.repoRoot;
  const fs = await import("node:fs/promises");
  let problem: string | undefined;
  try {
    if (!(await fs.stat(repoRoot)).isDirectory()) problem = "is not a directory";
  } catch (error) {
    const code = (error as { code?: string } | null)?.code;
    // Anything else (no read permission) is left to the storage, which reports it with the key.
    if (code === "ENOENT" || code === "ENOTDIR") problem = "does not exist";
  }
  if (problem !== undefined) {
    throw new ValidationError(
      [{
        path: "runtime.repoRoot",
        message: `must be an existing directory: '${repoRoot}' ${problem} ` +
          "(runs are written under it when no storage is given)",
      }],
      "Invalid step request",
    );
  }
}

/** Internal: a stream's cap split into the bytes kept from its start and from its end. */
export interface StreamCap {
  /** The whole cap: `headBytes + tailBytes`. */
  limitBytes: number;
  /** Bytes kept from the start, stored as they arrive. */
  headBytes: number;
  /** Bytes kept from the end, held in memory and stored when the stream ends. */
  tailBytes: number;
}

/** Internal: the cap of one stream, or undefined when it has none. */
export function streamCap(
  options: RunStepOptions,
  channel: StreamLogChannel,
): StreamCap | undefined {
  const caps = options.maxOutputBytes;
  const limitBytes = typeof caps === "number" ? caps : caps?.[channel];
  if (limitBytes === undefined) return undefined;
  const ratio = (typeof caps === "number" ? undefined : caps?.headRatio) ?? DEFAULT_HEAD_RATIO;
  const headBytes = Math.floor(limitBytes * ratio);
  return { limitBytes, headBytes, tailBytes: limitBytes - headBytes };
}
