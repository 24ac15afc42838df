// The README's quick start, run as a user would: twice in a row in the same folder (no
// RunConflictError), under Deno with exactly the permissions the README lists, and under Node.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, it } from "node:test";
import { withTempDir } from "./helpers.ts";

const root = fileURLToPath(new URL("..", import.meta.url));

/** The first ```ts block under "## Quick start", importing this checkout's mod.ts. */
async function quickStart(): Promise<string> {
  const readme = await readFile(join(root, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("\n## Quick start\n"));
  const block = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(block !== undefined, "README.md has no ```ts block under '## Quick start'");
  return block.replaceAll(
    /"(jsr:)?@baa-conductor\/runner"/g,
    JSON.stringify(pathToFileURL(join(root, "mod.ts")).href),
  );
}

/** The permissions the README's quick start gives `deno run`, read from the README itself. */
async function quickStartFlags(): Promise<string[]> {
  const readme = await readFile(join(root, "README.md"), "utf8");
  const line = /Deno:\s+`deno run ((?:--allow-[\w=]+ )+)quickstart\.ts`/.exec(readme);
  assert.ok(line !== null, "README.md does not say how to run the quick start under Deno");
  return line[1].trim().split(" ");
}

function deno(): [string, ...string[]] {
  // deno-lint-ignore no-explicit-any
  const self = (globalThis as any).Deno;
  return self ? [self.execPath()] : ["npx", "-y", "deno@2.9.6"];
}

function runTwice(command: string, args: string[], cwd: string): void {
  for (const attempt of [1, 2]) {
    const result = spawnSync(command, args, { cwd, encoding: "utf8", timeout: 120_000 });
    assert.equal(result.status, 0, `run ${attempt} failed:\n${result.stdout}${result.stderr}`);
    assert.match(result.stdout, /^completed 0 \//m, `run ${attempt}: ${result.stdout}`);
  }
}

async function assertTwoRuns(dir: string): Promise<void> {
  const runs = await readdir(join(dir, "runs", "hello"));
  assert.equal(runs.length, 2);
  for (const runId of runs) {
    const stdout = await readFile(join(dir, "runs", "hello", runId, "stdout.log"), "utf8");
    assert.match(stdout, /^hello\n/);
  }
}

describe("README quick start", () => {
  it("runs twice in a row under Deno with the permissions the README lists", async () => {
    const code = await quickStart();
    const flags = await quickStartFlags();
    await withTempDir(async (dir) => {
      await writeFile(join(dir, "quickstart.ts"), code);
      const [command, ...prefix] = deno();
      const config = join(root, "deno.json");
      runTwice(command, [...prefix, "run", "--config", config, ...flags, "quickstart.ts"], dir);
      await assertTwoRuns(dir);
    });
  });

  it("runs twice in a row under Node", async () => {
    const code = await quickStart();
    await withTempDir(async (dir) => {
      // As the README says: the block as quickstart.mjs (no type annotations in it). tsx is only
      // here to load this checkout's TypeScript mod.ts; tests/npm_package_test.ts runs the build.
      await writeFile(join(dir, "quickstart.mjs"), code);
      const tsx = pathToFileURL(join(root, "node_modules", "tsx", "dist", "loader.mjs")).href;
      runTwice("node", ["--import", tsx, "quickstart.mjs"], dir);
      await assertTwoRuns(dir);
    });
  });
});
