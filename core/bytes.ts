// Small byte helpers shared by the write path and the read side.

const encoder = new TextEncoder();
// deno-lint-ignore no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;

/** UTF-8 encodes text. */
export function encodeText(text: string): Uint8Array {
  return encoder.encode(text);
}

/**
 * Exact UTF-8 byte length of `text` without encoding it (lone surrogates count as the 3-byte
 * replacement character, as TextEncoder writes them).
 */
export function utf8Length(text: string): number {
  // Most output is ASCII: one regex scan (native) beats the loop below.
  if (!NON_ASCII.test(text)) return text.length;
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) bytes += 1;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        bytes += 2; // 4 bytes for 2 UTF-16 units
        i++;
      } else bytes += 2;
    } else bytes += 2;
  }
  return bytes;
}

/** Concatenates byte arrays into one (a single part is returned as it is, not copied). */
export function concatBytes(parts: readonly Uint8Array[], total?: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const size = total ?? parts.reduce((sum, part) => sum + part.byteLength, 0);
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

/**
 * Encodes a mixed list of text and byte chunks into byte arrays, in order, without joining the
 * byte chunks; runs of text are joined and encoded once.
 */
export function encodePartList(parts: readonly (string | Uint8Array)[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let text: string[] = [];
  for (const part of parts) {
    if (typeof part === "string") text.push(part);
    else {
      if (text.length > 0) {
        out.push(encoder.encode(text.join("")));
        text = [];
      }
      if (part.byteLength > 0) out.push(part);
    }
  }
  if (text.length > 0) out.push(encoder.encode(text.join("")));
  return out;
}

/**
 * Encodes a mixed list of text and byte chunks into one byte array; runs of text are joined and
 * encoded once.
 */
export function encodeParts(parts: readonly (string | Uint8Array)[]): Uint8Array {
  const out = encodePartList(parts);
  return out.length === 0 ? new Uint8Array(0) : concatBytes(out);
}

const handedOver = new WeakSet<Uint8Array>();

/**
 * Marks bytes that their producer will never touch again (a fresh read from a pipe), so the
 * runner may keep them without the copy it makes of a caller's chunk.
 *
 * @param bytes Bytes nobody else writes to.
 * @returns `bytes`.
 */
export function handOver(bytes: Uint8Array): Uint8Array {
  handedOver.add(bytes);
  return bytes;
}

/** Whether {@linkcode handOver} marked these bytes. */
export function isHandedOver(bytes: Uint8Array): boolean {
  return handedOver.has(bytes);
}

/**
 * Hex SHA-256 of bytes, with WebCrypto.
 *
 * @param data The bytes.
 * @returns The lowercase hex digest.
 */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>),
  );
  let hex = "";
  for (const byte of digest) hex += byte.toString(16).padStart(2, "0");
  return hex;
}
