/** Portal checks (`--portals`): each SFTP portal is reachable, presents its pinned host key, and has the zip and hash tools. */
import { connectDb } from "../db/client.ts";
import { checkPortal, type PortalCheck } from "../portals/endpoints.ts";
import { listPortals, type PortalRow } from "../portals/repository.ts";
import { errorMessage, type Check, type CheckOutcome } from "./check.ts";
import { formatBytes } from "./runtime.ts";

/** Every live SFTP portal, by name; throws when Postgres is unreachable. */
export async function sftpPortals(databaseUrl: string): Promise<PortalRow[]> {
  const sql = connectDb(databaseUrl, { max: 1, applicationName: "ketter-dku" });
  try {
    return (await listPortals(sql)).filter((p) => p.kind === "sftp");
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** fail: unreachable, key mismatch or no pinned key (the worker refuses it); warn: zip tools or xxhsum missing. */
export function judgePortal(portal: Pick<PortalRow, "id" | "name" | "host" | "port" | "username" | "root_path">, c: PortalCheck): CheckOutcome {
  const where = `${portal.username}@${portal.host}:${portal.port}:${portal.root_path}`;
  const details = { portal: portal.name, ...c };
  if (!c.reachable) {
    return { status: "fail", value: `${where} unreachable: ${c.error?.message ?? "no answer"}`, hint: `check the host, port and credentials: ssh -p ${portal.port} ${portal.username}@${portal.host}`, details };
  }
  if (c.fingerprintMatches === false) {
    return {
      status: "fail",
      value: `${where} presents host key ${c.hostKeyFingerprint}, pinned ${c.pinnedFingerprint}`,
      hint: `find out why the key changed before anything else; if the new key is genuine, pin it: PATCH /portals/${portal.id} {"hostKeyFingerprint":"${c.hostKeyFingerprint}"}`,
      details,
    };
  }
  if (c.fingerprintMatches === null) {
    return {
      status: "fail",
      value: `${where} has no pinned host key (server presents ${c.hostKeyFingerprint}); the worker refuses it`,
      hint: `verify the key with the server's admin (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then PATCH /portals/${portal.id} {"hostKeyFingerprint":"…"}`,
      details,
    };
  }
  if (c.error) {
    return { status: "fail", value: `${where}: ${c.error.message}`, hint: "fix the portal's root folder or its permissions on the server (PATCH /portals/{id} rootPath)", details };
  }
  const free = c.freeBytes === null ? "" : `, ${formatBytes(c.freeBytes)} free`;
  const tools = c.tools;
  const missing = !tools ? ["shell"] : [...(tools.shell ? [] : ["shell"]), ...(tools.unzip ? [] : ["unzip"]), ...(tools.zip ? [] : ["zip"])];
  const value = `${where} reachable, host key matches${free}, tools: ${tools?.shell ? ["sh", tools.unzip && "unzip", tools.zip && "zip", ...tools.hashes].filter(Boolean).join(" ") : "none (SFTP only)"}`;
  if (missing.length > 0) {
    return { status: "warn", value, hint: `the zip strategy needs ${missing.join(", ")} on the server (apt-get install ${missing.filter((m) => m !== "shell").join(" ") || "zip unzip"}); until then many small files go one by one`, details };
  }
  // Without xxhsum the server cannot compute xxh3 (the default) next to the data: CRC-32 (sha1 for
  // an ASC MHL) is used instead, and a job that asks for an xxHash reads every file back.
  if (!tools?.hashes.includes("xxh3")) {
    return { status: "warn", value, hint: "install xxhsum on the server (apt-get install xxhash) so xxh3/xxh64/xxh128 verification and ASC MHL hashing run next to the data", details };
  }
  return { status: "ok", value, details };
}

/** One check per SFTP portal; a single `portals` row when there are none or they cannot be listed. */
export async function portalChecks(databaseUrl: string, secretKey: Buffer): Promise<Check[]> {
  let portals: PortalRow[];
  try {
    portals = await sftpPortals(databaseUrl);
  } catch (err) {
    const message = `cannot list portals: ${errorMessage(err)}`;
    return [{ name: "portals", timeoutMs: 1_000, failHint: "portals live in Postgres: fix the postgres check first", run: async () => { throw new Error(message); } }];
  }
  if (portals.length === 0) return [{ name: "portals", timeoutMs: 1_000, failHint: "", run: async () => ({ status: "ok", value: "no SFTP portals configured" }) }];
  return portals.map((p) => ({
    name: `portal.${p.name}`,
    timeoutMs: 30_000,
    failHint: "the portal's secret could not be used: is KETTER_SECRET_KEY the same as the API's? else re-enter it (PATCH /portals/{id} auth)",
    run: async () => judgePortal(p, await checkPortal(p, secretKey, { connectTimeoutMs: 10_000 })),
  }));
}
