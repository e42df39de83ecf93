-- ASC MHL (issue 16). A portal may default its jobs to writing an ASC MHL generation at the target
-- (`mhl`; a job's own option wins). A verify job checks a folder against its own ascmhl/ history
-- in place: it has one folder, stored as both source and target (the same portal and path), so
-- every job keeps its two portal references and the site routing needs no special case.
alter table portals add column mhl boolean not null default false;
alter table jobs drop constraint jobs_type_check;
alter table jobs add constraint jobs_type_check check (type in ('copy', 'move', 'verify'));
alter table jobs add constraint jobs_verify_in_place check (
  type <> 'verify' or (target_portal_id = source_portal_id and target_path = source_path));
