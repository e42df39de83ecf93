// The API's side of per-file truth: a job's files by state in its answers, GET /jobs/{id}/files
// (filter, cursor, bad input), DONE_WITH_ERRORS in lists, cancel and retry. The files are recorded
// by the worker's own statements (claim, recordFiles, completeJob) on the real Postgres.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type FileOutcome, recordFiles } from "../jobs/files.ts";
import { claimJob, completeJob } from "../jobs/lifecycle.ts";
import { uniqueId } from "../testing/services.ts";
import type { z } from "zod";
import type { EventView, FileView, JobView } from "./jobs/schemas.ts";
import type { PortalView } from "./portals/schemas.ts";
import { apiFixture, type ApiFixture } from "./test_support.ts";

let f: ApiFixture;
let job: JobView;
const missing = "7d4f7a52-8a4b-4c3e-9d51-2f6a1b0c9e83";
type FilePage = { files: z.infer<typeof FileView>[]; nextCursor: string | null };
type Events = { events: z.infer<typeof EventView>[] };

/** 25 files: every fifth failed, every third of the rest skipped, the others verified. */
const outcomes: FileOutcome[] = Array.from({ length: 25 }, (_, i) => {
  const path = `A001/clip_${String(i).padStart(3, "0")}.mov`;
  if (i % 5 === 4) return { path, size: 100 + i, state: "failed", error: { code: "PERMISSION_DENIED", message: `cannot read ${path}` } };
  if (i % 3 === 0) return { path, size: 100 + i, state: "skipped" };
  return { path, size: 100 + i, state: "verified", hash: { algorithm: "xxh64", value: `h${i}` } };
});
const byState = (s: string) => outcomes.filter((o) => o.state === s).map((o) => o.path);

beforeAll(async () => {
  f = await apiFixture();
  const portal = async () => (await f.call<PortalView>("POST", "/portals", { body: { kind: "local", name: `files_${uniqueId()}`, rootPath: await f.tempDir() } })).json;
  const [a, b] = [await portal(), await portal()];
  const created = await f.call<JobView>("POST", "/jobs", { body: { type: "copy", source: { portal: a.id, path: "A001" }, target: { portal: b.id, path: "A001" }, options: { skipFileErrors: true } } });
  // What a worker records for it: two batches of outcomes, then the completion.
  const worker = { id: "api-test-worker", site: created.json.site ?? "any" };
  const claim = await claimJob(f.sql, created.json.id, worker, 30_000);
  if (!claim.claimed) throw new Error("claim refused");
  const fence = { jobId: created.json.id, worker, attempt: claim.job.attempts };
  const token = crypto.randomUUID();
  expect(await recordFiles(f.sql, fence, token, outcomes.slice(0, 12))).toBe(true);
  expect(await recordFiles(f.sql, fence, token, outcomes.slice(12))).toBe(true);
  expect(await completeJob(f.sql, fence, { strategy: "direct", files: 12, bytes: 1300, data: {}, outcomes: { token } })).toBe(true);
  job = (await f.call<JobView>("GET", `/jobs/${created.json.id}`)).json;
}, 60_000);
afterAll(() => f.close());

async function walk(query: string, limit: number): Promise<string[]> {
  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const r: { status: number; json: FilePage } = await f.call<FilePage>("GET", `/jobs/${job.id}/files?limit=${limit}${query}${cursor ? `&cursor=${cursor}` : ""}`);
    expect(r.status).toBe(200);
    expect(r.json.files.length).toBeLessThanOrEqual(limit);
    seen.push(...r.json.files.map((x) => x.path));
    cursor = r.json.nextCursor;
  } while (cursor);
  return seen;
}

describe("a job's files through the API", () => {
  test("GET /jobs/{id}: DONE_WITH_ERRORS, files by state, the error naming the failed files; lists leave files null", async () => {
    expect(job).toMatchObject({ status: "DONE_WITH_ERRORS", scope: "all", files: { total: 25, skipped: 7, verified: 13, failed: 5 }, progress: { percent: 100 } });
    expect(job.error?.code).toBe("FILES_FAILED");
    expect(job.error?.message).toContain(`"A001/clip_004.mov" (PERMISSION_DENIED)`);
    expect(job.error?.message).toContain(`POST /jobs/${job.id}/retry sends only them`);
    const list = await f.call<{ jobs: JobView[] }>("GET", "/jobs?status=DONE_WITH_ERRORS&limit=200");
    expect(list.json.jobs.find((j) => j.id === job.id)).toMatchObject({ status: "DONE_WITH_ERRORS", files: null });
    const done = (await f.call<Events>("GET", `/jobs/${job.id}/events`)).json.events.find((e) => e.kind === "done");
    expect(done).toMatchObject({ level: "warn", data: { outcomes: { total: 25, skipped: 7, verified: 13, failed: 5 } } });
    expect(done!.message).toContain("13 sent and verified, 7 skipped (already at the target), 5 failed");
  });

  test("GET /jobs/{id}/files pages through every file once, by state or all, with hashes and errors", async () => {
    expect(await walk("", 4)).toEqual(outcomes.map((o) => o.path));
    expect(await walk("&state=failed", 2)).toEqual(byState("failed"));
    expect(await walk("&state=FAILED,skipped", 3)).toEqual(outcomes.filter((o) => o.state !== "verified").map((o) => o.path));
    expect(await walk("&state=failed&state=verified", 5)).toEqual(outcomes.filter((o) => o.state !== "skipped").map((o) => o.path));
    const first = (await f.call<FilePage>("GET", `/jobs/${job.id}/files?limit=2`)).json.files;
    expect(first[0]).toMatchObject({ path: "A001/clip_000.mov", size: 100, state: "skipped", hash: null, error: null, attempts: 1 });
    expect(first[1]).toMatchObject({ state: "verified", hash: { algorithm: "xxh64", value: "h1" } });
    const failed = (await f.call<FilePage>("GET", `/jobs/${job.id}/files?state=failed&limit=1`)).json.files[0];
    expect(failed).toMatchObject({ path: "A001/clip_004.mov", state: "failed", error: { code: "PERMISSION_DENIED", message: "cannot read A001/clip_004.mov" } });
  });

  test("bad input: an unknown state, a cursor this API did not return, a bad limit or id, an unknown job", async () => {
    const bad = async (path: string, status: number, code: string, says: RegExp) => {
      const r = await f.call("GET", path);
      expect({ path, status: r.status, code: r.json.error?.code }).toEqual({ path, status, code });
      expect(r.json.error!.message).toMatch(says);
    };
    await bad(`/jobs/${job.id}/files?state=sent`, 422, "VALIDATION_FAILED", /query\.state: unknown state sent; use one or more of skipped,verified,failed/);
    await bad(`/jobs/${job.id}/files?state=`, 422, "VALIDATION_FAILED", /unknown state \(empty\)/);
    await bad(`/jobs/${job.id}/files?cursor=bm90LWEtY3Vyc29y`, 400, "BAD_CURSOR", /omit it to start again/);
    await bad(`/jobs/${job.id}/files?cursor=${Buffer.from(JSON.stringify({ after: 42 })).toString("base64url")}`, 400, "BAD_CURSOR", /cursor/);
    await bad(`/jobs/${job.id}/files?limit=0`, 422, "VALIDATION_FAILED", /query\.limit: must be at least 1/);
    await bad(`/jobs/${job.id}/files?limit=1001`, 422, "VALIDATION_FAILED", /must be at most 1000/);
    await bad(`/jobs/${job.id}/files?colour=red`, 422, "VALIDATION_FAILED", /colour/);
    await bad(`/jobs/${missing}/files`, 404, "JOB_NOT_FOUND", /no job with id/);
    await bad("/jobs/not-a-uuid/files", 422, "VALIDATION_FAILED", /must be a job id/);
  });

  test("a DONE_WITH_ERRORS job cannot be cancelled; its retry is QUEUED with scope failed and says how many files it sends", async () => {
    const cancel = await f.call("POST", `/jobs/${job.id}/cancel`);
    expect({ status: cancel.status, code: cancel.json.error?.code }).toEqual({ status: 409, code: "JOB_STATE_CONFLICT" });
    const retried = await f.call<JobView>("POST", `/jobs/${job.id}/retry`);
    expect(retried.status).toBe(200);
    expect(retried.json).toMatchObject({ status: "QUEUED", scope: "failed", error: null, files: { failed: 5 } });
    const events = (await f.call<Events>("GET", `/jobs/${job.id}/events`)).json.events;
    expect(events.find((e) => e.kind === "retried")).toMatchObject({ message: expect.stringContaining("only the 5 files that failed are sent"), data: { scope: "failed", failedFiles: 5, previousStatus: "DONE_WITH_ERRORS" } });
    const again = await f.call("POST", `/jobs/${job.id}/retry`);
    expect(again.status).toBe(409);
  });

  test("the OpenAPI document describes GET /jobs/{id}/files, its query and the new status", async () => {
    const doc = (await f.call<{ paths: Record<string, { get?: { parameters?: { name: string }[] } }>; components?: unknown }>("GET", "/swagger/json")).json;
    const op = doc.paths["/jobs/{id}/files"]?.get;
    expect(op?.parameters?.map((p) => p.name).sort()).toEqual(["cursor", "id", "limit", "state"]);
    expect(JSON.stringify(doc)).toContain("DONE_WITH_ERRORS");
  });
});
