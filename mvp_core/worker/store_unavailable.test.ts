// The worker's failure classification against the errors real Postgres and Redis clients raise: an
// outage of the stores is retried (STORE_UNAVAILABLE), a fault of the job's own code is not.
import { describe, expect, test } from "bun:test";
import { connectDb } from "../db/client.ts";
import { connectRedis } from "../queue/redis.ts";
import { freePort } from "../testing/ports.ts";
import { testDatabaseUrl, testSql } from "../testing/services.ts";
import { TransferError } from "../transfer_engine/index.ts";
import { DeadlineError, withDeadline } from "./deadline.ts";
import { failureOf, STORE_UNAVAILABLE_CODE } from "./job_run.ts";

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected the call to fail");
}

describe("failureOf", () => {
  test("Postgres not listening: retried as STORE_UNAVAILABLE", async () => {
    const url = new URL(await testDatabaseUrl());
    url.port = String(await freePort());
    const sql = connectDb(url.toString(), { max: 1 });
    try {
      const err = await rejection(sql`select 1`);
      expect(failureOf(err)).toMatchObject({ code: STORE_UNAVAILABLE_CODE, retryable: true });
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  test("a Postgres session terminated by the server (57P01, as at a shutdown): retried", async () => {
    const sql = await testSql(1);
    const admin = await testSql(1);
    const [row] = await sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
    const pid = row!.pid;
    // The victim is busy when the server ends its session, as a statement in flight at a restart is.
    const running = rejection(sql`select pg_sleep(30)`);
    await Bun.sleep(200);
    await admin`select pg_terminate_backend(${pid})`;
    const err = await running;
    expect((err as { code?: string }).code).toBeOneOf(["57P01", "CONNECTION_CLOSED"]);
    expect(failureOf(err)).toMatchObject({ code: STORE_UNAVAILABLE_CODE, retryable: true });
  });

  test("Redis not listening: retried as STORE_UNAVAILABLE", async () => {
    const redis = connectRedis(`redis://127.0.0.1:${await freePort()}`);
    redis.on("error", () => undefined);
    try {
      const err = await rejection(redis.get("k"));
      expect(failureOf(err)).toMatchObject({ code: STORE_UNAVAILABLE_CODE, retryable: true });
    } finally {
      redis.disconnect();
    }
  });

  test("a store call past its deadline: retried", async () => {
    const err = await rejection(withDeadline(new Promise(() => undefined), 1, "a hung call"));
    expect(err).toBeInstanceOf(DeadlineError);
    expect(failureOf(err)).toMatchObject({ code: STORE_UNAVAILABLE_CODE, retryable: true });
  });

  test("faults of the job's own code are not outages: a bad statement, a plain error, an engine error keep their verdict", async () => {
    const sql = await testSql(1);
    const syntax = await rejection(sql.unsafe("selec 1"));
    expect(failureOf(syntax)).toMatchObject({ code: "INTERNAL_ERROR", retryable: false });
    expect(failureOf(new TypeError("x is undefined"))).toMatchObject({ code: "INTERNAL_ERROR", retryable: false });
    expect(failureOf("a string")).toMatchObject({ code: "INTERNAL_ERROR", retryable: false });
    expect(failureOf(new AggregateError([]))).toMatchObject({ code: "INTERNAL_ERROR", retryable: false });
    expect(failureOf(new TransferError("SOURCE_NOT_FOUND", "gone", { retryable: false }))).toMatchObject({ code: "SOURCE_NOT_FOUND", retryable: false });
  });
});
