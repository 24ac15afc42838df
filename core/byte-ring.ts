// A ring of bytes that keeps the last N bytes written to it: the tail of a capped stream.

/** First allocation of a ring; it doubles from there up to its capacity. */
const INITIAL_BYTES = 64 * 1024;

/** Internal: keeps the last `capacity` bytes pushed into it, never allocating more than that. */
export interface ByteRing {
  /** Keeps the end of `bytes` (copied; the caller may reuse its buffer). */
  push(bytes: Uint8Array): void;
  /** The kept bytes, oldest first (a fresh array). */
  bytes(): Uint8Array;
  /**
   * The kept bytes, oldest first, as at most two views of the ring's buffer (no copy): for a
   * ring that is done, since the next `push` overwrites them.
   */
  parts(): Uint8Array[];
  /** Bytes kept now, at most `capacity`. */
  readonly size: number;
  /** Bytes pushed so far, kept or not. */
  readonly total: number;
  /** Size of the buffer allocated, at most `capacity`. */
  readonly allocated: number;
}

/**
 * Creates a ring that keeps the last `capacity` bytes pushed into it. The buffer grows by
 * doubling as bytes arrive, so a ring that is never filled does not cost its capacity.
 *
 * @param capacity Bytes kept at most; 0 keeps nothing.
 * @returns The ring.
 * @throws {RangeError} When `capacity` is not a non-negative integer.
 */
export function createByteRing(capacity: number): ByteRing {
  if (!Number.isInteger(capacity) || capacity < 0) {
    throw new RangeError(`Ring capacity must be a non-negative integer, got '${capacity}'`);
  }
  let buffer = new Uint8Array(0);
  let start = 0; // index of the oldest kept byte
  let size = 0;
  let total = 0;

  function contents(): Uint8Array {
    const out = new Uint8Array(size);
    const first = Math.min(size, buffer.length - start);
    out.set(buffer.subarray(start, start + first));
    out.set(buffer.subarray(0, size - first), first);
    return out;
  }

  function parts(): Uint8Array[] {
    const first = Math.min(size, buffer.length - start);
    const out = [buffer.subarray(start, start + first)];
    if (size > first) out.push(buffer.subarray(0, size - first));
    return out.filter((part) => part.byteLength > 0);
  }

  return {
    push(bytes) {
      total += bytes.length;
      if (capacity === 0 || bytes.length === 0) return;
      if (bytes.length >= capacity) {
        if (buffer.length < capacity) buffer = new Uint8Array(capacity);
        buffer.set(bytes.subarray(bytes.length - capacity));
        start = 0;
        size = capacity;
        return;
      }
      const needed = size + bytes.length;
      if (needed > buffer.length && buffer.length < capacity) {
        const grown = new Uint8Array(
          Math.min(capacity, Math.max(needed, buffer.length * 2, INITIAL_BYTES)),
        );
        grown.set(contents());
        buffer = grown;
        start = 0;
      }
      // From here bytes.length < buffer.length: the write wraps at most once, over the oldest.
      const at = (start + size) % buffer.length;
      const first = Math.min(bytes.length, buffer.length - at);
      buffer.set(bytes.subarray(0, first), at);
      buffer.set(bytes.subarray(first), 0);
      const overwritten = needed - buffer.length;
      if (overwritten > 0) {
        start = (start + overwritten) % buffer.length;
        size = buffer.length;
      } else size = needed;
    },
    bytes: contents,
    parts,
    get size() {
      return size;
    },
    get total() {
      return total;
    },
    get allocated() {
      return buffer.length;
    },
  };
}
