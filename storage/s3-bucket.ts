// Creating the bucket a run storage needs, for tests and local development (MinIO, Ceph RGW).

import { AwsClient } from "aws4fetch";
import { z } from "zod";
import { StorageError } from "../core/errors.ts";
import { toValidationError } from "../core/schemas.ts";

/** Options of {@linkcode ensureS3Bucket}: the connection part of `S3StorageOptions`. */
export interface EnsureS3BucketOptions {
  /** Base URL of the S3 API, e.g. `http://127.0.0.1:9000`. */
  endpoint: string;
  /** Name of the bucket to create. */
  bucket: string;
  /** SigV4 region; default `us-east-1`. Another AWS region is sent as the bucket's location. */
  region?: string;
  /** Access key id. Never exposed in errors. */
  accessKeyId: string;
  /** Secret access key. Never exposed in errors. */
  secretAccessKey: string;
  /** Session token of temporary credentials. */
  sessionToken?: string;
  /** Path-style addressing unless `false`, as in `createS3Storage`. */
  pathStyle?: boolean;
  /** The `fetch` to use; defaults to the global one. */
  fetch?: typeof fetch;
}

const OptionsSchema = z.strictObject({
  endpoint: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
  bucket: z.string().regex(
    /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
    "must be 3-63 lowercase letters, digits, '.' or '-', starting and ending with a letter or digit",
  ),
  region: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, "must be a region name like 'us-east-1'")
    .optional(),
  accessKeyId: z.string().min(1),
  secretAccessKey: z.string().min(1),
  sessionToken: z.string().min(1).optional(),
  pathStyle: z.boolean().optional(),
  fetch: z.custom<typeof fetch>((value) => typeof value === "function", "must be a function")
    .optional(),
});

/**
 * Creates a bucket unless it already exists and is yours: for test setup and local development
 * against MinIO or Ceph RGW (production buckets are usually made by infrastructure code).
 * A signed `HEAD`, then a `PUT` when the bucket is missing; `fetch` and web crypto only, like `createS3Storage`.
 *
 * @param options Endpoint, bucket name, credentials; as for `createS3Storage`.
 * @returns `{ created: true }` when this call made it, `{ created: false }` when it was
 *   already yours.
 * @throws {ValidationError} An option is missing, unknown or malformed; names the field.
 * @throws {StorageError} The server refused (e.g. the name belongs to someone else:
 *   `backendCode` `BucketAlreadyExists`, or `access_denied`).
 *
 * @example
 * ```ts ignore
 * import { createS3Storage, ensureS3Bucket } from "./mod.ts";
 * const connection = {
 *   endpoint: "http://127.0.0.1:9000",
 *   bucket: "runs-dev",
 *   accessKeyId: "minioadmin",
 *   secretAccessKey: "minioadmin",
 * };
 * await ensureS3Bucket(connection);
 * const storage = createS3Storage(connection);
 * ```
 */
export async function ensureS3Bucket(
  options: EnsureS3BucketOptions,
): Promise<{ created: boolean }> {
  const parsed = OptionsSchema.safeParse(options);
  if (!parsed.success) throw toValidationError(parsed.error, "Invalid S3 bucket options");
  const config = parsed.data;
  const region = config.region ?? "us-east-1";
  const client = new AwsClient({
    accessKeyId: config.accessKeyId,
    secretAccessKey: config.secretAccessKey,
    sessionToken: config.sessionToken,
    service: "s3",
    region,
    retries: 0,
  });
  const endpoint = new URL(config.endpoint);
  const base = endpoint.pathname.replace(/\/+$/, "");
  const url = config.pathStyle === false
    ? `${endpoint.protocol}//${config.bucket}.${endpoint.host}${base}/`
    : `${endpoint.origin}${base}/${config.bucket}`;
  // us-east-1 (and R2's "auto") take no location; any other AWS region must be named.
  const body = region === "us-east-1" || region === "auto"
    ? undefined
    : '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
      `<LocationConstraint>${region}</LocationConstraint></CreateBucketConfiguration>`;
  const fetchImpl = config.fetch ?? fetch;
  const send = async (method: "HEAD" | "PUT"): Promise<Response> => {
    try {
      return await fetchImpl(
        await client.sign(url, { method, body: method === "PUT" ? body : undefined }),
      );
    } catch (error) {
      throw new StorageError("Could not reach the S3 endpoint", {
        adapter: "s3",
        operation: "createBucket",
        key: "",
        code: "unavailable",
        cause: error,
      });
    }
  };
  // A PUT on a bucket you own succeeds on some servers (RGW, AWS us-east-1) and fails with
  // BucketAlreadyOwnedByYou on others: ask first, so the answer says whether this call made it.
  const head = await send("HEAD");
  await head.body?.cancel();
  if (head.ok) return { created: false };
  const response = await send("PUT");
  const text = await response.text();
  if (response.ok) return { created: true };
  const backendCode = /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
  if (backendCode === "BucketAlreadyOwnedByYou") return { created: false };
  throw new StorageError(
    `Could not create bucket '${config.bucket}': ${response.status}${
      backendCode ? ` ${backendCode}` : ""
    }`,
    {
      adapter: "s3",
      operation: "createBucket",
      key: "",
      status: response.status,
      code: response.status === 403 ? "access_denied" : "storage_failed",
      ...(backendCode !== undefined ? { backendCode } : {}),
    },
  );
}
