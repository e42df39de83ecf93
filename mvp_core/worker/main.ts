/** `bun run worker`: reads config, connects Postgres and Redis, runs jobs, and on SIGTERM/SIGINT drains within the grace period. */
import { onlyHelpOrVersion, onStopSignals, SIGNAL_EXIT, type StopSignal } from "../cli/process.ts";
import { ConfigError, loadConfig } from "../config/config.ts";
import { connectDb } from "../db/client.ts";
import { createLogger } from "../log/log.ts";
import { openPortalEndpoint } from "../portals/endpoints.ts";
import { connectRedis } from "../queue/redis.ts";
import { transfer } from "../transfer_engine/index.ts";
import { Worker } from "./worker.ts";

const USAGE = `usage: bun run worker [--help | --version]
Takes its site's jobs (and any-site ones) from the Redis queue and runs them with the transfer engine.
Everything else comes from the environment (and .env; see .env.example): DATABASE_URL, REDIS_URL,
KETTER_SECRET_KEY(_FILE), KETTER_SITE (default: the host name), WORKER_CONCURRENCY, WORKER_LEASE_MS, WORKER_SHUTDOWN_GRACE_MS, … Logs are JSON lines on stdout.
On SIGINT/SIGTERM it takes no new work, lets running jobs finish within WORKER_SHUTDOWN_GRACE_MS and
hands the rest back to the queue.
exit status: 2 bad arguments or configuration, 1 failed to start or stop cleanly,
             130/143 stopped by SIGINT/SIGTERM (after the drain)`;

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger("worker", config.logLevel);
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
    transfer,
  });

  let stopping: Promise<void> | undefined;
  const shutdown = (signal: StopSignal) =>
    (stopping ??= (async () => {
      log.info("worker shutdown requested", { signal });
      await worker.close();
      await sql.end({ timeout: 5 });
      redis.disconnect();
    })());
  onStopSignals((signal) =>
    void shutdown(signal).then(
      () => process.exit(SIGNAL_EXIT[signal]),
      (err: unknown) => {
        log.error("worker shutdown failed", { error: err });
        process.exit(1);
      },
    ),
  );
  await worker.start();
}

const early = onlyHelpOrVersion("ketter-worker", USAGE, process.argv.slice(2));
if (early !== null) process.exit(early);
main().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
