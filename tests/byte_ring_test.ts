// Tests of createByteRing(): the tail of a capped stream, kept within its capacity.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createByteRing } from "../core/byte-ring.ts";
import { concatBytes } from "../core/bytes.ts";

describe("createByteRing()", () => {
  it("keeps exactly the last bytes pushed, however they are chunked, within its capacity", () => {
    let seed = 11;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (const capacity of [1, 7, 100, 64 * 1024, 200_000]) {
      const ring = createByteRing(capacity);
      const all: number[] = [];
      for (let round = 0; round < 60; round++) {
        const length = random(4) === 0
          ? random(3 * capacity + 2)
          : random(Math.floor(capacity / 3) + 2);
        const chunk = new Uint8Array(length);
        for (let i = 0; i < length; i++) chunk[i] = (all.length + i) % 251;
        ring.push(chunk);
        for (const byte of chunk) all.push(byte);
        assert.ok(ring.allocated <= capacity, `allocated ${ring.allocated} > ${capacity}`);
        assert.equal(ring.total, all.length);
        assert.equal(ring.size, Math.min(capacity, all.length));
        const expected = Uint8Array.from(all.slice(all.length - ring.size));
        assert.deepEqual(ring.bytes(), expected, `capacity ${capacity}, round ${round}`);
        const parts = ring.parts();
        assert.ok(parts.length <= 2);
        assert.deepEqual(concatBytes(parts, ring.size), expected, `parts, round ${round}`);
      }
    }
  });

  it("copies what it keeps, so the caller may reuse its buffer", () => {
    const ring = createByteRing(8);
    const chunk = new TextEncoder().encode("abcd");
    ring.push(chunk);
    chunk.fill(0x7a);
    assert.equal(new TextDecoder().decode(ring.bytes()), "abcd");
  });

  it("allocates as bytes arrive, not its whole capacity up front", () => {
    const ring = createByteRing(64 * 1024 * 1024);
    ring.push(new Uint8Array(10));
    assert.ok(ring.allocated <= 64 * 1024, `allocated ${ring.allocated}`);
  });

  it("keeps nothing with capacity 0 but counts what passed", () => {
    const ring = createByteRing(0);
    ring.push(new Uint8Array(5));
    assert.equal(ring.size, 0);
    assert.equal(ring.total, 5);
    assert.equal(ring.bytes().length, 0);
    assert.throws(() => createByteRing(-1), RangeError);
  });
});
