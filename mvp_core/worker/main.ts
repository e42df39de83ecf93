/** `bun run worker`: answers --help/--version, else runs the worker process (process.ts) with the real engine. */
import { onlyHelpOrVersion } from "../cli/process.ts";
import { runWorkerProcess } from "./process.ts";

const USAGE = `usage: bun run worker [--help | --version]
Takes its site's jobs (and any-site ones) from the Redis queue and runs them with the transfer engine.
Everything else comes from the environment (and .env; see .env.example): DATABASE_URL, REDIS_URL,
KETTER_SECRET_KEY(_FILE), KETTER_SITE (default: the host name), WORKER_CONCURRENCY, WORKER_LEASE_MS, WORKER_SHUTDOWN_GRACE_MS, … Logs are JSON lines on stdout.
On SIGINT/SIGTERM it takes no new work, lets running jobs finish within WORKER_SHUTDOWN_GRACE_MS and
hands the rest back to the queue.
exit status: 2 bad arguments or configuration, 1 failed to start or stop cleanly,
             130/143 stopped by SIGINT/SIGTERM (after the drain)`;

const early = onlyHelpOrVersion("ketter-worker", USAGE, process.argv.slice(2));
if (early !== null) process.exit(early);
runWorkerProcess();
