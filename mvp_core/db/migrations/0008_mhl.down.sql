delete from jobs where type = 'verify';
alter table jobs drop constraint jobs_verify_in_place;
alter table jobs drop constraint jobs_type_check;
alter table jobs add constraint jobs_type_check check (type in ('copy', 'move'));
alter table portals drop column mhl;
