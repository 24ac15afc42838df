// Tests of a run's output streams: RegExp hold-back released to live readers, what the session
// and the log-tail checkpoint show of held-back bytes, and caps that keep a stream's head and tail.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createMemoryStorage, readRun, readRunLog, readRunLogBytes, runStep } from "../mod.ts";
import { truncationMarker } from "../core/streams.ts";
import { baseRequest, localStorages } from "./helpers.ts";

const ref = { taskId: "task-1", runId: "run-1" };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const secrets = [/ghp_[A-Za-z0-9]{20,}/];
const token = "ghp_0123456789abcdefghijKLMN";

describe("runStep() with a RegExp secret and a quiet worker", () => {
  for (const [name, make] of Object.entries(localStorages)) {
    it(`shows each line to a live reader within about two flush intervals (${name})`, async () => {
      const { storage, done } = await make();
      try {
        const flushIntervalMs = 200;
        const printed = ["tick 1\n", `tick 2 token=${token}\n`, "tick 3\n"];
        const stored = ["tick 1\n", "tick 2 token=[REDACTED]\n", "tick 3\n"];
        const seenLive: string[] = [];
        const latencies: number[] = [];
        const result = await runStep(baseRequest(), {
          async execute(_run, context) {
            for (let i = 0; i < printed.length; i++) {
              const printedAt = Date.now();
              await context.stdout(printed[i]);
              const want = stored.slice(0, i + 1).join("");
              // Read the stored log as a separate reader would, until the line is there.
              let seen = "";
              while (seen !== want && Date.now() - printedAt < 5000) {
                await sleep(20);
                seen = await readRunLog(storage, ref, "stdout");
              }
              seenLive.push(seen);
              latencies.push(Date.now() - printedAt);
              await sleep(Math.max(0, 600 - (Date.now() - printedAt)));
            }
            return { ok: true, outcome: "completed", summary: "ticked" };
          },
        }, { storage, secrets, flushIntervalMs });
        assert.equal(result.outcome, "completed");
        assert.deepEqual(seenLive, [stored[0], stored[0] + stored[1], stored.join("")]);
        // Two flush intervals (quiet, then the next flush), plus slack for a busy machine.
        for (const latency of latencies) {
          assert.ok(latency <= 2 * flushIntervalMs + 400, `latencies ${latencies} ms`);
        }
        assert.equal(await readRunLog(storage, ref, "stdout"), stored.join(""));
        assert.equal(result.metrics.stdoutBytes, stored.join("").length);
      } finally {
        await done();
      }
    });
  }

  it("masks a secret split across two chunks with a pause shorter than the flush interval", async () => {
    const storage = createMemoryStorage();
    let seenLive = "";
    await runStep(baseRequest(), {
      async execute(_run, context) {
        await context.stdout(`a ${token.slice(0, 9)}`);
        await sleep(100);
        await context.stderr("stderr is another stream\n");
        await context.stdout(`${token.slice(9)} b\n`);
        await context.stdout(`c ${token.slice(0, 20)}`);
        await context.stdout(`${token.slice(20)} d\n`);
        const printedAt = Date.now();
        while (!seenLive.endsWith("d\n") && Date.now() - printedAt < 10_000) {
          await sleep(50);
          seenLive = await readRunLog(storage, ref, "stdout");
        }
        return { ok: true, outcome: "completed", summary: "ok" };
      },
    }, { storage, secrets, flushIntervalMs: 1000 });
    assert.equal(seenLive, "a [REDACTED] b\nc [REDACTED] d\n");
    assert.equal(await readRunLog(storage, ref, "stdout"), seenLive);
    assert.equal(await readRunLog(storage, ref, "stderr"), "stderr is another stream\n");
  });
});

describe("runStep() with a RegExp secret, at the end of the run", () => {
  it("puts the held-back end of both streams in the log-tail checkpoint, logSession and counts", async () => {
    const storage = createMemoryStorage();
    const lines = Array.from({ length: 30 }, (_, i) => `line ${i + 1} of the output\n`);
    const result = await runStep(baseRequest(), {
      async execute(_run, context) {
        for (const line of lines) await context.stdout(line);
        await context.stderr("FATAL: disk full\n");
        return { ok: false, outcome: "failed", summary: "died" };
      },
    }, { storage, secrets });

    const stdout = await readRunLog(storage, ref, "stdout");
    const stderr = await readRunLog(storage, ref, "stderr");
    assert.equal(stdout, lines.join(""));
    assert.equal(stderr, "FATAL: disk full\n");

    const stored = await readRun(storage, ref);
    const tail = stored.checkpoints.find((c) => c.type === "log_tail")!;
    const tailLines = (tail.data.lines as { channel: string; text: string }[])
      .map((line) => `[${line.channel}] ${line.text}`);
    assert.deepEqual(tailLines, [
      ...lines.slice(-19).map((line) => `[stdout] ${line.trimEnd()}`),
      "[stderr] FATAL: disk full",
    ]);

    const text = (channel: "stdout" | "stderr") =>
      result.logSession[channel].entries.map((entry) => entry.text).join("");
    assert.equal(text("stdout"), stdout);
    assert.equal(text("stderr"), stderr);
    const fatal = result.logSession.stderr.entries.at(-1)!;
    assert.equal(fatal.text, "FATAL: disk full\n");
    assert.ok(fatal.seq > result.logSession.stdout.entries.at(-1)!.seq);

    const sizes = { stdout: stdout.length, stderr: stderr.length };
    assert.deepEqual(
      { stdout: result.metrics.stdoutBytes, stderr: result.metrics.stderrBytes },
      sizes,
    );
    assert.deepEqual(
      { stdout: stored.state?.stdoutBytes, stderr: stored.state?.stderrBytes },
      sizes,
    );
    assert.deepEqual({ stdout: result.state.stdoutBytes, stderr: result.state.stderrBytes }, sizes);
  });
});

describe("runStep() output caps keep the head and the tail", () => {
  const cap = 1024 * 1024;
  const line = (n: number) => `line ${String(n).padStart(8, "0")}\n`; // 14 bytes
  const lineCount = 750_000; // 10.5 MB
  const full = Array.from({ length: lineCount }, (_, i) => line(i + 1)).join("");

  for (const [name, make] of Object.entries(localStorages)) {
    it(`stores the first and last halves of a 1 MiB cap on 10 MB, one marker between (${name})`, async () => {
      const { storage, done } = await make();
      try {
        const head = full.slice(0, cap / 2);
        const dropped = full.length - cap;
        let live: { log: string; stdoutBytes?: number; dropped?: number } | undefined;
        const result = await runStep(baseRequest(), {
          async execute(_run, context) {
            for (let i = 0; i < lineCount; i += 1000) {
              await context.stdout(full.slice(i * 14, (i + 1000) * 14));
            }
            // While live, a reader sees the head and counts that describe what is stored.
            const started = Date.now();
            while (Date.now() - started < 10_000) {
              await sleep(50);
              const state = (await readRun(storage, ref)).state;
              if (state?.stdoutBytes !== cap / 2) continue;
              const log = await readRunLog(storage, ref, "stdout");
              live = { log, stdoutBytes: state.stdoutBytes, dropped: state.droppedBytes?.stdout };
              break;
            }
            return { ok: false, outcome: "failed", summary: "loud" };
          },
        }, { storage, maxOutputBytes: cap, flushIntervalMs: 200 });

        assert.ok(live !== undefined, "a live reader saw the head");
        assert.equal(live.log, head);
        assert.equal(live.dropped, dropped);

        const stdout = await readRunLog(storage, ref, "stdout");
        assert.equal(
          stdout,
          head + truncationMarker("stdout", dropped) + full.slice(full.length - cap / 2),
        );
        assert.equal(stdout.match(/\[baa-conductor: /g)?.length, 1);
        assert.ok(stdout.includes(`\n[baa-conductor: stdout truncated, ${dropped} bytes dropped`));
        assert.ok(stdout.startsWith(line(1)));
        assert.ok(stdout.endsWith(line(lineCount - 1) + line(lineCount)));
        assert.deepEqual(result.droppedBytes, { stdout: dropped, stderr: 0 });
        const stored = await readRun(storage, ref);
        assert.deepEqual(stored.state?.droppedBytes, { stdout: dropped, stderr: 0 });
        assert.equal(stored.state?.stdoutBytes, stdout.length);
        assert.equal(result.metrics.stdoutBytes, stdout.length);
        assert.equal(stored.events.filter((e) => e.type === "output_truncated").length, 1);
        const tail = stored.checkpoints.find((c) => c.type === "log_tail")!;
        const tailLines = tail.data.lines as { text: string }[];
        assert.equal(tailLines.at(-1)?.text, line(lineCount).trimEnd());
      } finally {
        await done();
      }
    });
  }

  it("copies byte chunks into the head and the tail, so an executor may reuse its buffer", async () => {
    const storage = createMemoryStorage();
    const buffer = new Uint8Array(100);
    const printed: number[] = [];
    await runStep(baseRequest(), {
      async execute(_run, context) {
        for (let i = 0; i < 1000; i++) {
          buffer.fill(i % 251);
          for (let j = 0; j < buffer.length; j++) printed.push(i % 251);
          await context.stdout(buffer);
        }
        buffer.fill(0);
        return { ok: true, outcome: "completed", summary: "reused" };
      },
    }, { storage, maxOutputBytes: 4096 });
    const stored = await readRunLogBytes(storage, ref, "stdout");
    const marker = new TextEncoder().encode(truncationMarker("stdout", 100_000 - 4096));
    assert.deepEqual(
      stored,
      Uint8Array.from([...printed.slice(0, 2048), ...marker, ...printed.slice(-2048)]),
    );
  });

  it("stores a stream that stays within its cap whole, without a marker", async () => {
    const storage = createMemoryStorage();
    const result = await runStep(baseRequest(), {
      async execute(_run, context) {
        for (let i = 0; i < 10; i++) await context.stdout("0123456789");
        return { ok: true, outcome: "completed", summary: "ok" };
      },
    }, { storage, maxOutputBytes: { stdout: 100, headRatio: 0.2 } });
    assert.equal(await readRunLog(storage, ref, "stdout"), "0123456789".repeat(10));
    assert.deepEqual(result.droppedBytes, { stdout: 0, stderr: 0 });
    assert.equal(
      (await readRun(storage, ref)).events.some((e) => e.type === "output_truncated"),
      false,
    );
  });

  it("splits the cap by headRatio, redacts before capping, and keeps only the tail at 0", async () => {
    const storage = createMemoryStorage();
    const result = await runStep(baseRequest(), {
      async execute(_run, context) {
        await context.stdout(`${token}\n`);
        for (let i = 0; i < 100; i++) await context.stdout(`${i}`.padStart(9, ".") + "\n");
        await context.stderr("abcdefghij");
        return { ok: true, outcome: "completed", summary: "ok" };
      },
    }, { storage, secrets, maxOutputBytes: { stdout: 50, stderr: 4, headRatio: 0 } });
    const stdout = await readRunLog(storage, ref, "stdout");
    const printed = "[REDACTED]\n" +
      Array.from({ length: 100 }, (_, i) => `${i}`.padStart(9, ".") + "\n")
        .join("");
    assert.equal(stdout, truncationMarker("stdout", printed.length - 50) + printed.slice(-50));
    assert.equal(await readRunLog(storage, ref, "stderr"), truncationMarker("stderr", 6) + "ghij");
    assert.deepEqual(result.droppedBytes, { stdout: printed.length - 50, stderr: 6 });
  });
});
