/**
 * RelativePathType's rules (spec 6.4.8): "/" separators, no leading "/", no "." or ".." segments,
 * case and whitespace kept. Also no empty segments and no NUL, which no file system can hold.
 */

/** What is wrong with `p` as a manifest path, or null when it is fine. */
export function relativePathProblem(p: string): string | null {
  if (p === "") return "a path is empty";
  if (p.startsWith("/")) return `${JSON.stringify(p)} starts with "/" (paths are relative to the folder)`;
  if (p.includes("\0")) return `${JSON.stringify(p)} contains a NUL character`;
  if (p.includes("\\")) return `${JSON.stringify(p)} contains "\\" (use "/" between folders)`;
  for (const seg of p.split("/")) {
    if (seg === "") return `${JSON.stringify(p)} has an empty segment ("//" or a trailing "/")`;
    if (seg === "." || seg === "..") return `${JSON.stringify(p)} has a "${seg}" segment (use the most direct path)`;
  }
  return null;
}

/** Joins path segments with "/", skipping empty ones ("" is the scope root). */
export function joinPath(...parts: string[]): string {
  return parts.filter((p) => p !== "").join("/");
}

/** The folder part of a relative path ("" for a top-level entry). */
export function parentOf(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? "" : p.slice(0, i);
}

/** The last segment of a relative path. */
export function baseName(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1);
}

/** `p` relative to `base` when inside it (base "" is the root), else null. */
export function relativeTo(p: string, base: string): string | null {
  if (base === "") return p;
  if (p === base) return "";
  return p.startsWith(`${base}/`) ? p.slice(base.length + 1) : null;
}

/**
 * Code-point order, as the reference implementation's Python sort orders names (JavaScript's
 * default compares UTF-16 units, which puts astral characters before U+E000..U+FFFF).
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy) return sx ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}
