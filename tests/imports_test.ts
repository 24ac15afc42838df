// Importing mod.ts must load no node:* module, so the core runs on any web-standard runtime.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";

const mod = fileURLToPath(new URL("../mod.ts", import.meta.url));

describe("mod.ts", () => {
  it("loads no node:* module and not the viewer when imported", () => {
    // deno-lint-ignore no-explicit-any
    const deno = (globalThis as any).Deno;
    if (deno) {
      // The module graph: every node: specifier must be reached only through dynamic import().
      const info = JSON.parse(
        execFileSync(deno.execPath(), ["info", "--json", mod], { encoding: "utf8" }),
      );
      const staticNode: string[] = [];
      for (const module of info.modules ?? []) {
        for (const dep of module.dependencies ?? []) {
          if (dep.specifier?.startsWith("node:") && dep.code && !dep.isDynamic) {
            staticNode.push(`${module.specifier} -> ${dep.specifier}`);
          }
        }
      }
      assert.deepEqual(staticNode, []);
      // Nor the web viewer (exported as ./viewer, loaded only by those who import it).
      const viewer = (info.modules ?? []).map((m: { specifier: string }) => m.specifier)
        .filter((specifier: string) => specifier.includes("/viewer/"));
      assert.deepEqual(viewer, []);
    } else {
      // Node: a resolve hook records every node: specifier imported by a file of this project
      // (not by tsx or node_modules) while mod.ts is imported.
      const hook = `export async function resolve(specifier, context, next) {
        if (specifier.startsWith("node:") && context.parentURL?.startsWith("file:") &&
            !context.parentURL.includes("/node_modules/")) {
          console.log("NODE-IMPORT " + context.parentURL + " -> " + specifier);
        }
        if (specifier.includes("/viewer/")) console.log("NODE-IMPORT " + specifier);
        return next(specifier, context);
      }`;
      const script = `
        import { register } from "node:module";
        register("data:text/javascript," + encodeURIComponent(${JSON.stringify(hook)}));
        await import(${JSON.stringify(mod)});`;
      const out = execFileSync(process.execPath, [
        "--import",
        "tsx",
        "--input-type=module",
        "-e",
        script,
      ], {
        encoding: "utf8",
      });
      const imports = out.split("\n").filter((line) => line.startsWith("NODE-IMPORT "));
      assert.deepEqual(imports, []);
    }
  });

  it("loads neither the CLI nor the viewer, statically or dynamically", () => {
    // deno-lint-ignore no-explicit-any
    const deno = (globalThis as any).Deno;
    const faces = (specifier: string) => /\/(cli\.ts|cli\/|viewer\/)/.test(specifier);
    if (deno) {
      const info = JSON.parse(
        execFileSync(deno.execPath(), ["info", "--json", mod], { encoding: "utf8" }),
      );
      const reached = (info.modules ?? []).map((m: { specifier: string }) => m.specifier)
        .filter(faces);
      assert.deepEqual(reached, []);
    } else {
      const hook = `export async function load(url, context, next) {
        if (url.startsWith("file:") && !url.includes("/node_modules/")) console.log("LOAD " + url);
        return next(url, context);
      }`;
      const script = `
        import { register } from "node:module";
        register("data:text/javascript," + encodeURIComponent(${JSON.stringify(hook)}));
        await import(${JSON.stringify(mod)});`;
      const out = execFileSync(process.execPath, [
        "--import",
        "tsx",
        "--input-type=module",
        "-e",
        script,
      ], { encoding: "utf8" });
      const loaded = out.split("\n").filter((line) => line.startsWith("LOAD "));
      assert.ok(loaded.some((line) => line.endsWith("/mod.ts")), "the hook saw mod.ts load");
      assert.deepEqual(loaded.filter(faces), []);
    }
  });
});
