/**
 * Sites in Postgres: the machines workers have run on (`sites`), the default site of a new local
 * portal, adopting portals and jobs from before sites existed, and forgetting a retired site.
 * Liveness is not stored here: it is the workers' heartbeats in Redis (queue/queue.ts).
 */
import type { Sql } from "postgres";
import { ACTIVE_STATUSES } from "../jobs/types.ts";

/** One row of `sites`. */
export interface SiteRow {
  name: string;
  first_seen_at: Date;
  last_seen_at: Date;
}

/** Why a site operation was refused (the API maps each to an HTTP status). */
export type SiteErrorCode = "NOT_FOUND" | "IN_USE" | "SITE_REQUIRED";

/** A refused site operation, with a message that says what to do. */
export class SiteError extends Error {
  override readonly name = "SiteError";
  constructor(readonly code: SiteErrorCode, message: string, readonly details: Record<string, unknown> = {}) {
    super(message);
  }
}

/** What adopting unsited portals changed (`site` null: several or no sites seen, nothing adopted). */
export interface Adoption {
  site: string | null;
  portals: number;
  jobs: number;
}

function inTransaction<T>(sql: Sql, fn: (tx: Sql) => Promise<T>): Promise<T> {
  // postgres.js types the transaction handle separately, but it accepts every query Sql does.
  return sql.begin((txn) => fn(txn as unknown as Sql)) as Promise<T>;
}

/** The only site ever seen, or null when none or several were. */
export async function onlySite(sql: Sql): Promise<string | null> {
  const rows = await sql<{ name: string }[]>`select name from sites order by name limit 2`;
  return rows.length === 1 ? rows[0]!.name : null;
}

/**
 * Gives local portals without a site (registered before migration 0005) to the only site ever
 * seen, with the unfinished jobs that use them; with no site or several seen it changes nothing.
 */
export async function adoptUnsited(sql: Sql): Promise<Adoption> {
  const site = await onlySite(sql);
  if (site === null) return { site, portals: 0, jobs: 0 };
  const portals = await sql`update portals set site = ${site} where kind = 'local' and site is null returning id`;
  const jobs = await sql`
    update jobs j set site = ${site}
    where j.site is null and j.status = any(${ACTIVE_STATUSES as string[]})
      and exists (select 1 from portals p where p.id in (j.source_portal_id, j.target_portal_id) and p.kind = 'local' and p.site = ${site})
    returning id`;
  return { site, portals: portals.length, jobs: jobs.length };
}

/**
 * Records that a worker of `site` is starting, then adopts unsited portals if it is the only site
 * ever seen. The table lock makes two first workers of different sites take turns, so they never
 * both believe they are alone.
 */
export async function registerSite(sql: Sql, site: string): Promise<Adoption> {
  return inTransaction(sql, async (tx) => {
    await tx`lock table sites in share row exclusive mode`;
    await tx`insert into sites (name) values (${site}) on conflict (name) do update set last_seen_at = now()`;
    return adoptUnsited(tx);
  });
}

/** Every site ever seen, by name. */
export async function listSites(sql: Sql): Promise<SiteRow[]> {
  return sql<SiteRow[]>`select * from sites order by name`;
}

/**
 * The site of a new local portal that names none: the only site ever seen, else (no worker ever
 * started) `fallback` — the API's own KETTER_SITE. With several sites seen, guessing could put a
 * folder on the wrong machine, so the caller must say.
 */
export async function defaultPortalSite(sql: Sql, fallback: string): Promise<string> {
  const rows = await sql<{ name: string }[]>`select name from sites order by name limit 20`;
  if (rows.length === 0) return fallback;
  if (rows.length === 1) return rows[0]!.name;
  const known = rows.map((r) => r.name);
  throw new SiteError("SITE_REQUIRED", `site is required for a local portal when several sites exist (${known.join(", ")}): give the site whose disk holds rootPath, e.g. "site": "${known[0]}"`, { field: "site", known });
}

/**
 * Forgets a retired site, refused while a live local portal is at it or an unfinished job must run
 * there. The caller checks that no worker of it still beats (that is in Redis).
 */
export async function forgetSite(sql: Sql, name: string): Promise<void> {
  await inTransaction(sql, async (tx) => {
    const [row] = await tx<SiteRow[]>`select * from sites where name = ${name} for update`;
    if (!row) throw new SiteError("NOT_FOUND", `no site named ${name}; GET /sites lists them`, { name });
    // Portals count while live: a local one at the site, or an sftp one that lists it as allowed.
    const [use] = await tx<{ portals: number; jobs: number }[]>`
      select (select count(*)::int from portals where deleted_at is null and (site = ${name} or ${name} = any(allowed_sites))) as portals,
             (select count(*)::int from jobs where site = ${name} and status = any(${ACTIVE_STATUSES as string[]})) as jobs`;
    if (use!.portals > 0 || use!.jobs > 0) {
      throw new SiteError(
        "IN_USE",
        `site ${name} still has ${use!.jobs} unfinished job(s) and ${use!.portals} portal(s) at it or allowing it: let the jobs finish (or cancel them), then delete its local portals or move them (PATCH site), and drop it from sftp portals' allowedSites`,
        { name, ...use },
      );
    }
    await tx`delete from sites where name = ${name}`;
  });
}
