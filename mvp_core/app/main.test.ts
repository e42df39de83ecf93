// `bun run api` as a process: starts from the environment, serves, and stops cleanly on SIGTERM.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { freePort, waitFor } from "../testing/ports.ts";
import { testDatabaseUrl, testRedisUrl, testRedisPrefix } from "../testing/services.ts";

const REPO = join(import.meta.dir, "../..");

describe("api main", () => {
  test("listens, answers /health and /swagger, exits 143 on SIGTERM after a clean stop", async () => {
    const port = await freePort();
    const proc = Bun.spawn(["bun", "mvp_core/app/main.ts"], {
      cwd: REPO,
      env: { ...process.env, NODE_ENV: "test", DATABASE_URL: await testDatabaseUrl(), REDIS_URL: await testRedisUrl(), REDIS_KEY_PREFIX: testRedisPrefix(), API_PORT: String(port), LOG_LEVEL: "info" },
      stdout: "pipe",
      stderr: "pipe",
    });
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/health`)).status === 200, { what: "the API to answer /health", timeoutMs: 30_000 });
      expect((await fetch(`http://127.0.0.1:${port}/swagger`)).headers.get("content-type")).toContain("text/html");
    } finally {
      proc.kill("SIGTERM");
    }
    expect(await proc.exited).toBe(143);
    const out = await new Response(proc.stdout).text();
    const lines = out.trim().split("\n").map((l) => JSON.parse(l) as { msg: string });
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(["api listening", "request", "api stopped"]));
  }, 60_000);

  test("a bad environment exits 2 naming every problem", async () => {
    const proc = Bun.spawn(["bun", "mvp_core/app/main.ts"], {
      cwd: REPO,
      env: { ...process.env, API_PORT: "99999", DATABASE_URL: "mysql://x", KETTER_API_TOKEN: "short" },
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(await proc.exited).toBe(2);
    const err = await new Response(proc.stderr).text();
    expect(err).toContain("API_PORT");
    expect(err).toContain("DATABASE_URL");
    expect(err).toContain("KETTER_API_TOKEN");
    expect(err).not.toContain("short");
  }, 30_000);
});
