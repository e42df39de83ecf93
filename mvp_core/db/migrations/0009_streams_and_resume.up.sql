-- Several streams per file and resume (issue 14).
--
-- An sftp portal may cap the SSH connections Ketter opens to its host at once (null: the engine's
-- default, 4): byte streams spread over several connections over a long link, and some servers
-- limit them (sshd's MaxStartups, per-user limits).
alter table portals
  add column max_connections integer constraint portals_max_connections_range check (max_connections between 1 and 16),
  add constraint portals_max_connections_sftp_only check (kind = 'sftp' or max_connections is null);

-- A job's progress says how many of its bytes done an earlier attempt left and this one kept.
alter table jobs add column bytes_resumed bigint not null default 0;

-- The engine reports one more milestone: what an earlier attempt left was re-checked and kept
-- (resumed). The kind is added to whatever list the constraint holds now, so this migration does
-- not undo kinds that other migrations of the same release added.
do $$
declare def text;
begin
  select pg_get_constraintdef(oid) into def from pg_constraint
   where conname = 'job_events_kind_check' and conrelid = 'job_events'::regclass;
  if position('''resumed''' in def) = 0 then
    alter table job_events drop constraint job_events_kind_check;
    execute 'alter table job_events add constraint job_events_kind_check '
      || replace(def, 'ARRAY[', 'ARRAY[''resumed''::text, ');
  end if;
end $$;
