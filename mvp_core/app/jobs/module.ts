/** /jobs: submit (idempotent), get, list, events, files, cancel, retry. */
import { Elysia } from "elysia";
import { z } from "zod";
import { countFiles, listFiles } from "../../jobs/files.ts";
import { listEvents, listJobs } from "../../jobs/repository.ts";
import type { AppDeps } from "../deps.ts";
import { doc, responses } from "../openapi.ts";
import type { JobRow } from "../../jobs/types.ts";
import { cancelJob, findJob, retry, submitJob, waitingReasons } from "./service.ts";
import {
  EventListQuery, EventView, eventView, examples, FileListQuery, FileView, fileView, JobCreate, JobCreateHeaders, JobListQuery, JobParams, JobView, jobView,
} from "./schemas.ts";

const tags = ["jobs"];

/** Views of `jobs`, each with what it waits for (lists leave `files` null: one index read per page). */
async function views(deps: AppDeps, jobs: JobRow[]) {
  const reasons = await waitingReasons(deps, jobs);
  return jobs.map((j, i) => jobView(j, reasons[i]));
}

/** One job's view, with its files counted by state (`fresh`: a job just created has none, no query needed). */
async function view(deps: AppDeps, job: JobRow, fresh = false) {
  const [reasons, files] = await Promise.all([waitingReasons(deps, [job]), fresh ? NO_FILES : countFiles(deps.sql, job.id)]);
  return jobView(job, reasons[0], files);
}

const NO_FILES = { total: 0, skipped: 0, verified: 0, failed: 0 };

/** The jobs feature module. */
export function jobsModule(deps: AppDeps) {
  return new Elysia({ name: "jobs" })
    .post(
      "/jobs",
      async ({ body, headers, set }) => {
        const { job, created } = await submitJob(deps, body, headers["idempotency-key"]);
        set.status = 201;
        if (!created) set.headers["idempotent-replayed"] = "true";
        set.headers.location = `/jobs/${job.id}`;
        // POST /jobs is the API's hot path: a new job's files are known to be none.
        return view(deps, job, created);
      },
      {
        // JSON only: without it the plugin would also advertise form bodies, which answer 415.
        parse: "json",
        body: JobCreate.meta({ examples: [examples.create] }),
        headers: JobCreateHeaders,
        response: responses({ 201: { description: "The job, QUEUED", schema: JobView, example: { ...examples.view, status: "QUEUED", strategy: null, attempts: 0 } } }, [400, 409, 413, 415, 422]),
        detail: doc({
          summary: "Create a job",
          description:
            "Copies or moves `source.path` of one portal to `target.path` of another (or the same) portal. The target's parent folder must exist unless `options.createParents` is true. The job runs at the site of its local end (`site`), or at any site when both ends are sftp; a job between two local portals of different sites is refused (422 CROSS_SITE: reach one side over SSH with an sftp portal). The job is committed with its `created` and `queued` events, then handed to that site's workers; it answers 201 even if Redis is down (the job waits in Postgres). Repeating a request with the same Idempotency-Key returns the same job (header Idempotent-Replayed: true).",
          tags, operationId: "createJob",
        }),
      },
    )
    .get(
      "/jobs",
      async ({ query }) => {
        const page = await listJobs(deps.sql, {
          limit: query.limit,
          ...(query.status ? { statuses: query.status } : {}),
          ...(query.portal ? { portalId: query.portal } : {}),
          ...(query.cursor ? { cursor: query.cursor } : {}),
        });
        return { jobs: await views(deps, page.jobs), nextCursor: page.nextCursor };
      },
      {
        query: JobListQuery,
        response: responses({ 200: { description: "A page of jobs", schema: z.object({ jobs: z.array(JobView), nextCursor: z.string().nullable() }), example: { jobs: [{ ...examples.view, files: null }], nextCursor: null } } }, [400, 422]),
        detail: doc({ summary: "List jobs", description: "Newest first. Pass `nextCursor` back as `cursor` for the next page; it is null on the last page.", tags, operationId: "listJobs" }),
      },
    )
    .get("/jobs/:id", async ({ params }) => view(deps, await findJob(deps, params.id)), {
      params: JobParams,
      response: responses({ 200: { description: "The job", schema: JobView, example: examples.view } }, [404, 422]),
      detail: doc({
        summary: "Get a job", description: "Status, strategy, site, attempts, progress (files and bytes, rate, ETA), `files` by outcome (skipped, verified, failed), error, timestamps, and — while it waits — what it waits for (e.g. no live worker for its site). DONE_WITH_ERRORS: some files failed (error FILES_FAILED names the first), every other file is verified at the target.",
        tags, operationId: "getJob",
      }),
    })
    .get(
      "/jobs/:id/events",
      async ({ params, query }) => ({ events: (await listEvents(deps.sql, params.id, { afterId: query.after, limit: query.limit })).map(eventView) }),
      {
        params: JobParams,
        query: EventListQuery,
        response: responses({ 200: { description: "Events", schema: z.object({ events: z.array(EventView) }), example: { events: [examples.event] } } }, [404, 422]),
        detail: doc({ summary: "A job's event log", description: "Oldest first. Poll with `after` = the id of the last event seen.", tags, operationId: "listJobEvents" }),
      },
    )
    .get(
      "/jobs/:id/files",
      async ({ params, query }) => {
        const page = await listFiles(deps.sql, params.id, { limit: query.limit, ...(query.state ? { states: query.state } : {}), ...(query.cursor ? { cursor: query.cursor } : {}) });
        return { files: page.files.map(fileView), nextCursor: page.nextCursor };
      },
      {
        params: JobParams,
        query: FileListQuery,
        response: responses({ 200: { description: "A page of the job's files", schema: z.object({ files: z.array(FileView), nextCursor: z.string().nullable() }), example: { files: [examples.file], nextCursor: null } } }, [400, 404, 422]),
        detail: doc({
          summary: "A job's files",
          description: "Every file's last outcome, in path order: `skipped` (already at the target, sync), `verified` (sent, verified and committed, with its hash), `failed` (with skipFileErrors: not at the target, with the error). `state=failed` (comma-separated for several) filters; pass `nextCursor` back as `cursor` for the next page (null on the last).",
          tags, operationId: "listJobFiles",
        }),
      },
    )
    .post("/jobs/:id/cancel", async ({ params }) => view(deps, await cancelJob(deps, params.id)), {
      params: JobParams,
      response: responses({ 200: { description: "The job after the request", schema: JobView, example: { ...examples.view, status: "CANCELLING" } } }, [404, 409, 422]),
      detail: doc({
        summary: "Cancel a job",
        description: "A job not yet running is CANCELLED at once; a running one becomes CANCELLING until its worker stops. Repeating is harmless; DONE, DONE_WITH_ERRORS or FAILED jobs answer 409.",
        tags, operationId: "cancelJob",
      }),
    })
    .post("/jobs/:id/retry", async ({ params }) => view(deps, await retry(deps, params.id)), {
      params: JobParams,
      response: responses({ 200: { description: "The job, QUEUED again", schema: JobView, example: { ...examples.view, status: "QUEUED" } } }, [404, 409, 422]),
      detail: doc({
        summary: "Retry a job",
        description: "FAILED or CANCELLED jobs: back to QUEUED with a fresh attempt budget. DONE_WITH_ERRORS jobs: the same, with `scope: failed` — only the files that failed are sent, into the existing target (a move then removes only their verified sources; no mirror). Other statuses answer 409.",
        tags, operationId: "retryJob",
      }),
    });
}
