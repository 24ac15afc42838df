// Opening the storage a CLI command reads: a directory (the filesystem default's repoRoot) or
// `s3://bucket/prefix` with credentials from the usual AWS environment variables.

import { isAbsolutePath } from "../core/layout.ts";
import { createFsStorage } from "../storage/fs.ts";
import { createS3Storage } from "../storage/s3.ts";
import type { RunStorage } from "../storage/types.ts";
import { UsageError } from "./usage.ts";

/** A storage opened from the command line. */
export interface OpenedStorage {
  /** The storage. */
  storage: RunStorage;
  /** The runs prefix on it (`runs` unless `--runs-root` says otherwise). */
  runsRootDir: string;
  /** Values that must never be printed (the secret key, the session token). */
  secrets: string[];
}

/**
 * Opens `--storage`: `s3://bucket[/prefix]` or a directory (default `.`), taken as the
 * `repoRoot` of the filesystem default so its `runs/` folder is found.
 *
 * On S3 the credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
 * `AWS_SESSION_TOKEN`, the region from `AWS_REGION` (or `AWS_DEFAULT_REGION`, default
 * `us-east-1`), the endpoint from `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (R2, MinIO, Ceph;
 * path-style addressing) or else AWS's regional endpoint (virtual-hosted style).
 *
 * @param location `--storage`.
 * @param runsRoot `--runs-root`: another runs folder (relative to the directory, or absolute) or
 *   key prefix.
 * @param env The environment.
 * @returns The storage, its runs prefix and the secrets to keep out of any output.
 * @throws {UsageError} A malformed location, or S3 credentials missing.
 */
export function openStorage(
  location: string | undefined,
  runsRoot: string | undefined,
  env: Record<string, string | undefined>,
): OpenedStorage {
  const where = location ?? ".";
  if (!/^s3:\/\//i.test(where)) {
    if (runsRoot !== undefined && isAbsolutePath(runsRoot)) {
      return { storage: createFsStorage({ root: runsRoot }), runsRootDir: "", secrets: [] };
    }
    return {
      storage: createFsStorage({ root: where }),
      runsRootDir: runsRoot ?? "runs",
      secrets: [],
    };
  }
  const match = /^s3:\/\/([^/]+)\/?(.*)$/i.exec(where);
  if (match === null || match[1] === "") {
    throw new UsageError(`--storage '${where}' is not of the form s3://bucket[/prefix]`);
  }
  const [, bucket, prefix] = match;
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) {
    throw new UsageError(
      "S3 storage needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment",
    );
  }
  const sessionToken = env.AWS_SESSION_TOKEN || undefined;
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || "us-east-1";
  const custom = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL;
  const storage = createS3Storage({
    endpoint: custom ?? `https://s3.${region}.amazonaws.com`,
    bucket,
    region,
    accessKeyId,
    secretAccessKey,
    ...(sessionToken !== undefined ? { sessionToken } : {}),
    ...(prefix !== "" ? { prefix } : {}),
    pathStyle: custom !== undefined,
    // A person is waiting: fail within seconds, not after the library's 20 s retry budget.
    retries: { attempts: 2, budgetMs: 5_000 },
    timeoutMs: 15_000,
  });
  return {
    storage,
    runsRootDir: runsRoot ?? "runs",
    secrets: [secretAccessKey, ...(sessionToken !== undefined ? [sessionToken] : [])],
  };
}
