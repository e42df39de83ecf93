/**
 * The one place that reads the environment. Every process calls loadConfig() once in its main;
 * nothing reads process.env at import time.
 */
import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { SiteName } from "../sites/names.ts";

/** Empty strings count as unset, so `FOO=` in an env file falls back to the default. */
const unsetIfEmpty = (v: unknown) => (typeof v === "string" && v.trim() === "" ? undefined : v);

/** Wraps a variable's schema so that unset and empty both mean "use the default / leave undefined". */
const env = <T extends z.ZodType>(schema: T) => z.preprocess(unsetIfEmpty, schema);

const url = (protocols: string[], example: string) =>
  z.string().refine((s) => {
    try {
      return protocols.includes(new URL(s).protocol);
    } catch {
      return false;
    }
  }, `must be a ${protocols.join(" or ")} URL, e.g. ${example}`);

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** A 32-byte AES-256 key, given as 64 hex characters or base64. */
const secretKey = z.string().transform((s, ctx) => {
  const bytes = /^[0-9a-fA-F]{64}$/.test(s) ? Buffer.from(s, "hex") : Buffer.from(s, "base64");
  if (bytes.length !== 32) {
    ctx.addIssue({ code: "custom", message: "must be 32 bytes as 64 hex characters or base64 (generate one with: openssl rand -hex 32)" });
    return z.NEVER;
  }
  return bytes;
});

// Where dev_up.sh keeps the key it generated, so any process started from this checkout (a DKU
// in a fresh shell, say) decrypts what the API encrypted without copying the key around.
const DEV_KEY_FILE = fileURLToPath(new URL("../../.run/secret_key", import.meta.url));

// A fixed key is only acceptable for local development; production must set its own.
const DEV_SECRET_KEY = "6b657474657220646576206b6579202d206e6f7420666f722070726f64756374";

const EnvSchema = z.object({
  NODE_ENV: env(z.enum(["development", "test", "production"]).default("development")),
  DATABASE_URL: env(url(["postgres:", "postgresql:"], "postgres://ketter:ketter@127.0.0.1:5432/ketter").default("postgres://ketter:ketter@127.0.0.1:5432/ketter")),
  DATABASE_POOL_MAX: env(int(1, 100).default(10)),
  REDIS_URL: env(url(["redis:", "rediss:"], "redis://127.0.0.1:6379/0").default("redis://127.0.0.1:6379/0")),
  REDIS_KEY_PREFIX: env(z.string().regex(/^[A-Za-z0-9:_-]+$/, "letters, digits, ':', '_' and '-' only").default("ketter:")),
  API_HOST: env(z.string().default("127.0.0.1")),
  API_PORT: env(int(1, 65535).default(8080)),
  KETTER_API_URL: env(url(["http:", "https:"], "http://127.0.0.1:8080").optional()),
  KETTER_SECRET_KEY: env(secretKey.optional()),
  KETTER_SECRET_KEY_FILE: env(z.string().optional()),
  KETTER_API_TOKEN: env(z.string().min(16, "must be at least 16 characters").optional()),
  LOG_LEVEL: env(z.enum(["debug", "info", "warn", "error"]).default("info")),
  // The machine this process runs for: a worker takes only its site's jobs (and any-site ones); the
  // API gives it to a new local portal while no worker has ever run. Default: the host name.
  KETTER_SITE: env(SiteName.optional()),
  WORKER_CONCURRENCY: env(int(1, 64).default(2)),
  WORKER_LEASE_MS: env(int(1000, 3_600_000).default(30_000)),
  WORKER_SHUTDOWN_GRACE_MS: env(int(0, 3_600_000).default(30_000)),
  // Retry backoff: base · 2^(attempt-1), capped, with jitter (see worker/backoff.ts).
  WORKER_RETRY_BASE_MS: env(int(0, 3_600_000).default(5_000)),
  WORKER_RETRY_MAX_MS: env(int(0, 86_400_000).default(300_000)),
  // How often each worker compares unfinished jobs in Postgres with Redis (Redis lost, enqueue failed).
  WORKER_RECONCILE_MS: env(int(100, 3_600_000).default(15_000)),
  // Read rate limit per job, so transfers leave room on a shared link; 0 = unlimited.
  WORKER_MAX_BYTES_PER_SEC: env(int(0, Number.MAX_SAFE_INTEGER).default(0)),
  JOB_MAX_ATTEMPTS: env(int(1, 100).default(3)),
  KETTER_DKU_REPORT_DIR: env(z.string().default("docs/dku_reports")),
});

export type Env = z.output<typeof EnvSchema>;

/** The worker process's timings and limits (WORKER_* variables). */
export interface WorkerConfig {
  concurrency: number;
  leaseMs: number;
  shutdownGraceMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  reconcileMs: number;
  maxBytesPerSec: number;
}

/** Validated configuration shared by every process. */
export interface Config {
  env: Env["NODE_ENV"];
  databaseUrl: string;
  databasePoolMax: number;
  redisUrl: string;
  redisKeyPrefix: string;
  api: { host: string; port: number; url: string; token: string | undefined };
  secretKey: Buffer;
  logLevel: Env["LOG_LEVEL"];
  worker: WorkerConfig;
  jobMaxAttempts: number;
  dkuReportDir: string;
  /** KETTER_SITE, else the host name. */
  site: string;
}

/** Raised when the environment is invalid; `problems` lists every bad variable at once. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/**
 * Validates `env` (default: process.env) and returns the configuration, or throws ConfigError naming
 * every problem. `devKeyFile` is where a development key is looked for when none is given.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env, opts: { devKeyFile?: string; hostname?: string } = {}): Config {
  const parsed = EnvSchema.safeParse(env);
  const problems = parsed.success
    ? []
    : parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}${describeValue(env, i.path[0])}`);
  const key = parsed.success ? resolveSecretKey(parsed.data, opts.devKeyFile ?? DEV_KEY_FILE, problems) : undefined;
  const site = parsed.success ? resolveSite(parsed.data, opts.hostname ?? hostname(), problems) : undefined;
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const e = parsed.data;
  return {
    env: e.NODE_ENV,
    databaseUrl: e.DATABASE_URL,
    databasePoolMax: e.DATABASE_POOL_MAX,
    redisUrl: e.REDIS_URL,
    redisKeyPrefix: e.REDIS_KEY_PREFIX,
    api: {
      host: e.API_HOST,
      port: e.API_PORT,
      url: e.KETTER_API_URL ?? `http://${e.API_HOST === "0.0.0.0" ? "127.0.0.1" : e.API_HOST}:${e.API_PORT}`,
      token: e.KETTER_API_TOKEN,
    },
    secretKey: key ?? Buffer.from(DEV_SECRET_KEY, "hex"),
    logLevel: e.LOG_LEVEL,
    worker: {
      concurrency: e.WORKER_CONCURRENCY,
      leaseMs: e.WORKER_LEASE_MS,
      shutdownGraceMs: e.WORKER_SHUTDOWN_GRACE_MS,
      retryBaseMs: e.WORKER_RETRY_BASE_MS,
      retryMaxMs: e.WORKER_RETRY_MAX_MS,
      reconcileMs: e.WORKER_RECONCILE_MS,
      maxBytesPerSec: e.WORKER_MAX_BYTES_PER_SEC,
    },
    jobMaxAttempts: e.JOB_MAX_ATTEMPTS,
    dkuReportDir: e.KETTER_DKU_REPORT_DIR,
    site: site!,
  };
}

/** KETTER_SITE, else the host name when it makes a valid site name (a container's may not). */
function resolveSite(e: Env, host: string, problems: string[]): string | undefined {
  if (e.KETTER_SITE) return e.KETTER_SITE;
  if (SiteName.safeParse(host).success) return host;
  problems.push(`KETTER_SITE: not set, and the host name ${JSON.stringify(host)} is not a valid site name; set KETTER_SITE (1-64 letters, digits, '.', '_' or '-')`);
  return undefined;
}

/**
 * The portal-encryption key: KETTER_SECRET_KEY, else the file KETTER_SECRET_KEY_FILE names, else (in
 * development) the key dev_up.sh generated; undefined means the fixed development key.
 */
function resolveSecretKey(e: Env, devKeyFile: string, problems: string[]): Buffer | undefined {
  if (e.KETTER_SECRET_KEY) return e.KETTER_SECRET_KEY;
  const file = e.KETTER_SECRET_KEY_FILE ?? (e.NODE_ENV !== "production" && existsSync(devKeyFile) ? devKeyFile : undefined);
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, "utf8").trim();
    } catch (err) {
      problems.push(`KETTER_SECRET_KEY_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
      return undefined;
    }
    const key = secretKey.safeParse(text);
    if (key.success) return key.data;
    problems.push(`KETTER_SECRET_KEY_FILE: ${file} ${key.error.issues[0]?.message ?? "is not a valid key"}`);
    return undefined;
  }
  if (e.NODE_ENV === "production") problems.push("KETTER_SECRET_KEY: required in production (generate one with: openssl rand -hex 32)");
  return undefined;
}

function describeValue(env: Record<string, string | undefined>, key: PropertyKey | undefined): string {
  if (typeof key !== "string" || env[key] === undefined) return " (not set)";
  // Secrets are never echoed back, even when wrong.
  if (/SECRET|TOKEN|PASSWORD/.test(key) || key.endsWith("_URL")) return "";
  return ` (got ${JSON.stringify(env[key])})`;
}
