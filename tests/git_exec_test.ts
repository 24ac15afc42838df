// Tests of runGit() and gitEnvironment(): explicit environment, deadline, output limit, typed errors.

import assert from "node:assert/strict";
import { join } from "node:path";
import process from "node:process";
import { describe, it } from "node:test";
import { GitError } from "../core/errors.ts";
import { gitEnvironment, runGit } from "../git/exec.ts";
import { withTempDir } from "./git_helpers.ts";

const decoder = new TextDecoder();

describe("gitEnvironment()", () => {
  it("drops every inherited GIT_* variable but the config locations, and fixes the locale", () => {
    const env = gitEnvironment({
      PATH: "/usr/bin",
      HOME: "/home/me",
      GIT_DIR: "/elsewhere/.git",
      GIT_WORK_TREE: "/elsewhere",
      GIT_INDEX_FILE: "/elsewhere/index",
      GIT_OBJECT_DIRECTORY: "/elsewhere/objects",
      GIT_ALTERNATE_OBJECT_DIRECTORIES: "/elsewhere/objects",
      GIT_CEILING_DIRECTORIES: "/",
      GIT_CONFIG_PARAMETERS: "'core.hooksPath'='/evil'",
      GIT_CONFIG_GLOBAL: "/home/me/.gitconfig-test",
      LANG: "fr_FR.UTF-8",
      SECRET_TOKEN: "not for git",
    }, { GIT_INDEX_FILE: "/private/index" });
    assert.deepEqual(env, {
      PATH: "/usr/bin",
      HOME: "/home/me",
      GIT_CONFIG_GLOBAL: "/home/me/.gitconfig-test",
      LC_ALL: "C",
      LANG: "C",
      GIT_TERMINAL_PROMPT: "0",
      GIT_PAGER: "cat",
      PAGER: "cat",
      GIT_EDITOR: ":",
      GIT_ASKPASS: "",
      SSH_ASKPASS: "",
      GIT_OPTIONAL_LOCKS: "0",
      MALLOC_TRIM_THRESHOLD_: "134217728",
      MALLOC_TOP_PAD_: "16777216",
      GIT_INDEX_FILE: "/private/index",
    });
  });
});

describe("runGit()", () => {
  it("is not redirected by GIT_DIR or GIT_INDEX_FILE in the caller's environment", async () => {
    await withTempDir("git-exec-env-", async (dir) => {
      await runGit(["init", "-q"], { cwd: dir });
      const saved = { dir: process.env.GIT_DIR, index: process.env.GIT_INDEX_FILE };
      process.env.GIT_DIR = join(dir, "not-a-repo");
      process.env.GIT_INDEX_FILE = join(dir, "not-an-index");
      try {
        const { stdout } = await runGit(["rev-parse", "--absolute-git-dir"], { cwd: dir });
        assert.equal(decoder.decode(stdout).trim(), join(dir, ".git"));
      } finally {
        if (saved.dir === undefined) delete process.env.GIT_DIR;
        else process.env.GIT_DIR = saved.dir;
        if (saved.index === undefined) delete process.env.GIT_INDEX_FILE;
        else process.env.GIT_INDEX_FILE = saved.index;
      }
    });
  });

  it("returns stdout as bytes, passes stdin, and accepts listed exit codes", async () => {
    await withTempDir("git-exec-io-", async (dir) => {
      const input = new Uint8Array([0x61, 0x00, 0xff, 0x0a]);
      const { stdout } = await runGit(["hash-object", "--stdin"], { cwd: dir, stdin: input });
      assert.equal(decoder.decode(stdout).trim().length, 40);
      const missing = await runGit(["config", "--get", "no.such"], {
        cwd: dir,
        okExitCodes: [0, 1],
      });
      assert.equal(missing.exitCode, 1);
    });
  });

  it("rejects with a typed error on failure, on its deadline, on abort and when it cannot start", async () => {
    await withTempDir("git-exec-errors-", async (dir) => {
      await assert.rejects(
        runGit(["rev-parse", "HEAD"], { cwd: dir }),
        (error) =>
          error instanceof GitError && error.code === "git_failed" && error.reason === "exit" &&
          error.exitCode === 128 && /not a git repository/i.test(error.stderr),
      );
      const started = Date.now();
      await assert.rejects(
        runGit(["-c", "alias.slow=!sleep 20", "slow"], { cwd: dir, timeoutMs: 300 }),
        (error) => error instanceof GitError && error.reason === "timeout",
      );
      assert.ok(Date.now() - started < 10_000);
      await assert.rejects(
        runGit(["--version"], { cwd: dir, signal: AbortSignal.abort() }),
        (error) => error instanceof GitError && error.reason === "aborted",
      );
      await assert.rejects(
        runGit(["--version"], { cwd: join(dir, "missing") }),
        (error) => error instanceof GitError && error.reason === "spawn",
      );
    });
  });

  it("stops reading at maxStdoutBytes and says so", async () => {
    await withTempDir("git-exec-limit-", async (dir) => {
      const result = await runGit(["-c", "alias.big=!yes | head -c 1000000", "big"], {
        cwd: dir,
        maxStdoutBytes: 1000,
      });
      assert.equal(result.truncated, true);
      assert.equal(result.stdout.byteLength, 1000);
    });
  });
});
