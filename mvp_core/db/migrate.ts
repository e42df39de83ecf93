/**
 * Schema migrations through ley. The CLI (migrate_cli.ts), the dev stack and the test harness all
 * call these functions, so the schema under test is the schema in production.
 */
import { readdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import * as ley from "ley";
import { connectDb, pgOptions } from "./client.ts";
import * as driver from "./ley_driver.ts";

const MIGRATIONS_DIR = fileURLToPath(new URL("./migrations", import.meta.url));

function leyOptions(databaseUrl: string) {
  // ley opens its own single connection from these options and runs each batch in one transaction.
  return { cwd: MIGRATIONS_DIR, dir: ".", driver: driver as unknown as ley.Driver, config: { ...pgOptions(databaseUrl, { max: 1, applicationName: "ketter-migrate" }) } };
}

/** Applies every pending migration in one transaction; returns the names applied. */
export async function migrateUp(databaseUrl: string): Promise<string[]> {
  return ley.up(leyOptions(databaseUrl));
}

/** Reverts the newest migration (or all of them); returns the names reverted. */
export async function migrateDown(databaseUrl: string, opts: { all?: boolean } = {}): Promise<string[]> {
  return ley.down({ ...leyOptions(databaseUrl), all: opts.all ?? false });
}

/** Names of the migration files shipped with this build, in order. */
export async function migrationFiles(): Promise<string[]> {
  return (await readdir(MIGRATIONS_DIR)).filter((f) => /^\d+_.*\.ts$/.test(f)).sort();
}

/** Pending (shipped, not applied) and unknown (applied, not shipped) migrations. */
export async function migrationStatus(databaseUrl: string): Promise<{ applied: string[]; pending: string[]; unknown: string[] }> {
  const sql = connectDb(databaseUrl, { max: 1, applicationName: "ketter-migrate" });
  try {
    const [table] = await sql<{ exists: boolean }[]>`select to_regclass('migrations') is not null as exists`;
    const applied = table?.exists ? (await sql<{ name: string }[]>`select name from migrations order by id`).map((r) => r.name) : [];
    const files = await migrationFiles();
    return {
      applied,
      pending: files.filter((f) => !applied.includes(f)),
      unknown: applied.filter((a) => !files.includes(a)),
    };
  } finally {
    await sql.end();
  }
}
