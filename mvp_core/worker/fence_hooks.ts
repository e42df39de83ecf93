/**
 * The engine's fencing hooks (transfer_engine TransferHooks), as the worker implements them.
 *
 * beforeStep: before the commit and before a move's source removal, one statement proves that this
 * attempt still holds an unexpired lease, records the step in `phase` and extends the lease
 * (lifecycle.recordStep), all within a deadline shorter than the lease (LeaseKeeper.deadlineMs). When the lease cannot be
 * proven (refused, Postgres down or hung), the attempt stops as "lost" and the step is not taken:
 * the job is reclaimed once its lease expires, and its next attempt decides what is left to do.
 *
 * committed: records, durably, that the data arrived (lifecycle.recordCommitted), trying again
 * until it lands, a later attempt exists, or the attempt is stopped; the engine waits for it before
 * removing a move's source.
 */
import type { Sql } from "postgres";
import { type Fence, recordCommitted, recordStep, type StepVerdict } from "../jobs/lifecycle.ts";
import type { Logger } from "../log/log.ts";
import { type GuardedStep, type TransferHooks, TransferError } from "../transfer_engine/index.ts";
import { withDeadline } from "./deadline.ts";
import type { StopReason } from "./job_run.ts";
import type { LeaseKeeper } from "./lease.ts";

/** Pause between tries of a fence or commit record that failed (not refused). */
const RETRY_PAUSE_MS = 50;
/** Longest pause between tries of recording the commit during an outage. */
const COMMIT_RETRY_MAX_MS = 1_000;

/** What the hooks need from their JobRun. */
export interface FenceHooksDeps {
  sql: Sql;
  fence: Fence;
  leaseMs: number;
  lease: LeaseKeeper;
  log: Logger;
  stopReason(): StopReason | null;
  stop(reason: StopReason): void;
  /** An earlier attempt recorded the commit (the engine is resuming). */
  committedBefore: boolean;
}

/** One attempt's fencing hooks and what they learnt. */
export class FenceHooks {
  /** The commit fence was passed (or an earlier attempt committed): the data may have arrived. */
  pastCommitFence: boolean;

  constructor(private readonly d: FenceHooksDeps) {
    this.pastCommitFence = d.committedBefore;
  }

  /** The hooks object passed to transfer(). */
  hooks(): TransferHooks {
    return { beforeStep: (step) => this.beforeStep(step), committed: () => this.committed() };
  }

  private stopped(what: string): TransferError {
    return new TransferError("CANCELLED", `${what}; the attempt is stopping (${this.d.stopReason() ?? "lost"})`, { retryable: false });
  }

  private async beforeStep(step: GuardedStep): Promise<void> {
    const { log } = this.d;
    if (this.d.stopReason() !== null) throw this.stopped(`${step} not taken`);
    const sentAt = Date.now();
    const verdict = await this.prove(step, sentAt + this.d.lease.deadlineMs);
    if (verdict === "granted") {
      this.d.lease.confirm(sentAt);
      if (step === "commit") this.pastCommitFence = true;
      log.debug("guarded step allowed", { step });
      return;
    }
    if (verdict === "cancelling") {
      this.d.stop("cancel");
      throw new TransferError("CANCELLED", "cancel requested before the commit; nothing was committed", { retryable: false });
    }
    log.warn("the lease could not be proven before a guarded step; not taking it, the job will be reclaimed", { step });
    this.d.stop("lost");
    throw this.stopped(`${step} refused: this attempt could not prove it still holds the job's lease`);
  }

  /** The fence statement, tried again on errors until `deadlineAt`; a refusal is final. */
  private async prove(step: GuardedStep, deadlineAt: number): Promise<StepVerdict | "unproven"> {
    const { sql, fence, leaseMs, log } = this.d;
    for (;;) {
      try {
        return await withDeadline(recordStep(sql, fence, step, leaseMs), deadlineAt - Date.now(), `the ${step} fence`);
      } catch (err) {
        log.warn("the fence statement failed", { step, err });
        if (Date.now() + RETRY_PAUSE_MS >= deadlineAt) return "unproven";
        await Bun.sleep(RETRY_PAUSE_MS);
      }
    }
  }

  private async committed(): Promise<void> {
    const { sql, fence, log } = this.d;
    this.pastCommitFence = true;
    for (let attempt = 1; ; attempt++) {
      if (this.d.stopReason() !== null) {
        // The engine keeps its commit marker, so the next attempt still learns the data arrived.
        throw this.stopped("the data arrived but recording it did not finish");
      }
      try {
        if (await withDeadline(recordCommitted(sql, fence), this.d.lease.deadlineMs, "recording the commit")) return;
        log.warn("recording the commit was refused: a later attempt owns the job");
        this.d.stop("lost");
        throw this.stopped("the data arrived after this attempt lost the job");
      } catch (err) {
        if (err instanceof TransferError) throw err;
        const delayMs = Math.min(COMMIT_RETRY_MAX_MS, RETRY_PAUSE_MS * 2 ** attempt);
        log.warn("recording the commit failed; trying again", { err, attempt, delayMs });
        await Bun.sleep(delayMs);
      }
    }
  }
}
