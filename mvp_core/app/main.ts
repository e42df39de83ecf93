/** `bun run api`: reads config, connects Postgres and Redis, listens, and shuts down cleanly on SIGINT/SIGTERM. */
import pkg from "../../package.json" with { type: "json" };
import { ConfigError, loadConfig } from "../config/config.ts";
import { connectDb } from "../db/client.ts";
import { createLogger } from "../log/log.ts";
import { JobQueue } from "../queue/queue.ts";
import { connectRedis } from "../queue/redis.ts";
import { createApp } from "./app.ts";
import { SERVER_MAX_BODY_BYTES } from "./http.ts";

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger("api", config.logLevel);
  const sql = connectDb(config.databaseUrl, { max: config.databasePoolMax, applicationName: "ketter-api" });
  const redis = connectRedis(config.redisUrl, { name: "ketter-api" });
  redis.on("error", (err: Error) => log.warn("redis connection error", { error: err }));
  const app = createApp({
    sql,
    queue: new JobQueue({ redis, prefix: config.redisKeyPrefix }),
    pingRedis: () => redis.ping(),
    secretKey: config.secretKey,
    apiToken: config.api.token,
    jobMaxAttempts: config.jobMaxAttempts,
    site: config.site,
    log,
    version: pkg.version,
  });
  app.listen({ hostname: config.api.host, port: config.api.port, maxRequestBodySize: SERVER_MAX_BODY_BYTES });
  log.info("api listening", { url: config.api.url, auth: config.api.token ? "bearer" : "none", swagger: `${config.api.url}/swagger`, site: config.site });

  let stopping: Promise<void> | undefined;
  const shutdown = (signal: string) =>
    (stopping ??= (async () => {
      log.info("api stopping", { signal });
      await app.stop();
      await sql.end({ timeout: 5 });
      redis.disconnect();
      log.info("api stopped");
    })());
  const exitAfter = (signal: string) =>
    void shutdown(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error("api shutdown failed", { error: err });
        process.exit(1);
      },
    );
  process.on("SIGINT", () => exitAfter("SIGINT"));
  process.on("SIGTERM", () => exitAfter("SIGTERM"));
}

main().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
