// The output index and the readers of output in sequence: stdout and stderr come back interleaved
// as the worker printed them (function and real-process workers, many flushes, chunks larger than
// an index entry, redaction, caps), live and resumed from a cursor, on every local storage and on
// S3; a dead writer's index is repaired by the reaper; legacy runs without an index still read.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  createFsStorage,
  createMemoryStorage,
  createProcessExecutor,
  createS3Storage,
  followRunOutput,
  NotFoundError,
  OutputIndexEntrySchema,
  readRun,
  readRunLogBytes,
  readRunOutput,
  reapRun,
  type RunOutputItem,
  RunStaleError,
  runStep,
  type RunStorage,
  ValidationError,
  type WorkerExecutor,
} from "../mod.ts";
import {
  baseRequest,
  localStorages,
  readText,
  streamRuns,
  withoutAppend,
  withTempDir,
} from "./helpers.ts";
import { createBucket, deleteBucketRecursive, uniqueBucketName } from "./s3/bucket.ts";
import { requireRgw } from "./s3/rgw_env.ts";

const ref = { taskId: "task-1", runId: "run-1" };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const INDEX_KEY = "runs/task-1/run-1/output-index.jsonl";

/** What the worker printed, in order: [channel, text]. */
type Printed = [("stdout" | "stderr"), string][];

/** A worker printing `lines` in order, pausing now and then so flushes fall between them. */
function printing(lines: Printed, pauseEvery = 3, pauseMs = 4): WorkerExecutor {
  return {
    async execute(_run, context) {
      for (let i = 0; i < lines.length; i++) {
        const [channel, text] = lines[i];
        const pending = context[channel](text);
        if (pending) await pending;
        if (i % pauseEvery === 0) await sleep(pauseMs);
      }
      return { ok: true, outcome: "completed", summary: "printed" };
    },
  };
}

/** Alternating stdout/stderr lines with irregular runs of one stream, multi-byte text included. */
function alternating(count: number): Printed {
  return Array.from(
    { length: count },
    (
      _,
      i,
    ) => [
      i % 3 === 2 || i % 7 === 0 ? "stderr" : "stdout",
      `line ${i} é漢 ${"x".repeat(i % 40)}\n`,
    ],
  );
}

/** Output items as [channel, text] pieces (events left out). */
function shown(items: readonly RunOutputItem[]): [string, string][] {
  return streamRuns(
    items.flatMap((item) =>
      item.channel === "worker" ? [] : [[item.channel, decode(item.bytes)] as [string, string]]
    ),
  );
}

async function collect(iterable: AsyncIterable<RunOutputItem>): Promise<RunOutputItem[]> {
  const items: RunOutputItem[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

/** Every index line parses, and per stream the entries cover the stored log byte for byte. */
async function checkIndexCovers(storage: RunStorage, where: string): Promise<void> {
  const text = await readText(storage, INDEX_KEY) ?? "";
  const covered = { stdout: 0, stderr: 0 };
  for (const line of text.split("\n").filter((l) => l !== "")) {
    const entry = OutputIndexEntrySchema.parse(JSON.parse(line));
    assert.equal(entry.offset, covered[entry.stream], `${where}: ${entry.stream} entries follow`);
    assert.ok(entry.length > 0 && entry.length <= 1024 * 1024, `${where}: entry size`);
    covered[entry.stream] += entry.length;
  }
  for (const stream of ["stdout", "stderr"] as const) {
    const stored = await readRunLogBytes(storage, ref, stream);
    assert.equal(covered[stream], stored.byteLength, `${where}: the index covers ${stream}.log`);
  }
}

/** Items are in sequence: each after the one before, every byte with its sequence number. */
function checkSequence(items: readonly RunOutputItem[], where: string): void {
  let last = 0;
  let previous: RunOutputItem | undefined;
  for (const item of items) {
    assert.ok(item.seq !== undefined, `${where}: every byte is indexed`);
    // A chunk larger than an index entry spans entries with its one sequence number.
    const continued = previous !== undefined && previous.channel === item.channel &&
      previous.seq === item.seq && item.channel !== "worker";
    assert.ok(continued || item.seq > last, `${where}: #${item.seq} comes after #${last}`);
    last = (item.channel === "worker" ? undefined : item.lastSeq) ?? item.seq;
    previous = item;
  }
}

async function checkRun(storage: RunStorage, printed: Printed, where: string): Promise<void> {
  await checkIndexCovers(storage, where);
  const items = await collect(readRunOutput(storage, ref, { events: true }));
  checkSequence(items, where);
  assert.deepEqual(shown(items), streamRuns(printed), `${where}: shown as printed`);
  const types = items.filter((i) => i.channel === "worker").map((i) =>
    i.channel === "worker" ? i.event.type : ""
  );
  const firstOutput = items.findIndex((i) => i.channel !== "worker");
  const started = items.findIndex((i) =>
    i.channel === "worker" && i.event.type === "worker_started"
  );
  assert.ok(started >= 0 && started < firstOutput, `${where}: worker_started before the output`);
  assert.equal(types.at(-1), "step_completed", `${where}: the terminal event comes last`);
  // Without events: the same output, same order.
  assert.deepEqual(shown(await collect(readRunOutput(storage, ref))), streamRuns(printed), where);
}

describe("the output index: stdout and stderr in the order printed", () => {
  for (const [name, make] of Object.entries(localStorages)) {
    it(`${name}: a worker alternating streams over many flushes reads back as printed`, async () => {
      const { storage, done } = await make();
      try {
        const printed = alternating(300);
        const result = await runStep(baseRequest(), printing(printed), {
          storage,
          flushIntervalMs: 5,
          heartbeatMs: 50,
        });
        assert.equal(result.outcome, "completed");
        await checkRun(storage, printed, name);
      } finally {
        await done();
      }
    });
  }

  it("a real process: stdout and stderr lines come back in the order the process printed them", async () => {
    await withTempDir(async (dir) => {
      const storage = createFsStorage({ root: dir });
      const script = "echo out-1; sleep 0.1; echo err-1 >&2; sleep 0.1; echo out-2; " +
        "sleep 0.1; echo err-2 >&2; sleep 0.1; printf out-3";
      const result = await runStep(
        baseRequest({ command: script, runtime: { repoRoot: dir, worktreePath: dir } }),
        createProcessExecutor(),
        { storage, flushIntervalMs: 50 },
      );
      assert.equal(result.outcome, "completed");
      await checkRun(storage, [
        ["stdout", "out-1\n"],
        ["stderr", "err-1\n"],
        ["stdout", "out-2\n"],
        ["stderr", "err-2\n"],
        ["stdout", "out-3"],
      ], "process");
    });
  });

  it("a chunk larger than an index entry is indexed in entries of at most 1 MiB", async () => {
    const storage = withoutAppend(createMemoryStorage());
    const big = "b".repeat(2.5 * 1024 * 1024) + "\n";
    const printed: Printed = [["stdout", "before\n"], ["stderr", big], ["stdout", "after\n"]];
    await runStep(baseRequest(), printing(printed), { storage });
    await checkRun(storage, printed, "big chunk");
    const entries = (await readText(storage, INDEX_KEY))!.trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.deepEqual(entries.map((e) => [e.stream, e.length]), [
      ["stdout", 7],
      ["stderr", 1024 * 1024],
      ["stderr", 1024 * 1024],
      ["stderr", big.length - 2 * 1024 * 1024],
      ["stdout", 6],
    ]);
    assert.equal(new Set(entries.filter((e) => e.stream === "stderr").map((e) => e.seq)).size, 1);
  });

  it("masked secrets and capped streams: every stored byte is indexed, in order", async () => {
    const storage = createMemoryStorage();
    const secret = "hunter2-very-secret";
    const printed: Printed = [];
    for (let i = 0; i < 200; i++) {
      printed.push(["stdout", `out ${i} token=${secret}\n`]);
      if (i % 10 === 0) printed.push(["stderr", `err ${i}\n`]);
    }
    // A secret split across two chunks is held back, then released with the next chunk.
    printed.push(["stdout", "tail hunt"], ["stdout", "er2-very-secret end\n"]);
    const result = await runStep(baseRequest(), printing(printed), {
      storage,
      secrets: [secret],
      maxOutputBytes: { stdout: 4096 },
      flushIntervalMs: 5,
    });
    assert.equal(result.outcome, "completed");
    await checkIndexCovers(storage, "redacted and capped");
    const items = await collect(readRunOutput(storage, ref, { events: true }));
    checkSequence(items, "redacted and capped");
    const stdout = decode(await readRunLogBytes(storage, ref, "stdout"));
    assert.ok(!stdout.includes(secret), "the secret is masked");
    assert.match(stdout, /stdout truncated, \d+ bytes dropped here/);
    const text = (channel: string) =>
      items.filter((i) => i.channel === channel).map((i) =>
        i.channel === "worker" ? "" : decode(i.bytes)
      ).join("");
    assert.equal(text("stdout"), stdout);
    assert.equal(
      text("stderr"),
      printed.filter(([c]) => c === "stderr").map(([, t]) => t).join(""),
    );
    // The stderr lines printed while stdout was still in its head come before the stdout lines
    // printed after them.
    const shownRuns = shown(items);
    assert.equal(shownRuns[0][0], "stdout");
    assert.equal(shownRuns[1][0], "stderr");
  });

  it("a run that printed nothing has no index, and reads as no output", async () => {
    const storage = createMemoryStorage();
    await runStep(baseRequest(), {
      execute: () => ({ ok: true, outcome: "completed", summary: "quiet" }),
    }, { storage });
    assert.equal(await readText(storage, INDEX_KEY), undefined);
    const items = await collect(readRunOutput(storage, ref, { events: true }));
    assert.ok(items.length > 0 && items.every((i) => i.channel === "worker"));
  });

  it("tail: starts where the last bytes of output start, events from there on", async () => {
    const storage = createMemoryStorage();
    const printed = alternating(100);
    await runStep(baseRequest(), printing(printed), { storage, flushIntervalMs: 5 });
    const all = await collect(readRunOutput(storage, ref));
    const total = all.reduce((n, i) => n + (i.channel === "worker" ? 0 : i.bytes.byteLength), 0);
    const tail = await collect(readRunOutput(storage, ref, { tail: 200, events: true }));
    const bytes = tail.reduce((n, i) => n + (i.channel === "worker" ? 0 : i.bytes.byteLength), 0);
    assert.ok(total > 200);
    assert.equal(bytes, 200, "exactly the last 200 bytes of output");
    // The tail is the end of the whole view, byte for byte and stream for stream.
    const flat = (items: readonly RunOutputItem[]) =>
      items.flatMap((i) =>
        i.channel === "worker" ? [] : [...i.bytes].map((b) => `${i.channel}:${b}`)
      );
    assert.deepEqual(flat(tail), flat(all).slice(-200));
    checkSequence(tail, "tail");
    assert.equal(tail.at(-1)?.channel, "worker", "the terminal event ends the tail");
    assert.equal(
      (await collect(readRunOutput(storage, ref, { tail: 10 * total }))).length,
      all.length,
      "a tail longer than the output is all of it",
    );
  });

  it("a cursor resumes exactly after its item, with and without events", async () => {
    const storage = withoutAppend(createMemoryStorage());
    await runStep(baseRequest(), printing(alternating(60)), { storage, flushIntervalMs: 5 });
    for (const events of [false, true]) {
      const all = await collect(readRunOutput(storage, ref, { events }));
      for (const cut of [0, 1, Math.floor(all.length / 2), all.length - 1]) {
        const rest = await collect(readRunOutput(storage, ref, { events, from: all[cut].cursor }));
        assert.deepEqual(
          rest.map((i) => [i.channel, i.seq, i.cursor]),
          all.slice(cut + 1).map((i) => [i.channel, i.seq, i.cursor]),
          `resume after item ${cut} (events: ${events})`,
        );
      }
    }
  });

  it("refuses bad options at the call with a ValidationError naming them; a missing run is NotFoundError", async () => {
    const storage = createMemoryStorage();
    await runStep(baseRequest(), printing([["stdout", "x\n"]]), { storage });
    const named = (path: string) => (error: unknown) => {
      assert.ok(error instanceof ValidationError, String(error));
      assert.equal(error.issues[0].path, path);
      return true;
    };
    assert.throws(() => readRunOutput(storage, ref, { from: "../etc" }), named("from"));
    assert.throws(() => readRunOutput(storage, ref, { from: "0.0.0.0", tail: 5 }), named("tail"));
    assert.throws(() => followRunOutput(storage, ref, { pollMs: -1 }), named("pollMs"));
    assert.throws(() => followRunOutput(storage, ref, { from: "1.2.3" }), named("from"));
    assert.throws(() => readRunOutput(storage, { taskId: "..", runId: "r" }), ValidationError);
    const first = (iterable: AsyncIterable<unknown>) => iterable[Symbol.asyncIterator]().next();
    await assert.rejects(first(readRunOutput(storage, { ...ref, runId: "nope" })), NotFoundError);
  });

  it("a run stored before the index existed reads as stdout, then stderr, without sequence", async () => {
    const storage = createMemoryStorage();
    await runStep(baseRequest(), printing([["stdout", "a\n"], ["stderr", "b\n"]]), { storage });
    await storage.delete(INDEX_KEY);
    const items = await collect(readRunOutput(storage, ref, { events: true }));
    const output = items.filter((i) => i.channel !== "worker");
    assert.deepEqual(shown(output), [["stdout", "a\n"], ["stderr", "b\n"]]);
    assert.ok(output.every((i) => i.seq === undefined));
    assert.equal(items.at(-1)?.channel, "worker", "the terminal event still ends the run");
  });

  it("tail with events: all of them when the tail covers the output, none before it otherwise", async () => {
    const storage = createMemoryStorage();
    await runStep(baseRequest(), printing([["stdout", "a\n"], ["stderr", "b\n"]]), { storage });
    const all = await collect(readRunOutput(storage, ref, { events: true }));
    const types = (items: RunOutputItem[]) =>
      items.map((i) => i.channel === "worker" ? i.event.type : i.channel);
    assert.deepEqual(
      types(await collect(readRunOutput(storage, ref, { events: true, tail: 99 }))),
      types(all),
    );
    assert.deepEqual(
      types(await collect(readRunOutput(storage, ref, { events: true, tail: 0 }))),
      ["worker_exited", "step_completed"],
    );
    assert.deepEqual(
      types(await collect(readRunOutput(storage, ref, { events: true, tail: 2 }))),
      ["stderr", "worker_exited", "step_completed"],
    );
  });
});

describe("followRunOutput(): live, in order, resumable", () => {
  for (const [name, make] of Object.entries(localStorages)) {
    it(`${name}: a follower started before the run yields what a reader of the finished run reads`, async () => {
      const { storage, done } = await make();
      try {
        const printed = alternating(150);
        const follower = collect(followRunOutput(storage, ref, { events: true, pollMs: 5 }));
        await sleep(20);
        await runStep(baseRequest(), printing(printed, 5, 10), {
          storage,
          flushIntervalMs: 10,
        });
        const live = await follower;
        const stored = await collect(readRunOutput(storage, ref, { events: true }));
        checkSequence(live, `${name} live`);
        assert.deepEqual(shown(live), streamRuns(printed), `${name}: live shows it as printed`);
        assert.deepEqual(
          live.filter((i) => i.channel === "worker").map((i) => i.seq),
          stored.filter((i) => i.channel === "worker").map((i) => i.seq),
          `${name}: every event, once`,
        );
      } finally {
        await done();
      }
    });
  }

  it("resumes from a cursor taken mid-run: nothing twice, nothing missing", async () => {
    const storage = withoutAppend(createMemoryStorage());
    const printed = alternating(120);
    const run = runStep(baseRequest(), printing(printed, 4, 10), { storage, flushIntervalMs: 10 });
    const first: RunOutputItem[] = [];
    const controller = new AbortController();
    for await (
      const item of followRunOutput(storage, ref, { pollMs: 5, signal: controller.signal })
    ) {
      first.push(item);
      if (first.length === 5) break;
    }
    const rest = await collect(followRunOutput(storage, ref, {
      from: first.at(-1)!.cursor,
      pollMs: 5,
    }));
    await run;
    assert.deepEqual(shown([...first, ...rest]), streamRuns(printed));
  });

  it("tail: starts with the last bytes stored when it starts, then follows", async () => {
    const storage = createMemoryStorage();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const run = runStep(baseRequest(), {
      async execute(_run, context) {
        await context.stdout("early line one\n");
        await context.stderr("early line two\n");
        await gate;
        await context.stdout("late line\n");
        return { ok: true, outcome: "completed", summary: "ok" };
      },
    }, { storage, flushIntervalMs: 10 });
    while ((await readRun(storage, ref).catch(() => undefined))?.state?.stderrBytes !== 15) {
      await sleep(5);
    }
    const follower = collect(followRunOutput(storage, ref, { tail: 9, pollMs: 5 }));
    await sleep(50);
    release();
    await run;
    assert.deepEqual(shown(await follower), [["stderr", "line two\n"], ["stdout", "late line\n"]]);
  });

  it("a writer that dies: what was stored is yielded, then RunStaleError with a cursor", async () => {
    const inner = createMemoryStorage();
    let dead = false;
    // The storage fails the writer after some output: its heartbeat stops, the run goes stale.
    const storage = Object.fromEntries(
      Object.entries(inner).map(([name, value]) =>
        typeof value === "function"
          ? [
            name,
            (...args: unknown[]) =>
              dead ? Promise.reject(new Error("EIO")) : value.apply(inner, args),
          ]
          : [name, value]
      ),
    ) as unknown as RunStorage;
    const executor: WorkerExecutor = {
      async execute(_run, context) {
        await context.stdout("out 1\n");
        await context.stderr("err 1\n");
        await sleep(120);
        dead = true;
        await context.stdout("never stored\n");
        await sleep(1_000);
        return { ok: true, outcome: "completed", summary: "never" };
      },
    };
    const controller = new AbortController();
    void runStep(baseRequest(), executor, {
      storage,
      flushIntervalMs: 20,
      heartbeatMs: 40,
      signal: controller.signal,
    }).catch(() => {});
    const items: RunOutputItem[] = [];
    let stale: unknown;
    try {
      for await (
        const item of followRunOutput(inner, ref, { pollMs: 20, staleAfterMs: 300 })
      ) items.push(item);
    } catch (error) {
      stale = error;
    }
    controller.abort();
    assert.ok(stale instanceof RunStaleError, String(stale));
    assert.deepEqual(shown(items), [["stdout", "out 1\n"], ["stderr", "err 1\n"]]);
    assert.equal(stale.cursor, items.at(-1)!.cursor);
  });
});

describe("reapRun() repairs a dead writer's output index", () => {
  it("drops entries naming bytes never stored, indexes stored bytes it lacks, before the abandonment", async () => {
    const storage = createMemoryStorage();
    await runStep(baseRequest(), printing([["stdout", "a\n"], ["stderr", "b\n"]]), { storage });
    // Rebuild a crash: state live, stdout longer than indexed, an entry past stderr's end.
    const state = JSON.parse((await readText(storage, "runs/task-1/run-1/state.json"))!);
    const live = { ...state, status: "running", finishedAt: undefined, summary: undefined };
    await storage.write("runs/task-1/run-1/state.json", JSON.stringify(live));
    const worker = (await readText(storage, "runs/task-1/run-1/worker.log"))!.split("\n")
      .filter((l) => l !== "" && !/"type":"(worker_exited|step_completed)"/.test(l));
    await storage.write("runs/task-1/run-1/worker.log", worker.join("\n") + "\n");
    await storage.append!("runs/task-1/run-1/stdout.log", new TextEncoder().encode("unindexed\n"));
    const index = (await readText(storage, INDEX_KEY))!;
    const ghost = JSON.stringify({
      seq: 99,
      stream: "stderr",
      offset: 2,
      length: 5,
      at: new Date().toISOString(),
    });
    await storage.write(INDEX_KEY, index + ghost + "\n" + '{"seq":100,"str');
    const result = await reapRun(storage, ref, { now: Date.now() + 3_600_000 });
    assert.equal(result.reaped, true);
    await checkIndexCovers(storage, "reaped");
    const items = await collect(readRunOutput(storage, ref, { events: true }));
    checkSequence(items, "reaped");
    assert.deepEqual(shown(items), [["stdout", "a\n"], ["stderr", "b\n"], [
      "stdout",
      "unindexed\n",
    ]]);
    const last = items.at(-1)!;
    assert.ok(last.channel === "worker" && last.event.type === "step_failed");
    assert.equal(result.state?.lastEventSeq, last.seq);
    assert.equal((await readRun(storage, ref)).state?.reason, "abandoned");
  });
});

describe("the output index on S3 (Ceph RGW)", () => {
  it("a live follower and a reader of the finished run see the streams as printed; no segment is left", async (t) => {
    const env = requireRgw(t);
    if (env === undefined) return;
    const bucket = uniqueBucketName("output-index");
    await createBucket(env, bucket);
    try {
      const storage = createS3Storage({
        endpoint: env.endpoint,
        region: env.region,
        bucket,
        accessKeyId: env.accessKeyId,
        secretAccessKey: env.secretAccessKey,
      });
      const printed = alternating(120);
      const follower = collect(followRunOutput(storage, ref, { events: true, pollMs: 20 }));
      await runStep(baseRequest(), printing(printed, 10, 30), { storage, flushIntervalMs: 50 });
      const live = await follower;
      checkSequence(live, "S3 live");
      assert.deepEqual(shown(live), streamRuns(printed), "S3: live shows it as printed");
      await checkRun(storage, printed, "S3");
      const keys: string[] = [];
      for await (const key of storage.list("runs/task-1/run-1/")) keys.push(key);
      assert.deepEqual(keys.filter((k) => k.includes(".segments/")), []);
      assert.ok(keys.includes(INDEX_KEY));
    } finally {
      await deleteBucketRecursive(env, bucket);
    }
  });
});
