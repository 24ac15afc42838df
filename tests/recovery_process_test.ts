// Recovery with real processes: an orchestrator killed with SIGKILL mid-run (its record is then
// reaped), its worker's process group dying with it, and the README's SIGTERM recipe.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { appendFile, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { describe, it } from "node:test";
import { reapRun } from "../core/reap.ts";
import { readRun, readRunLog } from "../core/read.ts";
import { createFsStorage } from "../storage/fs.ts";
import { createS3Storage } from "../storage/s3.ts";
import type { RunStorage } from "../storage/types.ts";
import { withTempDir } from "./helpers.ts";
import { createBucket, deleteBucketRecursive, uniqueBucketName } from "./s3/bucket.ts";
import { requireRgw } from "./s3/rgw_env.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const ref = { taskId: "crash", runId: "run-1" };
const FIXTURE = new URL("./fixtures/orchestrator.ts", import.meta.url).pathname;

/** Starts the orchestrator fixture under the runtime running this test. */
function orchestrator(args: string[], env: Record<string, string> = {}): ChildProcess {
  // deno-lint-ignore no-explicit-any
  const deno = (globalThis as any).Deno;
  const [command, argv] = deno
    ? [deno.execPath(), ["run", "--allow-all", FIXTURE, ...args]]
    : [process.execPath, ["--import", "tsx", FIXTURE, ...args]];
  return spawn(command, argv, {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, ...env },
  });
}

async function killHard(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Live (non-zombie) members of a process group, from /proc. */
async function groupMembers(pgid: number): Promise<number> {
  let live = 0;
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, "latin1").catch(() => "");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ", 3);
    if (Number(fields[2]) === pgid && fields[0] !== "Z" && fields[0] !== "X") live++;
  }
  return live;
}

/** Kills a streaming orchestrator at a random moment, then checks what is stored and reaps. */
async function killAndReap(storage: RunStorage, args: string[], env: Record<string, string>) {
  const child = orchestrator(args, env);
  try {
    await waitFor("the first output", async () => {
      const text = await readRunLog(storage, ref, "stdout");
      return text.length > 1000 ? true : undefined;
    });
    await sleep(100 + Math.random() * 900);
  } finally {
    await killHard(child);
  }
  const before = await readRun(storage, ref);
  assert.ok(before.state !== undefined);
  assert.equal(before.state.status, "running");
  const printed = await readRunLog(storage, ref, "stdout");
  // Lines are whole up to a possibly torn last one: a prefix of what was printed.
  const lines = printed.split("\n");
  const torn = lines.pop()!;
  lines.forEach((line, i) => assert.equal(line, `line ${i}`));
  assert.ok(`line ${lines.length}\n`.startsWith(torn), `torn tail '${torn}'`);

  const result = await reapRun(storage, ref, { now: Date.now() + 60_000 });
  assert.equal(result.reaped, true);
  const after = await readRun(storage, ref);
  assert.equal(after.state?.status, "failed");
  assert.equal(after.state?.reason, "abandoned");
  const stdout = new TextEncoder().encode(await readRunLog(storage, ref, "stdout"));
  assert.equal(after.state?.stdoutBytes, stdout.byteLength, "byte counts equal the stored log");
  assert.equal(after.events.at(-1)?.type, "step_failed");
  assert.equal(after.events.at(-1)?.seq, after.state?.lastEventSeq);
  const again = await reapRun(storage, ref, { now: Date.now() + 120_000 });
  assert.equal(again.reaped, false);
  assert.deepEqual(
    (await readRun(storage, ref)).state,
    after.state,
    "a second reap changes nothing",
  );
}

describe("an orchestrator killed with SIGKILL mid-run", () => {
  it("fs: the record is a parseable prefix, then reaped as failed/abandoned (3 random kills)", async () => {
    for (let i = 0; i < 3; i++) {
      await withTempDir(async (repoRoot) => {
        await killAndReap(createFsStorage({ root: repoRoot }), ["stream", repoRoot, "fs"], {});
      });
    }
  });

  it("S3 (Ceph RGW): the record is a parseable prefix, then reaped as failed/abandoned", async (t) => {
    const env = requireRgw(t);
    if (env === undefined) return;
    const bucket = uniqueBucketName("reapkill");
    await createBucket(env, bucket);
    try {
      const storage = createS3Storage({ ...env, bucket });
      await killAndReap(storage, ["stream", "/nonexistent", "s3"], {
        S3_BUCKET: bucket,
        S3_ENDPOINT: env.endpoint,
        S3_REGION: env.region,
        S3_ACCESS_KEY_ID: env.accessKeyId,
        S3_SECRET_ACCESS_KEY: env.secretAccessKey,
      });
    } finally {
      await deleteBucketRecursive(env, bucket);
    }
  });

  it("its worker's process group (sleep 300 and a grandchild) dies within a few seconds", async () => {
    await withTempDir(async (repoRoot) => {
      const storage = createFsStorage({ root: repoRoot });
      const child = orchestrator(["sleep", repoRoot]);
      let pgid = 0;
      try {
        pgid = await waitFor("the worker's pid in state.json", async () => {
          const run = await readRun(storage, ref);
          const stdout = await readRunLog(storage, ref, "stdout");
          return stdout.includes("start") ? run.state?.owner?.worker?.pgid : undefined;
        });
        assert.equal(await groupMembers(pgid) >= 2, true, "sleep 300 and its grandchild run");
      } finally {
        await killHard(child);
      }
      const killedAt = Date.now();
      await waitFor(
        "the worker group's death",
        async () => (await groupMembers(pgid)) === 0 ? true : undefined,
        10_000,
      );
      const took = Date.now() - killedAt;
      assert.ok(took < 5_000, `worker group died ${took} ms after the orchestrator`);
      const result = await reapRun(storage, ref, { now: Date.now() + 60_000 });
      assert.equal(result.reaped, true);
      assert.equal(result.state?.reason, "abandoned");
    });
  });
});

describe("the README's SIGTERM recipe", () => {
  it("SIGTERM to the orchestrator: the run ends failed/cancelled promptly, nothing printed is lost", async () => {
    await withTempDir(async (repoRoot) => {
      const storage = createFsStorage({ root: repoRoot });
      const side = join(repoRoot, "printed.txt");
      await appendFile(side, "");
      const child = orchestrator(["sigterm", repoRoot, side]);
      let output = "";
      child.stdout!.on("data", (chunk) => (output += chunk));
      const exited = new Promise((resolve) => child.once("exit", resolve));
      try {
        await waitFor("output", async () => {
          const text = await readFile(side, "utf8");
          return text.split("\n").length > 20 ? true : undefined;
        });
        const sentAt = Date.now();
        child.kill("SIGTERM");
        await exited;
        const took = Date.now() - sentAt;
        assert.ok(took < 2_000, `closed ${took} ms after SIGTERM`);
        console.log(`  SIGTERM -> orchestrator exited with the run closed: ${took} ms`);
      } finally {
        await killHard(child);
      }
      assert.deepEqual(JSON.parse(output.trim()), { outcome: "failed", reason: "cancelled" });
      const run = await readRun(storage, ref);
      assert.equal(run.state?.status, "failed");
      assert.equal(run.state?.reason, "cancelled");
      const stored = await readRunLog(storage, ref, "stdout");
      // Each line is printed before it is appended to the side file: every line the side file
      // has was printed, and must be stored.
      const printed = (await readFile(side, "utf8")).split("\n").filter(Boolean);
      assert.ok(printed.length >= 20, `${printed.length} lines printed`);
      const storedLines = new Set(stored.split("\n"));
      for (const line of printed) assert.ok(storedLines.has(line), `'${line}' was stored`);
    });
  });
});
