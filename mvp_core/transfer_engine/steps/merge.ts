/**
 * Step 5 (sync): the verified staging tree is merged into the existing target file by file. The
 * folders the target lacks are made, then each file (and changed link) is renamed from the staging
 * tree onto its final name, replacing the old version in one atomic step: at any instant every
 * target file is its old or its new version, never a torn one. Folder attributes follow, deepest
 * first, as for a whole copy. Mirror, afterwards, removes what the source does not have.
 */
import type { Entry } from "../endpoints/endpoint.ts";
import { TransferError, isTransferError } from "../errors.ts";
import { baseRel, joinRel, showPath } from "../paths.ts";
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
 * Moves what `send` lists from the staging tree into the existing target, then removes the staging
 * tree. Folder attributes come after (finishMerge), once a mirror has removed what it removes:
 * removing an entry changes its folder's mtime.
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
  for (const e of [...send.files, ...send.links]) {
    await target.rename(joinRel(stagingPath, e.path), joinRel(targetPath, e.path), { replace: true });
    await maybeYield();
  }
  await target.remove(stagingPath, { recursive: true });
}

/**
 * The source's folder modes and mtimes on the merged target (`full`: the whole source), deepest
 * first. A folder that was there before may belong to someone else, who alone may change its mode:
 * those are left as they are (said once in an event) rather than failing a merge already committed.
 */
export async function finishMerge(run: Run, full: Manifest, targetPath: string, targetTree: ReadonlyMap<string, Entry>): Promise<void> {
  if (full.kind !== "dir") return;
  try {
    await applyAttributes(run, full, targetPath, []);
  } catch (err) {
    if (!isTransferError(err) || err.code !== "PERMISSION_DENIED") throw err;
    const refused: string[] = [];
    for (const d of [...full.dirs].sort((a, b) => b.path.length - a.path.length).concat([{ ...full.root, path: "" }])) {
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
