// What every page of the viewer shares: the storage, the options after defaults, and links.

import type { RunStorage } from "../storage/types.ts";

/** Ids of a git checkpoint, for the restore command shown beside its diff. */
export interface RestoreCommandInput {
  /** Task id. */
  taskId: string;
  /** Run id. */
  runId: string;
  /** Checkpoint sequence. */
  seq: number;
  /** Runs prefix, when not the default. */
  runsRootDir?: string;
}

/** The viewer's settings after defaults. Internal to the viewer. */
export interface ViewerContext {
  /** The storage read. */
  storage: RunStorage;
  /** Runs prefix. */
  runsRootDir?: string;
  /** Path prefix the handler is mounted at (`""` or `/something`). */
  base: string;
  /** Title shown in the header. */
  appTitle: string;
  /** Runs per list page. */
  pageSize: number;
  /** Bytes of each log shown on the run page (the tail). */
  tailBytes: number;
  /** Bytes per page of the paged log view. */
  logPageBytes: number;
  /** Follow poll interval, ms. */
  pollMs: number;
  /** Heartbeat age past which a run is stale, ms. */
  staleAfterMs: number;
  /** The restore command shown for a git checkpoint. */
  restoreCommand: (input: RestoreCommandInput) => string;
}

/** Links of the viewer, built from ids with `encodeURIComponent` only. */
export const links = {
  /** The runs list. */
  list(ctx: ViewerContext, query?: Record<string, string | undefined>): string {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== "") params.set(key, value);
    }
    const search = params.toString();
    return `${ctx.base}/${search === "" ? "" : `?${search}`}`;
  },
  /** A run's page. */
  run(ctx: ViewerContext, taskId: string, runId: string): string {
    return `${ctx.base}/runs/${encodeURIComponent(taskId)}/${encodeURIComponent(runId)}`;
  },
  /** A run's log, paged, or its event stream. */
  log(ctx: ViewerContext, taskId: string, runId: string, channel: string): string {
    return `${links.run(ctx, taskId, runId)}/logs/${channel}`;
  },
  /** Both streams of a run in print order (their event stream is under it). */
  output(ctx: ViewerContext, taskId: string, runId: string): string {
    return `${links.run(ctx, taskId, runId)}/output`;
  },
  /** An artifact's download. */
  artifact(ctx: ViewerContext, taskId: string, runId: string, name: string): string {
    return `${links.run(ctx, taskId, runId)}/artifacts/${
      name.split("/").map(encodeURIComponent).join("/")
    }`;
  },
  /** A git checkpoint's patch. */
  patch(ctx: ViewerContext, taskId: string, runId: string, seq: number): string {
    return `${links.run(ctx, taskId, runId)}/checkpoints/${seq}.patch`;
  },
};
