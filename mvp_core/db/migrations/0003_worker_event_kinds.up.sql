-- The engine reports three milestones schema v1 had no kind for: a crashed attempt's staging found
-- and dealt with (staging_recovered), one zip archive unpacked at the destination (archive_done),
-- and source entries a move kept because they changed meanwhile (source_kept). The worker records
-- them as they are rather than folding them into another kind.
alter table job_events drop constraint job_events_kind_check;
alter table job_events add constraint job_events_kind_check check (kind in (
  'created', 'queued', 'started', 'strategy_chosen', 'fallback', 'progress', 'verified',
  'committed', 'source_removed', 'retry_scheduled', 'retried', 'done', 'failed',
  'cancel_requested', 'cancelled', 'reclaimed', 'released',
  'staging_recovered', 'archive_done', 'source_kept'));
