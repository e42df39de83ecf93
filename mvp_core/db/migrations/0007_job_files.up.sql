-- Per-file truth (issue 15), the worker's side.
--
-- 1. job_files: every file's last outcome, as the engine reports it (TransferContext.onFiles):
--    skipped (already at the target: sync), verified (sent, verified and committed), failed (with
--    skipFileErrors; error_code/error_message say why). A file sent but not yet verified is not a
--    state that survives: its copy sits in the staging tree, which a failure discards, so the
--    engine reports nothing for it and neither is a row kept. Rows are written a batch per
--    statement (jobs/files.ts), fenced like every other write of an attempt.
--    `attempts`: how many attempts reported this file; `attempt_token`: the attempt (one random
--    uuid per delivery) that last did, so a batch written twice counts once. Paths are compared
--    byte-wise (collation "C"): the cursor of GET /jobs/{id}/files is the last path seen.
create table job_files (
  job_id         uuid not null references jobs (id) on delete cascade,
  -- Relative to the job's source: empty when the source is a single file (the file itself).
  path           text collate "C" not null,
  size           bigint not null check (size >= 0),
  state          text not null check (state in ('skipped', 'verified', 'failed')),
  hash_algorithm text,
  hash_value     text,
  error_code     text check (error_code ~ '^[A-Z][A-Z0-9_]*$'),
  error_message  text,
  attempts       integer not null default 1 check (attempts >= 1),
  attempt_token  uuid not null,
  updated_at     timestamptz not null default now(),
  primary key (job_id, path),
  constraint job_files_hash_pair check ((hash_algorithm is null) = (hash_value is null)),
  constraint job_files_failed_has_error check ((state = 'failed') = (error_code is not null))
);
-- The failed files of a job, in path order: what a retry sends and what GET /jobs/{id}/files?state=failed
-- pages through. Partial, because an index over every row's state added about a quarter to the cost
-- of writing outcomes (bench:sync's bookkeeping), and the other states are read through the primary
-- key in path order with the state as a filter.
create index job_files_failed_idx on job_files (job_id, path) where state = 'failed';

-- 2. DONE_WITH_ERRORS: terminal, like DONE, when some files failed and everything else was verified
--    and committed. `scope`: what a run of the job sends — `all` its source, or `failed` only the
--    files job_files holds as failed (POST /jobs/{id}/retry of a DONE_WITH_ERRORS job).
alter table jobs drop constraint jobs_status_check;
alter table jobs add constraint jobs_status_check
  check (status in ('QUEUED', 'RUNNING', 'RETRY_WAIT', 'CANCELLING', 'DONE', 'DONE_WITH_ERRORS', 'FAILED', 'CANCELLED'));
alter table jobs drop constraint jobs_finished_iff_terminal;
alter table jobs add constraint jobs_finished_iff_terminal
  check ((status in ('DONE', 'DONE_WITH_ERRORS', 'FAILED', 'CANCELLED')) = (finished_at is not null));
alter table jobs add column scope text not null default 'all' check (scope in ('all', 'failed'));
