/**
 * `bun run bench:jobs [--jobs 2000] [--concurrency 32] [--workers 2] [--worker-concurrency 8] [--wrk-seconds 5] [--sites 1,2] [--rounds 2]`
 *
 * Jobs through the whole system, per site layout (`--sites`, default both, in the same run, in
 * interleaved rounds — 1 2, 2 1, … — whose medians are reported, so a load drift on a shared
 * machine does not favour one layout):
 * starts its own Postgres and Redis (testing/services.ts, or KETTER_TEST_DATABASE_URL /
 * KETTER_TEST_REDIS_URL), the API (`bun run api`) and `--workers` worker processes (`bun run
 * worker`) as separate processes — all at one site, or spread over two sites (KETTER_SITE), each
 * with its own pair of local portals and half of the jobs — then
 *   1. submits N tiny copy jobs through POST /jobs from `concurrency` clients while the workers run
 *      (submissions/s),
 *   2. waits for all to be DONE (completed jobs/s; submit → DONE latency from Postgres's own
 *      created_at / finished_at, so no client polling skews it),
 *      — with N jobs arriving faster than they complete this is mostly time spent waiting in line,
 *   3. loads GET /jobs/{id} over random ids with wrk (requests/s),
 *   4. runs 50 jobs one at a time for the latency without a backlog.
 * Both layouts run the same number of worker processes, so the comparison is the routing's cost.
 * Prints a table and writes docs/bench/jobs-<ts>.json and jobs-latest.json. Not a test.
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

const USAGE = `usage: bun run bench:jobs [--jobs 2000] [--concurrency 32] [--workers 2] [--worker-concurrency 8] [--wrk-seconds 5] [--sites 1,2] [--rounds 2] [--help | --version]
Jobs through its own Postgres, Redis, API and workers, with the workers at one site or spread over
two (--sites), in interleaved rounds: submissions/s, completions/s, submit → DONE latency,
GET /jobs/{id} req/s (needs wrk); prints a table and writes docs/bench/jobs-latest.json.
exit status: 0 done, 1 failed, 2 bad flags, 130/143 interrupted (its processes and servers stopped first)`;

const answered = answerHelpOrVersion("ketter-bench-jobs", USAGE, process.argv.slice(2));
if (answered !== null) process.exit(answered);
const args = (() => {
  try {
    return parseArgs({
      options: {
        jobs: { type: "string", default: "2000" },
        concurrency: { type: "string", default: "32" },
        workers: { type: "string", default: "2" },
        "worker-concurrency": { type: "string", default: "8" },
        "wrk-seconds": { type: "string", default: "5" },
        sites: { type: "string", default: "1,2" },
        rounds: { type: "string", default: "2" },
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
const LAYOUTS = args.sites.split(",").map(Number);
const ROUNDS = Number(args.rounds);
const IDLE_JOBS = 50;
if (LAYOUTS.some((n) => !Number.isInteger(n) || n < 1 || n > WORKERS)) {
  console.error(`--sites: each layout must be 1..--workers (${WORKERS}) sites, got ${args.sites}\n${USAGE}`);
  process.exit(2);
}

const procs: Subprocess[] = [];

function spawn(script: string, env: Record<string, string>): Subprocess<"ignore", "ignore", "pipe"> {
  const p = Bun.spawn(["bun", script], { cwd: REPO, env: { ...process.env, ...env }, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  procs.push(p);
  return p;
}

async function stopAll(): Promise<void> {
  for (const p of procs) p.kill("SIGTERM");
  await Promise.all(procs.splice(0).map((p) => p.exited));
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

/** A site's pair of local portals (its own folders), which its jobs copy between. */
interface SitePortals {
  site: string;
  src: string;
  srcId: string;
  dstId: string;
}

/** The stack of one layout: a fresh database and key prefix, the API, the workers spread over `sites` sites. */
async function startStack(sites: string[], work: string): Promise<{ base: string; databaseUrl: string; portals: SitePortals[]; api: Subprocess<"ignore", "ignore", "pipe"> }> {
  const databaseUrl = await createEmptyDatabase();
  await migrateUp(databaseUrl);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = {
    NODE_ENV: "test",
    DATABASE_URL: databaseUrl,
    REDIS_URL: await testRedisUrl(),
    REDIS_KEY_PREFIX: `bench:${process.pid}:${sites.length}:`,
    KETTER_SECRET_KEY: "11".repeat(32),
    KETTER_SITE: sites[0]!,
    LOG_LEVEL: "warn",
    API_HOST: "127.0.0.1",
    API_PORT: String(port),
    DATABASE_POOL_MAX: "16",
  };
  const api = spawn("mvp_core/app/main.ts", env);
  await waitFor(async () => (await fetch(`${base}/health`)).ok, { what: "the API", timeoutMs: 30_000 });
  for (let i = 0; i < WORKERS; i++) {
    spawn("mvp_core/worker/main.ts", { ...env, KETTER_SITE: sites[i % sites.length]!, WORKER_CONCURRENCY: String(WORKER_CONCURRENCY), DATABASE_POOL_MAX: "8" });
  }
  await waitFor(async () => ((await (await fetch(`${base}/health`)).json()) as { workers: { live: number } }).workers.live === WORKERS, { what: "the workers", timeoutMs: 30_000 });

  const portals: SitePortals[] = [];
  for (const site of sites) {
    const [src, dst] = [path.join(work, site, "src"), path.join(work, site, "dst")];
    await mkdir(src, { recursive: true });
    await mkdir(dst, { recursive: true });
    const a = await postJson(`${base}/portals`, { kind: "local", name: `bench-src-${site}`, rootPath: src, site });
    const b = await postJson(`${base}/portals`, { kind: "local", name: `bench-dst-${site}`, rootPath: dst, site });
    if (a.status !== 201 || b.status !== 201) throw new Error(`could not create the portals of ${site}`);
    portals.push({ site, src, srcId: a.json.id, dstId: b.json.id });
  }
  return { base, databaseUrl, portals, api };
}

/** Runs the four measurements with the workers spread over `siteCount` sites. */
async function runLayout(siteCount: number) {
  const sites = Array.from({ length: siteCount }, (_, i) => `bench-site-${String.fromCharCode(97 + i)}`);
  const work = await mkdtemp(path.join(os.tmpdir(), "ketter-bench-jobs-"));
  try {
    const { base, databaseUrl, portals, api } = await startStack(sites, work);
    // Job i belongs to site i mod sites, so every site gets the same share.
    const siteOf = (i: number) => portals[i % portals.length]!;
    await Promise.all(Array.from({ length: N }, (_, i) => writeFile(path.join(siteOf(i).src, `clip_${i}.bin`), `tiny clip ${i}\n`.repeat(8))));
    const body = (i: number, name: string) => ({ type: "copy", source: { portal: siteOf(i).srcId, path: name }, target: { portal: siteOf(i).dstId, path: name }, options: { verify: "size" } });

    // 1. Submissions, with the workers already consuming.
    const ids: string[] = new Array(N);
    let next = 0;
    let failures = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < N) {
          const i = next++;
          const r = await postJson(`${base}/jobs`, body(i, `clip_${i}.bin`));
          if (r.status !== 201) failures++;
          ids[i] = r.json.id;
        }
      }),
    );
    const submitSeconds = (performance.now() - t0) / 1000;

    // 2. Completion, measured by Postgres's own clock; each job must have run at its own site.
    const sql = connectDb(databaseUrl, { max: 1 });
    let stats: { done: number; failed: number; wrong_site: number; first_created: Date; last_finished: Date | null; lat: number[] } | undefined;
    try {
      await waitFor(async () => {
        const [row] = await sql<{ open: number }[]>`select count(*)::int as open from jobs where status not in ('DONE', 'DONE_WITH_ERRORS', 'FAILED', 'CANCELLED')`;
        return row!.open === 0;
      }, { what: "every job to finish", timeoutMs: 600_000, intervalMs: 200 });
      const [s] = await sql<NonNullable<typeof stats>[]>`
        select count(*) filter (where status = 'DONE')::int as done, count(*) filter (where status <> 'DONE')::int as failed,
               (select count(*)::int from job_events e join jobs j on j.id = e.job_id where e.kind = 'started' and e.data->>'site' is distinct from j.site) as wrong_site,
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

    // 4. Latency without a backlog: one job at a time (sites in turn), watched from the client (polling every 5 ms).
    const idle: number[] = [];
    for (let i = 0; i < IDLE_JOBS; i++) {
      await writeFile(path.join(siteOf(i).src, `idle_${i}.bin`), "idle clip\n");
      const t = performance.now();
      const r = await postJson(`${base}/jobs`, body(i, `idle_${i}.bin`));
      await waitFor(async () => ((await (await fetch(`${base}/jobs/${r.json.id}`)).json()) as { status: string }).status === "DONE", { what: `idle job ${i}`, timeoutMs: 30_000, intervalMs: 5 });
      idle.push(performance.now() - t);
    }
    idle.sort((x, y) => x - y);
    if (api.exitCode !== null) throw new Error(`the API exited early: ${await new Response(api.stderr).text()}`);
    return {
      sites,
      submissions: { seconds: submitSeconds, perSecond: N / submitSeconds, non201: failures },
      completion: { done: stats!.done, notDone: stats!.failed, startedAtWrongSite: stats!.wrong_site, seconds: completeSeconds, perSecond: stats!.done / completeSeconds, p50Ms: percentile(lat, 50), p99Ms: percentile(lat, 99) },
      idleLatency: { jobs: IDLE_JOBS, p50Ms: percentile(idle, 50), p99Ms: percentile(idle, 99) },
      getJob: { rps: wrk.rps, p50Ms: wrk.p50Ms, p99Ms: wrk.p99Ms, errors: wrk.errors },
    };
  } finally {
    await stopAll();
    await rm(work, { recursive: true, force: true });
  }
}

type Run = Awaited<ReturnType<typeof runLayout>>;

/** A layout's figures: the median of each over its rounds, and the rounds themselves. */
function summarise(runs: Run[]) {
  const median = (f: (r: Run) => number) => {
    const xs = runs.map(f).sort((a, b) => a - b);
    const mid = Math.floor(xs.length / 2);
    return xs.length % 2 ? xs[mid]! : (xs[mid - 1]! + xs[mid]!) / 2;
  };
  const total = (f: (r: Run) => number) => runs.reduce((n, r) => n + f(r), 0);
  return {
    sites: runs[0]!.sites,
    submissionsPerSec: median((r) => r.submissions.perSecond),
    completionsPerSec: median((r) => r.completion.perSecond),
    submitToDoneP50Ms: median((r) => r.completion.p50Ms),
    submitToDoneP99Ms: median((r) => r.completion.p99Ms),
    idleP50Ms: median((r) => r.idleLatency.p50Ms),
    idleP99Ms: median((r) => r.idleLatency.p99Ms),
    getJobRps: median((r) => r.getJob.rps),
    getJobP99Ms: median((r) => r.getJob.p99Ms),
    bad: { notDone: total((r) => r.completion.notDone), startedAtWrongSite: total((r) => r.completion.startedAtWrongSite), non201: total((r) => r.submissions.non201), wrkErrors: total((r) => r.getJob.errors) },
    rounds: runs,
  };
}

type Layout = ReturnType<typeof summarise>;

function printTable(layouts: Layout[]): void {
  const col = (l: Layout) => `${l.sites.length} site${l.sites.length > 1 ? "s" : ""}`;
  const ok = (v: number, t: number) => (v >= t ? "ok" : "BELOW");
  const row = (metric: string, value: (l: Layout) => string, target = "", verdict: (l: Layout) => string = () => "") =>
    Object.fromEntries([["metric", metric], ...layouts.map((l) => [col(l), value(l)]), ["target", target], ["verdict", layouts.map(verdict).filter(Boolean).join(" / ")]]);
  const bad = (l: Layout) => l.bad.notDone + l.bad.startedAtWrongSite + l.bad.non201 + l.bad.wrkErrors;
  console.table([
    row("submissions/s (POST /jobs)", (l) => l.submissionsPerSec.toFixed(0), `≥ ${TARGETS.submissionsPerSec}`, (l) => ok(l.submissionsPerSec, TARGETS.submissionsPerSec)),
    row("completed jobs/s", (l) => l.completionsPerSec.toFixed(0), `≥ ${TARGETS.completedPerSec}`, (l) => ok(l.completionsPerSec, TARGETS.completedPerSec)),
    row("submit → DONE p50 / p99 (ms)", (l) => `${l.submitToDoneP50Ms.toFixed(0)} / ${l.submitToDoneP99Ms.toFixed(0)}`),
    row(`idle submit → DONE p50 / p99 (ms, ${IDLE_JOBS} jobs one at a time)`, (l) => `${l.idleP50Ms.toFixed(0)} / ${l.idleP99Ms.toFixed(0)}`),
    row("GET /jobs/{id} req/s (wrk -c64)", (l) => l.getJobRps.toFixed(0), `≥ ${TARGETS.getJobRps}`, (l) => ok(l.getJobRps, TARGETS.getJobRps)),
    row("GET /jobs/{id} p99 (ms)", (l) => l.getJobP99Ms.toFixed(1)),
    row(
      "jobs not DONE / started at a wrong site / non-201 / wrk errors (all rounds)",
      (l) => `${l.bad.notDone} / ${l.bad.startedAtWrongSite} / ${l.bad.non201} / ${l.bad.wrkErrors}`,
      "0 / 0 / 0 / 0",
      (l) => (bad(l) === 0 ? "ok" : "BAD"),
    ),
  ]);
}

async function main(): Promise<void> {
  if (Bun.spawnSync(["which", "wrk"]).exitCode !== 0) throw new Error("wrk not found (apt-get install wrk)");
  try {
    const runs = new Map<number, Run[]>(LAYOUTS.map((n) => [n, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const n of round % 2 === 0 ? LAYOUTS : [...LAYOUTS].reverse()) {
        const run = await runLayout(n);
        runs.get(n)!.push(run);
        console.log(`round ${round + 1}, ${n} site(s): ${run.submissions.perSecond.toFixed(0)} submissions/s, ${run.completion.perSecond.toFixed(0)} completions/s`);
      }
    }
    const layouts = LAYOUTS.map((n) => summarise(runs.get(n)!));
    const [one, two] = [layouts.find((l) => l.sites.length === 1), layouts.find((l) => l.sites.length === 2)];
    // Two sites against one, same run, same worker processes: what routing costs (≥ 1 = nothing).
    const ratios = one && two ? { submissions: two.submissionsPerSec / one.submissionsPerSec, completions: two.completionsPerSec / one.completionsPerSec } : null;
    const result = {
      at: new Date().toISOString(),
      host: { ...machineInfo(), loadAverage: os.loadavg() },
      params: { jobs: N, concurrency: CONCURRENCY, workers: WORKERS, workerConcurrency: WORKER_CONCURRENCY, wrkSeconds: WRK_SECONDS, sites: LAYOUTS, rounds: ROUNDS },
      layouts,
      twoSitesOverOne: ratios,
      targets: TARGETS,
    };
    console.log(`\nbench:jobs — ${N} tiny local copy jobs per run, ${WORKERS} worker process(es) × ${WORKER_CONCURRENCY} spread over the sites, ${CONCURRENCY} submitting clients, medians of ${ROUNDS} interleaved round(s), ${result.host.cpus} CPUs, load average ${result.host.loadAverage.map((x) => x.toFixed(1)).join(" ")}\n`);
    printTable(layouts);
    if (ratios) console.log(`two sites / one site: submissions ×${ratios.submissions.toFixed(2)}, completions ×${ratios.completions.toFixed(2)}`);
    process.stdout.write(`wrote ${saveResults("jobs", result.at, result)}\n`);
  } finally {
    await stopAll();
    await stopTestServices();
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
