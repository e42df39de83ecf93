import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { testRedisUrl } from "../testing/services.ts";
import { checkRedis, judgeRedis } from "./redis.ts";
import { startRedisServer, type RedisServer } from "../testing/redis_server.ts";

// Real servers start on demand; bun 1.4.5 ignores bunfig's [test] timeout.
setDefaultTimeout(60_000);

const started: RedisServer[] = [];
afterAll(async () => {
  for (const r of started) await r.stop();
});
async function ownRedis(args: string[]): Promise<string> {
  const r = await startRedisServer(args);
  started.push(r);
  return r.url;
}

describe("redis check", () => {
  test("append-only and noeviction: ok, with the version", async () => {
    const r = await checkRedis(await ownRedis(["--appendonly", "yes", "--maxmemory-policy", "noeviction"]));
    expect(r.status).toBe("ok");
    expect(r.value).toMatch(/^Redis \d+\.\d+/);
    expect(r.details).toMatchObject({ aofEnabled: true, maxmemoryPolicy: "noeviction" });
  });

  test("nothing persisted (the test harness's Redis): warn, with how to enable persistence", async () => {
    const r = await checkRedis(await testRedisUrl());
    expect(r.status).toBe("warn");
    expect(r.value).toContain("nothing is persisted");
    expect(r.hint).toContain("appendonly yes");
  });

  test("an evicting policy: warn, with the noeviction fix", async () => {
    const r = await checkRedis(await ownRedis(["--save", "900 1", "--maxmemory-policy", "allkeys-lru"]));
    expect(r).toMatchObject({ status: "warn", hint: expect.stringContaining("noeviction") });
    expect(r.value).toContain("persistence rdb");
  });

  test("a stopped Redis: CheckFailure naming the address, with a hint", async () => {
    const own = await startRedisServer();
    await own.stop();
    const err = await checkRedis(own.url).then(() => null, (e: unknown) => e as Error & { hint?: string });
    expect(err?.message).toContain("cannot connect to 127.0.0.1:");
    expect(err?.message).toContain("ECONNREFUSED");
    expect(err?.hint).toContain("REDIS_URL");
  });

  test("CONFIG refused: persistence unknown is a warning, not a pass", () => {
    const r = judgeRedis({ version: "7.2.0", maxmemoryPolicy: "noeviction", aofEnabled: false, savePolicy: null, latencyMs: 1 }, "r:6379");
    expect(r).toMatchObject({ status: "warn", value: expect.stringContaining("could not be read") });
  });
});
