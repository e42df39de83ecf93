/**
 * One attempt's lease, kept from the worker's side: a renewal every third of the lease, each with a
 * deadline of half the lease (a hung renewal counts as failed), and a watchdog that acts on elapsed time alone: when
 * no renewal has been confirmed for 80 % of the lease, the attempt is told it lost the job, even
 * while a renewal is still hanging. Another worker may take the job once the lease expires; by
 * then this attempt's engine has been stopped, and its fenced steps (lifecycle.ts) are refused.
 */
import type { JobStatus } from "../jobs/types.ts";
import type { Logger } from "../log/log.ts";
import { withDeadline } from "./deadline.ts";

/** Share of the lease after which an attempt without a confirmed renewal stops. */
export const LEASE_STOP_SHARE = 0.8;

/** What a LeaseKeeper calls. */
export interface LeaseKeeperOptions {
  leaseMs: number;
  /** The fenced Postgres renewal: the job's status, or null when it is no longer this attempt's. */
  renew(): Promise<JobStatus | null>;
  /** The Redis copy of the lease; false when another worker holds it there. */
  renewRedis(): Promise<boolean>;
  onCancelling(): void;
  onLost(why: string): void;
  log: Logger;
}

/** Renews an attempt's lease until stopped; see the module comment. */
export class LeaseKeeper {
  /** When the newest renewal Postgres confirmed was sent: the lease runs at least a lease from there. */
  private confirmedAt = 0;
  private renewTimer: ReturnType<typeof setTimeout> | undefined;
  private watchdog: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  constructor(private readonly o: LeaseKeeperOptions) {}

  /**
   * Longest a renewal (or a step fence) may take before it counts as failed: half the lease. The
   * watchdog, not this deadline, is what stops an attempt in time (it counts from when a confirmed
   * renewal was sent), so a slow answer from a loaded Postgres still counts rather than costing the
   * attempt; and a step granted within it still has at least half a lease ahead.
   */
  get deadlineMs(): number {
    return Math.max(50, Math.floor(this.o.leaseMs / 2));
  }

  /** Starts renewing; `confirmedAt` is when the claim that granted the lease was sent. */
  start(confirmedAt: number): void {
    this.confirm(confirmedAt);
    this.schedule(confirmedAt);
  }

  /** Records a lease extension Postgres confirmed (a renewal, or a step fence that extends it), sent at `sentAt`. */
  confirm(sentAt: number): void {
    this.confirmedAt = Math.max(this.confirmedAt, sentAt);
    this.armWatchdog();
  }

  /** Stops renewing and watching. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.renewTimer);
    clearTimeout(this.watchdog);
  }

  private schedule(lastSentAt: number): void {
    if (this.stopped) return;
    const every = Math.max(100, Math.floor(this.o.leaseMs / 3));
    this.renewTimer = setTimeout(() => void this.tick(), Math.max(0, lastSentAt + every - Date.now()));
  }

  private armWatchdog(): void {
    if (this.stopped) return;
    clearTimeout(this.watchdog);
    const limitMs = this.o.leaseMs * LEASE_STOP_SHARE;
    this.watchdog = setTimeout(() => {
      const silentMs = Date.now() - this.confirmedAt;
      if (silentMs < limitMs) return this.armWatchdog();
      this.lost(`no lease renewal confirmed for ${silentMs} ms (${LEASE_STOP_SHARE * 100} % of the ${this.o.leaseMs} ms lease)`);
    }, Math.max(0, this.confirmedAt + limitMs - Date.now()));
  }

  private lost(why: string): void {
    if (this.stopped) return;
    this.stop();
    this.o.onLost(why);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const sentAt = Date.now();
    try {
      const status = await withDeadline(this.o.renew(), this.deadlineMs, "lease renewal in Postgres");
      if (status === null) return this.lost("the job is no longer this attempt's (reclaimed or finished elsewhere)");
      this.confirm(sentAt);
      if (status === "CANCELLING") this.o.onCancelling();
      await this.renewRedis();
    } catch (err) {
      this.o.log.warn("lease renewal failed or hung; it counts as not renewed", { err, sinceConfirmedMs: Date.now() - this.confirmedAt });
    }
    this.schedule(sentAt);
  }

  private async renewRedis(): Promise<void> {
    try {
      if (!(await withDeadline(this.o.renewRedis(), this.deadlineMs, "lease renewal in Redis"))) {
        this.o.log.warn("another worker holds this job's lease in Redis; Postgres says it is ours");
      }
    } catch (err) {
      // Postgres holds the lease that matters; the next renewal restores Redis's copy.
      this.o.log.warn("renewing the lease in Redis failed", { err });
    }
  }
}
