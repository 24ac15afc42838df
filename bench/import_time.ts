// Import time of this library (mod.ts, S3 adapter included) vs @aws-sdk/client-s3, in fresh
// processes, same runtime for both: medians of in-process `await import(...)` time.
//
// Run: npx -y deno@2.9.6 run -A bench/import_time.ts [--runs 15] [--dir /tmp/baa-import-bench]
//
// The SDK is NOT a dependency of this project: the script installs it with
// `npm install @aws-sdk/client-s3` into <dir>/sdk (a throwaway folder with its own package.json,
// default /tmp/baa-import-bench/sdk) on first use, and measures it there. Reproduce by hand:
//   mkdir -p /tmp/baa-import-bench/sdk && cd /tmp/baa-import-bench/sdk
//   echo '{"private":true,"type":"module"}' > package.json && npm install @aws-sdk/client-s3
//
// Compared, each in a fresh process, after two unmeasured warm-up runs (Deno's transpile cache):
//   Deno: ours from source (mod.ts through deno.json's import map) vs the SDK from node_modules.
//   Node: ours bundled with `deno bundle` (Node cannot run our .ts without a transpiler, and
//         tsx would time its own transpiling) vs the SDK as installed and vs the SDK bundled the
//         same way.
// The timed section is only `await import(target)`; runtime start-up is reported separately as
// whole-process wall time.

import process from "node:process";
import { median, numberArg, stringArg } from "./_harness.ts";

const RUNS = Math.max(10, numberArg("--runs", 15));
const DIR = stringArg("--dir", "/tmp/baa-import-bench");
const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const DENO = Deno.execPath();
const SDK_DIR = `${DIR}/sdk`;
const OURS_DIR = `${DIR}/ours`;

// The child: times one dynamic import. Same file for Deno and Node.
const CHILD = `const target = globalThis.Deno ? Deno.args[0] : process.argv[2];
const t0 = performance.now();
const mod = await import(target);
const ms = performance.now() - t0;
console.log(JSON.stringify({ ms, exports: Object.keys(mod).length }));
`;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function run(
  cmd: string,
  args: string[],
  cwd: string,
): Promise<{ ok: boolean; out: string; err: string }> {
  const output = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  return {
    ok: output.success,
    out: new TextDecoder().decode(output.stdout),
    err: new TextDecoder().decode(output.stderr),
  };
}

async function mustRun(cmd: string, args: string[], cwd: string): Promise<string> {
  const result = await run(cmd, args, cwd);
  if (!result.ok) {
    console.error(`FAILED: ${cmd} ${args.join(" ")} (in ${cwd})\n${result.err.slice(-2000)}`);
    process.exit(1);
  }
  return result.out;
}

// ---------------------------------------------------------------- setup

await Deno.mkdir(SDK_DIR, { recursive: true });
await Deno.mkdir(OURS_DIR, { recursive: true });
const sdkPackage = `${SDK_DIR}/node_modules/@aws-sdk/client-s3/package.json`;
if (!await exists(sdkPackage)) {
  console.log(
    `Installing @aws-sdk/client-s3 into ${SDK_DIR} (throwaway; not a project dependency)...`,
  );
  await Deno.writeTextFile(
    `${SDK_DIR}/package.json`,
    JSON.stringify({ name: "baa-import-bench-sdk", private: true, type: "module" }) + "\n",
  );
  await mustRun("npm", ["install", "--no-audit", "--no-fund", "@aws-sdk/client-s3"], SDK_DIR);
}
const sdkVersion = JSON.parse(await Deno.readTextFile(sdkPackage)).version as string;
await Deno.writeTextFile(`${SDK_DIR}/time_import.mjs`, CHILD);
await Deno.writeTextFile(`${OURS_DIR}/time_import.mjs`, CHILD);
await Deno.writeTextFile(`${SDK_DIR}/entry.mjs`, 'export * from "@aws-sdk/client-s3";\n');

console.log(
  "Bundling (for the Node comparison): ours and the SDK, both with deno bundle --platform deno",
);
await mustRun(DENO, [
  "bundle",
  "--platform",
  "deno",
  "--config",
  `${REPO}/deno.json`,
  "-o",
  `${OURS_DIR}/mod.bundle.mjs`,
  `${REPO}/mod.ts`,
], REPO);
await mustRun(DENO, [
  "bundle",
  "--platform",
  "deno",
  "--node-modules-dir=manual",
  "-o",
  `${SDK_DIR}/sdk.bundle.mjs`,
  `${SDK_DIR}/entry.mjs`,
], SDK_DIR);
const bundleKb = async (path: string) => ((await Deno.stat(path)).size / 1024).toFixed(0);

interface Target {
  label: string;
  group: "deno" | "node" | "diag";
  cmd: string;
  args: string[];
  cwd: string;
}

const oursDeno = (specifier: string): Pick<Target, "cmd" | "args" | "cwd"> => ({
  cmd: DENO,
  args: ["run", "-A", "--config", `${REPO}/deno.json`, `${OURS_DIR}/time_import.mjs`, specifier],
  cwd: REPO,
});
const targets: Target[] = [
  { label: "ours: mod.ts (Deno, source)", group: "deno", ...oursDeno(`file://${REPO}/mod.ts`) },
  {
    label: "ours: storage/s3.ts alone (Deno, source)",
    group: "diag",
    ...oursDeno(`file://${REPO}/storage/s3.ts`),
  },
  { label: "  of which zod alone (Deno)", group: "diag", ...oursDeno("zod") },
  { label: "  of which aws4fetch alone (Deno)", group: "diag", ...oursDeno("aws4fetch") },
  {
    label: "SDK: @aws-sdk/client-s3 (Deno, node_modules)",
    group: "deno",
    cmd: DENO,
    args: [
      "run",
      "-A",
      "--node-modules-dir=manual",
      `${SDK_DIR}/time_import.mjs`,
      "@aws-sdk/client-s3",
    ],
    cwd: SDK_DIR,
  },
  {
    label: "ours: mod.ts bundled (Node)",
    group: "node",
    cmd: "node",
    args: [`${OURS_DIR}/time_import.mjs`, "./mod.bundle.mjs"],
    cwd: OURS_DIR,
  },
  {
    label: "SDK: @aws-sdk/client-s3 as installed (Node)",
    group: "node",
    cmd: "node",
    args: [`${SDK_DIR}/time_import.mjs`, "@aws-sdk/client-s3"],
    cwd: SDK_DIR,
  },
  {
    label: "SDK: @aws-sdk/client-s3 bundled (Node)",
    group: "node",
    cmd: "node",
    args: [`${SDK_DIR}/time_import.mjs`, "./sdk.bundle.mjs"],
    cwd: SDK_DIR,
  },
];

async function once(target: Target): Promise<{ ms: number; wall: number }> {
  const started = performance.now();
  const result = await run(target.cmd, target.args, target.cwd);
  const wall = performance.now() - started;
  const line = result.out.trim().split("\n").at(-1) ?? "";
  if (!result.ok || !line.startsWith("{")) {
    console.error(`FAILED: ${target.label}\n${result.err.slice(-2000)}`);
    process.exit(1);
  }
  return { ms: JSON.parse(line).ms as number, wall };
}

// ---------------------------------------------------------------- measure

const nodeVersion = (await run("node", ["--version"], REPO)).out.trim();
console.log(
  `Deno ${Deno.version.deno}, Node ${nodeVersion}, @aws-sdk/client-s3 ${sdkVersion}; ` +
    `bundles: ours ${await bundleKb(`${OURS_DIR}/mod.bundle.mjs`)} KB, SDK ${await bundleKb(
      `${SDK_DIR}/sdk.bundle.mjs`,
    )} KB`,
);
console.log(`Warm-up: 2 runs per target (not measured); then ${RUNS} rounds, targets interleaved.`);
for (const target of targets) for (let i = 0; i < 2; i++) await once(target);
const samples = new Map<Target, { ms: number; wall: number }[]>(targets.map((t) => [t, []]));
for (let round = 0; round < RUNS; round++) {
  for (let i = 0; i < targets.length; i++) {
    const target = targets[(i + round) % targets.length];
    samples.get(target)!.push(await once(target));
  }
}

const med = (target: Target, field: "ms" | "wall") =>
  median(samples.get(target)!.map((s) => s[field]));
const width = Math.max(...targets.map((t) => t.label.length));
console.log(
  `\n${"target".padEnd(width)}  import ms (median of ${RUNS})  min    process wall ms (median)`,
);
for (const target of targets) {
  const list = samples.get(target)!;
  console.log(
    `${target.label.padEnd(width)}  ${med(target, "ms").toFixed(1).padStart(24)}  ${
      Math.min(...list.map((s) => s.ms)).toFixed(1).padStart(5)
    }  ${med(target, "wall").toFixed(0).padStart(24)}`,
  );
}
const [oursDenoT, , , , sdkDenoT, oursNodeT, sdkNodeT, sdkNodeBundledT] = targets;
const ratio = (a: Target, b: Target) => med(a, "ms") / med(b, "ms");
const verdict = (r: number) => (r <= 0.1 ? "met" : "NOT met");
console.log("\nRatios of median import time (ours / SDK; target <= 0.10):");
console.log(
  `  Deno, both from source/node_modules: ${ratio(oursDenoT, sdkDenoT).toFixed(2)}  (${
    verdict(ratio(oursDenoT, sdkDenoT))
  })`,
);
console.log(
  `  Node, ours bundled / SDK as installed: ${ratio(oursNodeT, sdkNodeT).toFixed(2)}  (${
    verdict(ratio(oursNodeT, sdkNodeT))
  })`,
);
console.log(
  `  Node, both bundled: ${ratio(oursNodeT, sdkNodeBundledT).toFixed(2)}  (${
    verdict(ratio(oursNodeT, sdkNodeBundledT))
  })`,
);
