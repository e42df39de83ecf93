-- Issue 13: every fault ends in the truth.
--
-- 1. Strategies: exactly the values the engine reports (STRATEGIES_USED in
--    transfer_engine/spec.ts; db/schema.test.ts fails when the two drift apart). `resumed`: an
--    earlier attempt committed the data, a later one only finished what follows the commit.
alter table jobs drop constraint jobs_strategy_check;
alter table jobs add constraint jobs_strategy_check check (strategy in ('direct', 'zip', 'rename', 'resumed'));

-- 2. Fencing (jobs/lifecycle.ts). `phase` is the last guarded step an attempt was allowed to take
--    (recorded, in the same statement that proves the lease, just before the engine takes it);
--    `committed_at` says the data arrived at the target. Once it is set the job can only end DONE:
--    a later attempt only finishes the move's source removal.
alter table jobs add column phase text check (phase in ('commit', 'committed', 'remove_source'));
alter table jobs add column committed_at timestamptz;

-- 3. GET /jobs at a million rows: one index per filter combination, each ending in the list order
--    (created_at desc, id desc) so a page is the first rows of an index range. `portal` means
--    source OR target: the list reads both portal indexes and merges them (jobs/repository.ts).
--    The v1 portal indexes lacked the id tie-breaker and the status.
drop index jobs_source_portal_idx;
drop index jobs_target_portal_idx;
create index jobs_source_created_idx on jobs (source_portal_id, created_at desc, id desc);
create index jobs_target_created_idx on jobs (target_portal_id, created_at desc, id desc);
create index jobs_source_status_created_idx on jobs (source_portal_id, status, created_at desc, id desc);
create index jobs_target_status_created_idx on jobs (target_portal_id, status, created_at desc, id desc);
