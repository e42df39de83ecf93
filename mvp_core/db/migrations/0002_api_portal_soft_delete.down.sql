-- Deleted portals only survive as history; going back to a hard unique name drops them first when
-- nothing references them, and fails (leaving the schema as it was) when finished jobs still do.
delete from portals where deleted_at is not null;

drop index portals_live_name_key;
alter table portals add constraint portals_name_key unique (name);
alter table portals drop column deleted_at;
