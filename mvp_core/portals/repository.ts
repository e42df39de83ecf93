/**
 * Portals in Postgres: the only module that writes the `portals` table. Secrets go in sealed
 * (secrets.ts) and never come back out of here except through decryptPortalSecret.
 */
import type { Sql } from "postgres";
import { ACTIVE_STATUSES } from "../jobs/types.ts";
import { decryptSecret, encryptSecret, type PortalSecret } from "./secrets.ts";

/** Where a portal's files live: a folder on this host, or one on an SFTP host. */
export type PortalKind = "local" | "sftp";

/** One live row of `portals`. */
export interface PortalRow {
  id: string;
  name: string;
  kind: PortalKind;
  root_path: string;
  host: string | null;
  port: number | null;
  username: string | null;
  auth_method: "password" | "key" | null;
  secret_encrypted: Uint8Array | null;
  host_key_fingerprint: string | null;
  /** Local: the site whose disk holds it (null only for portals from before migration 0005). Sftp: null. */
  site: string | null;
  /** Sftp: the sites whose workers may reach it, most preferred first; null = every site. Local: null. */
  allowed_sites: string[] | null;
  /** Jobs into this portal write an ASC MHL generation unless their own `mhl` option says otherwise (migration 0008). */
  mhl: boolean;
  /** Sftp: SSH connections a transfer may open to the host at once; null = the engine's default. Local: null. */
  max_connections: number | null;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

/** SFTP login material as a person gives it. */
export type PortalAuth = { method: "password"; password: string } | { method: "key"; privateKey: string; passphrase?: string };

/** What creating a portal takes: a local folder at a site, or an sftp folder (optionally only for some sites). */
export type NewPortal = (
  | { name: string; kind: "local"; rootPath: string; site: string }
  | {
      name: string; kind: "sftp"; rootPath: string; host: string; port: number; username: string; auth: PortalAuth;
      hostKeyFingerprint?: string | null; allowedSites?: string[] | null; maxConnections?: number | null;
    }
) & { mhl?: boolean };

/**
 * A partial update; `auth` replaces the secret, `hostKeyFingerprint: null` unpins, `allowedSites:
 * null` lets every site reach an sftp portal. The kind never changes.
 */
export interface PortalPatch {
  name?: string;
  rootPath?: string;
  host?: string;
  port?: number;
  username?: string;
  auth?: PortalAuth;
  hostKeyFingerprint?: string | null;
  site?: string;
  allowedSites?: string[] | null;
  mhl?: boolean;
  /** Sftp only; null: the engine's default. */
  maxConnections?: number | null;
}

/** Why a portal operation was refused. */
export type PortalErrorCode = "NOT_FOUND" | "NAME_TAKEN" | "IN_USE" | "INVALID";

/** A refused portal operation; the API maps `code` to an HTTP status. */
export class PortalError extends Error {
  override readonly name = "PortalError";
  constructor(readonly code: PortalErrorCode, message: string, readonly details: Record<string, unknown> = {}) {
    super(message);
  }
}

function secretOf(auth: PortalAuth): PortalSecret {
  return auth.method === "password" ? { password: auth.password } : { privateKey: auth.privateKey, ...(auth.passphrase ? { passphrase: auth.passphrase } : {}) };
}

function translate(err: unknown, name: string | undefined): never {
  const pg = err as { code?: string; constraint_name?: string };
  if (pg.code === "23505") throw new PortalError("NAME_TAKEN", `a portal named ${JSON.stringify(name)} already exists; choose another name`, { name });
  if (pg.code === "23514") throw new PortalError("INVALID", `portal refused by the database check ${pg.constraint_name ?? ""}`.trim(), { constraint: pg.constraint_name });
  throw err;
}

/** Inserts a portal (sealing its secret) and returns the row. */
export async function createPortal(sql: Sql, input: NewPortal, secretKey: Buffer): Promise<PortalRow> {
  // The id is chosen here so the secret can be sealed for this very row.
  const id = crypto.randomUUID();
  const remote =
    input.kind === "sftp"
      ? {
          host: input.host,
          port: input.port,
          username: input.username,
          auth_method: input.auth.method,
          secret_encrypted: encryptSecret(secretOf(input.auth), secretKey, id),
          host_key_fingerprint: input.hostKeyFingerprint ?? null,
        }
      : { host: null, port: null, username: null, auth_method: null, secret_encrypted: null, host_key_fingerprint: null };
  const site = input.kind === "local" ? input.site : null;
  const allowedSites = input.kind === "sftp" ? (input.allowedSites ?? null) : null;
  const maxConnections = input.kind === "sftp" ? (input.maxConnections ?? null) : null;
  try {
    const [row] = await sql<PortalRow[]>`
      insert into portals (id, name, kind, root_path, host, port, username, auth_method, secret_encrypted, host_key_fingerprint, site, allowed_sites, mhl, max_connections)
      values (${id}, ${input.name}, ${input.kind}, ${input.rootPath}, ${remote.host}, ${remote.port}, ${remote.username},
              ${remote.auth_method}, ${remote.secret_encrypted}, ${remote.host_key_fingerprint}, ${site}, ${allowedSites}, ${input.mhl ?? false}, ${maxConnections})
      returning *`;
    return row!;
  } catch (err) {
    return translate(err, input.name);
  }
}

/** The live portal `id`, or null when it does not exist or was deleted. */
export async function getPortal(sql: Sql, id: string): Promise<PortalRow | null> {
  const [row] = await sql<PortalRow[]>`select * from portals where id = ${id} and deleted_at is null`;
  return row ?? null;
}

/** Every live portal, by name. */
export async function listPortals(sql: Sql): Promise<PortalRow[]> {
  return sql<PortalRow[]>`select * from portals where deleted_at is null order by name`;
}

async function activeJobCount(sql: Sql, id: string): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from jobs
    where (source_portal_id = ${id} or target_portal_id = ${id}) and status = any(${ACTIVE_STATUSES as string[]})`;
  return row!.n;
}

/** Applies `patch`; moving a portal (root, host, port) is refused while active jobs use it. */
export async function updatePortal(sql: Sql, id: string, patch: PortalPatch, secretKey: Buffer): Promise<PortalRow> {
  try {
    return await sql.begin(async (tx) => {
      const [cur] = await tx<PortalRow[]>`select * from portals where id = ${id} and deleted_at is null for update`;
      if (!cur) throw new PortalError("NOT_FOUND", `no portal with id ${id}`, { id });
      if (cur.kind === "local" && (patch.host !== undefined || patch.port !== undefined || patch.username !== undefined || patch.auth !== undefined || (patch.hostKeyFingerprint ?? null) !== null || patch.allowedSites !== undefined || (patch.maxConnections ?? null) !== null)) {
        throw new PortalError("INVALID", "a local portal has no host, port, username, credentials, host key, allowedSites or maxConnections; only name, rootPath and site can change");
      }
      if (cur.kind === "sftp" && patch.site !== undefined) {
        throw new PortalError("INVALID", "an sftp portal belongs to no site (every site reaches it over SSH); restrict it with allowedSites instead");
      }
      // A new site or allowed set means other machines: jobs already routed would run at the wrong one.
      const moves =
        (patch.rootPath !== undefined && patch.rootPath !== cur.root_path) || (patch.host !== undefined && patch.host !== cur.host) || (patch.port !== undefined && patch.port !== cur.port) ||
        (patch.site !== undefined && patch.site !== cur.site) || (patch.allowedSites !== undefined && !sameList(patch.allowedSites, cur.allowed_sites));
      if (moves) {
        const n = await activeJobCount(tx as unknown as Sql, id);
        if (n > 0) throw new PortalError("IN_USE", `portal ${cur.name} is used by ${n} active job(s); wait for them or cancel them before changing its location`, { activeJobs: n });
      }
      const next = {
        name: patch.name ?? cur.name,
        root_path: patch.rootPath ?? cur.root_path,
        host: patch.host ?? cur.host,
        port: patch.port ?? cur.port,
        username: patch.username ?? cur.username,
        auth_method: patch.auth?.method ?? cur.auth_method,
        secret_encrypted: patch.auth ? encryptSecret(secretOf(patch.auth), secretKey, id) : cur.secret_encrypted,
        host_key_fingerprint: patch.hostKeyFingerprint === undefined ? cur.host_key_fingerprint : patch.hostKeyFingerprint,
        site: patch.site ?? cur.site,
        allowed_sites: patch.allowedSites === undefined ? cur.allowed_sites : patch.allowedSites,
        mhl: patch.mhl ?? cur.mhl,
        max_connections: patch.maxConnections === undefined ? cur.max_connections : patch.maxConnections,
      };
      const [row] = await tx<PortalRow[]>`
        update portals set name = ${next.name}, root_path = ${next.root_path}, host = ${next.host}, port = ${next.port},
          username = ${next.username}, auth_method = ${next.auth_method}, secret_encrypted = ${next.secret_encrypted},
          host_key_fingerprint = ${next.host_key_fingerprint}, site = ${next.site}, allowed_sites = ${next.allowed_sites}, mhl = ${next.mhl},
          max_connections = ${next.max_connections}
        where id = ${id}
        returning *`;
      return row!;
    });
  } catch (err) {
    if (err instanceof PortalError) throw err;
    return translate(err, patch.name);
  }
}

function sameList(a: readonly string[] | null, b: readonly string[] | null): boolean {
  return a === null || b === null ? a === b : a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Deletes a portal, refused while active jobs use it. The row is only marked deleted so finished
 * jobs keep their history; the name becomes free again.
 */
export async function deletePortal(sql: Sql, id: string): Promise<void> {
  await sql.begin(async (tx) => {
    // FOR UPDATE conflicts with the FOR SHARE lock createJob takes, so no job slips in meanwhile.
    const [cur] = await tx<PortalRow[]>`select * from portals where id = ${id} and deleted_at is null for update`;
    if (!cur) throw new PortalError("NOT_FOUND", `no portal with id ${id}`, { id });
    const n = await activeJobCount(tx as unknown as Sql, id);
    if (n > 0) throw new PortalError("IN_USE", `portal ${cur.name} is used by ${n} active job(s); wait for them or cancel them first`, { activeJobs: n });
    await tx`update portals set deleted_at = now() where id = ${id}`;
  });
}

/** The clear login secret of an SFTP portal (null for local portals). */
export function decryptPortalSecret(portal: PortalRow, secretKey: Buffer): PortalSecret | null {
  return portal.secret_encrypted ? decryptSecret(portal.secret_encrypted, secretKey, portal.id) : null;
}
