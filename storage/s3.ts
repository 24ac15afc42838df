// The S3-compatible storage adapter (AWS S3, R2, MinIO, Ceph RGW) on fetch + SigV4, web APIs only.

import { AwsClient } from "aws4fetch";
import { z } from "zod";
import { StorageError, ValidationError } from "../core/errors.ts";
import type { StorageErrorCode } from "../core/errors.ts";
import { toValidationError } from "../core/schemas.ts";
import { assertValidKey } from "./keys.ts";
import type {
  RunStorage,
  StorageReplaceOptions,
  StorageStat,
  StorageWriteOptions,
  StorageWriteResult,
  StorageWriteStreamOptions,
} from "./types.ts";

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
const MIN_PART_SIZE = 5 * MiB;
const MAX_PARTS = 10_000;
const DELETE_BATCH = 1000;
const ADAPTER = "s3";
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
 * (PUT with `If-Match`), `writeStream` (single PUT or multipart upload), `stat` (HEAD) and `deleteMany`
 * (DeleteObjects); it has no `append`. Transient failures (5xx, 429, `SlowDown`, network
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
  const retry = {
    attempts: config.retries?.attempts ?? 4,
    baseDelayMs: config.retries?.baseDelayMs ?? 100,
    maxDelayMs: config.retries?.maxDelayMs ?? 2000,
    budgetMs: config.retries?.budgetMs ?? 20_000,
  };
  const timeoutMs = config.timeoutMs ?? 30_000;
  const partSize = config.partSize ?? 8 * MiB;
  const fetchImpl: typeof fetch = config.fetch ?? ((input, init) => fetch(input, init));
  const bucket = config.bucket;

  // The client (which holds the credentials in its fields) never leaves this closure.
  const client = new AwsClient({
    accessKeyId: config.accessKeyId,
    secretAccessKey: config.secretAccessKey,
    sessionToken: config.sessionToken,
    service: "s3",
    region: config.region ?? "us-east-1",
    retries: 0,
  });
  const secrets = [config.secretAccessKey, config.sessionToken, config.accessKeyId]
    .filter((value): value is string => typeof value === "string" && value.length >= 4);
  const scrub = (text: string): string =>
    secrets.reduce((out, secret) => out.split(secret).join("[redacted]"), text);

  const base = pathStyle
    ? `${endpoint.origin}${endpoint.pathname.replace(/\/+$/, "")}/${encodeSegment(bucket)}`
    : `${endpoint.protocol}//${bucket}.${endpoint.host}${endpoint.pathname.replace(/\/+$/, "")}`;
  const objectUrl = (key: string, query = ""): string =>
    `${base}/${(prefix + key).split("/").map(encodeSegment).join("/")}${query}`;
  const bucketUrl = (query: string): string => `${base}/${query}`;

  interface Exchange {
    status: number;
    headers: Headers;
    body: Uint8Array;
    /** S3 error `<Code>`, when the body is an error document. */
    code?: string;
    /** S3 error `<Message>`. */
    message?: string;
    /** A previous attempt may have been applied by the server before it failed. */
    ambiguous: boolean;
  }

  interface Call {
    operation: string;
    key: string;
    method: string;
    url: string;
    headers?: Record<string, string>;
    body?: Uint8Array;
    /** CompleteMultipartUpload may answer 200 with an error document. */
    errorIn200?: boolean;
  }

  /** Sends one S3 request with retries; resolves with the final answer, whatever its status. */
  async function send(call: Call): Promise<Exchange> {
    const started = Date.now();
    const headers: Record<string, string> = { ...call.headers };
    if (call.body !== undefined) {
      headers["x-amz-content-sha256"] = await sha256Hex(call.body);
    }
    let ambiguous = false;
    for (let attempt = 0;; attempt++) {
      let exchange: Exchange | undefined;
      let failure: unknown;
      const controller = new AbortController();
      const timer = setTimeout(
        () => controller.abort(new DOMException("S3 request timed out", "TimeoutError")),
        timeoutMs,
      );
      let request: Request;
      try {
        request = await client.sign(call.url, {
          method: call.method,
          headers,
          body: call.body as BodyInit | undefined,
          signal: controller.signal,
        });
      } catch (error) {
        // Signing is deterministic: a failure here is a bug or bad input, never worth a retry.
        clearTimeout(timer);
        throw new StorageError(scrub(`Could not sign the request: ${describeError(error)}`), {
          adapter: ADAPTER,
          operation: call.operation,
          key: call.key,
          cause: sanitize(error, scrub),
        });
      }
      try {
        const response = await fetchImpl(request);
        const body = new Uint8Array(await response.arrayBuffer());
        exchange = { status: response.status, headers: response.headers, body, ambiguous };
        // A 200 may carry an <Error> (CompleteMultipartUpload): callers that allow it check
        // `code` as well as `status`, and transient codes are retried like a 5xx.
        if (response.status >= 300 || call.errorIn200) {
          const error = parseErrorDocument(body);
          if (error !== undefined) {
            exchange.code = error.code ?? "UnknownError";
            exchange.message = error.message;
          }
        }
      } catch (error) {
        failure = error;
      } finally {
        clearTimeout(timer);
      }

      const transient = exchange === undefined || isTransient(exchange);
      if (!transient) return exchange!;
      const elapsed = Date.now() - started;
      const delay = backoff(attempt, exchange?.headers);
      if (attempt >= retry.attempts || elapsed + delay > retry.budgetMs) {
        const what = exchange === undefined
          ? `Request failed: ${describeError(failure)}`
          : `S3 answered ${exchange.status}${exchange.code ? ` ${exchange.code}` : ""}`;
        throw new StorageError(
          scrub(`${what} after ${attempt + 1} attempt${attempt === 0 ? "" : "s"}`),
          {
            adapter: ADAPTER,
            operation: call.operation,
            key: call.key,
            code: "unavailable",
            status: exchange?.status,
            backendCode: exchange?.code,
            cause: failure === undefined ? undefined : sanitize(failure, scrub),
          },
        );
      }
      // Any failed attempt may have reached the server (timeouts, 500 after commit).
      ambiguous = true;
      await sleep(delay);
    }
  }

  function backoff(attempt: number, headers: Headers | undefined): number {
    const ceiling = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** attempt);
    const jittered = Math.random() * ceiling;
    const retryAfter = Number(headers?.get("retry-after"));
    if (Number.isFinite(retryAfter) && retryAfter > 0) {
      return Math.min(retry.maxDelayMs, Math.max(jittered, retryAfter * 1000));
    }
    return jittered;
  }

  /** Turns a non-success answer into a `StorageError` with the right stable code. */
  function failed(call: Pick<Call, "operation" | "key">, exchange: Exchange): StorageError {
    let code: StorageErrorCode = "storage_failed";
    if (exchange.status === 403) code = "access_denied";
    if (
      exchange.status === 412 ||
      (exchange.status === 409 && exchange.code === "ConditionalRequestConflict")
    ) code = "precondition_failed";
    const detail = exchange.message ? `: ${exchange.message}` : "";
    return new StorageError(
      scrub(`S3 answered ${exchange.status}${exchange.code ? ` ${exchange.code}` : ""}${detail}`),
      {
        adapter: ADAPTER,
        operation: call.operation,
        key: call.key,
        code,
        status: exchange.status,
        backendCode: exchange.code,
      },
    );
  }

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

    async *list(listPrefix: string): AsyncIterable<string> {
      assertValidKey(ADAPTER, "list", listPrefix, true);
      const fullPrefix = prefix + listPrefix;
      let token: string | undefined;
      let startAfter: string | undefined;
      for (;;) {
        const query = [
          "list-type=2",
          `prefix=${encodeQuery(fullPrefix)}`,
          "encoding-type=url",
          "max-keys=1000",
          token === undefined ? "" : `continuation-token=${encodeQuery(token)}`,
          startAfter === undefined ? "" : `start-after=${encodeQuery(startAfter)}`,
        ].filter(Boolean).join("&");
        const call: Call = {
          operation: "list",
          key: listPrefix,
          method: "GET",
          url: bucketUrl(`?${query}`),
        };
        const exchange = await send(call);
        if (exchange.status !== 200) throw failed(call, exchange);
        const xml = new TextDecoder().decode(exchange.body);
        const urlEncoded = xmlText(xml, "EncodingType")?.toLowerCase() === "url";
        let last: string | undefined;
        for (const contents of xmlAll(xml, "Contents")) {
          const raw = xmlText(contents, "Key");
          if (raw === undefined) continue;
          const fullKey = urlEncoded ? decodeListKey(raw) : raw;
          last = fullKey;
          if (fullKey.startsWith(prefix)) yield fullKey.slice(prefix.length);
        }
        if (xmlText(xml, "IsTruncated") !== "true") return;
        const next = xmlText(xml, "NextContinuationToken");
        if (next !== undefined && next !== "") {
          token = next;
          startAfter = undefined;
        } else if (last !== undefined) {
          // Servers that page without tokens still honour start-after.
          token = undefined;
          startAfter = last;
        } else {
          throw new StorageError("S3 listing was truncated without a way to continue", {
            adapter: ADAPTER,
            operation: "list",
            key: listPrefix,
          });
        }
      }
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
      return `s3://${bucket}/${prefix}${key}`;
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
      const size = options?.size;
      if (size !== undefined && (!Number.isSafeInteger(size) || size < 0)) {
        throw new TypeError(
          `writeStream() options.size must be a non-negative integer; got ${size}`,
        );
      }
      // Grow parts for known huge objects so they stay within S3's 10,000-part limit.
      const part = size === undefined ? partSize : Math.max(
        partSize,
        Math.ceil(size / MAX_PARTS / MiB) * MiB,
      );
      const buffer = new ChunkQueue();
      let total = 0;
      let uploadId: string | undefined;
      const parts: { number: number; etag: string }[] = [];

      const uploadPart = async (bytes: Uint8Array): Promise<void> => {
        const number = parts.length + 1;
        if (number > MAX_PARTS) {
          throw new StorageError(`Stream needs more than ${MAX_PARTS} parts; pass options.size`, {
            adapter: ADAPTER,
            operation: "writeStream",
            key,
          });
        }
        const call: Call = {
          operation: "writeStream",
          key,
          method: "PUT",
          url: objectUrl(key, `?partNumber=${number}&uploadId=${encodeQuery(uploadId!)}`),
          body: bytes,
        };
        const exchange = await send(call);
        if (exchange.status !== 200) throw failed(call, exchange);
        const etag = exchange.headers.get("etag");
        if (etag === null) {
          throw new StorageError(`S3 gave no ETag for part ${number}`, {
            adapter: ADAPTER,
            operation: "writeStream",
            key,
          });
        }
        parts.push({ number, etag });
      };

      try {
        for await (const chunk of source) {
          if (!(chunk instanceof Uint8Array)) {
            throw new TypeError("writeStream() source must yield Uint8Array chunks");
          }
          if (chunk.byteLength === 0) continue;
          buffer.push(chunk);
          total += chunk.byteLength;
          // Strictly more than one part buffered: the object surely needs a multipart upload.
          while (buffer.size > part) {
            if (uploadId === undefined) uploadId = await createUpload(key);
            await uploadPart(buffer.take(part));
          }
        }
        if (size !== undefined && total !== size) {
          throw new StorageError(`Stream gave ${total} bytes, expected ${size}`, {
            adapter: ADAPTER,
            operation: "writeStream",
            key,
          });
        }
        if (uploadId === undefined) {
          return await put("writeStream", key, buffer.take(buffer.size), {});
        }
        await uploadPart(buffer.take(buffer.size));
        return await completeUpload(key, uploadId, parts);
      } catch (error) {
        if (uploadId !== undefined) await abortUpload(key, uploadId);
        throw error;
      }
    },

    async deleteMany(keys: readonly string[]): Promise<void> {
      for (const key of keys) assertValidKey(ADAPTER, "deleteMany", key);
      const unique = [...new Set(keys)];
      for (let start = 0; start < unique.length; start += DELETE_BATCH) {
        const batch = unique.slice(start, start + DELETE_BATCH);
        const xml = `<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>true</Quiet>${
          batch.map((key) => `<Object><Key>${escapeXml(prefix + key)}</Key></Object>`).join("")
        }</Delete>`;
        const body = new TextEncoder().encode(xml);
        const call: Call = {
          operation: "deleteMany",
          key: batch[0],
          method: "POST",
          url: bucketUrl("?delete"),
          // AWS requires a body checksum on DeleteObjects; Content-MD5 is the one every
          // S3-compatible server accepts (WebCrypto has no MD5, hence md5() below).
          headers: { "content-type": "application/xml", "content-md5": base64(md5(body)) },
          body,
          errorIn200: true,
        };
        const exchange = await send(call);
        if (exchange.status !== 200 || exchange.code !== undefined) throw failed(call, exchange);
        const errors = xmlAll(new TextDecoder().decode(exchange.body), "Error")
          .map((block) => ({
            key: xmlText(block, "Key") ?? "",
            code: xmlText(block, "Code"),
            message: xmlText(block, "Message"),
          }))
          .filter((error) => error.code !== "NoSuchKey");
        if (errors.length > 0) {
          const first = errors[0];
          const key = first.key.startsWith(prefix) ? first.key.slice(prefix.length) : first.key;
          const more = errors.length > 1 ? ` (and ${errors.length - 1} more keys)` : "";
          throw new StorageError(
            scrub(
              `S3 could not delete the key: ${first.code}${
                first.message ? ` ${first.message}` : ""
              }${more}`,
            ),
            {
              adapter: ADAPTER,
              operation: "deleteMany",
              key,
              code: first.code === "AccessDenied" ? "access_denied" : "storage_failed",
              status: 200,
              backendCode: first.code,
            },
          );
        }
      }
    },

    close(): Promise<void> {
      return Promise.resolve();
    },
  };

  async function createUpload(key: string): Promise<string> {
    const call: Call = {
      operation: "writeStream",
      key,
      method: "POST",
      url: objectUrl(key, "?uploads"),
      headers: { "content-type": contentType(key) },
    };
    const exchange = await send(call);
    if (exchange.status !== 200) throw failed(call, exchange);
    const id = xmlText(new TextDecoder().decode(exchange.body), "UploadId");
    if (id === undefined || id === "") {
      throw new StorageError("S3 gave no UploadId", {
        adapter: ADAPTER,
        operation: "writeStream",
        key,
      });
    }
    return id;
  }

  async function completeUpload(
    key: string,
    uploadId: string,
    parts: readonly { number: number; etag: string }[],
  ): Promise<StorageWriteResult> {
    const xml = `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload>${
      parts.map((part) =>
        `<Part><PartNumber>${part.number}</PartNumber><ETag>${escapeXml(part.etag)}</ETag></Part>`
      ).join("")
    }</CompleteMultipartUpload>`;
    const call: Call = {
      operation: "writeStream",
      key,
      method: "POST",
      url: objectUrl(key, `?uploadId=${encodeQuery(uploadId)}`),
      headers: { "content-type": "application/xml" },
      body: new TextEncoder().encode(xml),
      errorIn200: true,
    };
    const exchange = await send(call);
    if (exchange.status !== 200 || exchange.code !== undefined) throw failed(call, exchange);
    // Ceph RGW answers with an empty <ETag>. A HEAD could fetch it, but could also see a later
    // writer's tag, which would defeat replace()'s fencing: report no tag instead.
    const etag = bareEtag(xmlText(new TextDecoder().decode(exchange.body), "ETag"));
    return etag === undefined || etag === "" ? {} : { etag };
  }

  async function abortUpload(key: string, uploadId: string): Promise<void> {
    try {
      await send({
        operation: "writeStream",
        key,
        method: "DELETE",
        url: objectUrl(key, `?uploadId=${encodeQuery(uploadId)}`),
      });
    } catch {
      // Best effort: the original failure matters more; a bucket lifecycle rule
      // (AbortIncompleteMultipartUpload) reclaims parts left behind.
    }
  }

  return storage;
}

// Transient error codes S3 reports, whatever the status they come with.
const TRANSIENT_CODES = new Set([
  "SlowDown",
  "InternalError",
  "ServiceUnavailable",
  "RequestTimeout",
]);

function isTransient(exchange: { status: number; code?: string }): boolean {
  if (exchange.status === 429) return true;
  if (exchange.status >= 500 && exchange.status !== 501) return true;
  // S3's 400 RequestTimeout means the socket idled mid-upload: a transient failure.
  return exchange.code !== undefined && TRANSIENT_CODES.has(exchange.code) &&
    exchange.status !== 403;
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

/** Encodes one path segment the way SigV4 canonicalises it (RFC 3986 unreserved kept). */
function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** Encodes a query value; same rules as a path segment, so `+` and space are unambiguous. */
function encodeQuery(value: string): string {
  return encodeSegment(value);
}

/** Decodes a key from a listing made with `encoding-type=url` (space may come as `+`). */
function decodeListKey(raw: string): string {
  return decodeURIComponent(raw.replace(/\+/g, " "));
}

function contentType(key: string): string {
  const name = key.slice(key.lastIndexOf("/") + 1);
  if (name.endsWith(".json")) return "application/json";
  if (name.endsWith(".jsonl") || name.endsWith(".ndjson")) return "application/x-ndjson";
  if (name.endsWith(".log") || name.endsWith(".txt")) return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

function toBytes(data: Uint8Array | string): Uint8Array {
  if (typeof data === "string") return new TextEncoder().encode(data);
  if (data instanceof Uint8Array) return data;
  throw new TypeError("Data must be a Uint8Array or a string");
}

/** `"abc"` / `W/"abc"` / `&quot;abc&quot;` → `abc`. */
function bareEtag(value: string | null | undefined): string | undefined {
  if (value === null || value === undefined) return undefined;
  return value.trim().replace(/^W\//, "").replace(/^"(.*)"$/, "$1");
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const inner = error.cause instanceof Error ? ` (${error.cause.message})` : "";
    return `${error.name}: ${error.message}${inner}`;
  }
  return String(error);
}

/** A credential-free copy of an error (and its causes) for `StorageError.cause`. */
function sanitize(error: unknown, scrub: (text: string) => string, depth = 0): Error {
  const source = error instanceof Error ? error : new Error(String(error));
  const copy = new Error(scrub(source.message), {
    cause: depth < 3 && source.cause !== undefined
      ? sanitize(source.cause, scrub, depth + 1)
      : undefined,
  });
  copy.name = source.name;
  copy.stack = scrub(source.stack ?? "");
  return copy;
}

// --- XML: S3 answers are small, flat documents; a few regexes read them without a DOM. ---

function xmlAll(xml: string, tag: string): string[] {
  const pattern = new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>`, "g");
  return [...xml.matchAll(pattern)].map((match) => match[1]);
}

function xmlText(xml: string, tag: string): string | undefined {
  const pattern = new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>|<${tag}\\s*/>`);
  const match = pattern.exec(xml);
  if (match === null) return undefined;
  return decodeXml(match[1] ?? "");
}

function decodeXml(text: string): string {
  return text
    .replace(/^<!\[CDATA\[([\s\S]*)\]\]>$/, "$1")
    .replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, entity: string) => {
      switch (entity) {
        case "amp":
          return "&";
        case "lt":
          return "<";
        case "gt":
          return ">";
        case "quot":
          return '"';
        case "apos":
          return "'";
        default:
          return String.fromCodePoint(
            entity[1] === "x" ? parseInt(entity.slice(2), 16) : parseInt(entity.slice(1), 10),
          );
      }
    });
}

const XML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&apos;",
};

function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => XML_ESCAPES[c]);
}

/** Reads `<Error><Code>…</Code><Message>…</Message></Error>` when the body is one. */
function parseErrorDocument(body: Uint8Array): { code?: string; message?: string } | undefined {
  if (body.byteLength === 0 || body.byteLength > 64 * 1024) return undefined;
  const xml = new TextDecoder().decode(body);
  if (!/^\s*(<\?xml[^>]*\?>\s*)?<Error[\s>]/.test(xml)) return undefined;
  return { code: xmlText(xml, "Code"), message: xmlText(xml, "Message") };
}

/** Buffered stream chunks; `take(n)` cuts exactly `n` bytes off the front. */
class ChunkQueue {
  #chunks: Uint8Array[] = [];
  size = 0;

  push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.size += chunk.byteLength;
  }

  take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let offset = 0;
    while (offset < n) {
      const head = this.#chunks[0];
      const wanted = n - offset;
      if (head.byteLength <= wanted) {
        out.set(head, offset);
        offset += head.byteLength;
        this.#chunks.shift();
      } else {
        out.set(head.subarray(0, wanted), offset);
        // Copy the rest so a huge source chunk is not pinned by a small remainder view.
        this.#chunks[0] = head.slice(wanted);
        offset = n;
      }
    }
    this.size -= n;
    return out;
  }
}

// --- Hashing: SHA-256 from WebCrypto; MD5 (absent from WebCrypto) for Content-MD5. ---

async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource));
  let hex = "";
  for (const byte of digest) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

const MD5_SHIFTS = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
const MD5_K = Array.from(
  { length: 64 },
  (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) >>> 0,
);

/** MD5 (RFC 1321) of `data`; only used for the Content-MD5 of small request bodies. */
function md5(data: Uint8Array): Uint8Array {
  const length = data.byteLength;
  const padded = new Uint8Array(((length + 8) >>> 6 << 6) + 64);
  padded.set(data);
  padded[length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.byteLength - 8, (length * 8) >>> 0, true);
  view.setUint32(padded.byteLength - 4, Math.floor(length / 0x20000000), true);
  let a0 = 0x67452301, b0 = 0xefcdab89, c0 = 0x98badcfe, d0 = 0x10325476;
  const m = new Uint32Array(16);
  for (let offset = 0; offset < padded.byteLength; offset += 64) {
    for (let i = 0; i < 16; i++) m[i] = view.getUint32(offset + i * 4, true);
    let a = a0, b = b0, c = c0, d = d0;
    for (let i = 0; i < 64; i++) {
      let f: number, g: number;
      if (i < 16) {
        f = (b & c) | (~b & d);
        g = i;
      } else if (i < 32) {
        f = (d & b) | (~d & c);
        g = (5 * i + 1) % 16;
      } else if (i < 48) {
        f = b ^ c ^ d;
        g = (3 * i + 5) % 16;
      } else {
        f = c ^ (b | ~d);
        g = (7 * i) % 16;
      }
      const rotated = (a + f + MD5_K[i] + m[g]) >>> 0;
      const shift = MD5_SHIFTS[(i >>> 4) * 4 + (i & 3)];
      a = d;
      d = c;
      c = b;
      b = (b + ((rotated << shift) | (rotated >>> (32 - shift)))) >>> 0;
    }
    a0 = (a0 + a) >>> 0;
    b0 = (b0 + b) >>> 0;
    c0 = (c0 + c) >>> 0;
    d0 = (d0 + d) >>> 0;
  }
  const out = new Uint8Array(16);
  const outView = new DataView(out.buffer);
  [a0, b0, c0, d0].forEach((word, i) => outView.setUint32(i * 4, word, true));
  return out;
}
