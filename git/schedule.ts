// The cadence policy of git checkpoints: from ticks of "tree id at time t", when to store one.

/** Why a checkpoint is stored: by the cadence policy, or by the runner at an event. */
export type GitCheckpointTrigger = "cadence" | "quiet" | "final" | "timeout" | "cancel";

/** Bounds of the cadence, in milliseconds. */
export interface CheckpointCadence {
  /** Poll interval: the work tree is looked at this often. */
  minMs: number;
  /** A change is stored at the latest this long after the last stored checkpoint. */
  maxMs: number;
}

/** The state of the policy between ticks; plain data. */
export interface CheckpointScheduleState {
  /** Tree id of the last stored checkpoint (the base tree before any). */
  storedTree: string | undefined;
  /** When the last checkpoint was stored (the start before any), ms. */
  storedAt: number;
  /** Tree id seen at the previous tick. */
  previousTree: string | undefined;
}

/** What one tick decides. */
export interface CheckpointTickDecision {
  /** The state to pass to the next tick. */
  state: CheckpointScheduleState;
  /**
   * Store a checkpoint now: `quiet` when the tree changed and then stayed the same for one
   * poll, `cadence` when it changed and `maxMs` passed since the last stored checkpoint;
   * `undefined` otherwise.
   */
  store?: "quiet" | "cadence";
}

/**
 * The policy's state at the start of a run.
 *
 * @param startedAt The run's start, ms (the first `maxMs` counts from it).
 * @param baseTree The base commit's tree id: a work tree equal to it is not a change.
 * @returns The initial state.
 *
 * @example
 * ```ts
 * import { initialCheckpointSchedule } from "./schedule.ts";
 * const state = initialCheckpointSchedule(0, "4b825dc642cb6eb9a060e54bf8d69288fbee4904");
 * console.log(state.storedAt); // 0
 * ```
 */
export function initialCheckpointSchedule(
  startedAt: number,
  baseTree?: string,
): CheckpointScheduleState {
  return { storedTree: baseTree, storedAt: startedAt, previousTree: undefined };
}

/**
 * One poll of the cadence loop: given the tree id seen at time `at`, decides whether to store.
 *
 * A tree equal to the last stored one is never stored. A changed tree is stored once it is
 * the same as at the previous poll (`quiet`: the agent paused), or once `maxMs` passed since
 * the last stored checkpoint even while it keeps changing (`cadence`). Pure: no clock, no
 * timer; call {@linkcode checkpointStored} after a checkpoint was actually stored.
 *
 * @param cadence Poll interval and maximum gap.
 * @param state The state from the previous tick (or {@linkcode initialCheckpointSchedule}).
 * @param tick The tree id seen and when, ms.
 * @returns The next state and the trigger to store with, if any.
 *
 * @example
 * ```ts
 * import { checkpointTick, initialCheckpointSchedule } from "./schedule.ts";
 * const cadence = { minMs: 5000, maxMs: 60000 };
 * let state = initialCheckpointSchedule(0, "base");
 * let decision = checkpointTick(cadence, state, { tree: "t1", at: 5000 });
 * console.log(decision.store); // undefined: changed, not yet quiet
 * decision = checkpointTick(cadence, decision.state, { tree: "t1", at: 10000 });
 * console.log(decision.store); // "quiet"
 * ```
 */
export function checkpointTick(
  cadence: CheckpointCadence,
  state: CheckpointScheduleState,
  tick: { tree: string; at: number },
): CheckpointTickDecision {
  const next: CheckpointScheduleState = { ...state, previousTree: tick.tree };
  if (tick.tree === state.storedTree) return { state: next };
  if (tick.tree === state.previousTree) return { state: next, store: "quiet" };
  if (tick.at - state.storedAt >= cadence.maxMs) return { state: next, store: "cadence" };
  return { state: next };
}

/**
 * Records that a checkpoint of `tree` was stored at `at` (by the policy or at an event), so
 * the same tree is not stored again and the `maxMs` gap restarts.
 *
 * @param state The current state.
 * @param stored The stored tree id and when, ms.
 * @returns The next state.
 *
 * @example
 * ```ts
 * import { checkpointStored, initialCheckpointSchedule } from "./schedule.ts";
 * const state = checkpointStored(initialCheckpointSchedule(0), { tree: "t1", at: 7000 });
 * console.log(state.storedTree, state.storedAt); // "t1" 7000
 * ```
 */
export function checkpointStored(
  state: CheckpointScheduleState,
  stored: { tree: string; at: number },
): CheckpointScheduleState {
  return { ...state, storedTree: stored.tree, storedAt: stored.at };
}

/** A stateful wrapper of the policy for a runner loop; see {@linkcode createCheckpointSchedule}. */
export interface CheckpointSchedule {
  /** The poll interval, ms. */
  readonly pollMs: number;
  /** Feeds one poll; returns the trigger to store with, if any. */
  tick(tree: string, at: number): "quiet" | "cadence" | undefined;
  /** Records a stored checkpoint (whatever its trigger). */
  stored(tree: string, at: number): void;
  /** The current state (a copy). */
  state(): CheckpointScheduleState;
}

/**
 * Wraps {@linkcode checkpointTick} and {@linkcode checkpointStored} around one state, for a
 * loop that polls every `cadence.minMs`, takes a snapshot, and stores when told to.
 *
 * @param cadence Poll interval and maximum gap, ms; `minMs` > 0 and `maxMs` >= `minMs`.
 * @param start The run's start (ms) and the base tree id.
 * @returns The schedule.
 * @throws {RangeError} When the bounds are not positive or `maxMs` < `minMs`.
 *
 * @example
 * ```ts
 * import { createCheckpointSchedule } from "./schedule.ts";
 * const schedule = createCheckpointSchedule({ minMs: 5000, maxMs: 60000 }, { startedAt: 0, baseTree: "base" });
 * schedule.tick("t1", 5000);
 * const trigger = schedule.tick("t1", 10000); // "quiet"
 * if (trigger) schedule.stored("t1", 10000);
 * ```
 */
export function createCheckpointSchedule(
  cadence: CheckpointCadence,
  start: { startedAt: number; baseTree?: string },
): CheckpointSchedule {
  if (!(cadence.minMs > 0) || !(cadence.maxMs >= cadence.minMs)) {
    throw new RangeError(
      `Invalid checkpoint cadence: minMs ${cadence.minMs} must be > 0 and <= maxMs ${cadence.maxMs}`,
    );
  }
  let state = initialCheckpointSchedule(start.startedAt, start.baseTree);
  return {
    pollMs: cadence.minMs,
    tick(tree, at) {
      const decision = checkpointTick(cadence, state, { tree, at });
      state = decision.state;
      return decision.store;
    },
    stored(tree, at) {
      state = checkpointStored(state, { tree, at });
    },
    state: () => ({ ...state }),
  };
}
