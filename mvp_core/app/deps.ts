/** What the API needs from the outside world; main.ts builds it, tests build their own. */
import type { Sql } from "postgres";
import type { Logger } from "../log/log.ts";
import type { JobQueue } from "../queue/queue.ts";

/** The queue verbs the API uses (the worker's side of JobQueue stays out of reach). */
export type ApiQueue = Pick<JobQueue, "enqueue" | "notifyCancel" | "depth" | "siteDepths" | "liveWorkers" | "forgetSite">;

/** Dependencies of every feature module. */
export interface AppDeps {
  sql: Sql;
  queue: ApiQueue;
  /** Answers PING; /health reports it. */
  pingRedis: () => Promise<unknown>;
  secretKey: Buffer;
  /** When set, every route but /health, /metrics and /swagger requires `Authorization: Bearer <token>`. */
  apiToken: string | undefined;
  /** Default max attempts of a job that does not say. */
  jobMaxAttempts: number;
  /** The API's KETTER_SITE: a new local portal's site while no worker has ever registered one. */
  site: string;
  log: Logger;
  version: string;
  /** How long a request waits for Redis before answering anyway (the reconciler repairs a miss). */
  redisTimeoutMs?: number;
}
