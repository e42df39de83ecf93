import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Sql } from "postgres";
import { testSql, uniqueId } from "../testing/services.ts";
import { FILE_STATES, JOB_SCOPES, JOB_STATUSES, TERMINAL_STATUSES } from "../jobs/types.ts";
import { STRATEGIES_USED } from "../transfer_engine/index.ts";

let sql: Sql;
let portalId: string;

beforeAll(async () => {
  sql = await testSql(2);
  const [row] = await sql<{ id: string }[]>`insert into portals (name, kind, root_path) values (${`schema-${uniqueId()}`}, 'local', '/tmp') returning id`;
  portalId = row!.id;
});

afterAll(async () => {
  await sql`delete from jobs where source_portal_id = ${portalId}`;
  await sql`delete from portals where id = ${portalId}`;
});

/** Inserts a job with sensible defaults overridden by `fields`; resolves to its id. */
async function insertJob(fields: Record<string, unknown> = {}): Promise<string> {
  const row = { type: "copy", source_portal_id: portalId, source_path: "a", target_portal_id: portalId, target_path: "b", ...fields };
  const [job] = await sql<{ id: string }[]>`insert into jobs ${sql(row as Record<string, string>)} returning id`;
  return job!.id;
}

describe("schema constraints", () => {
  test("a valid job and its event are accepted", async () => {
    const id = await insertJob();
    await sql`insert into job_events (job_id, kind, message) values (${id}, 'created', 'ok')`;
    const [job] = await sql`select status, attempts, max_attempts from jobs where id = ${id}`;
    expect(job).toEqual({ status: "QUEUED", attempts: 0, max_attempts: 3 });
  });

  test("an unknown status is rejected", async () => {
    await expect(insertJob({ status: "SLEEPING" })).rejects.toThrow(/jobs_status_check/);
  });

  test("an unknown type is rejected", async () => {
    await expect(insertJob({ type: "sync" })).rejects.toThrow(/jobs_type_check/);
  });

  test("a duplicate idempotency key is rejected", async () => {
    const key = `key-${uniqueId()}`;
    await insertJob({ idempotency_key: key });
    await expect(insertJob({ idempotency_key: key })).rejects.toThrow(/jobs_idempotency_key_key/);
  });

  test("a job pointing at a missing portal is rejected", async () => {
    await expect(insertJob({ target_portal_id: "00000000-0000-0000-0000-000000000000" })).rejects.toThrow(/foreign key/);
  });

  test("a finished status needs finished_at, and FAILED needs an error code", async () => {
    await expect(insertJob({ status: "DONE" })).rejects.toThrow(/jobs_finished_iff_terminal/);
    await expect(insertJob({ status: "FAILED", finished_at: new Date() })).rejects.toThrow(/jobs_failed_has_error/);
    await expect(insertJob({ attempts: 4, max_attempts: 3 })).rejects.toThrow(/jobs_attempts_within_max/);
  });

  test("every strategy the engine reports is accepted, and the constraint allows exactly those", async () => {
    // One source of truth: STRATEGIES_USED (transfer_engine). A value added there without a
    // migration fails the inserts; a value the constraint allows that the engine never reports fails the comparison.
    for (const strategy of STRATEGIES_USED) {
      const id = await insertJob({ strategy });
      const [job] = await sql<{ strategy: string }[]>`select strategy from jobs where id = ${id}`;
      expect(job!.strategy).toBe(strategy);
    }
    const [check] = await sql<{ def: string }[]>`
      select pg_get_constraintdef(oid) as def from pg_constraint where conname = 'jobs_strategy_check' and conrelid = 'jobs'::regclass`;
    const allowed = [...check!.def.matchAll(/'([^']+)'::text/g)].map((m) => m[1]).sort();
    expect(allowed).toEqual([...STRATEGIES_USED].sort());
    await expect(insertJob({ strategy: "teleport" })).rejects.toThrow(/jobs_strategy_check/);
  });

  test("a job's phase is one of the guarded steps", async () => {
    for (const phase of ["commit", "committed", "remove_source"]) await insertJob({ phase });
    await expect(insertJob({ phase: "verify" })).rejects.toThrow(/jobs_phase_check/);
  });

  test("an unknown event kind is rejected", async () => {
    const id = await insertJob();
    await expect(sql`insert into job_events (job_id, kind, message) values (${id}, 'exploded', 'x')`).rejects.toThrow(/job_events_kind_check/);
  });

  test("portals: an sftp portal needs its remote fields and an encrypted secret; a local one has none", async () => {
    const name = `p-${uniqueId()}`;
    await expect(sql`insert into portals (name, kind, root_path, host, port, username, auth_method) values (${name}, 'sftp', '/srv', 'h', 22, 'u', 'key')`).rejects.toThrow(/portals_sftp_has_remote_fields/);
    await expect(sql`insert into portals (name, kind, root_path, host) values (${name}, 'local', '/srv', 'h')`).rejects.toThrow(/portals_local_has_no_remote_fields/);
    await expect(sql`insert into portals (name, kind, root_path) values (${name}, 'local', 'relative/path')`).rejects.toThrow(/portals_root_path_check/);
    await expect(sql`insert into portals (name, kind, root_path) values ('bad name!', 'local', '/srv')`).rejects.toThrow(/portals_name_check/);
  });

  test("statuses, scopes and file states: the constraints allow exactly the code's lists; terminal means finished", async () => {
    const allowed = async (name: string, table: string) => {
      const [check] = await sql<{ def: string }[]>`select pg_get_constraintdef(oid) as def from pg_constraint where conname = ${name} and conrelid = ${table}::regclass`;
      return [...check!.def.matchAll(/'([^']+)'::text/g)].map((m) => m[1]).sort();
    };
    expect(await allowed("jobs_status_check", "jobs")).toEqual([...JOB_STATUSES].sort());
    expect(await allowed("jobs_scope_check", "jobs")).toEqual([...JOB_SCOPES].sort());
    expect(await allowed("job_files_state_check", "job_files")).toEqual([...FILE_STATES].sort());
    expect(await allowed("jobs_finished_iff_terminal", "jobs")).toEqual([...TERMINAL_STATUSES].sort());
    await insertJob({ status: "DONE_WITH_ERRORS", finished_at: new Date() });
    await expect(insertJob({ status: "DONE_WITH_ERRORS" })).rejects.toThrow(/jobs_finished_iff_terminal/);
  });

  test("job_files: a failed file needs its error, a hash needs its algorithm, paths are unique per job", async () => {
    const id = await insertJob();
    const token = crypto.randomUUID();
    const file = (fields: Record<string, string>) => sql`insert into job_files ${sql({ job_id: id, path: "p", size: "1", state: "verified", attempt_token: token, ...fields })}`;
    await expect(file({ state: "failed" })).rejects.toThrow(/job_files_failed_has_error/);
    await expect(file({ hash_value: "abc" })).rejects.toThrow(/job_files_hash_pair/);
    await expect(file({ state: "sent" })).rejects.toThrow(/job_files_state_check/);
    await file({});
    await expect(file({ state: "skipped" })).rejects.toThrow(/job_files_pkey/);
  });
});
