/**
 * What a person should know about a portal just saved, before a job uses it. Saving is never
 * refused for these: a local portal's root lives on the worker's machine, which may not be the
 * API's (the API can only say what it sees), and an sftp portal is pinned after its first check.
 * A local portal of another site is on another machine: the API does not look (a missing folder
 * here says nothing about there).
 */
import { stat } from "node:fs/promises";
import type { PortalRow } from "./repository.ts";

/** One thing to fix before jobs can use the portal. */
export interface PortalWarning {
  code: "ROOT_NOT_FOUND" | "ROOT_NOT_A_FOLDER" | "ROOT_UNREADABLE" | "HOST_KEY_NOT_PINNED";
  message: string;
}

/** The warnings for `portal` (empty when nothing is known to be wrong); `apiSite` is the API's own KETTER_SITE. */
export async function portalWarnings(portal: PortalRow, apiSite: string): Promise<PortalWarning[]> {
  const again = `POST /portals/${portal.id}/check checks again`;
  if (portal.kind === "sftp") {
    if (portal.host_key_fingerprint) return [];
    return [{ code: "HOST_KEY_NOT_PINNED", message: `jobs refuse this portal until its host key is pinned: POST /portals/${portal.id}/check, compare the fingerprint it reports with the server's own, then PATCH hostKeyFingerprint` }];
  }
  if (portal.site !== null && portal.site !== apiSite) return [];
  try {
    const st = await stat(portal.root_path);
    if (st.isDirectory()) return [];
    return [{ code: "ROOT_NOT_A_FOLDER", message: `${portal.root_path} is not a folder; point rootPath at a folder (PATCH /portals/${portal.id})` }];
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") {
      return [{ code: "ROOT_NOT_FOUND", message: `folder ${portal.root_path} does not exist on the API's machine; jobs using this portal fail until it exists where the worker runs — create it there (or mount its disk); ${again}` }];
    }
    return [{ code: "ROOT_UNREADABLE", message: `cannot look at ${portal.root_path} (${code ?? String(err)}); jobs need the worker's user to read and write it; ${again}` }];
  }
}
