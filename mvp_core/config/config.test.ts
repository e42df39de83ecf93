import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, loadConfig } from "./config.ts";

const NO_DEV_KEY = { devKeyFile: "/nonexistent/ketter/secret_key" };

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env, NO_DEV_KEY);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error("expected loadConfig to fail");
}

describe("config", () => {
  test("an empty environment gives working local-development defaults", () => {
    const c = loadConfig({}, NO_DEV_KEY);
    expect(c.databaseUrl).toBe("postgres://ketter:ketter@127.0.0.1:5432/ketter");
    expect(c.redisUrl).toBe("redis://127.0.0.1:6379/0");
    expect(c.api).toEqual({ host: "127.0.0.1", port: 8080, url: "http://127.0.0.1:8080", token: undefined });
    expect(c.secretKey).toHaveLength(32);
    expect(c.worker.concurrency).toBe(2);
  });

  test("numbers are converted and empty strings count as unset", () => {
    const c = loadConfig({ API_PORT: "9000", WORKER_CONCURRENCY: "4", LOG_LEVEL: "", REDIS_URL: "" });
    expect(c.api.port).toBe(9000);
    expect(c.worker.concurrency).toBe(4);
    expect(c.logLevel).toBe("info");
    expect(c.redisUrl).toBe("redis://127.0.0.1:6379/0");
  });

  test("a hex or base64 secret key becomes 32 bytes", () => {
    const hex = "ab".repeat(32);
    expect(loadConfig({ KETTER_SECRET_KEY: hex }).secretKey.toString("hex")).toBe(hex);
    const b64 = Buffer.alloc(32, 7).toString("base64");
    expect(loadConfig({ KETTER_SECRET_KEY: b64 }).secretKey).toEqual(Buffer.alloc(32, 7));
  });

  test("every invalid variable is reported at once, naming it and saying what to fix", () => {
    const problems = problemsOf({
      DATABASE_URL: "mysql://x",
      REDIS_URL: "not a url",
      API_PORT: "70000",
      WORKER_CONCURRENCY: "two",
      LOG_LEVEL: "loud",
      KETTER_SECRET_KEY: "short",
      KETTER_API_TOKEN: "abc",
    });
    const named = problems.map((p) => p.split(":")[0]).sort();
    expect(named).toEqual(["API_PORT", "DATABASE_URL", "KETTER_API_TOKEN", "KETTER_SECRET_KEY", "LOG_LEVEL", "REDIS_URL", "WORKER_CONCURRENCY"]);
    expect(problems.find((p) => p.startsWith("DATABASE_URL"))).toContain("postgres://");
    expect(problems.find((p) => p.startsWith("KETTER_SECRET_KEY"))).toContain("openssl rand -hex 32");
    expect(problems.find((p) => p.startsWith("API_PORT"))).toContain('got "70000"');
  });

  test("secrets are never echoed back in problems", () => {
    const problems = problemsOf({ KETTER_SECRET_KEY: "hunter2-not-a-key", KETTER_API_TOKEN: "tiny" });
    expect(problems.join("\n")).not.toContain("hunter2");
    expect(problems.join("\n")).not.toContain("tiny");
  });

  test("KETTER_SITE defaults to the host name; a bad one, or a host name that is no site name, is reported", () => {
    expect(loadConfig({}, { ...NO_DEV_KEY, hostname: "lab-1.example" }).site).toBe("lab-1.example");
    expect(loadConfig({ KETTER_SITE: "srvtrf", NODE_ENV: "" }, { ...NO_DEV_KEY, hostname: "lab-1" }).site).toBe("srvtrf");
    expect(loadConfig({ KETTER_SITE: "  " }, { ...NO_DEV_KEY, hostname: "lab-1" }).site).toBe("lab-1");
    expect(problemsOf({ KETTER_SITE: "lab 1" })).toEqual([expect.stringMatching(/^KETTER_SITE: must be 1-64 letters.*\(got "lab 1"\)$/)]);
    let problems: string[] = [];
    try {
      loadConfig({}, { ...NO_DEV_KEY, hostname: "_container" });
    } catch (err) {
      problems = (err as ConfigError).problems;
    }
    expect(problems).toEqual([expect.stringContaining('KETTER_SITE: not set, and the host name "_container" is not a valid site name')]);
  });

  test("production refuses to start without its own secret key", () => {
    expect(problemsOf({ NODE_ENV: "production" })).toEqual([expect.stringContaining("KETTER_SECRET_KEY: required in production")]);
  });

  test("a key file is read (explicitly, or dev_up's in development) and a bad one is reported", () => {
    const dir = mkdtempSync(join(tmpdir(), "ketter-config-"));
    try {
      const file = join(dir, "secret_key");
      writeFileSync(file, "cd".repeat(32) + "\n");
      expect(loadConfig({ KETTER_SECRET_KEY_FILE: file }, NO_DEV_KEY).secretKey.toString("hex")).toBe("cd".repeat(32));
      expect(loadConfig({}, { devKeyFile: file }).secretKey.toString("hex")).toBe("cd".repeat(32));
      // The variable wins over the file; production never falls back to dev_up's file.
      expect(loadConfig({ KETTER_SECRET_KEY: "ab".repeat(32), KETTER_SECRET_KEY_FILE: file }).secretKey.toString("hex")).toBe("ab".repeat(32));
      expect(() => loadConfig({ NODE_ENV: "production" }, { devKeyFile: file })).toThrow(/KETTER_SECRET_KEY: required in production/);

      writeFileSync(file, "too short");
      expect(problemsOf({ KETTER_SECRET_KEY_FILE: file })).toEqual([expect.stringContaining("must be 32 bytes")]);
      expect(problemsOf({ KETTER_SECRET_KEY_FILE: join(dir, "missing") })).toEqual([expect.stringContaining("ENOENT")]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
