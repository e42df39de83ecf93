/**
 * Reads a manifest into the model. Strict about what verification relies on (namespace, version,
 * formats, actions, paths), lenient about the rest (metadata is skipped, unknown extras ignored),
 * so manifests of other tools that follow the XSD read.
 */
import { MhlError } from "./errors.ts";
import { isHashFormat, normaliseHashValue } from "./hash_format.ts";
import type { Author, CreatorInfo, DirectoryHashRecord, FileHashRecord, HashAction, HashValue, Manifest, ProcessType, RootHash } from "./model.ts";
import { relativePathProblem } from "./relative_path.ts";
import { type XmlElement, childNamed, childrenNamed, parseXml } from "./xml.ts";

/** The manifest namespace. */
export const MANIFEST_NS = "urn:ASC:MHL:v2.0";

const ACTIONS: readonly string[] = ["original", "verified", "failed"];
const PROCESSES: readonly string[] = ["in-place", "transfer", "flatten"];

type Bad = (why: string) => MhlError;

function text(el: XmlElement | undefined): string | undefined {
  return el?.text.trim();
}

function required(parent: XmlElement, name: string, bad: Bad): XmlElement {
  const c = childNamed(parent, name);
  if (c === undefined) throw bad(`<${parent.name}> lacks <${name}>`);
  return c;
}

function hashValues(parent: XmlElement, bad: Bad): HashValue[] {
  const out: HashValue[] = [];
  for (const c of parent.children) {
    if (!isHashFormat(c.name)) continue;
    const action = c.attrs.action;
    if (action !== undefined && !ACTIONS.includes(action)) throw bad(`action ${JSON.stringify(action)} is not original, verified or failed`);
    const v: HashValue = { format: c.name, value: normaliseHashValue(c.name, c.text) };
    if (action !== undefined) v.action = action as HashAction;
    if (c.attrs.hashdate !== undefined) v.hashDate = c.attrs.hashdate;
    out.push(v);
  }
  return out;
}

function recordPath(el: XmlElement, bad: Bad): string {
  const p = required(el, "path", bad).text;
  // The reference writes folders without, the spec's example with, a trailing "/": accept both.
  const path = p.endsWith("/") ? p.slice(0, -1) : p;
  const problem = relativePathProblem(path);
  if (problem !== null) throw bad(problem);
  return path;
}

function fileRecord(el: XmlElement, bad: Bad): FileHashRecord {
  const pathEl = required(el, "path", bad);
  const r: FileHashRecord = { kind: "file", path: recordPath(el, bad), hashes: hashValues(el, bad) };
  if (r.hashes.length === 0) throw bad(`the record of ${JSON.stringify(r.path)} has no hash`);
  if (r.hashes.some((h) => h.action === undefined)) throw bad(`a hash of ${JSON.stringify(r.path)} has no action`);
  if (pathEl.attrs.size !== undefined) {
    r.size = Number(pathEl.attrs.size);
    if (!Number.isSafeInteger(r.size) || r.size < 0) throw bad(`the size of ${JSON.stringify(r.path)} is ${JSON.stringify(pathEl.attrs.size)}, not a byte count`);
  }
  return withDatesAndPreviousPath(r, el, pathEl);
}

/** The optional parts file and folder records share: the path's dates and a previousPath. */
function withDatesAndPreviousPath<T extends FileHashRecord | DirectoryHashRecord>(r: T, el: XmlElement, pathEl: XmlElement): T {
  if (pathEl.attrs.creationdate !== undefined) r.creationDate = pathEl.attrs.creationdate;
  if (pathEl.attrs.lastmodificationdate !== undefined) r.lastModificationDate = pathEl.attrs.lastmodificationdate;
  const prev = text(childNamed(el, "previousPath"));
  if (prev !== undefined) r.previousPath = prev;
  return r;
}

function rootHash(el: XmlElement, bad: Bad): RootHash {
  return { content: hashValues(required(el, "content", bad), bad), structure: hashValues(required(el, "structure", bad), bad) };
}

function directoryRecord(el: XmlElement, bad: Bad): DirectoryHashRecord {
  const pathEl = required(el, "path", bad);
  return withDatesAndPreviousPath({ kind: "directory", path: recordPath(el, bad), ...rootHash(el, bad) }, el, pathEl);
}

function creatorInfo(el: XmlElement, bad: Bad): CreatorInfo {
  const tool = required(el, "tool", bad);
  const c: CreatorInfo = {
    creationDate: required(el, "creationdate", bad).text.trim(),
    hostName: required(el, "hostname", bad).text.trim(),
    tool: tool.attrs.version === undefined ? { name: tool.text.trim() } : { name: tool.text.trim(), version: tool.attrs.version },
    authors: childrenNamed(el, "author").map((a) => {
      const au: Author = { name: a.text.trim() };
      if (a.attrs.email !== undefined) au.email = a.attrs.email;
      if (a.attrs.phone !== undefined) au.phone = a.attrs.phone;
      if (a.attrs.role !== undefined) au.role = a.attrs.role;
      return au;
    }),
  };
  const location = text(childNamed(el, "location"));
  const comment = text(childNamed(el, "comment"));
  if (location !== undefined) c.location = location;
  if (comment !== undefined) c.comment = comment;
  return c;
}

/** The manifest in `text`; throws MALFORMED naming `file` when it is not an ASC MHL v2.0 manifest. */
export function parseManifest(text: string, file: string): Manifest {
  const bad: Bad = (why) => new MhlError("MALFORMED", `${file} is not a valid ASC MHL manifest: ${why}`, { file });
  let root: XmlElement;
  try {
    root = parseXml(text);
  } catch (e) {
    throw e instanceof MhlError ? bad(e.message) : e;
  }
  if (root.name !== "hashlist" || root.ns !== MANIFEST_NS) throw bad(`the root element is <${root.name}> in ${JSON.stringify(root.ns)}, not <hashlist> in ${MANIFEST_NS}`);
  if (root.attrs.version !== "2.0") throw bad(`version ${JSON.stringify(root.attrs.version)} (ASC MHL is 2.0; MHL 1.x is a different format)`);
  const pi = required(root, "processinfo", bad);
  const process = required(pi, "process", bad).text.trim();
  if (!PROCESSES.includes(process)) throw bad(`process ${JSON.stringify(process)} is not in-place, transfer or flatten`);
  const rh = childNamed(pi, "roothash");
  const hashes = childNamed(root, "hashes");
  const m: Manifest = {
    creator: creatorInfo(required(root, "creatorinfo", bad), bad),
    process: process as ProcessType,
    ignore: childrenNamed(childNamed(pi, "ignore"), "pattern").map((p) => p.text),
    hashes: (hashes?.children ?? []).flatMap((c): (FileHashRecord | DirectoryHashRecord)[] => (c.name === "hash" ? [fileRecord(c, bad)] : c.name === "directoryhash" ? [directoryRecord(c, bad)] : [])),
    references: childrenNamed(childNamed(root, "references"), "hashlistreference").map((r) => ({
      path: required(r, "path", bad).text.trim(),
      c4: required(r, "c4", bad).text.trim(),
    })),
  };
  if (rh !== undefined) m.rootHash = rootHash(rh, bad);
  return m;
}
