/** Many jobs at once, for the list's plan test and its benchmark (`bun run bench:list`). */
import type { Sql } from "postgres";

/** The portals seedJobs created. */
export interface SeededPortals {
  /** Portals in use throughout, each source or target of about 1/(n-1) of the jobs. */
  active: string[];
  /** A portal that was used only by the oldest 5 % of the jobs (as their source). */
  retired: string;
}

/**
 * Seeds `count` jobs over `portals` portals: statuses skewed like a long-lived system (90 % DONE,
 * 5 % FAILED, 3 % CANCELLED but only among the oldest third, 1 % QUEUED, 1 % RUNNING), created_at
 * distinct. History is uneven on purpose: a retired portal and the CANCELLED status only have old
 * jobs, which is what a plan that filters the newest rows first would have to walk past. The
 * secondary indexes (as the migrations define them) are dropped during the insert and built again
 * after it: several times faster than maintaining them row by row.
 */
export async function seedJobs(db: Sql, count: number, portals: number): Promise<SeededPortals> {
  const indexes = await db<{ name: string; def: string }[]>`
    select i.indexname as name, i.indexdef as def from pg_indexes i
    join pg_class c on c.relname = i.indexname join pg_index x on x.indexrelid = c.oid
    where i.tablename = 'jobs' and not x.indisunique`;
  for (const i of indexes) await db.unsafe(`drop index ${i.name}`);
  const ids = await db<{ id: string }[]>`
    insert into portals (name, kind, root_path)
    select 'seed-' || i, 'local', '/data/seed-' || i from generate_series(1, ${portals}) as i
    returning id`;
  const portalIds = ids.map((r) => r.id);
  await db`
    insert into jobs (type, source_portal_id, source_path, target_portal_id, target_path, status, error_code, finished_at, created_at)
    select 'copy', case when i <= ${count} / 20 then p[1] else p[2 + (i * 7 + i / 100) % (${portals} - 1)] end, 'src/' || i,
      p[2 + (i * 13 + i / 100 + 3) % (${portals} - 1)], 'dst/' || i, s.status,
      case when s.status = 'FAILED' then 'IO_ERROR' end,
      case when s.status in ('DONE', 'FAILED', 'CANCELLED') then now() end,
      timestamptz '2026-01-01' + i * interval '1 second' + (i % 997) * interval '1 microsecond'
    from generate_series(1, ${count}) as i
    cross join lateral (select case
      when i % 100 < 90 then 'DONE' when i % 100 < 95 then 'FAILED'
      when i % 100 < 98 then case when i <= ${count} / 3 then 'CANCELLED' else 'DONE' end
      when i % 100 = 98 then 'QUEUED' else 'RUNNING' end as status) as s
    cross join (select ${portalIds}::uuid[] as p) as pp`;
  for (const i of indexes) await db.unsafe(i.def);
  await db`analyze jobs`;
  return { active: portalIds.slice(1), retired: portalIds[0]! };
}
