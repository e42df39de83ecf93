-- Sites: the machines Ketter runs workers on. A local portal is a folder on one site's disk; an
-- sftp portal is reachable from every site unless it lists the sites allowed to reach it; a job is
-- routed to the site its data is at (jobs.site), or to any site (null) when both ends are sftp.
--
-- Portals and jobs from before this migration keep site null: the first worker to register while
-- it is the only site ever seen adopts them (sites/repository.ts), and an API call that needs such
-- a portal adopts it the same way or asks for PATCH /portals/{id} {"site"} when several sites exist.

create table sites (
  name          text primary key check (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  first_seen_at timestamptz not null default now(),
  -- Last time a worker of this site started (liveness itself is the workers' Redis heartbeats).
  last_seen_at  timestamptz not null default now()
);

alter table portals
  add column site text check (site ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  -- Sites whose workers may reach an sftp portal, most preferred first; null = every site.
  add column allowed_sites text[] check (
    cardinality(allowed_sites) between 1 and 64
    and array_position(allowed_sites, null) is null),
  add constraint portals_site_matches_kind check (
    (kind = 'local' and allowed_sites is null) or (kind = 'sftp' and site is null));

-- The site that must run the job; null = any site (both ends sftp and unrestricted).
alter table jobs add column site text check (site ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$');

-- Queue depths and "what waits at site X" per site, over unfinished jobs only.
create index jobs_site_active_idx on jobs (site, status) where status in ('QUEUED', 'RUNNING', 'RETRY_WAIT', 'CANCELLING');
