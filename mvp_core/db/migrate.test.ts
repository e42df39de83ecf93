import { describe, expect, test } from "bun:test";
import { connectDb } from "./client.ts";
import { migrateDown, migrateUp, migrationFiles, migrationStatus } from "./migrate.ts";
import { createEmptyDatabase } from "../testing/services.ts";

async function tables(url: string): Promise<string[]> {
  const sql = connectDb(url, { max: 1 });
  try {
    const rows = await sql<{ t: string }[]>`select table_name as t from information_schema.tables where table_schema = 'public' order by 1`;
    return rows.map((r) => r.t);
  } finally {
    await sql.end();
  }
}

describe("migrations", () => {
  test("up → down → up on an empty database", async () => {
    const url = await createEmptyDatabase();
    const files = await migrationFiles();
    expect(files.length).toBeGreaterThan(0);

    expect(await migrateUp(url)).toEqual(files);
    expect(await tables(url)).toEqual(["job_events", "job_files", "jobs", "migrations", "portals", "sites"]);
    expect(await migrateUp(url)).toEqual([]);
    expect(await migrationStatus(url)).toEqual({ applied: files, pending: [], unknown: [] });

    expect(await migrateDown(url, { all: true })).toEqual([...files].reverse());
    expect(await tables(url)).toEqual(["migrations"]);
    expect((await migrationStatus(url)).pending).toEqual(files);

    expect(await migrateUp(url)).toEqual(files);
    expect(await tables(url)).toEqual(["job_events", "job_files", "jobs", "migrations", "portals", "sites"]);
  });

  test("a failing migration leaves the schema as it was", async () => {
    const url = await createEmptyDatabase();
    const sql = connectDb(url, { max: 1 });
    try {
      // A table the migration wants to create already exists, so its first batch must roll back whole.
      await sql`create table jobs (id int)`;
      await expect(migrateUp(url)).rejects.toThrow(/jobs/);
      const rows = await sql<{ t: string }[]>`select table_name as t from information_schema.tables where table_schema = 'public' order by 1`;
      expect(rows.map((r) => r.t)).toEqual(["jobs", "migrations"]);
      expect(await sql`select * from migrations`).toHaveLength(0);
    } finally {
      await sql.end();
    }
  });
});
