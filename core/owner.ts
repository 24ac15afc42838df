// Who runs a run: the host and process recorded in state.json, so a reaper or an operator can
// tell "same machine, process gone" from "another machine", and find the worker's process group.

/** The process running a worker, as an executor reports it. */
export interface WorkerProcessInfo {
  /** The worker's pid. */
  pid: number;
  /** Its process group (the process executor gives each worker a group of its own). */
  pgid?: number;
}

/**
 * The owner of a live run, recorded in `state.json`. Every field is best effort: a runtime without
 * processes (Workers, Deno Deploy) or without the permission to ask (`--allow-sys` for the host
 * name on Deno) leaves it out. No environment and no secrets are recorded.
 */
export interface RunOwner {
  /** Host name of the machine running `runStep`. */
  host?: string;
  /** Linux boot id: the same host name with another boot id is another boot (pids reused). */
  bootId?: string;
  /** pid of the process running `runStep`. */
  pid?: number;
  /** Runtime and version, e.g. `deno 2.9.6`, `node 20.20.2`. */
  runtime?: string;
  /** The worker process, once the executor reported it. */
  worker?: WorkerProcessInfo;
}

let current: Promise<RunOwner> | undefined;
let host: Promise<string | undefined> | undefined;

/**
 * This machine's host name, when the runtime can tell it without asking (on Deno, only with
 * `--allow-sys`; never a permission prompt).
 *
 * @returns The host name, or undefined.
 */
export function hostName(): Promise<string | undefined> {
  host ??= granted({ name: "sys", kind: "hostname" })
    ? import("node:os").then((os) => os.hostname()).catch(() => undefined)
    : Promise.resolve(undefined);
  return host;
}

/**
 * On Deno, an API used without its permission prompts on a terminal: a run must never stop to
 * ask. Only what is already granted is used; elsewhere (Node, Bun) everything is.
 */
function granted(descriptor: { name: string; kind?: string; path?: string }): boolean {
  // deno-lint-ignore no-explicit-any
  const permissions = (globalThis as any).Deno?.permissions;
  if (permissions === undefined) return true;
  try {
    return permissions.querySync(descriptor).state === "granted";
  } catch {
    return false;
  }
}

/**
 * Describes the current process (cached: it does not change while the process lives). Loads
 * `node:os`/`node:process` lazily and leaves out whatever the runtime cannot tell.
 *
 * @returns The owner record, without a worker.
 */
export function describeOwner(): Promise<RunOwner> {
  current ??= (async () => {
    const owner: RunOwner = {};
    const bootIdPath = "/proc/sys/kernel/random/boot_id";
    await Promise.all([
      hostName().then((name) => {
        if (name !== undefined) owner.host = name;
      }),
      import("node:process").then(({ default: proc }) => {
        owner.pid = proc.pid;
        const versions = proc.versions as Record<string, string | undefined>;
        owner.runtime = versions.deno !== undefined
          ? `deno ${versions.deno}`
          : versions.bun !== undefined
          ? `bun ${versions.bun}`
          : `node ${versions.node}`;
      }).catch(() => {}),
      granted({ name: "read", path: bootIdPath })
        ? import("node:fs/promises").then(async (fs) => {
          owner.bootId = (await fs.readFile(bootIdPath, "utf8")).trim();
        }).catch(() => {})
        : undefined,
    ]);
    return owner;
  })();
  return current.then((owner) => ({ ...owner }));
}
