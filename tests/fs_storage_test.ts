// Runs the storage conformance suite on the filesystem adapter, plus what is special to disk.

import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
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
  capabilities: {
    append: true,
    writeStream: true,
    replace: true,
    stat: true,
    readRange: true,
    listPrefixes: true,
  },
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

  it("replace() breaks a lock left by a dead holder instead of waiting for it", async () => {
    const root = await tempRoot();
    try {
      const storage = createFsStorage({ root });
      const first = await storage.write("dir/state.json", "v1");
      // A writer killed mid-replace leaves its lock file; pid 2^22+1 is beyond Linux's pid_max.
      await writeFile(
        join(root, "dir", ".tmp-state.json.lock"),
        JSON.stringify({ host: hostname(), pid: 4_194_305 }),
      );
      const started = Date.now();
      await storage.replace!("dir/state.json", "v2", { ifMatch: first!.etag! });
      assert.ok(Date.now() - started < 2_000, "did not wait for the dead holder");
      assert.equal(new TextDecoder().decode(await storage.read("dir/state.json")), "v2");
      assert.deepEqual((await readdir(join(root, "dir"))).sort(), ["state.json"]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("replace() waits for a live holder's lock, then compares against what it wrote", async () => {
    const root = await tempRoot();
    try {
      const storage = createFsStorage({ root });
      const first = await storage.write("dir/state.json", "v1");
      const lockPath = join(root, "dir", ".tmp-state.json.lock");
      // Held by this (live) process: the replace must wait, not break it.
      await writeFile(lockPath, JSON.stringify({ host: hostname(), pid: process.pid }));
      const pending = storage.replace!("dir/state.json", "v2", { ifMatch: first!.etag! });
      await new Promise((resolve) => setTimeout(resolve, 150));
      assert.equal(new TextDecoder().decode(await storage.read("dir/state.json")), "v1");
      await rm(lockPath);
      await pending;
      assert.equal(new TextDecoder().decode(await storage.read("dir/state.json")), "v2");
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
