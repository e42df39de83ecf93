// ley migration: the SQL lives beside it so it can be read and diffed as SQL.
import type { Sql } from "postgres";
import { runSqlFile } from "../sql_file.ts";

export const up = (sql: Sql) => runSqlFile(sql, new URL("./0004_job_fencing_and_list_indexes.up.sql", import.meta.url));
export const down = (sql: Sql) => runSqlFile(sql, new URL("./0004_job_fencing_and_list_indexes.down.sql", import.meta.url));
