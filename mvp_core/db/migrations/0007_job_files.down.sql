-- Reverting forgets every file's outcome; a job that ended with failed files counts as DONE.
alter table jobs drop column scope;
alter table jobs drop constraint jobs_finished_iff_terminal;
alter table jobs drop constraint jobs_status_check;
update jobs set status = 'DONE' where status = 'DONE_WITH_ERRORS';
alter table jobs add constraint jobs_status_check
  check (status in ('QUEUED', 'RUNNING', 'RETRY_WAIT', 'CANCELLING', 'DONE', 'FAILED', 'CANCELLED'));
alter table jobs add constraint jobs_finished_iff_terminal
  check ((status in ('DONE', 'FAILED', 'CANCELLED')) = (finished_at is not null));
drop table job_files;
