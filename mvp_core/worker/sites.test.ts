// Several sites: real worker processes (`bun mvp_core/worker/main.ts`) with different KETTER_SITE
// values on one Postgres and one Redis. Each job runs at its site, a site without a live worker
// holds its jobs (and says so) while the other site goes on, and Redis losing everything puts each
// job back on its own site's list. The site rules depend on every site ever seen, so this file owns
// its database; the FLUSHALL test owns its Redis too.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { HealthView } from "../app/health/module.ts";
import type { JobView } from "../app/jobs/schemas.ts";
import { apiFixture } from "../app/test_support.ts";
import { migrateUp } from "../db/migrate.ts";
import type { JobRow } from "../jobs/types.ts";
import type { PortalRow } from "../portals/repository.ts";
import { waitFor } from "../testing/ports.ts";
import { startRedisServer } from "../testing/redis_server.ts";
import { createEmptyDatabase } from "../testing/services.ts";
import { startSshd, type TestSshd } from "../testing/sshd.ts";
import { Scenario, sameBytes } from "./test_support.ts";

const T = 90_000;
const A = "site-a";
const B = "site-b";
let databaseUrl: string;
let sshd: TestSshd;
let scenario: Scenario | undefined;

beforeAll(async () => {
  [databaseUrl, sshd] = await Promise.all([createEmptyDatabase().then(async (url) => (await migrateUp(url), url)), startSshd()]);
}, T);
afterAll(async () => {
  await sshd?.stop();
});
afterEach(async () => {
  await scenario?.clean();
  scenario = undefined;
});

/** A scenario on this file's database whose own portals (src/, dst/) are at site A. */
async function setup(name: string, redisUrl?: string): Promise<Scenario> {
  scenario = await new Scenario(name, { databaseUrl, site: A, ...(redisUrl ? { redisUrl } : {}) }).setup();
  return scenario;
}

/** Writes `bytes` random bytes at `rel` inside a portal's root. */
async function writeAt(portal: PortalRow, rel: string, bytes: number): Promise<void> {
  const data = new Uint8Array(bytes);
  for (let off = 0; off < bytes; off += 65_536) crypto.getRandomValues(data.subarray(off, Math.min(bytes, off + 65_536)));
  await mkdir(path.dirname(path.join(portal.root_path, rel)), { recursive: true });
  await Bun.write(path.join(portal.root_path, rel), data);
}

/** The id of the live worker of `site`, once its heartbeat is there. */
async function liveWorkerOf(s: Scenario, site: string, other: () => string = () => ""): Promise<string> {
  let id: string | undefined;
  await waitFor(async () => (id = (await s.queue.liveWorkers()).find((w) => w.site === site)?.id) !== undefined, { what: `a live worker of ${site} (${other().slice(-2000)})`, timeoutMs: 30_000 });
  return id!;
}

/** The `started` and `done` events' worker and site. */
async function ranBy(s: Scenario, jobId: string): Promise<Array<[string, unknown, unknown]>> {
  return (await s.events(jobId)).filter((e) => e.kind === "started" || e.kind === "done").map((e) => [e.kind, e.data.workerId, e.data.site]);
}

describe("worker: sites", () => {
  test("two worker processes of two sites: each site's jobs run on its own worker, any-site jobs on either; events name worker and site", async () => {
    const s = await setup("two-sites");
    const [bSrc, bDst] = [await s.localPortal("b-src", B), await s.localPortal("b-dst", B)];
    const [wa, wb] = [await s.spawnWorker({ KETTER_SITE: A }), await s.spawnWorker({ KETTER_SITE: B })];
    const [idA, idB] = [await liveWorkerOf(s, A, wa.output), await liveWorkerOf(s, B, wb.output)];

    const onA: JobRow[] = [];
    const onB: JobRow[] = [];
    for (let i = 0; i < 4; i++) {
      await s.writeSource(`a${i}.mov`, 40_000 + i);
      await writeAt(bSrc, `b${i}.mov`, 50_000 + i);
      onA.push(await s.job(`a${i}.mov`, `a${i}.mov`));
      onB.push(await s.job(`b${i}.mov`, `b${i}.mov`, { source: bSrc, target: bDst }));
    }
    // Between two sftp portals: no site's disk involved, so either site may run it.
    const [sftpIn, sftpOut] = [await s.sftpPortal(sshd), await s.sftpPortal(sshd)];
    const anyName = `any-${crypto.randomUUID()}.mov`;
    await writeAt(sftpIn, anyName, 30_000);
    const anyJob = await s.job(anyName, `copied-${anyName}`, { source: sftpIn, target: sftpOut });
    expect([onA[0]!.site, onB[0]!.site, anyJob.site]).toEqual([A, B, null]);

    for (const job of onA) {
      const done = await s.waitForStatus(job.id, "DONE", 30_000, wa.output);
      expect(done.worker_id).toBe(idA);
      expect(await ranBy(s, job.id)).toEqual([["started", idA, A], ["done", idA, A]]);
      expect(await sameBytes(s.path("src", job.source_path), s.path("dst", job.target_path))).toBe(true);
    }
    for (const job of onB) {
      const done = await s.waitForStatus(job.id, "DONE", 30_000, wb.output);
      expect(done.worker_id).toBe(idB);
      expect(await ranBy(s, job.id)).toEqual([["started", idB, B], ["done", idB, B]]);
      expect(await sameBytes(path.join(bSrc.root_path, job.source_path), path.join(bDst.root_path, job.target_path))).toBe(true);
    }
    const anyDone = await s.waitForStatus(anyJob.id, "DONE", 30_000);
    const [started] = await ranBy(s, anyJob.id);
    expect([idA, idB]).toContain(anyDone.worker_id!);
    expect(started).toEqual(["started", anyDone.worker_id, anyDone.worker_id === idA ? A : B]);
    expect(await sameBytes(path.join(sshd.root, anyName), path.join(sshd.root, `copied-${anyName}`))).toBe(true);
  }, T);

  test("a site's only worker killed mid-job: its jobs wait (and say why) while the other site's run; a worker of that site completes them", async () => {
    const s = await setup("site-down");
    const [bSrc, bDst] = [await s.localPortal("b-src", B), await s.localPortal("b-dst", B)];
    const api = await apiFixture({ sql: s.sql, queue: s.queue });
    try {
      // 1 MiB/s at site A: its job is surely mid-copy when A's worker is killed.
      const wa = await s.spawnWorker({ KETTER_SITE: A, WORKER_MAX_BYTES_PER_SEC: String(1024 * 1024) });
      const wb = await s.spawnWorker({ KETTER_SITE: B });
      const [deadId] = [await liveWorkerOf(s, A, wa.output), await liveWorkerOf(s, B, wb.output)];
      await s.writeSource("big.mov", 6 * 1024 * 1024);
      const big = await s.job("big.mov", "big.mov");
      await s.waitForJob(big.id, "bytes to flow at site A", (r) => r.status === "RUNNING" && r.bytes_done > 0, 20_000, wa.output);
      wa.proc.kill("SIGKILL");
      await wa.proc.exited;

      // Site B's reaper takes the job back — onto A's list, where B never looks.
      await s.waitForJob(big.id, "the killed worker's job to be reclaimed", (r) => r.status === "QUEUED", 20_000, wb.output);
      await waitFor(async () => !(await s.queue.liveWorkers()).some((w) => w.site === A), { what: "site A's heartbeat to expire", timeoutMs: 10_000 });
      await s.writeSource("small.mov", 20_000);
      const small = await s.job("small.mov", "small.mov");
      const bJobs: JobRow[] = [];
      for (let i = 0; i < 3; i++) {
        await writeAt(bSrc, `b${i}.mov`, 30_000);
        bJobs.push(await s.job(`b${i}.mov`, `b${i}.mov`, { source: bSrc, target: bDst }));
      }
      for (const job of bJobs) expect((await s.waitForStatus(job.id, "DONE", 30_000, wb.output)).worker_id).not.toBe(deadId);
      // Site B ran all its jobs and reconciled meanwhile; A's jobs are still where they belong.
      for (const id of [big.id, small.id]) {
        const row = await s.row(id);
        expect(row.status).toBe("QUEUED");
        expect(await s.redis.lrange(s.queue.pendingKey(A), 0, -1)).toContain(id);
        const view = (await api.call<JobView>("GET", `/jobs/${id}`)).json;
        expect(view.site).toBe(A);
        expect(view.waitingFor).toContain(`no live worker for site ${A}`);
      }
      expect((await s.row(small.id)).attempts).toBe(0);
      expect(await s.kinds(big.id)).toContain("reclaimed");
      expect(await s.redis.llen(s.queue.pendingKey(B))).toBe(0);
      const health = (await api.call<HealthView>("GET", "/health")).json;
      expect(health.sites.find((x) => x.name === A)).toMatchObject({ live: 0, queue: { pending: 2 } });
      expect(health.sites.find((x) => x.name === B)).toMatchObject({ live: 1 });

      // A worker of site A comes back and finishes both, with every byte.
      const back = await s.spawnWorker({ KETTER_SITE: A });
      const backId = await liveWorkerOf(s, A, back.output);
      for (const job of [big, small]) {
        const done = await s.waitForStatus(job.id, "DONE", 30_000, back.output);
        expect(done.worker_id).toBe(backId);
        expect(await sameBytes(s.path("src", job.source_path), s.path("dst", job.target_path))).toBe(true);
        expect((await ranBy(s, job.id)).at(-1)).toEqual(["done", backId, A]);
      }
      expect((await s.row(big.id)).attempts).toBe(2);
    } finally {
      await api.close();
    }
  }, T);

  test("after FLUSHALL the reconciler puts each job back on its own site's list: a worker of one site runs only its own", async () => {
    const server = await startRedisServer();
    try {
      const s = await setup("flushall", server.url);
      const [bSrc, bDst] = [await s.localPortal("b-src", B), await s.localPortal("b-dst", B)];
      await s.writeSource("a.mov", 30_000);
      await writeAt(bSrc, "b.mov", 30_000);
      const onA = await s.job("a.mov", "a.mov");
      const onB = await s.job("b.mov", "b.mov", { source: bSrc, target: bDst });
      expect(await s.queue.depth()).toMatchObject({ pending: 2 });
      await s.redis.flushall();
      expect(await s.queue.depth()).toEqual({ pending: 0, processing: 0, delayed: 0 });

      // Only site B's worker runs: its reconciler restores both jobs, each onto its own site's list.
      const wb = await s.spawnWorker({ KETTER_SITE: B });
      const idB = await liveWorkerOf(s, B, wb.output);
      expect((await s.waitForStatus(onB.id, "DONE", 30_000, wb.output)).worker_id).toBe(idB);
      await waitFor(async () => (await s.redis.lrange(s.queue.pendingKey(A), 0, -1)).includes(onA.id), { what: "A's job back on A's list", timeoutMs: 10_000 });
      expect((await s.row(onA.id)).status).toBe("QUEUED");
      expect(wb.output()).toContain("reconciler re-enqueued a QUEUED job missing from its site's list");

      const wa = await s.spawnWorker({ KETTER_SITE: A });
      const idA = await liveWorkerOf(s, A, wa.output);
      expect((await s.waitForStatus(onA.id, "DONE", 30_000, wa.output)).worker_id).toBe(idA);
      expect(await sameBytes(s.path("src/a.mov"), s.path("dst/a.mov"))).toBe(true);
      expect(await sameBytes(path.join(bSrc.root_path, "b.mov"), path.join(bDst.root_path, "b.mov"))).toBe(true);
      for (const id of [onA.id, onB.id]) expect((await s.kinds(id)).filter((k) => k === "done")).toHaveLength(1);
      await s.clean();
      scenario = undefined;
    } finally {
      await server.stop();
    }
  }, T);
});
