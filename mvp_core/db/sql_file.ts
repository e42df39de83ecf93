import type { Sql } from "postgres";

/** Runs a whole .sql file (several statements, no parameters) on `sql`, which may be a transaction. */
export async function runSqlFile(sql: Sql, file: URL): Promise<void> {
  await sql.unsafe(await Bun.file(file).text());
}
