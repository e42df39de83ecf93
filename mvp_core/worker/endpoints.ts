/** From a job's portals to the two endpoints the engine transfers between. */
import type { Sql } from "postgres";
import type { JobRow } from "../jobs/types.ts";
import { type PortalRow, getPortal } from "../portals/repository.ts";
import { type Endpoint, TransferError, isTransferError } from "../transfer_engine/index.ts";

/** Opens a portal as an Endpoint (production: portals/endpoints.ts openPortalEndpoint with the secret key). */
export type OpenEndpoint = (portal: PortalRow, signal: AbortSignal) => Promise<Endpoint>;

/**
 * Opens the job's source and target; a portal deleted since the job was created fails it (not
 * retryable). A verify job's one folder is its source and its target: one endpoint serves both.
 * `mhl`: the target portal's ASC MHL default, for a job whose options do not say.
 */
export async function openJobEndpoints(sql: Sql, job: JobRow, open: OpenEndpoint, signal: AbortSignal): Promise<{ source: Endpoint; target: Endpoint; mhl: boolean }> {
  const [sourcePortal, targetPortal] = await Promise.all([getPortal(sql, job.source_portal_id), getPortal(sql, job.target_portal_id)]);
  if (!sourcePortal || !targetPortal) {
    const which = !sourcePortal ? "source" : "target";
    throw new TransferError("INVALID_SPEC", `the ${which} portal of this job was deleted; create a new job`, { details: { portal: which } });
  }
  const source = await open(sourcePortal, signal);
  if (job.type === "verify") return { source, target: source, mhl: targetPortal.mhl };
  try {
    return { source, mhl: targetPortal.mhl, target: await open(targetPortal, signal).catch((err: unknown) => {
      // The target's root is where the target's parent folders start: missing, it is a missing folder.
      if (isTransferError(err) && err.code === "SOURCE_NOT_FOUND") {
        throw new TransferError("NOT_A_DIRECTORY", `the target portal's root ${targetPortal.root_path} (${targetPortal.name}) does not exist or is not a folder; create it (is its disk mounted?) — Ketter never creates a portal's root`, { cause: err, details: { portal: targetPortal.name } });
      }
      throw err;
    }) };
  } catch (err) {
    await source.close();
    throw err;
  }
}
