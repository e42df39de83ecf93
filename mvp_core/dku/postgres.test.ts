import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { connectDb } from "../db/client.ts";
import { migrationFiles } from "../db/migrate.ts";
import { freePort } from "../testing/ports.ts";
import { createEmptyDatabase, testDatabaseUrl, uniqueId } from "../testing/services.ts";
import { CheckFailure } from "./check.ts";
import { checkMigrations, checkPostgres, describeDatabaseUrl, localPortalPlaces } from "./postgres.ts";

// Real servers start on demand; bun 1.4.5 ignores bunfig's [test] timeout.
setDefaultTimeout(60_000);

describe("postgres checks", () => {
  test("a migrated database: connects, reports its version, all migrations applied", async () => {
    const url = await testDatabaseUrl();
    const conn = await checkPostgres(url);
    expect(conn.status).toBe("ok");
    expect(conn.value).toMatch(/^PostgreSQL \d+/);
    expect(conn.value).not.toContain("@");
    const mig = await checkMigrations(url);
    expect(mig).toMatchObject({ status: "ok", value: `${(await migrationFiles()).length} applied, none pending` });
  });

  test("an empty database: every migration pending, with the command to apply them", async () => {
    const r = await checkMigrations(await createEmptyDatabase());
    expect(r).toMatchObject({ status: "fail", hint: "apply them: bun run migrate up" });
    expect(r.value).toContain("pending");
  });

  test("a migration this build does not ship: fail", async () => {
    const url = await createEmptyDatabase();
    const sql = connectDb(url, { max: 1 });
    try {
      // The shape ley's driver creates; one row this build has never heard of.
      await sql`create table migrations (id serial primary key, name text not null, created_at timestamptz default now())`;
      for (const f of await migrationFiles()) await sql`insert into migrations (name) values (${f})`;
      await sql`insert into migrations (name) values ('9999_from_the_future.ts')`;
    } finally {
      await sql.end();
    }
    const r = await checkMigrations(url);
    expect(r).toMatchObject({ status: "fail", value: expect.stringContaining("9999_from_the_future.ts") });
  });

  test("nothing listening: CheckFailure with a hint, and no password in the message", async () => {
    const url = `postgres://ketter:s3cret@127.0.0.1:${await freePort()}/ketter`;
    for (const check of [checkPostgres, checkMigrations]) {
      const err = await check(url).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(CheckFailure);
      expect((err as CheckFailure).message).toContain("ECONNREFUSED");
      expect((err as CheckFailure).message).not.toContain("s3cret");
      expect((err as CheckFailure).hint).toContain("DATABASE_URL");
    }
    expect(describeDatabaseUrl(url)).toMatch(/^127\.0\.0\.1:\d+\/ketter$/);
  });

  test("live local portal roots of this site are listed for the disk check; other sites', deleted and smoke ones are not", async () => {
    const url = await testDatabaseUrl();
    const sql = connectDb(url, { max: 1 });
    const name = `dku-disk-${uniqueId()}`.replaceAll("_", "-");
    try {
      await sql`insert into portals (name, kind, root_path, site) values (${name}, 'local', '/srv/footage', 'here')`;
      await sql`insert into portals (name, kind, root_path) values (${`${name}-unsited`}, 'local', '/srv/unsited')`;
      await sql`insert into portals (name, kind, root_path, site) values (${`${name}-away`}, 'local', '/srv/away', 'other-site')`;
      await sql`insert into portals (name, kind, root_path, site, deleted_at) values (${`${name}-old`}, 'local', '/srv/old', 'here', now())`;
      await sql`insert into portals (name, kind, root_path, site) values (${`dku-smoke-${name}`}, 'local', '/tmp/ketter-dku-smoke-x', 'here')`;
      const places = await localPortalPlaces(url, "here");
      expect(places).toContainEqual({ label: `portal ${name}`, path: "/srv/footage", mustExist: true });
      // A portal from before sites existed may be on this machine; another site's is not.
      expect(places.map((p) => p.path)).toContain("/srv/unsited");
      expect(places.map((p) => p.path)).not.toContain("/srv/away");
      expect(places.map((p) => p.path)).not.toContain("/srv/old");
      expect(places.map((p) => p.path)).not.toContain("/tmp/ketter-dku-smoke-x");
    } finally {
      await sql`delete from portals where name like ${`%${name}%`}`;
      await sql.end();
    }
  });
});
