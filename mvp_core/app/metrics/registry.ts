/**
 * The Prometheus exposition of one scrape: a fresh prom-client registry filled from a snapshot of
 * Postgres (jobs/stats.ts) and Redis (queue depth, heartbeats). Nothing is counted in memory, so
 * every API instance answers the same and a restart loses nothing.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { DURATION_BUCKETS_S, type DurationHistogram, type JobStats } from "../../jobs/stats.ts";
import type { QueueDepth, WorkerInfo } from "../../queue/queue.ts";

/** What one scrape read; a part that could not be read is null (and `ketter_source_up` says 0). */
export interface MetricsSnapshot {
  version: string;
  jobs: JobStats | null;
  queue: QueueDepth | null;
  workers: WorkerInfo[] | null;
}

const DURATION = "ketter_job_duration_seconds";

const DURATION_HELP = "Seconds from a DONE (or DONE_WITH_ERRORS) job's first start to its end (retries included)";

/**
 * A histogram whose buckets come from SQL counts rather than from observe() calls. prom-client's
 * registry renders a histogram from its (undeclared) getForPromString(), and Histogram.get() reads
 * the same method, so overriding it is enough for both the text and the JSON form.
 */
class SnapshotHistogram extends Histogram<"le"> {
  constructor(
    registry: Registry,
    private readonly data: DurationHistogram,
  ) {
    super({ name: DURATION, help: DURATION_HELP, buckets: [...DURATION_BUCKETS_S], registers: [registry] });
  }

  async getForPromString() {
    const h = this.data;
    const sample = (suffix: string, labels: Record<string, string | number>, value: number) => ({ metricName: `${DURATION}_${suffix}`, labels, sharedLabels: {}, value });
    return {
      name: DURATION,
      help: DURATION_HELP,
      type: "histogram",
      aggregator: "sum",
      values: [
        ...DURATION_BUCKETS_S.map((le, i) => sample("bucket", { le }, h.buckets[i]!)),
        sample("bucket", { le: "+Inf" }, h.count),
        sample("sum", {}, h.sumSeconds),
        sample("count", {}, h.count),
      ],
    };
  }
}

/** The registry for `snap`, ready for `metrics()`. */
export function metricsRegistry(snap: MetricsSnapshot): Registry {
  const registry = new Registry();
  const registers = [registry];
  new Gauge({ name: "ketter_info", help: "Always 1; the version label says which Ketter answers", labelNames: ["version"], registers }).set({ version: snap.version }, 1);
  const up = new Gauge({ name: "ketter_source_up", help: "1 when this scrape could read the source (postgres: job figures, redis: queue and workers), else 0", labelNames: ["source"], registers });
  up.set({ source: "postgres" }, snap.jobs ? 1 : 0);
  up.set({ source: "redis" }, snap.queue && snap.workers ? 1 : 0);

  if (snap.queue) {
    const depth = new Gauge({ name: "ketter_queue_jobs", help: "Jobs in the Redis queue by state: pending (waiting for a worker), processing (leased), delayed (waiting to retry)", labelNames: ["state"], registers });
    for (const state of ["pending", "processing", "delayed"] as const) depth.set({ state }, snap.queue[state]);
  }
  if (snap.workers) {
    new Gauge({ name: "ketter_workers_live", help: "Workers whose heartbeat has not expired", registers }).set(snap.workers.length);
    new Gauge({ name: "ketter_worker_jobs_running", help: "Jobs the live workers report running", registers }).set(snap.workers.reduce((n, w) => n + w.running, 0));
    new Gauge({ name: "ketter_worker_slots", help: "Jobs the live workers may run at once (sum of WORKER_CONCURRENCY)", registers }).set(snap.workers.reduce((n, w) => n + w.concurrency, 0));
  }
  if (snap.jobs) {
    const jobs = new Gauge({ name: "ketter_jobs", help: "Jobs in Postgres by status", labelNames: ["status"], registers });
    for (const [status, n] of Object.entries(snap.jobs.byStatus)) jobs.set({ status }, n);
    new SnapshotHistogram(registry, snap.jobs.durations);
    const bytes = new Counter({ name: "ketter_moved_bytes_total", help: "Bytes of DONE and DONE_WITH_ERRORS jobs, by direction (source kind _to_ target kind) and strategy", labelNames: ["direction", "strategy"], registers });
    const files = new Counter({ name: "ketter_moved_files_total", help: "Files of DONE and DONE_WITH_ERRORS jobs, by direction and strategy", labelNames: ["direction", "strategy"], registers });
    for (const m of snap.jobs.moved) {
      bytes.inc({ direction: m.direction, strategy: m.strategy }, m.bytes);
      files.inc({ direction: m.direction, strategy: m.strategy }, m.files);
    }
    new Counter({ name: "ketter_job_retries_total", help: "Attempts that failed with a retryable error and were scheduled again", registers }).inc(snap.jobs.retries);
    new Counter({ name: "ketter_job_reclaims_total", help: "Jobs taken back from a worker whose lease expired", registers }).inc(snap.jobs.reclaims);
  }
  return registry;
}
