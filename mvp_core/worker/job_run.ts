/**
 * One delivery of one job on this worker, as named steps: claim (in Postgres), open the endpoints,
 * transfer (the engine, with the lease kept alongside), then record the outcome (done, retry,
 * failed, cancelled or released) in Postgres first and in Redis second.
 *
 * Fencing: every write names this attempt (lifecycle.ts Fence); the engine's guarded steps (the
 * commit, a move's source removal) wait for a fence statement that proves the lease
 * (fence_hooks.ts); the lease keeper stops the engine when the lease cannot be confirmed in time.
 */
import type { Sql } from "postgres";
import {
  ATTEMPTS_CEILING,
  type Fence,
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
import { failedPaths } from "../jobs/files.ts";
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
  type Endpoint,
  isTransferError,
  mismatchError,
  verifyHistory,
} from "../transfer_engine/index.ts";
import { retryDelayMs } from "./backoff.ts";
import { type OpenEndpoint, openJobEndpoints } from "./endpoints.ts";
import { FenceHooks } from "./fence_hooks.ts";
import { FileOutcomes } from "./file_outcomes.ts";
import { LeaseKeeper } from "./lease.ts";
import { isStoreUnavailable } from "./store_unavailable.ts";

/** How long a delivery waits when claiming it failed (Postgres or Redis unreachable). */
const CLAIM_RETRY_MS = 5_000;
/** Tries of each outcome-recording step (250 ms, doubling, between them: ~4 s in all). */
const PERSIST_ATTEMPTS = 5;
/** Code of the retryable failure recorded when an error escaped the job's code path (escape_guard.ts). */
export const UNCAUGHT_ERROR_CODE = "UNCAUGHT_ERROR";
/** The code of an attempt ended by an outage of Ketter's own stores (worker/store_unavailable.ts). */
export const STORE_UNAVAILABLE_CODE = "STORE_UNAVAILABLE";

/**
 * Why the worker stopped a job before the engine finished: a cancel request, its own shutdown,
 * losing the job's lease (or failing to prove it at a guarded step), or an error that escaped the
 * job's code path.
 */
export type StopReason = "cancel" | "shutdown" | "lost" | "crashed";

/** The engine's transfer(), passed in so tests can wrap it. */
export type TransferFn = (spec: TransferSpecInput, ctx: TransferContext) => Promise<TransferResult>;

/** What a finished job records with DONE: how the data moved (null: a verify job moved none), counts, the done event's data. */
interface Finished {
  strategy: string | null;
  files: number;
  bytes: number;
  data: Record<string, unknown>;
  /**
   * This run reported every file it has to job_files (a transfer, not a resumed one): rows it did
   * not touch are settled. A verify job records no files: its problems are in its event and error.
   */
  reportedFiles: boolean;
}

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
  resumed: "info",
} as const satisfies Record<EngineEvent["kind"], EventLevel>;

/**
 * The job's failure as recorded: the engine's code and retry decision; STORE_UNAVAILABLE (retried)
 * when Postgres or Redis went away mid-attempt; INTERNAL_ERROR (not retried) for anything else.
 */
export function failureOf(err: unknown): JobFailure {
  if (isTransferError(err)) return { code: err.code, message: err.message, retryable: err.retryable };
  const message = err instanceof Error ? err.message : String(err);
  if (isStoreUnavailable(err)) return { code: STORE_UNAVAILABLE_CODE, message: `Postgres or Redis was unreachable during the attempt (${message}); it will be tried again`, retryable: true };
  return { code: "INTERNAL_ERROR", message, retryable: false };
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
  private lease: LeaseKeeper | undefined;
  private fenceHooks: FenceHooks | undefined;
  private fence: Fence | undefined;
  /** This attempt's file outcomes, on their way to job_files. */
  private files: FileOutcomes | undefined;
  private finished = false;
  /** The error that escaped this job's code path, when crash() was called. */
  private escaped: unknown;
  /** Settles run() when the engine does not stop after crash(). */
  private abandon: (err: Error) => void = () => undefined;
  private readonly abandoned = new Promise<never>((_, reject) => (this.abandon = reject));
  /** The claimed job's site (null: any site): where Redis hands it back to. */
  private site: string | null = null;

  constructor(
    readonly jobId: string,
    private readonly deps: JobRunDeps,
  ) {
    this.log = deps.log.child({ jobId });
    this.abandoned.catch(() => undefined); // raced in run(); unused when the engine stops in time
  }

  /**
   * Asks the running engine to stop; the first reason wins. A cancel that arrives once the commit
   * fence was passed is ignored: the data is (being) committed, and the job ends DONE.
   */
  stop(reason: StopReason): void {
    if (reason === "cancel" && this.fenceHooks?.pastCommitFence) {
      this.log.info("cancel requested after the commit; finishing the job");
      return;
    }
    if (this.stopReason !== null) return;
    this.stopReason = reason;
    this.log.info("stopping job", { reason });
    this.controller.abort(reason);
  }

  /**
   * Called by the last-resort guard when an error escaped this job's code path (say a connection's
   * error event nobody listened to): the engine is stopped and the attempt recorded as a retryable
   * failure. An engine that does not stop within a lease is abandoned; its guarded steps are fenced.
   */
  crash(err: unknown): void {
    if (this.finished) return;
    this.escaped ??= err;
    this.stop("crashed");
    const timer = setTimeout(() => this.abandon(new Error("the engine did not stop after an escaped error")), this.deps.settings.leaseMs);
    timer.unref?.();
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
      let result: Finished;
      try {
        const transferring = this.transfer(job);
        transferring.catch((err: unknown) => {
          if (this.finished) this.log.warn("an abandoned engine stopped at last", { err });
        });
        result = await Promise.race([transferring, this.abandoned]);
      } catch (err) {
        await Promise.all([this.writes, this.files?.settled()]);
        await this.recordStop(job, err);
        return;
      }
      await Promise.all([this.writes, this.files?.settled()]);
      await this.recordDone(result);
    } catch (err) {
      this.log.error("recording the job outcome failed; its lease will expire and the job will be reclaimed", { err });
    } finally {
      this.finished = true;
      this.lease?.stop();
      clearTimeout(this.progressTimer);
    }
  }

  // ---- claim ---------------------------------------------------------------------------------

  private async claim(): Promise<JobRow | null> {
    const { sql, queue, worker, settings } = this.deps;
    let sentAt = Date.now();
    let claim = await claimJob(sql, this.jobId, worker, settings.leaseMs);
    if (!claim.claimed && claim.job?.leaseExpired && !claim.job.misplaced && (claim.job.status === "RUNNING" || claim.job.status === "CANCELLING")) {
      // Delivered before the reaper recorded the previous worker's death: take it back here.
      const outcome = await reclaimJob(sql, this.jobId, worker);
      if (outcome) this.log.warn("job reclaimed from a worker whose lease expired", { outcome });
      // Claim again even when this call changed nothing: a reaper may have just reclaimed it, and
      // the state read above is stale either way.
      sentAt = Date.now();
      claim = await claimJob(sql, this.jobId, worker, settings.leaseMs);
    }
    if (claim.claimed) {
      const job = claim.job;
      this.site = job.site;
      this.fence = { jobId: this.jobId, worker, attempt: job.attempts };
      this.startLease(this.fence, sentAt);
      // Postgres holds the lease that matters; the first renewal restores Redis's copy if this fails.
      await queue.startLease(this.jobId, worker.id, settings.leaseMs, this.site).catch((err: unknown) => this.log.warn("recording the lease in Redis failed", { err }));
      this.log.info("job started", { attempt: job.attempts, maxAttempts: job.max_attempts, type: job.type, site: job.site ?? "any", resume: job.committed_at !== null });
      return job;
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

  /** Renewals go to Postgres first (the truth), then Redis, so Redis always expires last. */
  private startLease(fence: Fence, claimSentAt: number): void {
    const { sql, queue, worker, settings } = this.deps;
    this.lease = new LeaseKeeper({
      leaseMs: settings.leaseMs,
      renew: () => renewJobLease(sql, fence, settings.leaseMs),
      renewRedis: () => queue.renewLease(this.jobId, worker.id, settings.leaseMs, this.site),
      onCancelling: () => this.stop("cancel"),
      onLost: (why) => {
        // Another worker may take the job once the lease expires: stop before two engines share its staging.
        this.log.warn("lease lost; stopping the engine", { why });
        this.stop("lost");
      },
      log: this.log,
    });
    this.lease.start(claimSentAt);
  }

  // ---- transfer ------------------------------------------------------------------------------

  private async transfer(job: JobRow): Promise<Finished> {
    const { deps } = this;
    const signal = this.controller.signal;
    this.fenceHooks = new FenceHooks({
      sql: deps.sql,
      fence: this.fence!,
      leaseMs: deps.settings.leaseMs,
      lease: this.lease!,
      log: this.log,
      stopReason: () => this.stopReason,
      stop: (reason) => this.stop(reason),
      committedBefore: job.committed_at !== null,
    });
    const files = (this.files = new FileOutcomes(deps.sql, this.fence!, this.log));
    const fenced = this.fenceHooks.hooks();
    // A retry of a DONE_WITH_ERRORS job sends only the files that failed, into the existing target;
    // a mirror there would see every other file as one the (filtered) source lacks: never.
    const only = job.scope === "failed" ? await failedPaths(deps.sql, job.id) : undefined;
    if (only) this.log.info("retry of the failed files", { files: only.length });
    const { source, target, mhl } = await openJobEndpoints(deps.sql, job, deps.openEndpoint, signal);
    try {
      if (job.type === "verify") return await this.verify(job, source);
      const result = await deps.transfer(
        {
          id: job.id,
          sourcePath: job.source_path,
          targetPath: job.target_path,
          mode: job.type,
          // The options were validated against the engine's own schema when the job was created;
          // without its own `mhl`, the target portal's default applies (read now, as the job runs).
          ...job.options,
          mhl: job.options.mhl ?? mhl,
          ...(only ? { mirror: false } : {}),
        },
        {
          source,
          target,
          signal,
          onProgress: (p) => this.onProgress(p),
          onEvent: (e) => this.onEngineEvent(e),
          onFiles: (batch) => files.add(batch),
          ...(only ? { only } : {}),
          // The outcomes known before the commit (skipped, failed) land before it is taken, the
          // verified ones before it is recorded: a job resumed after a crash there (a resumed run
          // reports no files) still ends DONE_WITH_ERRORS when files had failed.
          hooks: {
            beforeStep: async (step) => {
              if (step === "commit") await files.settled();
              await fenced.beforeStep?.(step);
            },
            committed: async () => {
              await files.settled();
              await fenced.committed?.();
            },
          },
          // An earlier attempt recorded that the data arrived: only finish what follows the commit.
          resume: { committed: job.committed_at !== null },
          options: { ...deps.engineOptions, maxBytesPerSec: deps.settings.maxBytesPerSec },
        },
      );
      return finishedTransfer(result);
    } finally {
      await Promise.all([...new Set([source, target])].map((e) => e.close().catch((err: unknown) => this.log.warn("closing an endpoint failed", { err }))));
    }
  }

  /**
   * A verify job: the folder against its ASC MHL history (the engine's verifyHistory); with the
   * job's own `mhl` option (never a portal default: verifying must not write unasked) the
   * verification is recorded as an in-place generation. Problems fail the job (MHL_MISMATCH, not
   * retried), every one listed in its `verified` event.
   */
  private async verify(job: JobRow, endpoint: Endpoint): Promise<Finished> {
    const r = await verifyHistory(
      { id: job.id, path: job.source_path, hash: job.options.hash ?? "auto", record: job.options.mhl === true },
      { endpoint, signal: this.controller.signal, onProgress: (p) => this.onProgress({ ...p, phase: "transfer" }), onEvent: (e) => this.onEngineEvent(e) },
    );
    if (!r.ok) throw mismatchError(r);
    return { strategy: null, files: r.verified, bytes: 0, data: { verified: r.verified, durationMs: r.durationMs, ...(r.recorded ? { recorded: r.recorded } : {}) }, reportedFiles: false };
  }

  private enqueueWrite(what: string, write: () => Promise<boolean>): void {
    this.writes = this.writes
      .then(write)
      .then((recorded) => {
        if (!recorded) this.log.debug(`${what} not recorded: the job is no longer this attempt's`);
      })
      .catch((err: unknown) => this.log.warn(`recording ${what} failed`, { err }));
  }

  private onEngineEvent(e: EngineEvent): void {
    const level = ENGINE_EVENT_LEVEL[e.kind];
    const strategy = e.kind === "strategy_chosen" && typeof e.data?.strategy === "string" ? e.data.strategy : undefined;
    this.log[level](e.message, { event: e.kind });
    this.enqueueWrite(`event ${e.kind}`, () =>
      recordRunEvent(this.deps.sql, this.fence!, e.kind, e.message, { level, data: e.data ?? {}, ...(strategy ? { strategy } : {}) }),
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
    this.enqueueWrite("progress", () => recordProgress(this.deps.sql, this.fence!, p));
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

  private async recordDone(result: Finished): Promise<void> {
    const { sql, queue, worker } = this.deps;
    const { data } = result;
    const files = this.files!;
    await this.persist("file outcomes", () => files.writeSetAside());
    // A run that reported all its files (a transfer, not a resumed one): the rows it did not touch are settled.
    const outcomes = result.reportedFiles ? { outcomes: { token: files.token } } : {};
    const ours = await this.persist("done", () => completeJob(sql, this.fence!, { strategy: result.strategy, files: result.files, bytes: result.bytes, data, ...outcomes }));
    if (ours) {
      await this.persist("ack", () => queue.ack(this.jobId, worker.id));
      this.log.info("job done", data);
    } else {
      await this.persist("drop", () => queue.drop(this.jobId, worker.id, false));
      this.log.warn("transfer finished but the job was no longer this attempt's; nothing recorded");
    }
  }

  private failure(err: unknown): JobFailure {
    if (this.stopReason !== "crashed") return failureOf(err);
    const e = this.escaped;
    return { code: UNCAUGHT_ERROR_CODE, message: `an error escaped the job's code path: ${e instanceof Error ? e.message : String(e)}`, retryable: true };
  }

  private async recordStop(job: JobRow, err: unknown): Promise<void> {
    const { sql, queue, worker, settings } = this.deps;
    const fence = this.fence!;
    const reason = this.stopReason;
    const failure = this.failure(err);
    if (reason === "lost") {
      await this.persist("drop", () => queue.drop(this.jobId, worker.id, false));
      this.log.warn("job stopped: lease lost; it will be reclaimed");
      return;
    }
    if (reason === "cancel" && (await this.persist("cancelled", () => markCancelled(sql, fence)))) {
      await this.persist("ack", () => queue.ack(this.jobId, worker.id));
      this.log.info("job cancelled");
      return;
    }
    if (reason === "shutdown" || reason === "cancel") {
      // (cancel here: a cancel notice Postgres does not confirm; hand the job back rather than lose it.)
      const outcome = await this.persist("released", () => releaseJob(sql, fence));
      if (outcome === "released") await this.persist("release", () => queue.release(this.jobId, worker.id, job.site));
      else await this.persist("drop", () => queue.drop(this.jobId, worker.id, outcome === "cancelled"));
      this.log.warn(outcome === "released" ? `job released back to the queue (${reason})` : `job ${outcome ?? "not ours"} at ${reason}`);
      return;
    }
    // Past the commit fence the data may have arrived: a later attempt must be able to finish it,
    // even when the attempt budget is spent (lifecycle.ts grants one more).
    const mayHaveArrived = this.fenceHooks?.pastCommitFence === true || job.phase !== null;
    if (failure.retryable && (job.attempts < job.max_attempts || (mayHaveArrived && job.attempts < ATTEMPTS_CEILING))) {
      const delayMs = retryDelayMs(job.attempts, settings.retryBaseMs, settings.retryMaxMs);
      const extraAttempt = job.attempts >= job.max_attempts;
      const outcome = await this.persist("retry", () => scheduleRetry(sql, fence, failure, delayMs, { extraAttempt }));
      if (outcome === "retry") await this.persist("retry", () => queue.retryLater(this.jobId, worker.id, delayMs));
      else await this.persist("drop", () => queue.drop(this.jobId, worker.id, outcome === "cancelled"));
      this.log.warn(outcome === "retry" ? "attempt failed; retry scheduled" : `attempt failed; job ${outcome ?? "not ours"}`, { code: failure.code, error: failure.message, attempt: job.attempts, delayMs, extraAttempt });
      return;
    }
    const outcome = await this.persist("failed", () => failJob(sql, fence, failure));
    if (outcome) await this.persist("ack", () => queue.ack(this.jobId, worker.id));
    else await this.persist("drop", () => queue.drop(this.jobId, worker.id, false));
    const msg = outcome === "failed" ? "job failed" : outcome === "done" ? "job done; the data arrived but what follows the commit failed" : `attempt failed; job ${outcome ?? "not ours"}`;
    this.log.error(msg, { code: failure.code, error: failure.message, retryable: failure.retryable, attempt: job.attempts });
  }
}

/** A transfer's result as recorded with DONE. */
function finishedTransfer(r: TransferResult): Finished {
  const data = {
    strategy: r.strategy, files: r.files, bytes: r.bytes, sentBytes: r.sentBytes, resumedBytes: r.resumedBytes, durationsMs: r.durationsMs, verified: r.verified, fileCounts: r.fileCounts,
    ...(r.sourceKept ? { sourceKept: r.sourceKept.length } : {}), ...(r.mirrored ? { mirrored: r.mirrored } : {}), ...(r.mhl ? { mhl: r.mhl } : {}),
  };
  return { strategy: r.strategy, files: r.files, bytes: r.bytes, data, reportedFiles: r.strategy !== "resumed" };
}
