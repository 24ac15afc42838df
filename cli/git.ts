// What a run changed: `runs diff` prints a git checkpoint's patch, `runs restore` applies it.

import { loadGitCheckpoint, restoreCheckpoint } from "../git/checkpoints.ts";
import { intFlag, json, runRef, stringFlag } from "./flags.ts";
import type { CommandContext } from "./main.ts";
import { EXIT, UsageError } from "./usage.ts";

/** `runs diff`. */
export async function diff(context: CommandContext): Promise<number> {
  const ref = runRef(context);
  const seq = intFlag(context, "seq");
  const { record, data, patch } = await loadGitCheckpoint(context.storage(), ref, seq);
  await context.output.note(
    `git checkpoint #${record.seq} (${data.trigger}) against ${
      data.baseCommit.slice(0, 12)
    }: ${data.stats.files} files +${data.stats.insertions} -${data.stats.deletions}`,
  );
  if (!context.output.colour) {
    await context.output.out(patch);
    return EXIT.ok;
  }
  const s = context.style;
  const text = new TextDecoder().decode(patch).split("\n").map((line) =>
    line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff ")
      ? s.bold(line)
      : line.startsWith("+")
      ? s.green(line)
      : line.startsWith("-")
      ? s.red(line)
      : line.startsWith("@@")
      ? s.cyan(line)
      : line
  ).join("\n");
  await context.output.out(text);
  return EXIT.ok;
}

/** `runs restore`. */
export async function restore(context: CommandContext): Promise<number> {
  const ref = runRef(context);
  const worktree = stringFlag(context, "worktree");
  if (worktree === undefined) throw new UsageError("restore needs --worktree DIR");
  const dryRun = context.values["dry-run"] === true;
  const result = await restoreCheckpoint(context.storage(), ref, {
    worktree,
    seq: intFlag(context, "seq"),
    dryRun,
  });
  const code = result.conflicts.length > 0 ? EXIT.failed : EXIT.ok;
  if (context.values.json) {
    await json(context, { ...result, dryRun, worktree });
    return code;
  }
  const s = context.style;
  const what = `git checkpoint #${result.seq} of ${ref.taskId}/${ref.runId} (base ${
    result.baseCommit.slice(0, 12)
  })`;
  let text = dryRun
    ? `Would apply ${what} to ${worktree}: ${
      result.conflicts.length === 0 ? "applies cleanly" : "with conflicts"
    }\n`
    : `${
      result.conflicts.length === 0 ? "Restored" : "Restored with conflicts"
    } ${what} into ${worktree}\n`;
  for (const path of result.conflicts) text += `  ${s.red("conflict")}  ${path}\n`;
  for (const excluded of result.excluded) {
    text += `  ${s.yellow("not restored")}  ${excluded.path} (${excluded.reason})\n`;
  }
  await context.output.out(text);
  return code;
}
