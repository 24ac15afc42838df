// Settling a run's outcome: checks what an executor returned and decides what is recorded.

import { RunnerError } from "./errors.ts";
import type { RunAbortReason, WorkerExecutionOutcome } from "./executor.ts";
import type { LogLevel, StepExecutionOutcome, WorkerLifecycleEventType } from "./types.ts";

export const OUTCOMES: readonly StepExecutionOutcome[] = [
  "prepared",
  "completed",
  "failed",
  "blocked",
];
export const TERMINAL_EVENT: Record<StepExecutionOutcome, WorkerLifecycleEventType> = {
  prepared: "step_prepared",
  completed: "step_completed",
  failed: "step_failed",
  blocked: "step_blocked",
};

/** The lifecycle event types that end a run (one per outcome). */
export const TERMINAL_EVENT_TYPES: ReadonlySet<string> = new Set(Object.values(TERMINAL_EVENT));

export function outcomeLevel(outcome: StepExecutionOutcome): LogLevel {
  return outcome === "failed" ? "error" : outcome === "blocked" ? "warn" : "info";
}

export function errorMessage(error: unknown): string {
  let text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  // The cause often says why (a missing permission, an errno): keep it in what is recorded.
  const cause = error instanceof Error ? error.cause : undefined;
  if (cause instanceof Error && !text.includes(cause.message)) {
    text += ` (cause: ${cause.name}: ${cause.message})`;
  }
  // A summary lands in state.json and worker.log: keep a runaway message from bloating them.
  return text.length > 2000
    ? `${text.slice(0, 2000)}… (${text.length - 2000} more characters)`
    : text;
}

export const isStringArray = (value: unknown) =>
  value === undefined || (Array.isArray(value) && value.every((item) => typeof item === "string"));

export function checkOutcome(value: unknown): WorkerExecutionOutcome {
  const outcome = value as WorkerExecutionOutcome | undefined;
  if (
    typeof outcome !== "object" || outcome === null || !OUTCOMES.includes(outcome.outcome) ||
    typeof outcome.ok !== "boolean" || typeof outcome.summary !== "string"
  ) {
    throw new RunnerError("Executor returned an invalid outcome (needs ok, outcome and summary)");
  }
  if (!isStringArray(outcome.stdout) || !isStringArray(outcome.stderr)) {
    throw new RunnerError(
      "Executor returned an invalid outcome ('stdout' and 'stderr' must be string arrays)",
    );
  }
  if (outcome.exitCode !== undefined && !Number.isInteger(outcome.exitCode)) {
    throw new RunnerError("Executor returned an invalid outcome ('exitCode' must be an integer)");
  }
  return outcome;
}

/** How the execution phase ended. */
export type Ending =
  | { kind: "returned"; outcome: WorkerExecutionOutcome }
  | { kind: "threw"; error: unknown }
  | { kind: "abandoned" };

export function abortReason(signal: AbortSignal): RunAbortReason | undefined {
  if (!signal.aborted) return undefined;
  const reason = signal.reason as RunAbortReason | undefined;
  return reason && typeof reason === "object" && "reason" in reason ? reason : undefined;
}

/**
 * Turns how the execution phase ended into the outcome to record. A timeout or cancel wins over
 * whatever the executor reported: the run is failed, and the summary says why first.
 */
export function settle(
  ending: Ending,
  aborted: RunAbortReason | undefined,
): { outcome: WorkerExecutionOutcome; reason?: string } {
  let outcome: WorkerExecutionOutcome;
  let reason: string | undefined;
  if (ending.kind === "returned") outcome = ending.outcome;
  else if (ending.kind === "threw") {
    reason = "executor_error";
    outcome = {
      ok: false,
      outcome: "failed",
      summary: `Executor failed: ${errorMessage(ending.error)}`,
    };
  } else {
    outcome = {
      ok: false,
      outcome: "failed",
      summary: "The executor did not stop within the grace period.",
    };
  }
  if (aborted === undefined || aborted.reason === "storage") return { outcome, reason };
  const detail = ending.kind === "returned" ? "" : ` ${outcome.summary}`;
  const reported = ending.kind === "returned" ? ` ${outcome.summary}` : "";
  return {
    outcome: {
      ...outcome,
      ok: false,
      outcome: "failed",
      summary: `${aborted.message}${detail}${reported}`,
    },
    reason: aborted.reason,
  };
}
