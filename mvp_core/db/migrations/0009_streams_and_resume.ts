// ley migration: the SQL lives beside it so it can be read and diffed as SQL.
import type { Sql } from "postgres";
import { runSqlFile } from "../sql_file.ts";

export const up = (sql: Sql) => runSqlFile(sql, new URL("./0009_streams_and_resume.up.sql", import.meta.url));
export const down = (sql: Sql) => runSqlFile(sql, new URL("./0009_streams_and_resume.down.sql", import.meta.url));
