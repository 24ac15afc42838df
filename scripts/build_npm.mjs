// Builds the Node package into dist/ from the same TypeScript sources JSR publishes: ESM
// JavaScript plus .d.ts declarations, by tsc (tsconfig.npm.json). `npm pack` runs it (prepack).
// Not `prepare`: npm would then warn every installer of the tarball about an install script.
//
//   node scripts/build_npm.mjs        (or: npm run build)
//
// Plain Node, no Deno: a fresh clone needs only Node and npm. When TypeScript is not installed
// yet, the dependencies are installed first (`npm install`, no lock file written), so `npm pack`
// on a fresh clone works; `npx -y deno@2.9.6 install` installs the same packages.

import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, "package.json"));

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit" });
  if (result.error) throw result.error;
  if (result.status !== 0) {
    console.error(`build_npm: '${command} ${args.join(" ")}' exited with ${result.status}`);
    process.exit(result.status ?? 1);
  }
}

function resolveTsc() {
  try {
    return require.resolve("typescript/bin/tsc");
  } catch {
    return undefined;
  }
}

let tsc = resolveTsc();
if (tsc === undefined) {
  console.error(
    "build_npm: TypeScript is not installed; installing the dependencies (npm install)",
  );
  run("npm", ["install", "--no-package-lock", "--ignore-scripts", "--no-audit", "--no-fund"]);
  tsc = resolveTsc();
  if (tsc === undefined) {
    console.error("build_npm: TypeScript is still missing after npm install");
    process.exit(1);
  }
}

rmSync(join(root, "dist"), { recursive: true, force: true });
run(process.execPath, [tsc, "-p", "tsconfig.npm.json"]);

// Every entry the manifest promises must have been built: a subpath added to package.json
// without its source (or the other way round) fails here, not in a user's import.
const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const targets = [];
const collect = (value) => {
  if (typeof value === "string") targets.push(value);
  else if (value && typeof value === "object") Object.values(value).forEach(collect);
};
collect(manifest.exports);
collect(manifest.bin);
const missing = targets.filter((target) => !existsSync(join(root, target)));
if (missing.length > 0) {
  console.error(`build_npm: package.json points at files the build did not make: ${missing}`);
  process.exit(1);
}

// A bin runs under plain node through its link: tsc keeps a shebang only if the source has one,
// and cli.ts is Deno-first, so the build adds it.
for (const target of Object.values(manifest.bin ?? {})) {
  const file = join(root, target);
  const text = readFileSync(file, "utf8");
  if (!text.startsWith("#!")) writeFileSync(file, `#!/usr/bin/env node\n${text}`);
  chmodSync(file, 0o755);
}
console.error(`build_npm: built dist/ (${targets.length} entry points checked)`);
