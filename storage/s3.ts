// The S3-compatible storage adapter (AWS S3, R2, MinIO, Ceph RGW) on fetch + SigV4, web APIs only.

import { z } from "zod";
import { ValidationError } from "../core/errors.ts";
import { toValidationError } from "../core/schemas.ts";
import { assertValidKey, assertValidRange } from "./keys.ts";
import type {
  RunStorage,
  StorageListOptions,
  StorageRange,
  StorageReplaceOptions,
  StorageStat,
  StorageWriteOptions,
  StorageWriteResult,
  StorageWriteStreamOptions,
} from "./types.ts";
import type { BucketContext } from "./s3/context.ts";
import { deleteKeys } from "./s3/delete-many.ts";
import { bareEtag, bytesEqual, contentType, encodeSegment, toBytes } from "./s3/encoding.ts";
import { listFolders, listKeys } from "./s3/listing.ts";
import { MIN_PART_SIZE, writeStream } from "./s3/multipart.ts";
import { ADAPTER, type Call, createTransport } from "./s3/transport.ts";

/** How {@linkcode createS3Storage} retries requests that failed for a transient reason. */
export interface S3RetryOptions {
  /** Retries after the first attempt (not counting it); `0` turns retries off. Default `4`. */
  attempts?: number;
  /** Upper bound of the first backoff delay, in ms; doubles per retry (full jitter). Default `100`. */
  baseDelayMs?: number;
  /** Cap of any single backoff delay, in ms. Default `2000`. */
  maxDelayMs?: number;
  /**
   * Total time, in ms from the first attempt, after which no new attempt starts. Default `20000`.
   * An attempt already under way is bounded by {@linkcode S3StorageOptions.timeoutMs} instead.
   */
  budgetMs?: number;
}

/** Options of {@linkcode createS3Storage}. */
export interface S3StorageOptions {
  /** Base URL of the S3 API, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:7480`. */
  endpoint: string;
  /** Bucket name. The bucket must exist. */
  bucket: string;
  /** SigV4 signing region. Default `us-east-1` (use `auto` for R2). */
  region?: string;
  /** Access key id. Kept private: never exposed on the storage or in errors. */
  accessKeyId: string;
  /** Secret access key. Kept private: never exposed on the storage or in errors. */
  secretAccessKey: string;
  /** Session token of temporary credentials (STS). Kept private. */
  sessionToken?: string;
  /**
   * Key prefix inside the bucket, e.g. `prod/conductor`; storage keys are stored under
   * `<prefix>/<key>`. A trailing `/` is added when missing. Default: the bucket root.
   */
  prefix?: string;
  /**
   * Path-style addressing (`<endpoint>/<bucket>/<key>`) when `true` or omitted; virtual-hosted
   * style (`<bucket>.<endpoint host>/<key>`) when `false`.
   */
  pathStyle?: boolean;
  /** Retry policy for 5xx, 429, `SlowDown` and network failures. */
  retries?: S3RetryOptions;
  /** Time limit of one HTTP request, response body included, in ms. Default `30000`. */
  timeoutMs?: number;
  /**
   * Part size of multipart uploads made by `writeStream`, in bytes (at least 5 MiB); streams that
   * fit in one part are written with a single PUT. Default 8 MiB.
   */
  partSize?: number;
  /** The `fetch` to use; defaults to the global one. Lets tests and proxies intercept requests. */
  fetch?: typeof fetch;
}

const MiB = 1024 * 1024;
// User metadata stamped on conditional PUTs, to tell our own retried write from another writer's.
const WRITE_ID_HEADER = "x-amz-meta-baa-write-id";

const retrySchema = z.strictObject({
  attempts: z.number().int().min(0).max(20).optional(),
  baseDelayMs: z.number().min(0).max(60_000).optional(),
  maxDelayMs: z.number().min(0).max(300_000).optional(),
  budgetMs: z.number().min(0).max(3_600_000).optional(),
});

const optionsSchema = z.strictObject({
  endpoint: z.string().refine((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === "http:" || url.protocol === "https:") && url.search === "" &&
        url.hash === "" && url.username === "" && url.password === "";
    } catch {
      return false;
    }
  }, "must be an http(s) URL without query, fragment or user info"),
  bucket: z.string().regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/,
    "must be 2-255 letters, digits, '.', '_' or '-', starting with a letter or digit",
  ),
  region: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, "must be a region name like 'us-east-1'")
    .optional(),
  accessKeyId: z.string().min(1, "must not be empty"),
  secretAccessKey: z.string().min(1, "must not be empty"),
  sessionToken: z.string().min(1, "must not be empty").optional(),
  prefix: z.string().optional(),
  pathStyle: z.boolean().optional(),
  retries: retrySchema.optional(),
  timeoutMs: z.number().int().min(1).max(3_600_000).optional(),
  partSize: z.number().int().min(MIN_PART_SIZE).max(5 * 1024 * MiB).optional(),
  fetch: z.custom<typeof fetch>((value) => typeof value === "function", "must be a function")
    .optional(),
});

/**
 * Creates a storage on an S3-compatible bucket (AWS S3, Cloudflare R2, MinIO, Ceph RGW).
 *
 * Requests are signed with SigV4 (`aws4fetch`) and sent with `fetch`, so the adapter runs on
 * Deno, Node 20+, Deno Deploy and Workers. Besides the required part it offers `replace`
 * (PUT with `If-Match`), `writeStream` (single PUT or multipart upload), `stat` (HEAD),
 * `readRange` (GET with `Range`), `listPrefixes` (`delimiter=/`) and `deleteMany`
 * (DeleteObjects); `list` honours `startAfter` (`start-after`); it has no `append`. Transient failures (5xx, 429, `SlowDown`, network
 * errors, timeouts) are retried with jittered exponential backoff; when retries run out the
 * error's `code` is `"unavailable"`. Credentials stay inside the adapter's closure.
 *
 * @param options Endpoint, bucket, credentials and tuning; validated once.
 * @returns The storage; `locate(key)` gives `s3://<bucket>/<prefix><key>`.
 * @throws {ValidationError} When an option is missing or malformed; names the field.
 *
 * @example
 * ```ts ignore
 * import { createS3Storage } from "./s3.ts";
 * const storage = createS3Storage({
 *   endpoint: "http://127.0.0.1:7480",
 *   bucket: "runs",
 *   accessKeyId: "AKIA...",
 *   secretAccessKey: "...",
 * });
 * await storage.write("hello.txt", "hi", { ifNoneMatch: "*" });
 * console.log(storage.locate("hello.txt")); // "s3://runs/hello.txt"
 * ```
 */
export function createS3Storage(options: S3StorageOptions): RunStorage {
  const parsed = optionsSchema.safeParse(options);
  // Zod's issues describe types and bounds, never values, so no secret can leak through them.
  if (!parsed.success) throw toValidationError(parsed.error, "Invalid S3 storage options");
  const config = parsed.data;
  const prefix = normalizePrefix(config.prefix);
  const endpoint = new URL(config.endpoint);
  const pathStyle = config.pathStyle ?? true;
  if (!pathStyle && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(config.bucket)) {
    throw new ValidationError(
      [{ path: "bucket", message: "must be a DNS-compatible name for virtual-hosted style" }],
      "Invalid S3 storage options",
    );
  }
  const partSize = config.partSize ?? 8 * MiB;
  const bucketName = config.bucket;
  const transport = createTransport({
    accessKeyId: config.accessKeyId,
    secretAccessKey: config.secretAccessKey,
    sessionToken: config.sessionToken,
    region: config.region ?? "us-east-1",
    retry: {
      attempts: config.retries?.attempts ?? 4,
      baseDelayMs: config.retries?.baseDelayMs ?? 100,
      maxDelayMs: config.retries?.maxDelayMs ?? 2000,
      budgetMs: config.retries?.budgetMs ?? 20_000,
    },
    timeoutMs: config.timeoutMs ?? 30_000,
    fetch: config.fetch ?? ((input, init) => fetch(input, init)),
  });
  const { send, failed } = transport;

  const base = pathStyle
    ? `${endpoint.origin}${endpoint.pathname.replace(/\/+$/, "")}/${encodeSegment(bucketName)}`
    : `${endpoint.protocol}//${bucketName}.${endpoint.host}${
      endpoint.pathname.replace(/\/+$/, "")
    }`;
  const objectUrl = (key: string, query = ""): string =>
    `${base}/${(prefix + key).split("/").map(encodeSegment).join("/")}${query}`;
  const bucketUrl = (query: string): string => `${base}/${query}`;

  /**
   * After a 412 on a retried conditional PUT, the earlier attempt may have been ours. Each
   * conditional PUT carries a random write id in its metadata: only when the stored object has
   * OUR id (and our bytes) did our write land. Comparing bytes alone would let a duplicate run
   * with identical `meta.json` bytes believe it had won.
   */
  async function ownWriteLanded(
    operation: string,
    key: string,
    data: Uint8Array,
    writeId: string,
  ): Promise<string | undefined> {
    const exchange = await send({ operation, key, method: "GET", url: objectUrl(key) });
    if (exchange.status !== 200) return undefined;
    if (exchange.headers.get(WRITE_ID_HEADER) !== writeId || !bytesEqual(exchange.body, data)) {
      return undefined;
    }
    return bareEtag(exchange.headers.get("etag")) ?? "";
  }

  async function put(
    operation: string,
    key: string,
    data: Uint8Array,
    conditional: Record<string, string>,
  ): Promise<StorageWriteResult> {
    const writeId = Object.keys(conditional).length > 0 ? crypto.randomUUID() : undefined;
    const call: Call = {
      operation,
      key,
      method: "PUT",
      url: objectUrl(key),
      headers: {
        "content-type": contentType(key),
        ...conditional,
        ...(writeId === undefined ? {} : { [WRITE_ID_HEADER]: writeId }),
      },
      body: data,
    };
    const exchange = await send(call);
    if (exchange.status >= 200 && exchange.status < 300) {
      const etag = bareEtag(exchange.headers.get("etag"));
      return etag === undefined || etag === "" ? {} : { etag };
    }
    const error = failed(call, exchange);
    if (error.code === "precondition_failed" && exchange.ambiguous && writeId !== undefined) {
      const etag = await ownWriteLanded(operation, key, data, writeId);
      if (etag !== undefined) return etag === "" ? {} : { etag };
    }
    throw error;
  }

  const bucket: BucketContext = { transport, prefix, objectUrl, bucketUrl, put };

  const storage: RunStorage = {
    name: ADAPTER,

    async read(key: string): Promise<Uint8Array | undefined> {
      assertValidKey(ADAPTER, "read", key);
      const call: Call = { operation: "read", key, method: "GET", url: objectUrl(key) };
      const exchange = await send(call);
      if (exchange.status === 200) return exchange.body;
      if (exchange.status === 404 && (exchange.code ?? "NoSuchKey") === "NoSuchKey") {
        return undefined;
      }
      throw failed(call, exchange);
    },

    async stat(key: string): Promise<StorageStat | undefined> {
      assertValidKey(ADAPTER, "stat", key);
      const call: Call = { operation: "stat", key, method: "HEAD", url: objectUrl(key) };
      const exchange = await send(call);
      // A HEAD answer has no body, so a 404 carries no error code to tell a missing bucket.
      if (exchange.status === 404) return undefined;
      if (exchange.status !== 200) throw failed(call, exchange);
      const stat: StorageStat = { size: Number(exchange.headers.get("content-length") ?? 0) };
      const etag = bareEtag(exchange.headers.get("etag"));
      if (etag !== undefined && etag !== "") stat.etag = etag;
      const modified = Date.parse(exchange.headers.get("last-modified") ?? "");
      if (!Number.isNaN(modified)) stat.modifiedAt = new Date(modified);
      return stat;
    },

    async readRange(key: string, range: StorageRange): Promise<Uint8Array | undefined> {
      assertValidKey(ADAPTER, "readRange", key);
      assertValidRange(range);
      if (range.length === 0) {
        return (await storage.stat!(key)) === undefined ? undefined : new Uint8Array(0);
      }
      const last = range.length === undefined ? "" : String(range.offset + range.length - 1);
      const call: Call = {
        operation: "readRange",
        key,
        method: "GET",
        url: objectUrl(key),
        headers: { range: `bytes=${range.offset}-${last}` },
      };
      const exchange = await send(call);
      if (exchange.status === 206) return exchange.body;
      // A server that ignores Range sends the whole object: cut the range out of it.
      if (exchange.status === 200) {
        const end = range.length === undefined ? undefined : range.offset + range.length;
        return exchange.body.slice(range.offset, end);
      }
      // A range that starts at or past the end (an empty object included) exists but is empty.
      if (exchange.status === 416) return new Uint8Array(0);
      if (exchange.status === 404 && (exchange.code ?? "NoSuchKey") === "NoSuchKey") {
        return undefined;
      }
      throw failed(call, exchange);
    },

    async write(
      key: string,
      data: Uint8Array | string,
      options?: StorageWriteOptions,
    ): Promise<StorageWriteResult> {
      assertValidKey(ADAPTER, "write", key);
      const conditional: Record<string, string> = options?.ifNoneMatch === "*"
        ? { "if-none-match": "*" }
        : {};
      return await put("write", key, toBytes(data), conditional);
    },

    async *list(listPrefix: string, options?: StorageListOptions): AsyncIterable<string> {
      assertValidKey(ADAPTER, "list", listPrefix, true);
      if (options?.startAfter !== undefined) {
        assertValidKey(ADAPTER, "list", options.startAfter, true);
      }
      yield* listKeys(bucket, listPrefix, options?.startAfter);
    },

    async *listPrefixes(
      listPrefix: string,
      options?: StorageListOptions,
    ): AsyncIterable<string> {
      assertValidKey(ADAPTER, "listPrefixes", listPrefix, true);
      if (listPrefix !== "" && !listPrefix.endsWith("/")) {
        throw new TypeError(`listPrefixes() prefix must be "" or end in '/'; got '${listPrefix}'`);
      }
      if (options?.startAfter !== undefined) {
        assertValidKey(ADAPTER, "listPrefixes", options.startAfter, true);
      }
      yield* listFolders(bucket, listPrefix, options?.startAfter);
    },

    async delete(key: string): Promise<void> {
      assertValidKey(ADAPTER, "delete", key);
      const call: Call = { operation: "delete", key, method: "DELETE", url: objectUrl(key) };
      const exchange = await send(call);
      if (exchange.status >= 200 && exchange.status < 300) return;
      if (exchange.status === 404 && exchange.code === "NoSuchKey") return;
      throw failed(call, exchange);
    },

    locate(key: string): string {
      assertValidKey(ADAPTER, "locate", key);
      return `s3://${bucketName}/${prefix}${key}`;
    },

    async replace(
      key: string,
      data: Uint8Array | string,
      options: StorageReplaceOptions,
    ): Promise<StorageWriteResult> {
      assertValidKey(ADAPTER, "replace", key);
      const etag = bareEtag(options?.ifMatch);
      if (etag === undefined || etag === "" || /[\s",]/.test(etag)) {
        throw new TypeError(
          `replace() needs options.ifMatch, a bare ETag; got '${options?.ifMatch}'`,
        );
      }
      // Ceph RGW refuses a quoted If-Match; AWS S3 compares quoted and bare alike.
      return await put("replace", key, toBytes(data), { "if-match": etag });
    },

    async writeStream(
      key: string,
      source: AsyncIterable<Uint8Array>,
      options?: StorageWriteStreamOptions,
    ): Promise<StorageWriteResult> {
      assertValidKey(ADAPTER, "writeStream", key);
      return await writeStream(bucket, key, source, partSize, options);
    },

    async deleteMany(keys: readonly string[]): Promise<void> {
      for (const key of keys) assertValidKey(ADAPTER, "deleteMany", key);
      await deleteKeys(bucket, keys);
    },

    close(): Promise<void> {
      return Promise.resolve();
    },
  };
  return storage;
}

function normalizePrefix(prefix: string | undefined): string {
  if (prefix === undefined || prefix === "" || prefix === "/") return "";
  const trimmed = prefix.replace(/^\/+/, "").replace(/\/+$/, "");
  if (trimmed === "") return "";
  try {
    assertValidKey(ADAPTER, "configure", trimmed);
  } catch (error) {
    throw new ValidationError(
      [{ path: "prefix", message: (error as Error).message.replace(/ \(s3 configure.*$/, "") }],
      "Invalid S3 storage options",
    );
  }
  return `${trimmed}/`;
}
