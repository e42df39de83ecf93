/** API check: `GET /health` answers, how fast, and whether the API itself reaches its stores. */
import { z } from "zod";
import { CheckFailure, errorMessage, type CheckOutcome } from "./check.ts";

/** Slower than this and operators will feel it in the UI. */
export const API_SLOW_MS = 1_000;

const Dependency = z.object({ ok: z.boolean(), latencyMs: z.number().optional(), error: z.string().optional() });
/** The /health body as the API documents it (extra fields are ignored). */
const HealthBody = z.object({
  status: z.enum(["ok", "degraded"]),
  database: Dependency,
  redis: Dependency,
  queue: z.object({ pending: z.number(), processing: z.number() }).partial().optional(),
  workers: z.object({ live: z.number(), ids: z.array(z.string()) }).partial().optional(),
  version: z.string().optional(),
});
/** A parsed /health answer. */
export type Health = z.output<typeof HealthBody>;

/** Headers for every DKU request to the API (bearer token when configured). */
export function apiHeaders(token: string | undefined, extra: Record<string, string> = {}): Record<string, string> {
  return { accept: "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}), ...extra };
}

/** Calls `GET {apiUrl}/health` and judges the answer. */
export async function checkApi(api: { url: string; token: string | undefined }, signal: AbortSignal): Promise<CheckOutcome> {
  const url = new URL("/health", api.url).toString();
  const started = performance.now();
  let res: Response;
  try {
    res = await fetch(url, { headers: apiHeaders(api.token), signal });
  } catch (err) {
    throw new CheckFailure(
      `no answer from ${url}: ${errorMessage(err)}`,
      `start the API (bun run api, or mvp_core/infra/dev_up.sh) or fix KETTER_API_URL / API_HOST / API_PORT`,
    );
  }
  const latencyMs = Math.round(performance.now() - started);
  const text = await res.text();
  if (res.status === 401 || res.status === 403) {
    throw new CheckFailure(`${url} refused the DKU: HTTP ${res.status}`, "set KETTER_API_TOKEN to the API's token");
  }
  let parsed: ReturnType<typeof HealthBody.safeParse> | undefined;
  try {
    parsed = HealthBody.safeParse(JSON.parse(text));
  } catch (err) {
    throw new CheckFailure(`${url} answered HTTP ${res.status} with a body that is not JSON (${errorMessage(err)})`, `is something else listening on ${api.url}? check KETTER_API_URL`);
  }
  if (!parsed.success) {
    throw new CheckFailure(`${url} answered HTTP ${res.status} with an unexpected body: ${text.slice(0, 120)}`, `is something else listening on ${api.url}? check KETTER_API_URL`);
  }
  const verdict = judgeHealth(parsed.data, res.status, latencyMs);
  if (verdict.status === "fail") return verdict;
  const auth = await checkAuth(api, signal);
  if (auth) return auth;
  return { ...verdict, value: `${verdict.value}, ${api.token ? "token accepted" : "no token configured"}` };
}

/** /health is public, so a protected route tells whether the API accepts the DKU's token; null when it does. */
async function checkAuth(api: { url: string; token: string | undefined }, signal: AbortSignal): Promise<CheckOutcome | null> {
  const res = await fetch(new URL("/jobs?limit=1", api.url), { headers: apiHeaders(api.token), signal });
  await res.body?.cancel();
  if (res.status !== 401 && res.status !== 403) return null;
  return {
    status: "fail",
    value: `/health answers, but GET /jobs is refused with HTTP ${res.status} (${api.token ? "token rejected" : "no token sent"})`,
    hint: "set KETTER_API_TOKEN to the token the API was started with",
    details: { httpStatus: res.status },
  };
}

/** ok when the API reaches Postgres and Redis and answers quickly. */
export function judgeHealth(health: Health, httpStatus: number, latencyMs: number): CheckOutcome {
  const details = { httpStatus, latencyMs, health };
  const version = health.version ? `, version ${health.version}` : "";
  const broken = (["database", "redis"] as const).filter((k) => !health[k].ok);
  if (health.status !== "ok" || broken.length > 0) {
    const why = broken.map((k) => `${k}: ${health[k].error ?? "not ok"}`).join("; ") || "status degraded";
    return {
      status: "fail",
      value: `HTTP ${httpStatus} in ${latencyMs} ms, degraded (${why})`,
      hint: `the API cannot reach ${broken.join(" and ") || "a dependency"}: see the postgres/redis checks, and the API's DATABASE_URL/REDIS_URL`,
      details,
    };
  }
  if (latencyMs > API_SLOW_MS) {
    return { status: "warn", value: `HTTP ${httpStatus} in ${latencyMs} ms${version} (slow)`, hint: "the API answers slowly: check its CPU load and its log", details };
  }
  return { status: "ok", value: `HTTP ${httpStatus} in ${latencyMs} ms${version}`, details };
}
