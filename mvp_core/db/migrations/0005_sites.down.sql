-- Reverting forgets every site assignment: one machine runs every job again.
drop index jobs_site_active_idx;
alter table jobs drop column site;
alter table portals drop constraint portals_site_matches_kind;
alter table portals drop column allowed_sites;
alter table portals drop column site;
drop table sites;
