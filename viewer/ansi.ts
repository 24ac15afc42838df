// A small terminal model for logs: ANSI SGR colours into styled segments, `\r` progress lines
// collapsed as a terminal shows them, every other escape sequence dropped. Output is data
// (text + a style we compute from numbers), never markup: callers insert it with text APIs.

/** A run of text with one style. `s` is a CSS declaration list built here, never from input. */
export interface AnsiSegment {
  /** The text, as printed (no escape sequences left). */
  t: string;
  /** CSS declarations for the segment, absent when unstyled. */
  s?: string;
}

/**
 * An operation on the terminal: `["t", segments]` appends to the current line, `["r"]` a
 * carriage return (the next text replaces the line), `["n"]` ends the line.
 */
export type AnsiOp = ["t", AnsiSegment[]] | ["r"] | ["n"];

const PALETTE = [
  "#000000",
  "#cd3131",
  "#0dbc79",
  "#e5e510",
  "#2472c8",
  "#bc3fbc",
  "#11a8cd",
  "#e5e5e5",
  "#666666",
  "#f14c4c",
  "#23d18b",
  "#f5f543",
  "#3b8eea",
  "#d670d6",
  "#29b8db",
  "#ffffff",
];

function color256(n: number): string | undefined {
  if (!Number.isInteger(n) || n < 0 || n > 255) return undefined;
  if (n < 16) return PALETTE[n];
  if (n >= 232) {
    const v = 8 + (n - 232) * 10;
    return `rgb(${v},${v},${v})`;
  }
  const i = n - 16;
  const level = (x: number) => (x === 0 ? 0 : 55 + x * 40);
  return `rgb(${level(Math.floor(i / 36))},${level(Math.floor(i / 6) % 6)},${level(i % 6)})`;
}

interface Style {
  fg?: string;
  bg?: string;
  bold?: boolean;
  dim?: boolean;
  italic?: boolean;
  underline?: boolean;
  inverse?: boolean;
}

function css(style: Style): string | undefined {
  const parts: string[] = [];
  const fg = style.inverse ? style.bg ?? "#1e1e1e" : style.fg;
  const bg = style.inverse ? style.fg ?? "#d4d4d4" : style.bg;
  if (fg) parts.push(`color:${fg}`);
  if (bg) parts.push(`background-color:${bg}`);
  if (style.bold) parts.push("font-weight:bold");
  if (style.dim) parts.push("opacity:0.7");
  if (style.italic) parts.push("font-style:italic");
  if (style.underline) parts.push("text-decoration:underline");
  return parts.length === 0 ? undefined : parts.join(";");
}

/** Applies one SGR parameter list to a style. */
function applySgr(style: Style, params: number[]): Style {
  const next = { ...style };
  if (params.length === 0) params = [0];
  for (let i = 0; i < params.length; i++) {
    const p = params[i];
    if (p === 0) {
      for (const key of Object.keys(next)) delete next[key as keyof Style];
    } else if (p === 1) next.bold = true;
    else if (p === 2) next.dim = true;
    else if (p === 3) next.italic = true;
    else if (p === 4) next.underline = true;
    else if (p === 7) next.inverse = true;
    else if (p === 22) next.bold = next.dim = false;
    else if (p === 23) next.italic = false;
    else if (p === 24) next.underline = false;
    else if (p === 27) next.inverse = false;
    else if (p >= 30 && p <= 37) next.fg = PALETTE[p - 30];
    else if (p === 39) delete next.fg;
    else if (p >= 40 && p <= 47) next.bg = PALETTE[p - 40];
    else if (p === 49) delete next.bg;
    else if (p >= 90 && p <= 97) next.fg = PALETTE[p - 90 + 8];
    else if (p >= 100 && p <= 107) next.bg = PALETTE[p - 100 + 8];
    else if (p === 38 || p === 48) {
      let value: string | undefined;
      if (params[i + 1] === 5) {
        value = color256(params[i + 2]);
        i += 2;
      } else if (params[i + 1] === 2) {
        const [r, g, b] = params.slice(i + 2, i + 5);
        if ([r, g, b].every((c) => Number.isInteger(c) && c >= 0 && c <= 255)) {
          value = `rgb(${r},${g},${b})`;
        }
        i += 4;
      }
      if (value !== undefined) next[p === 38 ? "fg" : "bg"] = value;
    }
  }
  return next;
}

// CSI ... final byte; OSC ... BEL or ST; other two-byte escapes. A sequence cut at the end of a
// chunk is kept for the next chunk (`ESC` alone, or an unterminated CSI/OSC).
// deno-lint-ignore no-control-regex
const ESCAPE = /\x1b(?:\[([0-?]*)[ -/]*([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])/y;
// deno-lint-ignore no-control-regex
const INCOMPLETE = /\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?)?$/;
const MAX_CARRY = 4096;
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x08\x0b-\x0c\x0e-\x1a\x1c-\x1f\x7f]/g;

/**
 * A stateful parser: feed it decoded text chunk by chunk; it carries style and a cut escape
 * sequence from one chunk to the next.
 */
export interface AnsiParser {
  /** Parses a chunk into terminal operations. */
  push(text: string): AnsiOp[];
}

/**
 * Creates an {@linkcode AnsiParser}.
 *
 * @returns A parser with no style and nothing pending.
 */
export function createAnsiParser(): AnsiParser {
  let style: Style = {};
  let carry = "";
  return {
    push(chunk: string): AnsiOp[] {
      let text = carry + chunk;
      carry = "";
      const cut = INCOMPLETE.exec(text);
      // A cut sequence is carried to the next chunk, unless it is too long to be one (an OSC
      // that never ends must not swallow the rest of the log).
      if (cut !== null && cut[0] !== "" && cut[0].length <= MAX_CARRY) {
        carry = cut[0];
        text = text.slice(0, cut.index);
      }
      const ops: AnsiOp[] = [];
      let segments: AnsiSegment[] = [];
      const flushText = () => {
        if (segments.length > 0) ops.push(["t", segments]);
        segments = [];
      };
      const addText = (raw: string) => {
        const t = raw.replace(CONTROL, "");
        if (t === "") return;
        const s = css(style);
        const last = segments.at(-1);
        if (last !== undefined && last.s === s) last.t += t;
        else segments.push(s === undefined ? { t } : { t, s });
      };
      let i = 0;
      let start = 0;
      while (i < text.length) {
        const c = text.charCodeAt(i);
        if (c === 0x1b) {
          addText(text.slice(start, i));
          ESCAPE.lastIndex = i;
          const m = ESCAPE.exec(text);
          if (m === null) {
            i++; // a lone ESC that starts nothing we know: drop it
          } else {
            if (m[2] === "m") {
              style = applySgr(style, m[1] === "" ? [] : m[1].split(/[;:]/).map(Number));
            }
            i += m[0].length;
          }
          start = i;
        } else if (c === 0x0a || c === 0x0d) {
          addText(text.slice(start, i));
          flushText();
          if (c === 0x0d && text.charCodeAt(i + 1) === 0x0a) i++; // \r\n is a newline
          ops.push(c === 0x0d && text.charCodeAt(i) === 0x0d ? ["r"] : ["n"]);
          i++;
          start = i;
        } else {
          i++;
        }
      }
      addText(text.slice(start));
      flushText();
      return ops;
    },
  };
}

/** One rendered line: its segments. */
export type AnsiLine = AnsiSegment[];

/**
 * Where a terminal's writing stands between calls of {@linkcode applyOps}: whether the current
 * line is open (no newline yet), whether a `\r` waits for text to replace it, and that line.
 */
export interface LineState {
  /** The current line has no newline yet. */
  open: boolean;
  /** A `\r` came: the next text replaces the current line. */
  pendingReturn: boolean;
  /** The current line (default: the last of `lines`). */
  line?: AnsiLine;
}

/**
 * Applies operations to a list of lines, as a terminal shows them: `\r` makes the next text
 * replace the current line. Streams written into one list each keep their own `state`, so one
 * stream's open line goes on where it is while another's lines come after it.
 *
 * @param lines The lines so far (changed in place; new lines are pushed).
 * @param ops The operations.
 * @param state Carried between calls (changed in place).
 */
export function applyOps(
  lines: AnsiLine[],
  ops: readonly AnsiOp[],
  state: LineState,
): void {
  const startLine = () => {
    state.line = [];
    lines.push(state.line);
    return state.line;
  };
  for (const op of ops) {
    if (op[0] === "n") {
      if (!state.open) startLine();
      state.open = false;
      state.pendingReturn = false;
    } else if (op[0] === "r") {
      state.pendingReturn = true;
    } else {
      let line: AnsiLine;
      if (!state.open) {
        line = startLine();
        state.open = true;
      } else {
        line = state.line ?? lines.at(-1) ?? startLine();
        if (state.pendingReturn) line.length = 0;
      }
      state.pendingReturn = false;
      for (const segment of op[1]) {
        const last = line.at(-1);
        if (last !== undefined && last.s === segment.s) {
          line[line.length - 1] = { ...last, t: last.t + segment.t };
        } else line.push(segment);
      }
    }
  }
}
