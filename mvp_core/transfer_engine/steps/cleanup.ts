/**
 * Step 6, clean up (move only): runs after the destination is verified and committed, so a crash
 * at any instant leaves at least one complete copy. Only what the scan saw is deleted, and only if
 * it still looks the same (size, mtime): a file changed or added since is kept and reported, and
 * so is any folder that is not empty once our entries are gone.
 */
import type { Entry } from "../endpoints/endpoint.ts";
import { isTransferError } from "../errors.ts";
import { joinRel, showPath } from "../paths.ts";
import type { Run } from "../run.ts";
import type { Manifest } from "./scan.ts";
import { maybeYield } from "../yield.ts";

/** Deletes the moved source; returns the paths kept because they changed or are not empty. */
export async function removeSource(run: Run, m: Manifest, sourcePath: string): Promise<string[]> {
  const { source } = run;
  const kept: string[] = [];
  const removeIfUnchanged = async (e: Entry): Promise<void> => {
    const p = joinRel(sourcePath, e.path);
    const now = await source.stat(p);
    if (now === null) return;
    if (now.type !== e.type || now.size !== e.size || now.mtimeMs !== e.mtimeMs) {
      kept.push(p);
      return;
    }
    await source.remove(p);
  };
  for (const e of [...m.files, ...m.links]) {
    await removeIfUnchanged(e);
    run.progress.add(1, e.size);
    await maybeYield();
  }
  const dirs = [...m.dirs].sort((a, b) => b.path.split("/").length - a.path.split("/").length);
  if (m.kind === "dir") dirs.push({ ...m.root, path: "" });
  for (const d of dirs) {
    const p = joinRel(sourcePath, d.path);
    try {
      await source.remove(p);
    } catch (err) {
      // ENOTEMPTY surfaces as TARGET_EXISTS: something was added meanwhile, keep it.
      if (!isTransferError(err) || err.code !== "TARGET_EXISTS") throw err;
      kept.push(p);
    }
    await maybeYield();
  }
  if (kept.length > 0) {
    run.emit({ kind: "source_kept", message: `${kept.length} source entries changed or were added during the move and were kept`, data: { paths: kept.slice(0, 50) } });
  }
  run.emit({ kind: "source_removed", message: `source ${showPath(run.source, run.spec.sourcePath)} removed`, data: { kept: kept.length } });
  return kept;
}

/**
 * Written just before every commit: `.ketter-<id>.moved` next to the target. On a retry, the
 * marker with the staging entry gone and the target present means the copy was committed, so
 * only what follows is finished (transfer.ts). Without it, a transfer whose process died or whose
 * connection dropped during the commit or a move's removal would be retried against its own
 * committed target (refused as TARGET_EXISTS, or with overwrite copied again from a half-removed source).
 */
export async function writeCommitMarker(run: Run, how: { rename?: boolean } = {}): Promise<void> {
  const bytes = new TextEncoder().encode(`${JSON.stringify({ sourcePath: run.spec.sourcePath, targetPath: run.spec.targetPath, ...(how.rename ? { rename: true } : {}) })}\n`);
  // Its size told: an SSH target then writes it over SFTP instead of starting a remote writer
  // (an exec, and a second connection when the first already carries a stream: 40-70 ms at 0 ms).
  const w = await run.target.openWrite(run.names.moved, { mode: 0o600, size: bytes.length });
  try {
    await w.write(bytes);
    await w.close();
  } catch (err) {
    await w.abort();
    throw err;
  }
}

/**
 * Whether a marker left by an earlier attempt means "committed" (its staging gone, the target
 * there). A rename has no staging: it committed only if the source is gone too — a rename that
 * never happened leaves the old target in place, which must not pass for the copy.
 */
export async function markerMeansCommitted(run: Run, sourcePath: string, stagingGone: boolean, targetThere: boolean): Promise<boolean> {
  if (!stagingGone || !targetThere) return false;
  let text = "";
  for await (const chunk of run.target.openRead(run.names.moved, { signal: run.signal })) text += new TextDecoder().decode(chunk);
  let byRename = false;
  try {
    byRename = (JSON.parse(text) as { rename?: unknown }).rename === true;
  } catch {
    return false; // a marker cut short was being written, before any commit
  }
  return !byRename || (await run.source.stat(sourcePath, { signal: run.signal })) === null;
}

/** The cleanup step as the orchestrator calls it: `copy` never touches the source; `move` removes it. Then the commit marker goes. */
export async function cleanupPhase(run: Run, m: Manifest, sourcePath: string, { marker = true }: { marker?: boolean } = {}): Promise<string[]> {
  const kept = run.spec.mode === "move" ? await removeSource(run, m, sourcePath) : [];
  if (marker) await run.target.remove(run.names.moved);
  return kept;
}

/**
 * Finishes a committed move after a crash: removes what is left of the source, entry by entry,
 * only where the committed target holds the same thing (type, size, mtime to the second, link text).
 */
export async function resumeMove(run: Run, m: Manifest, sourcePath: string, targetPath: string): Promise<string[]> {
  const { source, target } = run;
  const kept: string[] = [];
  const sameSecond = (a: number, b: number): boolean => Math.floor(a / 1000) === Math.floor(b / 1000);
  for (const e of [...m.files, ...m.links]) {
    const copy = await target.stat(joinRel(targetPath, e.path));
    const same = copy !== null && copy.type === e.type && copy.size === e.size && (e.type === "symlink" ? copy.linkTarget === e.linkTarget : sameSecond(copy.mtimeMs, e.mtimeMs));
    if (same) await source.remove(joinRel(sourcePath, e.path));
    else kept.push(joinRel(sourcePath, e.path));
    run.progress.add(1, e.size);
    await maybeYield();
  }
  const dirs = [...m.dirs].sort((a, b) => b.path.split("/").length - a.path.split("/").length);
  if (m.kind === "dir") dirs.push({ ...m.root, path: "" });
  for (const d of dirs) {
    try {
      await source.remove(joinRel(sourcePath, d.path));
    } catch (err) {
      if (!isTransferError(err) || err.code !== "TARGET_EXISTS") throw err;
      kept.push(joinRel(sourcePath, d.path));
    }
  }
  run.emit({ kind: "source_removed", message: `finished removing the source ${showPath(source, run.spec.sourcePath)} of a committed move`, data: { kept: kept.length } });
  return kept;
}
