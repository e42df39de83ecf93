/**
 * `bun run bench:jobs [--jobs 2000] [--concurrency 32] [--workers 1] [--worker-concurrency 8] [--wrk-seconds 10]`
 *
 * Jobs through the whole system: starts its own Postgres and Redis (testing/services.ts, or
 * KETTER_TEST_DATABASE_URL / KETTER_TEST_REDIS_URL), the API (`bun run api`) and worker processes
 * (`bun run worker`) as separate processes, registers two local portals, then
 *   1. submits N tiny copy jobs through POST /jobs from `concurrency` clients while the workers run
 *      (submissions/s),
 *   2. waits for all to be DONE (completed jobs/s; submit → DONE latency from Postgres's own
 *      created_at / finished_at, so no client polling skews it),
 *      — with N jobs arriving faster than they complete this is mostly time spent waiting in line,
 *   3. loads GET /jobs/{id} over random ids with wrk (requests/s),
 *   4. runs 50 jobs one at a time for the latency without a backlog.
 * One worker process (concurrency 8) is the default: on 2 cores a second Bun process costs more
 * CPU than it adds. Prints a table and writes docs/bench/jobs-<ts>.json and jobs-latest.json. Not a test.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { answerHelpOrVersion, onStopSignals, SIGNAL_EXIT } from "../cli/process.ts";
import type { Subprocess } from "bun";
import { connectDb } from "../db/client.ts";
import { migrateUp } from "../db/migrate.ts";
import { freePort, waitFor } from "../testing/ports.ts";
import { createEmptyDatabase, stopTestServices, testRedisUrl } from "../testing/services.ts";
import { machineInfo, saveResults } from "./results.ts";

const REPO = path.resolve(import.meta.dir, "../..");
const TARGETS = { submissionsPerSec: 1000, completedPerSec: 200, getJobRps: 5000 };

const USAGE = `usage: bun run bench:jobs [--jobs 2000] [--concurrency 32] [--workers 1] [--worker-concurrency 8] [--wrk-seconds 10] [--help | --version]
Jobs through its own Postgres, Redis, API and workers: submissions/s, completions/s, submit → DONE
latency, GET /jobs/{id} req/s (needs wrk); prints a table and writes docs/bench/jobs-latest.json.
exit status: 0 done, 1 failed, 2 bad flags, 130/143 interrupted (its processes and servers stopped first)`;

const answered = answerHelpOrVersion("ketter-bench-jobs", USAGE, process.argv.slice(2));
if (answered !== null) process.exit(answered);
const args = (() => {
  try {
    return parseArgs({
      options: {
        jobs: { type: "string", default: "2000" },
        concurrency: { type: "string", default: "32" },
        workers: { type: "string", default: "1" },
        "worker-concurrency": { type: "string", default: "8" },
        "wrk-seconds": { type: "string", default: "10" },
      },
    }).values;
  } catch (err) {
    console.error(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
    process.exit(2);
  }
})();
const N = Number(args.jobs);
const CONCURRENCY = Number(args.concurrency);
const WORKERS = Number(args.workers);
const WORKER_CONCURRENCY = Number(args["worker-concurrency"]);
const WRK_SECONDS = Number(args["wrk-seconds"]);
const IDLE_JOBS = 50;

const procs: Subprocess[] = [];

function spawn(script: string, env: Record<string, string>): Subprocess<"ignore", "ignore", "pipe"> {
  const p = Bun.spawn(["bun", script], { cwd: REPO, env: { ...process.env, ...env }, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  procs.push(p);
  return p;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

async function postJson(url: string, body: unknown): Promise<{ status: number; json: { id: string } }> {
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: r.status, json: (await r.json()) as { id: string } };
}

async function runWrk(url: string, ids: string[], dir: string): Promise<{ rps: number; p50Ms: number; p99Ms: number; errors: number; raw: string }> {
  const script = path.join(dir, "get_job.lua");
  await writeFile(
    script,
    `local ids = {${ids.map((i) => `"${i}"`).join(",")}}
math.randomseed(os.time())
request = function() return wrk.format("GET", "/jobs/" .. ids[math.random(#ids)]) end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %f %f %f %d\\n", summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
`,
  );
  const p = Bun.spawn(["wrk", "-t2", "-c64", `-d${WRK_SECONDS}s`, "--latency", "-s", script, url], { stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
  if (code !== 0) throw new Error(`wrk exited ${code}: ${err}`);
  const m = /RESULT (\S+) (\S+) (\S+) (\d+)/.exec(out);
  if (!m) throw new Error(`no RESULT line from wrk:\n${out}`);
  return { rps: Number(m[1]), p50Ms: Number(m[2]), p99Ms: Number(m[3]), errors: Number(m[4]), raw: out };
}

async function main(): Promise<void> {
  if (Bun.spawnSync(["which", "wrk"]).exitCode !== 0) throw new Error("wrk not found (apt-get install wrk)");
  const work = await mkdtemp(path.join(os.tmpdir(), "ketter-bench-jobs-"));
  try {
    const databaseUrl = await createEmptyDatabase();
    await migrateUp(databaseUrl);
    const redisUrl = await testRedisUrl();
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const env = {
      NODE_ENV: "test",
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: `bench:${process.pid}:`,
      KETTER_SECRET_KEY: "11".repeat(32),
      LOG_LEVEL: "warn",
      API_HOST: "127.0.0.1",
      API_PORT: String(port),
      DATABASE_POOL_MAX: "16",
    };
    const api = spawn("mvp_core/app/main.ts", env);
    await waitFor(async () => (await fetch(`${base}/health`)).ok, { what: "the API", timeoutMs: 30_000 });
    for (let i = 0; i < WORKERS; i++) spawn("mvp_core/worker/main.ts", { ...env, WORKER_CONCURRENCY: String(WORKER_CONCURRENCY), DATABASE_POOL_MAX: "8" });
    await waitFor(async () => ((await (await fetch(`${base}/health`)).json()) as { workers: { live: number } }).workers.live === WORKERS, { what: "the workers", timeoutMs: 30_000 });

    const src = path.join(work, "src");
    const dst = path.join(work, "dst");
    await mkdir(src);
    await mkdir(dst);
    await Promise.all(Array.from({ length: N }, (_, i) => writeFile(path.join(src, `clip_${i}.bin`), `tiny clip ${i}\n`.repeat(8))));
    const a = await postJson(`${base}/portals`, { kind: "local", name: "bench-src", rootPath: src });
    const b = await postJson(`${base}/portals`, { kind: "local", name: "bench-dst", rootPath: dst });
    if (a.status !== 201 || b.status !== 201) throw new Error("could not create the portals");

    // 1. Submissions, with the workers already consuming.
    const ids: string[] = new Array(N);
    let next = 0;
    let failures = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < N) {
          const i = next++;
          const r = await postJson(`${base}/jobs`, { type: "copy", source: { portal: a.json.id, path: `clip_${i}.bin` }, target: { portal: b.json.id, path: `clip_${i}.bin` }, options: { verify: "size" } });
          if (r.status !== 201) failures++;
          ids[i] = r.json.id;
        }
      }),
    );
    const submitSeconds = (performance.now() - t0) / 1000;

    // 2. Completion, measured by Postgres's own clock.
    const sql = connectDb(databaseUrl, { max: 1 });
    let stats: { done: number; failed: number; first_created: Date; last_finished: Date | null; lat: number[] } | undefined;
    try {
      await waitFor(async () => {
        const [row] = await sql<{ open: number }[]>`select count(*)::int as open from jobs where status not in ('DONE', 'FAILED', 'CANCELLED')`;
        return row!.open === 0;
      }, { what: "every job to finish", timeoutMs: 600_000, intervalMs: 200 });
      const [s] = await sql<{ done: number; failed: number; first_created: Date; last_finished: Date | null; lat: number[] }[]>`
        select count(*) filter (where status = 'DONE')::int as done, count(*) filter (where status <> 'DONE')::int as failed,
               min(created_at) as first_created, max(finished_at) as last_finished,
               array_agg(extract(epoch from finished_at - created_at) * 1000 order by 1) as lat
        from jobs`;
      stats = s;
    } finally {
      await sql.end();
    }
    const lat = stats!.lat.map(Number).sort((x, y) => x - y);
    const completeSeconds = (stats!.last_finished!.getTime() - stats!.first_created.getTime()) / 1000;

    // 3. GET /jobs/{id} under load.
    const wrk = await runWrk(base, ids.slice(0, 500), work);

    // 4. Latency without a backlog: one job at a time, watched from the client (polling every 5 ms).
    const idle: number[] = [];
    for (let i = 0; i < IDLE_JOBS; i++) {
      await writeFile(path.join(src, `idle_${i}.bin`), "idle clip\n");
      const t = performance.now();
      const r = await postJson(`${base}/jobs`, { type: "copy", source: { portal: a.json.id, path: `idle_${i}.bin` }, target: { portal: b.json.id, path: `idle_${i}.bin` }, options: { verify: "size" } });
      await waitFor(async () => ((await (await fetch(`${base}/jobs/${r.json.id}`)).json()) as { status: string }).status === "DONE", { what: `idle job ${i}`, timeoutMs: 30_000, intervalMs: 5 });
      idle.push(performance.now() - t);
    }
    idle.sort((x, y) => x - y);

    const result = {
      at: new Date().toISOString(),
      host: machineInfo(),
      params: { jobs: N, concurrency: CONCURRENCY, workers: WORKERS, workerConcurrency: WORKER_CONCURRENCY, wrkSeconds: WRK_SECONDS },
      submissions: { seconds: submitSeconds, perSecond: N / submitSeconds, non201: failures },
      completion: { done: stats!.done, notDone: stats!.failed, seconds: completeSeconds, perSecond: stats!.done / completeSeconds, p50Ms: percentile(lat, 50), p99Ms: percentile(lat, 99) },
      idleLatency: { jobs: IDLE_JOBS, p50Ms: percentile(idle, 50), p99Ms: percentile(idle, 99) },
      getJob: { rps: wrk.rps, p50Ms: wrk.p50Ms, p99Ms: wrk.p99Ms, errors: wrk.errors },
      targets: TARGETS,
    };
    const ok = (v: number, t: number) => (v >= t ? "ok" : "BELOW");
    console.log(`\nbench:jobs — ${N} tiny local copy jobs, ${WORKERS} worker(s) × ${WORKER_CONCURRENCY}, ${CONCURRENCY} submitting clients, ${result.host.cpus} CPUs\n`);
    console.table([
      { metric: "submissions/s (POST /jobs)", value: result.submissions.perSecond.toFixed(0), target: `≥ ${TARGETS.submissionsPerSec}`, verdict: ok(result.submissions.perSecond, TARGETS.submissionsPerSec) },
      { metric: "completed jobs/s", value: result.completion.perSecond.toFixed(0), target: `≥ ${TARGETS.completedPerSec}`, verdict: ok(result.completion.perSecond, TARGETS.completedPerSec) },
      { metric: "submit → DONE p50 (ms)", value: result.completion.p50Ms.toFixed(0), target: "", verdict: "" },
      { metric: "submit → DONE p99 (ms)", value: result.completion.p99Ms.toFixed(0), target: "", verdict: "" },
      { metric: `idle submit → DONE p50 / p99 (ms, ${IDLE_JOBS} jobs one at a time)`, value: `${result.idleLatency.p50Ms.toFixed(0)} / ${result.idleLatency.p99Ms.toFixed(0)}`, target: "", verdict: "" },
      { metric: "GET /jobs/{id} req/s (wrk -c64)", value: result.getJob.rps.toFixed(0), target: `≥ ${TARGETS.getJobRps}`, verdict: ok(result.getJob.rps, TARGETS.getJobRps) },
      { metric: "GET /jobs/{id} p99 (ms)", value: result.getJob.p99Ms.toFixed(1), target: "", verdict: "" },
      { metric: "jobs not DONE / non-201 / wrk errors", value: `${result.completion.notDone} / ${failures} / ${wrk.errors}`, target: "0 / 0 / 0", verdict: result.completion.notDone + failures + wrk.errors === 0 ? "ok" : "BAD" },
    ]);
    process.stdout.write(`wrote ${saveResults("jobs", result.at, result)}\n`);
    if (api.exitCode !== null) throw new Error(`the API exited early: ${await new Response(api.stderr).text()}`);
  } finally {
    for (const p of procs) p.kill("SIGTERM");
    await Promise.all(procs.map((p) => p.exited));
    await stopTestServices();
    await rm(work, { recursive: true, force: true });
  }
}

// Interrupted: stop the API, workers and servers this run started, then leave with 130/143.
onStopSignals((signal) => {
  for (const p of procs) p.kill("SIGTERM");
  void Promise.all(procs.map((p) => p.exited))
    .then(() => stopTestServices())
    .finally(() => process.exit(SIGNAL_EXIT[signal]));
});
main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
