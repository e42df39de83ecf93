/**
 * The `rename` strategy: a move within one file system is what `mv` does — one atomic rename, no
 * data copied, no window where neither or both copies exist. Used only for mode "move" with
 * strategy "auto" (an explicit strategy means the caller wants the data copied), and only through
 * an endpoint that can rename from the source (Endpoint.renameFrom).
 */
import { TransferError } from "../errors.ts";
import { showPath } from "../paths.ts";
import type { Run } from "../run.ts";
import { moveAside } from "./commit.ts";

/** Renames source onto target (swapping out an existing target with overwrite); false when a rename cannot do it. */
export async function moveByRename(run: Run, sourcePath: string, targetPath: string): Promise<boolean> {
  const { source, target } = run;
  const renameFrom = target.renameFrom?.bind(target);
  if (renameFrom === undefined) return false;
  const existing = await target.stat(targetPath);
  if (existing !== null && !run.spec.overwrite) {
    throw new TransferError("TARGET_EXISTS", `target ${showPath(run.target, run.spec.targetPath)} already exists; allow overwrite to replace it`);
  }
  if (existing !== null) await moveAside(run, targetPath);
  let moved: boolean;
  try {
    moved = await renameFrom(source, sourcePath, targetPath);
  } catch (err) {
    if (existing !== null) await target.rename(run.names.old, targetPath);
    throw err;
  }
  if (!moved) {
    if (existing !== null) await target.rename(run.names.old, targetPath);
    return false;
  }
  if (existing !== null) await target.remove(run.names.old, { recursive: true });
  return true;
}
