/**
 * `bun run bench:list [--jobs 1000000] [--requests 200]`
 *
 * GET /jobs at a million jobs: starts its own Postgres (testing/services.ts) and Redis, seeds the
 * jobs (testing/seed_jobs.ts: 90 % DONE, 5 % FAILED, 3 % CANCELLED, 1 % QUEUED, 1 % RUNNING over 50
 * portals, one of them retired: used only by the oldest jobs), starts the API (`bun run api`) as its own process, and for every filter combination the
 * list offers — first page and, when there is one, the next page through its cursor — measures
 *   - the API: `requests` sequential GET /jobs after a warm-up, p50 and p99 through HTTP,
 *   - the same SQL statement run by pgbench (the standard Postgres tool), p50 and p99,
 * and prints the ratio API / pgbench (what HTTP, JSON and the driver add). The target: p99
 * under 50 ms for every combination. Prints a table and writes docs/bench/list-<ts>.json and
 * list-latest.json. Not a test.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import type { Subprocess } from "bun";
import postgres from "postgres";
import { connectDb, pgOptions } from "../db/client.ts";
import { jobListStatement, type JobListOptions } from "../jobs/repository.ts";
import type { JobStatus } from "../jobs/types.ts";
import { freePort, waitFor } from "../testing/ports.ts";
import { startRedisServer } from "../testing/redis_server.ts";
import { seedJobs } from "../testing/seed_jobs.ts";
import { createMigratedDatabase, startPostgresServer } from "../testing/services.ts";
import { machineInfo, saveResults } from "./results.ts";

const REPO = path.resolve(import.meta.dir, "../..");
const TARGET_P99_MS = 50;
const PORTALS = 50;
const WARMUP = 20;

const { values: args } = parseArgs({ options: { jobs: { type: "string", default: "1000000" }, requests: { type: "string", default: "200" } } });
const JOBS = Number(args.jobs);
const REQUESTS = Number(args.requests);

interface Combination {
  name: string;
  statuses?: JobStatus[];
  portal?: "busy" | "retired" | "idle";
}

const COMBINATIONS: Combination[] = [
  { name: "no filter" },
  { name: "status=DONE (90 %)", statuses: ["DONE"] },
  { name: "status=QUEUED,RUNNING (1 % each)", statuses: ["QUEUED", "RUNNING"] },
  { name: "status=CANCELLING (none)", statuses: ["CANCELLING"] },
  { name: "status=CANCELLED (3 %, all old)", statuses: ["CANCELLED"] },
  { name: "portal (≈4 % of jobs)", portal: "busy" },
  { name: "retired portal (5 %, all old)", portal: "retired" },
  { name: "portal without jobs", portal: "idle" },
  { name: "portal + status=DONE", portal: "busy", statuses: ["DONE"] },
  { name: "portal + status=RUNNING", portal: "busy", statuses: ["RUNNING"] },
  { name: "portal + status=CANCELLING (none)", portal: "busy", statuses: ["CANCELLING"] },
  { name: "portal + status=QUEUED,RUNNING,RETRY_WAIT", portal: "busy", statuses: ["QUEUED", "RUNNING", "RETRY_WAIT"] },
  { name: "retired portal + status=DONE", portal: "retired", statuses: ["DONE"] },
];

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

function summary(ms: number[]): { p50Ms: number; p99Ms: number } {
  const s = [...ms].sort((a, b) => a - b);
  return { p50Ms: Math.round(percentile(s, 50) * 100) / 100, p99Ms: Math.round(percentile(s, 99) * 100) / 100 };
}

/** The list statement as plain SQL text with its parameters inlined as literals (for pgbench). */
async function statementText(databaseUrl: string, opts: JobListOptions): Promise<string> {
  let captured: { query: string; params: unknown[] } | undefined;
  const db = postgres({ ...pgOptions(databaseUrl, { max: 1 }), debug: (_c: number, query: string, params: unknown[]) => (captured = { query, params }) });
  try {
    await jobListStatement(db, opts);
  } finally {
    await db.end();
  }
  const { query, params } = captured!;
  // From the highest number down, so $1 never eats the start of $12.
  const inlined = params.reduceRight<string>((text, v, i) => text.replaceAll(`$${i + 1}`, `'${String(v).replaceAll("'", "''")}'`), query);
  // pgbench reads ":MI" and ":SS" in the cursor's to_char format as its own variables, even inside
  // a string literal; the same format without a literal colon in it.
  return inlined.replace(/'(YYYY[^']*)'/g, (_m, f: string) => `replace('${f.replaceAll(":", "#")}', '#', chr(58))`).replace(/\s+/g, " ").trim();
}

/** Runs `sqlText` `count` times (after the warm-up) through pgbench (one client, prepared once, as the API's driver does); per-statement latencies in ms. */
async function pgbench(databaseUrl: string, sqlText: string, count: number, work: string): Promise<number[]> {
  const u = new URL(databaseUrl);
  const script = path.join(work, "list.sql");
  await writeFile(script, `${sqlText};\n`);
  const prefix = path.join(work, `pgbench_${Math.random().toString(36).slice(2)}`);
  const p = Bun.spawn(["pgbench", "-n", "-M", "prepared", "-c", "1", "-t", String(WARMUP + count), "-f", script, "-l", `--log-prefix=${prefix}`, "-h", u.hostname, "-p", u.port, "-U", decodeURIComponent(u.username), u.pathname.slice(1)], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  if (code !== 0) throw new Error(`pgbench exited ${code}: ${err}`);
  const logs = (await readdir(work)).filter((f) => path.join(work, f).startsWith(prefix));
  const lines = (await Promise.all(logs.map((f) => readFile(path.join(work, f), "utf8")))).join("").split("\n").filter(Boolean);
  // Log line: client transaction latency_us script epoch_s epoch_us. Warm-up dropped, as for the API.
  return lines.map((l) => l.split(" ")).filter((f) => Number(f[1]) >= WARMUP).map((f) => Number(f[2]) / 1000);
}

async function timeApi(url: string, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < WARMUP + count; i++) {
    const t = performance.now();
    const r = await fetch(url);
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`GET ${url} answered ${r.status}`);
    if (i >= WARMUP) out.push(performance.now() - t);
  }
  return out;
}

async function main(): Promise<void> {
  if (Bun.spawnSync(["which", "pgbench"]).exitCode !== 0) throw new Error("pgbench not found (apt-get install postgresql-contrib or postgresql-client)");
  const work = await mkdtemp(path.join(os.tmpdir(), "ketter-bench-list-"));
  const pg = await startPostgresServer();
  const redis = await startRedisServer();
  let api: Subprocess | undefined;
  try {
    const databaseUrl = await createMigratedDatabase(pg.url);
    const sql = connectDb(databaseUrl, { max: 2 });
    const t0 = performance.now();
    const seeded = await seedJobs(sql, JOBS, PORTALS);
    const seedSeconds = (performance.now() - t0) / 1000;
    const [idleRow] = await sql<{ id: string }[]>`insert into portals (name, kind, root_path) values ('idle', 'local', '/data/idle') returning id`;
    const [sizeRow] = await sql<{ size: string }[]>`select pg_size_pretty(pg_total_relation_size('jobs')) as size`;
    const size = sizeRow!.size;
    await sql.end();
    console.log(`seeded ${JOBS.toLocaleString("en")} jobs in ${seedSeconds.toFixed(1)} s (jobs with indexes: ${size})`);
    const portalOf = { busy: seeded.active[1]!, retired: seeded.retired, idle: idleRow!.id };

    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    api = Bun.spawn(["bun", "mvp_core/app/main.ts"], {
      cwd: REPO,
      env: { ...process.env, NODE_ENV: "test", DATABASE_URL: databaseUrl, REDIS_URL: redis.url, REDIS_KEY_PREFIX: `bench-list:${process.pid}:`, KETTER_SECRET_KEY: "11".repeat(32), LOG_LEVEL: "warn", API_HOST: "127.0.0.1", API_PORT: String(port) },
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
    });
    await waitFor(async () => (await fetch(`${base}/health`)).ok, { what: "the API", timeoutMs: 30_000 });

    const rows: Array<Record<string, unknown>> = [];
    for (const c of COMBINATIONS) {
      const portalId = c.portal ? portalOf[c.portal] : undefined;
      const query = new URLSearchParams({ ...(c.statuses ? { status: c.statuses.join(",") } : {}), ...(portalId ? { portal: portalId } : {}) });
      const first = (await (await fetch(`${base}/jobs?${query}`)).json()) as { jobs: unknown[]; nextCursor: string | null };
      for (const cursor of [undefined, first.nextCursor ?? undefined]) {
        if (cursor === undefined && rows.some((r) => r.combination === c.name)) continue;
        const q = new URLSearchParams(query);
        if (cursor) q.set("cursor", cursor);
        const opts: JobListOptions = { limit: 50, ...(c.statuses ? { statuses: c.statuses } : {}), ...(portalId ? { portalId } : {}), ...(cursor ? { cursor } : {}) };
        const apiMs = summary(await timeApi(`${base}/jobs?${q}`, REQUESTS));
        const sqlMs = summary(await pgbench(databaseUrl, await statementText(databaseUrl, opts), REQUESTS, work));
        rows.push({
          combination: c.name,
          page: cursor ? 2 : 1,
          jobsOnPage: cursor ? undefined : first.jobs.length,
          apiP50Ms: apiMs.p50Ms,
          apiP99Ms: apiMs.p99Ms,
          pgbenchP50Ms: sqlMs.p50Ms,
          pgbenchP99Ms: sqlMs.p99Ms,
          ratioP50: Math.round((apiMs.p50Ms / sqlMs.p50Ms) * 10) / 10,
          withinTarget: apiMs.p99Ms < TARGET_P99_MS,
        });
      }
    }

    // Other work on the machine shows in the tails: say how loaded it was.
    const result = { at: new Date().toISOString(), host: machineInfo(), loadAverage1m: os.loadavg()[0], params: { jobs: JOBS, portals: PORTALS, requests: REQUESTS, warmup: WARMUP, limit: 50 }, seedSeconds, tableSize: size, targetP99Ms: TARGET_P99_MS, rows };
    console.log(`\nbench:list — GET /jobs over ${JOBS.toLocaleString("en")} jobs, ${REQUESTS} sequential requests per row (after ${WARMUP} warm-up), ${result.host.cpus} CPUs\n`);
    console.table(rows.map((r) => ({ combination: r.combination, page: r.page, "API p50 ms": r.apiP50Ms, "API p99 ms": r.apiP99Ms, "pgbench p50 ms": r.pgbenchP50Ms, "pgbench p99 ms": r.pgbenchP99Ms, "API/pgbench p50": r.ratioP50, [`p99 < ${TARGET_P99_MS} ms`]: r.withinTarget ? "ok" : "NO" })));
    process.stdout.write(`wrote ${saveResults("list", result.at, result)}\n`);
    if (api.exitCode !== null) throw new Error(`the API exited early: ${await new Response(api.stderr as ReadableStream).text()}`);
  } finally {
    api?.kill("SIGTERM");
    await api?.exited;
    await redis.stop();
    await pg.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
