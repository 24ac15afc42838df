// Masks secrets in text, JSON-like data and byte streams before anything is stored (web APIs only).

import { concatBytes } from "./bytes.ts";

/** Shortest string secret accepted, in characters: a shorter one would mask ordinary output. */
export const MIN_SECRET_LENGTH: number = 3;

/** What replaces each masked run of bytes or characters unless `mask` says otherwise. */
export const DEFAULT_REDACTION_MASK: string = "[REDACTED]";

/** Default of {@linkcode RedactorOptions.maxPatternBytes}. */
export const DEFAULT_MAX_PATTERN_BYTES: number = 256;

/** Options of {@linkcode createRedactor}. */
export interface RedactorOptions {
  /** Replaces each maximal run of masked text or bytes; defaults to `[REDACTED]`. */
  mask?: string;
  /**
   * Longest match, in bytes, that a RegExp secret is guaranteed to be caught at in a stream
   * even when it is split across chunks; also how many trailing bytes a stream holds back
   * while RegExp secrets are configured. Defaults to 256.
   */
  maxPatternBytes?: number;
}

/** Masks one byte stream (stdout or stderr) chunk by chunk. */
export interface RedactionStream {
  /**
   * Takes the next chunk and returns the bytes that are safe to emit now (possibly empty).
   * Bytes that could still turn out to be the start of a secret are held back until the next
   * `push` or `end`. The returned array must not be mutated by the caller; `chunk` is not kept.
   */
  push(chunk: Uint8Array): Uint8Array;
  /**
   * Releases the held-back bytes, masked as far as can be told now, and keeps going: the
   * lookbehind is kept, so a secret that carries on in the next `push` still has the rest of it
   * masked. Only the part released here can leak, so call it when the producer has gone quiet
   * (a secret is not printed with a pause in the middle), not between chunks of a burst.
   */
  flush(): Uint8Array;
  /** Flushes the held-back tail, masked, and resets the stream. */
  end(): Uint8Array;
  /** Bytes held back right now (released by the next `push`, `flush` or `end`). */
  readonly heldBytes: number;
}

/**
 * Masks a fixed set of secrets in whole strings, JSON-like data and byte streams.
 *
 * Matching rule: every position covered by any match of any secret is masked, and each maximal
 * run of masked positions becomes one mask, so overlapping or adjacent secrets leak nothing and
 * a stream's output does not depend on how it was chunked.
 */
export interface Redactor {
  /** The mask written in place of secrets. */
  readonly mask: string;
  /** Masks every secret in `text` (event messages, summaries, artifact metadata). */
  redactText(text: string): string;
  /**
   * Deep-copies JSON-like data (plain objects, arrays, primitives), masking every string,
   * object keys included. Other objects (class instances, typed arrays) are returned as they are.
   * When two keys become equal once masked, the later one wins.
   */
  redactData<T>(value: T): T;
  /** Starts masking one byte stream. */
  stream(): RedactionStream;
}

interface Needles {
  /** String secrets in the view's alphabet. */
  strings: string[];
  /** Global clones of the RegExp secrets. */
  patterns: RegExp[];
}

type Runs = number[]; // flat [start, end, start, end, ...], sorted, merged

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();

/**
 * Creates a redactor for `secrets`, or returns `undefined` when there is nothing to mask
 * (no secret, or only empty strings), so callers can skip redaction entirely.
 *
 * String secrets are matched exactly: in text as strings, in streams as their UTF-8 bytes, so
 * bytes that are not valid UTF-8 pass through unchanged. A string secret shorter than
 * {@linkcode MIN_SECRET_LENGTH} characters is refused with a `TypeError` (it would mask ordinary
 * output); empty strings are ignored.
 *
 * RegExp secrets run on the text itself in `redactText`/`redactData`. In streams they run on a
 * latin1 view of the bytes (each byte is one character `\x00`–`\xff`), so write them in terms of
 * ASCII; a non-ASCII literal in a pattern does not match its UTF-8 bytes. A stream catches a
 * RegExp match split across chunks when it is at most `maxPatternBytes` long, holds back that
 * many trailing bytes until more output arrives, the stream is flushed or it ends, and sees the
 * edges of that window as the start/end of input (for `^`, `$`, `\b` and lookbehind). A flush
 * masks what matches so far: a secret cut by a flush may show the part before the cut (the rest
 * is still masked). Flags are kept except `y`; `g` is added. Zero-length matches mask nothing.
 *
 * @param secrets Strings and patterns to mask.
 * @param options The mask and the RegExp window.
 * @returns A redactor, or `undefined` when there is nothing to mask.
 * @throws {TypeError} When a secret is neither a string nor a RegExp, or a string secret is too short.
 * @throws {RangeError} When `maxPatternBytes` is not a positive integer.
 *
 * @example
 * ```ts
 * import { createRedactor } from "./redact.ts";
 *
 * const redactor = createRedactor(["hunter2", /sk-[a-z0-9]{8,}/])!;
 * console.log(redactor.redactText("password hunter2, key sk-abcdef123456")); // "password [REDACTED], key [REDACTED]"
 *
 * const stream = redactor.stream();
 * const encoder = new TextEncoder();
 * const out = [stream.push(encoder.encode("pass: hun")), stream.push(encoder.encode("ter2\n")), stream.end()];
 * console.log(out.map((bytes) => new TextDecoder().decode(bytes)).join("")); // "pass: [REDACTED]\n"
 * ```
 */
export function createRedactor(
  secrets: readonly (string | RegExp)[],
  options: RedactorOptions = {},
): Redactor | undefined {
  const mask = options.mask ?? DEFAULT_REDACTION_MASK;
  if (typeof mask !== "string") throw new TypeError("Option 'mask' must be a string");
  const window = options.maxPatternBytes ?? DEFAULT_MAX_PATTERN_BYTES;
  if (!Number.isInteger(window) || window < 1) {
    throw new RangeError(`Option 'maxPatternBytes' must be a positive integer, got '${window}'`);
  }

  const strings = new Set<string>();
  const patterns: RegExp[] = [];
  secrets.forEach((secret, index) => {
    if (typeof secret === "string") {
      if (secret === "") return;
      // Count code points, and never echo the secret itself in the message.
      const length = [...secret].length;
      if (length < MIN_SECRET_LENGTH) {
        throw new TypeError(
          `Secret #${index} is ${length} character(s) long; secrets must be at least ${MIN_SECRET_LENGTH} characters`,
        );
      }
      strings.add(secret);
    } else if (secret instanceof RegExp) {
      patterns.push(globalClone(secret));
    } else {
      throw new TypeError(`Secret #${index} must be a string or a RegExp, got '${typeof secret}'`);
    }
  });
  if (strings.size === 0 && patterns.length === 0) return undefined;

  const textNeedles: Needles = { strings: [...strings], patterns };
  const byteSecrets = textNeedles.strings.map((secret) => encoder.encode(secret));
  const streamNeedles: Needles = { strings: byteSecrets.map(latin1), patterns };
  const maskBytes = encoder.encode(mask);

  // Lookbehind kept from emitted bytes, so a match that started before a chunk boundary is
  // found again and its remaining positions stay masked.
  const longestSecret = byteSecrets.reduce((max, bytes) => Math.max(max, bytes.length), 0);
  const contextBytes = Math.max(longestSecret - 1, patterns.length > 0 ? window : 0);

  const redactText = (text: string): string => {
    if (text === "") return text;
    const runs = findRuns(text, textNeedles);
    if (runs.length === 0) return text;
    let out = "";
    let position = 0;
    for (let i = 0; i < runs.length; i += 2) {
      out += text.slice(position, runs[i]) + mask;
      position = runs[i + 1];
    }
    return out + text.slice(position);
  };

  const redactValue = (value: unknown, seen: Set<object>): unknown => {
    if (typeof value === "string") return redactText(value);
    if (value === null || typeof value !== "object") return value;
    const isArray = Array.isArray(value);
    const proto = Object.getPrototypeOf(value);
    if (!isArray && proto !== Object.prototype && proto !== null) return value;
    if (seen.has(value)) throw new TypeError("Cannot redact data that contains a cycle");
    seen.add(value);
    let copy: unknown;
    if (isArray) {
      copy = (value as unknown[]).map((item) => redactValue(item, seen));
    } else {
      const out: Record<string, unknown> = proto === null ? Object.create(null) : {};
      for (const [key, item] of Object.entries(value)) {
        out[redactText(key)] = redactValue(item, seen);
      }
      copy = out;
    }
    seen.delete(value);
    return copy;
  };

  const stream = (): RedactionStream => {
    let context: Uint8Array = EMPTY; // last emitted raw bytes (never re-emitted)
    let pending: Uint8Array = EMPTY; // raw bytes held back
    let lastMasked = false; // the last emitted byte was masked

    const emit = (scan: Uint8Array, end: number): Uint8Array => {
      const from = context.length;
      const runs = findRuns(latin1(scan), streamNeedles);
      const out = render(scan, from, end, runs, lastMasked, maskBytes);
      lastMasked = coveredBy(runs, end - 1);
      context = scan.slice(Math.max(0, end - contextBytes), end);
      pending = scan.slice(end);
      return out;
    };

    return {
      push(chunk: Uint8Array): Uint8Array {
        if (chunk.length === 0) return EMPTY;
        const scan = concat3(context, pending, chunk);
        const from = context.length;
        let end = patterns.length > 0 ? Math.max(from, scan.length - window) : scan.length;
        for (const secret of byteSecrets) {
          end = Math.min(end, scan.length - partialSuffix(scan, from, secret));
        }
        if (end <= from) {
          pending = scan.slice(from);
          return EMPTY;
        }
        return emit(scan, end);
      },
      flush(): Uint8Array {
        if (pending.length === 0) return EMPTY;
        const scan = concat3(context, pending, EMPTY);
        return emit(scan, scan.length);
      },
      get heldBytes(): number {
        return pending.length;
      },
      end(): Uint8Array {
        if (pending.length === 0) {
          context = EMPTY;
          lastMasked = false;
          return EMPTY;
        }
        const scan = concat3(context, pending, EMPTY);
        const out = emit(scan, scan.length);
        context = EMPTY;
        pending = EMPTY;
        lastMasked = false;
        return out;
      },
    };
  };

  return {
    mask,
    redactText,
    redactData: <T>(value: T): T => redactValue(value, new Set()) as T,
    stream,
  };
}

function globalClone(pattern: RegExp): RegExp {
  const flags = pattern.flags.replace("y", "");
  return new RegExp(pattern.source, flags.includes("g") ? flags : flags + "g");
}

/** Sorted, merged [start, end) runs of positions covered by any match in `view`. */
function findRuns(view: string, needles: Needles): Runs {
  const spans: number[] = [];
  for (const needle of needles.strings) {
    // Every occurrence, overlapping ones included (advance by one).
    for (let at = view.indexOf(needle); at !== -1; at = view.indexOf(needle, at + 1)) {
      spans.push(at, at + needle.length);
    }
  }
  for (const pattern of needles.patterns) {
    pattern.lastIndex = 0;
    for (let match = pattern.exec(view); match !== null; match = pattern.exec(view)) {
      if (match[0].length === 0) {
        pattern.lastIndex++;
        continue;
      }
      spans.push(match.index, match.index + match[0].length);
    }
    pattern.lastIndex = 0;
  }
  if (spans.length <= 2) return spans;
  const order: number[] = [];
  for (let i = 0; i < spans.length; i += 2) order.push(i);
  order.sort((a, b) => spans[a] - spans[b]);
  const runs: Runs = [];
  for (const i of order) {
    const start = spans[i];
    const end = spans[i + 1];
    // Adjacent runs merge too: one mask per maximal run, whatever the chunking.
    if (runs.length > 0 && start <= runs[runs.length - 1]) {
      runs[runs.length - 1] = Math.max(runs[runs.length - 1], end);
    } else runs.push(start, end);
  }
  return runs;
}

function coveredBy(runs: Runs, position: number): boolean {
  for (let i = 0; i < runs.length; i += 2) {
    if (runs[i] <= position && position < runs[i + 1]) return true;
  }
  return false;
}

/** The bytes of `scan` in [from, end) with masked runs replaced (a view when nothing is masked). */
function render(
  scan: Uint8Array,
  from: number,
  end: number,
  runs: Runs,
  continuesMask: boolean,
  mask: Uint8Array,
): Uint8Array {
  const parts: Uint8Array[] = [];
  let size = 0;
  let position = from;
  let masked = false;
  for (let i = 0; i < runs.length; i += 2) {
    const start = Math.max(runs[i], from);
    const stop = Math.min(runs[i + 1], end);
    if (start >= stop) continue;
    masked = true;
    if (start > position) {
      parts.push(scan.subarray(position, start));
      size += start - position;
    }
    // A run that carries on from the previous chunk already got its mask.
    if (!(start === from && continuesMask)) {
      parts.push(mask);
      size += mask.length;
    }
    position = stop;
  }
  if (!masked) return scan.subarray(from, end);
  if (end > position) {
    parts.push(scan.subarray(position, end));
    size += end - position;
  }
  return concatBytes(parts, size);
}

/**
 * Length of the longest suffix of `scan[from..]` that is a proper prefix of `secret`: those
 * bytes may become a match once more arrives, so they are held back.
 */
function partialSuffix(scan: Uint8Array, from: number, secret: Uint8Array): number {
  const max = Math.min(secret.length - 1, scan.length - from);
  const first = secret[0];
  for (let length = max; length > 0; length--) {
    const start = scan.length - length;
    if (scan[start] !== first) continue;
    let i = 1;
    while (i < length && scan[start + i] === secret[i]) i++;
    if (i === length) return length;
  }
  return 0;
}

/** Always a fresh array (never a view of the caller's chunk). */
function concat3(a: Uint8Array, b: Uint8Array, c: Uint8Array): Uint8Array {
  return concatBytes([a, b, c], a.length + b.length + c.length);
}

// A latin1 view: one UTF-16 unit per byte, equal to the byte. TextDecoder("latin1") is fast but
// is windows-1252 on some runtimes (Deno maps 0x80 to U+20AC), so those 27 code points are mapped
// back; runtimes without the label fall back to String.fromCharCode.
let decoder: TextDecoder | null | undefined;
let fixups: Map<string, string> | undefined;
const NOT_LATIN1 = /[\u0100-\uffff]/;
const NOT_LATIN1_ALL = /[\u0100-\uffff]/g;

function latin1(bytes: Uint8Array): string {
  if (decoder === undefined) {
    try {
      decoder = new TextDecoder("latin1");
      const map = new Map<string, string>();
      for (let byte = 0x80; byte < 0xa0; byte++) {
        const decoded = decoder.decode(new Uint8Array([byte]));
        if (decoded.length !== 1) throw new TypeError("Decoder is not single-byte");
        if (decoded !== String.fromCharCode(byte)) map.set(decoded, String.fromCharCode(byte));
      }
      fixups = map.size > 0 ? map : undefined;
    } catch {
      decoder = null;
    }
  }
  if (decoder === null) {
    let out = "";
    for (let i = 0; i < bytes.length; i += 8192) {
      out += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192) as unknown as number[]);
    }
    return out;
  }
  const text = decoder.decode(bytes);
  if (fixups === undefined || !NOT_LATIN1.test(text)) return text;
  const map = fixups;
  return text.replace(NOT_LATIN1_ALL, (char) => map.get(char) ?? char);
}
