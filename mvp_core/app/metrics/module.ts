/**
 * GET /metrics: Prometheus text format, public like /health (Prometheus scrapes without
 * credentials by convention; only totals, never an id, path or name). Every figure is read from
 * Postgres and Redis at the scrape, so any API instance answers the same (registry.ts).
 */
import { Elysia } from "elysia";
import { Registry } from "prom-client";
import { z } from "zod";
import { jobStats } from "../../jobs/stats.ts";
import type { AppDeps } from "../deps.ts";
import { doc, responses } from "../openapi.ts";
import { metricsRegistry, type MetricsSnapshot } from "./registry.ts";

/** Reads one snapshot; a source that fails is left out (null), logged, and reported as down. */
async function snapshot(deps: AppDeps): Promise<MetricsSnapshot> {
  const [jobs, queue, workers] = await Promise.allSettled([jobStats(deps.sql), deps.queue.depth(), deps.queue.liveWorkers()]);
  const value = <T>(what: string, r: PromiseSettledResult<T>): T | null => {
    if (r.status === "fulfilled") return r.value;
    deps.log.warn(`metrics: reading ${what} failed`, { error: r.reason });
    return null;
  };
  return { version: deps.version, jobs: value("job figures", jobs), queue: value("queue depth", queue), workers: value("worker heartbeats", workers) };
}

const example = `# HELP ketter_jobs Jobs in Postgres by status
# TYPE ketter_jobs gauge
ketter_jobs{status="QUEUED"} 3
ketter_jobs{status="DONE"} 118
`;

/** The metrics feature module. */
export function metricsModule(deps: AppDeps) {
  return new Elysia({ name: "metrics" }).get(
    "/metrics",
    async () => {
      const registry = metricsRegistry(await snapshot(deps));
      return new Response(await registry.metrics(), { headers: { "content-type": Registry.PROMETHEUS_CONTENT_TYPE } });
    },
    {
      response: responses({ 200: { description: "Prometheus text format (version 0.0.4)", schema: z.string(), example } }, [], { public: true }),
      detail: doc({
        summary: "Metrics for Prometheus",
        description:
          "Queue depth per state, live workers, jobs by status, job durations (histogram), bytes and files moved by direction and strategy, retries and reclaims — read from Postgres and Redis at each scrape. No token needed. `ketter_source_up` says whether each source could be read.",
        tags: ["health"], operationId: "metrics", public: true,
      }),
    },
  );
}
