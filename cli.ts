/**
 * `runs`: the command line of `@baa-conductor/runner`, to find runs, read their logs, follow
 * them live, see what they changed and restore their work, on the filesystem or on
 * S3-compatible storage, from a terminal.
 *
 * ```sh
 * deno run -A jsr:@baa-conductor/runner/cli ls --status failed --since 24h
 * deno run -A jsr:@baa-conductor/runner/cli logs task-42/run-001 -f
 * npx runs show task-42/run-001 --storage s3://my-bucket/prod
 * ```
 *
 * Run with `--help` for every command, flag and exit code. Importing this module runs nothing;
 * running it as the main module runs the command line.
 *
 * @example Run the command line from a script
 * ```ts ignore
 * import { main } from "@baa-conductor/runner/cli";
 * const code = await main(["ls", "--json", "--storage", "/srv/repo"]);
 * ```
 *
 * @module
 */

import process from "node:process";
import { main } from "./cli/main.ts";

export { main };
export type { Output } from "./cli/output.ts";

/** Whether this file is the program being run (Deno, or Node through a bin link or tsx). */
async function isEntryPoint(): Promise<boolean> {
  // deno-lint-ignore no-explicit-any
  const meta = import.meta as any;
  if (typeof meta.main === "boolean") return meta.main;
  const script = process.argv[1];
  if (script === undefined) return false;
  const [{ realpathSync }, { fileURLToPath }] = await Promise.all([
    import("node:fs"),
    import("node:url"),
  ]);
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (await isEntryPoint()) {
  const code = await main(process.argv.slice(2));
  process.exit(code);
}
