drop table job_events;
drop table jobs;
drop table portals;
drop function ketter_touch_updated_at();
