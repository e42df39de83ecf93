/**
 * The `createParents` job option: creates the missing folders above a job's target before the
 * engine runs, one level at a time, so the portal's own root is never created — a missing root
 * usually means an unmounted disk, and writing there would fill the wrong file system.
 */
import { type Endpoint, TransferError } from "../transfer_engine/index.ts";

/** Creates the missing parent folders of `targetPath` (relative to the target's root) on `target`. */
export async function ensureTargetParents(target: Endpoint, targetPath: string, signal: AbortSignal): Promise<string[]> {
  const root = await target.stat("", { signal });
  if (root === null || root.type !== "dir") {
    throw new TransferError("NOT_A_DIRECTORY", `the target portal's root ${target.label} does not exist or is not a folder; create it (is its disk mounted?) — createParents never creates a portal's root`, {
      details: { path: "" },
    });
  }
  const segments = targetPath.split("/").filter((s) => s !== "" && s !== ".");
  const created: string[] = [];
  let rel = "";
  for (const segment of segments.slice(0, -1)) {
    rel = rel ? `${rel}/${segment}` : segment;
    const entry = await target.stat(rel, { signal });
    if (entry === null) {
      try {
        await target.mkdir(rel, { signal });
        created.push(rel);
      } catch (err) {
        // Another job may have created the same folder a moment ago: that is what we wanted.
        if ((await target.stat(rel, { signal }))?.type !== "dir") throw err;
      }
    } else if (entry.type !== "dir") {
      throw new TransferError("NOT_A_DIRECTORY", `${JSON.stringify(rel)} on ${target.label} is not a folder, so the target cannot be created under it; choose another target`, { details: { path: rel } });
    }
  }
  return created;
}
