/** `bun run worker`: reads config, connects Postgres and Redis, runs jobs, and on SIGTERM/SIGINT drains within the grace period. */
import { ConfigError, loadConfig } from "../config/config.ts";
import { connectDb } from "../db/client.ts";
import { createLogger } from "../log/log.ts";
import { openPortalEndpoint } from "../portals/endpoints.ts";
import { connectRedis } from "../queue/redis.ts";
import { transfer } from "../transfer_engine/index.ts";
import { Worker } from "./worker.ts";

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
  const shutdown = (signal: string) =>
    (stopping ??= (async () => {
      log.info("worker shutdown requested", { signal });
      await worker.close();
      await sql.end({ timeout: 5 });
      redis.disconnect();
    })());
  const exitAfter = (signal: string) =>
    void shutdown(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error("worker shutdown failed", { error: err });
        process.exit(1);
      },
    );
  process.on("SIGINT", () => exitAfter("SIGINT"));
  process.on("SIGTERM", () => exitAfter("SIGTERM"));
  await worker.start();
}

main().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
