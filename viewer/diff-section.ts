// A git checkpoint on the run page: its stats, its restore command, and its patch rendered as a
// diff (files, added and removed lines), bounded for very large patches.

import type { RunRef } from "../core/read.ts";
import { RunnerError } from "../core/errors.ts";
import type { CheckpointRecord } from "../core/checkpoints.ts";
import { type GitCheckpointData, loadGitCheckpoint } from "../git/checkpoints.ts";
import { parseGitPatch } from "./diff.ts";
import { type Html, markup } from "./html.ts";
import { links, type ViewerContext } from "./context.ts";

/** Patch bytes parsed for the diff view at most; the rest is in the download. */
const MAX_PATCH_VIEW_BYTES = 2 * 1024 * 1024;

/**
 * The diff section of one git checkpoint.
 *
 * @param ctx The viewer.
 * @param ref The run.
 * @param record The checkpoint's record.
 * @returns The section.
 */
export async function gitDiffSection(
  ctx: ViewerContext,
  ref: RunRef,
  record: CheckpointRecord,
): Promise<Html> {
  const data = record.data as unknown as GitCheckpointData;
  let patchText: string | undefined;
  let problem: string | undefined;
  try {
    const { patch } = await loadGitCheckpoint(ctx.storage, ref, record.seq);
    patchText = new TextDecoder().decode(patch.subarray(0, MAX_PATCH_VIEW_BYTES));
  } catch (error) {
    if (!(error instanceof RunnerError)) throw error;
    problem = error.message;
  }
  const parsed = patchText === undefined ? undefined : parseGitPatch(patchText);
  const restore = ctx.restoreCommand({
    taskId: ref.taskId,
    runId: ref.runId,
    seq: record.seq,
    runsRootDir: ctx.runsRootDir,
  });
  return markup`<div class="git-diff" id="diff-${record.seq}">
<h3>Diff of checkpoint ${record.seq} (${data.trigger ?? "capture"}, against <code>${
    String(data.baseCommit ?? "").slice(0, 12)
  }</code>)</h3>
<p>${data.stats?.files ?? 0} files changed, <span class="added">${
    data.stats?.insertions ?? 0
  } added</span>, <span class="removed">${data.stats?.deletions ?? 0} removed</span>${
    data.truncated ? " — the patch was over its size limit and not kept" : ""
  }.</p>
<p>Restore it into a clean worktree at the base commit: <code class="restore">${restore}</code>${
    data.patch && !data.patch.deletedAt
      ? markup`
        · <a href="${links.patch(ctx, ref.taskId, ref.runId, record.seq)}">download the patch</a>
      `
      : ""
  }</p>
${problem ? markup`<p class="muted">${problem}</p>` : ""}
${
    parsed?.files.map((file) =>
      markup`
        <div class="diff">
          <div
            class="file"><span class="path">${
        file.newPath === "/dev/null" ? file.oldPath : file.newPath
      }</span> <span class="muted">${file.status}</span> <span class="added">+${file.added}</span> <span class="removed">−${file.removed}</span></div>
          <pre>${
        file.lines.map((line) => markup`<div class="${line.kind}">${line.text}</div>`)
      }</pre>
        </div>
      `
    )
  }
${
    parsed?.truncated || (patchText !== undefined && patchText.length >= MAX_PATCH_VIEW_BYTES)
      ? markup`
        <p
          class="muted">The diff is long: only its beginning is shown; download the patch for all of it.</p>
      `
      : ""
  }
</div>`;
}
