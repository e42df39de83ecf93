/**
 * Step 1a, check: before anything is written, where the target is relative to the source (on any
 * two endpoints, from what each says of where its path really is: endpoints/location.ts), and
 * whether the target may be written at all. A job that would overwrite or remove its own source
 * is refused here with its own code; so is any destructive step (a move, or replacing an existing
 * target) when the engine cannot prove the two places are different.
 */
import type { Entry, Location } from "../endpoints/endpoint.ts";
import { type Relation, relate } from "../endpoints/location.ts";
import { TransferError } from "../errors.ts";
import { joinRel, normalizeRel, parentRel, showPath } from "../paths.ts";
import type { Run } from "../run.ts";
import type { StatPrefetch } from "./prefetch.ts";

/** What the check found: normalised paths, the existing target (if any) and the relation. */
export interface Checked {
  sourcePath: string;
  targetPath: string;
  targetExists: Entry | null;
  relation: Relation;
  /** The target's parent folders to create (createParents), outermost first; empty when the parent exists. */
  missingParents: string[];
  /** Where each path really is (the target's: it or its nearest existing ancestor). */
  locations: { source: Location; target: Location };
}

/** Where the source and the target paths really are (Endpoint.locate), asked of both endpoints at once. */
export function locatePaths(run: Run, signal?: AbortSignal): Promise<[Location, Location]> {
  const opts = { signal: signal ?? run.signal };
  return Promise.all([run.source.locate(normalizeRel(run.spec.sourcePath), opts), run.target.locate(normalizeRel(run.spec.targetPath), opts)]);
}

/**
 * Validates the source/target relationship and the target's parent; TARGET_EXISTS unless overwrite.
 * `located`: locatePaths() already under way (asked before the staging was recovered, which it does not move).
 */
export async function checkPaths(run: Run, early?: StatPrefetch, located?: Promise<[Location, Location]>): Promise<Checked> {
  const { source, target, spec } = run;
  const stat = (p: string): Promise<Entry | null> => (early ? early.stat(p) : target.stat(p, { signal: run.signal }));
  const sourcePath = normalizeRel(spec.sourcePath);
  const targetPath = normalizeRel(spec.targetPath);
  if (targetPath === "") throw new TransferError("INVALID_SPEC", "targetPath cannot be the endpoint root; name the file or folder to create");
  const src = showPath(source, spec.sourcePath);
  const dst = showPath(target, spec.targetPath);
  const [sLoc, tLoc] = await (located ?? locatePaths(run));
  // A missing source is reported after the target's checks (as when the steps ran in turn).
  const sourceMissing = sLoc.missing !== "";
  const relation = sourceMissing ? "unknown" : relate(sLoc, tLoc);
  if (relation === "same") {
    throw new TransferError("SAME_PATH", `source ${src} and target ${dst} are the same place${sLoc.realPath !== tLoc.realPath ? "" : ` (${sLoc.realPath})`}; choose a different target`, {
      details: { source: sourcePath, target: targetPath },
    });
  }
  if (relation === "target-inside") {
    throw new TransferError("TARGET_INSIDE_SOURCE", `target ${dst} is inside the source ${src}; copying a folder into itself never ends and would change the source — choose a target outside it`, {
      details: { source: sourcePath, target: targetPath },
    });
  }
  const parent = await stat(parentRel(targetPath));
  const missingParents = parent === null && spec.createParents ? await foldersToCreate(run, parentRel(targetPath)) : [];
  if (missingParents.length === 0 && (parent === null || parent.type !== "dir")) {
    throw new TransferError("NOT_A_DIRECTORY", `the target's parent folder ${JSON.stringify(parentRel(targetPath) || "/")} on ${target.label} does not exist or is not a folder; create it first (or allow createParents)`, {
      details: { path: parentRel(targetPath) },
    });
  }
  const targetExists = missingParents.length > 0 ? null : await stat(targetPath);
  // sync (and a retry of failed files) updates an existing target in place instead of replacing it.
  const merging = spec.sync !== "off" || run.only !== null;
  if (targetExists !== null && !spec.overwrite && !merging) {
    throw new TransferError("TARGET_EXISTS", `target ${dst} already exists; allow overwrite to replace it, or choose another target`, {
      details: { path: targetPath },
    });
  }
  if (sourceMissing) throw new TransferError("SOURCE_NOT_FOUND", `source ${src} does not exist on ${source.label}; check the path`, { details: { path: sourcePath } });
  if (targetExists !== null && relation === "source-inside") {
    throw new TransferError("SOURCE_INSIDE_TARGET", `the source ${src} lies inside the target ${dst}: ${merging ? "updating" : "replacing"} the target could delete the source; choose another target`, {
      details: { source: sourcePath, target: targetPath },
    });
  }
  if (relation === "unknown" && (spec.mode === "move" || targetExists !== null)) {
    const step = spec.mode === "move" ? "move (which deletes the source)" : `${merging ? "update" : "replace"} ${dst}`;
    throw new TransferError("LOCATION_UNKNOWN", `cannot prove that ${src} on ${source.label} and ${dst} on ${target.label} are different places (${unknownWhy(sLoc, tLoc)}), so Ketter will not ${step}; copy without overwrite instead, or give the SSH account a shell with stat so it can tell`, {
      details: { source: sourcePath, target: targetPath },
    });
  }
  return { sourcePath, targetPath, targetExists, relation, missingParents, locations: { source: sLoc, target: tLoc } };
}

/**
 * The missing folders from the nearest existing one down to `folder` (createParents), after
 * proving that one is a folder. The endpoint's own root is never created: a missing root usually
 * means an unmounted disk, and writing there would fill the wrong file system.
 */
async function foldersToCreate(run: Run, folder: string): Promise<string[]> {
  const { target } = run;
  const missing: string[] = [];
  for (let at = folder; ; at = parentRel(at)) {
    const e = at === "" ? await target.stat("", { signal: run.signal }).catch(() => null) : await target.stat(at, { signal: run.signal });
    if (e?.type === "dir") return missing;
    if (at === "") {
      throw new TransferError("NOT_A_DIRECTORY", `the target's root ${target.label} does not exist or is not a folder; create it (is its disk mounted?) — createParents never creates an endpoint's root`, { details: { path: "" } });
    }
    if (e !== null) throw new TransferError("NOT_A_DIRECTORY", `${JSON.stringify(at)} on ${target.label} is not a folder, so the target cannot be created under it; choose another target`, { details: { path: at } });
    missing.unshift(at);
  }
}

/** Creates the folders foldersToCreate() listed, outermost first; one another job made meanwhile is fine. */
export async function createParentFolders(run: Run, folders: readonly string[]): Promise<void> {
  for (const f of folders) {
    try {
      await run.target.mkdir(f, { signal: run.signal });
    } catch (err) {
      if ((await run.target.stat(f, { signal: run.signal }))?.type !== "dir") throw err;
    }
  }
}

/** Whether the source entry and the target's folder are on one file system of one kernel (a rename can move it). */
export function sameFileSystem(l: { source: Location; target: Location }): boolean {
  const s = l.source.chain?.[0];
  const t = l.target.chain?.[0];
  if (s === undefined || t === undefined || l.source.kernel === null || l.source.kernel !== l.target.kernel) return false;
  return s.slice(0, s.indexOf(":")) === t.slice(0, t.indexOf(":"));
}

function unknownWhy(s: { chain: unknown; shared: boolean | null }, t: { chain: unknown; shared: boolean | null }): string {
  if (s.chain === null || t.chain === null) return "one side is reachable only over SFTP, which does not show file identities";
  if (s.shared !== false || t.shared !== false) return "one side is on a network file system another host may also serve";
  return "their file identities do not prove it";
}

/**
 * For a copy whose geometry check.ts could not prove (the target is allowed because it replaces
 * nothing): an empty probe file is created in the target's folder, then looked for through the
 * source endpoint at every place that folder could be if it lay inside the source folder
 * (`source/<last k components of the target's folder>` for each k). Found: the target is inside
 * the source and the copy is refused (TARGET_INSIDE_SOURCE). The probe is removed either way.
 */
export async function probeTargetInsideSource(run: Run, sourcePath: string, targetPath: string): Promise<void> {
  const { source, target } = run;
  const name = `.ketter-${run.spec.id}.probe`;
  const folder = parentRel(targetPath);
  const probe = joinRel(folder, name);
  const w = await target.openWrite(probe, { mode: 0o600, size: 0, signal: run.signal });
  await w.close();
  let found: boolean;
  try {
    const parts = folder === "" ? [] : folder.split("/");
    const candidates = parts.map((_, k) => joinRel(joinRel(sourcePath, parts.slice(k).join("/")), name));
    candidates.push(joinRel(sourcePath, name));
    const seen = await Promise.all(candidates.map((c) => source.stat(c, { signal: run.signal }).catch(() => null)));
    found = seen.some((e) => e !== null && e.type === "file" && e.size === 0);
    // The target's root may lie deeper inside the source than the target path's own folders reach
    // (roots a/b and "", target c/new): then only a search of the source finds the probe.
    if (!found) found = await seenInside(source, sourcePath, name, run.signal);
  } finally {
    await target.remove(probe);
  }
  if (found) {
    throw new TransferError("TARGET_INSIDE_SOURCE", `target ${showPath(target, run.spec.targetPath)} is inside the source ${showPath(source, run.spec.sourcePath)} (seen through the source); copying a folder into itself would change the source — choose a target outside it`, {
      details: { source: sourcePath, target: targetPath },
    });
  }
}

/** Whether a file named `name` lies anywhere below `sourcePath` (a walk that stops at the first). */
async function seenInside(source: Run["source"], sourcePath: string, name: string, signal?: AbortSignal): Promise<boolean> {
  for await (const e of source.walk(sourcePath, { signal })) {
    if (e.type === "file" && (e.path === name || e.path.endsWith(`/${name}`))) return true;
  }
  return false;
}
