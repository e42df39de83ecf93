/**
 * Real Postgres and Redis for tests, started on demand on free loopback ports (or taken from
 * KETTER_TEST_DATABASE_URL / KETTER_TEST_REDIS_URL) and stopped by the preload after the run.
 * Nothing here is a mock: tests talk to the real servers.
 */
import { chownSync, existsSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectDb, type Sql } from "../db/client.ts";
import { migrateUp } from "../db/migrate.ts";
import { freePort } from "./ports.ts";
import { startRedisServer } from "./redis_server.ts";

const stops: Array<() => Promise<void>> = [];
let postgresServer: Promise<string> | undefined;
let migratedDatabase: Promise<string> | undefined;
let redisServer: Promise<string> | undefined;

/** Random suffix for database names, key prefixes and folder names. */
export function uniqueId(): string {
  return `${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
}

function postgresBinDir(): string {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  const dir = versions.map((v) => join(root, v, "bin")).find((d) => existsSync(join(d, "initdb")));
  if (!dir) throw new Error("PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)");
  return dir;
}

/** Postgres refuses to run as root; as root, run its tools as the `postgres` user. */
function asPostgresUser(cmd: string[]): string[] {
  return process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--", ...cmd] : cmd;
}

async function run(cmd: string[]): Promise<void> {
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited ${code}: ${err || out}`);
}

/** A Postgres cluster of its own: `kill()` stops it abruptly (as a crash would), `restart()` starts it again on the same port and data, `stop()` also removes it. */
export interface PostgresServer {
  /** The maintenance database `postgres` as user `ketter`. */
  url: string;
  kill(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a throw-away Postgres cluster on a free loopback port. Without fsync (only a machine crash
 * needs it); `crashSafe` keeps synchronous commits, so a commit that answered survives `kill()` —
 * without it, the last few hundred milliseconds of commits are lost there, as a test of faults must not.
 */
export async function startPostgresServer(opts: { crashSafe?: boolean } = {}): Promise<PostgresServer> {
  const bin = postgresBinDir();
  const dir = await mkdtemp(join(tmpdir(), "ketter-pg-"));
  if (process.getuid?.() === 0) chownSync(dir, Number(Bun.spawnSync(["id", "-u", "postgres"]).stdout.toString().trim()), Number(Bun.spawnSync(["id", "-g", "postgres"]).stdout.toString().trim()));
  const data = join(dir, "data");
  const port = await freePort();
  await run(asPostgresUser([join(bin, "initdb"), "-D", data, "-U", "ketter", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"]));
  const settings = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=${opts.crashSafe ? "on" : "off"} -c full_page_writes=off -c max_connections=200`;
  const start = () => run(asPostgresUser([join(bin, "pg_ctl"), "-D", data, "-o", settings, "-l", join(dir, "log"), "-w", "start"]));
  const kill = () => run(asPostgresUser([join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"]));
  const stop = async () => {
    await kill().catch(() => {}); // already stopped by the test, or never started
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await start();
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `postgres://ketter@127.0.0.1:${port}/postgres`, kill, restart: start, stop };
}

async function startPostgres(): Promise<string> {
  const server = await startPostgresServer();
  stops.push(server.stop);
  return server.url;
}

/** URL of a reachable Postgres server (maintenance database), starting one on first use. */
export function postgresServerUrl(): Promise<string> {
  postgresServer ??= process.env.KETTER_TEST_DATABASE_URL ? Promise.resolve(process.env.KETTER_TEST_DATABASE_URL) : startPostgres();
  return postgresServer;
}

/**
 * Creates an empty database of its own on the run's test server (dropped after the run), or on
 * `onServer` (a server the caller started and removes whole).
 */
export async function createEmptyDatabase(onServer?: string): Promise<string> {
  const serverUrl = onServer ?? (await postgresServerUrl());
  const name = `ketter_test_${uniqueId()}`;
  const admin = connectDb(serverUrl, { max: 1 });
  try {
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end();
  }
  if (!onServer) {
    stops.unshift(async () => {
      const a = connectDb(serverUrl, { max: 1 });
      await a.unsafe(`drop database if exists ${name} with (force)`).finally(() => a.end());
    });
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** A new database with the production migrations applied, on `onServer` (default: the run's test server). */
export async function createMigratedDatabase(onServer?: string): Promise<string> {
  const url = await createEmptyDatabase(onServer);
  await migrateUp(url);
  return url;
}

/** URL of this run's database with the production migrations applied (created once per run). */
export function testDatabaseUrl(): Promise<string> {
  migratedDatabase ??= createMigratedDatabase();
  return migratedDatabase;
}

/** A connection pool to this run's migrated database; closed by the caller (or after the run). */
export async function testSql(max = 4): Promise<Sql> {
  const sql = connectDb(await testDatabaseUrl(), { max, applicationName: "ketter-test" });
  stops.unshift(() => sql.end({ timeout: 1 }));
  return sql;
}

async function startRedis(): Promise<string> {
  const server = await startRedisServer();
  stops.push(server.stop);
  return server.url;
}

/** URL of a reachable Redis server, starting one on first use. Isolate tests with testRedisPrefix(). */
export function testRedisUrl(): Promise<string> {
  redisServer ??= process.env.KETTER_TEST_REDIS_URL ? Promise.resolve(process.env.KETTER_TEST_REDIS_URL) : startRedis();
  return redisServer;
}

/** A key prefix no other test uses. */
export function testRedisPrefix(): string {
  return `ketter-test:${uniqueId()}:`;
}

/** Stops everything this run started, newest first. Called once by the preload. */
export async function stopTestServices(): Promise<void> {
  while (stops.length) {
    const stop = stops.shift()!;
    await stop().catch((err: unknown) => console.error("test service cleanup failed:", err));
  }
}
