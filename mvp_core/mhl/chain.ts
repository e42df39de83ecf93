/**
 * The chain file (spec 7): the table of contents of a history, one entry per generation with the
 * manifest's C4 id, so a changed or swapped manifest is detected.
 */
import { MhlError } from "./errors.ts";
import { XML_HEAD, el } from "./manifest_writer.ts";
import type { ChainEntry } from "./model.ts";
import { childNamed, childrenNamed, parseXml } from "./xml.ts";

/** The chain's namespace. */
export const CHAIN_NS = "urn:ASC:MHL:DIRECTORY:v2.0";

/** The chain file's XML text for these entries (all of them: a chain is rewritten whole). */
export function chainXml(entries: readonly ChainEntry[]): string {
  const items = entries.map((e) => `  <hashlist sequencenr="${e.sequence}">\n${el("    ", "path", e.path)}${el("    ", "c4", e.c4)}  </hashlist>\n`);
  return `${XML_HEAD}<ascmhldirectory xmlns="${CHAIN_NS}">\n${items.join("")}</ascmhldirectory>\n`;
}

/** The entries of a chain file; throws MALFORMED naming `file` when it is not one. */
export function parseChain(text: string, file: string): ChainEntry[] {
  const bad = (why: string) => new MhlError("MALFORMED", `${file} is not an ASC MHL chain file: ${why}`, { file });
  let root: ReturnType<typeof parseXml>;
  try {
    root = parseXml(text);
  } catch (e) {
    throw e instanceof MhlError ? bad(e.message) : e;
  }
  if (root.name !== "ascmhldirectory" || root.ns !== CHAIN_NS) throw bad(`the root element is <${root.name}> in ${JSON.stringify(root.ns)}`);
  return childrenNamed(root, "hashlist").map((h) => {
    const sequence = Number(h.attrs.sequencenr);
    const path = childNamed(h, "path")?.text.trim();
    const c4 = childNamed(h, "c4")?.text.trim();
    if (!Number.isInteger(sequence) || sequence < 1) throw bad(`sequencenr ${JSON.stringify(h.attrs.sequencenr)} is not a positive integer`);
    if (path === undefined || path === "" || c4 === undefined) throw bad(`entry ${sequence} lacks its path or c4`);
    return { sequence, path, c4 };
  });
}
