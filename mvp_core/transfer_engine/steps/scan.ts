/**
 * Step 1, scan: checks where source and target are relative to each other, then lists the source.
 * Symlink policy: links are copied as links (their text unchanged) when they point inside the
 * source tree; a link that is absolute or climbs out of the tree fails the scan with PATH_ESCAPE,
 * before anything is written. Links are never followed.
 */
import fs from "node:fs";
import path from "node:path";
import type { Endpoint, Entry } from "../endpoints/endpoint.ts";
import { TransferError, fromSystemError } from "../errors.ts";
import { LocalEndpoint } from "../endpoints/local/local_endpoint.ts";
import { baseRel, normalizeRel, parentRel, showPath } from "../paths.ts";
import type { StatPrefetch } from "./prefetch.ts";
import { type Run, checkCancelled } from "../run.ts";

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

/** Validates the source/target relationship and the target's parent; TARGET_EXISTS unless overwrite. */
export async function checkPaths(run: Run, early?: StatPrefetch): Promise<{ sourcePath: string; targetPath: string; targetExists: Entry | null }> {
  const { source, target, spec } = run;
  const stat = (p: string): Promise<Entry | null> => (early ? early.stat(p) : target.stat(p, { signal: run.signal }));
  const sourcePath = normalizeRel(spec.sourcePath);
  const targetPath = normalizeRel(spec.targetPath);
  if (targetPath === "") throw new TransferError("INVALID_SPEC", "targetPath cannot be the endpoint root; name the file or folder to create");
  const rel = relation(source, sourcePath, target, targetPath);
  if (rel === "same") throw new TransferError("SAME_PATH", `source and target are the same path (${showPath(source, spec.sourcePath)}); choose a different target`);
  if (rel === "target-inside") {
    throw new TransferError("TARGET_INSIDE_SOURCE", `target ${showPath(target, spec.targetPath)} is inside the source ${showPath(source, spec.sourcePath)}; copying a folder into itself never ends — choose a target outside it`);
  }
  const parent = await stat(parentRel(targetPath));
  if (parent === null || parent.type !== "dir") {
    throw new TransferError("NOT_A_DIRECTORY", `the target's parent folder ${JSON.stringify(parentRel(targetPath) || "/")} on ${target.label} does not exist or is not a folder; create it first`, {
      details: { path: parentRel(targetPath) },
    });
  }
  const targetExists = await stat(targetPath);
  if (targetExists !== null && !spec.overwrite) {
    throw new TransferError("TARGET_EXISTS", `target ${showPath(target, spec.targetPath)} already exists; pass overwrite (--overwrite) to replace it, or choose another target`, {
      details: { path: targetPath },
    });
  }
  if (targetExists !== null && rel === "source-inside") {
    throw new TransferError("SOURCE_INSIDE_TARGET", `the source lies inside the target ${showPath(target, spec.targetPath)}: replacing the target would delete the source; choose another target`);
  }
  return { sourcePath, targetPath, targetExists };
}

type Relation = "same" | "target-inside" | "source-inside" | "apart";

function relation(source: Endpoint, sourcePath: string, target: Endpoint, targetPath: string): Relation {
  let s: string;
  let t: string;
  if (source instanceof LocalEndpoint && target instanceof LocalEndpoint) {
    // Compare real locations: two roots or a symlinked parent can name one folder twice.
    s = realOrSelf(source.absolute(sourcePath));
    t = path.join(realOrSelf(path.dirname(target.absolute(targetPath))), baseRel(targetPath));
  } else if (source === target) {
    s = `/${sourcePath}`;
    t = `/${targetPath}`;
  } else {
    return "apart";
  }
  if (s === t) return "same";
  if (t.startsWith(s.endsWith("/") ? s : `${s}/`)) return "target-inside";
  if (s.startsWith(t.endsWith("/") ? t : `${t}/`)) return "source-inside";
  return "apart";
}

function realOrSelf(abs: string): string {
  try {
    return fs.realpathSync(abs);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "ENOENT" || code === "ENOTDIR") return abs;
    throw fromSystemError(err, abs, "resolve");
  }
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
    checkCancelled(run.signal);
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
