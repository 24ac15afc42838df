// What a user is told about bad input: every ValidationError names the field and says what was
// expected there, unknown keys are refused by name, and nothing is written.

import assert from "node:assert/strict";
import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  createFsStorage,
  createMemoryStorage,
  createProcessExecutor,
  createS3Storage,
  prepareStepRun,
  runStep,
  ValidationError,
} from "../mod.ts";
import type { RunStepOptions, StepExecutionRequest, WorkerExecutor } from "../mod.ts";
import { allKeys, baseRequest, withTempDir } from "./helpers.ts";

const done: WorkerExecutor = {
  execute: () => ({ ok: true, outcome: "completed", summary: "Done." }),
};

/** Asserts `error` is a ValidationError on `field` whose message says `expected`. */
function expectInvalid(field: string, expected: string) {
  return (error: unknown) => {
    assert.ok(error instanceof ValidationError, String(error));
    assert.equal(error.field, field);
    assert.ok(error.message.includes(`'${field}' ${expected}`), error.message);
    assert.ok(
      !/Invalid input|Unrecognized key|Too small|Too big/.test(error.message),
      error.message,
    );
    return true;
  };
}

interface RunCase {
  label: string;
  request?: (request: StepExecutionRequest) => unknown;
  executor?: unknown;
  options?: Record<string, unknown> | null;
  field: string;
  expected: string;
}

const runCases: RunCase[] = [
  {
    label: "a command that is a number",
    request: (r) => ({ ...r, command: 5 }),
    field: "command",
    expected:
      "must be a non-empty string (run by /bin/sh -c) or a non-empty array of strings (argv)",
  },
  {
    label: "an attempt given as a string",
    request: (r) => ({ ...r, attempt: "1" }),
    field: "attempt",
    expected: "must be a number, not a string",
  },
  {
    label: "a fractional attempt",
    request: (r) => ({ ...r, attempt: 1.5 }),
    field: "attempt",
    expected: "must be an integer",
  },
  {
    label: "a zero timeout",
    request: (r) => ({ ...r, timeoutSec: 0 }),
    field: "timeoutSec",
    expected: "must be greater than 0",
  },
  {
    label: "a missing runtime",
    request: ({ runtime: _runtime, ...r }) => r,
    field: "runtime",
    expected: "must be an object (it is missing)",
  },
  {
    label: "an empty repoRoot",
    request: (r) => ({ ...r, runtime: { ...r.runtime, repoRoot: "" } }),
    field: "runtime.repoRoot",
    expected: "must not be empty",
  },
  {
    label: "an unknown request key (timeoutMs for timeoutSec)",
    request: (r) => ({ ...r, timeoutMs: 5 }),
    field: "timeoutMs",
    expected: "is not a known key",
  },
  {
    label: "an unknown runtime key",
    request: (r) => ({ ...r, runtime: { ...r.runtime, repoRot: "/x" } }),
    field: "runtime.repoRot",
    expected: "is not a known key",
  },
  {
    label: "maxOutputBytes given as text",
    options: { maxOutputBytes: "lots" },
    field: "maxOutputBytes",
    expected:
      "must be a non-negative integer (bytes per stream) or { stdout?, stderr?, headRatio? }",
  },
  {
    label: "a negative maxOutputBytes",
    options: { maxOutputBytes: -1 },
    field: "maxOutputBytes",
    expected: "must be at least 0",
  },
  {
    label: "a misspelled maxOutputBytes stream",
    options: { maxOutputBytes: { stdout: 10, stdrr: 10 } },
    field: "maxOutputBytes.stdrr",
    expected: "is not a known key",
  },
  {
    label: "a secret that is a number",
    options: { secrets: [5] },
    field: "secrets.0",
    expected: "must be a string of at least 3 characters, or a RegExp",
  },
  {
    label: "an unknown option (timeoutMs)",
    options: { timeoutMs: 5 },
    field: "timeoutMs",
    expected: "is not a known key",
  },
  {
    label: "null options",
    options: null,
    field: "(root)",
    expected: "must be an object, not null",
  },
  {
    label: "an executor without execute()",
    executor: {},
    field: "executor.execute",
    expected: "must be a function: execute(run, context)",
  },
  {
    label: "a null executor",
    executor: null,
    field: "executor",
    expected: "must be an object with an execute(run, context) method",
  },
  {
    label: "an executor whose secrets are not an array",
    executor: { ...done, secrets: "hunter2" },
    field: "executor.secrets",
    expected: "must be an array, not a string",
  },
  {
    label: "a process executor with no command anywhere",
    executor: createProcessExecutor(),
    field: "command",
    expected: "must be set, as 'request.command' or the process executor's 'command' option",
  },
];

describe("runStep() validation messages", () => {
  for (const c of runCases) {
    it(`refuses ${c.label}: names '${c.field}', says what was expected, writes nothing`, async () => {
      const storage = createMemoryStorage();
      const request = (c.request ?? ((r) => r))(baseRequest()) as StepExecutionRequest;
      const options = c.options === null
        ? (null as unknown as RunStepOptions)
        : { storage, ...c.options } as RunStepOptions;
      const executor = "executor" in c ? c.executor as WorkerExecutor : done;
      await assert.rejects(runStep(request, executor, options), expectInvalid(c.field, c.expected));
      assert.deepEqual(await allKeys(storage), []);
    });
  }

  it("refuses a process executor with no command before creating anything on disk", async () => {
    await withTempDir(async (dir) => {
      await assert.rejects(
        runStep(
          baseRequest({ runtime: { repoRoot: dir, worktreePath: dir } }),
          createProcessExecutor(),
        ),
        expectInvalid("command", "must be set"),
      );
      assert.deepEqual(await readdir(dir), []);
    });
  });

  it("refuses a repoRoot that does not exist (filesystem default), creating nothing", async () => {
    await withTempDir(async (dir) => {
      const typo = join(dir, "srv", "rpeo");
      await assert.rejects(
        runStep(baseRequest({ runtime: { repoRoot: typo, worktreePath: dir } }), done),
        expectInvalid(
          "runtime.repoRoot",
          `must be an existing directory: '${typo}' does not exist`,
        ),
      );
      assert.deepEqual(await readdir(dir), []);
    });
  });

  it("prepareStepRun() refuses null or misspelled options the same way", async () => {
    await assert.rejects(
      prepareStepRun(baseRequest(), null as unknown as RunStepOptions),
      expectInvalid("(root)", "must be an object, not null"),
    );
    const storage = createMemoryStorage();
    await assert.rejects(
      prepareStepRun(baseRequest(), { storage, flushMs: 10 } as RunStepOptions),
      expectInvalid("flushMs", "is not a known key"),
    );
    assert.deepEqual(await allKeys(storage), []);
  });

  it("accepts a process executor whose command comes from its options", async () => {
    const storage = createMemoryStorage();
    const result = await runStep(
      baseRequest({ runtime: { repoRoot: "/", worktreePath: "/" } }),
      createProcessExecutor({ command: ["true"] }),
      { storage },
    );
    assert.equal(result.outcome, "completed");
  });
});

describe("factory validation messages", () => {
  const s3 = {
    endpoint: "http://127.0.0.1:9",
    bucket: "runs",
    accessKeyId: "AKIDEXAMPLE",
    secretAccessKey: "wJalrXUtnFEMI/K7MDENG",
  };
  const cases: [string, () => unknown, string, string][] = [
    [
      "createProcessExecutor() with an env value that is a number",
      () => createProcessExecutor({ env: { TOKEN: 5 as never } }),
      "env.TOKEN",
      "must be a string, or { value: string, secret: true } for a secret",
    ],
    [
      "createProcessExecutor() with an unknown option",
      () => createProcessExecutor({ cmd: "ls" } as never),
      "cmd",
      "is not a known key",
    ],
    [
      "createProcessExecutor() with a command that is a number",
      () => createProcessExecutor({ command: 5 as never }),
      "command",
      "must be a non-empty string (run by /bin/sh -c) or a non-empty array of strings (argv)",
    ],
    [
      "createFsStorage() with an unknown option",
      () => createFsStorage({ root: "/tmp", rot: "/tmp" } as never),
      "rot",
      "is not a known key",
    ],
    [
      "createFsStorage() without a root",
      () => createFsStorage({} as never),
      "root",
      "must be a string (it is missing)",
    ],
    [
      "createS3Storage() with an unknown option",
      () => createS3Storage({ ...s3, timeout: 5 } as never),
      "timeout",
      "is not a known key",
    ],
    [
      "createS3Storage() with retries given as a number",
      () => createS3Storage({ ...s3, retries: 3 as never }),
      "retries",
      "must be an object, not a number",
    ],
  ];
  for (const [label, make, field, expected] of cases) {
    it(`${label}: names '${field}' and says what was expected`, () => {
      assert.throws(make, expectInvalid(field, expected));
    });
  }

  it("createS3Storage() never echoes a credential in its message", () => {
    assert.throws(
      () => createS3Storage({ ...s3, accessKeyId: 7 as never }),
      (error: unknown) => {
        assert.ok(error instanceof ValidationError);
        assert.equal(error.field, "accessKeyId");
        assert.ok(!error.message.includes(s3.secretAccessKey));
        return true;
      },
    );
  });
});

describe("storage error messages and paths", () => {
  it("createFsStorage() locates keys under a relative '.' root without './' in the path", () => {
    const located = createFsStorage({ root: "." }).locate("runs/t/r/meta.json");
    assert.ok(!located.includes("/./"), located);
    assert.ok(located.endsWith("/runs/t/r/meta.json") && located.startsWith("/"), located);
  });

  it("createFsStorage() errors name the file's path on disk, not only the key", async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, "runs"), "a file where a folder should be");
      const storage = createFsStorage({ root: dir });
      await assert.rejects(storage.write("runs/t/r/meta.json", "{}"), (error: unknown) => {
        assert.ok(error instanceof Error);
        assert.ok(error.message.includes(join(dir, "runs", "t", "r", "meta.json")), error.message);
        assert.ok(error.message.includes("'runs/t/r/meta.json'"), error.message);
        return true;
      });
    });
  });
});
