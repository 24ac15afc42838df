// The runs list: every run a link, its badge in words, filters by task and status, paging.

import { type ListRunsOptions, listRunsPage, type RunListEntry } from "../core/list.ts";
import { createRunKeys, normalizePrefix } from "../core/layout.ts";
import { mapLimited, readJson } from "../core/read.ts";
import { RunMetadataSchema } from "../core/schemas.ts";
import { ValidationError } from "../core/errors.ts";
import type { RunMetadata } from "../core/types.ts";
import { markup } from "./html.ts";
import { links, type ViewerContext } from "./context.ts";
import { badge, type BadgeWord, badgeWord, formatDuration, page, time } from "./shell.ts";

/** The status filter's choices: the badge words. */
export const STATUS_FILTERS: readonly BadgeWord[] = [
  "live",
  "stale",
  "finished",
  "failed",
  "blocked",
];

function filterOptions(word: string | undefined): Pick<ListRunsOptions, "status" | "liveness"> {
  switch (word) {
    case "live":
    case "stale":
      return { liveness: word };
    case "finished":
      return { status: "completed" };
    case "failed":
    case "blocked":
      return { status: word };
    default:
      return {};
  }
}

/** A page of the list, as markup, or a problem with the query. */
export interface ListPageResult {
  /** HTTP status. */
  status: number;
  /** The document. */
  body: string;
}

/**
 * Renders the runs list.
 *
 * @param ctx The viewer.
 * @param url The request URL (`task`, `status`, `cursor` query parameters).
 * @param nonce The CSP nonce.
 * @returns The page.
 */
export async function listPage(
  ctx: ViewerContext,
  url: URL,
  nonce: string,
): Promise<ListPageResult> {
  const task = url.searchParams.get("task")?.trim() || undefined;
  const statusParam = url.searchParams.get("status") || undefined;
  const status = STATUS_FILTERS.includes(statusParam as BadgeWord) ? statusParam : undefined;
  const cursor = url.searchParams.get("cursor") || undefined;
  let problem: string | undefined;
  let entries: RunListEntry[] = [];
  let next: string | undefined;
  try {
    const listed = await listRunsPage(ctx.storage, {
      taskId: task,
      runsRootDir: ctx.runsRootDir,
      limit: ctx.pageSize,
      cursor,
      staleAfterMs: ctx.staleAfterMs,
      ...filterOptions(status),
    });
    entries = listed.runs;
    next = listed.cursor;
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    problem = error.issues.map((issue) => `${issue.path}: ${issue.message}`).join("; ");
  }
  const root = normalizePrefix(ctx.runsRootDir);
  const metas = await mapLimited(
    entries,
    (entry) =>
      readJson(ctx.storage, createRunKeys(root, entry.taskId, entry.runId).meta, RunMetadataSchema)
        .catch(() => undefined as RunMetadata | undefined),
  );
  const now = Date.now();
  const rows = entries.map((entry, i) => {
    const meta = metas[i];
    const state = entry.state;
    const started = state?.startedAt ?? meta?.createdAt;
    const end = state?.finishedAt ? Date.parse(state.finishedAt) : now;
    const duration = started ? formatDuration(end - Date.parse(started)) : "";
    const word = badgeWord(state, entry.liveness);
    return markup`
      <tr data-run="${entry.taskId}/${entry.runId}">
        <td><a href="${links.run(ctx, entry.taskId, entry.runId)}">${entry.runId}</a></td>
        <td>${badge(word)}${
      state?.status && state.status !== "completed" && state.status !== word
        ? markup`
            <span class="muted">${state.status}</span>
          `
        : ""
    }</td>
        <td><a href="${links.list(ctx, { task: entry.taskId, status })}">${entry.taskId}</a></td>
        <td>${meta?.stepName ?? ""}${
      meta
        ? markup`
            <span class="muted mono">${meta.stepId}</span>
          `
        : ""
    }</td>
        <td>${meta?.workerKind ?? ""}</td>
        <td>${state?.attempt ?? meta?.attempt ?? ""}</td>
        <td>${time(started)}</td>
        <td>${duration}${
      entry.liveness === "live"
        ? markup`
            <span class="muted">so far</span>
          `
        : ""
    }</td>
        <td>${state?.exitCode ?? ""}</td>
        <td>${state?.summary ?? ""}</td>
      </tr>
    `;
  });
  const live = entries.some((entry) => entry.liveness === "live");
  const body = markup`<h1>Runs</h1>
<form class="filters" method="get" action="${links.list(ctx)}">
<label>Task <input name="task" value="${task ?? ""}" placeholder="any task"></label>
<label>Status <select name="status"><option value="">any</option>${
    STATUS_FILTERS.map((word) =>
      markup`
        <option value="${word}" ${
        word === status
          ? markup`
            selected
          `
          : ""
      }>${word}</option>
      `
    )
  }</select></label>
<button type="submit">Filter</button>
${task || status ? markup`<a href="${links.list(ctx)}">clear filters</a>` : ""}
</form>
${problem ? markup`<p role="alert">Cannot list runs: ${problem}</p>` : ""}
${live ? markup`<p class="muted">Live runs are shown: this page refreshes every 5 s.</p>` : ""}
${
    entries.length === 0 && !problem
      ? markup`<p>No runs${task || status ? " match these filters" : ""}.</p>`
      : markup`
        <table>
          <thead>
            <tr>
              <th>Run</th>
              <th>Status</th>
              <th>Task</th>
              <th>Step</th>
              <th>Worker</th>
              <th>Attempt</th>
              <th>Started</th>
              <th>Duration</th>
              <th>Exit</th>
              <th>Summary</th>
            </tr>
          </thead>
          <tbody>${rows}</tbody>
        </table>
      `
  }
<nav class="pager">${
    cursor ? markup`<a href="${links.list(ctx, { task, status })}">first page</a>` : ""
  }${
    next
      ? markup`<a rel="next" href="${
        links.list(ctx, { task, status, cursor: next })
      }">next page</a>`
      : ""
  }</nav>`;
  return {
    status: problem ? 400 : 200,
    body: page({
      title: "Runs",
      appTitle: ctx.appTitle,
      home: links.list(ctx),
      nonce,
      refreshSec: live ? 5 : undefined,
    }, body),
  };
}
