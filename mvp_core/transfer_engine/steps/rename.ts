/**
 * The `rename` strategy: a local move within one file system is what `mv` does — one atomic
 * rename, no data copied, no window where neither or both copies exist. Used only for
 * mode "move" with strategy "auto" (an explicit strategy means the caller wants the data copied).
 */
import fs from "node:fs";
import { TransferError, fromSystemError } from "../errors.ts";
import type { LocalEndpoint } from "../endpoints/local/local_endpoint.ts";
import { showPath } from "../paths.ts";
import type { Run } from "../run.ts";

/** Renames source onto target (swapping out an existing target with overwrite); false on EXDEV. */
export async function moveByRename(run: Run, source: LocalEndpoint, target: LocalEndpoint, sourcePath: string, targetPath: string): Promise<boolean> {
  const src = source.resolve(sourcePath, false);
  const dst = target.resolve(targetPath, false);
  const existing = await target.stat(targetPath);
  if (existing !== null && !run.spec.overwrite) {
    throw new TransferError("TARGET_EXISTS", `target ${showPath(run.target, run.spec.targetPath)} already exists; pass overwrite to replace it`);
  }
  if (existing !== null) await target.rename(targetPath, run.names.old);
  try {
    fs.renameSync(src, dst);
  } catch (err) {
    if (existing !== null) await target.rename(run.names.old, targetPath);
    if ((err as { code?: string }).code === "EXDEV") return false;
    throw fromSystemError(err, src, `move to ${JSON.stringify(dst)}:`);
  }
  if (existing !== null) await target.remove(run.names.old, { recursive: true });
  return true;
}
