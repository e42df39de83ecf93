-- Deleting a portal must not erase the history of the finished jobs that used it (jobs reference
-- portals with ON DELETE RESTRICT), so a delete marks the row instead. A deleted portal's name is
-- free again, hence the unique constraint becomes a partial unique index over live portals.
alter table portals add column deleted_at timestamptz;

alter table portals drop constraint portals_name_key;
create unique index portals_live_name_key on portals (name) where deleted_at is null;
