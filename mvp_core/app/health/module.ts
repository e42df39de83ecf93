/** GET /health: database and Redis reachability, queue depth, live workers, and each site's. Public (no token). */
import { Elysia } from "elysia";
import { z } from "zod";
import type { AppDeps } from "../deps.ts";
import { doc, responses } from "../openapi.ts";
import { examples as siteExamples, QueueDepthView, SiteView } from "../sites/schemas.ts";
import { siteOverview } from "../sites/service.ts";

const CHECK_TIMEOUT_MS = 2_000;

const Probe = z.object({ ok: z.boolean(), latencyMs: z.number(), error: z.string().optional() });

/** The /health answer (the DKU reads it; keep the field names). */
export const HealthView = z.object({
  status: z.enum(["ok", "degraded"]),
  database: Probe,
  redis: Probe,
  queue: z.object({ pending: z.number().int(), processing: z.number().int() }),
  workers: z.object({ live: z.number().int(), ids: z.array(z.string()) }),
  sites: z.array(SiteView).meta({ description: "every site with its live workers and queue depths (empty when Redis is unreachable)" }),
  anySite: QueueDepthView.meta({ description: "the queue of jobs any site may run (both ends sftp)" }),
  version: z.string(),
});
export type HealthView = z.infer<typeof HealthView>;

async function probe(what: string, fn: () => Promise<unknown>): Promise<z.infer<typeof Probe>> {
  const t0 = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const pending = fn();
  // A late failure after the deadline was already reported as a timeout.
  pending.catch(() => undefined);
  try {
    await Promise.race([pending, new Promise((_, rej) => (timer = setTimeout(() => rej(new Error(`${what} did not answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS)))]);
    return { ok: true, latencyMs: Math.round((performance.now() - t0) * 10) / 10 };
  } catch (err) {
    return { ok: false, latencyMs: Math.round((performance.now() - t0) * 10) / 10, error: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}

/** Builds the health report; never throws (a failing dependency makes it "degraded"). */
export async function healthReport(deps: AppDeps): Promise<HealthView> {
  const [database, redis] = await Promise.all([probe("Postgres", () => deps.sql`select 1`), probe("Redis", deps.pingRedis)]);
  let queue = { pending: 0, processing: 0 };
  let workers = { live: 0, ids: [] as string[] };
  let sites: HealthView["sites"] = [];
  let anySite = { pending: 0, processing: 0, delayed: 0 };
  if (redis.ok) {
    try {
      // When Postgres just failed its probe, the list comes from Redis alone rather than wait on it again.
      ({ sites, anySite } = await siteOverview(deps, { postgres: database.ok }));
      const all = [...sites.map((s) => s.queue), anySite];
      queue = { pending: sum(all.map((q) => q.pending)), processing: sum(all.map((q) => q.processing)) };
      const ids = sites.flatMap((s) => s.workers.map((w) => w.id));
      workers = { live: ids.length, ids };
    } catch (err) {
      redis.ok = false;
      redis.error = `queue and workers: ${String(err)}`;
    }
  }
  return { status: database.ok && redis.ok ? "ok" : "degraded", database, redis, queue, workers, sites, anySite, version: deps.version };
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

const example: HealthView = {
  status: "ok", database: { ok: true, latencyMs: 0.8 }, redis: { ok: true, latencyMs: 0.4 },
  queue: { pending: 4, processing: 2 }, workers: { live: 1, ids: ["lab-1:4242:k3x9q1"] }, ...siteExamples.sites, version: "3.0.0",
};

/** The health feature module. */
export function healthModule(deps: AppDeps) {
  return new Elysia({ name: "health" }).get(
    "/health",
    async ({ set }) => {
      const report = await healthReport(deps);
      set.status = report.status === "ok" ? 200 : 503;
      return report;
    },
    {
      response: responses(
        { 200: { description: "Healthy", schema: HealthView, example }, 503: { description: "Degraded", schema: HealthView, example: { ...example, status: "degraded", redis: { ok: false, latencyMs: 2000, error: "Redis did not answer within 2000 ms" } } } },
        [],
        { public: true },
      ),
      detail: doc({ summary: "Health", description: "200 when Postgres and Redis answer, 503 (same body) when either does not.", tags: ["health"], operationId: "health", public: true }),
    },
  );
}
