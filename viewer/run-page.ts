// A run's page: header, lifecycle timeline, logs (tailed, followed live), checkpoints with the
// git diff, artifacts. And the paged view of one log.

import { readRun, readRunLogBytes, runLiveness, type RunRef } from "../core/read.ts";
import type { StreamLogChannel } from "../core/types.ts";
import type { GitCheckpointData } from "../git/checkpoints.ts";
import { gitDiffSection } from "./diff-section.ts";
import { type Html, markup } from "./html.ts";
import { links, type ViewerContext } from "./context.ts";
import { linesMarkup, renderLogLines } from "./logs.ts";
import { outputMarkup, type OutputTail, readOutputTail } from "./output.ts";
import { RUN_PAGE_SCRIPT } from "./client.ts";
import { badge, badgeWord, formatDuration, page, time } from "./shell.ts";

const CHANNELS: readonly StreamLogChannel[] = ["stdout", "stderr"];

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** One log's tail on the run page: the markup and where following resumes. */
async function logPane(
  ctx: ViewerContext,
  ref: RunRef,
  channel: StreamLogChannel,
  size: number | undefined,
  live: boolean,
): Promise<Html> {
  // The size the state reports is stored (the state is written after the log bytes), so the
  // range [start, size) is exact and following resumes at its end; without it, the tail alone.
  let bytes: Uint8Array;
  let start: number;
  if (size !== undefined) {
    start = Math.max(0, size - ctx.tailBytes);
    bytes = await readRunLogBytes(ctx.storage, ref, channel, {
      offset: start,
      length: size - start,
    });
  } else {
    bytes = await readRunLogBytes(ctx.storage, ref, channel, { tail: ctx.tailBytes });
    start = 0;
  }
  const end = start + bytes.byteLength;
  const { lines, open } = renderLogLines(bytes, start > 0);
  const logLink = links.log(ctx, ref.taskId, ref.runId, channel);
  return markup`<div class="pane" data-pane="${channel}">
<h3>${channel}</h3>
${
    start > 0
      ? markup`
        <p
          class="muted">Showing the last ${formatBytes(bytes.byteLength)} of ${
        formatBytes(
          size ?? end,
        )
      }. <a href="${logLink}?offset=0">Read the whole log, page by page</a>.</p>
      `
      : ""
  }
<pre class="log" id="log-${channel}" data-channel="${channel}" data-offset="${end}" data-open="${
    open ? "1" : "0"
  }"${
    live
      ? markup`
        data-events="${logLink}/events"
      `
      : ""
  }>${linesMarkup(lines)}</pre>
</div>`;
}

/** Both streams in print order, their tail; followed live from the cursor after it. */
function combinedPane(
  ctx: ViewerContext,
  ref: RunRef,
  tail: OutputTail,
  total: number,
  live: boolean,
): Html {
  // Without a cursor there is nothing to resume after: following from the start is right for a
  // run with no output yet, but would ship all of one whose tail could not be read yet.
  const followed = live && (tail.cursor !== undefined || !tail.cut);
  const paged = (channel: StreamLogChannel) =>
    markup`<a href="${links.log(ctx, ref.taskId, ref.runId, channel)}?offset=0">${channel}</a>`;
  return markup`<div class="pane" data-pane="combined">
<h3>stdout and stderr</h3>
<p class="muted">${
    tail.cut
      ? markup`Showing the last ${formatBytes(tail.bytes)} of the output (${
        formatBytes(Math.max(total, tail.bytes))
      } in all). Read ${paged("stdout")} or ${paged("stderr")} page by page. `
      : ""
  }Both streams in the order they were printed, stderr marked in red.${
    followed
      ? " New output appears here as it is stored."
      : live
      ? " Reload to follow new output."
      : ""
  }</p>
<pre class="log" id="log-combined"${
    tail.cursor === undefined ? "" : markup` data-cursor="${tail.cursor}"`
  } data-open-stdout="${tail.open.stdout ? "1" : "0"}" data-open-stderr="${
    tail.open.stderr ? "1" : "0"
  }"${followed ? markup` data-events="${links.output(ctx, ref.taskId, ref.runId)}/events"` : ""}>${
    outputMarkup(tail)
  }</pre>
</div>`;
}

/**
 * Renders a run's page.
 *
 * @param ctx The viewer.
 * @param ref The run.
 * @param url The request URL (`checkpoint` picks the git checkpoint whose diff shows).
 * @param nonce The CSP nonce.
 * @returns The document.
 * @throws {NotFoundError} The run does not exist.
 */
export async function runPage(
  ctx: ViewerContext,
  ref: RunRef,
  url: URL,
  nonce: string,
): Promise<string> {
  const run = await readRun(ctx.storage, ref);
  const { metadata: meta, state } = run;
  const now = Date.now();
  const liveness = runLiveness(state, { now, staleAfterMs: ctx.staleAfterMs });
  const live = liveness === "live";
  const word = badgeWord(state, liveness);
  const started = state?.startedAt ?? meta.createdAt;
  const duration = formatDuration(
    (state?.finishedAt ? Date.parse(state.finishedAt) : now) - Date.parse(started),
  );
  const heartbeatMs = state?.updatedAt ? now - Date.parse(state.updatedAt) : undefined;
  const sizes = { stdout: state?.stdoutBytes, stderr: state?.stderrBytes };
  const [tail, ...panes] = await Promise.all([
    readOutputTail(ctx.storage, ref, ctx.tailBytes, sizes),
    ...CHANNELS.map((channel) => logPane(ctx, ref, channel, sizes[channel], live)),
  ]);
  const gitRecords = run.checkpoints.filter((c) => c.type === "git_diff");
  const wanted = Number(url.searchParams.get("checkpoint"));
  const shown = gitRecords.find((c) => c.seq === wanted) ??
    [...gitRecords].reverse().find((c) => {
      const patch = (c.data as unknown as GitCheckpointData).patch;
      return patch !== null && patch !== undefined && !patch.deletedAt;
    });
  const diff = shown ? await gitDiffSection(ctx, ref, shown) : "";
  const command = Array.isArray(meta.command) ? meta.command.join(" ") : meta.command;

  const body = markup`
    <h1><a href="${links.list(ctx, { task: meta.taskId })}">${meta.taskId}</a> / ${meta.runId} ${
    badge(word, "liveness")
  }</h1>
    <dl class="facts">
    <dt>Task</dt><dd class="mono">${meta.taskId}</dd>
    <dt>Run</dt><dd class="mono">${meta.runId}</dd>
    <dt>Step</dt><dd>${meta.stepName} <span class="muted mono">${meta.stepId}</span></dd>
    <dt>Worker</dt><dd>${meta.workerKind}, attempt ${meta.attempt}</dd>
    <dt>Status</dt><dd><span id="status">${
    state?.status ??
      "unknown"
  }</span> <span id="status-note" class="muted"></span></dd>
    <dt>Started</dt><dd>${time(started)}</dd>
    ${
    state?.finishedAt
      ? markup`
        <dt>Finished</dt>
        <dd>${time(state.finishedAt)}</dd>
      `
      : ""
  }
    <dt>Duration</dt><dd>${duration}${live ? markup`<span id="so-far"> so far</span>` : ""}</dd>
    ${
    heartbeatMs !== undefined && !state?.finishedAt
      ? markup`
        <dt>Heartbeat</dt>
        <dd><span id="heartbeat-age" data-age-ms="${heartbeatMs}">${
        Math.round(
          heartbeatMs / 1000,
        )
      } s ago</span></dd>
      `
      : ""
  }
    <dt>Exit</dt><dd id="exit-code">${state?.exitCode ?? ""}</dd>
    ${
    state?.reason
      ? markup`
        <dt>Reason</dt>
        <dd>${state.reason}</dd>
      `
      : ""
  }
    ${
    state?.signal
      ? markup`
        <dt>Signal</dt>
        <dd>${state.signal}</dd>
      `
      : ""
  }
    ${
    state?.summary
      ? markup`
        <dt>Summary</dt>
        <dd>${state.summary}</dd>
      `
      : ""
  }
    ${
    meta.promptSummary
      ? markup`
        <dt>Prompt</dt>
        <dd>${meta.promptSummary}</dd>
      `
      : ""
  }
    ${
    command
      ? markup`
        <dt>Command</dt>
        <dd class="mono">${command}</dd>
      `
      : ""
  }
    ${
    meta.resumedFrom
      ? markup`
        <dt>Resumed from</dt>
        <dd><a href="${
        links.run(ctx, meta.taskId, meta.resumedFrom.runId)
      }">${meta.resumedFrom.runId}</a>, checkpoint ${meta.resumedFrom.seq}</dd>
      `
      : ""
  }
    </dl>

    <section id="timeline">
      <h2>Timeline</h2>
      <ol class="timeline">${
    run.events.map((event) =>
      markup`
          <li
            data-type="${event.type}">${
        time(event.createdAt)
      } <span class="muted">${event.level}</span> <strong>${event.type}</strong> ${event.message}</li>
        `
    )
  }</ol>
    </section>

    <section id="logs"><h2>Logs</h2>
    <div class="tabs" role="tablist"><button type="button" data-tab="stdout">stdout</button><button type="button" data-tab="stderr">stderr</button><button type="button" data-tab="combined">both, by sequence</button></div>
    ${panes}
    ${combinedPane(ctx, ref, tail, (sizes.stdout ?? 0) + (sizes.stderr ?? 0), live)}
    </section>

    <section id="checkpoints"><h2>Checkpoints</h2>
    ${
    run.checkpoints.length === 0 ? markup`<p class="muted">None.</p>` : markup`
      <table>
        <thead>
          <tr>
            <th>#</th>
            <th>Type</th>
            <th>Time</th>
            <th>Summary</th>
          </tr>
        </thead>
        <tbody>${
      run.checkpoints.map((c) =>
        markup`
            <tr>
              <td>${c.seq}</td>
              <td>${c.type}</td>
              <td>${time(c.createdAt)}</td>
              <td>${c.summary}${
          c.type === "git_diff"
            ? markup`
                  · <a href="${
              links.run(ctx, ref.taskId, ref.runId)
            }?checkpoint=${c.seq}#diff-${c.seq}">diff</a>
                `
            : ""
        }</td>
            </tr>
          `
      )
    }</tbody>
      </table>
    `
  }
    ${diff}
    </section>

    <section id="artifacts"><h2>Artifacts</h2>
    ${
    run.artifacts.length === 0 ? markup`<p class="muted">None.</p>` : markup`
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Kind</th>
            <th>Size</th>
            <th>Description</th>
          </tr>
        </thead>
        <tbody>${
      run.artifacts.map((a) =>
        markup`
            <tr>
              <td><a download href="${
          links.artifact(ctx, ref.taskId, ref.runId, a.name)
        }">${a.name}</a></td>
              <td>${a.kind}</td>
              <td>${formatBytes(a.size)}</td>
              <td>${a.description ?? ""}</td>
            </tr>
          `
      )
    }</tbody>
      </table>
    `
  }
    </section>
  `;
  return page({
    title: `${meta.taskId} / ${meta.runId}`,
    appTitle: ctx.appTitle,
    home: links.list(ctx),
    nonce,
    script: RUN_PAGE_SCRIPT,
  }, body);
}

/**
 * Renders one page of a log (`offset` query parameter, `logPageBytes` per page).
 *
 * @param ctx The viewer.
 * @param ref The run.
 * @param channel The log.
 * @param url The request URL.
 * @param nonce The CSP nonce.
 * @returns The document.
 * @throws {NotFoundError} The run does not exist.
 */
export async function logPage(
  ctx: ViewerContext,
  ref: RunRef,
  channel: StreamLogChannel,
  url: URL,
  nonce: string,
): Promise<string> {
  const raw = Number(url.searchParams.get("offset") ?? "0");
  const offset = Number.isSafeInteger(raw) && raw > 0 ? raw : 0;
  const bytes = await readRunLogBytes(ctx.storage, ref, channel, {
    offset,
    length: ctx.logPageBytes,
  });
  const { lines } = renderLogLines(bytes, offset > 0);
  const here = links.log(ctx, ref.taskId, ref.runId, channel);
  const body = markup`<h1><a href="${
    links.run(ctx, ref.taskId, ref.runId)
  }">${ref.taskId} / ${ref.runId}</a>: ${channel}</h1>
<p class="muted">Bytes ${offset} to ${offset + bytes.byteLength}.</p>
<pre class="log" id="log-${channel}">${linesMarkup(lines)}</pre>
<nav class="pager">${
    offset > 0
      ? markup`<a rel="prev" href="${here}?offset=${
        Math.max(0, offset - ctx.logPageBytes)
      }">previous page</a>`
      : ""
  }${
    bytes.byteLength === ctx.logPageBytes
      ? markup`<a rel="next" href="${here}?offset=${offset + bytes.byteLength}">next page</a>`
      : ""
  }</nav>`;
  return page({
    title: `${ref.runId} ${channel}`,
    appTitle: ctx.appTitle,
    home: links.list(ctx),
    nonce,
  }, body);
}
