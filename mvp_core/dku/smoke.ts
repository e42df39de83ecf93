/**
 * The smoke transfer: a real copy and a real move through the API and a worker, verified byte for
 * byte. Everything it creates is named `dku-smoke-<run>` (portal, folder, Idempotency-Keys) so an
 * operator can tell DKU jobs from real ones; the fixture, the target and the portal are removed
 * afterwards, the jobs stay in the history.
 */
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { z } from "zod";
import { ApiCallError, ApiClient } from "./api_client.ts";
import { CheckFailure, errorMessage, runCheck, type CheckOutcome, type CheckResult } from "./check.ts";
import { DEFAULT_FIXTURE, compareFolder, manifestBytes, writeManyFolder, writeSmallFolder, type FixtureShape, type Manifest } from "./fixture.ts";
import { formatBytes } from "./runtime.ts";

/** Every name the smoke test creates starts with this. */
export const SMOKE_PREFIX = "dku-smoke";

/** How to run the smoke transfer. */
export interface SmokeOptions {
  api: { url: string; token: string | undefined };
  /** This machine's site (KETTER_SITE): the smoke portal is a folder here, so a worker of this site runs its jobs. */
  site: string;
  /** Parent of the fixture folder; the worker must see it at the same path. */
  parentDir?: string | undefined;
  shape?: FixtureShape;
  /** How long each job may take to reach DONE. */
  jobTimeoutMs?: number;
  /** Aborted on Ctrl-C: the running steps fail as interrupted, cleanup still runs. */
  interrupt?: AbortSignal | undefined;
}

const DEFAULT_JOB_TIMEOUT_MS = 90_000;
const TERMINAL = new Set(["DONE", "DONE_WITH_ERRORS", "FAILED", "CANCELLED"]);

const PortalBody = z.object({ id: z.string(), name: z.string() });
const JobBody = z.looseObject({
  id: z.string(),
  status: z.string(),
  strategy: z.string().nullish(),
  error: z.object({ code: z.string().nullish(), message: z.string().nullish() }).nullish(),
});
type Job = z.output<typeof JobBody>;

/** State shared by the smoke steps; filled in as they succeed. */
interface SmokeRun {
  id: string;
  client: ApiClient;
  root: string | null;
  portal: { id: string; name: string } | null;
  manifests: { small: Manifest; many: Manifest } | null;
  jobs: Job[];
}

function jobError(job: Job): string {
  return [job.error?.code, job.error?.message].filter(Boolean).join(": ") || "no error recorded";
}

/** Step 1: the fixture on disk and a local portal rooted at it, created through the API. */
async function setup(run: SmokeRun, opts: SmokeOptions): Promise<CheckOutcome> {
  const parent = resolve(opts.parentDir ?? tmpdir());
  await mkdir(parent, { recursive: true });
  run.root = await mkdtemp(join(parent, `ketter-${SMOKE_PREFIX}-`));
  const shape = opts.shape ?? DEFAULT_FIXTURE;
  const [small, many] = await Promise.all([writeSmallFolder(join(run.root, "src", "small"), shape), writeManyFolder(join(run.root, "src", "many"), shape)]);
  await mkdir(join(run.root, "dst"));
  run.manifests = { small, many };
  const name = `${SMOKE_PREFIX}-${run.id}`;
  try {
    run.portal = PortalBody.parse(await run.client.call("POST", "/portals", { body: { kind: "local", name, rootPath: run.root, site: opts.site } }));
  } catch (err) {
    const hint = err instanceof ApiCallError && err.status === 401 ? "set KETTER_API_TOKEN to the API's token" : "the API refused a local portal: see the api check and the API log";
    throw new CheckFailure(`could not create portal ${name}: ${errorMessage(err)}`, hint);
  }
  const files = small.size + many.size;
  return { status: "ok", value: `${files} files (${formatBytes(manifestBytes(small) + manifestBytes(many))}) in ${run.root}, portal ${name} at site ${opts.site}`, details: { root: run.root, portal: run.portal, files, site: opts.site } };
}

async function waitForJob(client: ApiClient, id: string, timeoutMs: number, signal: AbortSignal): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = JobBody.parse(await client.call("GET", `/jobs/${id}`, { signal }));
    if (TERMINAL.has(job.status)) return job;
    if (Date.now() > deadline) {
      throw new CheckFailure(`job ${id} still ${job.status} after ${Math.round(timeoutMs / 1000)} s`, `the worker is slow or stuck: see its log and GET /jobs/${id}/events`, { job });
    }
    await Bun.sleep(200);
  }
}

/** Steps 2 and 3: one job through the API, waited for, and its result compared with the fixture. */
async function transfer(run: SmokeRun, type: "copy" | "move", opts: SmokeOptions, signal: AbortSignal): Promise<CheckOutcome> {
  if (!run.portal || !run.root || !run.manifests) throw new CheckFailure("not run: the smoke setup failed", "see the smoke.setup row");
  // copy: thousands of tiny files (auto picks zip); move: a few larger files, forced direct so it copies, verifies and deletes instead of renaming.
  const folder = type === "copy" ? "many" : "small";
  const expected = run.manifests[folder];
  const started = performance.now();
  const created = JobBody.parse(
    await run.client.call("POST", "/jobs", {
      body: {
        type,
        source: { portal: run.portal.id, path: `src/${folder}` },
        target: { portal: run.portal.id, path: `dst/${folder}` },
        ...(type === "move" ? { options: { strategy: "direct" } } : {}),
      },
      headers: { "idempotency-key": `${SMOKE_PREFIX}:${run.id}:${type}` },
      signal,
    }),
  );
  run.jobs.push(created);
  const job = await waitForJob(run.client, created.id, opts.jobTimeoutMs ?? DEFAULT_JOB_TIMEOUT_MS, signal);
  run.jobs[run.jobs.findIndex((j) => j.id === job.id)] = job;
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const details = { job };
  if (job.status !== "DONE") {
    throw new CheckFailure(`job ${job.id} ${job.status}: ${jobError(job)}`, `see GET /jobs/${job.id}/events and the worker log`, details);
  }
  const problems = await compareFolder(join(run.root, "dst", folder), expected);
  if (problems.length > 0) {
    throw new CheckFailure(`job ${job.id} DONE but the target differs: ${problems.join("; ")}`, "the transfer engine wrote wrong data: keep this report and the worker log, and file a bug", details);
  }
  if (type === "move" && (await stat(join(run.root, "src", folder)).then(() => true, () => false))) {
    throw new CheckFailure(`job ${job.id} DONE but its source src/${folder} is still there`, "the move did not remove its source: see the job's events (source_kept?)", details);
  }
  const what = `${expected.size} files (${formatBytes(manifestBytes(expected))})`;
  return { status: "ok", value: `DONE in ${seconds} s, ${job.strategy ?? "?"} strategy, ${what} verified${type === "move" ? ", source removed" : ""}`, details };
}

/** Every job on the smoke portal, as the API lists them (a POST /jobs cut short may still have created one). */
async function portalJobs(run: SmokeRun, portalId: string): Promise<Job[]> {
  const page = z.object({ jobs: z.array(JobBody) }).parse(await run.client.call("GET", `/jobs?portal=${portalId}&limit=200`));
  return page.jobs;
}

/** Step 4: cancel what still runs, delete the portal, remove the folder; anything left over is a warning. */
async function cleanup(run: SmokeRun, inFlight: readonly Promise<unknown>[]): Promise<CheckOutcome> {
  // A step cut short by its deadline or Ctrl-C may still be finishing: let it, so nothing it creates escapes.
  await Promise.allSettled(inFlight);
  const left: string[] = [];
  let jobs = run.jobs;
  if (run.portal) {
    const portal = run.portal;
    jobs = await portalJobs(run, portal.id).catch((err: unknown) => {
      left.push(`could not list the portal's jobs (${errorMessage(err)})`);
      return run.jobs;
    });
    for (const job of jobs.filter((j) => !TERMINAL.has(j.status))) {
      await run.client.call("POST", `/jobs/${job.id}/cancel`).catch((err: unknown) => left.push(`job ${job.id} not cancelled (${errorMessage(err)})`));
      await waitForJob(run.client, job.id, 15_000, AbortSignal.timeout(20_000)).catch((err: unknown) => left.push(`job ${job.id} did not stop (${errorMessage(err)})`));
    }
    await run.client.call("DELETE", `/portals/${portal.id}`).catch((err: unknown) => left.push(`portal ${portal.name} (${errorMessage(err)})`));
  }
  if (run.root) await rm(run.root, { recursive: true, force: true }).catch((err: unknown) => left.push(`folder ${run.root} (${errorMessage(err)})`));
  const ids = jobs.map((j) => j.id);
  const kept = ids.length > 0 ? `; DKU jobs kept in the history: ${ids.join(", ")}` : "";
  if (left.length > 0) return { status: "warn", value: `left behind: ${left.join("; ")}${kept}`, hint: "remove them by hand (POST /jobs/{id}/cancel, DELETE /portals/{id}, rm -rf the folder)", details: { left, jobs: ids } };
  return { status: "ok", value: `removed ${run.root ?? "nothing"}${run.portal ? ` and portal ${run.portal.name}` : ""}${kept}`, details: { jobs: ids } };
}

/** Runs the smoke transfer as four report rows: setup, copy, move, cleanup. */
export async function runSmoke(opts: SmokeOptions): Promise<CheckResult[]> {
  const run: SmokeRun = { id: crypto.randomUUID().slice(0, 8), client: new ApiClient(opts.api.url, opts.api.token), root: null, portal: null, manifests: null, jobs: [] };
  const jobTimeoutMs = opts.jobTimeoutMs ?? DEFAULT_JOB_TIMEOUT_MS;
  const inFlight: Promise<unknown>[] = [];
  const track = <T>(p: Promise<T>): Promise<T> => (inFlight.push(p), p);
  const results = [
    await runCheck(
      { name: "smoke.setup", timeoutMs: 60_000, failHint: `check that ${opts.parentDir ?? tmpdir()} is writable (or pass --smoke-dir)`, run: () => track(setup(run, opts)) },
      opts.interrupt,
    ),
  ];
  const jobCheck = (type: "copy" | "move") => ({
    name: `smoke.${type}`,
    timeoutMs: jobTimeoutMs + 15_000,
    failHint: "see the api and worker checks, the API log and the worker log",
    run: (signal: AbortSignal) => track(transfer(run, type, opts, signal)),
  });
  results.push(...(await Promise.all([runCheck(jobCheck("copy"), opts.interrupt), runCheck(jobCheck("move"), opts.interrupt)])));
  // Cleanup is never interrupted: it is what makes a Ctrl-C safe.
  results.push(await runCheck({ name: "smoke.cleanup", timeoutMs: 60_000, failHint: "remove the smoke folder and portal by hand", run: () => cleanup(run, inFlight) }));
  return results;
}
