/**
 * The non-file parts of the staging tree: folders first (so files have somewhere to go), links
 * after the files, and folder attributes last — writing into a folder changes its mtime, so a
 * folder's mtime is set only once everything inside it exists, deepest first.
 */
import type { Entry } from "../endpoints/endpoint.ts";
import { throwIfCancelled } from "../cancel.ts";
import { joinRel } from "../paths.ts";
import type { Run } from "../run.ts";
import type { Manifest } from "./scan.ts";
import { maybeYield } from "../yield.ts";

/**
 * Creates the staging root folder and every sub-folder (owner-writable until attributes are
 * applied); with `existing` (a resumed staging tree: its folders, relative to it) only the others.
 */
export async function createDirs(run: Run, m: Manifest, stagingPath: string, existing?: ReadonlySet<string>): Promise<void> {
  if (m.kind !== "dir") return;
  const missing = existing === undefined ? m.dirs : m.dirs.filter((d) => !existing.has(d.path));
  const rootMissing = existing === undefined;
  if (run.target.mkdirMany) {
    // Remote: a round trip or two for the whole tree instead of one per folder; local: no async hop per folder.
    const dirs = [...(rootMissing ? [stagingPath] : []), ...missing.map((d) => joinRel(stagingPath, d.path))];
    if (dirs.length > 0) await run.target.mkdirMany(dirs.map((path) => ({ path, mode: 0o700 })), { signal: run.signal });
    return;
  }
  if (rootMissing) await run.target.mkdir(stagingPath, { signal: run.signal, mode: 0o700 });
  for (const d of missing) {
    throwIfCancelled(run.signal);
    await run.target.mkdir(joinRel(stagingPath, d.path), { signal: run.signal, mode: 0o700 });
    await maybeYield();
  }
}

/** Recreates the symbolic links (text unchanged; scan already refused links leaving the tree). */
export async function createLinks(run: Run, m: Manifest, stagingPath: string): Promise<void> {
  for (const l of m.links) {
    throwIfCancelled(run.signal);
    await run.target.symlink(l.linkTarget ?? "", joinRel(stagingPath, l.path), { signal: run.signal });
    await run.target.setAttributes(joinRel(stagingPath, l.path), { mtimeMs: l.mtimeMs }, { signal: run.signal });
    await maybeYield();
  }
}

/** Sets mode and mtime on files (after unzip), then on folders deepest first, then on the root. */
export async function applyAttributes(run: Run, m: Manifest, stagingPath: string, files: readonly Entry[], { root = true }: { root?: boolean } = {}): Promise<void> {
  const dirs = [...m.dirs].sort((a, b) => depth(b.path) - depth(a.path));
  const all = m.kind === "dir" ? [...files, ...dirs, ...(root ? [{ ...m.root, path: "" }] : [])] : [...files];
  const { target } = run;
  if (target.setAttributesMany) {
    // Remote: all requests in flight instead of one round trip per entry; local: no async hop per
    // entry. Files before folders, deepest first, as above: the requests are served in order.
    await target.setAttributesMany(all.map((e) => ({ path: joinRel(stagingPath, e.path), mtimeMs: e.mtimeMs, mode: e.mode })), { signal: run.signal });
    return;
  }
  for (const e of all) {
    throwIfCancelled(run.signal);
    await target.setAttributes(joinRel(stagingPath, e.path), { mtimeMs: e.mtimeMs, mode: e.mode }, { signal: run.signal });
  }
}

function depth(p: string): number {
  let n = 0;
  for (let i = 0; i < p.length; i++) if (p.charCodeAt(i) === 47) n++;
  return n;
}
