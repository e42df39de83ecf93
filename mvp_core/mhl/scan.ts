/**
 * One walk of a folder tree: its files and folders, and the folders that root a (nested) history.
 * `ascmhl` folders themselves are never entered; symlinks and other non-regular entries are not
 * followed (like the reference implementation, which does not descend into linked folders).
 */
import { type MhlFs, joinFs } from "./io.ts";
import { ASCMHL_DIR } from "./naming.ts";
import { compareCodePoints, joinPath } from "./relative_path.ts";

/** A file of the tree, path relative to the scanned root. */
export interface ScannedFile {
  path: string;
  size: number;
  mtimeMs: number;
}

/** What scanTree found: files and folders (relative paths, code-point order) and history roots. */
export interface TreeScan {
  files: ScannedFile[];
  dirs: { path: string; mtimeMs: number }[];
  /** Folders holding an `ascmhl` folder, "" for the root itself; parents before children. */
  historyRoots: string[];
}

/** Walks `root` (absolute) through `fs`. */
export async function scanTree(fs: MhlFs, root: string): Promise<TreeScan> {
  const scan: TreeScan = { files: [], dirs: [], historyRoots: [] };
  const walk = async (rel: string) => {
    const entries = (await fs.list(joinFs(root, rel))).sort((a, b) => compareCodePoints(a.name, b.name));
    if (entries.some((e) => e.name === ASCMHL_DIR && e.type === "dir")) scan.historyRoots.push(rel);
    for (const e of entries) {
      const p = joinPath(rel, e.name);
      if (e.type === "file") scan.files.push({ path: p, size: e.size, mtimeMs: e.mtimeMs });
      else if (e.type === "dir" && e.name !== ASCMHL_DIR) {
        scan.dirs.push({ path: p, mtimeMs: e.mtimeMs });
        await walk(p);
      }
    }
  };
  await walk("");
  return scan;
}
