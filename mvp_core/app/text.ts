/**
 * The one string schema for request fields. JSON can carry a lone UTF-16 surrogate ("\ud800"),
 * which is not a Unicode character: UTF-8 cannot encode it, so Postgres, the file system and SSH
 * would each receive U+FFFD instead — silently a different path, root or name. NUL cannot be stored
 * in Postgres text nor appear in a path. Both are refused at the door with the position to fix.
 */
import { z } from "zod";

function problem(s: string): string | null {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0) return `contains a NUL character (U+0000) at position ${i}; remove it`;
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      return `contains a lone UTF-16 surrogate (\\u${c.toString(16)}) at position ${i}, which is not a Unicode character and would be stored as U+FFFD (a different name); send valid Unicode text`;
    }
  }
  return null;
}

/** A string of Unicode scalar values without NUL; chain min/max/regex on it like z.string(). */
export function text() {
  return z.string().superRefine((s, ctx) => {
    const p = problem(s);
    if (p) ctx.addIssue({ code: "custom", message: p });
  });
}
