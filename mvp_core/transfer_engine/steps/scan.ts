/**
 * Step 1b, scan: lists the source (check.ts decides first whether the target may be written).
 * Symlink policy: links are copied as links (their text unchanged) when they point inside the
 * source tree; a link that is absolute or climbs out of the tree fails the scan with PATH_ESCAPE,
 * before anything is written. Links are never followed.
 */
import path from "node:path";
import type { Entry } from "../endpoints/endpoint.ts";
import { throwIfCancelled } from "../cancel.ts";
import { TransferError } from "../errors.ts";
import { parentRel, showPath } from "../paths.ts";
import type { Run } from "../run.ts";

/** The source as listed once; every later step works from this snapshot. */
export interface Manifest {
  kind: "file" | "dir";
  root: Entry;
  /** Paths relative to the source ("" when the source is a single file). */
  files: Entry[];
  dirs: Entry[];
  links: Entry[];
  bytes: number;
}

/** Lists the source into a Manifest (SOURCE_NOT_FOUND, PATH_ESCAPE for links leaving the tree). */
export async function scan(run: Run, sourcePath: string): Promise<Manifest> {
  const root = await run.source.stat(sourcePath, { signal: run.signal });
  if (root === null) {
    throw new TransferError("SOURCE_NOT_FOUND", `source ${showPath(run.source, run.spec.sourcePath)} does not exist on ${run.source.label}; check the path`, { details: { path: sourcePath } });
  }
  if (root.type === "symlink") {
    throw new TransferError("UNSUPPORTED", `source ${showPath(run.source, run.spec.sourcePath)} is a symbolic link; give the path it points to (${JSON.stringify(root.linkTarget)}) instead`);
  }
  if (root.type === "file") return { kind: "file", root, files: [{ ...root, path: "" }], dirs: [], links: [], bytes: root.size };
  const m: Manifest = { kind: "dir", root, files: [], dirs: [], links: [], bytes: 0 };
  for await (const e of run.source.walk(sourcePath, { signal: run.signal })) {
    throwIfCancelled(run.signal);
    if (e.type === "file") {
      m.files.push(e);
      m.bytes += e.size;
      run.progress.setTotals(m.files.length, m.bytes);
    } else if (e.type === "dir") m.dirs.push(e);
    else {
      assertLinkInside(e, run.spec.sourcePath);
      m.links.push(e);
    }
  }
  return m;
}

function assertLinkInside(e: Entry, sourceLabel: string): void {
  const text = e.linkTarget ?? "";
  const resolved = path.posix.normalize(path.posix.join(parentRel(e.path), text));
  if (text.startsWith("/") || resolved === ".." || resolved.startsWith("../")) {
    throw new TransferError("PATH_ESCAPE", `symbolic link ${JSON.stringify(e.path)} in ${JSON.stringify(sourceLabel)} points outside the source folder (-> ${JSON.stringify(text)}); links are copied only when they stay inside — replace it with a relative link or the file itself`, {
      details: { path: e.path, linkTarget: text },
    });
  }
}
