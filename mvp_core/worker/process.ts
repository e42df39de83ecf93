/**
 * The worker process: reads config, connects Postgres and Redis, installs the last-resort guard,
 * runs its site's jobs, and on SIGTERM/SIGINT drains within the grace period, then exits 130/143. `bun run worker` (main.ts) runs
 * it as is; the worker's fault-injection tests run it with a wrapped engine (fault_entry.ts).
 */
import { exitAfterStop } from "../cli/process.ts";
import { ConfigError, loadConfig } from "../config/config.ts";
import { connectDb } from "../db/client.ts";
import { createLogger } from "../log/log.ts";
import { openPortalEndpoint } from "../portals/endpoints.ts";
import { connectRedis } from "../queue/redis.ts";
import { type EngineOptions, transfer } from "../transfer_engine/index.ts";
import { installEscapeGuard } from "./escape_guard.ts";
import type { TransferFn } from "./job_run.ts";
import { Worker } from "./worker.ts";

/** Runs the worker process until a signal stops it; exits 2 on bad configuration, 1 when it cannot start. */
export function runWorkerProcess(overrides: { transfer?: TransferFn; engineOptions?: Partial<EngineOptions> } = {}): void {
  start(overrides).catch((err: unknown) => {
    console.error(err instanceof ConfigError ? err.message : err);
    process.exit(err instanceof ConfigError ? 2 : 1);
  });
}

async function start(overrides: { transfer?: TransferFn; engineOptions?: Partial<EngineOptions> }): Promise<void> {
  const config = loadConfig();
  const log = createLogger("worker", config.logLevel);
  installEscapeGuard(log);
  const sql = connectDb(config.databaseUrl, { max: config.databasePoolMax, applicationName: "ketter-worker" });
  const redis = connectRedis(config.redisUrl, { name: "ketter-worker" });
  redis.on("error", (err: Error) => log.warn("redis connection error", { error: err }));
  const worker = new Worker({
    sql,
    redis,
    redisUrl: config.redisUrl,
    prefix: config.redisKeyPrefix,
    site: config.site,
    log,
    settings: config.worker,
    openEndpoint: (portal, signal) => openPortalEndpoint(portal, config.secretKey, { signal }),
    transfer: overrides.transfer ?? transfer,
    ...(overrides.engineOptions ? { engineOptions: overrides.engineOptions } : {}),
  });

  exitAfterStop(async (signal) => {
    log.info("worker shutdown requested", { signal });
    await worker.close();
    await sql.end({ timeout: 5 });
    redis.disconnect();
  }, (err) => log.error("worker shutdown failed", { error: err }));

  await worker.start();
}
