-- Back to 0003: v1 knows no `resumed` strategy (those jobs lose the value, not their status).
drop index jobs_source_created_idx;
drop index jobs_target_created_idx;
drop index jobs_source_status_created_idx;
drop index jobs_target_status_created_idx;
create index jobs_source_portal_idx on jobs (source_portal_id, created_at desc);
create index jobs_target_portal_idx on jobs (target_portal_id, created_at desc);

alter table jobs drop column committed_at;
alter table jobs drop column phase;

update jobs set strategy = null where strategy = 'resumed';
alter table jobs drop constraint jobs_strategy_check;
alter table jobs add constraint jobs_strategy_check check (strategy in ('direct', 'zip', 'rename'));
