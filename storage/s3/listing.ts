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
export function listKeys(
  bucket: BucketContext,
  listPrefix: string,
  startAfter?: string,
): AsyncGenerator<string> {
  return listPages(bucket, listPrefix, startAfter, false);
}

/**
 * Lists the common prefixes ("folders") right under `listPrefix` with `delimiter=/`: one entry
 * per folder whatever the number of keys in it.
 *
 * @param bucket The bucket.
 * @param listPrefix The prefix (`""` or ending in `/`), relative to the storage's prefix.
 * @param startAfter Only folders after this one (relative), sent as `start-after`.
 * @returns The folders, relative to the storage's prefix, each ending in `/`, in byte order.
 */
export function listFolders(
  bucket: BucketContext,
  listPrefix: string,
  startAfter?: string,
): AsyncGenerator<string> {
  return listPages(bucket, listPrefix, startAfter, true);
}

async function* listPages(
  bucket: BucketContext,
  listPrefix: string,
  startAfter: string | undefined,
  folders: boolean,
): AsyncGenerator<string> {
  const { transport, prefix } = bucket;
  const fullPrefix = prefix + listPrefix;
  let token: string | undefined;
  let after: string | undefined = startAfter === undefined ? undefined : prefix + startAfter;
  for (;;) {
    const query = [
      "list-type=2",
      `prefix=${encodeQuery(fullPrefix)}`,
      folders ? "delimiter=%2F" : "",
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
    const found: string[] = [];
    for (const contents of xmlAll(xml, "Contents")) {
      const raw = xmlText(contents, "Key");
      if (raw === undefined) continue;
      const fullKey = urlEncoded ? decodeListKey(raw) : raw;
      if (last === undefined || fullKey > last) last = fullKey;
      if (!folders) found.push(fullKey);
    }
    if (folders) {
      for (const common of xmlAll(xml, "CommonPrefixes")) {
        const raw = xmlText(common, "Prefix");
        if (raw === undefined) continue;
        const fullKey = urlEncoded ? decodeListKey(raw) : raw;
        if (last === undefined || fullKey > last) last = fullKey;
        found.push(fullKey);
      }
      // Keys and folders come in two lists; together they are in byte order.
      found.sort();
    }
    for (const fullKey of found) {
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
