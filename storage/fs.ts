// Filesystem storage: atomic replace for records, native append for logs. `node:` modules are
// loaded on first use, so importing this file (and mod.ts) loads none.

import { z } from "zod";
import { StorageError, type StorageErrorCode } from "../core/errors.ts";
import { parseOrThrow } from "../core/schemas.ts";
import { assertValidKey, assertValidRange } from "./keys.ts";
import { hostName } from "../core/owner.ts";
import type { RunStorage } from "./types.ts";

/** Options of {@linkcode createFsStorage}. */
export interface FsStorageOptions {
  /** Directory every key is relative to; created on first write. Relative to the cwd if relative. */
  root: string;
}

const FsStorageOptionsSchema: z.ZodType<FsStorageOptions> = z.strictObject({
  root: z.string().min(1, "must not be empty"),
});

type FsModules = {
  fs: typeof import("node:fs/promises");
  process: typeof import("node:process");
};

let modules: Promise<FsModules> | undefined;
function load(): Promise<FsModules> {
  modules ??= Promise.all([import("node:fs/promises"), import("node:process")])
    .then(([fs, process]) => ({ fs, process: process.default ?? process }));
  return modules;
}

const TEMP_PREFIX = ".tmp-";
/** A replace holds its lock for milliseconds; one older than this was left by a dead holder. */
const LOCK_STALE_MS = 5_000;
/** How long a replace waits for a live holder before it gives up. */
const LOCK_WAIT_MS = 10_000;

/**
 * A version tag that changes with every write: a write renames a fresh file into place, so the
 * inode changes (the old one is still linked while the new one is created, so the two never
 * share a number), and mtime (ns) and size come along. Rename does not change any of these.
 */
function etagOf(stat: { ino: bigint; mtimeNs: bigint; size: bigint }): string {
  return `${stat.ino.toString(36)}-${stat.mtimeNs.toString(36)}-${stat.size.toString(36)}`;
}

function currentDirectory(): string {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  return g.process?.cwd?.() ?? g.Deno?.cwd?.() ?? "/";
}

function errorCode(error: unknown): string | undefined {
  return (error as { code?: string } | null)?.code;
}

interface DenoFile {
  writeSync(data: Uint8Array): number;
  close(): void;
}
interface DenoFs {
  open(path: string, options: { append: true; create: true }): Promise<DenoFile>;
}

/**
 * Appends parts in order without joining them. On Deno its own file API with synchronous writes:
 * a write into the page cache costs ~0.3 ms per MiB on the JS thread, while each awaited write
 * waits for an event-loop turn behind the pipe reads it competes with (measured 20-40x slower in
 * a run). On Node one vectored write through the thread pool.
 */
async function appendAll(path: string, parts: readonly Uint8Array[]): Promise<void> {
  const deno = (globalThis as { Deno?: Partial<DenoFs> }).Deno;
  if (typeof deno?.open === "function") {
    const file = await deno.open(path, { append: true, create: true });
    try {
      for (const part of parts) {
        for (let offset = 0; offset < part.byteLength;) {
          offset += file.writeSync(part.subarray(offset));
        }
      }
    } finally {
      file.close();
    }
    return;
  }
  const { fs } = await load();
  const handle = await fs.open(path, "a");
  try {
    const rest = [...parts];
    while (rest.length > 0) {
      let { bytesWritten } = await handle.writev(rest);
      // A short write: drop what was written and go on with the rest.
      while (rest.length > 0 && bytesWritten >= rest[0].byteLength) {
        bytesWritten -= rest[0].byteLength;
        rest.shift();
      }
      if (rest.length > 0 && bytesWritten > 0) rest[0] = rest[0].subarray(bytesWritten);
    }
  } finally {
    await handle.close();
  }
}

/**
 * Creates a storage on the local filesystem under `root`.
 *
 * - `write` is atomic: a temp file in the same folder, then `rename`. Create-only writes link the
 *   temp file into place, which fails atomically when the key exists (`precondition_failed`).
 * - `append` appends in place (logs), `appendParts` several buffers without joining them;
 *   `writeStream` streams to a temp file and renames.
 * - `replace` is a compare-and-swap on a version tag (inode, mtime, size) under a lock file,
 *   safe against concurrent writers on one machine; a lock left by a dead holder is broken. Across
 *   machines sharing a network filesystem (NFS) exclusive create is atomic on NFSv3+, but a dead
 *   holder on another host is only detected by the lock's age (5 s).
 * - `stat` reports size, version tag and mtime; `readRange` reads part of a file through a file
 *   handle, in memory proportional to the range; `listPrefixes` reads one directory.
 * - `delete` removes folders the deletion left empty, as object storage has no empty folders.
 * - `locate(key)` is the absolute file path.
 *
 * @param options `root`: the directory keys are relative to.
 * @returns The storage.
 * @throws {ValidationError} `root` is missing or empty.
 *
 * @example
 * ```ts
 * import { createFsStorage } from "./fs.ts";
 * const root = await Deno.makeTempDir();
 * const storage = createFsStorage({ root });
 * await storage.write("runs/t/r/meta.json", "{}");
 * console.log(storage.locate("runs/t/r/meta.json")); // <root>/runs/t/r/meta.json
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function createFsStorage(options: FsStorageOptions): RunStorage {
  const { root: givenRoot } = parseOrThrow(
    FsStorageOptionsSchema,
    options,
    "Invalid fs storage options",
  );
  const separator = /^[A-Za-z]:\\/.test(givenRoot) || givenRoot.startsWith("\\\\") ? "\\" : "/";
  const absolute = /^([A-Za-z]:)?[\\/]/.test(givenRoot)
    ? givenRoot
    : `${currentDirectory()}/${givenRoot}`;
  // "." segments ("." as the root, "./runs") would otherwise show up in every located path.
  const tidy = absolute.replace(/([\\/])\.(?=[\\/]|$)/g, "");
  const root = tidy.length > 1 ? tidy.replace(/[\\/]+$/, "") : tidy || separator;
  const name = "fs";
  const pathOf = (key: string) =>
    key === "" ? root : `${root}${separator}${key.split("/").join(separator)}`;
  const dirOf = (path: string) => path.slice(0, Math.max(path.lastIndexOf(separator), 1));

  function fail(error: unknown, operation: string, key: string): never {
    if (error instanceof StorageError) throw error;
    const code = errorCode(error);
    // Deno without --allow-read/--allow-write: its message names the flag, so keep it.
    const denied = ["NotCapable", "PermissionDenied"].includes((error as Error | null)?.name ?? "");
    const mapped: StorageErrorCode = code === "EEXIST"
      ? "precondition_failed"
      : code === "EACCES" || code === "EPERM" || denied
      ? "access_denied"
      : "storage_failed";
    const detail = denied ? ` (${(error as Error).message})` : code ? ` (${code})` : "";
    // The key says which record; the path says where on disk (root included), for the operator.
    const reason = code === "EEXIST"
      ? `Key already exists at '${pathOf(key)}'`
      : `Filesystem ${operation} failed${detail} at '${pathOf(key)}'`;
    throw new StorageError(reason, { adapter: name, operation, key, code: mapped, cause: error });
  }

  async function withParent<T>(path: string, operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      if (errorCode(error) !== "ENOENT") throw error;
      const { fs } = await load();
      await fs.mkdir(dirOf(path), { recursive: true });
      return await operation();
    }
  }

  function tempPath(path: string): string {
    const slash = path.lastIndexOf(separator);
    const random = crypto.getRandomValues(new Uint32Array(2)).join("");
    return `${path.slice(0, slash + 1)}${TEMP_PREFIX}${path.slice(slash + 1)}-${random}`;
  }

  async function* walk(
    fs: FsModules["fs"],
    dir: string,
    keyPrefix: string,
  ): AsyncGenerator<string> {
    let children;
    try {
      children = await fs.readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (errorCode(error) === "ENOENT" || errorCode(error) === "ENOTDIR") return;
      throw error;
    }
    for (const child of children) {
      if (child.name.startsWith(TEMP_PREFIX)) continue;
      const key = `${keyPrefix}${child.name}`;
      if (child.isDirectory()) yield* walk(fs, `${dir}${separator}${child.name}`, `${key}/`);
      else if (child.isFile()) yield key;
    }
  }

  /**
   * Takes the lock that makes a replace's compare-and-rename atomic against other replaces on
   * this machine: a `.tmp-<name>.lock` file created exclusively, holding the holder's host and
   * pid. A lock whose holder died (same host, pid gone) or that is older than LOCK_STALE_MS is
   * broken, so a writer killed mid-replace never blocks a later reap.
   */
  async function lock(path: string): Promise<() => Promise<void>> {
    const { fs, process } = await load();
    const slash = path.lastIndexOf(separator);
    const lockPath = `${path.slice(0, slash + 1)}${TEMP_PREFIX}${path.slice(slash + 1)}.lock`;
    // Without a host name (Deno without --allow-sys) a dead holder is told by the lock's age.
    const host = await hostName() ?? "";
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        await fs.writeFile(lockPath, JSON.stringify({ host, pid: process.pid }), { flag: "wx" });
        return () => fs.unlink(lockPath).catch(() => {});
      } catch (error) {
        if (errorCode(error) !== "EEXIST") throw error;
      }
      if (await lockIsStale(lockPath, host)) {
        // Renaming first means only one breaker removes this lock file.
        const broken = `${lockPath}.broken-${crypto.getRandomValues(new Uint32Array(1))[0]}`;
        await fs.rename(lockPath, broken).then(() => fs.unlink(broken)).catch(() => {});
        continue;
      }
      if (Date.now() > deadline) {
        throw new StorageError(`Lock '${lockPath}' is held by a live process`, {
          adapter: name,
          operation: "replace",
          key: path,
          code: "unavailable",
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 2 + Math.random() * 10));
    }
  }

  async function lockIsStale(lockPath: string, host: string): Promise<boolean> {
    const { fs, process } = await load();
    try {
      const [stat, text] = await Promise.all([fs.stat(lockPath), fs.readFile(lockPath, "utf8")]);
      if (Date.now() - stat.mtimeMs > LOCK_STALE_MS) return true;
      const holder = JSON.parse(text) as { host?: string; pid?: number };
      if (host === "" || holder.host !== host || typeof holder.pid !== "number") return false;
      try {
        process.kill(holder.pid, 0);
        return false;
      } catch (error) {
        return errorCode(error) === "ESRCH";
      }
    } catch {
      // Gone meanwhile (released), or half-written by a holder that is still creating it.
      return false;
    }
  }

  return {
    name,
    async read(key) {
      assertValidKey(name, "read", key);
      const { fs } = await load();
      try {
        return new Uint8Array(await fs.readFile(pathOf(key)));
      } catch (error) {
        if (errorCode(error) === "ENOENT") return undefined;
        fail(error, "read", key);
      }
    },
    async readRange(key, range) {
      assertValidKey(name, "readRange", key);
      assertValidRange(range);
      const { fs } = await load();
      let handle;
      try {
        handle = await fs.open(pathOf(key), "r");
      } catch (error) {
        if (errorCode(error) === "ENOENT" || errorCode(error) === "ENOTDIR") return undefined;
        fail(error, "readRange", key);
      }
      try {
        // Only the range is read: a tail of a huge log costs the tail, in time and memory.
        const size = (await handle.stat()).size;
        const end = Math.min(size, range.length === undefined ? size : range.offset + range.length);
        const out = new Uint8Array(Math.max(0, end - range.offset));
        let filled = 0;
        while (filled < out.byteLength) {
          const { bytesRead } = await handle.read(
            out,
            filled,
            out.byteLength - filled,
            range.offset + filled,
          );
          if (bytesRead === 0) break; // truncated meanwhile: return what exists
          filled += bytesRead;
        }
        return filled === out.byteLength ? out : out.slice(0, filled);
      } catch (error) {
        fail(error, "readRange", key);
      } finally {
        await handle.close().catch(() => {});
      }
    },
    async write(key, data, writeOptions) {
      assertValidKey(name, "write", key);
      const { fs } = await load();
      const path = pathOf(key);
      const temp = tempPath(path);
      try {
        await withParent(path, () => fs.writeFile(temp, data));
        const etag = etagOf(await fs.stat(temp, { bigint: true }));
        if (writeOptions?.ifNoneMatch === "*") {
          // link() refuses an existing target atomically: create-only without a window.
          try {
            await fs.link(temp, path);
          } catch (error) {
            // Filesystems without hard links: an exclusive create is still create-only, though
            // a reader may then see the file before its bytes are complete.
            if (!["EPERM", "ENOTSUP", "ENOSYS", "EXDEV"].includes(errorCode(error) ?? "")) {
              throw error;
            }
            await fs.writeFile(path, data, { flag: "wx" });
          } finally {
            await fs.unlink(temp).catch(() => {});
          }
        } else {
          await fs.rename(temp, path);
        }
        return { etag };
      } catch (error) {
        await fs.unlink(temp).catch(() => {});
        fail(error, "write", key);
      }
    },
    async stat(key) {
      assertValidKey(name, "stat", key);
      const { fs } = await load();
      try {
        const stat = await fs.stat(pathOf(key), { bigint: true });
        if (!stat.isFile()) return undefined;
        return {
          size: Number(stat.size),
          etag: etagOf(stat),
          modifiedAt: new Date(Number(stat.mtimeMs)),
        };
      } catch (error) {
        if (errorCode(error) === "ENOENT" || errorCode(error) === "ENOTDIR") return undefined;
        fail(error, "stat", key);
      }
    },
    async replace(key, data, replaceOptions) {
      assertValidKey(name, "replace", key);
      const { fs } = await load();
      const path = pathOf(key);
      const temp = tempPath(path);
      let release: (() => Promise<void>) | undefined;
      try {
        await withParent(path, () => fs.writeFile(temp, data));
        const etag = etagOf(await fs.stat(temp, { bigint: true }));
        release = await lock(path);
        let current: string | undefined;
        try {
          current = etagOf(await fs.stat(path, { bigint: true }));
        } catch (error) {
          if (errorCode(error) !== "ENOENT") throw error;
        }
        if (current === undefined || current !== replaceOptions?.ifMatch) {
          throw new StorageError("Key changed since it was read", {
            adapter: name,
            operation: "replace",
            key,
            code: "precondition_failed",
          });
        }
        await fs.rename(temp, path);
        return { etag };
      } catch (error) {
        await fs.unlink(temp).catch(() => {});
        fail(error, "replace", key);
      } finally {
        await release?.();
      }
    },
    async *list(prefix, listOptions) {
      assertValidKey(name, "list", prefix, true);
      const { fs } = await load();
      const cut = prefix.lastIndexOf("/");
      const dirKey = cut < 0 ? "" : prefix.slice(0, cut);
      const after = listOptions?.startAfter;
      try {
        for await (const key of walk(fs, pathOf(dirKey), dirKey === "" ? "" : `${dirKey}/`)) {
          if (key.startsWith(prefix) && (after === undefined || key > after)) yield key;
        }
      } catch (error) {
        fail(error, "list", prefix);
      }
    },
    async *listPrefixes(prefix, listOptions) {
      assertValidKey(name, "listPrefixes", prefix, true);
      if (prefix !== "" && !prefix.endsWith("/")) {
        throw new TypeError(`listPrefixes() prefix must be "" or end in '/'; got '${prefix}'`);
      }
      const { fs } = await load();
      let children;
      try {
        children = await fs.readdir(pathOf(prefix.slice(0, -1)), { withFileTypes: true });
      } catch (error) {
        if (errorCode(error) === "ENOENT" || errorCode(error) === "ENOTDIR") return;
        fail(error, "listPrefixes", prefix);
      }
      const after = listOptions?.startAfter;
      const folders = children
        .filter((child) => child.isDirectory() && !child.name.startsWith(TEMP_PREFIX))
        .map((child) => `${prefix}${child.name}/`)
        .sort();
      for (const folder of folders) if (after === undefined || folder > after) yield folder;
    },
    async delete(key) {
      assertValidKey(name, "delete", key);
      const { fs } = await load();
      try {
        await fs.unlink(pathOf(key));
      } catch (error) {
        if (errorCode(error) !== "ENOENT") fail(error, "delete", key);
      }
      // Folders exist only for their keys, as on object storage: a folder left empty goes too,
      // so a deleted run does not linger as an empty directory in listings.
      const parts = key.split("/");
      for (let depth = parts.length - 1; depth > 0; depth--) {
        try {
          await fs.rmdir(pathOf(parts.slice(0, depth).join("/")));
        } catch {
          break; // not empty (or gone, or in use): stop climbing
        }
      }
    },
    locate(key) {
      return pathOf(key);
    },
    async append(key, data) {
      assertValidKey(name, "append", key);
      const { fs } = await load();
      const path = pathOf(key);
      try {
        await withParent(path, () => fs.appendFile(path, data));
      } catch (error) {
        fail(error, "append", key);
      }
    },
    async appendParts(key, parts) {
      assertValidKey(name, "append", key);
      const path = pathOf(key);
      try {
        await withParent(path, () => appendAll(path, parts));
      } catch (error) {
        fail(error, "append", key);
      }
    },
    async writeStream(key, source) {
      assertValidKey(name, "writeStream", key);
      const { fs } = await load();
      const path = pathOf(key);
      const temp = tempPath(path);
      try {
        const handle = await withParent(path, () => fs.open(temp, "w"));
        try {
          for await (const chunk of source) await handle.write(chunk);
        } finally {
          await handle.close();
        }
        await fs.rename(temp, path);
      } catch (error) {
        await fs.unlink(temp).catch(() => {});
        fail(error, "writeStream", key);
      }
    },
  };
}
