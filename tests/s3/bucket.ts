// Test-only bucket helpers (create, empty and delete) for the S3 integration tests.

import { AwsClient } from "aws4fetch";

/** Where and as whom the tests talk to an S3-compatible server. */
export interface S3TestEnv {
  /** e.g. `http://127.0.0.1:7480`. */
  endpoint: string;
  /** SigV4 region; `us-east-1` when omitted. */
  region?: string;
  /** Access key id. */
  accessKeyId: string;
  /** Secret access key. */
  secretAccessKey: string;
}

function client(env: S3TestEnv): AwsClient {
  return new AwsClient({
    accessKeyId: env.accessKeyId,
    secretAccessKey: env.secretAccessKey,
    service: "s3",
    region: env.region ?? "us-east-1",
    retries: 0,
  });
}

function bucketUrl(env: S3TestEnv, name: string, query = ""): string {
  return `${env.endpoint.replace(/\/+$/, "")}/${encodeURIComponent(name)}${query}`;
}

function encodeKey(key: string): string {
  return key.split("/").map((segment) =>
    encodeURIComponent(segment).replace(
      /[!'()*]/g,
      (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
    )
  ).join("/");
}

async function expectOk(
  response: Response,
  what: string,
  okStatuses: number[] = [],
): Promise<string> {
  const text = await response.text();
  if (!response.ok && !okStatuses.includes(response.status)) {
    throw new Error(`${what} failed: ${response.status} ${text.slice(0, 300)}`);
  }
  return text;
}

/**
 * Returns a bucket name that is unique enough for one test run.
 *
 * @param label A short lowercase word naming the test.
 * @returns A DNS-compatible bucket name.
 */
export function uniqueBucketName(label: string): string {
  const random = crypto.getRandomValues(new Uint8Array(4));
  const suffix = [...random].map((b) => b.toString(16).padStart(2, "0")).join("");
  const clean = label.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "");
  return `t-${clean.slice(0, 40)}-${Date.now().toString(36)}-${suffix}`;
}

/**
 * Creates a bucket (PUT Bucket).
 *
 * @param env Server and credentials.
 * @param name Bucket name.
 */
export async function createBucket(env: S3TestEnv, name: string): Promise<void> {
  const response = await client(env).fetch(bucketUrl(env, name), { method: "PUT" });
  await expectOk(response, `create bucket '${name}'`);
}

/**
 * Deletes a bucket after removing every object and unfinished multipart upload in it.
 * A bucket that does not exist is fine.
 *
 * @param env Server and credentials.
 * @param name Bucket name.
 */
export async function deleteBucketRecursive(env: S3TestEnv, name: string): Promise<void> {
  const aws = client(env);
  // Objects, page by page (plain one-by-one deletes: this helper must not depend on the adapter).
  for (;;) {
    const listing = await aws.fetch(bucketUrl(env, name, "?list-type=2&max-keys=1000"));
    if (listing.status === 404) return;
    const xml = await expectOk(listing, `list bucket '${name}'`);
    const keys = [...xml.matchAll(/<Key>([\s\S]*?)<\/Key>/g)].map((m) => decodeXml(m[1]));
    if (keys.length === 0) break;
    await runLimited(keys, 16, async (key) => {
      const response = await aws.fetch(`${bucketUrl(env, name)}/${encodeKey(key)}`, {
        method: "DELETE",
      });
      await expectOk(response, `delete '${key}'`, [404]);
    });
  }
  // Multipart uploads left behind by failed or aborted tests.
  const uploads = await aws.fetch(bucketUrl(env, name, "?uploads"));
  const uploadsXml = await expectOk(uploads, `list uploads of '${name}'`, [404]);
  for (const block of uploadsXml.matchAll(/<Upload>([\s\S]*?)<\/Upload>/g)) {
    const key = decodeXml(/<Key>([\s\S]*?)<\/Key>/.exec(block[1])?.[1] ?? "");
    const id = decodeXml(/<UploadId>([\s\S]*?)<\/UploadId>/.exec(block[1])?.[1] ?? "");
    const response = await aws.fetch(
      `${bucketUrl(env, name)}/${encodeKey(key)}?uploadId=${encodeURIComponent(id)}`,
      { method: "DELETE" },
    );
    await expectOk(response, `abort upload of '${key}'`, [404]);
  }
  const response = await aws.fetch(bucketUrl(env, name), { method: "DELETE" });
  await expectOk(response, `delete bucket '${name}'`, [404]);
}

/**
 * Lists the multipart uploads still open in a bucket (to check that failures abort theirs).
 *
 * @param env Server and credentials.
 * @param name Bucket name.
 * @returns The keys of the open uploads.
 */
export async function listOpenUploads(env: S3TestEnv, name: string): Promise<string[]> {
  const response = await client(env).fetch(bucketUrl(env, name, "?uploads"));
  const xml = await expectOk(response, `list uploads of '${name}'`);
  return [...xml.matchAll(/<Upload>[\s\S]*?<Key>([\s\S]*?)<\/Key>/g)].map((m) => decodeXml(m[1]));
}

function decodeXml(text: string): string {
  return text.replace(
    /&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g,
    (_, e: string) =>
      ({ amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" } as Record<string, string>)[e] ??
        String.fromCodePoint(e[1] === "x" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)),
  );
}

/** Runs `task` over `items` with at most `limit` in flight. */
export async function runLimited<T>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await task(items[next++]);
  });
  await Promise.all(workers);
}
