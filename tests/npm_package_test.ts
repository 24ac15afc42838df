// The npm package as a Node user gets it: `npm pack` at the root, `npm install ./that.tgz` in a
// fresh project, a TypeScript consumer compiled against the declarations, runs under plain node.
//
// The tarball is cached under .cache/npm-pack/ by a hash of what goes into it, so the Deno and
// the Node pass of one suite run pack once. Needs node and npm on PATH and the npm registry (for
// the package's own dependencies). The S3 leg needs the RGW env (see tests/s3/rgw_env.ts).

import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import {
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  realpath,
  rm,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { deleteBucketRecursive, uniqueBucketName } from "./s3/bucket.ts";
import { requireRgw } from "./s3/rgw_env.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const consumerSource = fileURLToPath(
  new URL("./fixtures/npm_consumer/consumer.ts", import.meta.url),
);

/** Files whose content decides the tarball. */
async function packInputs(): Promise<string[]> {
  const files = [
    "package.json",
    "tsconfig.npm.json",
    "scripts/build_npm.mjs",
    "mod.ts",
    "cli.ts",
    "README.md",
    "LICENSE",
  ];
  for (const dir of ["core", "storage", "executors", "git", "cli", "viewer"]) {
    const entries = await readdir(join(root, dir), { recursive: true }).catch(() => []);
    files.push(...entries.map((entry) => `${dir}/${entry}`).filter((f) => f.endsWith(".ts")));
  }
  return files.filter((file) => existsSync(join(root, file))).sort();
}

/** `npm pack` at the project root, once per content: returns the tarball's path. */
async function packOnce(): Promise<string> {
  const hash = createHash("sha256");
  for (const file of await packInputs()) {
    hash.update(file).update("\0").update(await readFile(join(root, file))).update("\0");
  }
  const dir = join(root, ".cache", "npm-pack", hash.digest("hex").slice(0, 16));
  const existing = (await readdir(dir).catch(() => [])).find((f) => f.endsWith(".tgz"));
  if (existing !== undefined) return join(dir, existing);
  await mkdir(dir, { recursive: true });
  const out = execFileSync("npm", ["pack", "--json", "--pack-destination", dir], {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  const [{ filename }] = JSON.parse(out) as { filename: string }[];
  return join(dir, filename);
}

type Env = Record<string, string | undefined>;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], cwd: string, env: Env = {}): Run {
  const result = spawnSync(command, args, {
    cwd,
    encoding: "utf8",
    env: { ...process.env, ...env },
    timeout: 240_000,
  });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("the npm package", () => {
  let tarball = "";
  let project = "";
  let compiled: Run;
  let installed: Run;

  before(async () => {
    tarball = await packOnce();
    project = await realpath(await mkdtemp(join(tmpdir(), "npm-consumer-")));
    await writeFile(
      join(project, "package.json"),
      JSON.stringify({ name: "consumer", private: true, type: "module" }),
    );
    installed = run(
      "npm",
      ["install", "--no-audit", "--no-fund", "--prefer-offline", tarball],
      project,
    );
    assert.equal(installed.status, 0, `npm install failed:\n${installed.stderr}`);
    // The consumer is compiled with the project's own tsc and @types/node (a Node user's setup:
    // no DOM lib), against the installed package's declarations.
    await copyFile(consumerSource, join(project, "consumer.ts"));
    await writeFile(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          lib: ["ES2022"],
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          noEmitOnError: true,
          types: ["node"],
          typeRoots: [join(root, "node_modules", "@types")],
          outDir: "out",
        },
        files: ["consumer.ts"],
      }),
    );
    compiled = run("node", [
      join(root, "node_modules", "typescript", "bin", "tsc"),
      "-p",
      "tsconfig.json",
    ], project);
  });
  after(async () => {
    if (project !== "") await rm(project, { recursive: true, force: true });
  });

  /** Runs the compiled consumer under plain node (no tsx, no loader) and parses its report. */
  function consume(args: string[], env: Env = {}): Record<string, unknown> {
    const result = run("node", [join(project, "out", "consumer.js"), ...args], project, env);
    assert.equal(result.status, 0, `consumer ${args[0]} failed:\n${result.stderr}`);
    return JSON.parse(result.stdout.trim().split("\n").at(-1) ?? "");
  }

  it("npm pack ships built JavaScript and declarations, not the TypeScript sources or tests", () => {
    const files = execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" }).trim().split("\n");
    assert.ok(files.includes("package/dist/mod.js"), "dist/mod.js is missing");
    assert.ok(files.includes("package/dist/cli.js"), "dist/cli.js is missing");
    assert.ok(files.includes("package/dist/mod.d.ts"), "dist/mod.d.ts is missing");
    assert.ok(files.includes("package/README.md") && files.includes("package/LICENSE"));
    const stray = files.filter((file) =>
      !/^package\/(dist\/.+\.(js|d\.ts)|README\.md|LICENSE|package\.json)$/.test(file)
    );
    assert.deepEqual(stray, []);
  });

  it("installs with zod, aws4fetch and @noble/hashes as its only dependencies, and no install script", async () => {
    // npm warns every installer about lifecycle scripts such as `prepare`.
    assert.doesNotMatch(installed.stderr, /install-scripts|prepare/);
    const lock = JSON.parse(await readFile(join(project, "package-lock.json"), "utf8")) as {
      packages: Record<string, unknown>;
    };
    const tree = Object.keys(lock.packages).filter((key) => key !== "").sort();
    assert.deepEqual(tree, [
      "node_modules/@baa-conductor/runner",
      "node_modules/@noble/hashes",
      "node_modules/aws4fetch",
      "node_modules/zod",
    ]);
  });

  it("type-checks a TypeScript consumer against its declarations (misuses are type errors)", () => {
    assert.equal(compiled.status, 0, `tsc failed:\n${compiled.stdout}${compiled.stderr}`);
  });

  it("records a memory run under plain node, and its ./viewer shows it", () => {
    const report = consume(["memory"]);
    assert.equal(report.outcome, "completed");
    assert.equal(report.status, "completed");
    assert.equal(report.stdout, "hello from memory\n");
    assert.match(String(report.stdoutLogPath), /^memory:\/\/runs\/npm-consumer\/run-/);
    assert.deepEqual(report.viewer, { status: 200, showsOutput: true });
  });

  it("records a process run on the filesystem default under plain node", async () => {
    const runsRoot = join(project, "repo");
    await mkdir(runsRoot);
    const report = consume(["fs", runsRoot]);
    assert.equal(report.outcome, "completed");
    assert.equal(report.exitCode, 0);
    assert.equal(report.stdout, "hello from a child\n");
    const path = String(report.stdoutLogPath);
    assert.ok(path.startsWith(join(runsRoot, "runs", "npm-consumer")), path);
    assert.equal(await readFile(path, "utf8"), "hello from a child\n");
    assert.deepEqual(report.events, [
      "run_prepared",
      "checkpoint_slot_reserved",
      "worker_started",
      "worker_exited",
      "step_completed",
    ]);
  });

  it("installs the 'runs' bin, which runs under plain node", async () => {
    const help = run("npx", ["--no-install", "runs", "--help"], project);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /^Usage: runs <command>/m);
    const empty = join(project, "no-runs");
    await mkdir(empty);
    const listed = run(
      "npx",
      ["--no-install", "runs", "ls", "--json", "--storage", empty],
      project,
    );
    assert.equal(listed.status, 0, listed.stderr);
    assert.deepEqual(JSON.parse(listed.stdout), []);
    const bad = run("npx", ["--no-install", "runs", "show", "nope"], project);
    assert.equal(bad.status, 64);
    assert.equal(bad.stderr, "runs: 'nope' is not a run; give it as <task>/<run>\n");
  });

  it("creates a bucket and records an S3 run under plain node", async (t) => {
    const env = requireRgw(t);
    if (env === undefined) return;
    // The consumer creates the bucket itself, with the package's ensureS3Bucket().
    const bucket = uniqueBucketName("npm-consumer");
    try {
      const report = consume(["s3", bucket], {
        S3_ENDPOINT: env.endpoint,
        S3_REGION: env.region,
        S3_ACCESS_KEY_ID: env.accessKeyId,
        S3_SECRET_ACCESS_KEY: env.secretAccessKey,
      });
      assert.equal(report.outcome, "completed");
      assert.equal(report.status, "completed");
      assert.equal(report.stdout, "hello from s3\n");
      assert.match(String(report.stdoutLogPath), new RegExp(`^s3://${bucket}/runs/npm-consumer/`));
    } finally {
      await deleteBucketRecursive(env, bucket);
    }
  });
});

describe("package.json", () => {
  it("agrees with deno.json on name, version, runtime dependencies and entry points", async () => {
    const manifest = JSON.parse(await readFile(join(root, "package.json"), "utf8"));
    const deno = JSON.parse(await readFile(join(root, "deno.json"), "utf8"));
    assert.equal(manifest.name, deno.name);
    assert.equal(manifest.version, deno.version);
    // The published sources import exactly these bare specifiers; both manifests pin one range.
    const runtime = Object.fromEntries(
      ["@noble/hashes", "aws4fetch", "zod"].map((
        name,
      ) => [name, String(deno.imports[name]).replace(/^npm:(@[^/]+\/)?[^@]+@/, "")]),
    );
    assert.deepEqual(manifest.dependencies, runtime);
    // Deno would try to install the other platforms' binaries of a `deno` dependency.
    assert.equal(manifest.devDependencies?.deno, undefined);
    const denoExports: Record<string, string> = typeof deno.exports === "string"
      ? { ".": deno.exports }
      : deno.exports;
    const expected = Object.fromEntries(
      Object.entries(denoExports).map(([subpath, source]) => {
        const base = source.replace(/^\.\//, "./dist/").replace(/\.ts$/, "");
        return [subpath, { types: `${base}.d.ts`, default: `${base}.js` }];
      }),
    );
    const { "./package.json": _self, ...exported } = manifest.exports;
    assert.deepEqual(exported, expected);
  });
});
