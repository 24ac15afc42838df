// The Node package as users get it: packed tarball size, installed dependency tree size, and
// import time of the built JavaScript under plain node against @aws-sdk/client-s3.
//
// Run: npx -y deno@2.9.6 run -A bench/npm_package.ts [--runs 15] [--dir /tmp/baa-npm-bench]
//
// `npm pack` runs at the project root (the build), the tarball is installed into <dir>/ours, and
// the SDK, which is NOT a dependency of this project, into <dir>/sdk (both throwaway folders with
// their own package.json). Each import is timed in a fresh `node` process (`await import(name)`
// only), interleaved, after one unmeasured warm-up each; whole-process wall time is shown too.

import { loadAverage, median, numberArg, printTable, stringArg } from "./_harness.ts";

const RUNS = Math.max(5, numberArg("--runs", 15));
const DIR = stringArg("--dir", "/tmp/baa-npm-bench");
const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const CHILD = `const t0 = performance.now();
await import(process.argv[1]);
console.log(performance.now() - t0);`;

async function run(cmd: string, args: string[], cwd: string): Promise<string> {
  const output = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}`);
  }
  return text;
}

async function treeBytes(path: string): Promise<number> {
  let total = 0;
  for await (const entry of Deno.readDir(path)) {
    const child = `${path}/${entry.name}`;
    if (entry.isDirectory) total += await treeBytes(child);
    else if (entry.isFile) total += (await Deno.stat(child)).size;
  }
  return total;
}

async function project(name: string, spec: string): Promise<string> {
  const dir = `${DIR}/${name}`;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/package.json`, '{"private":true,"type":"module"}');
  await run("npm", ["install", "--no-audit", "--no-fund", spec], dir);
  return dir;
}

await Deno.mkdir(DIR, { recursive: true });
const packed = JSON.parse(await run("npm", ["pack", "--json", "--pack-destination", DIR], REPO));
const tarball = `${DIR}/${packed[0].filename}`;
const ours = await project("ours", tarball);
const sdk = await project("sdk", "@aws-sdk/client-s3");

async function importMs(dir: string, name: string): Promise<{ importMs: number; wallMs: number }> {
  const t0 = performance.now();
  const out = await run("node", ["--input-type=module", "-e", CHILD, name], dir);
  return { importMs: Number(out.trim()), wallMs: performance.now() - t0 };
}

const targets = [
  { label: "@baa-conductor/runner (dist/, plain node)", dir: ours, name: "@baa-conductor/runner" },
  { label: "@aws-sdk/client-s3", dir: sdk, name: "@aws-sdk/client-s3" },
];
const samples = targets.map(() => ({ importMs: [] as number[], wallMs: [] as number[] }));
for (const target of targets) await importMs(target.dir, target.name);
for (let i = 0; i < RUNS; i++) {
  for (const [index, target] of targets.entries()) {
    const sample = await importMs(target.dir, target.name);
    samples[index].importMs.push(sample.importMs);
    samples[index].wallMs.push(sample.wallMs);
  }
}

const packages = (dir: string) =>
  JSON.parse(Deno.readTextFileSync(`${dir}/package-lock.json`)).packages as Record<string, unknown>;
console.log(`node ${(await run("node", ["--version"], REPO)).trim()}, load ${loadAverage()}`);
console.log(
  `tarball ${packed[0].filename}: ${packed[0].size} bytes packed, ${
    packed[0].unpackedSize
  } unpacked, ${packed[0].entryCount} files`,
);
printTable(["installed into a fresh project", "packages", "bytes on disk"], [
  [
    "@baa-conductor/runner",
    Object.keys(packages(ours)).length - 1,
    await treeBytes(`${ours}/node_modules`),
  ],
  [
    "@aws-sdk/client-s3",
    Object.keys(packages(sdk)).length - 1,
    await treeBytes(`${sdk}/node_modules`),
  ],
]);
printTable(
  ["import (median of " + RUNS + ")", "import ms", "process wall ms"],
  targets.map((target, index) => [
    target.label,
    median(samples[index].importMs).toFixed(1),
    median(samples[index].wallMs).toFixed(0),
  ]),
);
console.log(
  `ratio ours / SDK (import): ${
    (median(samples[0].importMs) / median(samples[1].importMs)).toFixed(2)
  }`,
);
