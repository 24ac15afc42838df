// Round trips of a short run on S3: Ceph RGW behind a loopback proxy that adds a fixed delay to
// every request and logs when each request arrived and when its answer went out. Round trips are
// the longest chain of requests each sent only after the previous one was answered (wall time /
// delay overstates them when the server adds its own latency). Scenarios interleaved, medians:
//   runner-trivial  runStep with a plain-object executor printing three lines
//   naive           the same records written through, one request after another (meta.json,
//                   state.json at each phase, worker.log re-uploaded per event, stdout per line)
//   read            readRun + readRunLog(stdout) of the finished run, called concurrently
//   runner-20k      20,000 stdout chunks (request count, which stays <= 80)
//
// Run (needs the env printed by scripts/rgw.sh):
//   source "$(bash scripts/rgw.sh start | tail -n1)"
//   npx -y deno@2.9.6 run -A bench/s3_latency.ts [--reps 5] [--delay 25] [--chunks 20000]

import { Buffer } from "node:buffer";
import net from "node:net";
import { createS3Storage, readRun, readRunLog, runStep } from "../mod.ts";
import type { RunStorage, StepExecutionRequest, WorkerExecutor } from "../mod.ts";
import { createBucket, deleteBucketRecursive, uniqueBucketName } from "../tests/s3/bucket.ts";
import { rgwEnv } from "../tests/s3/rgw_env.ts";
import { benchRequest, loadAverage, median, numberArg, printTable } from "./_harness.ts";

const REPS = numberArg("--reps", 5);
const DELAY_MS = numberArg("--delay", 25);
const CHUNKS = numberArg("--chunks", 20_000);

/** One request as the proxy saw it. */
interface Exchange {
  method: string;
  path: string;
  /** When the whole request had arrived (ms, performance.now()). */
  sent: number;
  /** When its answer was written back. */
  answered: number;
}

/**
 * A loopback HTTP/1.1 proxy (one exchange per connection, Content-Length bodies) that forwards
 * each request after `delayMs`, Host header untouched (SigV4 signs it), and logs its timing.
 */
async function startDelayProxy(target: string, delayMs: number) {
  const url = new URL(target);
  const log: Exchange[] = [];
  const sockets = new Set<net.Socket>();
  const HEAD_END = Buffer.from("\r\n\r\n");
  const closeHead = (head: string) =>
    [
      ...head.split("\r\n").filter((l) => !/^(connection|keep-alive)\s*:/i.test(l)),
      "Connection: close",
    ]
      .join("\r\n");
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => client.destroy());
    let buffered = Buffer.alloc(0);
    let head: string | undefined;
    let length = 0;
    client.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (head === undefined) {
        const end = buffered.indexOf(HEAD_END);
        if (end < 0) return;
        head = buffered.subarray(0, end).toString("latin1");
        buffered = buffered.subarray(end + 4);
        length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      }
      if (buffered.byteLength < length) return;
      client.removeAllListeners("data");
      const [method = "", path = ""] = head.split(" ");
      const exchange: Exchange = { method, path, sent: performance.now(), answered: 0 };
      log.push(exchange);
      const body = buffered;
      const requestHead = head;
      setTimeout(() => {
        const upstream = net.connect({ host: url.hostname, port: Number(url.port || 80) });
        sockets.add(upstream);
        const parts: Buffer[] = [];
        upstream.on("data", (part: Buffer) => parts.push(part));
        upstream.on("error", () => client.destroy());
        upstream.on("close", () => sockets.delete(upstream));
        upstream.on("end", () => {
          upstream.destroy();
          const answer = Buffer.concat(parts);
          const end = answer.indexOf(HEAD_END);
          exchange.answered = performance.now();
          if (end < 0) return void client.destroy();
          const responseHead = closeHead(answer.subarray(0, end).toString("latin1"));
          client.end(Buffer.concat([Buffer.from(responseHead, "latin1"), answer.subarray(end)]));
        });
        upstream.write(Buffer.from(closeHead(requestHead) + "\r\n\r\n", "latin1"));
        if (body.byteLength > 0) upstream.write(body);
      }, delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as net.AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

/** The longest chain of requests each sent only after the previous one was answered. */
function roundTrips(exchanges: readonly Exchange[]): number {
  const sorted = [...exchanges].sort((a, b) => a.sent - b.sent);
  const depth: number[] = [];
  sorted.forEach((exchange, i) => {
    let before = 0;
    for (let j = 0; j < i; j++) {
      if (sorted[j].answered <= exchange.sent) before = Math.max(before, depth[j]);
    }
    depth.push(before + 1);
  });
  return Math.max(0, ...depth);
}

function request(runId: string): StepExecutionRequest {
  return benchRequest("/repo", runId);
}

const trivial: WorkerExecutor = {
  async execute(_run, context) {
    await context.stdout("one\n");
    await context.stdout("two\n");
    await context.stdout("three\n");
    return { ok: true, outcome: "completed", summary: "Printed three lines." };
  },
};

/** The same records written through, each write waiting for the previous one. */
async function naive(storage: RunStorage, runId: string): Promise<void> {
  const dir = `runs/bench/${runId}`;
  const json = (value: unknown) => JSON.stringify(value, null, 2) + "\n";
  const state = (status: string) => json({ status, updatedAt: new Date().toISOString() });
  let worker = "";
  const event = async (type: string) => {
    worker += JSON.stringify({ type, createdAt: new Date().toISOString() }) + "\n";
    await storage.write(`${dir}/worker.log`, worker);
  };
  await storage.write(`${dir}/meta.json`, json({ runId }), { ifNoneMatch: "*" });
  await storage.write(`${dir}/state.json`, state("prepared"));
  await storage.write(`${dir}/checkpoints/0001-preparation.json`, json({ seq: 1 }));
  await event("run_prepared");
  await event("checkpoint_slot_reserved");
  await event("worker_started");
  await storage.write(`${dir}/state.json`, state("running"));
  let stdout = "";
  for (const line of ["one\n", "two\n", "three\n"]) {
    stdout += line;
    await storage.write(`${dir}/stdout.log`, stdout);
    await storage.write(`${dir}/state.json`, state("running"));
  }
  await storage.write(`${dir}/stderr.log`, "");
  await event("worker_exited");
  await event("step_completed");
  await storage.write(`${dir}/checkpoints/0002-log-tail.json`, json({ seq: 2 }));
  await storage.write(`${dir}/state.json`, state("completed"));
}

interface Measure {
  trips: number;
  requests: number;
  ms: number;
}

const env = rgwEnv();
if (env === undefined) {
  console.error("S3_ENDPOINT etc. are not set: start RGW with scripts/rgw.sh and source its env");
  Deno.exit(2);
}
const bucket = uniqueBucketName("latency");
await createBucket(env, bucket);
const proxy = await startDelayProxy(env.endpoint, DELAY_MS);
const storage = createS3Storage({
  endpoint: proxy.endpoint,
  bucket,
  region: env.region,
  accessKeyId: env.accessKeyId,
  secretAccessKey: env.secretAccessKey,
});

async function measure(work: () => Promise<unknown>): Promise<Measure> {
  const from = proxy.log.length;
  const start = performance.now();
  await work();
  const ms = performance.now() - start;
  const exchanges = proxy.log.slice(from);
  return { trips: roundTrips(exchanges), requests: exchanges.length, ms };
}

const results = new Map<string, Measure[]>();
const add = (name: string, m: Measure) => results.set(name, [...(results.get(name) ?? []), m]);
try {
  console.log(
    `s3_latency: deno ${Deno.version.deno}, ${DELAY_MS} ms added to every request, ` +
      `${REPS} interleaved reps, load average ${loadAverage()}`,
  );
  for (let rep = 1; rep <= REPS; rep++) {
    const runId = `trivial-${rep}`;
    add("runner-trivial", await measure(() => runStep(request(runId), trivial, { storage })));
    add("naive", await measure(() => naive(storage, `naive-${rep}`)));
    const ref = { taskId: "bench", runId };
    add(
      "read",
      await measure(() =>
        Promise.all([readRun(storage, ref), readRunLog(storage, ref, "stdout")]).then(
          ([run, log]) => {
            if (run.state?.status !== "completed" || log !== "one\ntwo\nthree\n") {
              throw new Error("the run did not read back as written");
            }
          },
        )
      ),
    );
    if (rep <= 2) {
      add(
        "runner-20k",
        await measure(() =>
          runStep(request(`chunks-${rep}`), {
            async execute(_run, context) {
              for (let i = 0; i < CHUNKS; i++) {
                const pending = context.stdout(`line ${i} `.padEnd(79, "x") + "\n");
                if (pending) await pending;
                if (i % 1000 === 999) await new Promise((r) => setTimeout(r, 20));
              }
              return { ok: true, outcome: "completed", summary: "ok" };
            },
          }, { storage })
        ),
      );
    }
    const last = [...results.entries()].filter(([, m]) => m.length === rep).map(([name, m]) =>
      `${name} ${m.at(-1)!.trips} RT/${m.at(-1)!.requests} req/${m.at(-1)!.ms.toFixed(0)} ms`
    );
    console.log(`  rep ${rep}: ${last.join(", ")}`);
  }
  console.log(`\nmedians (${DELAY_MS} ms per request; load average ${loadAverage()}):`);
  printTable(
    ["scenario", "round trips", "requests", "wall ms", "wall / delay"],
    [...results.entries()].map(([name, m]) => {
      const ms = median(m.map((x) => x.ms));
      return [
        name,
        String(median(m.map((x) => x.trips))),
        String(median(m.map((x) => x.requests))),
        ms.toFixed(0),
        (ms / DELAY_MS).toFixed(1),
      ];
    }),
  );
  const trivialTrips = median(results.get("runner-trivial")!.map((x) => x.trips));
  const naiveTrips = median(results.get("naive")!.map((x) => x.trips));
  console.log(
    `\nrunner-trivial / naive: ${(trivialTrips / naiveTrips).toFixed(2)}x the round trips, ` +
      `${
        (median(results.get("runner-trivial")!.map((x) => x.ms)) /
          median(results.get("naive")!.map((x) => x.ms))).toFixed(2)
      }x the wall time`,
  );
} finally {
  await proxy.close();
  await deleteBucketRecursive(env, bucket);
}
