// Tests of createGitCapturer(): replay fidelity on a fresh clone, the agent's .git left untouched,
// no lock races with the agent's git, size and secret guards, dedupe.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmod, cp, readFile, rename, rm, symlink, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { GitError, ValidationError } from "../core/errors.ts";
import { createGitCapturer, type GitCaptureResult } from "../git/capture.ts";
import { applyGitPatch } from "../git/restore.ts";
import {
  assertSameTree,
  createRepos,
  git,
  ignoredPaths,
  leaves,
  put,
  randomBytes,
  sleep,
  snapshotDir,
  withTempDir,
} from "./git_helpers.ts";

const decoder = new TextDecoder();

/** The base commit of the fidelity cases: one file (or directory) per case. */
async function baseFiles(dir: string): Promise<void> {
  await put(dir, "a.txt", Array.from({ length: 12 }, (_, i) => `line ${i + 1}\n`).join(""));
  await put(dir, "b.txt", "bravo\n");
  await put(dir, "c.txt", "charlie\n".repeat(5));
  await put(dir, "script.sh", "#!/bin/sh\necho hi\n");
  await put(dir, "tool.sh", "#!/bin/sh\necho tool\n");
  await chmod(join(dir, "tool.sh"), 0o755);
  await put(dir, "bin.dat", randomBytes(3000, 7));
  await symlink("a.txt", join(dir, "link-retarget"));
  await put(dir, "trunc.txt", "some content\n");
  await put(dir, "crlf.txt", "one\r\ntwo\r\nthree\r\n");
  await put(dir, "nonl.txt", "no newline");
  await put(dir, "to-link.txt", "file becoming a symlink\n");
  await put(dir, "to-dir", "file becoming a directory\n");
  await put(dir, "staged.txt", "staged v0\n");
  await put(dir, "gone/one.txt", "one\n");
  await put(dir, "gone/two/three.txt", "three\n");
  await put(dir, "keep/x.txt", "x\n");
  await put(dir, ".gitignore", "*.log\nbuild/\n");
}

interface FidelityCase {
  name: string;
  mutate(wt: string): Promise<void>;
  check?(result: GitCaptureResult, wt: string): void | Promise<void>;
}

const cases: FidelityCase[] = [
  {
    name: "modify",
    mutate: (wt) => put(wt, "a.txt", "line 1\nchanged 2\nline 3\n"),
  },
  { name: "delete", mutate: (wt) => rm(join(wt, "b.txt")) },
  { name: "rename by mv", mutate: (wt) => rename(join(wt, "c.txt"), join(wt, "c-renamed.txt")) },
  {
    name: "chmod +x and -x",
    mutate: async (wt) => {
      await chmod(join(wt, "script.sh"), 0o755);
      await chmod(join(wt, "tool.sh"), 0o644);
    },
  },
  {
    name: "binary modify and binary new",
    mutate: async (wt) => {
      const bytes = await readFile(join(wt, "bin.dat"));
      bytes[100] ^= 0xff;
      bytes[2000] ^= 0x55;
      await writeFile(join(wt, "bin.dat"), bytes);
      await put(wt, "new.bin", randomBytes(5000, 99));
    },
    check: (result) => assert.ok(result.stats.binaryFiles >= 2),
  },
  {
    name: "symlink new, retargeted and dangling",
    mutate: async (wt) => {
      await symlink("b.txt", join(wt, "link-new"));
      await rm(join(wt, "link-retarget"));
      await symlink("keep/x.txt", join(wt, "link-retarget"));
      await symlink("nowhere/at/all", join(wt, "link-dangling"));
    },
  },
  { name: "new empty file", mutate: (wt) => put(wt, "empty.txt", "") },
  { name: "truncate to empty", mutate: (wt) => truncate(join(wt, "trunc.txt"), 0) },
  {
    name: "CRLF file",
    mutate: async (wt) => {
      await put(wt, "crlf.txt", "one\r\nTWO\r\nthree\r\nfour\r\n");
      await put(wt, "crlf-new.txt", "x\r\ny\r\n");
    },
  },
  {
    name: "a unicode path with spaces and quotes",
    mutate: (wt) => put(wt, `dir ü/fi"le 'q' ñ ✓.txt`, "unicode\n"),
  },
  {
    name: "no trailing newline",
    mutate: async (wt) => {
      await put(wt, "nonl.txt", "still no newline, changed");
      await put(wt, "nonl-new.txt", "abc");
    },
  },
  {
    name: "file to symlink",
    mutate: async (wt) => {
      await rm(join(wt, "to-link.txt"));
      await symlink("b.txt", join(wt, "to-link.txt"));
    },
  },
  {
    name: "file to directory",
    mutate: async (wt) => {
      await rm(join(wt, "to-dir"));
      await put(wt, "to-dir/inside.txt", "now a directory\n");
    },
  },
  {
    name: "new nested untracked directory",
    mutate: async (wt) => {
      await put(wt, "fresh/deep/er/file.txt", "deep\n");
      await put(wt, "fresh/x.txt", "x\n");
    },
  },
  {
    name: "staged then edited",
    mutate: async (wt) => {
      await put(wt, "staged.txt", "staged v1\n");
      await git(wt, "add", "staged.txt");
      await put(wt, "staged.txt", "staged v2, edited after add\n");
    },
  },
  {
    name: "ignored files left out",
    mutate: async (wt) => {
      await put(wt, "build/out.bin", randomBytes(100, 3));
      await put(wt, "app.log", "log line\n");
      await put(wt, "visible.txt", "not ignored\n");
    },
    check: (result) => {
      const patch = decoder.decode(result.patch);
      assert.ok(!patch.includes("build/out.bin") && !patch.includes("app.log"));
    },
  },
  {
    name: "a .gitignore edit",
    mutate: async (wt) => {
      await put(wt, ".gitignore", "build/\ntmp/\n");
      await put(wt, "debug.log", "now tracked\n");
      await put(wt, "tmp/scratch.txt", "now ignored\n");
    },
    check: (result) => {
      const patch = decoder.decode(result.patch);
      assert.ok(patch.includes("debug.log") && !patch.includes("tmp/scratch.txt"));
    },
  },
  { name: "a deleted directory", mutate: (wt) => rm(join(wt, "gone"), { recursive: true }) },
];

describe("createGitCapturer() replay fidelity", { concurrency: 4 }, () => {
  let root: string;
  let repos: { upstream: string; agent: string; base: string };
  let counter = 0;
  // Cases run concurrently, but concurrent `git worktree add` in one repository race (one
  // reads the other's half-made administrative files): one at a time.
  let worktreeLock: Promise<unknown> = Promise.resolve();
  const addWorktree = (repo: string, ...args: string[]): Promise<string> => {
    const run = worktreeLock.then(() => git(repo, "worktree", "add", "-q", "--detach", ...args));
    worktreeLock = run.catch(() => {});
    return run;
  };

  before(async () => {
    const { mkdtemp, realpath } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    root = await realpath(await mkdtemp(join(tmpdir(), "git-fidelity-")));
    repos = await createRepos(root, baseFiles);
    // Restore targets are worktrees of a fresh clone: they hold the upstream objects only.
    await git(root, "clone", "-q", "--no-checkout", repos.upstream, join(root, "target"));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** Captures `mutate` in a linked worktree, restores it on a fresh checkout of a clone, compares. */
  async function roundTrip(
    mutate: (wt: string) => Promise<void>,
    midRun?: (wt: string, capture: () => Promise<GitCaptureResult | undefined>) => Promise<void>,
  ): Promise<{ result: GitCaptureResult; wt: string; clone: string }> {
    const n = ++counter;
    const wt = join(root, `wt-${n}`);
    await addWorktree(repos.agent, wt, repos.base);
    const capturer = await createGitCapturer({ worktree: wt, stateDir: join(root, `state-${n}`) });
    assert.equal(capturer.baseCommit, repos.base);
    let result: GitCaptureResult | undefined;
    if (midRun) await midRun(wt, async () => (result = await capturer.capture()));
    await mutate(wt);
    result = await capturer.capture() ?? result;
    await capturer.dispose();
    assert.ok(result, "a change was captured");
    assert.equal(result.truncated, false);
    assert.ok(result.patch);
    assert.equal(result.sha256, createHash("sha256").update(result.patch).digest("hex"));

    const clone = join(root, `clone-${n}`);
    await addWorktree(join(root, "target"), clone, result.baseCommit);
    const restored = await applyGitPatch({
      worktree: clone,
      patch: result.patch,
      baseCommit: result.baseCommit,
    });
    assert.deepEqual(restored, { applied: true, conflicts: [] });

    const skip = [
      ...await ignoredPaths(wt),
      ...result.excluded.map((entry) => entry.path),
      ...result.nestedRepositories.map((repo) => repo.path),
    ];
    assertSameTree(await leaves(clone), await leaves(wt, skip));
    return { result, wt, clone };
  }

  for (const testCase of cases) {
    it(`reproduces '${testCase.name}' on a fresh clone`, async () => {
      const { result, wt } = await roundTrip(testCase.mutate);
      await testCase.check?.(result, wt);
    });
  }

  it("reproduces the work tree after an agent commit mid-run", async () => {
    const { result, wt, clone } = await roundTrip(
      async (wt) => {
        await put(wt, "after-commit.txt", "after\n");
        await put(wt, "b.txt", "bravo, changed after the commit\n");
      },
      async (wt, capture) => {
        await put(wt, "a.txt", "committed change\n");
        await put(wt, "committed-new.txt", "committed\n");
        await put(wt, "left-untracked.txt", "never added\n");
        assert.ok(await capture());
        await git(wt, "add", "a.txt", "committed-new.txt");
        await git(wt, "commit", "-q", "-m", "agent commit");
      },
    );
    const head = (await git(wt, "rev-parse", "HEAD")).trim();
    assert.equal(result.head, head);
    assert.notEqual(result.baseCommit, head);
    assert.equal(await readFile(join(clone, "left-untracked.txt"), "utf8"), "never added\n");
  });

  it("records a nested repository instead of losing it silently", async () => {
    const { result, wt, clone } = await roundTrip(async (wt) => {
      await put(wt, "vendor/lib/lib.txt", "nested\n");
      await git(join(wt, "vendor/lib"), "init", "-q");
      await git(join(wt, "vendor/lib"), "add", "-A");
      await git(join(wt, "vendor/lib"), "commit", "-q", "-m", "nested");
      await put(wt, "empty-repo/file.txt", "in a repository without commits\n");
      await git(join(wt, "empty-repo"), "init", "-q");
      await put(wt, "outer.txt", "outer change\n");
    });
    const nestedHead = (await git(join(wt, "vendor/lib"), "rev-parse", "HEAD")).trim();
    assert.deepEqual(result.nestedRepositories, [
      { path: "empty-repo/", submodule: false },
      { path: "vendor/lib/", head: nestedHead, submodule: false },
    ]);
    assert.deepEqual(
      result.excluded.filter((entry) => entry.reason === "nested_repository").map((e) => e.path),
      ["empty-repo/", "vendor/lib/"],
    );
    assert.equal(await readFile(join(clone, "outer.txt"), "utf8"), "outer change\n");
  });

  it("reproduces all of the cases at once, with the line counts git gives", async () => {
    const { result, clone } = await roundTrip(async (wt) => {
      for (const testCase of cases) await testCase.mutate(wt);
      await put(wt, "vendor/lib/lib.txt", "nested\n");
      await git(join(wt, "vendor/lib"), "init", "-q");
      // Lines that look like a patch's own headers once prefixed with + or -.
      await put(wt, "headers.txt", "++ b/not-a-header\n-- a/nor-this\n@@ -1 +1 @@\n");
    });
    assert.ok(result.stats.files >= 25, `files: ${result.stats.files}`);
    assert.equal(result.stats.paths.length, 20);
    // The restore staged everything: git's own count of the change.
    const numstat = await git(clone, "diff", "--cached", "--numstat", "--no-renames", "HEAD");
    const expected = { insertions: 0, deletions: 0, binaryFiles: 0 };
    for (const line of numstat.trim().split("\n")) {
      const [added, deleted] = line.split("\t");
      if (added === "-") expected.binaryFiles++;
      else {
        expected.insertions += Number(added);
        expected.deletions += Number(deleted);
      }
    }
    const { insertions, deletions, binaryFiles } = result.stats;
    assert.deepEqual({ insertions, deletions, binaryFiles }, expected);
  });
});

describe("createGitCapturer() and the agent's repository", () => {
  it("leaves .git untouched: files, mtimes, index, HEAD, refs and stash", async () => {
    await withTempDir("git-untouched-", async (root) => {
      const { agent } = await createRepos(root, async (dir) => {
        await put(dir, "src/one.txt", "one\n".repeat(50));
        await put(dir, "src/two.txt", "two\n".repeat(50));
        await put(dir, "docs/readme.md", "# docs\n");
        // Enough directories that the capturer copies the base trees (git pack-objects).
        for (let i = 0; i < 80; i++) await put(dir, `lib/d${i}/index.txt`, `${i}\n`);
      });
      // Packed objects and loose ones, a stash, a linked worktree.
      await git(agent, "gc", "-q");
      await put(agent, "loose.txt", "a loose object\n");
      await git(agent, "add", "loose.txt");
      await git(agent, "commit", "-q", "-m", "loose");
      await put(agent, "src/one.txt", "stashed change\n");
      await git(agent, "stash", "-q");
      const linked = join(root, "linked");
      await git(agent, "worktree", "add", "-q", "-b", "side", linked);

      const gitDir = join(agent, ".git");
      const state = async () => ({
        files: await snapshotDir(gitDir),
        index: createHash("sha256").update(await readFile(join(gitDir, "index"))).digest("hex"),
        head: await git(agent, "rev-parse", "HEAD"),
        refs: await git(agent, "for-each-ref"),
        stash: await git(agent, "stash", "list"),
      });
      const before = await state();
      await sleep(20);

      for (const wt of [agent, linked]) {
        const capturer = await createGitCapturer({
          worktree: wt,
          stateDir: join(root, `state-${wt === agent ? 1 : 2}`),
        });
        // Content git already has (packed and loose): writing it again would "freshen" it.
        await cp(join(wt, "src/one.txt"), join(wt, "copy-of-packed.txt"));
        await cp(join(wt, "loose.txt"), join(wt, "copy-of-loose.txt"));
        assert.ok(await capturer.capture());
        // A directory identical to a tracked one: its tree object exists too.
        await cp(join(wt, "src"), join(wt, "src-copy"), { recursive: true });
        await put(wt, "docs/readme.md", "# changed\n");
        assert.ok(await capturer.capture());
        // Back to the committed content.
        await put(wt, "docs/readme.md", "# docs\n");
        assert.ok(await capturer.capture());
        await put(wt, "nested/repo/file.txt", "x\n");
        await git(join(wt, "nested/repo"), "init", "-q");
        await put(wt, "big.bin", randomBytes(6 * 1024 * 1024, 5));
        await put(wt, "docs/readme.md", "# changed again\n");
        const last = await capturer.capture();
        assert.deepEqual(last?.excluded.map((entry) => entry.reason), [
          "file_size",
          "nested_repository",
        ]);
        assert.equal(await capturer.capture(), undefined);
        assert.ok(await capturer.head());
        await capturer.dispose();
      }
      assert.deepEqual(await state(), before);
    });
  });

  it("never fails an agent's git add && git commit loop while capturing every 200 ms", async () => {
    const STEPS = 20;
    await withTempDir("git-race-", async (root) => {
      const { agent } = await createRepos(root, (dir) => put(dir, "seed.txt", "seed\n"));
      const capturer = await createGitCapturer({ worktree: agent, stateDir: join(root, "state") });
      let agentFailures = 0;
      let agentCommits = 0;
      let captures = 0;
      let running = true;
      const agentLoop = (async () => {
        for (let i = 0; i < STEPS; i++) {
          await put(agent, `work/${i}.txt`, `change ${i}\n`);
          try {
            await git(agent, "add", "-A");
            await git(agent, "commit", "-q", "-m", `step ${i}`);
            agentCommits++;
          } catch (error) {
            agentFailures++;
            console.error(error);
          }
        }
        running = false;
      })();
      const captureLoop = (async () => {
        while (running) {
          await capturer.capture();
          captures++;
          await sleep(200);
        }
      })();
      await Promise.all([agentLoop, captureLoop]);
      const last = await capturer.capture({ force: true });
      await capturer.dispose();
      assert.equal(agentFailures, 0);
      assert.equal(agentCommits, STEPS);
      assert.ok(captures >= 2, `captures: ${captures}`);
      assert.equal(last?.stats.files, STEPS);
    });
  });

  it("captures while another process holds .git/index.lock", async () => {
    await withTempDir("git-lock-", async (root) => {
      const { agent } = await createRepos(root, (dir) => put(dir, "seed.txt", "seed\n"));
      const lock = join(agent, (await git(agent, "rev-parse", "--git-path", "index.lock")).trim());
      const capturer = await createGitCapturer({ worktree: agent, stateDir: join(root, "state") });
      await writeFile(lock, "");
      try {
        await put(agent, "seed.txt", "changed under a lock\n");
        await put(agent, "new.txt", "new\n");
        const result = await capturer.capture();
        assert.deepEqual(result?.stats.paths, [
          { path: "new.txt", status: "A" },
          { path: "seed.txt", status: "M" },
        ]);
      } finally {
        await rm(lock, { force: true });
        await capturer.dispose();
      }
    });
  });
});

describe("createGitCapturer() special files", () => {
  it("captures LFS files as their bytes without running any git-lfs filter", async () => {
    await withTempDir("git-lfs-", async (root) => {
      const { upstream, agent } = await createRepos(root, async (dir) => {
        await put(
          dir,
          ".gitattributes",
          "*.bin filter=lfs diff=lfs merge=lfs -text\n*.psd filter=media\n",
        );
        await put(dir, "readme.md", "lfs\n");
      });
      // As `git lfs install` configures it (git-lfs itself is absent, so running it fails),
      // and a driver of another name running git-lfs.
      await git(agent, "config", "filter.lfs.process", "git-lfs filter-process");
      await git(agent, "config", "filter.lfs.clean", "git-lfs clean -- %f");
      await git(agent, "config", "filter.lfs.required", "true");
      await git(agent, "config", "filter.media.clean", "git-lfs clean -- %f");
      await git(agent, "config", "filter.media.required", "true");
      const capturer = await createGitCapturer({ worktree: agent, stateDir: join(root, "state") });
      const model = randomBytes(3000, 21);
      await put(agent, "model.bin", model);
      await put(agent, "art.psd", "layered image bytes\n");
      const result = await capturer.capture();
      await capturer.dispose();
      assert.ok(result?.patch);
      const target = join(root, "target");
      await git(root, "clone", "-q", upstream, target);
      await applyGitPatch({ worktree: target, patch: result.patch, baseCommit: result.baseCommit });
      assert.deepEqual(new Uint8Array(await readFile(join(target, "model.bin"))), model);
      assert.equal(await readFile(join(target, "art.psd"), "utf8"), "layered image bytes\n");
    });
  });

  it("records a submodule and the commit it moved to", async () => {
    await withTempDir("git-submodule-", async (root) => {
      const { mkdir } = await import("node:fs/promises");
      await mkdir(join(root, "lib"));
      const lib = await createRepos(join(root, "lib"), (dir) => put(dir, "lib.txt", "lib\n"));
      const { agent } = await createRepos(root, async (dir) => {
        await put(dir, "app.txt", "app\n");
        await git(
          dir,
          "-c",
          "protocol.file.allow=always",
          "submodule",
          "add",
          "-q",
          lib.upstream,
          "sub",
        );
      });
      await git(agent, "-c", "protocol.file.allow=always", "submodule", "update", "-q", "--init");
      const capturer = await createGitCapturer({ worktree: agent, stateDir: join(root, "state") });
      await put(join(agent, "sub"), "lib.txt", "lib, changed by the agent\n");
      await git(join(agent, "sub"), "commit", "-q", "-am", "agent change in the submodule");
      await put(join(agent, "sub"), "lib.txt", "lib, changed again, not committed\n");
      const moved = (await git(join(agent, "sub"), "rev-parse", "HEAD")).trim();
      // The submodule's repository lives in .git/modules: left untouched too.
      const before = await snapshotDir(join(agent, ".git"));
      await sleep(20);
      const result = await capturer.capture();
      await capturer.dispose();
      assert.deepEqual(await snapshotDir(join(agent, ".git")), before);
      assert.ok(result?.patch);
      assert.match(decoder.decode(result.patch), new RegExp(`\\+Subproject commit ${moved}`));
      assert.deepEqual(result.nestedRepositories, [{ path: "sub/", head: moved, submodule: true }]);
    });
  });

  it("captures a sparse checkout without deleting the files outside it", async () => {
    await withTempDir("git-sparse-", async (root) => {
      const { upstream, agent } = await createRepos(root, async (dir) => {
        await put(dir, "in/a.txt", "a\n");
        await put(dir, "out/b.txt", "b\n");
      });
      await git(agent, "sparse-checkout", "set", "--cone", "in");
      const capturer = await createGitCapturer({ worktree: agent, stateDir: join(root, "state") });
      await put(agent, "in/a.txt", "a, changed\n");
      await put(agent, "in/new.txt", "new\n");
      const result = await capturer.capture();
      await capturer.dispose();
      assert.deepEqual(result?.stats.paths, [
        { path: "in/a.txt", status: "M" },
        { path: "in/new.txt", status: "A" },
      ]);
      const target = join(root, "target");
      await git(root, "clone", "-q", upstream, target);
      await applyGitPatch({
        worktree: target,
        patch: result!.patch!,
        baseCommit: result!.baseCommit,
      });
      assert.equal(await readFile(join(target, "out/b.txt"), "utf8"), "b\n");
      assert.equal(await readFile(join(target, "in/new.txt"), "utf8"), "new\n");
    });
  });

  it("leaves out its own state directory when it lies inside the work tree", async () => {
    await withTempDir("git-state-inside-", async (root) => {
      const { agent } = await createRepos(root, (dir) => put(dir, "a.txt", "a\n"));
      const capturer = await createGitCapturer({
        worktree: agent,
        stateDir: join(agent, ".baa-state"),
      });
      await put(agent, "a.txt", "b\n");
      const result = await capturer.capture();
      await capturer.dispose();
      assert.deepEqual(result?.stats.paths, [{ path: "a.txt", status: "M" }]);
      assert.deepEqual(result?.excluded, []);
    });
  });

  it("stops a capture on abort or past its deadline, and the next capture works", async () => {
    await withTempDir("git-abort-", async (root) => {
      const { agent } = await createRepos(root, (dir) => put(dir, "a.txt", "a\n"));
      const capturer = await createGitCapturer({ worktree: agent, stateDir: join(root, "state") });
      await put(agent, "a.txt", "b\n");
      await assert.rejects(
        capturer.capture({ signal: AbortSignal.abort() }),
        (error) => error instanceof GitError && error.reason === "aborted",
      );
      await assert.rejects(
        capturer.capture({ timeoutMs: 1 }),
        (error) => error instanceof GitError && error.reason === "timeout",
      );
      const result = await capturer.capture();
      await capturer.dispose();
      assert.deepEqual(result?.stats.paths, [{ path: "a.txt", status: "M" }]);
    });
  });
});

describe("createGitCapturer() guards", () => {
  it("leaves out a 20 MB untracked binary, a node_modules-like tree and secrets, and lists them", async () => {
    await withTempDir("git-guards-", async (root) => {
      const { agent } = await createRepos(root, async (dir) => {
        await put(dir, "src/app.ts", "export const app = 1;\n");
        await put(dir, "config/service.key", "tracked key v1\n");
      });
      const capturer = await createGitCapturer({ worktree: agent, stateDir: join(root, "state") });
      await put(agent, "huge.bin", randomBytes(20 * 1024 * 1024, 11));
      for (let i = 0; i < 2500; i++) {
        await put(agent, `node_modules/pkg-${i % 60}/file-${i}.js`, `module.exports = ${i};\n`);
      }
      await put(agent, ".env", "API_TOKEN=SECRET-ENV-VALUE\n");
      await put(agent, ".env.example", "API_TOKEN=\n");
      await put(agent, "certs/dev.pem", "SECRET-PEM-VALUE\n");
      await put(agent, "config/service.key", "SECRET-KEY-VALUE\n");
      await put(agent, "src/app.ts", "export const app = 2;\n");
      const result = await capturer.capture();
      await capturer.dispose();
      assert.ok(result?.patch);
      const patch = decoder.decode(result.patch);
      for (const secret of ["SECRET-ENV-VALUE", "SECRET-PEM-VALUE", "SECRET-KEY-VALUE"]) {
        assert.ok(!patch.includes(secret), secret);
      }
      assert.ok(!patch.includes("node_modules") && !patch.includes("huge.bin"));
      assert.ok(result.patch.byteLength < 10_000);
      assert.deepEqual(result.excluded, [
        { path: ".env", reason: "pattern", pattern: ".env" },
        { path: "certs/dev.pem", reason: "pattern", pattern: "*.pem" },
        { path: "config/service.key", reason: "pattern", pattern: "*.key", tracked: true },
        { path: "huge.bin", reason: "file_size", bytes: 20 * 1024 * 1024 },
        { path: "node_modules/", reason: "directory_size", files: 2500 },
      ]);
      assert.deepEqual(result.stats.paths, [
        { path: ".env.example", status: "A" },
        { path: "src/app.ts", status: "M" },
      ]);
    });
  });

  it("keeps the stats and marks the result truncated past maxPatchBytes", async () => {
    await withTempDir("git-truncated-", async (root) => {
      const { agent } = await createRepos(root, (dir) => put(dir, "a.txt", "a\n"));
      const capturer = await createGitCapturer({
        worktree: agent,
        stateDir: join(root, "state"),
        maxPatchBytes: 1000,
      });
      await put(agent, "a.txt", "changed\n".repeat(500));
      await put(agent, "b.txt", "new\n");
      const result = await capturer.capture();
      await capturer.dispose();
      assert.ok(result);
      assert.equal(result.truncated, true);
      assert.equal(result.patch, undefined);
      assert.equal(result.sha256, undefined);
      assert.ok(result.patchBytes > 1000);
      assert.equal(result.stats.files, 2);
      assert.equal(result.stats.insertions, 501);
      assert.equal(result.stats.deletions, 1);
    });
  });

  it("leaves out a new directory or file once it outgrows its limit", async () => {
    await withTempDir("git-grow-", async (root) => {
      const { agent } = await createRepos(root, (dir) => put(dir, "a.txt", "a\n"));
      const capturer = await createGitCapturer({
        worktree: agent,
        stateDir: join(root, "state"),
        maxUntrackedDirFiles: 20,
        maxUntrackedFileBytes: 1000,
      });
      for (let i = 0; i < 10; i++) await put(agent, `gen/${i}.txt`, `${i}\n`);
      await put(agent, "grows.txt", "small\n");
      const first = await capturer.capture();
      assert.equal(first?.stats.files, 11);
      for (let i = 10; i < 30; i++) await put(agent, `gen/${i}.txt`, `${i}\n`);
      await put(agent, "grows.txt", "x".repeat(2000));
      await put(agent, "a.txt", "b\n");
      const second = await capturer.capture();
      await capturer.dispose();
      assert.deepEqual(second?.stats.paths, [{ path: "a.txt", status: "M" }]);
      assert.deepEqual(second?.excluded, [
        { path: "gen/", reason: "directory_size", files: 30 },
        { path: "grows.txt", reason: "file_size", bytes: 2000 },
      ]);
    });
  });
});

describe("createGitCapturer() dedupe and snapshots", () => {
  it("returns undefined while the tree equals the last captured one", async () => {
    await withTempDir("git-dedupe-", async (root) => {
      const { agent, base } = await createRepos(root, (dir) => put(dir, "a.txt", "a\n"));
      const capturer = await createGitCapturer({ worktree: agent, stateDir: join(root, "state") });
      assert.equal(await capturer.capture(), undefined, "an unchanged work tree is not a change");
      const unchanged = await capturer.snapshot();
      assert.equal(unchanged.tree, capturer.baseTree);
      assert.equal(unchanged.changed, false);

      await put(agent, "a.txt", "b\n");
      const snap = await capturer.snapshot();
      assert.equal(snap.changed, true);
      const first = await capturer.capture();
      assert.equal(first?.tree, snap.tree);
      assert.equal(first?.baseCommit, base);
      assert.equal(await capturer.capture(), undefined);

      // A touched file, or a change undone, is the same tree.
      await sleep(10);
      await put(agent, "a.txt", "b\n");
      await put(agent, "a.txt", "c\n");
      await put(agent, "a.txt", "b\n");
      assert.equal(await capturer.capture(), undefined);
      const forced = await capturer.capture({ force: true });
      assert.equal(forced?.tree, first?.tree);
      assert.equal(forced?.sha256, first?.sha256);

      // Back to the base: an empty patch, a real checkpoint.
      await put(agent, "a.txt", "a\n");
      const reverted = await capturer.capture();
      assert.equal(reverted?.tree, capturer.baseTree);
      assert.equal(reverted?.patch?.byteLength, 0);
      await capturer.dispose();
      await assert.rejects(capturer.capture(), /disposed/);
    });
  });

  it("treats a deleted file written again as the tracked file it is", async () => {
    await withTempDir("git-recreate-", async (root) => {
      const { agent } = await createRepos(root, async (dir) => {
        await put(dir, "a.txt", "a\n");
        await put(dir, "b.txt", "b\n");
      });
      const capturer = await createGitCapturer({
        worktree: agent,
        stateDir: join(root, "state"),
        maxUntrackedFileBytes: 100,
      });
      await rm(join(agent, "b.txt"));
      assert.deepEqual((await capturer.capture())?.stats.paths, [{ path: "b.txt", status: "D" }]);
      // Larger than the limit of new files: it is not new.
      await put(agent, "b.txt", "b, written again\n".repeat(20));
      const again = await capturer.capture();
      await capturer.dispose();
      assert.deepEqual(again?.stats.paths, [{ path: "b.txt", status: "M" }]);
      assert.deepEqual(again?.excluded, []);
    });
  });

  it("refuses a directory outside git and a base that is not a commit", async () => {
    await withTempDir("git-invalid-", async (root) => {
      await assert.rejects(
        createGitCapturer({ worktree: root, stateDir: join(root, "state") }),
        (error) => error instanceof ValidationError && error.field === "worktree",
      );
      const { agent } = await createRepos(root, (dir) => put(dir, "a.txt", "a\n"));
      await assert.rejects(
        createGitCapturer({
          worktree: agent,
          stateDir: join(root, "state"),
          baseRef: "no-such-ref",
        }),
        (error) => error instanceof ValidationError && error.field === "baseRef",
      );
    });
  });
});
