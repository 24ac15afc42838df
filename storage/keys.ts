// Key rules shared by every adapter: `/`-separated, relative, no traversal, no control chars.

import { StorageError } from "../core/errors.ts";

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Returns why `key` is not a valid storage key, or `undefined` when it is.
 *
 * @param key The key to check.
 * @param allowEmpty Accept `""` (a list prefix for "everything").
 * @returns A short reason, or `undefined`.
 */
export function keyProblem(key: string, allowEmpty = false): string | undefined {
  if (typeof key !== "string") return "must be a string";
  if (key === "") return allowEmpty ? undefined : "must not be empty";
  if (key.length > 1024) return "must be at most 1024 characters";
  if (CONTROL.test(key)) return "must not contain control characters";
  if (key.includes("\\")) return "must not contain '\\'";
  if (key.startsWith("/")) return "must be relative (no leading '/')";
  const segments = key.split("/");
  // A list prefix may end with "/", which leaves one trailing empty segment.
  const last = allowEmpty && segments.at(-1) === "" ? segments.length - 1 : segments.length;
  for (let i = 0; i < last; i++) {
    const segment = segments[i];
    if (segment === "") return "must not contain empty segments ('//')";
    if (segment === "." || segment === "..") return `must not contain a '${segment}' segment`;
  }
  return undefined;
}

/**
 * Throws a `StorageError` with code `invalid_key` unless `key` is a valid storage key.
 *
 * @param adapter The adapter's name, for the error.
 * @param operation The operation attempted, for the error.
 * @param key The key to check.
 * @param allowEmpty Accept `""` (list prefixes).
 */
export function assertValidKey(
  adapter: string,
  operation: string,
  key: string,
  allowEmpty = false,
): void {
  const problem = keyProblem(key, allowEmpty);
  if (problem !== undefined) {
    throw new StorageError(`Invalid key: ${problem}`, {
      adapter,
      operation,
      key: String(key).slice(0, 200),
      code: "invalid_key",
    });
  }
}

/**
 * Throws a `TypeError` unless `range` is a byte range `readRange` accepts: a non-negative
 * integer `offset` and, when given, a non-negative integer `length`.
 *
 * @param range The range to check.
 */
export function assertValidRange(range: { offset: number; length?: number }): void {
  const offset = range?.offset;
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new TypeError(`readRange() offset must be a non-negative integer; got ${offset}`);
  }
  const length = range.length;
  if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) {
    throw new TypeError(`readRange() length must be a non-negative integer; got ${length}`);
  }
}
