// Exclude patterns of git checkpoints: the defaults (secrets a patch must not carry) and a matcher.

/**
 * Paths a git checkpoint leaves out unless told otherwise: files that usually hold credentials,
 * which a stored patch must not carry (and a redacted patch could not be replayed). Changes to
 * tracked files matching them are left out too, so they keep their base-commit content in the
 * checkpoint.
 *
 * - `.env`, `.env.*` (but not `.env.example`, `.env.sample`, `.env.template`, `.env.dist`,
 *   which are templates meant to be committed)
 * - private keys and key stores: `*.pem`, `*.key`, `*.p12`, `*.pfx`, `*.jks`, `*.keystore`,
 *   `*.kdbx`, `id_rsa*`, `id_dsa*`, `id_ecdsa*`, `id_ed25519*`
 * - credential files of common tools: `.npmrc`, `.yarnrc.yml`, `.pypirc`, `.netrc`, `_netrc`,
 *   `.git-credentials`, `.dockercfg`, `.docker/config.json`, `.aws/credentials`,
 *   `credentials.json`, `service-account*.json`, `.htpasswd`
 * - Terraform state, which holds every secret of the resources it manages: `*.tfstate`,
 *   `*.tfstate.*`
 *
 * Patterns follow `.gitignore` syntax: a pattern without a slash matches a file or directory
 * name at any depth, one with a slash matches from the work tree root (`**` spans
 * directories), a leading `!` takes a path back in, and later patterns win.
 */
export const DEFAULT_GIT_EXCLUDES: readonly string[] = Object.freeze([
  ".env",
  ".env.*",
  "!.env.example",
  "!.env.sample",
  "!.env.template",
  "!.env.dist",
  "*.pem",
  "*.key",
  "*.p12",
  "*.pfx",
  "*.jks",
  "*.keystore",
  "*.kdbx",
  "id_rsa*",
  "id_dsa*",
  "id_ecdsa*",
  "id_ed25519*",
  ".npmrc",
  ".yarnrc.yml",
  ".pypirc",
  ".netrc",
  "_netrc",
  ".git-credentials",
  ".dockercfg",
  "**/.docker/config.json",
  "**/.aws/credentials",
  "credentials.json",
  "service-account*.json",
  ".htpasswd",
  "*.tfstate",
  "*.tfstate.*",
]);

interface CompiledPattern {
  source: string;
  negated: boolean;
  /** Tested against the whole `/`-separated path. */
  regex: RegExp;
  /** For a pattern without a slash: the glob alone, anchored, to test one path component. */
  name?: string;
  /** For a pattern with a slash: its whole-path regex source. */
  path?: string;
}

/** Tells which exclude pattern, if any, leaves a path out. */
export interface PathMatcher {
  /**
   * The pattern that excludes `path` (a `/`-separated path from the work tree root), or
   * `undefined` when no pattern does (or the last matching one is a `!` pattern). A path is
   * excluded when it or one of its parent directories matches.
   */
  match(path: string): string | undefined;
}

/**
 * Compiles `.gitignore`-style patterns (see {@linkcode DEFAULT_GIT_EXCLUDES}) into a matcher.
 *
 * @param patterns The patterns, in order; blank lines and `#` comments are skipped.
 * @returns The matcher.
 *
 * @example
 * ```ts
 * import { compileExcludes, DEFAULT_GIT_EXCLUDES } from "./patterns.ts";
 * const matcher = compileExcludes(DEFAULT_GIT_EXCLUDES);
 * console.log(matcher.match("config/.env.local")); // ".env.*"
 * console.log(matcher.match(".env.example")); // undefined
 * ```
 */
export function compileExcludes(patterns: readonly string[]): PathMatcher {
  const compiled = patterns.map(compilePattern).filter((p): p is CompiledPattern => p !== null);
  const positive = compiled.filter((p) => !p.negated);
  // Quick tests rule out most paths; the ordered walk runs only on a hit. Name patterns are
  // tested on each component (directory names repeat: their answers are kept).
  const names = positive.flatMap((p) => p.name === undefined ? [] : [p.name]);
  const paths = positive.flatMap((p) => p.path === undefined ? [] : [p.path]);
  const anyName = names.length === 0 ? undefined : new RegExp(`^(?:${names.join("|")})$`);
  const anyPath = paths.length === 0 ? undefined : new RegExp(paths.join("|"));
  const directories = new Map<string, boolean>();
  const mayMatch = (path: string): boolean => {
    if (anyPath?.test(path)) return true;
    if (anyName === undefined) return false;
    let start = 0;
    for (let slash = path.indexOf("/"); slash >= 0; slash = path.indexOf("/", start)) {
      const dir = path.slice(start, slash);
      let hit = directories.get(dir);
      if (hit === undefined) {
        hit = anyName.test(dir);
        if (directories.size < 100_000) directories.set(dir, hit);
      }
      if (hit) return true;
      start = slash + 1;
    }
    return anyName.test(path.slice(start));
  };
  return {
    match(path) {
      if (!mayMatch(path)) return undefined;
      let result: string | undefined;
      for (const pattern of compiled) {
        if (pattern.regex.test(path)) result = pattern.negated ? undefined : pattern.source;
      }
      return result;
    },
  };
}

function compilePattern(line: string): CompiledPattern | null {
  let text = line.trim();
  if (text === "" || text.startsWith("#")) return null;
  const negated = text.startsWith("!");
  if (negated) text = text.slice(1);
  const directoryOnly = text.endsWith("/");
  if (directoryOnly) text = text.replace(/\/+$/, "");
  if (text === "") return null;
  // The pattern names the path itself or one of its directories: after the match comes the
  // end or a slash (a directory-only pattern needs the slash).
  const tail = directoryOnly ? "/" : "(?:/|$)";
  const source = line.trim();
  if (text.includes("/")) {
    const body = `^${globToRegex(text.replace(/^\/+/, ""))}${tail}`;
    return { source, negated, regex: new RegExp(body), path: `(?:${body})` };
  }
  const glob = globToRegex(text);
  const regex = new RegExp(`(?:^|/)${glob}${tail}`);
  // A directory-only name pattern cannot match the last component: test it on paths only.
  return directoryOnly
    ? { source, negated, regex, path: `(?:(?:^|/)${glob}/)` }
    : { source, negated, regex, name: glob };
}

function globToRegex(glob: string): string {
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*") {
      if (glob[i + 1] === "*") {
        const atStart = i === 0 || glob[i - 1] === "/";
        const slashAfter = glob[i + 2] === "/";
        if (atStart && slashAfter) {
          out += "(?:.*/)?"; // "**/": zero or more directories
          i += 2;
        } else if (atStart && i + 2 === glob.length) {
          out += ".*"; // trailing "/**": everything inside
          i += 1;
        } else {
          out += "[^/]*";
          i += 1;
        }
      } else out += "[^/]*";
    } else if (c === "?") out += "[^/]";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 2);
      if (end < 0) out += "\\[";
      else {
        let body = glob.slice(i + 1, end);
        if (body.startsWith("!")) body = "^" + body.slice(1);
        out += `[${body.replace(/\\/g, "\\\\")}]`;
        i = end;
      }
    } else if (c === "\\" && i + 1 < glob.length) {
      out += escapeRegex(glob[++i]);
    } else out += escapeRegex(c);
  }
  return out;
}

function escapeRegex(c: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(c) ? `\\${c}` : c;
}

/**
 * Git pathspecs matching at least every path the patterns exclude (`!` patterns are ignored),
 * so git can narrow a listing before {@linkcode PathMatcher.match} decides.
 *
 * @param patterns The patterns, as given to {@linkcode compileExcludes}.
 * @returns `:(glob)` pathspecs; empty when no pattern excludes anything.
 *
 * @example
 * ```ts
 * import { candidatePathspecs } from "./patterns.ts";
 * const pathspecs = candidatePathspecs(["*.pem", "!ok.pem"]);
 * console.log(pathspecs.length); // 2: the files, and everything under such a directory
 * ```
 */
export function candidatePathspecs(patterns: readonly string[]): string[] {
  const out: string[] = [];
  for (const line of patterns) {
    const text = line.trim().replace(/\/+$/, "");
    if (text === "" || text.startsWith("#") || text.startsWith("!")) continue;
    const glob = text.includes("/") ? text.replace(/^\/+/, "") : `**/${text}`;
    out.push(`:(glob)${glob}`, `:(glob)${glob}/**`);
  }
  return out;
}
