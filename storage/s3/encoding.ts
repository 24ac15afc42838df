// Small encodings the S3 adapter needs: key and query escaping, ETags, content types, bytes.

/**
 * Encodes one path segment the way SigV4 canonicalises it (RFC 3986 unreserved kept).
 *
 * @param segment One `/`-free part of a key.
 * @returns The escaped segment.
 */
export function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * Encodes a query value; same rules as a path segment, so `+` and space are unambiguous.
 *
 * @param value The raw value.
 * @returns The escaped value.
 */
export function encodeQuery(value: string): string {
  return encodeSegment(value);
}

/**
 * Decodes a key from a listing made with `encoding-type=url` (space may come as `+`).
 *
 * @param raw The key as listed.
 * @returns The key.
 */
export function decodeListKey(raw: string): string {
  return decodeURIComponent(raw.replace(/\+/g, " "));
}

/**
 * The `Content-Type` a key is stored with, from its extension.
 *
 * @param key The key.
 * @returns A MIME type.
 */
export function contentType(key: string): string {
  const name = key.slice(key.lastIndexOf("/") + 1);
  if (name.endsWith(".json")) return "application/json";
  if (name.endsWith(".jsonl") || name.endsWith(".ndjson")) return "application/x-ndjson";
  if (name.endsWith(".log") || name.endsWith(".txt")) return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

/**
 * Bytes of a write's data.
 *
 * @param data Bytes or text (UTF-8).
 * @returns The bytes.
 */
export function toBytes(data: Uint8Array | string): Uint8Array {
  if (typeof data === "string") return new TextEncoder().encode(data);
  if (data instanceof Uint8Array) return data;
  throw new TypeError("Data must be a Uint8Array or a string");
}

/**
 * `"abc"` / `W/"abc"` / `&quot;abc&quot;` → `abc`.
 *
 * @param value An ETag header or element.
 * @returns The bare tag.
 */
export function bareEtag(value: string | null | undefined): string | undefined {
  if (value === null || value === undefined) return undefined;
  return value.trim().replace(/^W\//, "").replace(/^"(.*)"$/, "$1");
}

/**
 * Whether two byte arrays hold the same bytes.
 *
 * @param a One array.
 * @param b The other.
 * @returns `true` when equal.
 */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Standard base64 of bytes.
 *
 * @param bytes The bytes.
 * @returns The base64 text.
 */
export function base64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}
