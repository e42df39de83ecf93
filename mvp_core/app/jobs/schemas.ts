/** Request and response shapes of /jobs, and the row → response view (progress, rate, ETA). */
import { z } from "zod";
import type { FileTally } from "../../jobs/files.ts";
import { DELIVERED_STATUSES, EVENT_KINDS, FILE_STATES, JOB_SCOPES, JOB_STATUSES, JOB_TYPES, type JobEventRow, type JobFileRow, type JobRow } from "../../jobs/types.ts";
import { transferOptionsShape } from "../../transfer_engine/index.ts";
import { apiMessage } from "../errors.ts";
import { classicShape } from "../engine_schema.ts";
import { text } from "../text.ts";

/** The engine's transfer options, key for key (one definition: transfer_engine/spec.ts). */
const transferOptions = classicShape(transferOptionsShape);

const portalRef = z.object({
  portal: z.uuid("must be a portal id (UUID) as returned by GET /portals"),
  path: text().min(1, "must name a file or folder inside the portal").max(4096).meta({ description: "relative to the portal root (an absolute path inside the root is accepted)" }),
}).strict();

/** Job options: the engine's transfer options (one definition, transfer_engine/spec.ts) and the job's own; omitted ones take the defaults shown. */
export const JobOptionsInput = z
  .object({
    ...transferOptions,
    maxAttempts: z.number().int().min(1).max(100).optional().meta({ description: "attempts before FAILED (default: JOB_MAX_ATTEMPTS)" }),
  })
  .strict();

/** POST /jobs: a copy or move from source to target, or a verify of the source folder against its ASC MHL history (no target). */
export const JobCreate = z
  .object({
    type: z.enum(JOB_TYPES).meta({ description: "copy, move, or verify: check the source folder against its ascmhl/ history in place (options: hash; mhl records the verification as a new generation)" }),
    source: portalRef,
    target: portalRef.optional().meta({ description: "required for copy and move; a verify job has none" }),
    options: JobOptionsInput.prefault({}),
  })
  .strict()
  .superRefine((j, ctx) => {
    if (j.type === "verify" && j.target !== undefined) ctx.addIssue({ code: "custom", path: ["target"], message: "a verify job checks its source folder in place: leave target out" });
    if (j.type !== "verify" && j.target === undefined) ctx.addIssue({ code: "custom", path: ["target"], message: `a ${j.type} job needs a target: { "portal": …, "path": … }` });
    // A verify job checks the whole folder in place and passes or fails as one (MHL_MISMATCH lists
    // every problem): it records no per-file outcomes, so the per-file options mean nothing to it.
    if (j.type === "verify") {
      const o = j.options;
      const transferOnly = [o.sync !== "off" && "sync", o.mirror && "mirror", o.skipFileErrors && "skipFileErrors"].filter((k) => k !== false);
      for (const k of transferOnly) ctx.addIssue({ code: "custom", path: ["options", k], message: `a verify job does not take ${k}: it checks the folder as a whole and fails with every problem listed (MHL_MISMATCH); leave ${k} out` });
    }
  });
export type JobCreate = z.infer<typeof JobCreate>;

/** POST /jobs headers. */
export const JobCreateHeaders = z.object({
  "idempotency-key": text()
    .min(1)
    .max(255)
    .regex(/^[\x21-\x7e]+$/, "must be 1-255 printable ASCII characters without spaces")
    .optional()
    .meta({ description: "repeat a request with the same key to get the same job back instead of a second one" }),
});

/** Path parameter of every /jobs/{id} route. */
export const JobParams = z.object({ id: z.uuid("must be a job id (UUID) as returned by POST /jobs") });

/**
 * A query parameter listing values of `allowed` (`name=A,B` or `name=A&name=B`: Elysia hands the
 * latter over as an array; both mean "any of these"), case-folded by `fold`.
 */
function listParam<T extends string>(name: string, allowed: readonly T[], fold: (s: string) => string, example: string) {
  return z
    .preprocess(
      (v) => (Array.isArray(v) ? v.join(",") : v),
      z
        .string()
        .max(200)
        .transform((s, ctx) => {
          const list = s.split(",").map((x) => fold(x.trim())).filter(Boolean);
          const bad = list.filter((x) => !(allowed as readonly string[]).includes(x));
          if (bad.length || list.length === 0) {
            ctx.addIssue({ code: "custom", message: `unknown ${name} ${bad.join(",") || "(empty)"}; use one or more of ${allowed.join(",")}` });
            return z.NEVER;
          }
          return list as T[];
        }),
    )
    .meta({ description: `comma-separated, e.g. ${example} (${allowed.join(", ")})` });
}

const statusList = listParam("status", JOB_STATUSES, (s) => s.toUpperCase(), "QUEUED,RUNNING");

const intParam = (min: number, max: number, def: number) =>
  z
    .string()
    .regex(/^\d{1,15}$/, "must be a whole number")
    .transform(Number)
    .pipe(z.number().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`))
    .default(def)
    .meta({ description: `whole number ${min}-${max === Number.MAX_SAFE_INTEGER ? "…" : max}, default ${def}` });

/** GET /jobs query. */
export const JobListQuery = z
  .object({
    status: statusList.optional(),
    portal: z.uuid("must be a portal id (UUID)").optional().meta({ description: "jobs whose source or target is this portal" }),
    limit: intParam(1, 200, 50),
    cursor: text().max(512).optional().meta({ description: "nextCursor of the previous page" }),
  })
  .strict();

/** GET /jobs/{id}/events query. */
export const EventListQuery = z
  .object({
    after: intParam(0, Number.MAX_SAFE_INTEGER, 0).meta({ description: "id of the last event already seen (poll with it); default 0" }),
    limit: intParam(1, 1000, 200),
  })
  .strict();

/** GET /jobs/{id}/files query. */
export const FileListQuery = z
  .object({
    state: listParam("state", FILE_STATES, (s) => s.toLowerCase(), "failed").optional(),
    limit: intParam(1, 1000, 100),
    cursor: text().max(8192).optional().meta({ description: "nextCursor of the previous page" }),
  })
  .strict();

const iso = z.string().nullable();

/** A job's files by state. */
export const FileCountsView = z.object({
  total: z.number().int(),
  skipped: z.number().int().meta({ description: "already at the target (sync): not sent" }),
  verified: z.number().int().meta({ description: "sent, verified at the target and committed" }),
  failed: z.number().int().meta({ description: "failed on their own (skipFileErrors): not at the target; GET /jobs/{id}/files?state=failed says why" }),
});

/** A job as the API shows it. */
export const JobView = z.object({
  id: z.uuid(),
  type: z.enum(JOB_TYPES),
  status: z.enum(JOB_STATUSES),
  source: z.object({ portal: z.string(), path: z.string() }),
  target: z.object({ portal: z.string(), path: z.string() }).meta({ description: "a verify job's is its source (it checks that folder in place)" }),
  options: z.object(transferOptions).partial(),
  strategy: z.string().nullable().meta({ description: "how the data moved: direct, zip or rename (resumed: an earlier attempt committed it and none recorded how)" }),
  scope: z.enum(JOB_SCOPES).meta({ description: "what a run sends: all (the source) or failed (only the files that failed: a retry of a DONE_WITH_ERRORS job)" }),
  files: FileCountsView.nullable().meta({ description: "the job's files by outcome (GET /jobs/{id}/files lists them); in a job's own answers, null in GET /jobs lists" }),
  site: z.string().nullable().meta({ description: "the site whose workers run it (where its local end is); null: any site (both ends sftp)" }),
  workerId: z.string().nullable().meta({ description: "the worker running it now, or the last one that did" }),
  waitingFor: z.string().nullable().meta({ description: "QUEUED or RETRY_WAIT: what it waits for, e.g. \"no live worker for site srvtrf: …\"; null otherwise" }),
  attempts: z.number().int(),
  maxAttempts: z.number().int(),
  progress: z.object({
    filesDone: z.number(),
    filesTotal: z.number().nullable(),
    bytesDone: z.number(),
    bytesTotal: z.number().nullable(),
    bytesResumed: z.number().meta({ description: "of bytesDone, what an earlier attempt left at the destination and this one re-checked and kept (not sent again)" }),
    percent: z.number().nullable(),
    bytesPerSecond: z.number().nullable(),
    etaSeconds: z.number().nullable(),
  }),
  error: z.object({ code: z.string(), message: z.string().nullable() }).nullable(),
  createdAt: z.string(),
  startedAt: iso,
  finishedAt: iso,
  updatedAt: z.string(),
  nextAttemptAt: iso,
});
export type JobView = z.infer<typeof JobView>;

const isoOrNull = (d: Date | null) => (d ? d.toISOString() : null);

/** Row → view; rate and ETA are averages over the running attempt; `waitingFor` comes from the workers' liveness; `files` from job_files. */
export function jobView(j: JobRow, waitingFor: string | null = null, files: FileTally | null = null, now = Date.now()): JobView {
  const running = j.status === "RUNNING" || j.status === "CANCELLING";
  const elapsedS = running && j.started_at ? (now - j.started_at.getTime()) / 1000 : 0;
  // Resumed bytes did not travel in this attempt: they do not count toward its rate.
  const sent = j.bytes_done - j.bytes_resumed;
  const rate = running && elapsedS > 0 && sent > 0 ? sent / elapsedS : null;
  const remaining = j.bytes_total === null ? null : Math.max(0, j.bytes_total - j.bytes_done);
  return {
    id: j.id,
    type: j.type,
    status: j.status,
    source: { portal: j.source_portal_id, path: j.source_path },
    target: { portal: j.target_portal_id, path: j.target_path },
    options: j.options,
    strategy: j.strategy,
    scope: j.scope,
    files,
    site: j.site,
    workerId: j.worker_id,
    waitingFor,
    attempts: j.attempts,
    maxAttempts: j.max_attempts,
    progress: {
      filesDone: j.files_done,
      filesTotal: j.files_total,
      bytesDone: j.bytes_done,
      bytesTotal: j.bytes_total,
      bytesResumed: j.bytes_resumed,
      percent: j.bytes_total ? Math.min(100, Math.round((j.bytes_done / j.bytes_total) * 1000) / 10) : DELIVERED_STATUSES.includes(j.status) ? 100 : null,
      bytesPerSecond: rate === null ? null : Math.round(rate),
      etaSeconds: rate && remaining !== null ? Math.round(remaining / rate) : null,
    },
    error: j.error_code ? { code: j.error_code, message: j.error_message === null ? null : apiMessage(j.error_message, j.error_code) } : null,
    createdAt: j.created_at.toISOString(),
    startedAt: isoOrNull(j.started_at),
    finishedAt: isoOrNull(j.finished_at),
    updatedAt: j.updated_at.toISOString(),
    nextAttemptAt: isoOrNull(j.next_attempt_at),
  };
}

/** One file of a job as the API shows it. */
export const FileView = z.object({
  path: z.string().meta({ description: "relative to the job's source" }),
  size: z.number(),
  state: z.enum(FILE_STATES),
  hash: z.object({ algorithm: z.string(), value: z.string() }).nullable().meta({ description: "the content hash verified at the target (checksum verification)" }),
  error: z.object({ code: z.string(), message: z.string().nullable() }).nullable().meta({ description: "why it failed" }),
  attempts: z.number().int().meta({ description: "how many attempts reported this file" }),
  updatedAt: z.string(),
});

/** File row → view. */
export function fileView(f: JobFileRow): z.infer<typeof FileView> {
  return {
    path: f.path,
    size: f.size,
    state: f.state,
    hash: f.hash_algorithm !== null && f.hash_value !== null ? { algorithm: f.hash_algorithm, value: f.hash_value } : null,
    error: f.error_code ? { code: f.error_code, message: f.error_message === null ? null : apiMessage(f.error_message, f.error_code) } : null,
    attempts: f.attempts,
    updatedAt: f.updated_at.toISOString(),
  };
}

/** One event as the API shows it. */
export const EventView = z.object({
  id: z.number().int(),
  at: z.string(),
  level: z.enum(["debug", "info", "warn", "error"]),
  kind: z.enum(EVENT_KINDS),
  message: z.string(),
  data: z.record(z.string(), z.unknown()),
});

/** Event row → view. */
export function eventView(e: JobEventRow): z.infer<typeof EventView> {
  // Failure events carry the engine's message (in `message` and `data.message`): API words here too.
  const code = typeof e.data.code === "string" ? e.data.code : null;
  const data = typeof e.data.message === "string" ? { ...e.data, message: apiMessage(e.data.message, code) } : e.data;
  return { id: e.id, at: e.at.toISOString(), level: e.level, kind: e.kind, message: apiMessage(e.message, code), data };
}

const now = "2026-11-25T10:00:00.000Z";
/** Examples shown in Swagger UI (replace the portal ids with ones from GET /portals). */
export const examples = {
  create: {
    type: "copy",
    source: { portal: "0b6f5e4c-2a55-4a36-9d0c-1f3e2c9a7b10", path: "shoot_2026_11_24" },
    target: { portal: "5d1c9a2e-7f3b-4e8a-b6c4-2a9e8d7f6b51", path: "incoming/shoot_2026_11_24" },
    options: { strategy: "auto", verify: "checksum", overwrite: false, createParents: true, maxAttempts: 3 },
  },
  view: {
    id: "9a7e3c1b-4d2f-4b6a-8e5c-3f1a2b9c8d70", type: "copy", status: "RUNNING",
    source: { portal: "0b6f5e4c-2a55-4a36-9d0c-1f3e2c9a7b10", path: "shoot_2026_11_24" },
    target: { portal: "5d1c9a2e-7f3b-4e8a-b6c4-2a9e8d7f6b51", path: "incoming/shoot_2026_11_24" },
    options: { strategy: "auto", verify: "checksum", overwrite: false, createParents: true }, strategy: "direct", scope: "all", files: { total: 0, skipped: 0, verified: 0, failed: 0 }, site: "lab-1", workerId: "lab-1:4242:k3x9q1", waitingFor: null, attempts: 1, maxAttempts: 3,
    progress: { filesDone: 120, filesTotal: 480, bytesDone: 52_428_800_000, bytesTotal: 209_715_200_000, bytesResumed: 0, percent: 25, bytesPerSecond: 110_000_000, etaSeconds: 1430 },
    error: null, createdAt: now, startedAt: now, finishedAt: null, updatedAt: now, nextAttemptAt: null,
  },
  file: { path: "A001/clip_0042.mov", size: 52_428_800, state: "failed", hash: null, error: { code: "PERMISSION_DENIED", message: "permission denied reading A001/clip_0042.mov" }, attempts: 1, updatedAt: now },
  event: { id: 17, at: now, level: "info", kind: "started", message: "attempt 1 of 3 started on worker lab-1:4242:k3x9q1 (site lab-1)", data: { attempt: 1, maxAttempts: 3, workerId: "lab-1:4242:k3x9q1", site: "lab-1" } },
};
