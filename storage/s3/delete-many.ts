// DeleteObjects: up to 1,000 keys per request, with the Content-MD5 every S3 server accepts.

import { md5 } from "@noble/hashes/legacy.js";
import { StorageError } from "../../core/errors.ts";
import type { BucketContext } from "./context.ts";
import { base64 } from "./encoding.ts";
import { ADAPTER, type Call } from "./transport.ts";
import { escapeXml, xmlAll, xmlText } from "./xml.ts";

const DELETE_BATCH = 1000;

/**
 * Deletes many keys, 1,000 per request; missing keys are not an error.
 *
 * @param bucket The bucket.
 * @param keys The keys (already validated), relative to the storage prefix.
 */
export async function deleteKeys(bucket: BucketContext, keys: readonly string[]): Promise<void> {
  const { transport, prefix } = bucket;
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
      url: bucket.bucketUrl("?delete"),
      // AWS requires a body checksum on DeleteObjects; Content-MD5 is the one every
      // S3-compatible server accepts (WebCrypto has no MD5).
      headers: { "content-type": "application/xml", "content-md5": base64(md5(body)) },
      body,
      errorIn200: true,
    };
    const exchange = await transport.send(call);
    if (exchange.status !== 200 || exchange.code !== undefined) {
      throw transport.failed(call, exchange);
    }
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
        transport.scrub(
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
}
