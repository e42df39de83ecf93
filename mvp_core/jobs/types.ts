/** Row shapes and closed sets of the jobs tables, mirrored from db/migrations (keep them in step). */
import { TRANSFER_MODES, type TransferOptions } from "../transfer_engine/index.ts";

/** DONE_WITH_ERRORS (migration 0007): some files failed (skipFileErrors), everything else was verified and committed. */
export const JOB_STATUSES = ["QUEUED", "RUNNING", "RETRY_WAIT", "CANCELLING", "DONE", "DONE_WITH_ERRORS", "FAILED", "CANCELLED"] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
/** Statuses from which a job never moves again (except by an explicit retry). */
export const TERMINAL_STATUSES: readonly JobStatus[] = ["DONE", "DONE_WITH_ERRORS", "FAILED", "CANCELLED"];
/** Terminal statuses whose data arrived: the job's transfer was committed (all files, or all but the failed ones). */
export const DELIVERED_STATUSES: readonly JobStatus[] = ["DONE", "DONE_WITH_ERRORS"];
/** Statuses a job can be retried from (POST /jobs/{id}/retry); from DONE_WITH_ERRORS only the failed files travel. */
export const RETRYABLE_STATUSES: readonly JobStatus[] = ["DONE_WITH_ERRORS", "FAILED", "CANCELLED"];
/** Statuses that hold a portal in use (deleting it is refused). */
export const ACTIVE_STATUSES: readonly JobStatus[] = ["QUEUED", "RUNNING", "RETRY_WAIT", "CANCELLING"];

/** A job is a transfer (the engine's modes) or a verify: a folder checked against its ASC MHL history in place (migration 0008). */
export const JOB_TYPES = [...TRANSFER_MODES, "verify"] as const;
export type JobType = (typeof JOB_TYPES)[number];

export const EVENT_KINDS = [
  "created", "queued", "started", "strategy_chosen", "fallback", "progress", "verified", "committed",
  "source_removed", "retry_scheduled", "retried", "done", "failed", "cancel_requested", "cancelled",
  "reclaimed", "released",
  // Engine milestones, since migration 0003.
  "staging_recovered", "archive_done", "source_kept",
  // Per-file truth, since migration 0006.
  "compared", "mirrored", "files_failed",
  // Resume from an earlier attempt's staging, since migration 0009.
  "resumed",
] as const;
export type EventKind = (typeof EVENT_KINDS)[number];
export type EventLevel = "debug" | "info" | "warn" | "error";

/**
 * Guarded steps an attempt was allowed to take (migration 0004): the commit fence passed
 * (`commit`), the data arrived (`committed`, with committed_at), a move's source removal began
 * (`remove_source`). Set from the commit fence on, so non-null means "the data may have arrived".
 */
export type JobPhase = "commit" | "committed" | "remove_source";

/**
 * What a run of the job sends (migration 0007): `all` its source, or `failed` only the files
 * job_files holds as failed — set by a retry of a DONE_WITH_ERRORS job.
 */
export const JOB_SCOPES = ["all", "failed"] as const;
export type JobScope = (typeof JOB_SCOPES)[number];

/** A file's last outcome (job_files.state): the engine's FileOutcome states. */
export const FILE_STATES = ["skipped", "verified", "failed"] as const;
export type FileState = (typeof FILE_STATES)[number];

/** Options a job carries to the engine (validated by the API against the engine's own schema, stored as jsonb). */
export type JobOptions = Partial<TransferOptions>;

/** One row of `jobs` as postgres.js returns it (snake_case columns, camelCase here via explicit selects). */
export interface JobRow {
  id: string;
  type: JobType;
  source_portal_id: string;
  source_path: string;
  target_portal_id: string;
  target_path: string;
  options: JobOptions;
  status: JobStatus;
  strategy: string | null;
  attempts: number;
  max_attempts: number;
  files_done: number;
  files_total: number | null;
  bytes_done: number;
  bytes_total: number | null;
  /** Of bytes_done, what an earlier attempt left and this one kept (migration 0009). */
  bytes_resumed: number;
  error_code: string | null;
  error_message: string | null;
  idempotency_key: string | null;
  /** What a run sends: all files, or only the failed ones (migration 0007). */
  scope: JobScope;
  /** The site that must run it (migration 0005); null: any site. */
  site: string | null;
  worker_id: string | null;
  lease_expires_at: Date | null;
  heartbeat_at: Date | null;
  next_attempt_at: Date | null;
  phase: JobPhase | null;
  /** When an attempt recorded that the data arrived; from then on the job can only end DONE. */
  committed_at: Date | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
}

/** One row of `job_files` (migration 0007). */
export interface JobFileRow {
  job_id: string;
  path: string;
  size: number;
  state: FileState;
  hash_algorithm: string | null;
  hash_value: string | null;
  error_code: string | null;
  error_message: string | null;
  attempts: number;
  attempt_token: string;
  updated_at: Date;
}

/** One row of `job_events`. */
export interface JobEventRow {
  id: number;
  job_id: string;
  at: Date;
  level: EventLevel;
  kind: EventKind;
  message: string;
  data: Record<string, unknown>;
}
