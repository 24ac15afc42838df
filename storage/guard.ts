// Wraps any storage so every failure reaches the caller as a StorageError naming the adapter,
// the operation and the key, whatever the adapter threw (a user-written adapter may throw
// plain errors, strings, or nothing useful at all).

import { StorageError } from "../core/errors.ts";
import type { RunStorage } from "./types.ts";

const GUARDED = Symbol("baa-conductor.guarded");
const MAX_MESSAGE = 300;

function describe(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE)}…` : text;
}

function wrap(storage: RunStorage, operation: string, key: string, error: unknown): StorageError {
  if (error instanceof StorageError) return error;
  return new StorageError(`Storage ${operation} failed (${describe(error)})`, {
    adapter: typeof storage.name === "string" ? storage.name : "custom",
    operation,
    key: String(key).slice(0, 1024),
    cause: error,
  });
}

async function* guardIterable(
  storage: RunStorage,
  operation: string,
  prefix: string,
  open: () => AsyncIterable<string>,
): AsyncGenerator<string> {
  let iterator: AsyncIterator<string>;
  try {
    iterator = open()[Symbol.asyncIterator]();
  } catch (error) {
    throw wrap(storage, operation, prefix, error);
  }
  for (;;) {
    let next: IteratorResult<string>;
    try {
      next = await iterator.next();
    } catch (error) {
      throw wrap(storage, operation, prefix, error);
    }
    if (next.done) return;
    yield next.value;
  }
}

/**
 * Returns a storage with the same members as `storage` (capabilities stay present or absent)
 * whose failures are all `StorageError`s: errors an adapter already typed pass through, any other
 * rejection or throw becomes a `StorageError` with the adapter's name, the operation, the key and
 * the original as `cause`. Guarding a guarded storage returns it as it is.
 *
 * @param storage Any storage, including a user's own.
 * @returns The guarded storage.
 */
export function guardStorage(storage: RunStorage): RunStorage {
  if ((storage as { [GUARDED]?: boolean })[GUARDED]) return storage;
  const call = async <T>(operation: string, key: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      throw wrap(storage, operation, key, error);
    }
  };
  const guarded: RunStorage & { [GUARDED]: boolean } = {
    [GUARDED]: true,
    name: storage.name,
    read: (key) => call("read", key, () => storage.read(key)),
    write: (key, data, options) => call("write", key, () => storage.write(key, data, options)),
    list: (prefix, options) =>
      guardIterable(storage, "list", prefix, () => storage.list(prefix, options)),
    delete: (key) => call("delete", key, () => storage.delete(key)),
    locate(key) {
      try {
        return storage.locate(key);
      } catch (error) {
        throw wrap(storage, "locate", key, error);
      }
    },
  };
  if (storage.append) {
    guarded.append = (key, data) => call("append", key, () => storage.append!(key, data));
  }
  if (storage.appendParts) {
    guarded.appendParts = (key, parts) =>
      call("append", key, () => storage.appendParts!(key, parts));
  }
  if (storage.replace) {
    guarded.replace = (key, data, options) =>
      call("replace", key, () => storage.replace!(key, data, options));
  }
  if (storage.writeStream) {
    guarded.writeStream = (key, source, options) =>
      call("writeStream", key, () => storage.writeStream!(key, source, options));
  }
  if (storage.deleteMany) {
    guarded.deleteMany = (keys) =>
      call("deleteMany", keys[0] ?? "", () => storage.deleteMany!(keys));
  }
  if (storage.stat) guarded.stat = (key) => call("stat", key, () => storage.stat!(key));
  if (storage.readRange) {
    guarded.readRange = (key, range) =>
      call("readRange", key, () => storage.readRange!(key, range));
  }
  if (storage.listPrefixes) {
    guarded.listPrefixes = (prefix, options) =>
      guardIterable(storage, "listPrefixes", prefix, () => storage.listPrefixes!(prefix, options));
  }
  if (storage.close) guarded.close = () => call("close", "", () => storage.close!());
  return guarded;
}
