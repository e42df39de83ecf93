/**
 * ley driver for postgres.js. ley's bundled driver does `require("postgres")(…)`, which under Bun
 * yields the ESM namespace rather than the function, so we hand ley this adapter instead. It keeps
 * ley's contract: one bookkeeping table, and every batch of migrations in one transaction.
 */
import postgres, { type Options, type Sql } from "postgres";

interface MigrationFile {
  name: string;
  abs: string;
}

type Migration = { up?: (sql: Sql) => unknown; down?: (sql: Sql) => unknown };

/** Opens ley's single connection. */
export function connect(config: Options<{}>): Sql {
  return postgres({ ...config, max: 1 });
}

/** Creates the bookkeeping table when missing; returns the applied migrations in order. */
export async function setup(sql: Sql): Promise<{ name: string }[]> {
  await sql`create table if not exists migrations (id serial primary key, name varchar(255) not null, created_at timestamp not null)`;
  return sql<{ name: string }[]>`select name from migrations order by id asc`;
}

/** Runs `method` of every file in one transaction, recording each in the bookkeeping table. */
export async function loop(sql: Sql, files: MigrationFile[], method: "up" | "down"): Promise<void> {
  await sql.begin(async (tx) => {
    for (const file of files) {
      const migration = (await import(file.abs)) as Migration;
      try {
        await migration[method]?.(tx as unknown as Sql);
      } catch (err) {
        throw new Error(`migration ${file.name} (${method}) failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      if (method === "up") await tx`insert into migrations (name, created_at) values (${file.name}, now())`;
      else await tx`delete from migrations where name = ${file.name}`;
    }
  });
}

/** Closes the connection. */
export async function end(sql: Sql): Promise<void> {
  await sql.end();
}
