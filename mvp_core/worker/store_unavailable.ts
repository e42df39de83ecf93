/**
 * Tells an outage of the worker's own stores (Postgres, Redis) from a real fault of the job.
 *
 * An attempt reads Postgres before the engine starts (the portals, the failed paths of a retry) and
 * talks to it around every guarded step. When Postgres restarts at that moment, the error that ends
 * the attempt says nothing about the job: the job must be tried again, not failed as an internal
 * error (seen under load: a Postgres restart ended a move FAILED `INTERNAL_ERROR` instead of DONE).
 */
import { DeadlineError } from "./deadline.ts";

/** Node/Bun socket errors: the store's address did not answer or the connection broke. */
const SOCKET_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ECONNABORTED"]);

/** postgres.js's own codes for a connection that closed, ended or never opened. */
const PG_CLIENT_CODES = new Set(["CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED", "CONNECT_TIMEOUT"]);

/**
 * Server-side SQLSTATEs that mean "try again later": 08 connection exceptions, 57P01–57P03 (the
 * server is shutting down or starting), 53300 too many connections, and the two concurrency
 * outcomes (serialization failure, deadlock) whose statement is safe to run again.
 */
function transientSqlState(code: string): boolean {
  return code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03" || code === "53300" || code === "40001" || code === "40P01";
}

/** ioredis's errors for a connection that is gone (its commands fail fast or give up after retries). */
function redisGone(err: Error): boolean {
  return err.name === "MaxRetriesPerRequestError" || err.message === "Connection is closed." || err.message.startsWith("Stream isn't writeable");
}

/** True when `err` (or every error it aggregates) says Postgres or Redis was unreachable, not that the job is at fault. */
export function isStoreUnavailable(err: unknown): boolean {
  if (err instanceof AggregateError) return err.errors.length > 0 && err.errors.every(isStoreUnavailable);
  if (!(err instanceof Error)) return false;
  if (err instanceof DeadlineError) return true;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string") {
    if (SOCKET_CODES.has(code) || PG_CLIENT_CODES.has(code)) return true;
    if (err.name === "PostgresError" && transientSqlState(code)) return true;
  }
  return redisGone(err);
}
