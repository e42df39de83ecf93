/**
 * The next generation of a folder's ASC MHL history (spec 5.6.2 create, 5.6.5 append, 5.3.2
 * nesting), as bytes to write: for each history that changes, a new manifest and its updated
 * chain file. Pure over data: the caller reads the existing history (readHistory), hashes the
 * files, and writes the result where the spec puts it, with its own commit.
 *
 * As the reference implementation does: records go to the history closest to each file; a nested
 * history's root hash is also written as a directory hash in the history holding it, which
 * references the nested new manifest by C4; entries follow a post-order, code-point-sorted walk
 * (subfolders first, then the folder's files, then its own directory hash).
 */
import { c4Of } from "../hashing/c4.ts";
import { formatDateTime } from "./date_time.ts";
import { DirectoryHasher, type DirectoryHashPair } from "./directory_hashes.ts";
import { MhlError } from "./errors.ts";
import { type FailedHash, decideActions } from "./file_actions.ts";
import { type MhlHashFormat, isHashValue } from "./hash_format.ts";
import { type MhlHistory, closestHistory, historiesBottomUp, historyAt, ignorePatterns } from "./history.ts";
import { IgnoreSpec } from "./ignore.ts";
import { chainXml } from "./chain.ts";
import { type KnownFile, knownFiles } from "./known_files.ts";
import { manifestXml } from "./manifest_writer.ts";
import { type DirectoryHashRecord, type FileHashRecord, type GenerationInput, GenerationInputSchema, type GenerationSpec, type Manifest, type RootHash } from "./model.ts";
import { ASCMHL_DIR, CHAIN_FILE, DEFAULT_IGNORE, manifestFileName, manifestSequence } from "./naming.ts";
import { baseName, compareCodePoints, joinPath, parentOf, relativeTo } from "./relative_path.ts";

/** A file to write, path relative to the scope root. */
export interface PlannedWrite {
  path: string;
  bytes: Uint8Array;
}

/** A manifest the generation adds. */
export interface NewManifest {
  historyPath: string;
  fileName: string;
  sequence: number;
  c4: string;
}

/** What buildGeneration produced. */
export interface GenerationResult {
  /** Nested histories first; in each, the manifest before the chain that lists it. */
  writes: PlannedWrite[];
  manifests: NewManifest[];
  /** Hashes that did not match the history (recorded as failed). */
  failed: FailedHash[];
  /** Input files left out because an ignore pattern matches them (the ascmhl folders, .DS_Store…). */
  ignored: string[];
  /** The scope's directory hashes, when computed: the "receipt" of implementation guidelines 2.5.4. */
  rootHash?: DirectoryHashPair & { format: MhlHashFormat };
}

interface Node {
  dirs: Map<string, Node>;
  files: GenerationSpec["files"];
  mtime?: Date;
}

interface Pending {
  records: (FileHashRecord | DirectoryHashRecord)[];
  rootHash?: RootHash;
  ignore: string[];
  spec: IgnoreSpec;
}

function validate(input: GenerationInput): GenerationSpec {
  const parsed = GenerationInputSchema.safeParse(input);
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join(".") || "input"}: ${i.message}`);
    throw new MhlError("BAD_INPUT", `the generation input is invalid — ${issues.join("; ")}`, { issues: parsed.error.issues.slice(0, 20) });
  }
  const spec = parsed.data;
  const seen = new Set<string>();
  for (const f of spec.files) {
    if (seen.has(f.path)) throw new MhlError("BAD_INPUT", `${JSON.stringify(f.path)} is listed twice`, { path: f.path });
    seen.add(f.path);
    if (f.hashes[spec.hashFormat] === undefined) throw new MhlError("BAD_INPUT", `${JSON.stringify(f.path)} has no ${spec.hashFormat} hash (hashFormat: every file needs one)`, { path: f.path });
    for (const [format, value] of Object.entries(f.hashes) as [MhlHashFormat, string][]) {
      if (!isHashValue(format, value)) throw new MhlError("BAD_INPUT", `${JSON.stringify(f.path)}: ${JSON.stringify(value)} is not a ${format} digest (lowercase hex${format === "c4" ? ", or a C4 id" : ""})`, { path: f.path });
    }
  }
  return spec;
}

function buildTree(spec: GenerationSpec, keep: (path: string, isDir: boolean) => boolean, ignored: string[]): Node {
  const root: Node = { dirs: new Map(), files: [] };
  const dirNode = (path: string): Node => {
    if (path === "") return root;
    const parent = dirNode(parentOf(path));
    const name = baseName(path);
    let n = parent.dirs.get(name);
    if (n === undefined) {
      if (parent.files.some((f) => baseName(f.path) === name)) throw new MhlError("BAD_INPUT", `${JSON.stringify(path)} is listed both as a file and as a folder`, { path });
      n = { dirs: new Map(), files: [] };
      parent.dirs.set(name, n);
    }
    return n;
  };
  for (const d of spec.directories) {
    if (!keep(d.path, true)) continue;
    const n = dirNode(d.path);
    if (d.lastModified !== undefined) n.mtime = d.lastModified;
  }
  for (const f of spec.files) {
    if (!keep(f.path, false)) ignored.push(f.path);
    else {
      const parent = dirNode(parentOf(f.path));
      if (parent.dirs.has(baseName(f.path))) throw new MhlError("BAD_INPUT", `${JSON.stringify(f.path)} is listed both as a file and as a folder`, { path: f.path });
      parent.files.push(f);
    }
  }
  return root;
}

function emptyHistory(rootName: string): MhlHistory {
  return { path: "", folderName: rootName, exists: false, chain: [], generations: [], problems: [], children: [] };
}

// A manifest on disk that the chain does not list still holds its number: never reuse a name.
function nextSequence(h: MhlHistory): number {
  const unlisted = h.problems.filter((p) => p.kind === "unlisted_manifest").map((p) => manifestSequence(baseName(p.file)) ?? 0);
  return Math.max(0, ...h.chain.map((e) => e.sequence), ...h.generations.map((g) => g.sequence), ...unlisted) + 1;
}

/** Everything one buildGeneration call works with. */
interface Session {
  spec: GenerationSpec;
  top: MhlHistory;
  /** creationdate and every hashdate: one instant for the whole operation (spec 6.3). */
  when: string;
  known: Map<string, KnownFile>;
  pending: Map<MhlHistory, Pending>;
  hasher: DirectoryHasher | null;
  mtimes: Map<number, string>;
  result: GenerationResult;
}

function pendingFor(s: Session, h: MhlHistory): Pending {
  let p = s.pending.get(h);
  if (p === undefined) {
    const existing = h.exists ? ignorePatterns(h) : [];
    const ignore = [...new Set([...existing, ...DEFAULT_IGNORE, ...s.spec.ignore])];
    p = { records: [], ignore, spec: new IgnoreSpec(ignore) };
    s.pending.set(h, p);
  }
  return p;
}

// Files of one job mostly share few distinct modification times: format each once.
function mtimeText(s: Session, d: Date): string {
  const t = Math.floor(d.getTime() / 1000);
  let text = s.mtimes.get(t);
  if (text === undefined) s.mtimes.set(t, (text = formatDateTime(d)));
  return text;
}

function recordFile(s: Session, f: GenerationSpec["files"][number]): void {
  const { history, rel } = closestHistory(s.top, f.path);
  const actions = decideActions(f.path, f.hashes, s.known.get(f.path), s.result.failed);
  const rec: FileHashRecord = { kind: "file", path: rel, size: f.size, hashes: actions.map(([format, value, action]) => ({ format, value, action, hashDate: s.when })) };
  if (f.lastModified !== undefined) rec.lastModificationDate = mtimeText(s, f.lastModified);
  pendingFor(s, history).records.push(rec);
}

function recordDirectory(s: Session, path: string, node: Node, pair: DirectoryHashPair): void {
  const fmt = s.spec.hashFormat;
  const hashes = { content: [{ format: fmt, value: pair.content, hashDate: s.when }], structure: [{ format: fmt, value: pair.structure, hashDate: s.when }] };
  if (path === "") {
    pendingFor(s, s.top).rootHash = hashes;
    return;
  }
  // A nested history's root: its own roothash, and a directory hash in the history holding it.
  const nested = historyAt(s.top, path);
  if (nested !== undefined) pendingFor(s, nested).rootHash = hashes;
  const { history, rel } = closestHistory(s.top, path);
  const rec: DirectoryHashRecord = { kind: "directory", path: rel, ...hashes };
  if (node.mtime !== undefined) rec.lastModificationDate = formatDateTime(node.mtime);
  pendingFor(s, history).records.push(rec);
}

/** Post-order, code-point order: subfolders, then the folder's files, then the folder itself. */
function recordFolder(s: Session, path: string, node: Node): DirectoryHashPair | null {
  const dh = s.hasher?.folder() ?? null;
  for (const name of [...node.dirs.keys()].sort(compareCodePoints)) {
    const pair = recordFolder(s, joinPath(path, name), node.dirs.get(name) as Node);
    if (pair !== null) dh?.addDirectory(name, pair);
  }
  for (const f of [...node.files].sort((a, b) => compareCodePoints(a.path, b.path))) {
    recordFile(s, f);
    dh?.addFile(baseName(f.path), f.hashes[s.spec.hashFormat] as string);
  }
  if (dh === null) return null;
  const pair = dh.finish();
  recordDirectory(s, path, node, pair);
  return pair;
}

/**
 * The next generation for the folder `input.rootName`, appended to `history` (read from that folder,
 * or from the source whose history the transfer carries) or starting one when it is null.
 * Throws MhlError BAD_INPUT with what to fix when the input cannot become a valid manifest.
 */
export async function buildGeneration(input: GenerationInput, history: MhlHistory | null): Promise<GenerationResult> {
  const spec = validate(input);
  const top = history ?? emptyHistory(spec.rootName);
  const s: Session = {
    spec,
    top,
    when: formatDateTime(spec.createdAt),
    known: knownFiles(top),
    pending: new Map(),
    hasher: spec.directoryHashes ? await DirectoryHasher.start(spec.hashFormat) : null,
    mtimes: new Map(),
    result: { writes: [], manifests: [], failed: [], ignored: [] },
  };
  const keep = (path: string, isDir: boolean) => {
    const { history: h, rel } = closestHistory(top, path);
    return !pendingFor(s, h).spec.ignores(rel, isDir);
  };
  const rootPair = recordFolder(s, "", buildTree(spec, keep, s.result.ignored));
  if (rootPair !== null) s.result.rootHash = { format: spec.hashFormat, ...rootPair };
  commit(s);
  if (s.result.manifests.length === 0) throw new MhlError("BAD_INPUT", "nothing to record: no file is left after the ignore patterns and directory hashes are off");
  return s.result;
}

const utf8 = new TextEncoder();

/** Serialises each changed history's manifest, nested ones first (their C4 goes in the references), and its chain. */
function commit(s: Session): void {
  const { top, spec, when, pending, result } = s;
  const written = new Map<MhlHistory, NewManifest>();
  for (const h of historiesBottomUp(top)) {
    const p = pending.get(h);
    const children = h.children.filter((c) => written.has(c));
    if (p === undefined || (p.records.length === 0 && p.rootHash === undefined && children.length === 0)) continue;
    const sequence = nextSequence(h);
    const fileName = manifestFileName(sequence, h === top ? spec.rootName : h.folderName, spec.createdAt);
    const manifest: Manifest = {
      creator: { ...spec.creator, creationDate: when },
      process: spec.process,
      ignore: p.ignore,
      hashes: p.records,
      references: children.map((c) => {
        const m = written.get(c) as NewManifest;
        return { path: joinPath(relativeTo(c.path, h.path) ?? c.path, ASCMHL_DIR, m.fileName), c4: m.c4 };
      }),
    };
    if (p.rootHash !== undefined) manifest.rootHash = p.rootHash;
    const bytes = utf8.encode(manifestXml(manifest));
    const entry: NewManifest = { historyPath: h.path, fileName, sequence, c4: c4Of(bytes) };
    written.set(h, entry);
    result.manifests.push(entry);
    result.writes.push({ path: joinPath(h.path, ASCMHL_DIR, fileName), bytes });
    result.writes.push({ path: joinPath(h.path, ASCMHL_DIR, CHAIN_FILE), bytes: utf8.encode(chainXml([...h.chain, { sequence, path: fileName, c4: entry.c4 }])) });
  }
}
