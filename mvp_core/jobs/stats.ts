/**
 * Aggregates over the jobs tables for /metrics: computed from Postgres, the source of truth, at
 * each scrape, so every API instance answers the same and the workers report nothing themselves.
 * Each query is one pass over its table (no index helps a whole-table count); see docs/api.md.
 */
import type { Sql } from "postgres";
import { JOB_STATUSES, type JobStatus } from "./types.ts";

/** Upper bounds (seconds) of the job-duration histogram: a one-file copy to a day-long folder. */
export const DURATION_BUCKETS_S = [1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 24 * 3600] as const;

/** Durations of delivered jobs (DONE, DONE_WITH_ERRORS: first start → done): `buckets[i]` = jobs ≤ DURATION_BUCKETS_S[i] (cumulative). */
export interface DurationHistogram {
  buckets: number[];
  count: number;
  sumSeconds: number;
}

/** Bytes and files of delivered jobs (DONE, DONE_WITH_ERRORS), by where they went and how. */
export interface MovedTotals {
  /** `<source portal kind>_to_<target portal kind>`, e.g. local_to_sftp. */
  direction: string;
  strategy: string;
  bytes: number;
  files: number;
}

/** Everything /metrics reads from Postgres. */
export interface JobStats {
  byStatus: Record<JobStatus, number>;
  durations: DurationHistogram;
  moved: MovedTotals[];
  retries: number;
  reclaims: number;
}

/** Reads the aggregates (five queries, run concurrently). */
export async function jobStats(sql: Sql): Promise<JobStats> {
  const [statusRows, durationRows, movedRows, eventRows] = await Promise.all([
    sql<{ status: JobStatus; n: number }[]>`select status, count(*)::int as n from jobs group by status`,
    // width_bucket(x, bounds) = how many bounds are <= x, i.e. the index of the first bucket x fits
    // under (a duration exactly on a bound, to the microsecond, lands one bucket up).
    sql<{ idx: number; n: number; sum: number }[]>`
      select width_bucket(extract(epoch from finished_at - started_at)::float8, ${sql.array([...DURATION_BUCKETS_S])}::float8[]) as idx,
             count(*)::int as n, sum(extract(epoch from finished_at - started_at))::float8 as sum
      from jobs where status in ('DONE', 'DONE_WITH_ERRORS') and started_at is not null and finished_at is not null
      group by 1`,
    sql<{ source_kind: string; target_kind: string; strategy: string | null; bytes: number; files: number }[]>`
      select s.kind as source_kind, t.kind as target_kind, j.strategy, sum(j.bytes_done)::float8 as bytes, sum(j.files_done)::float8 as files
      from jobs j join portals s on s.id = j.source_portal_id join portals t on t.id = j.target_portal_id
      where j.status in ('DONE', 'DONE_WITH_ERRORS') group by 1, 2, 3`,
    sql<{ kind: string; n: number }[]>`select kind, count(*)::int as n from job_events where kind in ('retry_scheduled', 'reclaimed') group by kind`,
  ]);
  const byStatus = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
  for (const r of statusRows) byStatus[r.status] = r.n;
  const durations: DurationHistogram = { buckets: DURATION_BUCKETS_S.map(() => 0), count: 0, sumSeconds: 0 };
  for (const r of durationRows) {
    // Cumulative: a job under bound i is under every later bound too.
    for (let i = r.idx; i < DURATION_BUCKETS_S.length; i++) durations.buckets[i]! += r.n;
    durations.count += r.n;
    durations.sumSeconds += r.sum;
  }
  const events = new Map(eventRows.map((r) => [r.kind, r.n]));
  return {
    byStatus,
    durations,
    moved: movedRows.map((r) => ({ direction: `${r.source_kind}_to_${r.target_kind}`, strategy: r.strategy ?? "none", bytes: r.bytes, files: r.files })),
    retries: events.get("retry_scheduled") ?? 0,
    reclaims: events.get("reclaimed") ?? 0,
  };
}
