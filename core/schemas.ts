// Zod schemas for the request and the stored records, and the one helper that turns zod issues
// into a ValidationError naming the field.

import { z } from "zod";
import { ValidationError, type ValidationIssue } from "./errors.ts";
import type {
  OutputIndexEntry,
  RunMetadata,
  RunStateSnapshot,
  StepExecutionRequest,
  WorkerLifecycleLogEntry,
} from "./types.ts";

/**
 * The exported schemas' type: zod schemas at run time (`parse`, `safeParse` and the rest of zod's
 * API work on them), typed by the part this library promises so the public types stay our own.
 */
export interface RunnerSchema<T> {
  /** Returns the parsed value or throws zod's error. */
  parse(value: unknown): T;
  /** Returns `{ success, data }` or `{ success: false, error }` without throwing. */
  safeParse(value: unknown): SchemaParseResult<T>;
}

/** What {@linkcode RunnerSchema.safeParse} returns. */
export type SchemaParseResult<T> =
  | { success: true; data: T }
  | {
    success: false;
    error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] };
  };

/** Longest id accepted, in characters. */
export const MAX_ID_LENGTH = 128;

// deno-lint-ignore no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/**
 * Returns why `value` cannot be used as an id that ends up in paths and keys, or undefined.
 *
 * @param value The candidate id.
 * @returns A reason, or `undefined` when the id is safe.
 */
export function idProblem(value: string): string | undefined {
  if (value.length === 0) return "must not be empty";
  if (value.length > MAX_ID_LENGTH) return `must be at most ${MAX_ID_LENGTH} characters`;
  if (value.trim() !== value) return "must not start or end with whitespace";
  if (CONTROL_CHARS.test(value)) return "must not contain control characters";
  if (value.includes("/")) return "must not contain '/'";
  if (value.includes("\\")) return "must not contain '\\'";
  if (value.includes("..")) return "must not contain '..'";
  if (value === ".") return "must not be '.'";
  return undefined;
}

/** A path-safe id: 1–128 characters, no `/`, `\`, `..`, control characters. */
export const IdSchema: RunnerSchema<string> = idSchema();

/** Internal: the id schema as a zod type, for composing into other schemas. */
export function idSchema(): z.ZodType<string> {
  return z.string().superRefine((value, ctx) => {
    const problem = idProblem(value);
    if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
  });
}

/** What a `command` may be, as error messages say it. */
export const COMMAND_EXPECTED =
  "must be a non-empty string (run by /bin/sh -c) or a non-empty array of strings (argv)";

const nonEmpty = () => z.string().min(1, "must not be empty");
const isoDate = z.string().refine((v) => !Number.isNaN(Date.parse(v)), "must be an ISO 8601 date");

const runsRootDirSchema = z.string().min(1).max(1024).superRefine((value, ctx) => {
  if (CONTROL_CHARS.test(value)) {
    ctx.addIssue({ code: "custom", message: "must not contain control characters" });
  }
  const relative = value.replace(/^([A-Za-z]:)?[\\/]+/, "");
  if (relative.split(/[\\/]/).some((segment) => segment === "..")) {
    ctx.addIssue({ code: "custom", message: "must not contain a '..' segment" });
  }
});

/**
 * Schema of {@linkcode StepExecutionRequest}. Unknown keys are refused (a misspelled field would
 * otherwise be silently ignored).
 */
export const StepExecutionRequestSchema: RunnerSchema<StepExecutionRequest> = z.strictObject({
  taskId: idSchema(),
  stepId: idSchema(),
  stepName: nonEmpty().max(1000),
  stepKind: nonEmpty().max(200),
  runId: idSchema(),
  attempt: z.number().int().min(1).max(1_000_000),
  workerKind: nonEmpty().max(200),
  timeoutSec: z.number().positive().max(7 * 24 * 3600),
  createdAt: isoDate.optional(),
  promptSummary: z.string().max(100_000).optional(),
  command: z.union([
    z.string().min(1),
    z.array(z.string()).min(1),
  ], { error: COMMAND_EXPECTED }).optional(),
  runtime: z.strictObject({
    repoRoot: nonEmpty().max(4096),
    worktreePath: nonEmpty().max(4096),
    runsRootDir: runsRootDirSchema.optional(),
  }),
  checkpoint: z.strictObject({
    mode: z.enum(["capture", "disabled"]).optional(),
    summary: z.boolean().optional(),
    logTail: z.boolean().optional(),
    logTailLines: z.number().int().min(1).max(1000).optional(),
    gitDiff: z.strictObject({
      cadenceSec: z.strictObject({ min: z.number().positive(), max: z.number().positive() })
        .refine((c) => c.min <= c.max, "min must not exceed max").optional(),
      baseRef: z.string().min(1).refine((ref) => !ref.startsWith("-"), "must not start with '-'")
        .optional(),
      includeStat: z.boolean().optional(),
      maxPatchBytes: z.number().int().positive().optional(),
      maxUntrackedFileBytes: z.number().int().positive().optional(),
      maxUntrackedDirFiles: z.number().int().positive().optional(),
      exclude: z.array(z.string().min(1)).optional(),
      defaultExcludes: z.boolean().optional(),
      keepPatches: z.number().int().min(1).optional(),
      captureTimeoutSec: z.number().positive().max(3600).optional(),
    }).optional(),
  }).optional(),
  resumeFrom: z.strictObject({
    runId: idSchema(),
    seq: z.number().int().min(1).optional(),
  }).optional(),
}) as unknown as RunnerSchema<StepExecutionRequest>;

/** Schema of `meta.json`. */
export const RunMetadataSchema: RunnerSchema<RunMetadata> = z.object({
  layoutVersion: z.string(),
  taskId: z.string(),
  stepId: z.string(),
  stepName: z.string(),
  runId: z.string(),
  workerKind: z.string(),
  attempt: z.number(),
  repoRoot: z.string(),
  worktreePath: z.string(),
  createdAt: z.string(),
  checkpointMode: z.string(),
  promptSummary: z.string().optional(),
  command: z.union([z.string(), z.array(z.string())]).optional(),
  git: z.object({ baseCommit: z.string() }).optional(),
  resumedFrom: z.object({ runId: z.string(), seq: z.number(), baseCommit: z.string() }).optional(),
});

/** Schema of `state.json`. */
export const RunStateSnapshotSchema: RunnerSchema<RunStateSnapshot> = z.object({
  status: z.enum(["prepared", "running", "completed", "failed", "blocked"]),
  attempt: z.number(),
  startedAt: z.string(),
  updatedAt: z.string(),
  finishedAt: z.string().optional(),
  lastEventSeq: z.number(),
  checkpointSeq: z.number(),
  summary: z.string().optional(),
  exitCode: z.number().optional(),
  stdoutBytes: z.number().optional(),
  stderrBytes: z.number().optional(),
  droppedBytes: z.object({ stdout: z.number(), stderr: z.number() }).optional(),
  reason: z.string().optional(),
  signal: z.string().optional(),
  lastOutputAt: z.string().optional(),
  owner: z.object({
    host: z.string().optional(),
    bootId: z.string().optional(),
    pid: z.number().optional(),
    runtime: z.string().optional(),
    worker: z.object({ pid: z.number(), pgid: z.number().optional() }).optional(),
  }).optional(),
});

const structuredValue: z.ZodType<unknown> = z.lazy(() =>
  z.union([
    z.string(),
    z.number(),
    z.boolean(),
    z.null(),
    z.array(structuredValue),
    z.record(z.string(), structuredValue),
  ])
);

/** Schema of one `output-index.jsonl` line. */
export const OutputIndexEntrySchema: RunnerSchema<OutputIndexEntry> = z.object({
  seq: z.number().int().positive(),
  lastSeq: z.number().int().positive().optional(),
  stream: z.enum(["stdout", "stderr"]),
  offset: z.number().int().min(0),
  length: z.number().int().min(0),
  at: z.string(),
});

/** Schema of one `worker.log` line. */
export const WorkerLifecycleLogEntrySchema: RunnerSchema<WorkerLifecycleLogEntry> = z.object({
  taskId: z.string(),
  stepId: z.string(),
  runId: z.string(),
  seq: z.number().int().positive(),
  channel: z.literal("worker"),
  eventId: z.string(),
  type: z.enum([
    "run_prepared",
    "checkpoint_slot_reserved",
    "checkpoint_restored",
    "worker_started",
    "checkpoint_captured",
    "checkpoint_failed",
    "artifact_saved",
    "output_truncated",
    "worker_execution_deferred",
    "worker_exited",
    "step_prepared",
    "step_completed",
    "step_failed",
    "step_blocked",
  ]),
  level: z.enum(["debug", "info", "warn", "error"]),
  createdAt: z.string(),
  message: z.string(),
  data: z.record(z.string(), structuredValue),
  renderedLine: z.string(),
}) as unknown as RunnerSchema<WorkerLifecycleLogEntry>;

/** A zod issue, as far as {@linkcode toValidationError} reads it. */
interface IssueLike {
  readonly path: readonly PropertyKey[];
  readonly message: string;
  readonly code?: string;
  readonly expected?: string;
  readonly origin?: string;
  readonly minimum?: number | bigint;
  readonly maximum?: number | bigint;
  readonly inclusive?: boolean;
  readonly values?: readonly unknown[];
  readonly keys?: readonly string[];
}

const TYPE_NAMES: Record<string, string> = {
  array: "an array",
  bigint: "a bigint",
  boolean: "a boolean",
  function: "a function",
  int: "an integer",
  number: "a number",
  object: "an object",
  string: "a string",
};

// The start of zod's own messages; any other message was written for the field and is kept.
const ZOD_DEFAULT_MESSAGE = /^(Invalid input|Invalid option|Too small|Too big|Unrecognized key)/;

/**
 * What was expected, as "must ..." words: zod's own messages ("Invalid input", "Too small:
 * expected number to be >=0") do not say it in terms of the field. Custom messages pass through.
 */
function expectation(issue: IssueLike): string {
  if (!ZOD_DEFAULT_MESSAGE.test(issue.message)) return issue.message;
  const min = Number(issue.minimum);
  const max = Number(issue.maximum);
  switch (issue.code) {
    case "invalid_type": {
      const expected = TYPE_NAMES[issue.expected ?? ""] ?? issue.expected ?? "something else";
      const received = /received (\w+)/.exec(issue.message)?.[1];
      if (received === "undefined") return `must be ${expected} (it is missing)`;
      if (received === undefined || (issue.expected === "int" && received === "number")) {
        return `must be ${expected}`;
      }
      return `must be ${expected}, not ${TYPE_NAMES[received] ?? received}`;
    }
    case "too_small":
      if (issue.origin === "string") {
        return min <= 1 ? "must not be empty" : `must be at least ${min} characters`;
      }
      if (issue.origin === "array" || issue.origin === "set") {
        return `must have at least ${min} item${min === 1 ? "" : "s"}`;
      }
      return issue.inclusive === false ? `must be greater than ${min}` : `must be at least ${min}`;
    case "too_big":
      if (issue.origin === "string") return `must be at most ${max} characters`;
      if (issue.origin === "array" || issue.origin === "set") {
        return `must have at most ${max} item${max === 1 ? "" : "s"}`;
      }
      return issue.inclusive === false ? `must be less than ${max}` : `must be at most ${max}`;
    case "invalid_value": {
      const values = (issue.values ?? []).map((value) => JSON.stringify(value));
      return values.length === 1 ? `must be ${values[0]}` : `must be one of ${values.join(", ")}`;
    }
    case "invalid_union":
      return "does not match any accepted form";
    default:
      return issue.message;
  }
}

/**
 * Converts zod issues into a {@linkcode ValidationError} naming the first offending field and
 * saying what was expected there. An unknown key (a typo such as `timeoutMs`) becomes an issue
 * of its own, named by its path.
 *
 * @param error The zod error.
 * @param context Message prefix, e.g. `Invalid step request`.
 * @returns The error to throw.
 */
export function toValidationError(
  error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] },
  context: string,
): ValidationError {
  const pathOf = (path: readonly PropertyKey[]) =>
    path.length === 0 ? "(root)" : path.map(String).join(".");
  const issues: ValidationIssue[] = (error.issues as readonly IssueLike[]).flatMap((issue) =>
    issue.code === "unrecognized_keys" && issue.keys !== undefined
      ? issue.keys.map((key) => ({
        path: pathOf([...issue.path, key]),
        message: "is not a known key (misspelled, or not supported by this version)",
      }))
      : [{ path: pathOf(issue.path), message: expectation(issue) }]
  );
  return new ValidationError(issues, context);
}

/**
 * Parses `value` with `schema` or throws a {@linkcode ValidationError}.
 *
 * @param schema The schema.
 * @param value The input.
 * @param context Message prefix.
 * @returns The parsed value.
 */
export function parseOrThrow<T>(schema: RunnerSchema<T>, value: unknown, context: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw toValidationError(parsed.error, context);
  return parsed.data;
}
