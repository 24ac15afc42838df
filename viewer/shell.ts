// The page shell shared by the viewer's pages: document, styles, badges, time formatting.

import { type Html, markup, ownMarkup, toMarkup } from "./html.ts";
import type { RunLiveness } from "../core/read.ts";
import type { RunStateSnapshot } from "../core/types.ts";

const STYLE = `
:root { color-scheme: light dark; --fg: #1f2328; --bg: #ffffff; --muted: #59636e; --line: #d1d9e0;
  --term-bg: #1e1e1e; --term-fg: #d4d4d4; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --bg: #0d1117; --muted: #9198a1;
  --line: #3d444d; } }
body { font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); margin: 0; }
header.top { padding: 10px 20px; border-bottom: 1px solid var(--line); }
header.top a { color: inherit; text-decoration: none; font-weight: 600; }
main { padding: 16px 20px; }
a { color: #0969da; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
  font-weight: 600; border: 1px solid currentColor; }
.badge-live { color: #1a7f37; } .badge-finished { color: #0969da; } .badge-failed { color: #cf222e; }
.badge-stale { color: #9a6700; } .badge-blocked { color: #8250df; } .badge-prepared { color: var(--muted); }
form.filters { display: flex; gap: 10px; align-items: end; margin-bottom: 12px; flex-wrap: wrap; }
form.filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: 0 0 16px; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
section { margin: 22px 0; }
h1 { font-size: 20px; margin: 0 0 10px; } h2 { font-size: 16px; margin: 0 0 8px; }
pre.log { background: var(--term-bg); color: var(--term-fg); padding: 8px 10px; margin: 0;
  max-height: 60vh; overflow: auto; white-space: pre-wrap; word-break: break-all; border-radius: 6px; }
pre.log .line { min-height: 1.3em; }
pre.log .ch-stderr { border-left: 2px solid #cd3131; padding-left: 6px; }
pre.log .ch-stdout { border-left: 2px solid transparent; padding-left: 6px; }
.tabs { display: flex; gap: 6px; margin-bottom: 6px; }
.tabs button { font: inherit; padding: 3px 10px; border: 1px solid var(--line); background: none;
  color: inherit; border-radius: 6px; cursor: pointer; }
.tabs button[aria-selected="true"] { background: var(--line); }
.pane h3 { font-size: 13px; margin: 8px 0 4px; }
ol.timeline { list-style: none; padding: 0; margin: 0; }
ol.timeline li { padding: 3px 0; border-bottom: 1px dashed var(--line); }
.diff { border: 1px solid var(--line); border-radius: 6px; margin: 8px 0; overflow: auto; }
.diff .file { padding: 4px 8px; background: rgba(127,127,127,.12); font-weight: 600; }
.diff pre { margin: 0; padding: 0; }
.diff .add { background: rgba(46,160,67,.18); } .diff .del { background: rgba(248,81,73,.18); }
.diff .hunk { color: var(--muted); background: rgba(56,139,253,.10); } .diff .meta { color: var(--muted); }
.diff .add::before { content: "+"; } .diff .del::before { content: "-"; } .diff .ctx::before { content: " "; }
.added { color: #1a7f37; } .removed { color: #cf222e; }
nav.pager { margin-top: 12px; display: flex; gap: 14px; }
`;

/** The words of the badges: what a run is, never colour alone. */
export type BadgeWord = "live" | "stale" | "finished" | "failed" | "blocked";

/**
 * The badge word of a run: `live` or `stale` while not finished, else by how it ended.
 *
 * @param state The run's state.
 * @param liveness Its liveness.
 * @returns The word.
 */
export function badgeWord(state: RunStateSnapshot | undefined, liveness: RunLiveness): BadgeWord {
  if (liveness !== "finished") return liveness;
  if (state?.status === "failed") return "failed";
  if (state?.status === "blocked") return "blocked";
  return "finished";
}

/**
 * A badge: the word in text, its colour only a second cue.
 *
 * @param word The word.
 * @param id An element id, for the script to update.
 * @returns The badge.
 */
export function badge(word: BadgeWord, id?: string): Html {
  const idAttr = id ? markup` id="${id}"` : "";
  return markup`<span class="badge badge-${word}"${idAttr} title="run is ${word}">${word}</span>`;
}

/**
 * A duration in words (`850 ms`, `12.3 s`, `4 min 5 s`, `2 h 3 min`).
 *
 * @param ms Milliseconds.
 * @returns The text.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.floor(ms / 1000) % 60} s`;
  return `${Math.floor(ms / 3_600_000)} h ${Math.floor(ms / 60_000) % 60} min`;
}

/**
 * A time for a table: ISO text in a `<time>` element, shown as UTC without milliseconds.
 *
 * @param iso An ISO 8601 time.
 * @returns The element, or nothing when absent.
 */
export function time(iso: string | undefined): Html | string {
  if (iso === undefined || Number.isNaN(Date.parse(iso))) return "";
  const shown = new Date(iso).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  return markup`<time datetime="${iso}">${shown}</time>`;
}

/** What a page needs besides its body. */
export interface PageOptions {
  /** Page title. */
  title: string;
  /** The viewer's title, shown in the header. */
  appTitle: string;
  /** Link to the runs list. */
  home: string;
  /** CSP nonce for the inline script. */
  nonce: string;
  /** Inline script, when the page has one. */
  script?: string;
  /** Seconds after which the page reloads itself (the list, while live runs show). */
  refreshSec?: number;
}

/**
 * A whole HTML document.
 *
 * @param options Title, nonce, script, refresh.
 * @param body The page's content.
 * @returns The document's markup.
 */
export function page(options: PageOptions, body: Html): string {
  return "<!doctype html>\n" + toMarkup(markup`
    <html lang="en">
      <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta name="referrer" content="no-referrer">
    ${options.refreshSec ? markup`<meta http-equiv="refresh" content="${options.refreshSec}">` : ""}
    <title>${options.title} · ${options.appTitle}</title>
    <style>${ownMarkup(STYLE)}</style>
      </head>
      <body>
    <header class="top"><a href="${options.home}">${options.appTitle}</a></header>
    <main>
    ${body}
    </main>
    ${
    options.script
      ? markup`<script nonce="${options.nonce}">${ownMarkup(options.script)}</script>`
      : ""
  }
      </body>
    </html>
  `);
}
