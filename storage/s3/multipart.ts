// Streamed writes: one PUT when the stream fits in a part, else a multipart upload that holds
// at most one part in memory and is aborted when anything fails.

import { StorageError } from "../../core/errors.ts";
import type { StorageWriteResult, StorageWriteStreamOptions } from "../types.ts";
import type { BucketContext } from "./context.ts";
import { bareEtag, contentType, encodeQuery } from "./encoding.ts";
import { ADAPTER, type Call } from "./transport.ts";
import { escapeXml, xmlText } from "./xml.ts";

const MiB = 1024 * 1024;
/** S3's smallest part (but the last). */
export const MIN_PART_SIZE: number = 5 * MiB;
const MAX_PARTS = 10_000;

/**
 * Writes `source` at `key`: a single PUT when it fits in one part, else a multipart upload.
 *
 * @param bucket The bucket.
 * @param key The key.
 * @param source The bytes, in chunks.
 * @param partSize The configured part size.
 * @param options The expected total size, when known.
 * @returns The stored object's ETag, when S3 gives one.
 */
export async function writeStream(
  bucket: BucketContext,
  key: string,
  source: AsyncIterable<Uint8Array>,
  partSize: number,
  options?: StorageWriteStreamOptions,
): Promise<StorageWriteResult> {
  const { transport } = bucket;
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
      url: bucket.objectUrl(key, `?partNumber=${number}&uploadId=${encodeQuery(uploadId!)}`),
      body: bytes,
    };
    const exchange = await transport.send(call);
    if (exchange.status !== 200) throw transport.failed(call, exchange);
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
        if (uploadId === undefined) uploadId = await createUpload(bucket, key);
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
      return await bucket.put("writeStream", key, buffer.take(buffer.size), {});
    }
    await uploadPart(buffer.take(buffer.size));
    return await completeUpload(bucket, key, uploadId, parts);
  } catch (error) {
    if (uploadId !== undefined) await abortUpload(bucket, key, uploadId);
    throw error;
  }
}

async function createUpload(bucket: BucketContext, key: string): Promise<string> {
  const call: Call = {
    operation: "writeStream",
    key,
    method: "POST",
    url: bucket.objectUrl(key, "?uploads"),
    headers: { "content-type": contentType(key) },
  };
  const exchange = await bucket.transport.send(call);
  if (exchange.status !== 200) throw bucket.transport.failed(call, exchange);
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
  bucket: BucketContext,
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
    url: bucket.objectUrl(key, `?uploadId=${encodeQuery(uploadId)}`),
    headers: { "content-type": "application/xml" },
    body: new TextEncoder().encode(xml),
    errorIn200: true,
  };
  const exchange = await bucket.transport.send(call);
  if (exchange.status !== 200 || exchange.code !== undefined) {
    throw bucket.transport.failed(call, exchange);
  }
  // Ceph RGW answers with an empty <ETag>. A HEAD could fetch it, but could also see a later
  // writer's tag, which would defeat replace()'s fencing: report no tag instead.
  const etag = bareEtag(xmlText(new TextDecoder().decode(exchange.body), "ETag"));
  return etag === undefined || etag === "" ? {} : { etag };
}

async function abortUpload(bucket: BucketContext, key: string, uploadId: string): Promise<void> {
  try {
    await bucket.transport.send({
      operation: "writeStream",
      key,
      method: "DELETE",
      url: bucket.objectUrl(key, `?uploadId=${encodeQuery(uploadId)}`),
    });
  } catch {
    // Best effort: the original failure matters more; a bucket lifecycle rule
    // (AbortIncompleteMultipartUpload) reclaims parts left behind.
  }
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
