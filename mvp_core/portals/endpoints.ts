/**
 * From a portal row to a live Endpoint (what the worker transfers through) and to a check report
 * (what a person reads before pinning a host key). The clear secret exists only inside these calls.
 */
import { TransferError, isTransferError, openEndpoint, probeSsh, type Endpoint, type ErrorCode, type SshTarget } from "../transfer_engine/index.ts";
import { decryptPortalSecret, type PortalRow } from "./repository.ts";

function sshTarget(portal: PortalRow, secretKey: Buffer): SshTarget {
  const secret = decryptPortalSecret(portal, secretKey);
  if (!secret || portal.host === null || portal.port === null || portal.username === null) {
    throw new TransferError("INVALID_SPEC", `portal ${portal.name} is missing its host, port, username or secret; update it`, { details: { portal: portal.name } });
  }
  const auth: SshTarget["auth"] =
    "password" in secret
      ? { method: "password", password: secret.password }
      : { method: "key", privateKey: secret.privateKey, ...(secret.passphrase ? { passphrase: secret.passphrase } : {}) };
  return {
    host: portal.host,
    port: portal.port,
    username: portal.username,
    root: portal.root_path,
    auth,
    ...(portal.host_key_fingerprint ? { hostKeyFingerprint: portal.host_key_fingerprint } : {}),
    ...(portal.max_connections !== null ? { maxConnections: portal.max_connections } : {}),
  };
}

/**
 * Opens the portal as an Endpoint: local → its root folder; sftp → an SSH connection
 * that only accepts the pinned host key. An sftp portal with no pinned key is refused.
 */
export async function openPortalEndpoint(portal: PortalRow, secretKey: Buffer, opts: { signal?: AbortSignal } = {}): Promise<Endpoint> {
  if (portal.kind === "local") return openEndpoint({ kind: "local", root: portal.root_path });
  if (!portal.host_key_fingerprint) {
    throw new TransferError(
      "HOST_KEY_MISMATCH",
      `portal ${portal.name} has no pinned host key; run POST /portals/${portal.id}/check and pin the fingerprint it reports (PATCH hostKeyFingerprint)`,
      { retryable: false, details: { portal: portal.name, reason: "not_pinned" } },
    );
  }
  return openEndpoint({ kind: "sftp", ...sshTarget(portal, secretKey) }, opts);
}

/** What POST /portals/{id}/check reports. */
export interface PortalCheck {
  reachable: boolean;
  /** Host key the server presented ("SHA256:…"), null for local portals or when it never answered. */
  hostKeyFingerprint: string | null;
  pinnedFingerprint: string | null;
  /** null when nothing is pinned (or local). */
  fingerprintMatches: boolean | null;
  freeBytes: number | null;
  totalBytes: number | null;
  tools: { shell: boolean; unzip: boolean; zip: boolean; hashes: string[] } | null;
  error: { code: ErrorCode; message: string } | null;
}

async function checkLocal(portal: PortalRow): Promise<PortalCheck> {
  const base = { hostKeyFingerprint: null, pinnedFingerprint: null, fingerprintMatches: null, tools: null };
  let ep: Endpoint | null = null;
  try {
    ep = await openEndpoint({ kind: "local", root: portal.root_path });
    const space = await ep.space("");
    return { ...base, reachable: true, freeBytes: space.freeBytes, totalBytes: space.totalBytes, error: null };
  } catch (err) {
    if (!isTransferError(err)) throw err;
    const error = err.code === "SOURCE_NOT_FOUND"
      ? { code: err.code, message: `folder ${portal.root_path} does not exist on the API host` }
      : err.code === "NOT_A_DIRECTORY" ? { code: err.code, message: `${portal.root_path} is not a folder` } : { code: err.code, message: err.message };
    return { ...base, reachable: false, freeBytes: null, totalBytes: null, error };
  } finally {
    await ep?.close();
  }
}

/**
 * Connects to the portal and reports reachability, free space and (sftp) the host key seen, even
 * when nothing is pinned yet, so a person can pin it. Failures are reported, not thrown.
 */
export async function checkPortal(portal: PortalRow, secretKey: Buffer, opts: { connectTimeoutMs?: number } = {}): Promise<PortalCheck> {
  if (portal.kind === "local") return checkLocal(portal);
  const target = sshTarget(portal, secretKey);
  const probe = await probeSsh({ ...target, ...(opts.connectTimeoutMs ? { connectTimeoutMs: opts.connectTimeoutMs } : {}) });
  return {
    reachable: probe.reachable,
    hostKeyFingerprint: probe.fingerprint || null,
    pinnedFingerprint: portal.host_key_fingerprint,
    fingerprintMatches: probe.fingerprintMatches,
    freeBytes: probe.freeBytes ?? null,
    totalBytes: null,
    tools: probe.reachable ? { ...probe.tools, hashes: [...probe.tools.hashes] } : null,
    error: probe.error ?? null,
  };
}
