// The executor contract: what a worker receives (the prepared run and a context) and returns.

import type { WorkerProcessInfo } from "./owner.ts";
import type {
  PreparedStepRun,
  StepArtifact,
  StepExecutionOutcome,
  StepExecutionRequest,
  StructuredData,
} from "./types.ts";

/** Options of {@linkcode WorkerExecutionContext.saveArtifact}. */
export interface SaveArtifactOptions {
  /** Free-form kind, e.g. `"patch"`, `"report"`; defaults to `"file"`. */
  kind?: string;
  /** One line saying what the artifact is. */
  description?: string;
}

/**
 * What an executor gets besides the run: live output, cancellation and artifacts.
 *
 * `stdout`/`stderr` take text (stored as UTF-8) or raw bytes (stored verbatim, copied, so the
 * caller may reuse its buffer). They return
 * `undefined` while the run's buffers have room and a promise while they are full: an executor
 * that prints a lot should `await` the result so memory stays bounded; one that ignores it still
 * works. Output written after the run closed (timeout, cancel) is ignored.
 */
export interface WorkerExecutionContext {
  /** Records a stdout chunk. Await the result when it is a promise (backpressure). */
  stdout(chunk: string | Uint8Array): void | Promise<void>;
  /** Records a stderr chunk. Await the result when it is a promise (backpressure). */
  stderr(chunk: string | Uint8Array): void | Promise<void>;
  /**
   * Aborts when the run is cancelled (`options.signal`), times out (`request.timeoutSec`) or
   * its storage fails; `signal.reason` is a `RunAbortReason`.
   */
  readonly signal: AbortSignal;
  /**
   * Stores bytes under the run's `artifacts/<name>` and lists them in the result.
   * `name` is one or more `/`-separated path-safe segments.
   */
  saveArtifact(
    name: string,
    data: string | Uint8Array,
    options?: SaveArtifactOptions,
  ): Promise<StepArtifact>;
  /**
   * Records the worker's process (pid, process group) in `state.json`'s `owner`, so an operator
   * or a reaper can find it. Executors that start a process call it once it runs.
   */
  reportProcess?(info: WorkerProcessInfo): void;
}

/** What an executor reports when it finishes. */
export interface WorkerExecutionOutcome {
  /** Whether the step succeeded. */
  ok: boolean;
  /** The step's outcome; `"prepared"` means nothing was executed (the placeholder). */
  outcome: StepExecutionOutcome;
  /** One or two sentences for humans. */
  summary: string;
  /** The worker asks for a human. */
  needsHuman?: boolean;
  /** The worker is blocked; defaults to `outcome === "blocked"`. */
  blocked?: boolean;
  /** Exit code; defaults to 0 when `ok`, else 1. */
  exitCode?: number;
  /** Signal that ended the worker process, e.g. `"SIGKILL"`. */
  signal?: string;
  /** Lines of stdout, each stored with a trailing `\n` when it lacks one. */
  stdout?: string[];
  /** Lines of stderr, each stored with a trailing `\n` when it lacks one. */
  stderr?: string[];
  /** Extra artifacts to list in the result (besides those saved through the context). */
  artifacts?: StepArtifact[];
  /** Follow-up steps the worker suggests. */
  suggestedFollowup?: string[];
  /** Extra data recorded on the terminal lifecycle event. */
  data?: StructuredData;
}

/**
 * Runs one attempt of one step. A plain object: `{ execute(run, context) { ... } }`.
 * `context` may be ignored; returning `stdout`/`stderr` arrays works as in the seed.
 */
export interface WorkerExecutor {
  /**
   * Values the runner must mask before anything is stored, in addition to
   * `options.secrets` (e.g. environment values a process executor was told are secret).
   */
  readonly secrets?: readonly (string | RegExp)[];
  /**
   * Optional check that this executor can run `request`, made by `runStep` before anything is
   * written (after the request and options passed validation). Throws a `ValidationError` naming
   * the field when it cannot, e.g. a process executor given no command; returns otherwise.
   */
  validate?(request: StepExecutionRequest): void;
  /** Executes the prepared run and reports its outcome. May throw: the run is then `failed`. */
  execute(
    run: PreparedStepRun,
    context: WorkerExecutionContext,
  ): WorkerExecutionOutcome | Promise<WorkerExecutionOutcome>;
}

/** Why a run's context signal aborted; found as `context.signal.reason`. */
export interface RunAbortReason {
  /** `timeout`: `request.timeoutSec` passed. `cancelled`: `options.signal` aborted. `storage`: the storage failed. */
  reason: "timeout" | "cancelled" | "storage";
  /** Human-readable description. */
  message: string;
}
