import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../testing/ports.ts";

const INFRA = import.meta.dir;
const COMPOSE = join(INFRA, "docker-compose.yml");

function run(cmd: string[], env: Record<string, string | undefined> = {}) {
  const p = Bun.spawnSync(cmd, { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

describe("docker-compose.yml", () => {
  test("validates and defines the four services with health checks and persistent volumes", () => {
    const r = run(["docker-compose", "-f", COMPOSE, "config"], { KETTER_SECRET_KEY: "ab".repeat(32) });
    expect(r.err).not.toContain("ERROR");
    expect(r.code).toBe(0);
    const config = Bun.YAML.parse(r.out) as {
      services: Record<string, { healthcheck?: unknown; volumes?: unknown[]; command?: string[]; depends_on?: Record<string, { condition: string }> }>;
      volumes: Record<string, unknown>;
    };
    expect(Object.keys(config.services).sort()).toEqual(["api", "migrate", "postgres", "redis", "worker"]);
    for (const name of ["api", "postgres", "redis"]) expect(config.services[name]!.healthcheck).toBeDefined();
    expect(config.services.redis!.command).toContain("--appendonly");
    expect(Object.keys(config.volumes).sort()).toEqual(["ketterdata", "pgdata", "redisdata"]);
    expect(config.services.api!.depends_on?.migrate?.condition).toBe("service_completed_successfully");
    expect(existsSync(join(INFRA, "Dockerfile"))).toBe(true);
  });

  test("refuses to render without an encryption key, saying how to make one", () => {
    const r = run(["docker-compose", "-f", COMPOSE, "config", "-q"], { KETTER_SECRET_KEY: undefined });
    expect(r.code).not.toBe(0);
    expect(r.err).toContain("openssl rand -hex 32");
  });
});

describe("dev_up.sh / dev_down.sh (native path)", () => {
  test("bring the stack up, are harmless twice, and leave nothing running after dev_down", async () => {
    const runDir = await mkdtemp(join(tmpdir(), "ketter-devup-"));
    const [pgPort, redisPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const env = {
      KETTER_RUN_DIR: runDir,
      DATABASE_URL: `postgres://ketter:devpass@127.0.0.1:${pgPort}/ketter`,
      REDIS_URL: `redis://127.0.0.1:${redisPort}/0`,
      API_PORT: String(apiPort),
      KETTER_SKIP_DKU: "1",
    };
    let pgData: string | undefined;
    try {
      const up = run(["bash", join(INFRA, "dev_up.sh")], env);
      expect(up.err).toContain("Swagger UI");
      expect(up.code).toBe(0);
      pgData = readFileSync(join(runDir, "postgres.started"), "utf8").trim();
      const pids = ["api", "worker", "redis"].filter((n) => existsSync(join(runDir, `${n}.pid`)))
        .map((n) => Number(readFileSync(join(runDir, `${n}.pid`), "utf8")));
      expect(pids.length).toBe(3);
      for (const pid of pids) expect(() => process.kill(pid, 0)).not.toThrow();
      const health = await fetch(`http://127.0.0.1:${apiPort}/health`);
      expect(health.status).toBe(200);

      const again = run(["bash", join(INFRA, "dev_up.sh")], env);
      expect(again.code).toBe(0);
      expect(again.err).toContain("already running");

      const down = run(["bash", join(INFRA, "dev_down.sh")], env);
      expect(down.code).toBe(0);
      for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
      const stillOpen = await Promise.all([pgPort, redisPort, apiPort].map((port) =>
        Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).then((s) => (s.end(), true), () => false)));
      expect(stillOpen).toEqual([false, false, false]);
    } finally {
      run(["bash", join(INFRA, "dev_down.sh")], env);
      await rm(runDir, { recursive: true, force: true });
      if (pgData?.startsWith("/var/lib/postgresql/ketter-") || pgData?.startsWith(runDir)) await rm(pgData, { recursive: true, force: true });
    }
  }, 180_000);
});
