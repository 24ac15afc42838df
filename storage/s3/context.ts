// What the parts of the S3 adapter share: the transport and where keys live in the bucket.

import type { StorageWriteResult } from "../types.ts";
import type { Transport } from "./transport.ts";

/** The bucket as the adapter's parts see it. */
export interface BucketContext {
  /** Sends requests. */
  transport: Transport;
  /** Key prefix inside the bucket (`""` or ending in `/`). */
  prefix: string;
  /** URL of a key's object, with an optional query (`?uploads`). */
  objectUrl(key: string, query?: string): string;
  /** URL of the bucket with a query (`?list-type=2...`). */
  bucketUrl(query: string): string;
  /** A single PUT of a whole object, with conditional headers. */
  put(
    operation: string,
    key: string,
    data: Uint8Array,
    conditional: Record<string, string>,
  ): Promise<StorageWriteResult>;
}
