// The storage conformance suite: one set of promises every RunStorage adapter keeps.
// Run it from an adapter's test file with testStorage({ name, create }).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StorageError } from "../core/errors.ts";
import type { RunStorage } from "../storage/types.ts";

/** A fresh storage and how to dispose of it. */
export interface StorageFixture {
  storage: RunStorage;
  cleanup(): Promise<void>;
}

/** How to run the suite on one adapter. */
export interface StorageSuiteOptions {
  name: string;
  create(): Promise<StorageFixture>;
  /** Capabilities the adapter must offer (checked, then tested). */
  capabilities?: {
    append?: boolean;
    replace?: boolean;
    writeStream?: boolean;
    deleteMany?: boolean;
    stat?: boolean;
    readRange?: boolean;
    listPrefixes?: boolean;
  };
  /** Keys to list in the paging test (S3 pages at 1,000). */
  listCount?: number;
}

const text = (bytes: Uint8Array | undefined) =>
  bytes === undefined ? undefined : new TextDecoder().decode(bytes);

async function keys(storage: RunStorage, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const key of storage.list(prefix)) out.push(key);
  return out.sort();
}

async function expectStorageError(promise: Promise<unknown>, code: string): Promise<StorageError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof StorageError, `expected StorageError, got ${error}`);
    assert.equal(error.code, code);
    return error;
  }
  assert.fail(`expected a StorageError with code '${code}'`);
}

/**
 * Registers the conformance tests for one adapter.
 *
 * @param options The adapter's name, factory and capabilities.
 */
export function testStorage(options: StorageSuiteOptions): void {
  const caps = options.capabilities ?? {};
  async function using(body: (storage: RunStorage) => Promise<void>): Promise<void> {
    const fixture = await options.create();
    try {
      await body(fixture.storage);
    } finally {
      await fixture.cleanup();
    }
  }

  describe(`storage conformance: ${options.name}`, () => {
    it("reads back what it wrote, bytes and text", () =>
      using(async (storage) => {
        await storage.write("a/b/c.txt", "hello");
        assert.equal(text(await storage.read("a/b/c.txt")), "hello");
        const bytes = new Uint8Array([0, 255, 1, 128, 10]);
        await storage.write("a/bin", bytes);
        assert.deepEqual(await storage.read("a/bin"), bytes);
        await storage.write("a/empty", "");
        assert.deepEqual(await storage.read("a/empty"), new Uint8Array(0));
      }));

    it("resolves undefined for a missing key", () =>
      using(async (storage) => {
        assert.equal(await storage.read("no/such/key"), undefined);
      }));

    it("replaces a key whole on a plain write", () =>
      using(async (storage) => {
        await storage.write("k", "a much longer first value");
        await storage.write("k", "short");
        assert.equal(text(await storage.read("k")), "short");
      }));

    it("refuses a create-only write on an existing key with precondition_failed, keeping the bytes", () =>
      using(async (storage) => {
        await storage.write("runs/t/r/meta.json", "first", { ifNoneMatch: "*" });
        await expectStorageError(
          storage.write("runs/t/r/meta.json", "second", { ifNoneMatch: "*" }),
          "precondition_failed",
        );
        assert.equal(text(await storage.read("runs/t/r/meta.json")), "first");
      }));

    it("lets exactly one of 10 concurrent create-only writes win", () =>
      using(async (storage) => {
        const results = await Promise.allSettled(
          Array.from({ length: 10 }, (_, i) =>
            storage.write("race/meta.json", `writer ${i}`, { ifNoneMatch: "*" })),
        );
        const winners = results.filter((r) =>
          r.status === "fulfilled"
        );
        assert.equal(winners.length, 1);
        const index = results.findIndex((r) => r.status === "fulfilled");
        assert.equal(text(await storage.read("race/meta.json")), `writer ${index}`);
        for (const r of results) {
          if (r.status === "rejected") {
            assert.equal((r.reason as StorageError).code, "precondition_failed");
          }
        }
      }));

    it("lists every key under a prefix, and only those", () =>
      using(async (storage) => {
        await storage.write("p/one", "1");
        await storage.write("p/deep/two", "2");
        await storage.write("p2/three", "3");
        await storage.write("q/four", "4");
        assert.deepEqual(await keys(storage, "p/"), ["p/deep/two", "p/one"]);
        assert.deepEqual(await keys(storage, "p"), ["p/deep/two", "p/one", "p2/three"]);
        assert.deepEqual(await keys(storage, "nothing/"), []);
        assert.deepEqual(await keys(storage, ""), ["p/deep/two", "p/one", "p2/three", "q/four"]);
      }));

    it(`lists ${options.listCount ?? 1200} keys completely`, () =>
      using(async (storage) => {
        const count = options.listCount ?? 1200;
        const expected: string[] = [];
        for (let start = 0; start < count; start += 50) {
          const batch = [];
          for (let i = start; i < Math.min(count, start + 50); i++) {
            const key = `many/${String(i).padStart(5, "0")}.json`;
            expected.push(key);
            batch.push(storage.write(key, String(i)));
          }
          await Promise.all(batch);
        }
        assert.deepEqual(await keys(storage, "many/"), expected.sort());
      }));

    it("lists the keys after startAfter when asked (a hint the core filters again)", () =>
      using(async (storage) => {
        const all = ["sa/0000000001", "sa/0000000002", "sa/0000000003", "sa/0000000010"];
        await Promise.all(all.map((key) => storage.write(key, key)));
        const listed: string[] = [];
        for await (const key of storage.list("sa/", { startAfter: "sa/0000000002" })) {
          listed.push(key);
        }
        // The hint may be ignored, but no key after it may be missed.
        const after = listed.filter((key) => key > "sa/0000000002").sort();
        assert.deepEqual(after, ["sa/0000000003", "sa/0000000010"]);
        assert.ok(listed.every((key) => all.includes(key)), "only keys under the prefix");
        const none: string[] = [];
        for await (const key of storage.list("sa/", { startAfter: "sa/0000000010" })) {
          if (key > "sa/0000000010") none.push(key);
        }
        assert.deepEqual(none, []);
      }));

    it("deletes a key, and deleting a missing key succeeds", () =>
      using(async (storage) => {
        await storage.write("d/x", "x");
        await storage.delete("d/x");
        assert.equal(await storage.read("d/x"), undefined);
        await storage.delete("d/x");
        assert.deepEqual(await keys(storage, "d/"), []);
      }));

    it("stores keys with spaces, '+', '%', '~', '=' and unicode", () =>
      using(async (storage) => {
        const odd = [
          "sp ace/a b.txt",
          "plus+sign/x+y",
          "pct%20/100%",
          "tilde~/é ü 日本",
          "eq=/a=b&c",
        ];
        for (const key of odd) await storage.write(key, key);
        for (const key of odd) assert.equal(text(await storage.read(key)), key);
        assert.deepEqual(await keys(storage, ""), [...odd].sort());
      }));

    it("refuses '..', absolute, backslash, empty-segment and control-character keys", () =>
      using(async (storage) => {
        for (
          const key of [
            "../escape",
            "a/../../b",
            "/abs",
            "a\\b",
            "a//b",
            "",
            "a/./b",
            "nul\u0000",
            "a/\n",
          ]
        ) {
          await expectStorageError(storage.write(key, "x"), "invalid_key");
          await expectStorageError(storage.read(key), "invalid_key");
        }
        assert.deepEqual(await keys(storage, ""), []);
      }));

    it("locates a key as a non-empty string that names the key", () =>
      using(async (storage) => {
        const location = storage.locate("runs/t/r/stdout.log");
        assert.equal(typeof location, "string");
        assert.ok(
          location.endsWith("runs/t/r/stdout.log") || location.endsWith("runs\\t\\r\\stdout.log"),
          location,
        );
      }));

    it("copes with a 6 MiB value byte-exact", () =>
      using(async (storage) => {
        const big = new Uint8Array(6 * 1024 * 1024);
        for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
        await storage.write("big/value.bin", big);
        assert.deepEqual(await storage.read("big/value.bin"), big);
      }));

    if (caps.append !== undefined) {
      it(`${caps.append ? "offers" : "does not offer"} native append`, () =>
        using((storage) => {
          assert.equal(typeof storage.append === "function", caps.append);
          return Promise.resolve();
        }));
    }
    if (caps.append) {
      it("appends in order, creating the key when missing", () =>
        using(async (storage) => {
          await storage.append!("log/a.log", new TextEncoder().encode("one\n"));
          await storage.append!("log/a.log", new TextEncoder().encode("two\n"));
          assert.equal(text(await storage.read("log/a.log")), "one\ntwo\n");
        }));
    }
    it("appendParts, where offered, appends every part in order (a view into a larger buffer too)", () =>
      using(async (storage) => {
        if (storage.appendParts === undefined) return;
        const backing = new TextEncoder().encode("xxthreexx");
        const big = new Uint8Array(3 * 65536 + 5).fill(0x62);
        await storage.appendParts("log/p.log", [new TextEncoder().encode("one\n")]);
        await storage.appendParts("log/p.log", [
          new TextEncoder().encode("two\n"),
          backing.subarray(2, 7),
          big,
          new Uint8Array(0),
          new TextEncoder().encode("\nend"),
        ]);
        const stored = await storage.read("log/p.log");
        assert.equal(stored?.byteLength, 4 + 4 + 5 + big.byteLength + 4);
        const decoded = text(stored);
        assert.equal(decoded, `one\ntwo\nthree${"b".repeat(big.byteLength)}\nend`);
      }));
    if (caps.replace) {
      it("replaces only while the etag still matches", () =>
        using(async (storage) => {
          assert.equal(typeof storage.replace, "function");
          const first = await storage.write("s/state.json", "v1");
          assert.ok(
            first && typeof first.etag === "string" && first.etag !== "",
            "write returns an etag",
          );
          const second = await storage.replace!("s/state.json", "v2", { ifMatch: first.etag! });
          assert.equal(text(await storage.read("s/state.json")), "v2");
          await expectStorageError(
            storage.replace!("s/state.json", "v3", { ifMatch: first.etag! }),
            "precondition_failed",
          );
          assert.equal(text(await storage.read("s/state.json")), "v2");
          await storage.replace!("s/state.json", "v4", { ifMatch: second.etag! });
          assert.equal(text(await storage.read("s/state.json")), "v4");
        }));
    }
    if (caps.replace) {
      it("lets exactly one of 10 concurrent replaces with the same etag win", () =>
        using(async (storage) => {
          const first = await storage.write("s/race.json", "v0");
          const results = await Promise.allSettled(
            Array.from(
              { length: 10 },
              (_, i) => storage.replace!("s/race.json", `v${i + 1}`, { ifMatch: first!.etag! }),
            ),
          );
          const won = results.flatMap((r, i) => r.status === "fulfilled" ? [i + 1] : []);
          assert.equal(won.length, 1, `exactly one winner, got ${won.length}`);
          for (const r of results) {
            if (r.status === "rejected") {
              assert.ok(r.reason instanceof StorageError, String(r.reason));
              assert.equal(r.reason.code, "precondition_failed");
            }
          }
          assert.equal(text(await storage.read("s/race.json")), `v${won[0]}`);
        }));

      it("refuses a replace of a missing key with precondition_failed", () =>
        using(async (storage) => {
          await expectStorageError(
            storage.replace!("s/none.json", "v1", { ifMatch: "anything" }),
            "precondition_failed",
          );
          assert.equal(await storage.read("s/none.json"), undefined);
        }));
    }
    it(`${caps.stat ? "offers" : "does not offer"} stat`, () =>
      using((storage) => {
        assert.equal(typeof storage.stat === "function", caps.stat === true);
        return Promise.resolve();
      }));
    if (caps.stat) {
      it("stats a key: size, modification time, and a version tag replace accepts", () =>
        using(async (storage) => {
          assert.equal(await storage.stat!("s/missing.json"), undefined);
          const before = Date.now();
          const written = await storage.write("s/st.json", "hello stat");
          const stat = await storage.stat!("s/st.json");
          assert.ok(stat !== undefined);
          assert.equal(stat.size, 10);
          assert.ok(stat.modifiedAt instanceof Date, "modifiedAt is a Date");
          // Server clocks may differ a little from ours (S3 has 1 s resolution).
          assert.ok(Math.abs(stat.modifiedAt.getTime() - before) < 60_000, "modifiedAt is now");
          if (written && written.etag !== undefined) assert.equal(stat.etag, written.etag);
          if (caps.replace) {
            // A process that did not write the key (a reaper) replaces it through stat's tag.
            assert.ok(typeof stat.etag === "string" && stat.etag !== "");
            const replaced = await storage.replace!("s/st.json", "reaped", { ifMatch: stat.etag });
            const after = await storage.stat!("s/st.json");
            assert.equal(after?.etag, replaced.etag);
            assert.notEqual(after?.etag, stat.etag);
            await expectStorageError(
              storage.replace!("s/st.json", "late writer", { ifMatch: stat.etag }),
              "precondition_failed",
            );
            assert.equal(text(await storage.read("s/st.json")), "reaped");
          }
        }));
    }
    it(`${caps.readRange ? "offers" : "does not offer"} readRange`, () =>
      using((storage) => {
        assert.equal(typeof storage.readRange === "function", caps.readRange === true);
        return Promise.resolve();
      }));
    if (caps.readRange) {
      it("reads a byte range: from an offset, with a length, past the end, of a missing key", () =>
        using(async (storage) => {
          await storage.write("r/digits", "0123456789");
          const range = async (offset: number, length?: number) =>
            text(await storage.readRange!("r/digits", { offset, length }));
          assert.equal(await range(0, 3), "012");
          assert.equal(await range(3), "3456789");
          assert.equal(await range(8, 10), "89", "a range past the end gives what exists");
          assert.equal(await range(10), "");
          assert.equal(await range(25, 4), "");
          assert.equal(await range(4, 0), "");
          assert.equal(await storage.readRange!("r/missing", { offset: 0 }), undefined);
          assert.equal(await storage.readRange!("r/missing", { offset: 0, length: 0 }), undefined);
          await storage.write("r/empty", "");
          assert.deepEqual(await storage.readRange!("r/empty", { offset: 0 }), new Uint8Array(0));
          await assert.rejects(storage.readRange!("r/digits", { offset: -1 }), TypeError);
          await assert.rejects(
            storage.readRange!("r/digits", { offset: 0, length: 1.5 }),
            TypeError,
          );
        }));
      it("reads a range of a 6 MiB value byte-exact", () =>
        using(async (storage) => {
          const big = new Uint8Array(6 * 1024 * 1024);
          for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 11)) & 0xff;
          await storage.write("r/big", big);
          const middle = await storage.readRange!("r/big", { offset: 3_000_001, length: 70_000 });
          assert.deepEqual(middle, big.subarray(3_000_001, 3_070_001));
          const tail = await storage.readRange!("r/big", { offset: big.length - 65_536 });
          assert.deepEqual(tail, big.subarray(big.length - 65_536));
        }));
    }
    it(`${caps.listPrefixes ? "offers" : "does not offer"} listPrefixes`, () =>
      using((storage) => {
        assert.equal(typeof storage.listPrefixes === "function", caps.listPrefixes === true);
        return Promise.resolve();
      }));
    if (caps.listPrefixes) {
      it("lists the folders right under a prefix, each once, in order, after startAfter", () =>
        using(async (storage) => {
          const written = [
            "lp/t1/r2/meta.json",
            "lp/t1/r2/stdout.log.segments/0000000001",
            "lp/t1/r1/meta.json",
            "lp/t1/r1/artifacts/a/b.txt",
            "lp/t1/file.txt",
            "lp/t2/r9/state.json",
            "lpx/t3/r1/meta.json",
          ];
          await Promise.all(written.map((key) => storage.write(key, "x")));
          const folders = async (prefix: string, startAfter?: string) => {
            const out: string[] = [];
            for await (const f of storage.listPrefixes!(prefix, { startAfter })) out.push(f);
            return out;
          };
          assert.deepEqual(await folders("lp/"), ["lp/t1/", "lp/t2/"]);
          assert.deepEqual(await folders("lp/t1/"), ["lp/t1/r1/", "lp/t1/r2/"]);
          assert.deepEqual(await folders("lp/t1/", "lp/t1/r1/"), ["lp/t1/r2/"]);
          assert.deepEqual(await folders("lp/none/"), []);
          assert.ok((await folders("")).includes("lpx/"));
          // A folder whose last key is deleted is gone, as on object storage.
          await storage.delete("lp/t2/r9/state.json");
          assert.deepEqual(await folders("lp/"), ["lp/t1/"]);
        }));
      it("pages folder listings past 1,000 folders", () =>
        using(async (storage) => {
          const count = options.listCount ?? 1200;
          const expected: string[] = [];
          for (let start = 0; start < count; start += 50) {
            const batch = [];
            for (let i = start; i < Math.min(count, start + 50); i++) {
              const folder = `pf/${String(i).padStart(5, "0")}/`;
              expected.push(folder);
              batch.push(
                storage.write(`${folder}meta.json`, "m"),
                storage.write(`${folder}s`, "s"),
              );
            }
            await Promise.all(batch);
          }
          const out: string[] = [];
          for await (const f of storage.listPrefixes!("pf/")) out.push(f);
          assert.deepEqual(out, expected);
        }));
    }
    if (caps.writeStream) {
      it("writes a streamed value whole, byte-exact", () =>
        using(async (storage) => {
          assert.equal(typeof storage.writeStream, "function");
          const parts = Array.from({ length: 5 }, (_, i) =>
            new Uint8Array(3 * 1024 * 1024 + i).fill(i + 1));
          async function* source() {
            for (const part of parts) {
              yield part;
            }
          }
          await storage.writeStream!("stream/out.bin", source());
          const read = await storage.read("stream/out.bin");
          const total = parts.reduce((n, p) =>
            n + p.length, 0);
          assert.equal(read?.length, total);
          let offset = 0;
          for (const part of parts) {
            assert.deepEqual(read!.subarray(offset, offset + part.length), part);
            offset += part.length;
          }
          async function* small() {
            yield new TextEncoder().encode("tiny");
          }
          await storage.writeStream!("stream/small", small());
          assert.equal(text(await storage.read("stream/small")), "tiny");
        }));
    }
    if (caps.deleteMany) {
      it("deletes many keys at once", () =>
        using(async (storage) => {
          const many = Array.from({ length: 30 }, (_, i) => `dm/${i}`);
          await Promise.all(many.map((key) => storage.write(key, "x")));
          await storage.write("dm-keep", "x");
          await storage.deleteMany!([...many, "dm/missing"]);
          assert.deepEqual(await keys(storage, "dm"), ["dm-keep"]);
        }));
    }
  });
}
