// Formatting for the CLI: durations (parsed and shown), sizes, times and aligned tables.

import type { Styles } from "./output.ts";

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * Parses a duration such as `30d`, `24h`, `90m`, `15s`, `500ms` or `0d` into milliseconds.
 *
 * @param text The duration.
 * @returns Milliseconds, or `undefined` when `text` is not a duration.
 */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/.exec(text.trim());
  if (match === null) return undefined;
  return Math.round(Number(match[1]) * UNITS[match[2]]);
}

/**
 * Shows a duration in ms the way people read it: `850ms`, `12.3s`, `4m05s`, `2h10m`, `3d4h`.
 *
 * @param ms Milliseconds.
 * @returns The text.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return "-";
  if (ms < 0) ms = 0;
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)}s`;
  const s = Math.floor(ms / 1_000);
  if (s < 3_600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 86_400) {
    return `${Math.floor(s / 3_600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
  }
  return `${Math.floor(s / 86_400)}d${Math.floor(s / 3_600) % 24}h`;
}

/**
 * Shows a byte count: `512 B`, `1.5 KiB`, `3.2 MiB`.
 *
 * @param bytes The count.
 * @returns The text.
 */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * Shows an ISO time as `2026-12-06 10:56:38Z` (UTC, to the second), or `-`.
 *
 * @param iso An ISO 8601 time.
 * @returns The text.
 */
export function formatTime(iso: string | undefined): string {
  if (iso === undefined) return "-";
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return iso;
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/** Visible width of a cell (ANSI codes do not count). */
function width(text: string): number {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "").length;
}

/**
 * Lays rows out as columns separated by two spaces, with a header; the last column is not
 * padded.
 *
 * @param header Column titles.
 * @param rows Cells, as text (may hold colour codes).
 * @param style Styles (the header is bold).
 * @returns The table, one line per row, each ending in a newline.
 */
export function table(header: string[], rows: string[][], style: Styles): string {
  const widths = header.map((title, i) => Math.max(width(title), ...rows.map((r) => width(r[i]))));
  const line = (cells: string[]) =>
    cells.map((cell, i) =>
      i === cells.length - 1 ? cell : cell + " ".repeat(widths[i] - width(cell))
    ).join("  ").trimEnd() + "\n";
  return line(header.map((title) => style.bold(title))) + rows.map(line).join("");
}
