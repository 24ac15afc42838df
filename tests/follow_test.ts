// followRunLog() and watchRun() on the local storages: byte-exact live following across the
// switch from segments to the composed log, starting mid-log, waiting for a run to appear,
// staleness (a prepared-then-abandoned run, and a writer process killed with SIGKILL), and the
// cost of a poll.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, it } from "node:test";
import {
  createFsStorage,
  createMemoryStorage,
  followRunLog,
  prepareStepRun,
  readRun,
  readRunLog,
  readRunLogBytes,
  type RunChange,
  RunStaleError,
  runStep,
  type RunStorage,
  ValidationError,
  watchRun,
  type WorkerExecutor,
} from "../mod.ts";
import { baseRequest, localStorages, withoutAppend, withTempDir } from "./helpers.ts";

const ref = { taskId: "task-1", runId: "run-1" };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Prints `count` chunks (multi-byte text included), pausing so that flushes interleave. */
function printer(count: number, pauseEvery = 10): { executor: WorkerExecutor; expected: string } {
  const chunks = Array.from({ length: count }, (_, i) => `chunk ${i} é漢 ${"x".repeat(i % 50)}\n`);
  return {
    expected: chunks.join(""),
    executor: {
      async execute(_run, context) {
        for (let i = 0; i < chunks.length; i++) {
          const pending = context.stdout(chunks[i]);
          if (pending) await pending;
          if (i % pauseEvery === 0) await sleep(3);
        }
        return { ok: true, outcome: "completed", summary: "printed" };
      },
    },
  };
}

async function collectBytes(iterable: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const part of iterable) parts.push(part);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

for (const [name, make] of Object.entries(localStorages)) {
  describe(`followRunLog() on ${name}`, () => {
    it("started before the run exists, yields stdout byte-exact and ends when the run ends", async () => {
      const { storage, done } = await make();
      try {
        const follower = collectBytes(followRunLog(storage, ref, "stdout", { pollMs: 5 }));
        await sleep(30); // the follower is polling a run that does not exist yet
        const { executor, expected } = printer(400);
        const result = await runStep(baseRequest(), executor, { storage, flushIntervalMs: 10 });
        assert.equal(result.outcome, "completed");
        const followed = await follower;
        assert.equal(decode(followed), expected);
        assert.deepEqual(followed, await readRunLogBytes(storage, ref, "stdout"));
      } finally {
        await done();
      }
    });

    it("started with `from` in the middle of a live run, yields exactly the rest", async () => {
      const { storage, done } = await make();
      try {
        const { executor, expected } = printer(300);
        const bytes = new TextEncoder().encode(expected);
        const from = Math.floor(bytes.byteLength / 2) + 1; // inside a multi-byte character
        const follower = collectBytes(followRunLog(storage, ref, "stdout", { from, pollMs: 5 }));
        await runStep(baseRequest(), executor, { storage, flushIntervalMs: 10 });
        assert.deepEqual(await follower, bytes.subarray(from));
        // After the run: the same from the composed log.
        const again = await collectBytes(followRunLog(storage, ref, "stdout", { from }));
        assert.deepEqual(again, bytes.subarray(from));
      } finally {
        await done();
      }
    });

    it("ends with RunStaleError, after every stored byte, when the run's writer is gone", async () => {
      const { storage, done } = await make();
      try {
        await prepareStepRun(baseRequest(), { storage }); // prepared, then nobody runs it
        const started = Date.now();
        const follower = collectBytes(
          followRunLog(storage, ref, "stdout", { pollMs: 20, staleAfterMs: 300 }),
        );
        await assert.rejects(follower, (error: unknown) => {
          assert.ok(error instanceof RunStaleError);
          assert.equal(error.code, "run_stale");
          assert.equal(error.offset, 0);
          assert.equal(error.runId, "run-1");
          return true;
        });
        const elapsed = Date.now() - started;
        assert.ok(elapsed >= 250 && elapsed < 5_000, `stale after ${elapsed} ms`);
      } finally {
        await done();
      }
    });
  });

  describe(`watchRun() on ${name}`, () => {
    it("yields the run's events in order and state changes, ending with the terminal state", async () => {
      const { storage, done } = await make();
      try {
        const changes: RunChange[] = [];
        const watcher = (async () => {
          for await (const change of watchRun(storage, ref, { pollMs: 5 })) changes.push(change);
        })();
        const { executor } = printer(100);
        await runStep(baseRequest(), executor, {
          storage,
          flushIntervalMs: 10,
          heartbeatMs: 20,
        });
        await watcher;
        const run = await readRun(storage, ref);
        const events = changes.flatMap((c) => c.type === "event" ? [c.event] : []);
        assert.deepEqual(events.map((e) => e.seq), run.events.map((e) => e.seq));
        assert.deepEqual(events.map((e) => e.type), run.events.map((e) => e.type));
        const last = changes.at(-1)!;
        assert.equal(last.type, "state");
        assert.equal(last.type === "state" && last.state.status, "completed");
        assert.equal(last.type === "state" && last.liveness, "finished");
        const states = changes.flatMap((c) => c.type === "state" ? [c.state] : []);
        // Heartbeats that only move updatedAt are not changes.
        const shapes = states.map((s) => JSON.stringify({ ...s, updatedAt: 0 }));
        assert.equal(new Set(shapes).size, shapes.length, "no two equal states in a row");
      } finally {
        await done();
      }
    });

    it("ends with a stale change when the run's writer is gone", async () => {
      const { storage, done } = await make();
      try {
        await prepareStepRun(baseRequest(), { storage });
        const changes: RunChange[] = [];
        for await (const change of watchRun(storage, ref, { pollMs: 20, staleAfterMs: 300 })) {
          changes.push(change);
        }
        assert.equal(changes.at(-1)?.type, "stale");
        assert.equal(changes.filter((c) => c.type === "stale").length, 1);
        const run = await readRun(storage, ref);
        const events = changes.flatMap((c) => c.type === "event" ? [c.event.seq] : []);
        assert.deepEqual(events, run.events.map((e) => e.seq), "every stored event first");
      } finally {
        await done();
      }
    });
  });
}

describe("followRunLog()", () => {
  it("costs per poll what is new, not the run's size (segments listed after the last one seen)", async () => {
    let reads = 0;
    let lists = 0;
    let listed = 0;
    const inner = withoutAppend(createMemoryStorage());
    const counted: RunStorage = {
      ...inner,
      read: (key) => (reads++, inner.read(key)),
      readRange: (key, range) => (reads++, inner.readRange!(key, range)),
      async *list(prefix, options) {
        lists++;
        for await (const key of inner.list(prefix, options)) {
          listed++;
          yield key;
        }
      },
    };
    let polls = 0;
    const follower = (async () => {
      const out: Uint8Array[] = [];
      for await (const chunk of followRunLog(counted, ref, "stdout", { pollMs: 5 })) {
        out.push(chunk);
      }
      return out;
    })();
    const pollCounter = setInterval(() => polls++, 5);
    const { executor, expected } = printer(2_000, 4);
    const result = await runStep(baseRequest(), executor, {
      storage: inner,
      flushIntervalMs: 5,
    });
    const chunks = await follower;
    clearInterval(pollCounter);
    assert.equal(
      decode(
        await collectBytes((async function* () {
          yield* chunks;
        })()),
      ),
      expected,
    );
    const segments = result.metrics.storageWrites; // an upper bound of the segments written
    // Per poll: state.json, the log's key, one listing (plus meta.json before the run exists);
    // per segment: one read. Listing after the last segment seen keeps `listed` linear.
    assert.ok(listed <= segments + lists, `listed ${listed} keys in ${lists} listings`);
    assert.ok(reads <= 4 * lists + segments + 10, `${reads} reads for ${lists} polls`);
  });

  it("refuses an unknown channel with ValidationError, as readRunLog and readRunLogBytes do", async () => {
    const storage = createMemoryStorage();
    await runStep(baseRequest(), {
      execute: () => ({ ok: true, outcome: "completed", summary: "" }),
    }, {
      storage,
    });
    const channel = "foo" as "stdout";
    for (
      const attempt of [
        () => readRunLog(storage, ref, channel),
        () => readRunLogBytes(storage, ref, channel),
        () => followRunLog(storage, ref, channel).next(),
      ]
    ) {
      await assert.rejects(attempt(), (error: unknown) => {
        assert.ok(error instanceof ValidationError);
        assert.equal(error.field, "channel");
        return true;
      });
    }
    await assert.rejects(
      followRunLog(storage, ref, "stdout", { from: -1 }).next(),
      (error: unknown) => error instanceof ValidationError && error.field === "from",
    );
  });

  it("ends without an error when its signal is aborted", async () => {
    const storage = createMemoryStorage();
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const started = Date.now();
    const bytes = await collectBytes(
      followRunLog(storage, { taskId: "nobody", runId: "never" }, "stdout", {
        signal: controller.signal,
        pollMs: 1_000,
      }),
    );
    assert.equal(bytes.byteLength, 0);
    assert.ok(Date.now() - started < 900, "the abort cut the poll's sleep short");
  });
});

describe("followRunLog() when the writing process is killed", () => {
  it("ends with RunStaleError within staleAfterMs plus a poll, having yielded a prefix of the output", async () => {
    await withTempDir(async (repoRoot) => {
      const fixture = new URL("./fixtures/orchestrator.ts", import.meta.url).pathname;
      // deno-lint-ignore no-explicit-any
      const deno = (globalThis as any).Deno;
      const [command, args] = deno
        ? [deno.execPath(), ["run", "--allow-all", fixture, "stream", repoRoot]]
        : [process.execPath, ["--import", "tsx", fixture, "stream", repoRoot]];
      const child = spawn(command, args, { stdio: "ignore" });
      const storage = createFsStorage({ root: repoRoot });
      const crashRef = { taskId: "crash", runId: "run-1" };
      const staleAfterMs = 2_000;
      const pollMs = 100;
      let text = "";
      let killedAt = 0;
      try {
        await assert.rejects(
          (async () => {
            const decoder = new TextDecoder();
            for await (
              const chunk of followRunLog(storage, crashRef, "stdout", { staleAfterMs, pollMs })
            ) {
              text += decoder.decode(chunk, { stream: true });
              if (killedAt === 0 && text.length > 100_000) {
                const exited = new Promise((resolve) => child.once("exit", resolve));
                child.kill("SIGKILL");
                await exited;
                killedAt = Date.now();
              }
            }
          })(),
          (error: unknown) => error instanceof RunStaleError,
        );
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      }
      assert.ok(killedAt > 0, "the follower saw output before the kill");
      const after = Date.now() - killedAt;
      // The last heartbeat may be up to one heartbeat (500 ms) older than the kill.
      assert.ok(after <= staleAfterMs + pollMs + 1_500, `stale ${after} ms after the kill`);
      const lines = text.split("\n");
      const last = lines.pop()!;
      lines.forEach((line, i) => assert.equal(line, `line ${i}`));
      assert.ok(`line ${lines.length}\n`.startsWith(last), `torn tail '${last}'`);
      // Everything stored was delivered.
      assert.equal(text, await readRunLog(storage, crashRef, "stdout"));
    });
  });
});
