// Tests of createRedactor(): whole strings, JSON-like data and byte streams split anywhere.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { concatBytes } from "../core/bytes.ts";
import { createRedactor, DEFAULT_REDACTION_MASK, type Redactor } from "../core/redact.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return parts.length === 0 ? new Uint8Array(0) : concatBytes(parts);
}

/** Streams `data` through a fresh redaction stream cut at `cuts` (ascending offsets). */
function streamed(redactor: Redactor, data: Uint8Array, cuts: readonly number[]): Uint8Array {
  const stream = redactor.stream();
  const out: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...cuts, data.length]) {
    out.push(stream.push(data.slice(from, cut)));
    from = cut;
  }
  out.push(stream.end());
  return concat(out);
}

/** Reference: mask every position any occurrence covers, one mask per maximal run. */
function reference(text: string, secrets: readonly string[], mask: string): string {
  const masked = new Array<boolean>(text.length).fill(false);
  for (const secret of secrets) {
    for (let at = 0; at + secret.length <= text.length; at++) {
      if (text.startsWith(secret, at)) masked.fill(true, at, at + secret.length);
    }
  }
  let out = "";
  for (let i = 0; i < text.length; i++) {
    if (!masked[i]) out += text[i];
    else if (i === 0 || !masked[i - 1]) out += mask;
  }
  return out;
}

describe("createRedactor()", () => {
  it("returns undefined when there is nothing to mask", () => {
    assert.equal(createRedactor([]), undefined);
    assert.equal(createRedactor(["", ""]), undefined);
  });

  it("refuses a secret shorter than 3 characters without echoing it", () => {
    assert.throws(() => createRedactor(["ok", "xy"]), (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, /Secret #0 is 2 character/);
      assert.doesNotMatch(error.message, /ok|xy/);
      return true;
    });
    assert.ok(createRedactor(["abc"]));
  });

  it("refuses secrets that are neither strings nor RegExps, and a bad window", () => {
    assert.throws(() => createRedactor([42 as unknown as string]), TypeError);
    assert.throws(() => createRedactor(["secret"], { maxPatternBytes: 0 }), RangeError);
  });

  it("redactText() masks every occurrence of a secret with [REDACTED]", () => {
    const redactor = createRedactor(["hunter2"])!;
    assert.equal(DEFAULT_REDACTION_MASK, "[REDACTED]");
    assert.equal(
      redactor.redactText("pass=hunter2 again hunter2."),
      "pass=[REDACTED] again [REDACTED].",
    );
    assert.equal(redactor.redactText("nothing here"), "nothing here");
  });

  it("redactText() uses a custom mask", () => {
    const redactor = createRedactor(["hunter2"], { mask: "***" })!;
    assert.equal(redactor.mask, "***");
    assert.equal(redactor.redactText("[hunter2]"), "[***]");
  });

  it("redactText() masks overlapping and adjacent secrets as one run, leaking nothing", () => {
    const redactor = createRedactor(["abcd", "cdef"], { mask: "#" })!;
    assert.equal(redactor.redactText("xabcdefx"), "x#x");
    assert.equal(redactor.redactText("abcdabcd"), "#");
    const periodic = createRedactor(["aaa"], { mask: "#" })!;
    assert.equal(periodic.redactText("baaaab"), "b#b");
  });

  it("redactText() masks RegExp matches, whatever flags the pattern had", () => {
    const redactor = createRedactor([/sk-[a-z0-9]{8,}/y, /token=\w+/i])!;
    assert.equal(
      redactor.redactText("key sk-abcdef123456 and TOKEN=xyz, sk-short"),
      "key [REDACTED] and [REDACTED], sk-short",
    );
  });

  it("redactText() ignores zero-length RegExp matches", () => {
    const redactor = createRedactor([/x*/])!;
    assert.equal(redactor.redactText("abxxc"), "ab[REDACTED]c");
  });

  it("redactData() deep-copies JSON-like data, masking values and keys", () => {
    const redactor = createRedactor(["s3cr3t"])!;
    const input = {
      message: "token s3cr3t",
      nested: [{ deep: "x s3cr3t y" }, 42, null, true],
      "s3cr3t-key": "value",
    };
    const output = redactor.redactData(input);
    assert.deepEqual(output, {
      message: "token [REDACTED]",
      nested: [{ deep: "x [REDACTED] y" }, 42, null, true],
      "[REDACTED]-key": "value",
    });
    assert.equal(input.message, "token s3cr3t", "the input is untouched");
    assert.equal(redactor.redactData("s3cr3t"), "[REDACTED]");
  });

  it("redactData() refuses cyclic data instead of overflowing the stack", () => {
    const redactor = createRedactor(["s3cr3t"])!;
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.throws(() => redactor.redactData(cyclic), TypeError);
  });
});

describe("Redactor.stream()", () => {
  it("masks a secret inside one chunk", () => {
    const redactor = createRedactor(["hunter2"])!;
    const out = streamed(redactor, bytes("pass=hunter2\n"), []);
    assert.equal(decoder.decode(out), "pass=[REDACTED]\n");
  });

  it("masks a secret split across two chunks at every split point", () => {
    const redactor = createRedactor(["sk-live-0123456789"])!;
    const text = "before sk-live-0123456789 after";
    for (let cut = 0; cut <= text.length; cut++) {
      const out = decoder.decode(streamed(redactor, bytes(text), [cut]));
      assert.equal(out, "before [REDACTED] after", `cut at ${cut}`);
    }
  });

  it("emits output that cannot start a secret at once, holding back only a possible prefix", () => {
    const redactor = createRedactor(["hunter2"])!;
    const stream = redactor.stream();
    assert.equal(decoder.decode(stream.push(bytes("line one\n"))), "line one\n");
    assert.equal(decoder.decode(stream.push(bytes("pass=hun"))), "pass=");
    assert.equal(decoder.decode(stream.push(bytes("gry\n"))), "hungry\n");
    assert.equal(decoder.decode(stream.push(bytes("hunt"))), "");
    assert.equal(decoder.decode(stream.end()), "hunt");
  });

  it("gives the same output as redactText() however the stream is chunked", () => {
    // Small alphabet so secrets overlap, repeat and straddle chunk boundaries often.
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const word = (length: number) => Array.from({ length }, () => "abc"[random(3)]).join("");
    for (let round = 0; round < 1500; round++) {
      const secrets = Array.from({ length: 1 + random(3) }, () => word(3 + random(4)));
      const text = word(random(80));
      const redactor = createRedactor(secrets, { mask: "#" })!;
      const expected = reference(text, secrets, "#");
      assert.equal(redactor.redactText(text), expected, `text ${text} secrets ${secrets}`);
      const cuts: number[] = [];
      for (let at = random(8); at < text.length; at += 1 + random(8)) cuts.push(at);
      const out = decoder.decode(streamed(redactor, bytes(text), cuts));
      assert.equal(out, expected, `stream ${text} secrets ${secrets} cuts ${cuts}`);
    }
  });

  it("masks RegExp secrets split across chunks", () => {
    const redactor = createRedactor([/AKIA[0-9A-Z]{16}/])!;
    const text = "id=AKIAABCDEFGHIJKLMNOP;\n";
    for (let cut = 0; cut <= text.length; cut++) {
      const out = decoder.decode(streamed(redactor, bytes(text), [cut]));
      assert.equal(out, "id=[REDACTED];\n", `cut at ${cut}`);
    }
  });

  it("matches RegExp secrets against a latin1 view of the bytes", () => {
    const redactor = createRedactor([/\x80\x9f[\xc0-\xff]+/])!;
    const data = new Uint8Array([0x41, 0x80, 0x9f, 0xc3, 0xff, 0x42]);
    assert.deepEqual(streamed(redactor, data, [2]), concat([bytes("A[REDACTED]B")]));
  });

  it("holds back at most maxPatternBytes while RegExp secrets are configured", () => {
    const redactor = createRedactor([/token-[a-z]+/], { maxPatternBytes: 16 })!;
    const stream = redactor.stream();
    const out = stream.push(bytes("x".repeat(100)));
    assert.equal(out.length, 100 - 16);
    assert.equal(stream.end().length, 16);
  });

  it("passes invalid UTF-8 and binary bytes through byte-exact", () => {
    const redactor = createRedactor(["secret-value"])!;
    const data = new Uint8Array(4096);
    for (let i = 0; i < data.length; i++) data[i] = (i * 131 + 7) % 256;
    // Truncated multi-byte sequences, lone continuation bytes, overlong forms.
    data.set([0xe2, 0x82, 0xc0, 0x80, 0xff, 0xfe, 0xf0, 0x9f, 0x98], 100);
    for (const cuts of [[], [1], [101, 102, 103, 104], [2048], [1000, 1001, 3000]]) {
      assert.deepEqual(streamed(redactor, data, cuts), data, `cuts ${cuts}`);
    }
  });

  it("masks a secret next to invalid UTF-8 without touching the invalid bytes", () => {
    const redactor = createRedactor(["secret-value"])!;
    const data = concat([
      new Uint8Array([0xff, 0xc3]),
      bytes("secret-value"),
      new Uint8Array([0x80, 0xfe]),
    ]);
    const expected = concat([
      new Uint8Array([0xff, 0xc3]),
      bytes("[REDACTED]"),
      new Uint8Array([0x80, 0xfe]),
    ]);
    for (let cut = 0; cut <= data.length; cut++) {
      assert.deepEqual(streamed(redactor, data, [cut]), expected, `cut at ${cut}`);
    }
  });

  it("masks a non-ASCII secret matched as its UTF-8 bytes, split inside a character", () => {
    const redactor = createRedactor(["pässwörd-€"])!;
    const data = bytes("a pässwörd-€ b");
    for (let cut = 0; cut <= data.length; cut++) {
      assert.equal(
        decoder.decode(streamed(redactor, data, [cut])),
        "a [REDACTED] b",
        `cut at ${cut}`,
      );
    }
    assert.equal(redactor.redactText("x pässwörd-€"), "x [REDACTED]");
  });

  it("masks overlapping secrets across chunk boundaries", () => {
    const redactor = createRedactor(["abcd", "cdef"], { mask: "#" })!;
    const data = bytes("xabcdefx");
    for (let cut = 0; cut <= data.length; cut++) {
      for (let cut2 = cut; cut2 <= data.length; cut2++) {
        assert.equal(
          decoder.decode(streamed(redactor, data, [cut, cut2])),
          "x#x",
          `cuts ${cut},${cut2}`,
        );
      }
    }
  });

  it("does not keep a reference to pushed chunks", () => {
    const redactor = createRedactor(["hunter2"])!;
    const stream = redactor.stream();
    const chunk = bytes("abc hun");
    const first = stream.push(chunk);
    chunk.fill(0x7a);
    const rest = stream.push(bytes("ter2!"));
    assert.equal(decoder.decode(concat([first, rest, stream.end()])), "abc [REDACTED]!");
  });

  it("can be reused after end()", () => {
    const redactor = createRedactor(["hunter2"])!;
    const stream = redactor.stream();
    assert.equal(decoder.decode(concat([stream.push(bytes("x hunt")), stream.end()])), "x hunt");
    assert.equal(decoder.decode(concat([stream.push(bytes("er2")), stream.end()])), "er2");
  });

  it("flush() releases the held-back bytes, masked, and reports what it holds", () => {
    const redactor = createRedactor([/ghp_[A-Za-z0-9]{20,}/])!;
    const stream = redactor.stream();
    assert.equal(stream.push(bytes("tick 1\n")).length, 0);
    assert.equal(stream.heldBytes, 7);
    assert.equal(decoder.decode(stream.flush()), "tick 1\n");
    assert.equal(stream.heldBytes, 0);
    assert.equal(stream.flush().length, 0);
    stream.push(bytes("key ghp_0123456789abcdefghijXYZ\n"));
    assert.equal(decoder.decode(stream.flush()), "key [REDACTED]\n");
    assert.equal(stream.end().length, 0);
  });

  it("keeps masking a secret that carries on after a flush, with no second mask", () => {
    const redactor = createRedactor([/tok_[a-z]+/, /AKIA[0-9A-Z]{16}/])!;
    const stream = redactor.stream();
    // The whole match is visible at the flush: masked, and its continuation joins that mask.
    const out = [stream.push(bytes("x tok_abc")), stream.flush()];
    out.push(stream.push(bytes("def y\n")), stream.end());
    assert.equal(decoder.decode(concat(out)), "x [REDACTED] y\n");
    // Cut before the pattern can match: only the part released at the flush shows.
    const cut = [stream.push(bytes("id=AKIAABCD")), stream.flush()];
    cut.push(stream.push(bytes("EFGHIJKLMNOP;\n")), stream.end());
    assert.equal(decoder.decode(concat(cut)), "id=AKIAABCD[REDACTED];\n");
  });

  it("gives the same output as redactText() when flushed between whole secrets", () => {
    const redactor = createRedactor(["hunter2", /sk-[a-z0-9]{8,}/])!;
    const lines = ["pass hunter2\n", "key sk-abcdef123456\n", "plain\n", "hunter2 sk-00000000\n"];
    const stream = redactor.stream();
    const out: Uint8Array[] = [];
    for (const line of lines) out.push(stream.push(bytes(line)), stream.flush());
    out.push(stream.end());
    assert.equal(decoder.decode(concat(out)), redactor.redactText(lines.join("")));
  });
});
