// ListObjectsV2 paging: continuation tokens, start-after, URL-encoded keys.

import { StorageError } from "../../core/errors.ts";
import type { BucketContext } from "./context.ts";
import { decodeListKey, encodeQuery } from "./encoding.ts";
import { ADAPTER, type Call } from "./transport.ts";
import { xmlAll, xmlText } from "./xml.ts";

/**
 * Lists every key under `listPrefix` (relative to the storage prefix), page by page.
 *
 * @param bucket The bucket.
 * @param listPrefix The prefix, relative to the storage's prefix.
 * @param startAfter Only keys after this one (relative), sent as `start-after`.
 * @returns The keys, relative to the storage's prefix, in S3's (byte) order.
 */
export async function* listKeys(
  bucket: BucketContext,
  listPrefix: string,
  startAfter?: string,
): AsyncGenerator<string> {
  const { transport, prefix } = bucket;
  const fullPrefix = prefix + listPrefix;
  let token: string | undefined;
  let after: string | undefined = startAfter === undefined ? undefined : prefix + startAfter;
  for (;;) {
    const query = [
      "list-type=2",
      `prefix=${encodeQuery(fullPrefix)}`,
      "encoding-type=url",
      "max-keys=1000",
      token === undefined ? "" : `continuation-token=${encodeQuery(token)}`,
      after === undefined ? "" : `start-after=${encodeQuery(after)}`,
    ].filter(Boolean).join("&");
    const call: Call = {
      operation: "list",
      key: listPrefix,
      method: "GET",
      url: bucket.bucketUrl(`?${query}`),
    };
    const exchange = await transport.send(call);
    if (exchange.status !== 200) throw transport.failed(call, exchange);
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
      after = undefined;
    } else if (last !== undefined) {
      // Servers that page without tokens still honour start-after.
      token = undefined;
      after = last;
    } else {
      throw new StorageError("S3 listing was truncated without a way to continue", {
        adapter: ADAPTER,
        operation: "list",
        key: listPrefix,
      });
    }
  }
}
