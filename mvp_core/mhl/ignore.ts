/**
 * Ignore patterns (spec 5.6.1.2, Appendix C): one gitignore line each. Supported: "!" negation,
 * "\" escapes, a trailing "/" for folders only, anchoring by a leading or inner "/", "*", "?",
 * "[...]", and "**" at the start, end or between slashes. An ignored folder hides everything in it.
 */

interface Rule {
  re: RegExp;
  negate: boolean;
  dirOnly: boolean;
}

function globToRegExp(glob: string): string {
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === "\\" && i + 1 < glob.length) out += escapeRe(glob[++i] as string);
    else if (c === "*") {
      if (glob[i + 1] === "*") {
        // "**/" (any folders, none included), "/**" (everything inside), or a plain "*" run.
        if (glob[i + 2] === "/" && (i === 0 || glob[i - 1] === "/")) {
          out += "(?:.*/)?";
          i += 2;
        } else if (i + 2 === glob.length && glob[i - 1] === "/") {
          out += ".*";
          i += 1;
        } else {
          out += "[^/]*";
          while (glob[i + 1] === "*") i++;
        }
      } else out += "[^/]*";
    } else if (c === "?") out += "[^/]";
    else if (c === "[") {
      const j = glob.indexOf("]", i + 2);
      if (j < 0) out += "\\[";
      else {
        const body = glob.slice(i + 1, j).replace(/\\/g, "\\\\");
        out += `[${body.startsWith("!") ? `^${body.slice(1)}` : body}]`;
        i = j;
      }
    } else out += escapeRe(c);
  }
  return out;
}

function escapeRe(c: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(c) ? `\\${c}` : c;
}

function compile(line: string): Rule | null {
  let p = line.replace(/(?<!\\)\s+$/, "");
  if (p === "" || p.startsWith("#")) return null;
  const negate = p.startsWith("!");
  if (negate) p = p.slice(1);
  else if (p.startsWith("\\!") || p.startsWith("\\#")) p = p.slice(1);
  const dirOnly = p.endsWith("/");
  if (dirOnly) p = p.slice(0, -1);
  if (p === "") return null;
  const anchored = p.includes("/");
  if (p.startsWith("/")) p = p.slice(1);
  return { re: new RegExp(`${anchored ? "^" : "(?:^|/)"}${globToRegExp(p)}$`), negate, dirOnly };
}

/** A compiled list of ignore patterns. */
export class IgnoreSpec {
  private readonly rules: Rule[];
  constructor(readonly patterns: readonly string[]) {
    this.rules = patterns.map(compile).filter((r): r is Rule => r !== null);
  }

  private matches(path: string, isDir: boolean): boolean {
    let ignored = false;
    for (const r of this.rules) if ((!r.dirOnly || isDir) && r.re.test(path)) ignored = !r.negate;
    return ignored;
  }

  /** Whether `path` (relative to the scope) is ignored, itself or through one of its folders. */
  ignores(path: string, isDir: boolean): boolean {
    for (let i = path.indexOf("/"); i >= 0; i = path.indexOf("/", i + 1)) if (this.matches(path.slice(0, i), true)) return true;
    return this.matches(path, isDir);
  }
}
