// Tests of applyGitPatch(): clean targets only, base commit required, 3-way apply over upstream
// changes, conflicts listed and nothing deleted, dry runs that change nothing.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { BaseCommitMissingError, DirtyWorktreeError, ValidationError } from "../core/errors.ts";
import { createGitCapturer, type GitCaptureResult } from "../git/capture.ts";
import { applyGitPatch } from "../git/restore.ts";
import { assertSameTree, createRepos, git, leaves, put, withTempDir } from "./git_helpers.ts";

interface Scenario {
  root: string;
  upstream: string;
  base: string;
  capture: GitCaptureResult & { patch: Uint8Array };
}

/**
 * An upstream repository, a capture of the agent's change to it (`a.txt` line 2, `b.txt`
 * deleted, `new.txt` added), and optionally a commit pushed upstream afterwards.
 */
async function scenario(
  root: string,
  upstreamChange?: (dir: string) => Promise<void>,
): Promise<Scenario> {
  const lines = Array.from({ length: 20 }, (_, i) => `line ${i + 1}\n`);
  const { upstream, agent, base } = await createRepos(root, async (dir) => {
    await put(dir, "a.txt", lines.join(""));
    await put(dir, "b.txt", "bravo\n");
    await put(dir, "c.txt", "charlie\n");
    await put(dir, "dir/d.txt", "delta\n");
  });
  const capturer = await createGitCapturer({ worktree: agent, stateDir: join(root, "state") });
  const changed = [...lines];
  changed[1] = "agent changed line 2\n";
  await put(agent, "a.txt", changed.join(""));
  await rm(join(agent, "b.txt"));
  await put(agent, "new.txt", "agent's new file\n");
  const capture = await capturer.capture();
  await capturer.dispose();
  assert.ok(capture?.patch);
  if (upstreamChange) {
    const other = join(root, "other");
    await git(root, "clone", "-q", upstream, other);
    await upstreamChange(other);
    await git(other, "add", "-A");
    await git(other, "commit", "-q", "-m", "upstream change");
    await git(other, "push", "-q", "origin", "HEAD");
  }
  return { root, upstream, base, capture: capture as Scenario["capture"] };
}

async function freshClone(s: Scenario, name = "target"): Promise<string> {
  const target = join(s.root, name);
  await git(s.root, "clone", "-q", s.upstream, target);
  return target;
}

async function gitState(dir: string) {
  return {
    head: await git(dir, "rev-parse", "HEAD"),
    status: await git(dir, "status", "--porcelain", "--untracked-files=all"),
    index: createHash("sha256").update(await readFile(join(dir, ".git/index"))).digest("hex"),
    tree: await leaves(dir),
  };
}

describe("applyGitPatch()", () => {
  it("refuses a target with changes, untracked files included, and touches nothing", async () => {
    await withTempDir("git-restore-dirty-", async (root) => {
      const s = await scenario(root);
      const target = await freshClone(s);
      await put(target, "c.txt", "locally modified\n");
      await assert.rejects(
        applyGitPatch({ worktree: target, patch: s.capture.patch, baseCommit: s.base }),
        (error) =>
          error instanceof DirtyWorktreeError && error.code === "dirty_worktree" &&
          error.paths.join() === "c.txt",
      );
      await git(target, "checkout", "--", "c.txt");
      await put(target, "untracked/notes.txt", "mine\n");
      const before = await gitState(target);
      await assert.rejects(
        applyGitPatch({ worktree: target, patch: s.capture.patch, baseCommit: s.base }),
        (error) =>
          error instanceof DirtyWorktreeError && error.paths.join() === "untracked/notes.txt",
      );
      assert.deepEqual(await gitState(target), before);
    });
  });

  it("requires the base commit in the target, and a work tree", async () => {
    await withTempDir("git-restore-base-", async (root) => {
      const s = await scenario(root);
      await mkdir(join(root, "unrelated"));
      const unrelated = await createRepos(
        join(root, "unrelated"),
        (dir) => put(dir, "z.txt", "z\n"),
      );
      await assert.rejects(
        applyGitPatch({ worktree: unrelated.agent, patch: s.capture.patch, baseCommit: s.base }),
        (error) =>
          error instanceof BaseCommitMissingError && error.code === "base_commit_missing" &&
          error.baseCommit === s.base,
      );
      await assert.rejects(
        applyGitPatch({ worktree: unrelated.agent, patch: s.capture.patch, baseCommit: "HEAD" }),
        (error) => error instanceof ValidationError && error.field === "baseCommit",
      );
      for (const worktree of [join(root, "missing"), root]) {
        await assert.rejects(
          applyGitPatch({ worktree, patch: s.capture.patch, baseCommit: s.base }),
          (error) => error instanceof ValidationError && error.field === "worktree",
        );
      }
    });
  });

  it("applies over an unrelated upstream commit", async () => {
    await withTempDir("git-restore-moved-", async (root) => {
      const s = await scenario(root, (dir) => put(dir, "dir/d.txt", "delta, changed upstream\n"));
      const target = await freshClone(s);
      assert.notEqual((await git(target, "rev-parse", "HEAD")).trim(), s.base);
      const result = await applyGitPatch({
        worktree: target,
        patch: s.capture.patch,
        baseCommit: s.base,
      });
      assert.deepEqual(result, { applied: true, conflicts: [] });
      assert.match(await readFile(join(target, "a.txt"), "utf8"), /agent changed line 2/);
      assert.equal(await readFile(join(target, "new.txt"), "utf8"), "agent's new file\n");
      await assert.rejects(readFile(join(target, "b.txt")));
      assert.equal(await readFile(join(target, "dir/d.txt"), "utf8"), "delta, changed upstream\n");
      // Staged, never committed.
      assert.equal((await git(target, "rev-list", "--count", "HEAD")).trim(), "2");
      assert.match(await git(target, "status", "--porcelain"), /^M {2}a\.txt$/m);
    });
  });

  it("lists an overlapping upstream change as a conflict and deletes nothing", async () => {
    await withTempDir("git-restore-conflict-", async (root) => {
      const s = await scenario(root, async (dir) => {
        const text = await readFile(join(dir, "a.txt"), "utf8");
        await put(dir, "a.txt", text.replace("line 2\n", "upstream changed line 2\n"));
        await put(dir, "b.txt", "bravo, changed upstream\n");
        await put(dir, "upstream-only.txt", "upstream\n");
      });
      const target = await freshClone(s);
      const result = await applyGitPatch({
        worktree: target,
        patch: s.capture.patch,
        baseCommit: s.base,
      });
      // a.txt: both changed line 2; b.txt: deleted by the agent, changed upstream.
      assert.deepEqual(result, { applied: true, conflicts: ["a.txt", "b.txt"] });
      const a = await readFile(join(target, "a.txt"), "utf8");
      assert.match(a, /<<<<<<< [^\n]*\n[^]*upstream changed line 2[^]*agent changed line 2/);
      assert.equal(await readFile(join(target, "b.txt"), "utf8"), "bravo, changed upstream\n");
      assert.equal(await readFile(join(target, "upstream-only.txt"), "utf8"), "upstream\n");
      assert.equal(await readFile(join(target, "new.txt"), "utf8"), "agent's new file\n");
      assert.equal(await readFile(join(target, "c.txt"), "utf8"), "charlie\n");
    });
  });

  it("changes nothing in a dry run, and tells the conflicts it would leave", async () => {
    await withTempDir("git-restore-dry-", async (root) => {
      const s = await scenario(root, async (dir) => {
        const text = await readFile(join(dir, "a.txt"), "utf8");
        await put(dir, "a.txt", text.replace("line 2\n", "upstream changed line 2\n"));
      });
      const target = await freshClone(s);
      const before = await gitState(target);
      const dry = await applyGitPatch({
        worktree: target,
        patch: s.capture.patch,
        baseCommit: s.base,
        dryRun: true,
      });
      assert.deepEqual(dry, { applied: false, conflicts: ["a.txt"] });
      assert.deepEqual(await gitState(target), before);

      const clean = await freshClone({ ...s }, "clean");
      await git(clean, "checkout", "-q", "--detach", s.base);
      const cleanBefore = await gitState(clean);
      assert.deepEqual(
        await applyGitPatch({
          worktree: clean,
          patch: s.capture.patch,
          baseCommit: s.base,
          dryRun: true,
        }),
        { applied: false, conflicts: [] },
      );
      assert.deepEqual(await gitState(clean), cleanBefore);
    });
  });

  it("reproduces the captured tree on a clone at the base commit, and takes an empty patch", async () => {
    await withTempDir("git-restore-exact-", async (root) => {
      const s = await scenario(root);
      const target = await freshClone(s);
      assert.deepEqual(
        await applyGitPatch({ worktree: target, patch: s.capture.patch, baseCommit: s.base }),
        { applied: true, conflicts: [] },
      );
      assertSameTree(await leaves(target), await leaves(join(root, "agent")));
      const empty = await freshClone(s, "empty");
      assert.deepEqual(
        await applyGitPatch({ worktree: empty, patch: new Uint8Array(0), baseCommit: s.base }),
        { applied: true, conflicts: [] },
      );
    });
  });
});
