/**
 * Reads a folder's ASC MHL history and those nested in it (spec 5.3): the chain, every generation
 * it lists, and what is wrong with them. Problems are collected, not thrown (implementation
 * guidelines 2.7: show every problem, do not stop at the first); only an unreadable manifest or
 * chain file throws (MALFORMED).
 */
import { c4Of } from "../hashing/c4.ts";
import { parseChain } from "./chain.ts";
import { type MhlFs, joinFs } from "./io.ts";
import { parseManifest } from "./manifest_reader.ts";
import type { ChainEntry, Manifest } from "./model.ts";
import { ASCMHL_DIR, CHAIN_FILE, DEFAULT_IGNORE, manifestSequence } from "./naming.ts";
import { baseName, joinPath, relativeTo } from "./relative_path.ts";
import { type TreeScan, scanTree } from "./scan.ts";

/** One generation of a history: its manifest file, the C4 id the chain records, and its content. */
export interface Generation {
  sequence: number;
  fileName: string;
  c4: string;
  manifest: Manifest;
}

/** Something wrong with a history's files; `file` is relative to the top scope. */
export interface HistoryProblem {
  kind: "missing_manifest" | "manifest_changed" | "unlisted_manifest" | "bad_sequence" | "bad_reference" | "missing_chain";
  file: string;
  message: string;
}

/** A history (or, with exists false, a folder without one that holds nested histories). */
export interface MhlHistory {
  /** The history's scope relative to the top scope ("" for the top). */
  path: string;
  /** The scope folder's name, used in manifest file names. */
  folderName: string;
  exists: boolean;
  chain: ChainEntry[];
  generations: Generation[];
  problems: HistoryProblem[];
  children: MhlHistory[];
}

const decoder = new TextDecoder("utf-8", { fatal: true });

async function readGenerations(fs: MhlFs, dir: string, rel: string, chain: ChainEntry[], problems: HistoryProblem[]): Promise<Generation[]> {
  const generations: Generation[] = [];
  chain.forEach((e, i) => {
    if (e.sequence !== i + 1) problems.push({ kind: "bad_sequence", file: joinPath(rel, ASCMHL_DIR, CHAIN_FILE), message: `entry ${i + 1} has sequencenr ${e.sequence} (must count 1, 2, 3…)` });
  });
  for (const e of chain) {
    const file = joinPath(rel, ASCMHL_DIR, e.path);
    const bytes = await fs.readFile(joinFs(dir, e.path));
    if (bytes === null) {
      problems.push({ kind: "missing_manifest", file, message: `${file} is listed in the chain but missing` });
      continue;
    }
    const c4 = c4Of(bytes);
    if (c4 !== e.c4) problems.push({ kind: "manifest_changed", file, message: `${file} has C4 ${c4}, the chain recorded ${e.c4}: it was altered after it was written` });
    generations.push({ sequence: e.sequence, fileName: e.path, c4, manifest: parseManifest(decoder.decode(bytes), file) });
  }
  return generations;
}

async function readOne(fs: MhlFs, root: string, rel: string, scan: TreeScan): Promise<MhlHistory> {
  const scope = joinFs(root, rel);
  const h: MhlHistory = { path: rel, folderName: baseName(scope.replace(/\/+$/, "")), exists: false, chain: [], generations: [], problems: [], children: [] };
  if (!scan.historyRoots.includes(rel)) return h;
  h.exists = true;
  const dir = joinFs(scope, ASCMHL_DIR);
  const chainBytes = await fs.readFile(joinFs(dir, CHAIN_FILE));
  const chainFile = joinPath(rel, ASCMHL_DIR, CHAIN_FILE);
  if (chainBytes === null) h.problems.push({ kind: "missing_chain", file: chainFile, message: `${chainFile} is missing: the manifests cannot be checked` });
  else h.chain = parseChain(decoder.decode(chainBytes), chainFile);
  h.generations = await readGenerations(fs, dir, rel, h.chain, h.problems);
  const listed = new Set(h.chain.map((e) => e.path));
  for (const e of await fs.list(dir)) {
    if (e.type === "file" && manifestSequence(e.name) !== null && !listed.has(e.name)) {
      const file = joinPath(rel, ASCMHL_DIR, e.name);
      h.problems.push({ kind: "unlisted_manifest", file, message: `${file} is not in the chain (ignored)` });
    }
  }
  return h;
}

/** The nearest history roots strictly below `rel`: each owns what lies beneath it. */
function directChildren(rel: string, roots: readonly string[]): string[] {
  const below = roots.filter((r) => r !== rel && relativeTo(r, rel) !== null);
  return below.filter((r) => !below.some((o) => o !== r && relativeTo(r, o) !== null));
}

async function checkReferences(fs: MhlFs, root: string, h: MhlHistory): Promise<void> {
  for (const g of h.generations) {
    for (const ref of g.manifest.references) {
      const target = joinPath(h.path, ref.path);
      const bytes = await fs.readFile(joinFs(root, target));
      const from = joinPath(h.path, ASCMHL_DIR, g.fileName);
      if (bytes === null) h.problems.push({ kind: "bad_reference", file: from, message: `${from} references ${target}, which is missing` });
      else if (c4Of(bytes) !== ref.c4) h.problems.push({ kind: "bad_reference", file: from, message: `${from} references ${target} with C4 ${ref.c4}, the file has ${c4Of(bytes)}` });
    }
  }
}

/**
 * The history at `root` (absolute) with its nested histories, or null when the tree holds none.
 * Pass a `scan` of the same root to save the walk.
 */
export async function readHistory(fs: MhlFs, root: string, scan?: TreeScan): Promise<MhlHistory | null> {
  const s = scan ?? (await scanTree(fs, root));
  if (s.historyRoots.length === 0) return null;
  const load = async (rel: string): Promise<MhlHistory> => {
    const h = await readOne(fs, root, rel, s);
    for (const c of directChildren(rel, s.historyRoots)) h.children.push(await load(c));
    if (h.exists) await checkReferences(fs, root, h);
    return h;
  };
  return load("");
}

/** Every problem of a history and its nested ones. */
export function allProblems(h: MhlHistory): HistoryProblem[] {
  return [...h.problems, ...h.children.flatMap(allProblems)];
}

/** The ignore patterns in force for a history: its latest generation's, else the defaults. */
export function ignorePatterns(h: MhlHistory): string[] {
  const latest = h.generations.at(-1)?.manifest.ignore;
  return latest !== undefined && latest.length > 0 ? [...latest] : [...DEFAULT_IGNORE];
}

/** The history closest to `path` (relative to the top scope) and the path relative to it (spec 5.3.2). */
export function closestHistory(top: MhlHistory, path: string): { history: MhlHistory; rel: string } {
  for (const c of top.children) {
    const rel = relativeTo(path, c.path);
    if (rel !== null && rel !== "") return closestHistory(c, path);
  }
  return { history: top, rel: relativeTo(path, top.path) ?? path };
}

/** Every history of the tree, nested ones before the ones that hold them. */
export function historiesBottomUp(top: MhlHistory): MhlHistory[] {
  return [...top.children.flatMap(historiesBottomUp), top];
}

/** The nested history whose scope is exactly `path` (relative to the top), if any. */
export function historyAt(top: MhlHistory, path: string): MhlHistory | undefined {
  return historiesBottomUp(top).find((h) => h.path === path);
}
