// ensureS3Bucket(): creating the bucket a run storage needs, on a real S3 server (Ceph RGW).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createS3Storage, ensureS3Bucket, readRunLog, runStep, ValidationError } from "../mod.ts";
import { baseRequest } from "./helpers.ts";
import { deleteBucketRecursive, uniqueBucketName } from "./s3/bucket.ts";
import { requireRgw } from "./s3/rgw_env.ts";

describe("ensureS3Bucket()", () => {
  it("creates a bucket once, then reports it exists, and a run can be stored in it", async (t) => {
    const env = requireRgw(t);
    if (env === undefined) return;
    const bucket = uniqueBucketName("ensure");
    const connection = { ...env, bucket };
    try {
      assert.deepEqual(await ensureS3Bucket(connection), { created: true });
      assert.deepEqual(await ensureS3Bucket(connection), { created: false });
      const storage = createS3Storage(connection);
      await runStep(baseRequest(), {
        async execute(_run, context) {
          await context.stdout("stored\n");
          return { ok: true, outcome: "completed", summary: "Done." };
        },
      }, { storage });
      assert.equal(await readRunLog(storage, baseRequest(), "stdout"), "stored\n");
    } finally {
      await deleteBucketRecursive(env, bucket);
    }
  });

  it("rejects wrong credentials with a StorageError that does not echo them", async (t) => {
    const env = requireRgw(t);
    if (env === undefined) return;
    const secret = "not-the-secret-0123456789";
    await assert.rejects(
      ensureS3Bucket({ ...env, bucket: uniqueBucketName("denied"), secretAccessKey: secret }),
      (error: unknown) => {
        assert.ok(error instanceof Error && error.name === "StorageError", String(error));
        assert.equal((error as { code?: string }).code, "access_denied");
        assert.ok(!error.message.includes(secret));
        return true;
      },
    );
  });

  it("refuses an unknown option or a bucket name S3 would refuse, naming the field", async () => {
    const base = {
      endpoint: "http://127.0.0.1:9",
      bucket: "runs",
      accessKeyId: "AKIDEXAMPLE",
      secretAccessKey: "wJalrXUtnFEMI/K7MDENG",
    };
    await assert.rejects(ensureS3Bucket({ ...base, prefix: "x" } as never), (error: unknown) => {
      assert.ok(error instanceof ValidationError);
      assert.equal(error.field, "prefix");
      assert.match(error.message, /'prefix' is not a known key/);
      return true;
    });
    await assert.rejects(ensureS3Bucket({ ...base, bucket: "Runs_2" }), (error: unknown) => {
      assert.ok(error instanceof ValidationError);
      assert.equal(error.field, "bucket");
      assert.match(error.message, /'bucket' must be 3-63 lowercase letters/);
      return true;
    });
  });
});
