/** The job event log: the one function every writer (API, worker, reaper) appends through. */
import type { Sql } from "postgres";
import type { EventKind, EventLevel, JobEventRow } from "./types.ts";

/** Appends one event to a job's log; `sql` may be a transaction so the event commits with the change it records. */
export async function appendEvent(
  sql: Sql,
  jobId: string,
  kind: EventKind,
  message: string,
  opts: { level?: EventLevel; data?: Record<string, unknown> } = {},
): Promise<JobEventRow> {
  const [row] = await sql<JobEventRow[]>`
    insert into job_events (job_id, kind, level, message, data)
    values (${jobId}, ${kind}, ${opts.level ?? "info"}, ${message}, ${sql.json((opts.data ?? {}) as Parameters<Sql["json"]>[0])})
    returning *`;
  return row!;
}
