/**
 * The calls the field test makes to the running API, with the bearer token, and the answers parsed
 * (extra fields ignored) so a changed API shows up as a clear error instead of an undefined.
 */
import { z } from "zod";

/** A non-2xx answer, with the API's error code when the body had one. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string | undefined, message: string) {
    super(message);
    this.name = "ApiError";
  }
}

const SiteState = z.looseObject({
  name: z.string(),
  live: z.number(),
  workers: z.array(z.looseObject({ id: z.string() })),
  queue: z.looseObject({ pending: z.number(), processing: z.number(), delayed: z.number() }),
});
/** One site as /health lists it: its live workers and queue. */
export type SiteState = z.output<typeof SiteState>;

const Health = z.looseObject({
  status: z.string(),
  database: z.looseObject({ ok: z.boolean() }),
  redis: z.looseObject({ ok: z.boolean() }),
  workers: z.object({ live: z.number(), ids: z.array(z.string()) }),
  sites: z.array(SiteState),
  version: z.string(),
});
/** GET /health. */
export type Health = z.output<typeof Health>;

const Portal = z.looseObject({ id: z.string(), name: z.string(), kind: z.string(), hostKeyFingerprint: z.string().nullable() });
/** A portal as the API shows it. */
export type Portal = z.output<typeof Portal>;

const PortalCheck = z.looseObject({
  reachable: z.boolean(),
  hostKeyFingerprint: z.string().nullable(),
  fingerprintMatches: z.boolean().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
});
/** POST /portals/{id}/check. */
export type PortalCheck = z.output<typeof PortalCheck>;

const Job = z.looseObject({
  id: z.string(),
  type: z.string(),
  status: z.string(),
  strategy: z.string().nullable(),
  attempts: z.number(),
  maxAttempts: z.number(),
  progress: z.looseObject({ filesDone: z.number(), bytesDone: z.number(), bytesTotal: z.number().nullable() }),
  error: z.object({ code: z.string(), message: z.string().nullable() }).nullable(),
  site: z.string().nullable(),
  workerId: z.string().nullable(),
  waitingFor: z.string().nullable(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
});
/** A job as the API shows it. */
export type Job = z.output<typeof Job>;

const JobEvent = z.looseObject({ id: z.number(), at: z.string(), level: z.string(), kind: z.string(), message: z.string(), data: z.record(z.string(), z.unknown()) });
/** One entry of a job's event log. */
export type JobEvent = z.output<typeof JobEvent>;

/** What POST /jobs takes (the subset the field test uses). */
export interface JobRequest {
  type: "copy" | "move";
  source: { portal: string; path: string };
  target: { portal: string; path: string };
  options?: { strategy?: "auto" | "direct" | "zip"; verify?: "size" | "checksum"; maxAttempts?: number };
}

/** A small JSON client for the Ketter API. */
export class FieldApi {
  constructor(readonly baseUrl: string, private readonly token: string | undefined) {}

  private async call<T>(schema: z.ZodType<T>, method: string, path: string, opts: { body?: unknown; headers?: Record<string, string> } = {}): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json", ...opts.headers };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (opts.body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(new URL(path, this.baseUrl), {
      method,
      headers,
      signal: AbortSignal.timeout(30_000),
      ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
    });
    const text = await res.text();
    const body: unknown = text.trim() === "" ? null : parseJson(text);
    if (!res.ok) {
      const err = z.object({ error: z.object({ code: z.string().optional(), message: z.string().optional() }) }).safeParse(body);
      const code = err.success ? err.data.error.code : undefined;
      const message = err.success ? err.data.error.message : text.slice(0, 200);
      throw new ApiError(res.status, code, `${method} ${path}: HTTP ${res.status}${code ? ` ${code}` : ""}${message ? `: ${message}` : ""}`);
    }
    return schema.parse(body);
  }

  /** GET /health; a 503 (degraded) answer is returned, not thrown, since its body says what is wrong. */
  async health(): Promise<Health> {
    const res = await fetch(new URL("/health", this.baseUrl), { signal: AbortSignal.timeout(5_000) });
    return Health.parse(parseJson(await res.text()));
  }

  /** GET /portals (the preflight uses it to find out whether the token is accepted). */
  async listPortals(): Promise<void> {
    await this.call(z.unknown(), "GET", "/portals");
  }

  /** POST /portals. */
  createPortal(body: Record<string, unknown>): Promise<Portal> {
    return this.call(Portal, "POST", "/portals", { body });
  }

  /** PATCH /portals/{id}. */
  updatePortal(id: string, body: Record<string, unknown>): Promise<Portal> {
    return this.call(Portal, "PATCH", `/portals/${id}`, { body });
  }

  /** POST /portals/{id}/check. */
  checkPortal(id: string): Promise<PortalCheck> {
    return this.call(PortalCheck, "POST", `/portals/${id}/check`);
  }

  /** DELETE /portals/{id}. */
  async deletePortal(id: string): Promise<void> {
    await this.call(z.unknown(), "DELETE", `/portals/${id}`);
  }

  /** DELETE /sites/{name}: retires a site (409 while a worker of it beats or something still needs it). */
  async retireSite(name: string): Promise<void> {
    await this.call(z.unknown(), "DELETE", `/sites/${encodeURIComponent(name)}`);
  }

  /** POST /jobs with an Idempotency-Key, so a repeated submit cannot create a second job. */
  createJob(body: JobRequest, idempotencyKey: string): Promise<Job> {
    return this.call(Job, "POST", "/jobs", { body, headers: { "idempotency-key": idempotencyKey } });
  }

  /** GET /jobs/{id}. */
  getJob(id: string): Promise<Job> {
    return this.call(Job, "GET", `/jobs/${id}`);
  }

  /** POST /jobs/{id}/cancel. */
  async cancelJob(id: string): Promise<void> {
    await this.call(z.unknown(), "POST", `/jobs/${id}/cancel`);
  }

  /** The whole event log of a job, oldest first (paged through `after`). */
  async events(id: string): Promise<JobEvent[]> {
    const all: JobEvent[] = [];
    const Page = z.object({ events: z.array(JobEvent) });
    for (;;) {
      const after = all.at(-1)?.id ?? 0;
      const page = await this.call(Page, "GET", `/jobs/${id}/events?after=${after}&limit=1000`);
      all.push(...page.events);
      if (page.events.length < 1000) return all;
    }
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // Not JSON (a proxy's HTML page, a crash): the start of the text says more than a parse error.
    return { error: { message: text.slice(0, 200) } };
  }
}
