// Tests of the git checkpoint cadence policy, driven by a fake clock.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  checkpointStored,
  checkpointTick,
  createCheckpointSchedule,
  initialCheckpointSchedule,
} from "../git/schedule.ts";

const cadence = { minMs: 5_000, maxMs: 30_000 };

/** Runs a loop polling every minMs over a timeline of trees; returns what was stored when. */
function simulate(timeline: (at: number) => string, until: number): [number, string, string][] {
  const schedule = createCheckpointSchedule(cadence, { startedAt: 0, baseTree: "base" });
  const stored: [number, string, string][] = [];
  for (let at = cadence.minMs; at <= until; at += schedule.pollMs) {
    const tree = timeline(at);
    const trigger = schedule.tick(tree, at);
    if (trigger !== undefined) {
      stored.push([at, tree, trigger]);
      schedule.stored(tree, at);
    }
  }
  return stored;
}

describe("git checkpoint cadence", () => {
  it("stores nothing while the tree equals the base tree", () => {
    assert.deepEqual(simulate(() => "base", 120_000), []);
  });

  it("stores a change once it stayed the same for one poll (quiet), and only once", () => {
    // Changed at 12 s, then still: seen at 15 s, the same at 20 s.
    const stored = simulate((at) => (at < 12_000 ? "base" : "t1"), 120_000);
    assert.deepEqual(stored, [[20_000, "t1", "quiet"]]);
  });

  it("stores a tree that keeps changing when max passed since the last stored one (cadence)", () => {
    // A new tree at every poll: never quiet.
    const stored = simulate((at) => `t${at}`, 70_000);
    assert.deepEqual(stored, [
      [30_000, "t30000", "cadence"],
      [60_000, "t60000", "cadence"],
    ]);
  });

  it("counts max from the last stored checkpoint, whatever stored it", () => {
    const schedule = createCheckpointSchedule(cadence, { startedAt: 0, baseTree: "base" });
    assert.equal(schedule.tick("t1", 5_000), undefined);
    // The runner stored a checkpoint for its own reason (e.g. a final capture) at 8 s.
    schedule.stored("t1", 8_000);
    assert.equal(schedule.tick("t1", 10_000), undefined, "the stored tree is not stored again");
    assert.equal(schedule.tick("t2", 35_000), undefined, "27 s since the last stored one");
    assert.equal(schedule.tick("t3", 38_000), "cadence");
  });

  it("does not store a change undone within a poll", () => {
    const schedule = createCheckpointSchedule(cadence, { startedAt: 0, baseTree: "base" });
    assert.equal(schedule.tick("t1", 5_000), undefined);
    assert.equal(schedule.tick("base", 10_000), undefined);
    assert.equal(schedule.tick("base", 15_000), undefined);
    assert.equal(schedule.tick("base", 60_000), undefined);
  });

  it("retries after a failed store: nothing is recorded until stored() is called", () => {
    const schedule = createCheckpointSchedule(cadence, { startedAt: 0, baseTree: "base" });
    schedule.tick("t1", 5_000);
    assert.equal(schedule.tick("t1", 10_000), "quiet");
    // The capture failed: stored() is not called, so the next poll asks again.
    assert.equal(schedule.tick("t1", 15_000), "quiet");
  });

  it("is a pure function of its state", () => {
    const start = initialCheckpointSchedule(1_000, "base");
    const first = checkpointTick(cadence, start, { tree: "t1", at: 6_000 });
    assert.deepEqual(start, { storedTree: "base", storedAt: 1_000, previousTree: undefined });
    assert.equal(first.store, undefined);
    const again = checkpointTick(cadence, first.state, { tree: "t1", at: 11_000 });
    assert.equal(again.store, "quiet");
    const after = checkpointStored(again.state, { tree: "t1", at: 11_000 });
    assert.deepEqual(after, { storedTree: "t1", storedAt: 11_000, previousTree: "t1" });
    // Without a base tree, the first tree seen is a change.
    const noBase = checkpointTick(cadence, initialCheckpointSchedule(0), { tree: "x", at: 30_000 });
    assert.equal(noBase.store, "cadence");
  });

  it("refuses bounds that are not positive or out of order", () => {
    assert.throws(
      () => createCheckpointSchedule({ minMs: 0, maxMs: 10 }, { startedAt: 0 }),
      RangeError,
    );
    assert.throws(
      () => createCheckpointSchedule({ minMs: 10, maxMs: 5 }, { startedAt: 0 }),
      RangeError,
    );
  });
});
