/**
 * Per-file truth in Postgres (`job_files`, migration 0007): the worker records every file's outcome
 * a batch per statement, fenced like every other write of an attempt; the API counts and lists
 * them; a retry of a DONE_WITH_ERRORS job reads the failed paths back.
 */
import type { Sql } from "postgres";
import type { TransferContext, TransferResult } from "../transfer_engine/index.ts";
import type { Fence } from "./lifecycle.ts";
import { JobError } from "./repository.ts";
import { FILE_STATES, type FileState, type JobFileRow, type JobScope } from "./types.ts";

/** One file's outcome as the engine reports it (TransferContext.onFiles). */
export type FileOutcome = Parameters<NonNullable<TransferContext["onFiles"]>>[0][number];
/** Files by outcome, as the engine counts them. */
export type FileCounts = TransferResult["fileCounts"];

/** A job's files by state, and how many rows in all. */
export interface FileTally extends FileCounts {
  total: number;
}

/**
 * Records a batch of outcomes of the attempt `fence` names, under `token` (one per attempt), in one
 * statement however long the batch: the rows travel as arrays and are unnested into a multi-row
 * upsert. The job row is locked FOR KEY SHARE by the same statement, so a reclaim cannot slip
 * between the fence check and the write. A file already recorded takes the new outcome, and one
 * more attempt unless this attempt recorded it already. False (nothing written) when the job is no
 * longer this attempt's.
 */
export async function recordFiles(sql: Sql, fence: Fence, token: string, batch: readonly FileOutcome[]): Promise<boolean> {
  // The same path twice in one statement would make the upsert fail: the last outcome wins.
  const rows = [...new Map(batch.map((o) => [o.path, o])).values()];
  const col = <T>(f: (o: FileOutcome) => T) => rows.map(f);
  const [row] = await sql<{ ours: number }[]>`
    with ours as (
      select id from jobs
      where id = ${fence.jobId} and worker_id = ${fence.worker.id} and attempts = ${fence.attempt} and status in ('RUNNING', 'CANCELLING')
      for key share
    ), written as (
      insert into job_files as f (job_id, path, size, state, hash_algorithm, hash_value, error_code, error_message, attempt_token)
      select ours.id, b.path, b.size, b.state, b.alg, b.hash, b.code, b.message, ${token}::uuid
      from ours cross join unnest(
        ${sql.array(col((o) => o.path), 25)}::text[], ${sql.array(col((o) => o.size), 20)}::int8[], ${sql.array(col((o) => o.state), 25)}::text[],
        ${sql.array(col((o) => o.hash?.algorithm ?? null), 25)}::text[], ${sql.array(col((o) => o.hash?.value ?? null), 25)}::text[],
        ${sql.array(col((o) => o.error?.code ?? null), 25)}::text[], ${sql.array(col((o) => o.error?.message ?? null), 25)}::text[]
      ) as b(path, size, state, alg, hash, code, message)
      on conflict (job_id, path) do update set
        size = excluded.size, state = excluded.state, hash_algorithm = excluded.hash_algorithm, hash_value = excluded.hash_value,
        error_code = excluded.error_code, error_message = excluded.error_message,
        attempts = f.attempts + (f.attempt_token <> excluded.attempt_token)::int, attempt_token = excluded.attempt_token, updated_at = now()
    )
    select count(*)::int as ours from ours`;
  return row!.ours === 1;
}

/**
 * After an attempt that reported its files, in the transaction that completes the job: rows no
 * outcome of this attempt touched are settled. A run of the whole source (`all`) reported every
 * file it has, so the others are files the source no longer has: their rows go. A retry of the
 * failed files (`failed`) sent the ones still in the source: the rest stay failed, saying why.
 */
export async function settleFiles(tx: Sql, jobId: string, token: string, scope: JobScope): Promise<void> {
  if (scope === "all") {
    await tx`delete from job_files where job_id = ${jobId} and attempt_token <> ${token}::uuid`;
    return;
  }
  await tx`
    update job_files set error_code = 'SOURCE_NOT_FOUND', attempts = attempts + 1, attempt_token = ${token}::uuid, updated_at = now(),
      error_message = 'not in the source (as a file) when the failed files were retried; it did not arrive'
    where job_id = ${jobId} and state = 'failed' and attempt_token <> ${token}::uuid`;
}

/** The job's files by state (zero rows: all zero). */
export async function countFiles(sql: Sql, jobId: string): Promise<FileTally> {
  const rows = await sql<{ state: FileState; n: number }[]>`
    select state, count(*)::int as n from job_files where job_id = ${jobId} group by state`;
  const tally: FileTally = { total: 0, skipped: 0, verified: 0, failed: 0 };
  for (const r of rows) {
    tally[r.state] = r.n;
    tally.total += r.n;
  }
  return tally;
}

/** Paths (relative to the job's source) of the files recorded as failed: what a retry of a DONE_WITH_ERRORS job sends. */
export async function failedPaths(sql: Sql, jobId: string): Promise<string[]> {
  const rows = await sql<{ path: string }[]>`select path from job_files where job_id = ${jobId} and state = 'failed' order by path`;
  return rows.map((r) => r.path);
}

/** What GET /jobs/{id}/files filters by. */
export interface FileListOptions {
  states?: readonly FileState[];
  limit: number;
  cursor?: string;
}

/** A page of a job's files in path order; pass `nextCursor` back as `cursor` for the next page. */
export interface FilePage {
  files: JobFileRow[];
  nextCursor: string | null;
}

function encodeCursor(path: string): string {
  return Buffer.from(JSON.stringify({ after: path })).toString("base64url");
}

function decodeCursor(cursor: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    parsed = null;
  }
  const after = (parsed as { after?: unknown } | null)?.after;
  if (typeof after !== "string" || after === "") {
    throw new JobError("BAD_CURSOR", "cursor is not one this API returned; omit it to start again from the first file", { field: "cursor" });
  }
  return after;
}

/**
 * A job's files, in path order (byte-wise), optionally only some states: one range of the primary
 * key (job_id, path) read from the cursor on, at most `limit + 1` matching rows. Failed files, the
 * rare state a person and a retry look for, have a partial index of their own (migration 0007);
 * skipped and verified files are read along the primary key with the state as a filter.
 */
export async function listFiles(sql: Sql, jobId: string, opts: FileListOptions): Promise<FilePage> {
  const after = opts.cursor === undefined ? null : decodeCursor(opts.cursor);
  const [job] = await sql<{ id: string }[]>`select id from jobs where id = ${jobId}`;
  if (!job) throw new JobError("NOT_FOUND", `no job with id ${jobId}`, { id: jobId });
  const n = opts.limit + 1;
  const from = after === null ? sql`` : sql`and path > ${after}`;
  const states = opts.states?.length ? [...new Set(opts.states)].filter((s) => FILE_STATES.includes(s)) : [...FILE_STATES];
  // The states are literals from a closed set (checked above): a parameter would hide from a
  // generic plan that `state = 'failed'` matches the partial index.
  const which = states.length === FILE_STATES.length ? sql`` : sql.unsafe(`and state in (${states.map((st) => `'${st}'`).join(", ")})`);
  const rows = await sql<JobFileRow[]>`select * from job_files where job_id = ${jobId} ${which} ${from} order by path limit ${n}`;
  const more = rows.length > opts.limit;
  const files = rows.slice(0, opts.limit);
  return { files, nextCursor: more ? encodeCursor(files[files.length - 1]!.path) : null };
}

/** SQL: the job row in scope (`jobs`) has a file recorded as failed — its data arrived, but not all of it. */
export function anyFileFailed(sql: Sql) {
  return sql`exists (select 1 from job_files f where f.job_id = jobs.id and f.state = 'failed')`;
}

/** "3 sent and verified, 9,997 skipped (already at the target), 1 failed": a tally in words, for events. */
export function describeTally(t: FileCounts): string {
  const parts = [
    `${t.verified.toLocaleString("en")} sent and verified`,
    ...(t.skipped > 0 ? [`${t.skipped.toLocaleString("en")} skipped (already at the target)`] : []),
    ...(t.failed > 0 ? [`${t.failed.toLocaleString("en")} failed`] : []),
  ];
  return `files: ${parts.join(", ")}`;
}

/** How many failures a FILES_FAILED message names. */
const NAMED_FAILURES = 3;

/** The error a DONE_WITH_ERRORS job carries: how many files failed, the first ones and why, and what to do. */
export async function filesFailedError(sql: Sql, jobId: string, t: FileCounts): Promise<{ code: "FILES_FAILED"; message: string }> {
  const first = await sql<{ path: string; error_code: string }[]>`
    select path, error_code from job_files where job_id = ${jobId} and state = 'failed' order by path limit ${NAMED_FAILURES}`;
  const named = first.map((f) => `${JSON.stringify(f.path)} (${f.error_code})`).join(", ");
  const more = t.failed > first.length ? `, and ${t.failed - first.length} more` : "";
  return {
    code: "FILES_FAILED",
    message: `${t.failed} of ${t.skipped + t.verified + t.failed} files failed: ${named}${more}; every other file is verified at the target. GET /jobs/${jobId}/files?state=failed lists them; POST /jobs/${jobId}/retry sends only them`,
  };
}
