/**
 * postgres.js connections built from DATABASE_URL with every option explicit, so the driver never
 * falls back to PG* environment variables behind the configuration's back.
 */
import postgres, { type Options, type Sql } from "postgres";

/** Connection options parsed from a postgres:// URL (host, port, database, user, password, ssl). */
export function pgOptions(databaseUrl: string, extra: { max?: number; applicationName?: string } = {}): Options<{}> {
  const u = new URL(databaseUrl);
  const database = decodeURIComponent(u.pathname.replace(/^\//, ""));
  const username = decodeURIComponent(u.username);
  const password = decodeURIComponent(u.password);
  if (!u.hostname) throw new Error("DATABASE_URL has no host");
  if (!database) throw new Error("DATABASE_URL has no database name");
  if (!username) throw new Error("DATABASE_URL has no user name");
  const sslmode = u.searchParams.get("sslmode");
  return {
    host: u.hostname,
    port: u.port ? Number(u.port) : 5432,
    database,
    username,
    // A function is never "empty", so an empty password cannot fall back to PGPASSWORD.
    password: () => password,
    ssl: sslmode === "require" || sslmode === "verify-full" ? "require" : false,
    max: extra.max ?? 10,
    idle_timeout: 30,
    connect_timeout: 10,
    // postgres.js's own backoff between reconnects grows as 3^n/100 s up to 20 s, counted across the
    // pool: after a Postgres outage of a few seconds every process would then sit idle for up to 20 s
    // with its queries queued (measured: a worker's claim waited 14.5 s). Capped at 1 s instead.
    backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(0.05 * 2 ** retries, 1),
    onnotice: () => {},
    connection: { application_name: extra.applicationName ?? "ketter" },
    // bigint counters (bytes) come back as JS numbers: footage sizes stay far below 2^53.
    types: { int8: { to: 20, from: [20], serialize: (n: number) => String(n), parse: (s: string) => Number(s) } },
  };
}

/** Opens a connection pool for `databaseUrl`. */
export function connectDb(databaseUrl: string, extra: { max?: number; applicationName?: string } = {}): Sql {
  return postgres(pgOptions(databaseUrl, extra));
}

export type { Sql };
