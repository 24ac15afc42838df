// The runner's side of git checkpoints: wiring a run's capturer to its write queue, checkpoint
// sequence and lifecycle log. The git module itself is loaded only when a run asks for it.

import type { GitCheckpointer } from "../git/checkpoints.ts";
import { type LiveRun, patchState, recordEvent } from "./open-run.ts";

/**
 * Starts the cadence loop of a run's git checkpoints, when the run has a capturer.
 *
 * @param live The run.
 * @returns The checkpointer, or undefined when git checkpoints are off.
 */
export async function startRunCheckpoints(live: LiveRun): Promise<GitCheckpointer | undefined> {
  const capturer = live.git?.capturer;
  const settings = live.config.git;
  if (capturer === undefined || settings === undefined) return undefined;
  const { startGitCheckpoints } = await import("../git/checkpoints.ts");
  const { run, writer, storage, redactor } = live;
  const manager = run.checkpointManager;
  const json = (value: unknown) => JSON.stringify(value, null, 2) + "\n";
  return await startGitCheckpoints(capturer, {
    writeObject: (key, data) =>
      writer.enqueue(() => storage.write(key, data, { ifNoneMatch: "*" })).then(() => {}),
    async storeRecord(summary, data) {
      const record = manager.create(run.checkpoint, "git_diff", summary, data);
      // Paths and summaries are masked like every other record; the patch itself cannot be
      // (it would no longer apply), which is why secret files are excluded by default.
      const body = json(redactor ? redactor.redactData(record) : record);
      await writer.enqueue(() => storage.write(record.file.storageKey, body, { ifNoneMatch: "*" }));
      patchState(run, { checkpointSeq: record.seq });
      return record;
    },
    rewriteRecord: (record) =>
      writer.enqueue(() =>
        storage.write(
          record.file.storageKey,
          json(redactor ? redactor.redactData(record) : record),
        )
      ).then(() => {}),
    deleteObject: (key) => writer.enqueue(() => storage.delete(key)),
    locate: (key) => storage.locate(key),
    nextRecordKey: () =>
      `${manager.checkpointsKey}/${
        String(run.checkpoint.nextCheckpointSeq).padStart(4, "0")
      }-git_diff.json`,
    event: (type, level, message, data) => recordEvent(live, { type, level, message, data }),
  }, {
    cadence: { minMs: settings.cadenceSec.min * 1000, maxMs: settings.cadenceSec.max * 1000 },
    keepPatches: settings.keepPatches,
    captureTimeoutMs: settings.captureTimeoutMs,
  }, Date.now());
}
