/**
 * One Ketter job of the field test, end to end: submitted through the API, waited for, and judged —
 * status DONE, a complete event log, every byte at the destination, and the source as the job type
 * promises (untouched after a copy, gone after a move), with no staging left behind.
 */
import { readdir } from "node:fs/promises";
import { basename, dirname } from "node:path";
import type { FieldApi, Job, JobEvent, JobRequest } from "./api.ts";
import { isGone, verifyFolder, type Manifest } from "./datasets.ts";
import type { Direction } from "./measure.ts";

/** What was done to the stack while the job ran. */
export type Fault = "none" | "worker_kill" | "sshd_restart";

/** Which way the bytes went: LAB (or another site) ⇄ SRVTRF, or between two folders of SRVTRF (sftp → sftp). */
export type JobDirection = Direction | "srvtrf-to-srvtrf";

/** Which part of the run a job belongs to: the transfers and faults, or the sites checks. */
export type Scenario = "main" | "sites";

const TERMINAL = new Set(["DONE", "DONE_WITH_ERRORS", "FAILED", "CANCELLED"]);

/** One field-test job: what it was, what happened, what the checks found. */
export interface JobOutcome {
  label: string;
  scenario: Scenario;
  dataset: string;
  direction: JobDirection;
  type: "copy" | "move";
  rttMs: number;
  fault: Fault;
  jobId: string | null;
  status: string;
  attempts: number;
  strategy: string | null;
  files: number;
  bytes: number;
  /** Job created → finished (Postgres clock): what a user waits. */
  seconds: number | null;
  /** First attempt started → finished (Postgres clock). */
  engineSeconds: number | null;
  /** The site it was routed to (GET /jobs/{id} `site`; null: any site, both ends sftp). */
  site: string | null;
  /** Each attempt's worker and that worker's site, from the `started` events. */
  ranOn: Array<{ workerId: string; site: string }>;
  /** Event kinds with their counts, in first-seen order ("progress" collapsed). */
  events: Array<{ kind: string; count: number }>;
  /** What the fault injection did (worker killed at 40 %, sshd down for 1 s…). */
  faultNote: string | null;
  /** Everything that was not as it must be; empty when the job passed. */
  problems: string[];
}

/** A job to run and how to check it. */
export interface JobPlan {
  label: string;
  scenario: Scenario;
  dataset: string;
  direction: JobDirection;
  rttMs: number;
  fault: Fault;
  request: JobRequest;
  /** Local paths (LAB and SRVTRF share this machine's disk) of the job's source and target. */
  sourceDir: string;
  targetDir: string;
  expected: Manifest;
  timeoutMs: number;
}

/** Injects a fault into a running job; returns what it did (for the report). */
export type FaultInjector = (job: Job) => Promise<string>;

/** The problems of an event log: what a complete log of a job that ended DONE must contain. */
export function eventLogProblems(events: readonly Pick<JobEvent, "kind">[], type: "copy" | "move", fault: Fault, attempts: number): string[] {
  const kinds = events.map((e) => e.kind);
  const count = (k: string) => kinds.filter((x) => x === k).length;
  const problems: string[] = [];
  if (kinds[0] !== "created") problems.push(`first event is ${kinds[0] ?? "missing"}, expected created`);
  for (const k of ["queued", "started", "verified", "committed"]) if (count(k) === 0) problems.push(`no ${k} event`);
  if (count("done") !== 1) problems.push(`${count("done")} done events, expected exactly 1`);
  else if (kinds.at(-1) !== "done") problems.push(`last event is ${kinds.at(-1)}, expected done`);
  for (const k of ["failed", "cancelled", "source_kept"]) if (count(k) > 0) problems.push(`${count(k)} ${k} event(s)`);
  if (type === "move" && count("source_removed") === 0) problems.push("move without a source_removed event");
  // Every attempt logs `started`; a released attempt is given back, so only then may they differ.
  if (count("released") === 0 && count("started") !== attempts) problems.push(`${count("started")} started events for ${attempts} attempts`);
  if (fault === "worker_kill" && count("reclaimed") === 0) problems.push("worker killed but no reclaimed event: the kill missed the job");
  if (fault === "sshd_restart" && count("retry_scheduled") === 0) problems.push("sshd restarted but no retry_scheduled event: the restart missed the transfer");
  return problems;
}

/** Each attempt's worker and site, as its `started` event names them. */
export function ranOn(events: readonly Pick<JobEvent, "kind" | "data">[]): Array<{ workerId: string; site: string }> {
  return events
    .filter((e) => e.kind === "started")
    .map((e) => ({ workerId: typeof e.data.workerId === "string" ? e.data.workerId : "?", site: typeof e.data.site === "string" ? e.data.site : "?" }));
}

/** Event kinds with counts in first-seen order. */
export function summarizeEvents(events: readonly Pick<JobEvent, "kind">[]): Array<{ kind: string; count: number }> {
  const out: Array<{ kind: string; count: number }> = [];
  for (const e of events) {
    const last = out.find((o) => o.kind === e.kind);
    if (last) last.count++;
    else out.push({ kind: e.kind, count: 1 });
  }
  return out;
}

/**
 * Polls the job until it is DONE, DONE_WITH_ERRORS, FAILED or CANCELLED, or `timeoutMs` passed (then returns it as it
 * is). When `signal` aborts (Ctrl-C), the job is cancelled and waited for, so cleanup can delete its
 * portals, and the abort reason is thrown.
 */
export async function waitForTerminal(api: FieldApi, id: string, timeoutMs: number, signal?: AbortSignal): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (signal?.aborted) {
      await api.cancelJob(id);
      await waitForTerminal(api, id, 60_000);
      signal.throwIfAborted();
    }
    const job = await api.getJob(id);
    if (TERMINAL.has(job.status) || Date.now() > deadline) return job;
    await Bun.sleep(100);
  }
}

/** Staging entries the engine left next to the target (`.ketter-<job>…`): a finished job leaves none. */
async function stagingLeft(targetDir: string, jobId: string): Promise<string[]> {
  const names = await readdir(dirname(targetDir));
  return names.filter((n) => n.startsWith(".ketter-") && n.includes(jobId)).map((n) => `staging left behind: ${n} next to ${basename(targetDir)}`);
}

const seconds = (from: string | null, to: string | null) => (from && to ? (Date.parse(to) - Date.parse(from)) / 1000 : null);

/** Submits the plan's job, injects the fault (if any), waits, and judges the outcome. */
export async function runJob(api: FieldApi, plan: JobPlan, runId: string, signal: AbortSignal, inject?: FaultInjector): Promise<JobOutcome> {
  const outcome: JobOutcome = {
    label: plan.label, scenario: plan.scenario, dataset: plan.dataset, direction: plan.direction, type: plan.request.type, rttMs: plan.rttMs, fault: plan.fault,
    jobId: null, status: "NOT_SUBMITTED", attempts: 0, strategy: null, files: 0, bytes: 0, seconds: null, engineSeconds: null,
    site: null, ranOn: [], events: [], faultNote: null, problems: [],
  };
  const created = await api.createJob(plan.request, `field:${runId}:${plan.label}`);
  outcome.jobId = created.id;
  if (inject) {
    // A fault that could not be injected fails this job's check, but the job still runs to its end
    // (and is waited for) so its portal can be deleted and the rest of the run go on.
    try {
      outcome.faultNote = await inject(created);
    } catch (err) {
      outcome.problems.push(`fault not injected: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const job = await waitForTerminal(api, created.id, plan.timeoutMs, signal);
  const events = await api.events(job.id);
  Object.assign(outcome, {
    status: job.status, attempts: job.attempts, strategy: job.strategy, files: job.progress.filesDone, bytes: job.progress.bytesDone,
    seconds: seconds(job.createdAt, job.finishedAt), engineSeconds: seconds(job.startedAt, job.finishedAt), events: summarizeEvents(events),
    site: job.site, ranOn: ranOn(events),
  });
  if (job.status !== "DONE") {
    const why = job.error ? `${job.error.code}: ${job.error.message ?? ""}` : TERMINAL.has(job.status) ? "no error recorded" : `still ${job.status} after ${plan.timeoutMs / 1000} s`;
    outcome.problems.push(`job ended ${job.status} (${why})`);
    // A job left running would keep its portals busy (deleting them is refused): stop it.
    if (!TERMINAL.has(job.status)) {
      await api.cancelJob(job.id);
      outcome.status = (await waitForTerminal(api, job.id, 60_000)).status;
    }
    return outcome;
  }
  outcome.problems.push(...eventLogProblems(events, plan.request.type, plan.fault, job.attempts));
  outcome.problems.push(...(await verifyFolder(plan.targetDir, plan.expected)).map((p) => `target: ${p}`));
  outcome.problems.push(...(await stagingLeft(plan.targetDir, job.id)));
  if (plan.request.type === "copy") outcome.problems.push(...(await verifyFolder(plan.sourceDir, plan.expected)).map((p) => `source after copy: ${p}`));
  else if (!(await isGone(plan.sourceDir))) outcome.problems.push(`source ${plan.sourceDir} still exists after the move`);
  return outcome;
}
