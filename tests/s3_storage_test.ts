// Tests of createS3Storage(): unit tests on a fake fetch, integration tests on Ceph RGW.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { inspect } from "node:util";
import { createS3Storage } from "../storage/s3.ts";
import type { S3StorageOptions } from "../storage/s3.ts";
import type { RunStorage } from "../storage/types.ts";
import { StorageError, ValidationError } from "../core/errors.ts";
import {
  createBucket,
  deleteBucketRecursive,
  listOpenUploads,
  uniqueBucketName,
} from "./s3/bucket.ts";
import type { S3TestEnv } from "./s3/bucket.ts";
import { requireRgw, rgwEnv } from "./s3/rgw_env.ts";
import { testStorage } from "./storage_suite.ts";

const SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
const ACCESS = "AKIDEXAMPLE0123456789";
const TOKEN = "FwoGZXIvYXdzEXAMPLE-session-token-value";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string): Uint8Array => encoder.encode(text);
const md5Hex = (data: Uint8Array): string => createHash("md5").update(data).digest("hex");

// ------------------------------------------------------------------ fake S3

interface Seen {
  method: string;
  url: URL;
  /** The path as sent, still percent-encoded. */
  rawPath: string;
  headers: Headers;
  body: Uint8Array;
}

type Interceptor = (
  seen: Seen,
  index: number,
) => Response | undefined | Promise<Response | undefined>;

/**
 * A small in-memory S3 (path style) answering the calls the adapter makes: enough to check
 * the requests the adapter sends and how it reads the answers.
 */
function createFakeS3(options: { pageSize?: number; bucket?: string } = {}) {
  const bucket = options.bucket ?? "bkt";
  const objects = new Map<string, { data: Uint8Array; etag: string; meta?: [string, string][] }>();
  const uploads = new Map<string, { key: string; parts: Map<number, Uint8Array> }>();
  const seen: Seen[] = [];
  let interceptor: Interceptor | undefined;
  let uploadCounter = 0;

  const xmlEscape = (text: string) =>
    text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  const error = (status: number, code: string, message = code) =>
    new Response(
      `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`,
      { status, headers: { "content-type": "application/xml" } },
    );
  const xml = (body: string, status = 200) =>
    new Response(`<?xml version="1.0" encoding="UTF-8"?>${body}`, {
      status,
      headers: { "content-type": "application/xml" },
    });

  async function handle(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    const request = input instanceof Request ? input : new Request(input, init);
    const url = new URL(request.url);
    const rawPath = request.url.slice(url.origin.length).split("?")[0];
    const entry: Seen = {
      method: request.method,
      url,
      rawPath,
      headers: request.headers,
      body: new Uint8Array(await request.arrayBuffer()),
    };
    seen.push(entry);
    const intercepted = await interceptor?.(entry, seen.length - 1);
    if (intercepted !== undefined) return intercepted;

    const segments = rawPath.split("/").slice(1).map(decodeURIComponent);
    if (segments[0] !== bucket) return error(404, "NoSuchBucket");
    const key = segments.slice(1).join("/");
    const q = url.searchParams;

    if (key === "") {
      if (request.method === "GET" && q.get("list-type") === "2") {
        const prefix = q.get("prefix") ?? "";
        const after = q.get("continuation-token") !== null
          ? atob(q.get("continuation-token")!)
          : q.get("start-after") ?? "";
        const delimiter = q.get("delimiter");
        const folded = [...objects.keys()].filter((k) => k.startsWith(prefix)).map((k) => {
          const cut = delimiter === null ? -1 : k.indexOf(delimiter, prefix.length);
          return cut < 0 ? k : k.slice(0, cut + 1);
        });
        const all = [...new Set(folded)].filter((k) => k > after).sort();
        const size = Math.min(Number(q.get("max-keys") ?? 1000), options.pageSize ?? 1000);
        const page = all.slice(0, size);
        const truncated = all.length > size;
        const encode = q.get("encoding-type") === "url";
        const shown = (k: string) =>
          encode ? encodeURIComponent(k).replace(/%20/g, "+") : xmlEscape(k);
        return xml(
          `<ListBucketResult><Name>${bucket}</Name>${
            encode ? "<EncodingType>url</EncodingType>" : ""
          }` +
            page.map((k) =>
              delimiter !== null && k.endsWith(delimiter)
                ? `<CommonPrefixes><Prefix>${shown(k)}</Prefix></CommonPrefixes>`
                : `<Contents><Key>${shown(k)}</Key><Size>1</Size></Contents>`
            ).join("") +
            `<IsTruncated>${truncated}</IsTruncated>` +
            (truncated
              ? `<NextContinuationToken>${btoa(page.at(-1)!)}</NextContinuationToken>`
              : "") +
            `</ListBucketResult>`,
        );
      }
      if (request.method === "POST" && q.has("delete")) {
        const text = decoder.decode(entry.body);
        const keys = [...text.matchAll(/<Key>([\s\S]*?)<\/Key>/g)].map((m) =>
          m[1].replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"')
            .replace(/&apos;/g, "'").replace(/&amp;/g, "&")
        );
        for (const k of keys) objects.delete(k);
        return xml(`<DeleteResult></DeleteResult>`);
      }
      return error(400, "InvalidRequest");
    }

    if (request.method === "GET") {
      const object = objects.get(key);
      if (object === undefined) return error(404, "NoSuchKey");
      const range = /^bytes=(\d+)-(\d*)$/.exec(request.headers.get("range") ?? "");
      if (range !== null) {
        const start = Number(range[1]);
        const size = object.data.byteLength;
        if (start >= size) return error(416, "InvalidRange");
        const end = range[2] === "" ? size : Math.min(size, Number(range[2]) + 1);
        return new Response(object.data.slice(start, end) as BodyInit, {
          status: 206,
          headers: { "content-range": `bytes ${start}-${end - 1}/${size}` },
        });
      }
      return new Response(object.data as BodyInit, {
        headers: [["etag", `"${object.etag}"`], ...(object.meta ?? [])],
      });
    }
    if (request.method === "HEAD") {
      const object = objects.get(key);
      if (object === undefined) return new Response(null, { status: 404 });
      return new Response(null, {
        headers: [
          ["etag", `"${object.etag}"`],
          ["content-length", String(object.data.byteLength)],
          ["last-modified", new Date().toUTCString()],
        ],
      });
    }
    if (request.method === "DELETE") {
      if (q.has("uploadId")) uploads.delete(q.get("uploadId")!);
      else objects.delete(key);
      return new Response(null, { status: 204 });
    }
    if (request.method === "POST" && q.has("uploads")) {
      const id = `upload-${++uploadCounter}`;
      uploads.set(id, { key, parts: new Map() });
      return xml(
        `<InitiateMultipartUploadResult><UploadId>${id}</UploadId></InitiateMultipartUploadResult>`,
      );
    }
    if (request.method === "POST" && q.has("uploadId")) {
      const upload = uploads.get(q.get("uploadId")!);
      if (upload === undefined) return error(404, "NoSuchUpload");
      const numbers = [...decoder.decode(entry.body).matchAll(/<PartNumber>(\d+)<\/PartNumber>/g)]
        .map((m) => Number(m[1]));
      const chunks = numbers.map((n) => upload.parts.get(n)!);
      const data = new Uint8Array(chunks.reduce((sum, c) => sum + c.byteLength, 0));
      let offset = 0;
      for (const chunk of chunks) {
        data.set(chunk, offset);
        offset += chunk.byteLength;
      }
      const etag = `${md5Hex(data)}-${numbers.length}`;
      objects.set(key, { data, etag });
      uploads.delete(q.get("uploadId")!);
      return xml(
        `<CompleteMultipartUploadResult><Key>${
          xmlEscape(key)
        }</Key><ETag>&quot;${etag}&quot;</ETag></CompleteMultipartUploadResult>`,
      );
    }
    if (request.method === "PUT" && q.has("uploadId")) {
      const upload = uploads.get(q.get("uploadId")!);
      if (upload === undefined) return error(404, "NoSuchUpload");
      upload.parts.set(Number(q.get("partNumber")), entry.body);
      return new Response(null, { headers: { etag: `"${md5Hex(entry.body)}"` } });
    }
    if (request.method === "PUT") {
      const existing = objects.get(key);
      if (request.headers.get("if-none-match") === "*" && existing) {
        return error(
          412,
          "PreconditionFailed",
          "At least one of the pre-conditions you specified did not hold",
        );
      }
      const ifMatch = request.headers.get("if-match");
      if (ifMatch !== null && (existing === undefined || existing.etag !== ifMatch)) {
        return error(412, "PreconditionFailed");
      }
      const etag = md5Hex(entry.body);
      const meta = [...request.headers].filter(([name]) => name.startsWith("x-amz-meta-"));
      objects.set(key, { data: entry.body, etag, meta });
      return new Response(null, { headers: { etag: `"${etag}"` } });
    }
    return error(405, "MethodNotAllowed");
  }

  return {
    bucket,
    objects,
    uploads,
    seen,
    fetch: handle as typeof fetch,
    intercept(fn: Interceptor | undefined) {
      interceptor = fn;
    },
  };
}

function fakeStorage(
  fake: ReturnType<typeof createFakeS3>,
  extra: Partial<S3StorageOptions> = {},
): RunStorage {
  return createS3Storage({
    endpoint: "http://s3.test:9000",
    bucket: fake.bucket,
    accessKeyId: ACCESS,
    secretAccessKey: SECRET,
    sessionToken: TOKEN,
    retries: { baseDelayMs: 1, maxDelayMs: 5 },
    fetch: fake.fetch,
    ...extra,
  });
}

async function rejection(promise: Promise<unknown>): Promise<StorageError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof StorageError, `expected a StorageError, got ${error}`);
    return error;
  }
  assert.fail("expected a rejection");
}

async function collect(iterable: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

function assertNoCredential(text: string, where: string): void {
  for (const secret of [SECRET, TOKEN]) {
    assert.ok(!text.includes(secret), `a credential leaked into ${where}`);
  }
}

// ------------------------------------------------------------------ unit tests

describe("createS3Storage() options", () => {
  it("createS3Storage() names the offending field in a ValidationError", () => {
    const base = {
      endpoint: "http://h:1",
      bucket: "b1",
      accessKeyId: ACCESS,
      secretAccessKey: SECRET,
    };
    const cases: [Record<string, unknown>, string][] = [
      [{ ...base, bucket: undefined }, "bucket"],
      [{ ...base, bucket: "has/slash" }, "bucket"],
      [{ ...base, endpoint: "ftp://h" }, "endpoint"],
      [{ ...base, endpoint: "not a url" }, "endpoint"],
      [{ ...base, secretAccessKey: "" }, "secretAccessKey"],
      [{ ...base, retries: { attempts: -1 } }, "retries.attempts"],
      [{ ...base, partSize: 1024 }, "partSize"],
      [{ ...base, prefix: "a/../b" }, "prefix"],
      [{ ...base, pathStyle: false, bucket: "Upper_Case" }, "bucket"],
    ];
    for (const [options, field] of cases) {
      assert.throws(
        () => createS3Storage(options as unknown as S3StorageOptions),
        (error: unknown) => error instanceof ValidationError && error.field === field,
        `expected a ValidationError on '${field}'`,
      );
    }
  });

  it("createS3Storage() never echoes a secret in a validation error", () => {
    try {
      createS3Storage({
        endpoint: `http://h:1/?key=${SECRET}`,
        bucket: "b1",
        accessKeyId: ACCESS,
        secretAccessKey: 42 as unknown as string,
        sessionToken: [TOKEN] as unknown as string,
      });
      assert.fail("expected a ValidationError");
    } catch (error) {
      assert.ok(error instanceof ValidationError);
      assertNoCredential(`${error.message}\n${error.stack}\n${JSON.stringify(error)}`, "the error");
      assert.ok(!error.message.includes("42"));
    }
  });

  it("createS3Storage() keeps credentials off the storage object", () => {
    const storage = fakeStorage(createFakeS3());
    const views = [
      JSON.stringify(storage),
      inspect(storage, { depth: 10, showHidden: true }),
      Object.keys(storage).join(","),
      String(storage),
    ];
    for (const view of views) {
      assertNoCredential(view, "the storage object");
      assert.ok(!view.includes(ACCESS), "the access key id leaked onto the storage object");
    }
    assert.equal(storage.name, "s3");
    assert.equal(typeof storage.replace, "function");
    assert.equal(typeof storage.writeStream, "function");
    assert.equal(typeof storage.deleteMany, "function");
    assert.equal(storage.append, undefined, "S3 has no native append");
  });
});

describe("createS3Storage() on a fake fetch", () => {
  it("createS3Storage() signs requests with SigV4 and path-style URLs", async () => {
    const fake = createFakeS3();
    const storage = fakeStorage(fake);
    await storage.write("runs/a/meta.json", "{}");
    const put = fake.seen[0];
    assert.equal(put.method, "PUT");
    assert.equal(put.url.host, "s3.test:9000");
    assert.equal(put.rawPath, "/bkt/runs/a/meta.json");
    assert.match(
      put.headers.get("authorization") ?? "",
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE0123456789\/\d{8}\/us-east-1\/s3\/aws4_request/,
    );
    assert.equal(put.headers.get("x-amz-security-token"), TOKEN);
    assert.equal(put.headers.get("content-type"), "application/json");
    const sha = createHash("sha256").update(bytes("{}")).digest("hex");
    assert.equal(put.headers.get("x-amz-content-sha256"), sha, "the payload is signed");
  });

  it("createS3Storage() uses virtual-hosted URLs when pathStyle is false", async () => {
    const seen: string[] = [];
    const storage = createS3Storage({
      endpoint: "https://s3.eu-west-1.example.com",
      bucket: "my-bucket",
      accessKeyId: ACCESS,
      secretAccessKey: SECRET,
      pathStyle: false,
      prefix: "/team/a/",
      fetch: (input) => {
        seen.push((input as Request).url);
        return Promise.resolve(new Response(null, { headers: { etag: '"x"' } }));
      },
    });
    await storage.write("k.txt", "x");
    assert.deepEqual(seen, ["https://my-bucket.s3.eu-west-1.example.com/team/a/k.txt"]);
    assert.equal(storage.locate("k.txt"), "s3://my-bucket/team/a/k.txt");
  });

  it("createS3Storage() round-trips bytes and returns a bare ETag", async () => {
    const fake = createFakeS3();
    const storage = fakeStorage(fake, { prefix: "p" });
    const data = new Uint8Array([0, 1, 2, 255, 254]);
    const result = await storage.write("a/b.bin", data);
    assert.deepEqual(result, { etag: md5Hex(data) });
    assert.deepEqual(await storage.read("a/b.bin"), data);
    assert.ok(fake.objects.has("p/a/b.bin"), "the prefix is applied inside the bucket");
    assert.equal(await storage.read("a/missing"), undefined);
    await storage.delete("a/b.bin");
    await storage.delete("a/b.bin");
    assert.equal(await storage.read("a/b.bin"), undefined);
    assert.equal(storage.locate("a/b.bin"), "s3://bkt/p/a/b.bin");
  });

  it("createS3Storage() encodes odd keys once per segment", async () => {
    const fake = createFakeS3();
    const storage = fakeStorage(fake);
    const key = "dir x/a b+c%d~e!'()*é&=?#.txt";
    await storage.write(key, "odd");
    assert.equal(
      fake.seen[0].rawPath,
      "/bkt/dir%20x/a%20b%2Bc%25d~e%21%27%28%29%2A%C3%A9%26%3D%3F%23.txt",
    );
    assert.ok(fake.objects.has(key));
    assert.equal(decoder.decode((await storage.read(key))!), "odd");
    assert.deepEqual(await collect(storage.list("dir x/")), [key]);
  });

  it("createS3Storage() refuses bad keys before any request", async () => {
    const fake = createFakeS3();
    const storage = fakeStorage(fake);
    for (const key of ["../x", "/abs", "a//b", "a\\b", "a\u0000b", ""]) {
      const error = await rejection(storage.write(key, "x"));
      assert.equal(error.code, "invalid_key");
    }
    assert.equal(fake.seen.length, 0);
  });

  it("createS3Storage() decodes url-encoded and XML-escaped listing keys", async () => {
    const keys = ["a b", "a+b", "a%b", "a&b<c>", "ü/~x"];
    let encoded = true;
    const storage = fakeStorage(createFakeS3(), {
      fetch: (input) => {
        const url = new URL((input as Request).url);
        assert.equal(url.searchParams.get("encoding-type"), "url");
        const body = encoded
          ? `<ListBucketResult><EncodingType>url</EncodingType>${
            keys.map((k) =>
              `<Contents><Key>${encodeURIComponent(k).replace(/%20/g, "+")}</Key></Contents>`
            ).join("")
          }<IsTruncated>false</IsTruncated></ListBucketResult>`
          : `<ListBucketResult>${
            keys.map((k) =>
              `<Contents><Key>${
                k.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
              }</Key></Contents>`
            ).join("")
          }<IsTruncated>false</IsTruncated></ListBucketResult>`;
        return Promise.resolve(new Response(body));
      },
    });
    assert.deepEqual(await collect(storage.list("")), keys);
    encoded = false; // a server that ignores encoding-type=url
    assert.deepEqual(await collect(storage.list("")), keys);
  });

  it("createS3Storage() follows continuation tokens past 1,000 keys and strips its prefix", async () => {
    const fake = createFakeS3({ pageSize: 1000 });
    for (let i = 0; i < 2345; i++) {
      fake.objects.set(`root/runs/k${String(i).padStart(5, "0")}`, { data: bytes("x"), etag: "e" });
    }
    fake.objects.set("root/other/x", { data: bytes("x"), etag: "e" });
    fake.objects.set("elsewhere/runs/k", { data: bytes("x"), etag: "e" });
    const storage = fakeStorage(fake, { prefix: "root" });
    const listed = await collect(storage.list("runs/"));
    assert.equal(listed.length, 2345);
    assert.equal(new Set(listed).size, 2345);
    assert.ok(listed.every((k) => k.startsWith("runs/k")));
    assert.equal(fake.seen.length, 3, "three pages");
    assert.equal(fake.seen[0].url.searchParams.get("prefix"), "root/runs/");
    assert.equal(fake.seen[0].url.searchParams.get("continuation-token"), null);
    assert.equal(
      fake.seen[1].url.searchParams.get("continuation-token"),
      btoa("root/runs/k00999"),
      "the token is sent back verbatim",
    );
    assert.equal((await collect(storage.list(""))).length, 2346);
  });

  it("createS3Storage() parses S3 XML errors into StorageError", async () => {
    const fake = createFakeS3({ bucket: "other" });
    const storage = fakeStorage(fake, { bucket: "bkt" });
    const error = await rejection(storage.read("runs/x.json"));
    assert.equal(error.code, "storage_failed");
    assert.equal(error.status, 404);
    assert.equal(error.backendCode, "NoSuchBucket");
    assert.equal(error.adapter, "s3");
    assert.equal(error.operation, "read");
    assert.equal(error.key, "runs/x.json");
    assert.match(error.message, /404 NoSuchBucket/);
    assert.equal(fake.seen.length, 1, "a 404 is not retried");
  });

  it("createS3Storage() maps 403 to access_denied without retrying", async () => {
    const fake = createFakeS3();
    fake.intercept(() =>
      new Response(
        "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message><AWSAccessKeyId>" +
          ACCESS + "</AWSAccessKeyId></Error>",
        { status: 403 },
      )
    );
    const error = await rejection(fakeStorage(fake).write("k", "x"));
    assert.equal(error.code, "access_denied");
    assert.equal(error.status, 403);
    assert.equal(error.backendCode, "SignatureDoesNotMatch");
    assert.equal(fake.seen.length, 1);
  });

  it("createS3Storage() does not retry a 400", async () => {
    const fake = createFakeS3();
    fake.intercept(() =>
      new Response("<Error><Code>InvalidArgument</Code></Error>", { status: 400 })
    );
    const error = await rejection(fakeStorage(fake).read("k"));
    assert.equal(error.code, "storage_failed");
    assert.equal(error.backendCode, "InvalidArgument");
    assert.equal(fake.seen.length, 1);
  });

  it("createS3Storage() retries 503 SlowDown, re-sending the whole body", async () => {
    const fake = createFakeS3();
    fake.intercept((_, index) =>
      index < 2
        ? new Response(
          "<Error><Code>SlowDown</Code><Message>Reduce your request rate</Message></Error>",
          {
            status: 503,
          },
        )
        : undefined
    );
    const data = crypto.getRandomValues(new Uint8Array(4096));
    const result = await fakeStorage(fake).write("k.bin", data);
    assert.equal(fake.seen.length, 3);
    for (const attempt of fake.seen) assert.deepEqual(attempt.body, data);
    assert.equal(result && result.etag, md5Hex(data));
  });

  it("createS3Storage() retries network errors and 429, 500, 502, 504", async () => {
    const fake = createFakeS3();
    const plan = [429, 500, 502, 504];
    fake.intercept((_, index) => {
      if (index === 0) throw new TypeError("fetch failed");
      const status = plan[index - 1];
      return status === undefined ? undefined : new Response("", { status });
    });
    const storage = fakeStorage(fake, { retries: { attempts: 5, baseDelayMs: 1, maxDelayMs: 2 } });
    await storage.write("k", "v");
    assert.equal(fake.seen.length, 6);
    assert.equal(decoder.decode((await storage.read("k"))!), "v");
  });

  it("createS3Storage() gives up with code unavailable after the retry count", async () => {
    const fake = createFakeS3();
    fake.intercept(() =>
      new Response("<Error><Code>ServiceUnavailable</Code></Error>", { status: 503 })
    );
    const storage = fakeStorage(fake, { retries: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 } });
    const error = await rejection(storage.read("k"));
    assert.equal(error.code, "unavailable");
    assert.equal(error.status, 503);
    assert.equal(error.backendCode, "ServiceUnavailable");
    assert.equal(fake.seen.length, 4, "one attempt and three retries");
    assert.match(error.message, /after 4 attempts/);
  });

  it("createS3Storage() stops retrying when the time budget is spent", async () => {
    const fake = createFakeS3();
    fake.intercept(() => new Response("", { status: 500 }));
    const storage = fakeStorage(fake, {
      retries: { attempts: 20, baseDelayMs: 40, maxDelayMs: 40, budgetMs: 100 },
    });
    const started = Date.now();
    const error = await rejection(storage.read("k"));
    assert.equal(error.code, "unavailable");
    assert.ok(Date.now() - started < 1000);
    assert.ok(fake.seen.length < 20);
  });

  it("createS3Storage() times out a hung request and retries it", async () => {
    const fake = createFakeS3();
    fake.intercept((_, index) => index === 0 ? new Promise<Response>(() => {}) : undefined);
    // The fake reads the body before the interceptor, so hang via the signal instead.
    let calls = 0;
    const storage = fakeStorage(fake, {
      timeoutMs: 50,
      fetch: (input) => {
        calls++;
        const request = input as Request;
        if (calls === 1) {
          return new Promise((_, reject) =>
            request.signal.addEventListener("abort", () => reject(request.signal.reason))
          );
        }
        return fake.fetch(request);
      },
    });
    fake.intercept(undefined);
    const started = Date.now();
    await storage.write("k", "v");
    assert.equal(calls, 2);
    assert.ok(Date.now() - started < 2000);

    const hung = fakeStorage(fake, {
      timeoutMs: 30,
      retries: { attempts: 1, baseDelayMs: 1 },
      fetch: (input) =>
        new Promise((_, reject) => {
          const request = input as Request;
          request.signal.addEventListener("abort", () => reject(request.signal.reason));
        }),
    });
    const error = await rejection(hung.read("k"));
    assert.equal(error.code, "unavailable");
    assert.match(error.message, /timed out/);
  });

  it("createS3Storage() never puts a credential in an error message, stack or JSON", async () => {
    const fake = createFakeS3();
    // A proxy or server that echoes credentials back must not get them into our errors.
    fake.intercept((_, index) => {
      if (index === 0) throw new TypeError(`connect failed for ${SECRET} / ${TOKEN}`);
      return new Response(
        `<Error><Code>AccessDenied</Code><Message>bad key ${SECRET}</Message></Error>`,
        {
          status: 403,
        },
      );
    });
    const storage = fakeStorage(fake, { retries: { attempts: 0 } });
    const errors = [await rejection(storage.read("k")), await rejection(storage.write("k", "v"))];
    for (const error of errors) {
      let text = `${error.message}\n${error.stack}\n${JSON.stringify(error)}\n${
        inspect(error, { depth: 10 })
      }`;
      for (
        let cause = error.cause as Error | undefined;
        cause;
        cause = cause.cause as Error | undefined
      ) {
        text += `\n${cause.message}\n${cause.stack}`;
      }
      assertNoCredential(text, "an error");
    }
    assert.equal(errors[0].code, "unavailable");
    assert.equal(errors[1].code, "access_denied");
  });

  it("createS3Storage() sends If-None-Match: * and maps 412 and 409 to precondition_failed", async () => {
    const fake = createFakeS3();
    const storage = fakeStorage(fake);
    await storage.write("meta.json", "one", { ifNoneMatch: "*" });
    assert.equal(fake.seen[0].headers.get("if-none-match"), "*");
    const error = await rejection(storage.write("meta.json", "two", { ifNoneMatch: "*" }));
    assert.equal(error.code, "precondition_failed");
    assert.equal(error.status, 412);
    assert.equal(decoder.decode((await storage.read("meta.json"))!), "one");

    fake.intercept(() =>
      new Response("<Error><Code>ConditionalRequestConflict</Code></Error>", { status: 409 })
    );
    const conflict = await rejection(storage.write("other.json", "x", { ifNoneMatch: "*" }));
    assert.equal(conflict.code, "precondition_failed");
    assert.equal(conflict.backendCode, "ConditionalRequestConflict");
  });

  it("createS3Storage() treats a 412 after an ambiguous retry as success when its bytes landed", async () => {
    const fake = createFakeS3();
    const storage = fakeStorage(fake);
    // The first attempt is applied but its answer is lost (500), the retry sees 412.
    fake.intercept(async (seen, index) => {
      if (index === 0) {
        await fake.fetch(
          new Request(seen.url, {
            method: "PUT",
            body: seen.body as BodyInit,
            headers: seen.headers,
          }),
        );
        fake.seen.pop();
        return new Response("", { status: 500 });
      }
      return undefined;
    });
    const result = await storage.write("meta.json", "mine", { ifNoneMatch: "*" });
    assert.deepEqual(result, { etag: md5Hex(bytes("mine")) });

    // Same, but another writer's bytes are there: still a conflict.
    fake.seen.length = 0;
    fake.intercept((_, index) => index === 0 ? new Response("", { status: 500 }) : undefined);
    const error = await rejection(storage.write("meta.json", "theirs", { ifNoneMatch: "*" }));
    assert.equal(error.code, "precondition_failed");

    // Same bytes from another writer (a duplicate run): its write id differs, still a conflict.
    fake.seen.length = 0;
    fake.intercept((_, index) => index === 0 ? new Response("", { status: 500 }) : undefined);
    const duplicate = await rejection(storage.write("meta.json", "mine", { ifNoneMatch: "*" }));
    assert.equal(duplicate.code, "precondition_failed");
  });

  it("createS3Storage() replace() sends a bare If-Match and fences on it", async () => {
    const fake = createFakeS3();
    const storage = fakeStorage(fake);
    const first = await storage.write("state.json", "v1");
    assert.ok(first && first.etag && !first.etag.includes('"'));
    const second = await storage.replace!("state.json", "v2", { ifMatch: first.etag! });
    assert.equal(fake.seen.at(-1)!.headers.get("if-match"), first.etag);
    assert.notEqual(second.etag, first.etag);
    const stale = await rejection(storage.replace!("state.json", "v3", { ifMatch: first.etag! }));
    assert.equal(stale.code, "precondition_failed");
    // A quoted tag (as HTTP shows it) is sent bare.
    await storage.replace!("state.json", "v4", { ifMatch: `"${second.etag}"` });
    assert.equal(fake.seen.at(-1)!.headers.get("if-match"), second.etag);
    assert.equal(decoder.decode((await storage.read("state.json"))!), "v4");
  });

  it("createS3Storage() writeStream() uses one PUT when the stream fits in a part", async () => {
    const fake = createFakeS3();
    const storage = fakeStorage(fake);
    async function* source() {
      yield bytes("hello ");
      yield new Uint8Array(0);
      yield bytes("world");
    }
    const result = await storage.writeStream!("log.txt", source());
    assert.equal(fake.seen.length, 1);
    assert.equal(fake.seen[0].method, "PUT");
    assert.equal(fake.seen[0].headers.get("content-type"), "text/plain; charset=utf-8");
    assert.deepEqual(result, { etag: md5Hex(bytes("hello world")) });
    await storage.writeStream!("empty.log", (async function* () {})());
    assert.deepEqual(await storage.read("empty.log"), new Uint8Array(0));
  });

  it("createS3Storage() writeStream() uploads parts of partSize, the last one shorter", async () => {
    const fake = createFakeS3();
    const partSize = 5 * 1024 * 1024;
    const storage = fakeStorage(fake, { partSize });
    const total = 12 * 1024 * 1024 + 7;
    const data = new Uint8Array(total);
    for (let i = 0; i < total; i++) data[i] = (i * 31 + (i >> 12)) & 0xff;
    async function* source() {
      // Odd chunk sizes, one larger than a part.
      const sizes = [1, 999_999, 6 * 1024 * 1024, 12345];
      let offset = 0;
      for (let i = 0; offset < total; i++) {
        const size = Math.min(sizes[i % sizes.length], total - offset);
        yield data.slice(offset, offset + size);
        offset += size;
      }
    }
    const result = await storage.writeStream!("big.bin", source(), { size: total });
    const methods = fake.seen.map((s) => `${s.method} ${[...s.url.searchParams.keys()].join(",")}`);
    assert.deepEqual(methods, [
      "POST uploads",
      "PUT partNumber,uploadId",
      "PUT partNumber,uploadId",
      "PUT partNumber,uploadId",
      "POST uploadId",
    ]);
    assert.deepEqual(fake.seen.slice(1, 4).map((s) => s.body.byteLength), [
      partSize,
      partSize,
      total - 2 * partSize,
    ]);
    const stored = fake.objects.get("big.bin")!;
    assert.equal(stored.data.byteLength, total);
    assert.ok(Buffer.from(stored.data).equals(Buffer.from(data)), "bytes are identical");
    assert.deepEqual(result, { etag: stored.etag });
    assert.match(stored.etag, /-3$/);
  });

  it("createS3Storage() writeStream() aborts the upload when CompleteMultipartUpload answers 200 with an error", async () => {
    const fake = createFakeS3();
    const storage = fakeStorage(fake, { partSize: 5 * 1024 * 1024, retries: { attempts: 0 } });
    fake.intercept((seen) =>
      seen.method === "POST" && seen.url.searchParams.has("uploadId")
        ? new Response(
          `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidPart</Code><Message>One or more of the specified parts could not be found.</Message></Error>`,
          { status: 200 },
        )
        : undefined
    );
    const chunk = new Uint8Array(3 * 1024 * 1024);
    async function* source() {
      for (let i = 0; i < 4; i++) yield chunk;
    }
    const error = await rejection(storage.writeStream!("big.bin", source()));
    assert.equal(error.backendCode, "InvalidPart");
    assert.equal(error.operation, "writeStream");
    const last = fake.seen.at(-1)!;
    assert.equal(last.method, "DELETE");
    assert.ok(last.url.searchParams.has("uploadId"), "the upload is aborted");
    assert.equal(fake.uploads.size, 0);
    assert.equal(fake.objects.has("big.bin"), false);
  });

  it("createS3Storage() writeStream() retries a CompleteMultipartUpload that answers 200 InternalError", async () => {
    const fake = createFakeS3();
    const storage = fakeStorage(fake, { partSize: 5 * 1024 * 1024 });
    let failedOnce = false;
    fake.intercept((seen) => {
      if (!failedOnce && seen.method === "POST" && seen.url.searchParams.has("uploadId")) {
        failedOnce = true;
        return new Response(
          `<?xml version="1.0" encoding="UTF-8"?>\n\n<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>`,
        );
      }
      return undefined;
    });
    const data = crypto.getRandomValues(new Uint8Array(65536));
    const big = new Uint8Array(11 * 1024 * 1024);
    for (let offset = 0; offset < big.byteLength; offset += data.byteLength) big.set(data, offset);
    await storage.writeStream!("big.bin", chunksOf(big, 1024 * 1024));
    assert.ok(failedOnce);
    assert.equal(fake.seen.filter((s) => s.method === "POST").length, 3, "create, complete twice");
    assert.equal(md5Hex(fake.objects.get("big.bin")!.data), md5Hex(big));
  });

  it("createS3Storage() writeStream() aborts the upload when the source throws", async () => {
    const fake = createFakeS3();
    const storage = fakeStorage(fake, { partSize: 5 * 1024 * 1024 });
    async function* source() {
      yield new Uint8Array(6 * 1024 * 1024);
      throw new Error("source broke");
    }
    await assert.rejects(storage.writeStream!("big.bin", source()), /source broke/);
    assert.equal(fake.uploads.size, 0);
    assert.equal(fake.seen.at(-1)!.method, "DELETE");
  });

  it("createS3Storage() list() sends startAfter as start-after under its prefix", async () => {
    const fake = createFakeS3();
    for (let i = 1; i <= 5; i++) {
      fake.objects.set(`pre/log.segments/000000000${i}`, { data: bytes("x"), etag: "e" });
    }
    const storage = fakeStorage(fake, { prefix: "pre" });
    const listed: string[] = [];
    for await (
      const key of storage.list("log.segments/", { startAfter: "log.segments/0000000003" })
    ) {
      listed.push(key);
    }
    assert.deepEqual(listed, ["log.segments/0000000004", "log.segments/0000000005"]);
    assert.equal(fake.seen.length, 1);
    assert.equal(fake.seen[0].url.searchParams.get("start-after"), "pre/log.segments/0000000003");
  });

  it("createS3Storage() readRange() sends one ranged GET and reads only the range", async () => {
    const fake = createFakeS3();
    fake.objects.set("big.log", { data: bytes("0123456789"), etag: "e" });
    const storage = fakeStorage(fake);
    assert.equal(decoder.decode(await storage.readRange!("big.log", { offset: 6 })), "6789");
    assert.equal(
      decoder.decode(await storage.readRange!("big.log", { offset: 2, length: 3 })),
      "234",
    );
    assert.deepEqual(fake.seen.map((s) => s.headers.get("range")), ["bytes=6-", "bytes=2-4"]);
  });

  it("createS3Storage() deleteMany() batches by 1,000 with a valid Content-MD5", async () => {
    const fake = createFakeS3();
    const keys = Array.from({ length: 2500 }, (_, i) => `runs/k${i}&<'">`);
    for (const key of keys) fake.objects.set(`pre/${key}`, { data: bytes("x"), etag: "e" });
    fake.objects.set("pre/keep", { data: bytes("x"), etag: "e" });
    const storage = fakeStorage(fake, { prefix: "pre" });
    await storage.deleteMany!(keys);
    assert.equal(fake.seen.length, 3);
    for (const post of fake.seen) {
      assert.equal(post.method, "POST");
      assert.ok(post.url.searchParams.has("delete"));
      assert.equal(
        post.headers.get("content-md5"),
        createHash("md5").update(post.body).digest("base64"),
      );
    }
    assert.deepEqual(
      fake.seen.map((s) => (decoder.decode(s.body).match(/<Object>/g) ?? []).length),
      [1000, 1000, 500],
    );
    assert.deepEqual([...fake.objects.keys()], ["pre/keep"]);
    await storage.deleteMany!([]);
    assert.equal(fake.seen.length, 3, "no request for no keys");
  });

  it("createS3Storage() deleteMany() reports per-key errors", async () => {
    const fake = createFakeS3();
    fake.intercept(() =>
      new Response(
        `<DeleteResult><Error><Key>b</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error><Error><Key>c</Key><Code>InternalError</Code></Error></DeleteResult>`,
      )
    );
    const error = await rejection(fakeStorage(fake).deleteMany!(["a", "b", "c"]));
    assert.equal(error.key, "b");
    assert.equal(error.backendCode, "AccessDenied");
    assert.equal(error.code, "access_denied");
    assert.match(error.message, /and 1 more/);
  });
});

// ------------------------------------------------------------------ Ceph RGW (a real server)

/** Runs `fn` with a storage on a fresh bucket, deleted afterwards whatever happens. */
async function withBucket(
  env: S3TestEnv,
  label: string,
  fn: (storage: RunStorage, bucket: string, requests: Seen[]) => Promise<void>,
  extra: Partial<S3StorageOptions> = {},
): Promise<void> {
  const bucket = uniqueBucketName(label);
  await createBucket(env, bucket);
  const requests: Seen[] = [];
  try {
    const storage = createS3Storage({
      endpoint: env.endpoint,
      region: env.region,
      bucket,
      accessKeyId: env.accessKeyId,
      secretAccessKey: env.secretAccessKey,
      // Record what the adapter sends (method, URL, headers), pass the request on untouched.
      fetch: (input, init) => {
        const request = input as Request;
        const url = new URL(request.url);
        requests.push({
          method: request.method,
          url,
          rawPath: request.url.slice(url.origin.length).split("?")[0],
          headers: request.headers,
          body: new Uint8Array(0),
        });
        return fetch(input, init);
      },
      ...extra,
    });
    await fn(storage, bucket, requests);
  } finally {
    await deleteBucketRecursive(env, bucket);
  }
}

async function* chunksOf(data: Uint8Array, size: number): AsyncIterable<Uint8Array> {
  for (let offset = 0; offset < data.byteLength; offset += size) {
    yield data.subarray(offset, Math.min(offset + size, data.byteLength));
  }
}

async function runLimited<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await task(items[next++]);
    }),
  );
}

const ODD_KEYS = [
  "odd/with space.txt",
  "odd/plus+sign",
  "odd/percent%20literal",
  "odd/tilde~and-dash_under.score",
  "odd/ünïcødé/日本語.json",
  "odd/emoji-🚀",
  "odd/quotes'\"and(parens)*!",
  "odd/amp&lt;gt>",
  "odd/query?hash#eq=semi;colon:comma,at@dollar$",
  "odd/.hidden/..dots../x",
];

describe("createS3Storage() on Ceph RGW", () => {
  it("createS3Storage() round-trips odd keys through write, read, list and delete", async (t) => {
    const env = requireRgw(t);
    if (!env) return;
    await withBucket(env, "odd-keys", async (storage) => {
      for (const key of ODD_KEYS) await storage.write(key, `value of ${key}`);
      for (const key of ODD_KEYS) {
        assert.equal(decoder.decode((await storage.read(key))!), `value of ${key}`, key);
      }
      assert.deepEqual((await collect(storage.list("odd/"))).sort(), [...ODD_KEYS].sort());
      assert.deepEqual(await collect(storage.list("odd/ünïcødé/")), ["odd/ünïcødé/日本語.json"]);
      for (const key of ODD_KEYS) await storage.delete(key);
      assert.deepEqual(await collect(storage.list("odd/")), []);
      await storage.delete("odd/never-existed");
      assert.equal(await storage.read("odd/never-existed"), undefined);
    });
  });

  it("createS3Storage() rejects a second create-only write with precondition_failed (412)", async (t) => {
    const env = requireRgw(t);
    if (!env) return;
    await withBucket(env, "create-only", async (storage, _bucket, requests) => {
      const first = await storage.write("runs/t/r/meta.json", '{"n":1}', { ifNoneMatch: "*" });
      assert.ok(first && /^[0-9a-f]{32}$/.test(first.etag ?? ""), "a bare MD5 ETag");
      assert.equal(requests.at(-1)!.headers.get("if-none-match"), "*");
      const error = await rejection(
        storage.write("runs/t/r/meta.json", '{"n":2}', { ifNoneMatch: "*" }),
      );
      assert.equal(error.code, "precondition_failed");
      assert.equal(error.status, 412);
      assert.equal(error.backendCode, "PreconditionFailed");
      assert.equal(decoder.decode((await storage.read("runs/t/r/meta.json"))!), '{"n":1}');
      // An empty object is a valid create too.
      await storage.write("runs/t/r/empty", new Uint8Array(0), { ifNoneMatch: "*" });
      assert.deepEqual(await storage.read("runs/t/r/empty"), new Uint8Array(0));
    });
  });

  it("createS3Storage() replace() succeeds on the current ETag and fails on a stale one", async (t) => {
    const env = requireRgw(t);
    if (!env) return;
    await withBucket(env, "if-match", async (storage, _bucket, requests) => {
      const v1 = await storage.write("state.json", "v1");
      const v2 = await storage.replace!("state.json", "v2", { ifMatch: v1!.etag! });
      assert.equal(requests.at(-1)!.headers.get("if-match"), v1!.etag, "sent bare");
      assert.ok(v2.etag && v2.etag !== v1!.etag);
      const stale = await rejection(storage.replace!("state.json", "v3", { ifMatch: v1!.etag! }));
      assert.equal(stale.code, "precondition_failed");
      assert.equal(stale.status, 412);
      // A quoted tag works too: the adapter strips the quotes RGW would refuse.
      const v4 = await storage.replace!("state.json", "v4", { ifMatch: `"${v2.etag}"` });
      assert.equal(decoder.decode((await storage.read("state.json"))!), "v4");
      const missing = await rejection(storage.replace!("absent.json", "x", { ifMatch: v4.etag! }));
      assert.equal(missing.code, "precondition_failed");
    });
  });

  it("createS3Storage() writeStream() writes 12 MiB byte-exact via multipart", async (t) => {
    const env = requireRgw(t);
    if (!env) return;
    await withBucket(env, "multipart", async (storage, bucket, requests) => {
      const size = 12 * 1024 * 1024 + 123;
      const data = new Uint8Array(size);
      for (let offset = 0; offset < size; offset += 65536) {
        crypto.getRandomValues(data.subarray(offset, Math.min(offset + 65536, size)));
      }
      const started = performance.now();
      const result = await storage.writeStream!("runs/t/r/stdout.log", chunksOf(data, 64 * 1024));
      const ms = performance.now() - started;
      console.log(`  multipart writeStream of 12 MiB on RGW: ${ms.toFixed(0)} ms`);
      // RGW answers CompleteMultipartUpload with an empty <ETag>: then no tag is reported.
      if (result?.etag !== undefined) assert.match(result.etag, /^[0-9a-f]{32}-2$/);
      const calls = requests.map((r) => `${r.method} ${[...r.url.searchParams.keys()].join(",")}`);
      assert.deepEqual(calls, [
        "POST uploads",
        "PUT partNumber,uploadId",
        "PUT partNumber,uploadId",
        "POST uploadId",
      ]);
      const back = (await storage.read("runs/t/r/stdout.log"))!;
      assert.equal(back.byteLength, size);
      assert.equal(md5Hex(back), md5Hex(data), "byte-exact");
      assert.deepEqual(await listOpenUploads(env, bucket), []);

      // Small with a known size: one PUT.
      requests.length = 0;
      await storage.writeStream!("small.log", chunksOf(data.subarray(0, 1000), 100), {
        size: 1000,
      });
      assert.deepEqual(requests.map((r) => r.method), ["PUT"]);
      assert.deepEqual(await storage.read("small.log"), data.slice(0, 1000));
    });
  });

  it("createS3Storage() writeStream() aborts its upload and leaves no object when the source fails", async (t) => {
    const env = requireRgw(t);
    if (!env) return;
    await withBucket(env, "mp-abort", async (storage, bucket) => {
      async function* failing() {
        yield new Uint8Array(9 * 1024 * 1024);
        throw new Error("worker died");
      }
      await assert.rejects(storage.writeStream!("big.bin", failing()), /worker died/);
      assert.deepEqual(await listOpenUploads(env, bucket), []);
      assert.equal(await storage.read("big.bin"), undefined);
    });
  });

  it("createS3Storage() lists 2,500 keys across pages and deleteMany() removes them", async (t) => {
    const env = requireRgw(t);
    if (!env) return;
    await withBucket(env, "list-2500", async (storage, _bucket, requests) => {
      const keys = Array.from({ length: 2500 }, (_, i) => `runs/task/${i % 7}/k ${i}+.json`);
      let started = performance.now();
      await runLimited(keys, 32, (key) => storage.write(key, "{}").then(() => {}));
      console.log(
        `  2,500 PUTs (32 at a time) on RGW: ${(performance.now() - started).toFixed(0)} ms`,
      );
      await storage.write("other/keep.json", "{}");

      requests.length = 0;
      started = performance.now();
      const listed = await collect(storage.list("runs/"));
      console.log(`  list of 2,500 keys on RGW: ${(performance.now() - started).toFixed(0)} ms`);
      assert.equal(listed.length, 2500);
      assert.deepEqual([...listed].sort(), [...keys].sort());
      assert.equal(requests.length, 3, "three pages of at most 1,000");

      requests.length = 0;
      started = performance.now();
      await storage.deleteMany!(keys);
      console.log(
        `  deleteMany of 2,500 keys on RGW: ${(performance.now() - started).toFixed(0)} ms`,
      );
      assert.deepEqual(requests.map((r) => r.method), ["POST", "POST", "POST"]);
      assert.ok(requests.every((r) => r.headers.get("content-md5") !== null));
      assert.deepEqual(await collect(storage.list("runs/")), []);
      assert.deepEqual(await collect(storage.list("")), ["other/keep.json"]);
      await storage.deleteMany!(["other/keep.json", "not/there"]);
      assert.deepEqual(await collect(storage.list("")), []);
    });
  });

  it("createS3Storage() keeps to its prefix inside the bucket", async (t) => {
    const env = requireRgw(t);
    if (!env) return;
    await withBucket(env, "prefix", async (storage, bucket) => {
      const scoped = createS3Storage({
        endpoint: env.endpoint,
        region: env.region,
        bucket,
        accessKeyId: env.accessKeyId,
        secretAccessKey: env.secretAccessKey,
        prefix: "tenant-a",
      });
      await storage.write("outside.txt", "no");
      await scoped.write("runs/x.txt", "yes");
      assert.deepEqual(await collect(scoped.list("")), ["runs/x.txt"]);
      assert.deepEqual((await collect(storage.list(""))).sort(), [
        "outside.txt",
        "tenant-a/runs/x.txt",
      ]);
      assert.equal(scoped.locate("runs/x.txt"), `s3://${bucket}/tenant-a/runs/x.txt`);
    });
  });

  it("createS3Storage() reports a wrong secret as access_denied without leaking it", async (t) => {
    const env = requireRgw(t);
    if (!env) return;
    await withBucket(env, "denied", async (_storage, bucket) => {
      const wrongSecret = `${env.secretAccessKey.slice(0, -4)}ZZZZ`;
      const bad = createS3Storage({
        endpoint: env.endpoint,
        bucket,
        accessKeyId: env.accessKeyId,
        secretAccessKey: wrongSecret,
      });
      const error = await rejection(bad.write("k", "v"));
      assert.equal(error.code, "access_denied");
      assert.equal(error.status, 403);
      assert.equal(error.backendCode, "SignatureDoesNotMatch");
      const text = `${error.message}\n${error.stack}\n${JSON.stringify(error)}`;
      assert.ok(!text.includes(wrongSecret) && !text.includes(env.secretAccessKey));

      const missing = createS3Storage({
        endpoint: env.endpoint,
        bucket: `${bucket}-missing`,
        accessKeyId: env.accessKeyId,
        secretAccessKey: env.secretAccessKey,
      });
      const noBucket = await rejection(missing.read("k"));
      assert.equal(noBucket.backendCode, "NoSuchBucket");
      assert.equal(noBucket.status, 404);
    });
  });

  it("createS3Storage() gives up with unavailable when the server is unreachable", async () => {
    // A port nobody listens on: connection refused on every attempt (no RGW needed).
    const storage = createS3Storage({
      endpoint: "http://127.0.0.1:9",
      bucket: "b1",
      accessKeyId: ACCESS,
      secretAccessKey: SECRET,
      retries: { attempts: 2, baseDelayMs: 10, maxDelayMs: 20 },
    });
    const error = await rejection(storage.read("k"));
    assert.equal(error.code, "unavailable");
    assert.match(error.message, /after 3 attempts/);
  });
});

// ------------------------------------------------------------------ conformance suite

const SUITE_CAPABILITIES = {
  append: false,
  replace: true,
  writeStream: true,
  deleteMany: true,
  stat: true,
  readRange: true,
  listPrefixes: true,
};

testStorage({
  name: "s3 (fake fetch)",
  create: () =>
    Promise.resolve({ storage: fakeStorage(createFakeS3()), cleanup: () => Promise.resolve() }),
  capabilities: SUITE_CAPABILITIES,
});

const suiteEnv = rgwEnv();
if (suiteEnv !== undefined) {
  testStorage({
    name: "s3 (Ceph RGW)",
    async create() {
      const bucket = uniqueBucketName("suite");
      await createBucket(suiteEnv, bucket);
      const storage = createS3Storage({
        endpoint: suiteEnv.endpoint,
        region: suiteEnv.region,
        bucket,
        accessKeyId: suiteEnv.accessKeyId,
        secretAccessKey: suiteEnv.secretAccessKey,
      });
      return { storage, cleanup: () => deleteBucketRecursive(suiteEnv, bucket) };
    },
    capabilities: SUITE_CAPABILITIES,
  });
} else {
  describe("storage conformance: s3 (Ceph RGW)", () => {
    it("runs the conformance suite on Ceph RGW", (t) => {
      requireRgw(t);
    });
  });
}
