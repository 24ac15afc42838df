// Runs the storage conformance suite on the filesystem adapter, plus what is special to disk.

import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ValidationError } from "../core/errors.ts";
import { createFsStorage } from "../storage/fs.ts";
import { testStorage } from "./storage_suite.ts";

async function tempRoot(): Promise<string> {
  return await mkdtemp(join(tmpdir(), "runner-fs-"));
}

testStorage({
  name: "fs",
  async create() {
    const root = await tempRoot();
    return {
      storage: createFsStorage({ root }),
      cleanup: () => rm(root, { recursive: true, force: true }),
    };
  },
  capabilities: { append: true, writeStream: true },
});

describe("createFsStorage()", () => {
  it("refuses an empty root with a ValidationError naming 'root'", () => {
    assert.throws(() => createFsStorage({ root: "" }), (error: unknown) => {
      assert.ok(error instanceof ValidationError);
      assert.equal(error.field, "root");
      return true;
    });
  });

  it("refuses a '..' key and writes nothing outside its root", async () => {
    const root = await tempRoot();
    try {
      const storage = createFsStorage({ root: join(root, "inner") });
      await assert.rejects(storage.write("../escape.txt", "x"), { code: "invalid_key" });
      assert.deepEqual(await readdir(root), []);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("locates a key as an absolute path under the root", async () => {
    const root = await tempRoot();
    try {
      const storage = createFsStorage({ root });
      assert.equal(storage.locate("runs/t/r/meta.json"), join(root, "runs", "t", "r", "meta.json"));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("leaves no temp files behind after atomic writes", async () => {
    const root = await tempRoot();
    try {
      const storage = createFsStorage({ root });
      await Promise.all(
        Array.from({ length: 20 }, (_, i) => storage.write("dir/state.json", `v${i}`)),
      );
      await storage.write("dir/meta.json", "m", { ifNoneMatch: "*" });
      await storage.write("dir/meta.json", "m2", { ifNoneMatch: "*" }).catch(() => {});
      assert.deepEqual((await readdir(join(root, "dir"))).sort(), ["meta.json", "state.json"]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
