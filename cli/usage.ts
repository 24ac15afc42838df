// The CLI's own errors and exit codes.

/** Exit codes of the `runs` command, as documented in `--help` and the README. */
export const EXIT = {
  /** Success; for a followed run: it completed. */
  ok: 0,
  /** A followed run failed; `restore` applied with conflicts. */
  failed: 1,
  /** A followed run is blocked. */
  blocked: 2,
  /** A followed run went stale (its writer stopped heartbeating). */
  stale: 3,
  /** An error: run not found, storage unreachable or refusing, git refused, ... */
  error: 4,
  /** Bad usage: unknown command or flag, bad value. */
  usage: 64,
} as const;

/** Bad usage of the command line: printed as one line, exit code 64. */
export class UsageError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong, one line.
   */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
