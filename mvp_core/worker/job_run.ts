/**
 * One delivery of one job on this worker, as named steps: claim (in Postgres), open the endpoints,
 * transfer (the engine, with the lease renewed alongside), then record the outcome (done, retry,
 * failed, cancelled or released) in Postgres first and in Redis second.
 */
import type { Sql } from "postgres";
import {
  type JobFailure,
  claimJob,
  completeJob,
  failJob,
  markCancelled,
  reclaimJob,
  recordProgress,
  recordRunEvent,
  releaseJob,
  renewJobLease,
  scheduleRetry,
  type WorkerRef,
} from "../jobs/lifecycle.ts";
import { type EventLevel, type JobRow, TERMINAL_STATUSES } from "../jobs/types.ts";
import type { Logger } from "../log/log.ts";
import type { JobQueue } from "../queue/queue.ts";
import {
  type EngineEvent,
  type EngineOptions,
  type Progress,
  type TransferContext,
  type TransferResult,
  type TransferSpecInput,
  isTransferError,
} from "../transfer_engine/index.ts";
import { retryDelayMs } from "./backoff.ts";
import { type OpenEndpoint, openJobEndpoints } from "./endpoints.ts";

/** How long a delivery waits when claiming it failed (Postgres or Redis unreachable). */
const CLAIM_RETRY_MS = 5_000;
/** Tries of each outcome-recording step (250 ms, doubling, between them: ~4 s in all). */
const PERSIST_ATTEMPTS = 5;

/** Why the worker stopped a job before the engine finished: a cancel request, its own shutdown, or losing the job's lease. */
export type StopReason = "cancel" | "shutdown" | "lost";

/** The engine's transfer(), passed in so tests can wrap it. */
export type TransferFn = (spec: TransferSpecInput, ctx: TransferContext) => Promise<TransferResult>;

/** Timings and limits a job run needs from the worker's configuration. */
export interface JobRunSettings {
  leaseMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  maxBytesPerSec: number;
  /** Minimum interval between progress writes to Postgres. */
  progressWriteMs: number;
}

/** What a job run uses; built once by the Worker. */
export interface JobRunDeps {
  sql: Sql;
  queue: JobQueue;
  /** This worker: its id holds the lease, its site is what the claim checks. */
  worker: WorkerRef;
  log: Logger;
  settings: JobRunSettings;
  openEndpoint: OpenEndpoint;
  transfer: TransferFn;
  engineOptions?: Partial<EngineOptions>;
}

// Engine milestones keep their name as the event kind (migration 0003; recordRunEvent's EventKind
// parameter makes the compiler check that every engine kind exists); the level says how loud.
const ENGINE_EVENT_LEVEL = {
  staging_recovered: "warn",
  strategy_chosen: "info",
  fallback: "warn",
  archive_done: "debug",
  verified: "info",
  committed: "info",
  source_removed: "info",
  source_kept: "warn",
  compared: "info",
  mirrored: "info",
  files_failed: "warn",
} as const satisfies Record<EngineEvent["kind"], EventLevel>;

/** The job's failure as recorded: the engine's code and retry decision, or INTERNAL_ERROR (not retried) for anything else. */
export function failureOf(err: unknown): JobFailure {
  if (isTransferError(err)) return { code: err.code, message: err.message, retryable: err.retryable };
  return { code: "INTERNAL_ERROR", message: err instanceof Error ? err.message : String(err), retryable: false };
}

/** One delivery of `jobId`; run() never throws (every outcome is recorded or logged). */
export class JobRun {
  private readonly controller = new AbortController();
  private stopReason: StopReason | null = null;
  private readonly log: Logger;
  /** Event and progress writes, in order; awaited before the final transition so `done` is last. */
  private writes: Promise<void> = Promise.resolve();
  private lastProgressWrite = 0;
  private latestProgress: Progress | null = null;
  private progressTimer: ReturnType<typeof setTimeout> | undefined;
  private renewTimer: ReturnType<typeof setTimeout> | undefined;
  private lastRenewedAt = 0;
  private finished = false;
  /** The claimed job's site (null: any site): where Redis hands it back to. */
  private site: string | null = null;

  constructor(
    readonly jobId: string,
    private readonly deps: JobRunDeps,
  ) {
    this.log = deps.log.child({ jobId });
  }

  /** Asks the running engine to stop; the first reason wins. */
  stop(reason: StopReason): void {
    if (this.stopReason !== null) return;
    this.stopReason = reason;
    this.log.info("stopping job", { reason });
    this.controller.abort(reason);
  }

  /** Claims, runs and records the job. */
  async run(): Promise<void> {
    let job: JobRow | null;
    try {
      job = await this.claim();
    } catch (err) {
      // Postgres (or Redis) unreachable: park the delivery for a while rather than hand it straight
      // back, which would spin on the outage. If even that fails, the reconciler finds the job later.
      this.log.error("claiming the job failed; delivery parked for a retry", { err, delayMs: CLAIM_RETRY_MS });
      await this.deps.queue.retryLater(this.jobId, this.deps.worker.id, CLAIM_RETRY_MS).catch((e: unknown) => this.log.error("parking the delivery failed", { err: e }));
      return;
    }
    if (!job) return;
    try {
      this.startRenewal();
      let result: TransferResult;
      try {
        result = await this.transfer(job);
      } catch (err) {
        await this.writes;
        await this.recordStop(job, err);
        return;
      }
      await this.writes;
      await this.recordDone(result);
    } catch (err) {
      this.log.error("recording the job outcome failed; its lease will expire and the job will be reclaimed", { err });
    } finally {
      this.finished = true;
      clearTimeout(this.renewTimer);
      clearTimeout(this.progressTimer);
    }
  }

  // ---- claim ---------------------------------------------------------------------------------

  private async claim(): Promise<JobRow | null> {
    const { sql, queue, worker, settings } = this.deps;
    let claim = await claimJob(sql, this.jobId, worker, settings.leaseMs);
    if (!claim.claimed && claim.job?.leaseExpired && !claim.job.misplaced && (claim.job.status === "RUNNING" || claim.job.status === "CANCELLING")) {
      // Delivered before the reaper recorded the previous worker's death: take it back here.
      const outcome = await reclaimJob(sql, this.jobId, worker);
      if (outcome) this.log.warn("job reclaimed from a worker whose lease expired", { outcome });
      // Claim again even when this call changed nothing: a reaper may have just reclaimed it, and
      // the state read above is stale either way.
      claim = await claimJob(sql, this.jobId, worker, settings.leaseMs);
    }
    if (claim.claimed) {
      this.site = claim.job.site;
      // Postgres holds the lease that matters; the first renewal restores Redis's copy if this fails.
      await queue.startLease(this.jobId, worker.id, settings.leaseMs, this.site).catch((err: unknown) => this.log.warn("recording the lease in Redis failed", { err }));
      this.lastRenewedAt = Date.now();
      this.log.info("job started", { attempt: claim.job.attempts, maxAttempts: claim.job.max_attempts, type: claim.job.type, site: claim.job.site ?? "any" });
      return claim.job;
    }
    const state = claim.job;
    if (state === null || TERMINAL_STATUSES.includes(state.status)) {
      await queue.drop(this.jobId, worker.id, true);
    } else if (state.misplaced) {
      // Not this site's job (a stale list entry): only this delivery goes; the reconciler puts the
      // job on the list of the site Postgres names.
      await queue.drop(this.jobId, worker.id, false);
      this.log.warn("delivery refused: the job belongs to another site", { jobSite: state.site ?? "any" });
      return null;
    } else if (state.status === "RETRY_WAIT" && (state.dueInMs ?? 0) > 0) {
      await queue.retryLater(this.jobId, worker.id, state.dueInMs ?? 0);
    } else {
      // Running on another worker (a duplicate delivery): that worker acks it when done.
      await queue.drop(this.jobId, worker.id, false);
    }
    this.log.info("delivery not claimed", { status: state?.status ?? "missing" });
    return null;
  }

  // ---- lease ---------------------------------------------------------------------------------

  /** Renews the lease every third of its length: Postgres first (the truth), then Redis, so Redis always expires last. */
  private startRenewal(): void {
    const every = Math.max(100, Math.floor(this.deps.settings.leaseMs / 3));
    const tick = async () => {
      if (this.finished) return;
      await this.renewOnce();
      if (!this.finished && this.stopReason !== "lost") this.renewTimer = setTimeout(tick, every);
    };
    this.renewTimer = setTimeout(tick, every);
  }

  private async renewOnce(): Promise<void> {
    const { sql, queue, worker, settings } = this.deps;
    try {
      const status = await renewJobLease(sql, this.jobId, worker.id, settings.leaseMs);
      if (status === null) {
        this.log.warn("job is no longer this worker's (reclaimed or finished elsewhere)");
        this.stop("lost");
        return;
      }
      this.lastRenewedAt = Date.now();
      if (status === "CANCELLING") this.stop("cancel");
      if (!(await queue.renewLease(this.jobId, worker.id, settings.leaseMs, this.site))) {
        this.log.warn("another worker holds this job's lease in Redis; Postgres says it is ours");
      }
    } catch (err) {
      this.log.warn("lease renewal failed", { err });
      // Past most of the lease another worker may take the job: stop before two engines share its staging.
      if (Date.now() - this.lastRenewedAt > settings.leaseMs * 0.8) this.stop("lost");
    }
  }

  // ---- transfer ------------------------------------------------------------------------------

  private async transfer(job: JobRow): Promise<TransferResult> {
    const { deps } = this;
    const signal = this.controller.signal;
    const { source, target } = await openJobEndpoints(deps.sql, job, deps.openEndpoint, signal);
    try {
      return await deps.transfer(
        {
          id: job.id,
          sourcePath: job.source_path,
          targetPath: job.target_path,
          mode: job.type,
          // The options were validated against the engine's own schema when the job was created.
          ...job.options,
        },
        {
          source,
          target,
          signal,
          onProgress: (p) => this.onProgress(p),
          onEvent: (e) => this.onEngineEvent(e),
          options: { ...deps.engineOptions, maxBytesPerSec: deps.settings.maxBytesPerSec },
        },
      );
    } finally {
      await Promise.all([source.close(), target.close()].map((p) => p.catch((err: unknown) => this.log.warn("closing an endpoint failed", { err }))));
    }
  }

  private enqueueWrite(what: string, write: () => Promise<void>): void {
    this.writes = this.writes.then(write).catch((err: unknown) => this.log.warn(`recording ${what} failed`, { err }));
  }

  private onEngineEvent(e: EngineEvent): void {
    const level = ENGINE_EVENT_LEVEL[e.kind];
    const strategy = e.kind === "strategy_chosen" && typeof e.data?.strategy === "string" ? e.data.strategy : undefined;
    this.log[level](e.message, { event: e.kind });
    this.enqueueWrite(`event ${e.kind}`, () =>
      recordRunEvent(this.deps.sql, this.jobId, this.deps.worker, e.kind, e.message, { level, data: e.data ?? {}, ...(strategy ? { strategy } : {}) }),
    );
  }

  /**
   * Counters go to the job row at most every progressWriteMs, the latest one always (a trailing
   * write), so a short phase is not lost to the throttle. Only the plan totals and the transfer
   * phase are stored: the later phases restart their counters, which would make the bar jump back;
   * the final numbers are written with DONE.
   */
  private onProgress(p: Progress): void {
    const phaseChanged = p.phase !== this.latestProgress?.phase;
    if (phaseChanged) this.log.debug("phase", { phase: p.phase, filesTotal: p.filesTotal, bytesTotal: p.bytesTotal });
    this.latestProgress = p;
    const wait = this.lastProgressWrite + this.deps.settings.progressWriteMs - Date.now();
    if (phaseChanged || wait <= 0) {
      clearTimeout(this.progressTimer);
      this.progressTimer = undefined;
      this.writeProgress();
    } else {
      this.progressTimer ??= setTimeout(() => {
        this.progressTimer = undefined;
        this.writeProgress();
      }, wait);
    }
  }

  private writeProgress(): void {
    const p = this.latestProgress;
    if (this.finished || !p || (p.phase !== "plan" && p.phase !== "transfer")) return;
    this.lastProgressWrite = Date.now();
    const { sql, worker } = this.deps;
    this.enqueueWrite("progress", () => recordProgress(sql, this.jobId, worker.id, p));
  }

  // ---- outcome -------------------------------------------------------------------------------

  /**
   * Runs one recording step, trying again over a short Postgres or Redis outage: a finished
   * transfer whose outcome is lost would run again (and find its own target in the way).
   */
  private async persist<T>(what: string, step: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await step();
      } catch (err) {
        if (attempt >= PERSIST_ATTEMPTS) throw err;
        const delayMs = 250 * 2 ** (attempt - 1);
        this.log.warn(`recording ${what} failed; trying again`, { err, attempt, delayMs });
        await Bun.sleep(delayMs);
      }
    }
  }

  private async recordDone(result: TransferResult): Promise<void> {
    const { sql, queue, worker } = this.deps;
    const data = { strategy: result.strategy, files: result.files, bytes: result.bytes, durationsMs: result.durationsMs, verified: result.verified, ...(result.sourceKept ? { sourceKept: result.sourceKept.length } : {}) };
    const ours = await this.persist("done", () => completeJob(sql, this.jobId, worker, { strategy: result.strategy, files: result.files, bytes: result.bytes, data }));
    if (ours) {
      await this.persist("ack", () => queue.ack(this.jobId, worker.id));
      this.log.info("job done", data);
    } else {
      await this.persist("drop", () => queue.drop(this.jobId, worker.id, false));
      this.log.warn("transfer finished but the job was no longer this worker's; nothing recorded");
    }
  }

  private async recordStop(job: JobRow, err: unknown): Promise<void> {
    const { sql, queue, worker, settings } = this.deps;
    const reason = this.stopReason;
    const failure = failureOf(err);
    if (reason === "lost") {
      await this.persist("drop", () => queue.drop(this.jobId, worker.id, false));
      this.log.warn("job stopped: lease lost");
      return;
    }
    if (reason === "cancel" && (await this.persist("cancelled", () => markCancelled(sql, this.jobId, worker)))) {
      await this.persist("ack", () => queue.ack(this.jobId, worker.id));
      this.log.info("job cancelled");
      return;
    }
    if (reason === "shutdown" || reason === "cancel") {
      // (cancel here: a cancel notice Postgres does not confirm; hand the job back rather than lose it.)
      const outcome = await this.persist("released", () => releaseJob(sql, this.jobId, worker));
      if (outcome === "released") await this.persist("release", () => queue.release(this.jobId, worker.id, job.site));
      else await this.persist("drop", () => queue.drop(this.jobId, worker.id, outcome === "cancelled"));
      this.log.warn(outcome === "released" ? `job released back to the queue (${reason})` : `job ${outcome ?? "not ours"} at ${reason}`);
      return;
    }
    if (failure.retryable && job.attempts < job.max_attempts) {
      const delayMs = retryDelayMs(job.attempts, settings.retryBaseMs, settings.retryMaxMs);
      const outcome = await this.persist("retry", () => scheduleRetry(sql, this.jobId, worker, failure, delayMs));
      if (outcome === "retry") await this.persist("retry", () => queue.retryLater(this.jobId, worker.id, delayMs));
      else await this.persist("drop", () => queue.drop(this.jobId, worker.id, outcome === "cancelled"));
      this.log.warn(outcome === "retry" ? "attempt failed; retry scheduled" : `attempt failed; job ${outcome ?? "not ours"}`, { code: failure.code, error: failure.message, attempt: job.attempts, delayMs });
      return;
    }
    const outcome = await this.persist("failed", () => failJob(sql, this.jobId, worker, failure));
    if (outcome) await this.persist("ack", () => queue.ack(this.jobId, worker.id));
    else await this.persist("drop", () => queue.drop(this.jobId, worker.id, false));
    this.log.error(outcome === "failed" ? "job failed" : `attempt failed; job ${outcome ?? "not ours"}`, { code: failure.code, error: failure.message, retryable: failure.retryable, attempt: job.attempts });
  }
}
