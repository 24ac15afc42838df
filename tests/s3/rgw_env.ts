/**
 * Helpers for tests that talk to the local Ceph RADOS Gateway started by
 * `scripts/rgw.sh start` (source the env file it prints before running tests).
 *
 * Runs under Deno (needs --allow-env, --allow-run, --allow-read) and under Node 20 via tsx.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** Connection settings for the S3 server, read from S3_* environment variables. */
export interface RgwEnv {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

/**
 * The S3 server to test against, or undefined when S3_ENDPOINT, S3_ACCESS_KEY_ID or
 * S3_SECRET_ACCESS_KEY is not set (the caller then skips its S3 tests).
 * S3_REGION defaults to us-east-1, which RGW accepts for SigV4.
 */
export function rgwEnv(): RgwEnv | undefined {
  const env = process.env;
  const endpoint = env.S3_ENDPOINT;
  const accessKeyId = env.S3_ACCESS_KEY_ID;
  const secretAccessKey = env.S3_SECRET_ACCESS_KEY;
  if (!endpoint || !accessKeyId || !secretAccessKey) return undefined;
  return { endpoint, region: env.S3_REGION || "us-east-1", accessKeyId, secretAccessKey };
}

/** Absolute path of scripts/rgw.sh, found from this file rather than the working directory. */
function rgwScript(): string {
  return fileURLToPath(new URL("../../scripts/rgw.sh", import.meta.url));
}

/**
 * RGW's own count of requests it has received so far (perf dump: rgw.req).
 * Take it before and after a piece of work to count the requests that work made.
 * Throws if the gateway is not running or the counter cannot be read.
 */
export function rgwRequestCount(): number {
  const script = rgwScript();
  if (!existsSync(script)) throw new Error(`rgwRequestCount: ${script} not found`);
  const out = execFileSync("bash", [script, "requests"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 30_000,
  });
  const text = out.trim();
  if (!/^\d+$/.test(text)) {
    throw new Error(
      `rgwRequestCount: expected an integer from rgw.sh requests, got ${JSON.stringify(text)}`,
    );
  }
  return Number(text);
}

/** The part of node:test's test context that {@linkcode requireRgw} needs. */
export type SkippableTest = { skip(message?: string): void };
let warnedSkip = false;

/**
 * The RGW env, or `undefined` after marking the test skipped (loudly, once per process). With
 * `CI=true` a missing server fails the test instead: CI must never pass without the S3 tier.
 */
export function requireRgw(t: SkippableTest): RgwEnv | undefined {
  const env = rgwEnv();
  if (env !== undefined) return env;
  const message = "Ceph RGW is not running: S3 tests SKIPPED " +
    '(start it with `source "$(bash scripts/rgw.sh start | tail -n1)"`)';
  if (process.env.CI === "true") assert.fail(`${message}; CI=true requires them`);
  if (!warnedSkip) {
    warnedSkip = true;
    console.warn(`\n${"#".repeat(72)}\n## ${message}\n${"#".repeat(72)}\n`);
  }
  t.skip(message);
  return undefined;
}
