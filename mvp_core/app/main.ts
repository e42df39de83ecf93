/** `bun run api`: reads config, connects Postgres and Redis, listens, and shuts down cleanly on SIGINT/SIGTERM. */
import { exitAfterStop, onlyHelpOrVersion, VERSION } from "../cli/process.ts";
import { ConfigError, loadConfig } from "../config/config.ts";
import { connectDb } from "../db/client.ts";
import { createLogger } from "../log/log.ts";
import { JobQueue } from "../queue/queue.ts";
import { connectRedis } from "../queue/redis.ts";
import { createApp } from "./app.ts";
import { SERVER_MAX_BODY_BYTES } from "./http.ts";

const USAGE = `usage: bun run api [--help | --version]
Starts the Ketter HTTP API (Swagger UI at /swagger, Prometheus metrics at /metrics). Everything else
comes from the environment (and .env; see .env.example): API_HOST, API_PORT, DATABASE_URL, REDIS_URL,
KETTER_API_TOKEN, KETTER_SECRET_KEY(_FILE), LOG_LEVEL. Logs are JSON lines on stdout.
exit status: 2 bad arguments or configuration, 1 failed to start or stop cleanly,
             130/143 stopped by SIGINT/SIGTERM (after closing connections)`;

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
    version: VERSION,
  });
  app.listen({ hostname: config.api.host, port: config.api.port, maxRequestBodySize: SERVER_MAX_BODY_BYTES });
  log.info("api listening", { url: config.api.url, auth: config.api.token ? "bearer" : "none", swagger: `${config.api.url}/swagger`, site: config.site });

  exitAfterStop(async (signal) => {
    log.info("api stopping", { signal });
    await app.stop();
    await sql.end({ timeout: 5 });
    redis.disconnect();
    log.info("api stopped");
  }, (err) => log.error("api shutdown failed", { error: err }));

}

const early = onlyHelpOrVersion("ketter-api", USAGE, process.argv.slice(2));
if (early !== null) process.exit(early);
main().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
