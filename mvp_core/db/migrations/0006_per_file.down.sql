delete from job_events where kind in ('compared', 'mirrored', 'files_failed');
alter table job_events drop constraint job_events_kind_check;
alter table job_events add constraint job_events_kind_check check (kind in (
  'created', 'queued', 'started', 'strategy_chosen', 'fallback', 'progress', 'verified',
  'committed', 'source_removed', 'retry_scheduled', 'retried', 'done', 'failed',
  'cancel_requested', 'cancelled', 'reclaimed', 'released',
  'staging_recovered', 'archive_done', 'source_kept'));
