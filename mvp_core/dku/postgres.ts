/** Postgres checks: the server answers, its version, and the schema matches this build's migrations. */
import { connectDb } from "../db/client.ts";
import { migrationStatus } from "../db/migrate.ts";
import { listPortals } from "../portals/repository.ts";
import { CheckFailure, errorMessage, type CheckOutcome } from "./check.ts";
import type { DiskPlace } from "./runtime.ts";
import { SMOKE_PREFIX } from "./smoke.ts";

/** Where a Postgres URL points, without its password (for values and hints). */
export function describeDatabaseUrl(databaseUrl: string): string {
  try {
    const u = new URL(databaseUrl);
    return `${u.hostname}:${u.port || "5432"}${u.pathname}`;
  } catch {
    return "an unparsable DATABASE_URL";
  }
}

function unreachable(databaseUrl: string, err: unknown): CheckFailure {
  const where = describeDatabaseUrl(databaseUrl);
  return new CheckFailure(
    `cannot connect to ${where}: ${errorMessage(err)}`,
    `start Postgres (mvp_core/infra/dev_up.sh) or fix DATABASE_URL; try: psql "$DATABASE_URL" -c 'select 1'`,
  );
}

/** Connects, runs one query and reports the server version and round-trip time. */
export async function checkPostgres(databaseUrl: string): Promise<CheckOutcome> {
  const sql = connectDb(databaseUrl, { max: 1, applicationName: "ketter-dku" });
  try {
    const started = performance.now();
    const [row] = await sql<{ version: string }[]>`select current_setting('server_version') as version`.catch((err: unknown) => {
      throw unreachable(databaseUrl, err);
    });
    const latencyMs = Math.round(performance.now() - started);
    const version = row?.version ?? "unknown";
    return { status: "ok", value: `PostgreSQL ${version} at ${describeDatabaseUrl(databaseUrl)}`, details: { version, latencyMs } };
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** Every shipped migration applied and none the build does not know. */
export async function checkMigrations(databaseUrl: string): Promise<CheckOutcome> {
  const status = await migrationStatus(databaseUrl).catch((err: unknown) => {
    throw unreachable(databaseUrl, err);
  });
  const details = { ...status };
  if (status.unknown.length > 0) {
    return {
      status: "fail",
      value: `${status.unknown.length} applied migration(s) unknown to this build: ${status.unknown.join(", ")}`,
      hint: "the database was migrated by a newer Ketter: deploy that version here, or restore a matching database",
      details,
    };
  }
  if (status.pending.length > 0) {
    return {
      status: "fail",
      value: `${status.pending.length} pending: ${status.pending.join(", ")}`,
      hint: "apply them: bun run migrate up",
      details,
    };
  }
  return { status: "ok", value: `${status.applied.length} applied, none pending`, details };
}

/**
 * Root folders of the live local portals at this machine's `site` (the disk check measures them;
 * other sites' folders are on other machines; one with no site yet may be here); throws when
 * Postgres is unreachable.
 */
export async function localPortalPlaces(databaseUrl: string, site: string): Promise<DiskPlace[]> {
  const sql = connectDb(databaseUrl, { max: 1, applicationName: "ketter-dku" });
  try {
    // Smoke portals (this or a concurrent DKU run) live in temp folders that come and go.
    const here = (p: { site: string | null }) => p.site === null || p.site === site;
    const rows = (await listPortals(sql)).filter((p) => p.kind === "local" && here(p) && !p.name.startsWith(`${SMOKE_PREFIX}-`));
    return rows.map((r) => ({ label: `portal ${r.name}`, path: r.root_path, mustExist: true }));
  } finally {
    await sql.end({ timeout: 1 });
  }
}
