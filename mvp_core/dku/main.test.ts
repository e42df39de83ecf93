/**
 * The DKU as an operator runs it (`bun mvp_core/dku/main.ts`), against a real stack of processes:
 * healthy → exit 0 with a verified smoke transfer; Redis stopped, API down or worker absent → that
 * check fails with its hint, the others still run, the report is written, exit 1.
 */
import { afterAll, afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { connectDb } from "../db/client.ts";
import { freePort } from "../testing/ports.ts";
import type { CheckResult } from "./check.ts";
import type { Report } from "./report.ts";
import Redis from "ioredis";
import { JobQueue } from "../queue/queue.ts";
import { waitFor } from "../testing/ports.ts";
import { startSshd, type TestSshd } from "../testing/sshd.ts";
import { runDkuProcess, spawnDku, startStack, type DkuRun, type TestStack } from "./test_stack.ts";

// Real processes start here; bun 1.4.5 ignores bunfig's [test] timeout, and 5 s is tight on a loaded machine.
setDefaultTimeout(120_000);

const tempDirs: string[] = [];
afterAll(() => Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true }))));
let stack: TestStack | null = null;
let sshd: TestSshd | null = null;
afterEach(async () => {
  await Promise.all([stack?.stop(), sshd?.stop()]);
  stack = null;
  sshd = null;
});

async function tempDir(name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `ketter-dku-${name}-`));
  tempDirs.push(dir);
  return dir;
}

/** Runs the DKU into a fresh report folder; returns the run, the JSON report and the .txt text. */
async function dku(env: Record<string, string>, args: string[] = [], start = runDkuProcess): Promise<{ run: DkuRun; report: Report; txt: string; byName: Record<string, CheckResult> }> {
  const reportDir = await tempDir("reports");
  const run = await start(env, ["--report-dir", reportDir, ...args]);
  const files = (await readdir(reportDir)).sort();
  expect(files, `${run.stdout}\n${run.stderr}`).toHaveLength(2);
  expect(files[0]).toMatch(/^dku-\d{8}T\d{6}Z\.json$/);
  expect(files[1]).toBe(files[0]!.replace(/\.json$/, ".txt"));
  const report = JSON.parse(await readFile(join(reportDir, files[0]!), "utf8")) as Report;
  const txt = await readFile(join(reportDir, files[1]!), "utf8");
  return { run, report, txt, byName: Object.fromEntries(report.checks.map((c) => [c.name, c])) };
}

const BASE_ROWS = ["runtime.bun", "runtime.disk", "runtime.hashing", "postgres", "postgres.migrations", "redis", "api", "worker"];

/** Every row that failed has a hint; the exit code and the report agree (`exitCode`: an interrupted run's own, 130/143). */
function expectConsistent(r: { run: DkuRun; report: Report; txt: string }, exitCode: number = r.report.exitCode): void {
  for (const c of r.report.checks) if (c.status !== "ok") expect(c.hint, c.name).toBeTruthy();
  expect(r.run.code).toBe(exitCode);
  expect(r.report.schemaVersion).toBe(1);
  // The terminal shows the same table as the .txt file.
  expect(r.run.stdout).toContain(r.txt.trim());
}

describe("dku without a stack", () => {
  test("bad flags: exit 2 with the usage, no report", async () => {
    const dir = await tempDir("reports");
    const run = await runDkuProcess({ KETTER_DKU_REPORT_DIR: dir }, ["--protals"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('unknown argument "--protals"');
    expect(run.stderr).toContain("usage: bun run dku");
    expect(await readdir(dir)).toEqual([]);
  });

  test("nothing reachable: every check still runs, each failure has a hint, the report is written, exit 1", async () => {
    const dead = async () => `127.0.0.1:${await freePort()}`;
    const env = { DATABASE_URL: `postgres://ketter@${await dead()}/ketter`, REDIS_URL: `redis://${await dead()}/0`, KETTER_API_URL: `http://${await dead()}` };
    const r = await dku(env);
    expectConsistent(r);
    expect(r.run.code).toBe(1);
    expect(r.report.checks.map((c) => c.name)).toEqual([...BASE_ROWS, "smoke"]);
    for (const name of ["postgres", "postgres.migrations", "redis", "api", "worker", "smoke"]) expect(r.byName[name]?.status, name).toBe("fail");
    expect(r.byName["runtime.bun"]?.status).toBe("ok");
    expect(r.byName.postgres?.value).toContain("ECONNREFUSED");
    expect(r.byName.smoke?.value).toBe("not run: the api and worker checks failed");
    expect(r.txt).toContain("✗ FAIL");
  });

  test("--json prints the report as JSON", async () => {
    const env = { DATABASE_URL: `postgres://ketter@127.0.0.1:${await freePort()}/ketter`, REDIS_URL: `redis://127.0.0.1:${await freePort()}/0`, KETTER_API_URL: `http://127.0.0.1:${await freePort()}` };
    const r = await dku(env, ["--json", "--no-smoke"]);
    expect(JSON.parse(r.run.stdout)).toEqual(r.report);
    expect(r.report.checks.map((c) => c.name)).toEqual(BASE_ROWS);
  });
});

describe("dku against the stack", () => {
  test("healthy stack with --portals: every check passes, the smoke copy and move are verified and cleaned up, exit 0", async () => {
    stack = await startStack();
    sshd = await startSshd();
    // An SFTP portal created through the API: the DKU decrypts its secret with the same KETTER_SECRET_KEY.
    const created = await fetch(`${stack.env.KETTER_API_URL}/portals`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${stack.env.KETTER_API_TOKEN}` },
      body: JSON.stringify({
        kind: "sftp", name: "lab-sftp", rootPath: sshd.root, host: sshd.host, port: sshd.port, username: sshd.username,
        auth: { method: "key", privateKey: sshd.privateKey }, hostKeyFingerprint: sshd.hostKeyFingerprint,
      }),
    });
    expect(created.status).toBe(201);
    const smokeParent = await tempDir("smoke");
    const r = await dku(stack.env, ["--portals", "--smoke-dir", smokeParent]);
    expectConsistent(r);
    const notOk = r.report.checks.filter((c) => c.status !== "ok");
    expect(notOk, `${r.run.stdout}\n${stack.logs()}`).toEqual([]);
    expect(r.run.code).toBe(0);
    expect(r.report.checks.map((c) => c.name)).toEqual([...BASE_ROWS, "portal.lab-sftp", "smoke.setup", "smoke.copy", "smoke.move", "smoke.cleanup"]);
    expect(r.byName["portal.lab-sftp"]?.value).toContain("host key matches");
    // Both strategies ran: thousands of tiny files as zip, the larger files directly.
    expect(r.byName["smoke.copy"]?.value).toContain("zip strategy, 2000 files");
    expect(r.byName["smoke.move"]?.value).toContain("direct strategy");
    expect(r.byName["smoke.move"]?.value).toContain("source removed");
    expect(r.byName.worker?.value).toStartWith("1 live");
    expect(r.txt).toContain("✓ PASS");

    // Cleaned up: no fixture left, the portal is gone, the jobs stay as marked DKU history.
    expect(await readdir(smokeParent)).toEqual([]);
    const sql = connectDb(stack.env.DATABASE_URL!, { max: 1 });
    try {
      const portals = await sql<{ name: string; deleted: boolean }[]>`select name, deleted_at is not null as deleted from portals where kind = 'local'`;
      expect(portals).toHaveLength(1);
      expect(portals[0]).toMatchObject({ deleted: true });
      expect(portals[0]!.name).toStartWith("dku-smoke-");
      const jobs = await sql<{ idempotency_key: string; status: string }[]>`select idempotency_key, status from jobs order by idempotency_key`;
      expect(jobs.map((j) => j.status)).toEqual(["DONE", "DONE"]);
      expect(jobs[0]!.idempotency_key).toMatch(/^dku-smoke:[0-9a-f]{8}:copy$/);
      expect(jobs[1]!.idempotency_key).toMatch(/^dku-smoke:[0-9a-f]{8}:move$/);
    } finally {
      await sql.end();
    }

    // /health is public; a wrong token is still caught before any smoke job is attempted.
    const wrong = await dku({ ...stack.env, KETTER_API_TOKEN: "not-the-api-token-at-all" });
    expect(wrong.byName.api?.status).toBe("fail");
    expect(wrong.byName.api?.value).toContain("token rejected");
    expect(wrong.byName.api?.hint).toContain("KETTER_API_TOKEN");
    expect(wrong.byName.smoke?.value).toBe("not run: the api check failed");
  });

  test("worker absent: the worker check fails with its hint, the smoke is not run, the rest passes, exit 1", async () => {
    stack = await startStack();
    await stack.stopWorker();
    const r = await dku(stack.env);
    expectConsistent(r);
    expect(r.run.code).toBe(1);
    expect(r.byName.worker).toMatchObject({ status: "fail" });
    expect(r.byName.worker?.hint).toContain("start one");
    expect(r.byName.smoke).toMatchObject({ status: "fail", value: "not run: the worker check failed" });
    for (const name of ["runtime.bun", "postgres", "postgres.migrations", "redis", "api"]) expect(r.byName[name]?.status, name).toBe("ok");
  });

  test("API down: the api check fails with its hint, the others still run, exit 1", async () => {
    stack = await startStack();
    await stack.stopApi();
    const r = await dku(stack.env);
    expectConsistent(r);
    expect(r.run.code).toBe(1);
    expect(r.byName.api?.status).toBe("fail");
    expect(r.byName.api?.value).toContain("no answer from");
    expect(r.byName.api?.hint).toContain("start the API");
    expect(r.byName.smoke?.value).toBe("not run: the api check failed");
    for (const name of ["runtime.bun", "postgres", "postgres.migrations", "redis", "worker"]) expect(r.byName[name]?.status, name).toBe("ok");
  });

  test("Redis stopped: the redis check fails with its hint, the others still run, the report is written, exit 1", async () => {
    stack = await startStack();
    await stack.redis.stop();
    const r = await dku(stack.env, ["--no-smoke"]);
    expectConsistent(r);
    expect(r.run.code).toBe(1);
    expect(r.byName.redis?.status).toBe("fail");
    expect(r.byName.redis?.value).toContain("ECONNREFUSED");
    expect(r.byName.redis?.hint).toContain("start Redis");
    for (const name of ["runtime.bun", "postgres", "postgres.migrations"]) expect(r.byName[name]?.status, name).toBe("ok");
    // The API and the worker depend on Redis too; their rows say so rather than crash the run.
    expect(r.byName.worker?.status).toBe("fail");
    expect(r.report.checks.map((c) => c.name)).toEqual(BASE_ROWS);
  });

  test("Ctrl-C during the smoke transfer: jobs cancelled, fixture and portal removed, report written, exit 130", async () => {
    stack = await startStack();
    const env = stack.env;
    // No worker takes the jobs, so they are still waiting when Ctrl-C comes; a heartbeat (written
    // through the real queue module) keeps the worker check from skipping the smoke transfer.
    await stack.stopWorker();
    const redis = new Redis(env.REDIS_URL!);
    try {
      await new JobQueue({ redis, prefix: env.REDIS_KEY_PREFIX! }).heartbeat({ id: "held", site: hostname(), host: "test", pid: 1, startedAt: new Date().toISOString(), running: 0, concurrency: 1 }, 120_000);
    } finally {
      redis.disconnect();
    }
    const smokeParent = await tempDir("smoke");
    const sql = connectDb(env.DATABASE_URL!, { max: 1 });
    try {
      const r = await dku(env, ["--smoke-dir", smokeParent], async (e, args) => {
        const child = spawnDku(e, args);
        await waitFor(async () => (await sql<{ n: number }[]>`select count(*)::int as n from jobs`)[0]!.n === 2, { what: "both smoke jobs", timeoutMs: 60_000 });
        child.proc.kill("SIGINT");
        return child.done;
      });
      // The report says the checks failed (1); the process says it was interrupted: 128 + SIGINT.
      expect(r.report.exitCode).toBe(1);
      expectConsistent(r, 130);
      expect(r.byName["smoke.copy"]).toMatchObject({ status: "fail", value: "interrupted" });
      expect(r.byName["smoke.move"]).toMatchObject({ status: "fail", value: "interrupted" });
      expect(r.byName["smoke.cleanup"]?.status).toBe("ok");
      expect(await readdir(smokeParent)).toEqual([]);
      const jobs = await sql<{ status: string }[]>`select status from jobs`;
      expect(jobs.map((j) => j.status)).toEqual(["CANCELLED", "CANCELLED"]);
      const [portal] = await sql<{ deleted: boolean }[]>`select deleted_at is not null as deleted from portals`;
      expect(portal?.deleted).toBe(true);
    } finally {
      await sql.end();
    }
  });
});
