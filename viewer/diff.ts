// Parsing a git patch (`git diff --binary` output) into files and lines for the diff view.

/** One line of a file's diff. */
export interface DiffLine {
  /** `add`, `del`, `ctx` (unchanged), `hunk` (an `@@` header) or `meta` (a note). */
  kind: "add" | "del" | "ctx" | "hunk" | "meta";
  /** The line's text, without its `+`/`-`/space prefix. */
  text: string;
}

/** One file of a patch. */
export interface DiffFile {
  /** Path before (`/dev/null` for a new file). */
  oldPath: string;
  /** Path after (`/dev/null` for a deleted file). */
  newPath: string;
  /** `added`, `deleted`, `renamed`, `modified` or `binary`. */
  status: "added" | "deleted" | "renamed" | "modified" | "binary";
  /** Lines added. */
  added: number;
  /** Lines removed. */
  removed: number;
  /** The lines (up to the parse limit). */
  lines: DiffLine[];
}

/** A parsed patch. */
export interface ParsedDiff {
  /** The files, in patch order. */
  files: DiffFile[];
  /** True when the line limit cut the patch short (counts stop there too). */
  truncated: boolean;
}

function unquote(path: string): string {
  // git quotes paths with unusual bytes: "a/caf\303\251". Shown as git prints them otherwise.
  if (!path.startsWith('"') || !path.endsWith('"')) return path;
  const inner = path.slice(1, -1);
  const bytes: number[] = [];
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i];
    if (c === "\\" && /^[0-7]{3}/.test(inner.slice(i + 1, i + 4))) {
      bytes.push(parseInt(inner.slice(i + 1, i + 4), 8));
      i += 3;
    } else if (c === "\\" && i + 1 < inner.length) {
      const next = inner[++i];
      const map: Record<string, string> = { n: "\n", t: "\t", '"': '"', "\\": "\\" };
      for (const b of new TextEncoder().encode(map[next] ?? next)) bytes.push(b);
    } else {
      for (const b of new TextEncoder().encode(c)) bytes.push(b);
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

function stripPrefix(path: string): string {
  const p = unquote(path.trim());
  return p === "/dev/null" ? p : p.replace(/^[ab]\//, "");
}

/**
 * Parses a git patch. Lines past `maxLines` are not kept (`truncated` says so).
 *
 * @param patch The patch text.
 * @param maxLines Lines kept across all files (default 5,000).
 * @returns The files and their lines.
 */
export function parseGitPatch(patch: string, maxLines = 5_000): ParsedDiff {
  const files: DiffFile[] = [];
  let file: DiffFile | undefined;
  let kept = 0;
  let truncated = false;
  let inBinary = false;
  let inHunks = false;
  const lines = patch.split("\n");
  if (lines.at(-1) === "") lines.pop();
  for (const line of lines) {
    if (line.startsWith("diff --git ")) {
      const m = /^diff --git ((?:"(?:[^"\\]|\\.)*")|\S+) ((?:"(?:[^"\\]|\\.)*")|\S+)$/.exec(line);
      file = {
        oldPath: m ? stripPrefix(m[1]) : line.slice(11),
        newPath: m ? stripPrefix(m[2]) : line.slice(11),
        status: "modified",
        added: 0,
        removed: 0,
        lines: [],
      };
      files.push(file);
      inBinary = false;
      inHunks = false;
      continue;
    }
    if (file === undefined) continue;
    const keep = (entry: DiffLine) => {
      if (kept >= maxLines) {
        truncated = true;
        return;
      }
      kept++;
      file!.lines.push(entry);
    };
    if (inBinary) continue;
    if (line.startsWith("@@")) {
      inHunks = true;
      keep({ kind: "hunk", text: line });
    } else if (!inHunks && line.startsWith("+++ ")) file.newPath = stripPrefix(line.slice(4));
    else if (!inHunks && line.startsWith("--- ")) file.oldPath = stripPrefix(line.slice(4));
    else if (line.startsWith("+")) {
      file.added++;
      keep({ kind: "add", text: line.slice(1) });
    } else if (line.startsWith("-")) {
      file.removed++;
      keep({ kind: "del", text: line.slice(1) });
    } else if (line.startsWith(" ")) keep({ kind: "ctx", text: line.slice(1) });
    else if (line.startsWith("new file mode")) file.status = "added";
    else if (line.startsWith("deleted file mode")) file.status = "deleted";
    else if (line.startsWith("rename from ")) {
      file.status = "renamed";
      file.oldPath = line.slice(12);
    } else if (line.startsWith("rename to ")) file.newPath = line.slice(10);
    else if (line === "GIT binary patch" || line.startsWith("Binary files ")) {
      file.status = "binary";
      keep({ kind: "meta", text: "Binary file (contents not shown)" });
      inBinary = line === "GIT binary patch";
    } else if (line.startsWith("\\ ")) keep({ kind: "meta", text: line.slice(2) });
  }
  return { files, truncated };
}
