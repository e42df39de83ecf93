/**
 * Step 5 (sync): the verified staging tree is merged into the existing target file by file. The
 * folders the target lacks are made, then each file (and changed link) is renamed from the staging
 * tree onto its final name, replacing the old version in one atomic step: at any instant every
 * target file is its old or its new version, never a torn one. Folder attributes follow, deepest
 * first, as for a whole copy. Mirror, afterwards, removes what the source does not have.
 */
import type { Entry } from "../endpoints/endpoint.ts";
import { TransferError, isTransferError } from "../errors.ts";
import { baseRel, joinRel, parentRel, showPath } from "../paths.ts";
import { runPool } from "../pool.ts";
import { sameSecond } from "./compare.ts";
import type { Run } from "../run.ts";
import { maybeYield } from "../yield.ts";
import type { Manifest } from "./scan.ts";
import { applyAttributes } from "./tree.ts";

/** Source entries whose kind differs from what the target has at that path (a file where a folder is…). */
export function conflicts(m: Manifest, targetTree: ReadonlyMap<string, Entry>): Entry[] {
  const clash = (e: Entry, want: (t: Entry) => boolean): boolean => {
    const t = targetTree.get(e.path);
    return t !== undefined && !want(t);
  };
  return [
    ...m.dirs.filter((d) => clash(d, (t) => t.type === "dir")),
    ...m.files.filter((f) => clash(f, (t) => t.type === "file")),
    ...m.links.filter((l) => clash(l, (t) => t.type !== "dir")),
  ];
}

/** Refuses a sync whose source and target disagree on what a path is (before anything is written). */
export function refuseConflicts(run: Run, found: readonly Entry[]): void {
  if (found.length === 0) return;
  const shown = found.slice(0, 3).map((e) => `${JSON.stringify(e.path)} (a ${e.type} in the source)`).join(", ");
  throw new TransferError("TARGET_EXISTS", `sync cannot update ${showPath(run.target, run.spec.targetPath)}: ${found.length} path(s) are another kind of entry there: ${shown}; remove them at the target or choose another target`, {
    details: { paths: found.slice(0, 20).map((e) => e.path) },
  });
}

/**
 * Moves what `send` lists from the staging tree into the existing target, then removes the emptied
 * staging tree. Folder attributes come after (finishMerge), once a mirror has removed what it
 * removes: removing an entry changes its folder's mtime.
 */
export async function mergeInto(run: Run, send: Manifest, stagingPath: string, targetPath: string, targetTree: ReadonlyMap<string, Entry>): Promise<void> {
  const { target } = run;
  if (send.kind === "file") {
    if (send.files.length > 0) await target.rename(stagingPath, targetPath, { replace: true });
    else await target.remove(stagingPath, { recursive: true });
    return;
  }
  for (const d of send.dirs) {
    if (targetTree.get(d.path)?.type === "dir") continue;
    await target.mkdir(joinRel(targetPath, d.path), { mode: 0o700 });
  }
  // Renames of distinct names, their folders made: all at once (one round trip, not one each).
  await runPool([...send.files, ...send.links], RENAMES_IN_FLIGHT, async (e) => {
    await target.rename(joinRel(stagingPath, e.path), joinRel(targetPath, e.path), { replace: true });
    await maybeYield();
  });
  // Gone before the commit counts as done: a retry reads "staging gone, marker there" as committed.
  await removeEmptied(run, stagingPath, send.dirs);
}

/**
 * Removes the emptied staging tree: its folders are known (the merge moved every file out), so
 * each level goes in one round of rmdir requests, deepest first — a few round trips, where a
 * recursive removal lists every folder first. Anything unexpected left in it: removed recursively.
 */
async function removeEmptied(run: Run, stagingPath: string, dirs: readonly Entry[]): Promise<void> {
  const levels = new Map<number, string[]>();
  for (const d of dirs) {
    const depth = d.path.split("/").length;
    levels.set(depth, [...(levels.get(depth) ?? []), d.path]);
  }
  try {
    for (const depth of [...levels.keys()].sort((a, b) => b - a)) {
      await Promise.all((levels.get(depth) ?? []).map((p) => run.target.remove(joinRel(stagingPath, p))));
    }
    await run.target.remove(stagingPath);
  } catch {
    // Not empty after all (an endpoint says so in its own words): the thorough way.
    await run.target.remove(stagingPath, { recursive: true });
  }
}

/** Renames a merge keeps in flight. */
const RENAMES_IN_FLIGHT = 64;

/**
 * The folders whose mode and mtime the merged target must be given: those the merge made or wrote
 * into (writing changes a folder's mtime), and those whose mode or mtime differ from the source's.
 * An unchanged re-run sets nothing.
 */
function foldersToTouch(full: Manifest, sent: Manifest, targetTree: ReadonlyMap<string, Entry>, targetRoot: Entry, mirrored: boolean): { touch: Manifest; root: boolean } {
  const wrote = new Set<string>();
  for (const e of [...sent.files, ...sent.links, ...sent.dirs]) wrote.add(parentRel(e.path));
  const differs = (d: Entry, t: Entry | undefined): boolean => t === undefined || t.type !== "dir" || (t.mode & 0o7777) !== (d.mode & 0o7777) || !sameTime(t.mtimeMs, d.mtimeMs);
  // A mirror removes entries anywhere: every folder may have changed.
  const dirs = mirrored ? full.dirs : full.dirs.filter((d) => wrote.has(d.path) || differs(d, targetTree.get(d.path)));
  return { touch: { ...full, dirs }, root: mirrored || wrote.has("") || differs(full.root, targetRoot) };
}

/**
 * A folder's mtime as the target shows it equals the source's: to the second where the target
 * shows whole seconds only (SFTP, `find`), exactly otherwise (a local target keeps fractions).
 */
function sameTime(target: number, source: number): boolean {
  return target % 1000 === 0 && source % 1000 !== 0 ? sameSecond(target, source) : target === source;
}

/**
 * What follows a sync's data landing (or finding it all there): the mirror when allowed (never for
 * a retry of failed files, which sees part of the source, nor when a file failed), then the folders'
 * attributes where needed. Returns how many target entries the mirror removed.
 */
export async function completeMerge(run: Run, full: Manifest, sent: Manifest, targetPath: string, targetTree: ReadonlyMap<string, Entry>, targetRoot: Entry): Promise<number> {
  const mirrored = run.spec.mirror && run.only === null && run.ledger.counts.failed === 0 ? await mirror(run, full, targetPath, targetTree) : 0;
  if (full.kind === "dir") {
    const { touch, root } = foldersToTouch(full, sent, targetTree, targetRoot, mirrored > 0);
    await finishMerge(run, full, targetPath, targetTree, touch, root);
  }
  return mirrored;
}

/**
 * The source's folder modes and mtimes on the merged target (`full`: the whole source), deepest
 * first. A folder that was there before may belong to someone else, who alone may change its mode:
 * those are left as they are (said once in an event) rather than failing a merge already committed.
 */
async function finishMerge(run: Run, full: Manifest, targetPath: string, targetTree: ReadonlyMap<string, Entry>, touch: Manifest, rootToo: boolean): Promise<void> {
  if (full.kind !== "dir" || (touch.dirs.length === 0 && !rootToo)) return;
  try {
    await applyAttributes(run, touch, targetPath, [], { root: rootToo });
  } catch (err) {
    if (!isTransferError(err) || err.code !== "PERMISSION_DENIED") throw err;
    const refused: string[] = [];
    for (const d of [...touch.dirs].sort((a, b) => b.path.length - a.path.length).concat(rootToo ? [{ ...full.root, path: "" }] : [])) {
      try {
        await run.target.setAttributes(joinRel(targetPath, d.path), { mode: d.mode, mtimeMs: d.mtimeMs }, { signal: run.signal });
      } catch (e) {
        if (!isTransferError(e) || e.code !== "PERMISSION_DENIED" || (d.path !== "" && !targetTree.has(d.path))) throw e;
        refused.push(d.path);
      }
    }
    run.emit({ kind: "fallback", message: `${refused.length} existing target folders keep their own mode and time (not ours to change)`, data: { paths: refused.slice(0, 20) } });
  }
}

/**
 * Removes the target entries the source does not have (mirror), topmost first and never through a
 * link; another transfer's staging entries (`.ketter-*`) are left alone. Returns how many went.
 */
export async function mirror(run: Run, full: Manifest, targetPath: string, targetTree: ReadonlyMap<string, Entry>): Promise<number> {
  const inSource = new Set([...full.files, ...full.dirs, ...full.links].map((e) => e.path));
  const extra = [...targetTree.values()]
    .filter((e) => !inSource.has(e.path) && !baseRel(e.path).startsWith(".ketter-"))
    .sort((a, b) => (a.path < b.path ? -1 : 1));
  let removed = 0;
  let under: string | null = null;
  for (const e of extra) {
    if (under !== null && e.path.startsWith(`${under}/`)) continue; // inside a folder already removed whole
    await run.target.remove(joinRel(targetPath, e.path), { recursive: e.type === "dir", signal: run.signal });
    removed++;
    under = e.type === "dir" ? e.path : under;
    await maybeYield();
  }
  if (removed > 0) run.emit({ kind: "mirrored", message: `mirror removed ${removed} target entries the source does not have`, data: { removed, paths: extra.slice(0, 50).map((e) => e.path) } });
  return removed;
}
