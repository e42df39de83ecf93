delete from job_events where kind = 'resumed';
do $$
declare def text;
begin
  select pg_get_constraintdef(oid) into def from pg_constraint
   where conname = 'job_events_kind_check' and conrelid = 'job_events'::regclass;
  alter table job_events drop constraint job_events_kind_check;
  execute 'alter table job_events add constraint job_events_kind_check '
    || replace(replace(def, '''resumed''::text, ', ''), ', ''resumed''::text', '');
end $$;
alter table portals drop constraint portals_max_connections_sftp_only, drop column max_connections;
alter table jobs drop column bytes_resumed;
