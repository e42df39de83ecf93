/**
 * One DKU run: every check, in parallel where they are independent, then the smoke transfer, then
 * the report. Nothing here throws for a broken service — each problem is a row in the report.
 */
import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import type { Config } from "../config/config.ts";
import { checkApi } from "./api.ts";
import { errorMessage, runCheck, type Check, type CheckResult } from "./check.ts";
import { portalChecks } from "./portals.ts";
import { checkMigrations, checkPostgres, localPortalPlaces } from "./postgres.ts";
import { checkRedis } from "./redis.ts";
import { checkHashing } from "./hashing.ts";
import { checkBunVersion, checkDiskSpace, type DiskPlace } from "./runtime.ts";
import { buildReport, type Report } from "./report.ts";
import { runSmoke } from "./smoke.ts";
import { checkWorkers } from "./worker.ts";

/** What to run and where the report goes (from the flags and the configuration). */
export interface DkuOptions {
  reportDir: string;
  portals: boolean;
  smoke: boolean;
  /** Parent folder of the smoke fixture (default: the OS temp folder). */
  smokeDir?: string | undefined;
  /** Aborted on Ctrl-C: running checks fail as interrupted, the smoke cleanup still runs, the report is written. */
  interrupt?: AbortSignal;
}

const PACKAGE_JSON = new URL("../../package.json", import.meta.url);

async function ketterVersion(): Promise<string> {
  try {
    const pkg = JSON.parse(await readFile(PACKAGE_JSON, "utf8")) as { version?: string };
    return pkg.version ?? "unknown";
  } catch (err) {
    return `unknown (${errorMessage(err)})`;
  }
}

/** The checks that need nothing but the configuration; they run side by side. */
export function baseChecks(config: Config, opts: DkuOptions): Check[] {
  return [
    { name: "runtime.bun", timeoutMs: 5_000, failHint: "check that package.json is readable", run: () => checkBunVersion() },
    {
      name: "runtime.disk",
      timeoutMs: 15_000,
      failHint: `check that ${opts.reportDir} and the local portals' roots exist and are readable`,
      run: async () => {
        const places: DiskPlace[] = [{ label: "reports", path: opts.reportDir }];
        // Without Postgres the portal roots are unknown; the postgres check reports why.
        const portals = await localPortalPlaces(config.databaseUrl, config.site).then(
          (p) => ({ places: p, note: undefined }),
          (err: unknown) => ({ places: [], note: `local portals not measured (${errorMessage(err)})` }),
        );
        return checkDiskSpace([...places, ...portals.places], portals.note);
      },
    },
    { name: "runtime.hashing", timeoutMs: 10_000, failHint: "the xxHash backends could not be loaded: run bun install", run: () => checkHashing() },
    { name: "postgres", timeoutMs: 15_000, failHint: "check DATABASE_URL and that Postgres runs", run: () => checkPostgres(config.databaseUrl) },
    { name: "postgres.migrations", timeoutMs: 15_000, failHint: "check DATABASE_URL; apply migrations with: bun run migrate up", run: () => checkMigrations(config.databaseUrl) },
    { name: "redis", timeoutMs: 10_000, failHint: "check REDIS_URL and that Redis runs", run: () => checkRedis(config.redisUrl) },
    { name: "api", timeoutMs: 10_000, failHint: "check that the API runs and KETTER_API_URL points at it", run: (signal) => checkApi(config.api, signal) },
    {
      name: "worker",
      timeoutMs: 10_000,
      failHint: "check REDIS_URL and REDIS_KEY_PREFIX (the worker's and the DKU's must match)",
      run: () => checkWorkers(config.redisUrl, config.redisKeyPrefix, config.databaseUrl, config.site),
    },
  ];
}

/** A single failed `smoke` row saying why the smoke transfer was not attempted. */
function notRun(why: string, hint: string): Promise<CheckResult> {
  return runCheck({
    name: "smoke",
    timeoutMs: 1_000,
    failHint: hint,
    run: async () => {
      throw new Error(`not run: ${why}`);
    },
  });
}

/**
 * The smoke transfer needs the API and a live worker of this machine's site (its fixture is a
 * folder on this machine); without them it would only wait for its timeout.
 */
async function smokeRows(config: Config, opts: DkuOptions, before: readonly CheckResult[]): Promise<CheckResult[]> {
  const blockers = before.filter((r) => (r.name === "api" || r.name === "worker") && r.status === "fail").map((r) => r.name);
  if (blockers.length > 0) {
    const checks = `the ${blockers.join(" and ")} check${blockers.length > 1 ? "s" : ""}`;
    return [await notRun(`${checks} failed`, `fix ${checks} first, then rerun the DKU`)];
  }
  const worker = before.find((r) => r.name === "worker");
  if (worker?.details?.ownSiteLive === 0) {
    return [
      await notRun(
        `no live worker of this machine's site ${config.site} (KETTER_SITE), and the smoke fixture is a folder on this machine`,
        `start a worker here (bun run worker) with KETTER_SITE=${config.site}, or run the DKU on a machine that has one, with its KETTER_SITE`,
      ),
    ];
  }
  return runSmoke({ api: config.api, site: config.site, parentDir: opts.smokeDir, interrupt: opts.interrupt });
}

/** Runs every check and returns the report (not yet written). */
export async function runDku(config: Config, opts: DkuOptions): Promise<Report> {
  const startedAt = new Date();
  const checks = baseChecks(config, opts);
  if (opts.portals) checks.push(...(await portalChecks(config.databaseUrl, config.secretKey)));
  const results: CheckResult[] = await Promise.all(checks.map((c) => runCheck(c, opts.interrupt)));
  if (opts.smoke && !opts.interrupt?.aborted) results.push(...(await smokeRows(config, opts, results)));
  return buildReport(results, { ketterVersion: await ketterVersion(), host: hostname(), startedAt, finishedAt: new Date() });
}
