-- Ketter schema v1: portals, jobs and their event log.
-- Closed sets are CHECK constraints rather than enum types so a later migration can widen them
-- inside a transaction.

create function ketter_touch_updated_at() returns trigger language plpgsql as $$
begin
  new.updated_at := now();
  return new;
end $$;

create table portals (
  id                   uuid primary key default gen_random_uuid(),
  name                 text not null unique
                         check (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  kind                 text not null check (kind in ('local', 'sftp')),
  root_path            text not null check (root_path ~ '^/'),
  host                 text check (host <> ''),
  port                 integer check (port between 1 and 65535),
  username             text check (username <> ''),
  auth_method          text check (auth_method in ('password', 'key')),
  -- AES-256-GCM envelope (version byte, nonce, tag, ciphertext); the clear secret is never stored.
  secret_encrypted     bytea,
  host_key_fingerprint text check (host_key_fingerprint ~ '^SHA256:[A-Za-z0-9+/]{43}=?$'),
  created_at           timestamptz not null default now(),
  updated_at           timestamptz not null default now(),
  constraint portals_local_has_no_remote_fields check (
    kind <> 'local' or (host is null and port is null and username is null and auth_method is null
                        and secret_encrypted is null and host_key_fingerprint is null)),
  constraint portals_sftp_has_remote_fields check (
    kind <> 'sftp' or (host is not null and port is not null and username is not null
                       and auth_method is not null and secret_encrypted is not null))
);

create trigger portals_touch before update on portals
  for each row execute function ketter_touch_updated_at();

create table jobs (
  id               uuid primary key default gen_random_uuid(),
  type             text not null check (type in ('copy', 'move')),
  source_portal_id uuid not null references portals (id) on delete restrict,
  source_path      text not null,
  target_portal_id uuid not null references portals (id) on delete restrict,
  target_path      text not null,
  options          jsonb not null default '{}' check (jsonb_typeof(options) = 'object'),
  -- QUEUED → RUNNING → DONE | FAILED | CANCELLED; RETRY_WAIT between attempts (next_attempt_at);
  -- CANCELLING while a running attempt is being stopped.
  status           text not null default 'QUEUED'
                     check (status in ('QUEUED', 'RUNNING', 'RETRY_WAIT', 'CANCELLING', 'DONE', 'FAILED', 'CANCELLED')),
  strategy         text check (strategy in ('direct', 'zip', 'rename')),
  attempts         integer not null default 0 check (attempts >= 0),
  max_attempts     integer not null default 3 check (max_attempts between 1 and 100),
  files_done       bigint not null default 0 check (files_done >= 0),
  files_total      bigint check (files_total >= 0),
  bytes_done       bigint not null default 0 check (bytes_done >= 0),
  bytes_total      bigint check (bytes_total >= 0),
  error_code       text check (error_code ~ '^[A-Z][A-Z0-9_]*$'),
  error_message    text,
  idempotency_key  text unique check (length(idempotency_key) between 1 and 255),
  worker_id        text,
  lease_expires_at timestamptz,
  heartbeat_at     timestamptz,
  next_attempt_at  timestamptz,
  created_at       timestamptz not null default now(),
  started_at       timestamptz,
  finished_at      timestamptz,
  updated_at       timestamptz not null default now(),
  constraint jobs_attempts_within_max check (attempts <= max_attempts),
  constraint jobs_finished_iff_terminal check (
    (status in ('DONE', 'FAILED', 'CANCELLED')) = (finished_at is not null)),
  constraint jobs_failed_has_error check (status <> 'FAILED' or error_code is not null)
);

create trigger jobs_touch before update on jobs
  for each row execute function ketter_touch_updated_at();

-- Listing: newest first, optionally by status; cursor pagination on (created_at, id).
create index jobs_created_idx on jobs (created_at desc, id desc);
create index jobs_status_created_idx on jobs (status, created_at desc, id desc);
create index jobs_source_portal_idx on jobs (source_portal_id, created_at desc);
create index jobs_target_portal_idx on jobs (target_portal_id, created_at desc);
-- The reconciler and reaper scan only unfinished jobs.
create index jobs_active_idx on jobs (status, next_attempt_at) where status in ('QUEUED', 'RUNNING', 'RETRY_WAIT', 'CANCELLING');

create table job_events (
  id      bigint generated always as identity primary key,
  job_id  uuid not null references jobs (id) on delete cascade,
  at      timestamptz not null default clock_timestamp(),
  level   text not null default 'info' check (level in ('debug', 'info', 'warn', 'error')),
  kind    text not null check (kind in (
            'created', 'queued', 'started', 'strategy_chosen', 'fallback', 'progress', 'verified',
            'committed', 'source_removed', 'retry_scheduled', 'retried', 'done', 'failed',
            'cancel_requested', 'cancelled', 'reclaimed', 'released')),
  message text not null,
  data    jsonb not null default '{}' check (jsonb_typeof(data) = 'object')
);

create index job_events_job_idx on job_events (job_id, id);
