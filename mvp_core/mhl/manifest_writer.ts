/**
 * Manifest XML, written line by line in the layout of the reference implementation
 * (two-space indent, element order of the XSD), so Ketter's manifests read like everyone else's
 * and a byte-for-byte comparison with the ASC's own output is possible in tests.
 */
import { MHL_HASH_FORMATS } from "./hash_format.ts";
import type { Author, CreatorInfo, DirectoryHashRecord, FileHashRecord, HashValue, Manifest, RootHash } from "./model.ts";
import { escapeXml } from "./xml.ts";

/** The XML declaration both documents start with. */
export const XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n';

function attrs(pairs: [string, string | number | undefined][]): string {
  let s = "";
  for (const [k, v] of pairs) if (v !== undefined) s += ` ${k}="${escapeXml(String(v))}"`;
  return s;
}

/** One element on its own line: `<name attrs>text</name>`. */
export function el(indent: string, name: string, text: string, attributes: [string, string | number | undefined][] = []): string {
  return `${indent}<${name}${attrs(attributes)}>${escapeXml(text)}</${name}>\n`;
}

// The XSD fixes the order of formats inside a record: c4, md5, sha1, xxh128, xxh3, xxh64.
function inXsdOrder(hashes: readonly HashValue[]): HashValue[] {
  return [...hashes].sort((a, b) => MHL_HASH_FORMATS.indexOf(a.format) - MHL_HASH_FORMATS.indexOf(b.format));
}

function hashValues(indent: string, hashes: readonly HashValue[]): string {
  let s = "";
  for (const h of hashes.length > 1 ? inXsdOrder(hashes) : hashes) s += el(indent, h.format, h.value, [["action", h.action], ["hashdate", h.hashDate]]);
  return s;
}

function author(indent: string, a: Author): string {
  return el(indent, "author", a.name, [["email", a.email], ["phone", a.phone], ["role", a.role]]);
}

function creatorInfo(c: CreatorInfo): string {
  return (
    "  <creatorinfo>\n" +
    el("    ", "creationdate", c.creationDate) +
    el("    ", "hostname", c.hostName) +
    el("    ", "tool", c.tool.name, [["version", c.tool.version]]) +
    c.authors.map((a) => author("    ", a)).join("") +
    (c.location === undefined ? "" : el("    ", "location", c.location)) +
    (c.comment === undefined ? "" : el("    ", "comment", c.comment)) +
    "  </creatorinfo>\n"
  );
}

function contentAndStructure(indent: string, h: RootHash): string {
  const inner = `${indent}  `;
  return `${indent}<content>\n${hashValues(inner, h.content)}${indent}</content>\n${indent}<structure>\n${hashValues(inner, h.structure)}${indent}</structure>\n`;
}

function processInfo(m: Manifest): string {
  let s = `  <processinfo>\n${el("    ", "process", m.process)}`;
  if (m.rootHash !== undefined) s += `    <roothash>\n${contentAndStructure("      ", m.rootHash)}    </roothash>\n`;
  if (m.ignore.length > 0) s += `    <ignore>\n${m.ignore.map((p) => el("      ", "pattern", p)).join("")}    </ignore>\n`;
  return `${s}  </processinfo>\n`;
}

function fileHash(r: FileHashRecord): string {
  const path = el("      ", "path", r.path, [["size", r.size], ["creationdate", r.creationDate], ["lastmodificationdate", r.lastModificationDate]]);
  const prev = r.previousPath === undefined ? "" : el("      ", "previousPath", r.previousPath);
  return `    <hash>\n${path}${hashValues("      ", r.hashes)}${prev}    </hash>\n`;
}

function directoryHash(r: DirectoryHashRecord): string {
  const path = el("      ", "path", r.path, [["creationdate", r.creationDate], ["lastmodificationdate", r.lastModificationDate]]);
  const prev = r.previousPath === undefined ? "" : el("      ", "previousPath", r.previousPath);
  return `    <directoryhash>\n${path}${contentAndStructure("      ", r)}${prev}    </directoryhash>\n`;
}

/** The manifest's XML text. Empty <hashes>, <ignore> and <references> are left out (the XSD wants ≥ 1 child). */
export function manifestXml(m: Manifest): string {
  const parts = [XML_HEAD, '<hashlist version="2.0" xmlns="urn:ASC:MHL:v2.0">\n', creatorInfo(m.creator), processInfo(m)];
  if (m.hashes.length > 0) {
    parts.push("  <hashes>\n");
    for (const r of m.hashes) parts.push(r.kind === "file" ? fileHash(r) : directoryHash(r));
    parts.push("  </hashes>\n");
  }
  if (m.references.length > 0) {
    parts.push("  <references>\n");
    for (const r of m.references) parts.push(`    <hashlistreference>\n${el("      ", "path", r.path)}${el("      ", "c4", r.c4)}    </hashlistreference>\n`);
    parts.push("  </references>\n");
  }
  parts.push("</hashlist>\n");
  return parts.join("");
}
