// GET /metrics on the real API, Postgres, Redis and an in-process worker: scraped and parsed with a
// Prometheus text-format parser. The test database is shared with other test files, so figures
// about jobs are compared before and after this test's own jobs; Redis figures are this test's own
// key prefix, so they are compared as they are.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import parsePrometheusTextFormat, { type PromFamily } from "parse-prometheus-text-format";
import { claimJob, reclaimJob, scheduleRetry } from "../../jobs/lifecycle.ts";
import { openPortalEndpoint } from "../../portals/endpoints.ts";
import { waitFor } from "../../testing/ports.ts";
import { testRedisUrl, uniqueId } from "../../testing/services.ts";
import { transfer } from "../../transfer_engine/index.ts";
import { FAST } from "../../worker/test_support.ts";
import { Worker } from "../../worker/worker.ts";
import type { JobView } from "../jobs/schemas.ts";
import type { PortalView } from "../portals/schemas.ts";
import { apiFixture, type ApiFixture } from "../test_support.ts";

const TOKEN = "metrics-test-token-0123456789";
let f: ApiFixture;
beforeAll(async () => {
  f = await apiFixture({ apiToken: TOKEN });
});
afterAll(() => f.close());

/** Scrapes without a token (Prometheus's default) and parses the answer. */
async function scrape(): Promise<{ families: PromFamily[]; contentType: string | null }> {
  const r = await f.app.handle(new Request("http://localhost/metrics"));
  expect(r.status).toBe(200);
  return { families: parsePrometheusTextFormat(await r.text()), contentType: r.headers.get("content-type") };
}

/** The value of `name` whose labels include `labels` (0 when absent, as a counter not yet seen). */
function value(families: PromFamily[], name: string, labels: Record<string, string> = {}): number {
  const family = families.find((m) => m.name === name);
  const sample = family?.metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
  return sample ? Number(sample.value ?? sample.count) : 0;
}

const auth = { authorization: `Bearer ${TOKEN}` };
async function portal(): Promise<PortalView> {
  const r = await f.call<PortalView>("POST", "/portals", { headers: auth, body: { kind: "local", name: `m_${uniqueId()}`, rootPath: await f.tempDir() } });
  expect(r.status).toBe(201);
  return r.json;
}

describe("GET /metrics", () => {
  test("scrapes without a token; jobs, durations, bytes and files, retries, reclaims, queue and workers add up", async () => {
    const before = (await scrape()).families;
    const [a, b] = [await portal(), await portal()];
    await writeFile(join(a.rootPath, "clip.mov"), Buffer.alloc(123_456, 1));

    // One job run to DONE by a real worker.
    const worker = new Worker({
      sql: f.sql, redis: f.redis, redisUrl: await testRedisUrl(), prefix: f.prefix, log: f.deps.log, settings: FAST, site: f.deps.site,
      openEndpoint: (p, signal) => openPortalEndpoint(p, f.deps.secretKey, { signal }), transfer,
    });
    await worker.start();
    const body = (path: string) => ({ type: "copy", source: { portal: a.id, path: "clip.mov" }, target: { portal: b.id, path } });
    const created = await f.call<JobView>("POST", "/jobs", { headers: auth, body: body("clip.mov") });
    let done: JobView | undefined;
    await waitFor(async () => (done = (await f.call<JobView>("GET", `/jobs/${created.json.id}`, { headers: auth })).json).status === "DONE", { what: "the job to be DONE", timeoutMs: 45_000 });
    await worker.close();

    // Two more jobs wait in Redis; one has a retry scheduled, the other is reclaimed from a worker
    // that let its lease lapse (the same verbs the worker and the reaper use).
    const retried = (await f.call<JobView>("POST", "/jobs", { headers: auth, body: body("retried.mov") })).json;
    const reclaimed = (await f.call<JobView>("POST", "/jobs", { headers: auth, body: body("reclaimed.mov") })).json;
    const gone = { id: "gone-worker", site: f.deps.site };
    expect((await claimJob(f.sql, retried.id, gone, 60_000)).claimed).toBe(true);
    expect(await scheduleRetry(f.sql, { jobId: retried.id, worker: gone, attempt: 1 }, { code: "CONNECTION_LOST", message: "reset (test)", retryable: true }, 60_000)).toBe("retry");
    expect((await claimJob(f.sql, reclaimed.id, gone, 1)).claimed).toBe(true);
    await waitFor(async () => (await reclaimJob(f.sql, reclaimed.id, { id: "metrics-test", site: f.deps.site })) === "reclaimed", { what: "the 1 ms lease to lapse" });
    await f.queue.heartbeat({ id: "metrics-test-worker", site: f.deps.site, host: "lab", pid: 1, startedAt: new Date().toISOString(), running: 1, concurrency: 4 }, 60_000);

    const { families: after, contentType } = await scrape();
    expect(contentType).toBe("text/plain; version=0.0.4; charset=utf-8");
    const delta = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);

    expect(value(after, "ketter_source_up", { source: "postgres" })).toBe(1);
    expect(value(after, "ketter_source_up", { source: "redis" })).toBe(1);
    expect([delta("ketter_jobs", { status: "DONE" }), delta("ketter_jobs", { status: "RETRY_WAIT" }), delta("ketter_jobs", { status: "QUEUED" })]).toEqual([1, 1, 1]);
    const moved = { direction: "local_to_local", strategy: done!.strategy! };
    expect(delta("ketter_moved_bytes_total", moved)).toBe(123_456);
    expect(delta("ketter_moved_files_total", moved)).toBe(1);
    expect(delta("ketter_job_retries_total")).toBe(1);
    expect(delta("ketter_job_reclaims_total")).toBe(1);

    // The histogram: one more DONE job, cumulative buckets ending at +Inf = count.
    const histogram = (families: PromFamily[]) => families.find((m) => m.name === "ketter_job_duration_seconds")!;
    expect(histogram(after).type).toBe("HISTOGRAM");
    const [h0, h1] = [histogram(before).metrics[0]!, histogram(after).metrics[0]!];
    expect(Number(h1.count) - Number(h0.count)).toBe(1);
    const counts = Object.entries(h1.buckets!).sort(([x], [y]) => Number(x) - Number(y)).map(([, n]) => Number(n));
    expect(counts).toEqual([...counts].sort((x, y) => x - y));
    expect(Number(h1.buckets!["+Inf"])).toBe(Number(h1.count));
    expect(Number(h1.sum)).toBeGreaterThanOrEqual(Number(h0.sum));

    // Redis figures are this fixture's own prefix: exact.
    expect([value(after, "ketter_queue_jobs", { state: "pending" }), value(after, "ketter_queue_jobs", { state: "processing" })]).toEqual([2, 0]);
    expect(value(after, "ketter_workers_live")).toBe(1);
    expect(value(after, "ketter_worker_slots")).toBe(4);
    expect(value(after, "ketter_worker_jobs_running")).toBe(1);
    expect(value(after, "ketter_info", { version: "test" })).toBe(1);
  }, 90_000);
});
