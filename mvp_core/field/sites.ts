/**
 * The second site's checks, run after the transfers and faults, through the API only: both sites
 * show live workers; a job from LAB's folder runs at LAB's site and one from site-2's folder at
 * site-2 (the job's `site` and its `started` events' worker and site say where); a job between the
 * two sites' folders is refused with 422 CROSS_SITE; a job between two sftp folders runs at either
 * site; with the faults, site-2's only worker is killed mid-job — its job waits in QUEUED with
 * `waitingFor` while LAB's jobs run, and completes verified once site-2's worker is back; last, the
 * DKU for site-2 (run at site-2) reports both sites and passes. Every job's bytes and event log are
 * judged as any other's (jobs.ts); these checks add where it ran and what the API said.
 */
import { cp, rm } from "node:fs/promises";
import { join } from "node:path";
import { ApiError, type Portal } from "./api.ts";
import type { DatasetName } from "./datasets.ts";
import type { FaultInjector, JobOutcome } from "./jobs.ts";
import { percent, waitUntilMidTransfer, waitUntilQueued } from "./faults.ts";
import { job, labPlace, srvPlace, type FieldContext, type Place, type ScenarioResults } from "./scenarios.ts";
import type { DkuRun, SecondSite } from "./site2.ts";

/** One check of the sites scenario. */
export interface SiteCheck {
  name: string;
  /** What must be seen. */
  expected: string;
  /** What was seen. */
  seen: string;
  /** Label of the job it judged (its bytes and events are judged under "Every job"), if any. */
  job: string | null;
  problems: string[];
}

/** The sites part of the report (and of the JSON). */
export interface SitesReport {
  /** The first site: the stack's worker's KETTER_SITE. */
  lab: string;
  second: string;
  /** "netns": site-2 in a network namespace of its own; "process": a second process on this host. */
  kind: "netns" | "process";
  describe: string;
  /** Ids of site-2's workers, in the order they were started. */
  workers: string[];
  checks: SiteCheck[];
  dku: DkuRun | null;
}

/** What the sites checks need beyond the field context. */
export interface SitesContext extends FieldContext {
  site: SecondSite;
  /** Site-2's local portal, on `site.root`. */
  sitePortal: Portal;
  labSite: string;
  /** Run the worker kill (with the faults). */
  kill: boolean;
  /** The stack's WORKER_LEASE_MS: how long a dead worker's job stays RUNNING before the reaper takes it back. */
  leaseMs: number;
}

const sitePlace = (ctx: SitesContext, rel: string): Place => ({ portal: ctx.sitePortal, rel, abs: join(ctx.site.root, rel) });
const attempts = (o: JobOutcome) => o.ranOn.map((r) => `${r.workerId} (site ${r.site})`).join(", ") || "no attempt";

/** Where a job was routed and ran, against where it had to: null `site` means any site, `ranAt` the sites allowed to run it. */
export function placementProblems(o: Pick<JobOutcome, "site" | "ranOn">, site: string | null, ranAt: readonly string[], workerId?: string): string[] {
  const problems: string[] = [];
  if (o.site !== site) problems.push(`routed to ${o.site === null ? "any site" : `site ${o.site}`}, expected ${site === null ? "any site" : `site ${site}`}`);
  if (o.ranOn.length === 0) problems.push("no started event: it never ran");
  for (const r of o.ranOn) if (!ranAt.includes(r.site)) problems.push(`an attempt ran on ${r.workerId} at site ${r.site}, expected ${ranAt.join(" or ")}`);
  const last = o.ranOn.at(-1);
  if (workerId !== undefined && last && last.workerId !== workerId) problems.push(`the last attempt ran on ${last.workerId}, expected ${workerId}`);
  return problems;
}

function record(ctx: SitesContext, report: SitesReport, check: SiteCheck): void {
  report.checks.push(check);
  ctx.log(`sites: ${check.name}: ${check.problems.length ? `FAIL — ${check.problems.join("; ")}` : "ok"} (${check.seen})`);
}

/** Both sites have a live worker in /health, site-2's the one this command started. */
async function bothLive(ctx: SitesContext, report: SitesReport): Promise<void> {
  const health = await ctx.api.health();
  const live = (name: string) => health.sites.find((s) => s.name === name);
  const problems: string[] = [];
  for (const name of [ctx.labSite, ctx.site.name]) if (!((live(name)?.live ?? 0) > 0)) problems.push(`/health lists no live worker of site ${name}`);
  if (!live(ctx.site.name)?.workers.some((w) => w.id === ctx.site.workerId())) problems.push(`site-2's worker ${ctx.site.workerId()} is not listed under site ${ctx.site.name}`);
  record(ctx, report, {
    name: "both sites live", expected: `/health lists ${ctx.labSite} and ${ctx.site.name}, each with a live worker`, job: null, problems,
    seen: health.sites.map((s) => `${s.name}: ${s.live} live (${s.workers.map((w) => w.id).join(", ") || "none"})`).join("; "),
  });
}

/** A job between LAB's folder and site-2's folder: 422 CROSS_SITE, nothing created. */
async function crossSite(ctx: SitesContext, report: SitesReport, dataset: DatasetName): Promise<void> {
  const check: SiteCheck = { name: "LAB folder → site-2 folder refused", expected: "422 CROSS_SITE at POST /jobs", seen: "", job: null, problems: [] };
  try {
    const created = await ctx.api.createJob(
      { type: "copy", source: { portal: ctx.lab.portal.id, path: `src/${dataset}` }, target: { portal: ctx.sitePortal.id, path: `in/cross-${dataset}` } },
      `field:${ctx.runId}:sites-cross`,
    );
    check.seen = `accepted as job ${created.id} (${created.status})`;
    check.problems.push("a job between two sites' local folders was accepted");
    await ctx.api.cancelJob(created.id);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    check.seen = `HTTP ${err.status} ${err.code ?? "(no code)"}: ${err.message.replace(/^POST \/jobs: HTTP \d+ \S+: /, "")}`;
    if (err.status !== 422 || err.code !== "CROSS_SITE") check.problems.push(`answered HTTP ${err.status} ${err.code ?? ""}, expected 422 CROSS_SITE`);
  }
  record(ctx, report, check);
}

/** Each site runs the job whose local end is its folder; a job between two sftp folders runs at either. */
async function routing(ctx: SitesContext, res: ScenarioResults, report: SitesReport, dataset: DatasetName): Promise<void> {
  const sites = { scenario: "sites" as const, dataset, type: "copy" as const, rttMs: 0 };
  const fromLab = srvPlace(ctx, 0, `in/sites-lab-${dataset}`);
  const lab = await job(ctx, { ...sites, label: "sites-lab-push", direction: "push" }, labPlace(ctx, `src/${dataset}`), fromLab);
  res.jobs.push(lab);
  record(ctx, report, {
    name: "LAB folder → SRVTRF runs at LAB's site", expected: `site ${ctx.labSite}, on a worker of ${ctx.labSite}`, job: lab.label,
    seen: `site ${lab.site ?? "any"}; ${attempts(lab)}`, problems: placementProblems(lab, ctx.labSite, [ctx.labSite]),
  });

  const fromSite = srvPlace(ctx, 0, `in/sites-site2-${dataset}`);
  const second = await job(ctx, { ...sites, label: "sites-site2-push", direction: "push" }, sitePlace(ctx, `src/${dataset}`), fromSite);
  res.jobs.push(second);
  await rm(fromSite.abs, { recursive: true, force: true });
  record(ctx, report, {
    name: "site-2 folder → SRVTRF runs at site-2", expected: `site ${ctx.site.name}, on site-2's worker ${ctx.site.workerId()}`, job: second.label,
    seen: `site ${second.site ?? "any"}; ${attempts(second)}`, problems: placementProblems(second, ctx.site.name, [ctx.site.name], ctx.site.workerId()),
  });

  await crossSite(ctx, report, dataset);

  if (lab.status === "DONE") {
    const within = srvPlace(ctx, 0, `in/sites-any-${dataset}`);
    const any = await job(ctx, { ...sites, label: "sites-sftp-to-sftp", direction: "srvtrf-to-srvtrf" }, fromLab, within);
    res.jobs.push(any);
    await rm(within.abs, { recursive: true, force: true });
    record(ctx, report, {
      name: "SRVTRF → SRVTRF (sftp → sftp) runs at either site", expected: `any site (null), on a worker of ${ctx.labSite} or ${ctx.site.name}`, job: any.label,
      seen: `site ${any.site ?? "any"}; ${attempts(any)}`, problems: placementProblems(any, null, [ctx.labSite, ctx.site.name]),
    });
  }
  await rm(fromLab.abs, { recursive: true, force: true });
}

/**
 * Kills site-2's worker once the job moves bytes, checks what happens while site-2 has no worker
 * (whileSiteDown), and starts site-2's worker again. Problems seen on the way land in `problems`.
 */
function killSiteWorker(ctx: SitesContext, res: ScenarioResults, report: SitesReport, small: DatasetName, problems: string[], seen: string[]): FaultInjector {
  return async (created) => {
    const running = await waitUntilMidTransfer(ctx.api, created.id, 120_000);
    const killed = ctx.site.workerId();
    if (running.workerId !== killed) throw new Error(`the job runs on ${running.workerId ?? "no worker"}, not on site-2's worker ${killed}`);
    await ctx.site.killWorker();
    seen.push(`kill -9 of ${killed} at ${percent(running)} of the bytes`);
    try {
      await whileSiteDown(ctx, res, created.id, small, problems, seen);
    } finally {
      // Also after a failed check: the job must still be able to finish, and its portal be deleted.
      const again = await ctx.site.startWorker();
      report.workers.push(again);
      ctx.log(`sites: site-2's worker started again as ${again}`);
      seen.push(`site-2's worker started again as ${again}`);
    }
    return seen.join("; ");
  };
}

/** The job waits for site-2 with the reason shown; a LAB job runs meanwhile; the site-2 job still waits after it. */
async function whileSiteDown(ctx: SitesContext, res: ScenarioResults, jobId: string, small: DatasetName, problems: string[], seen: string[]): Promise<void> {
  const reason = `no live worker for site ${ctx.site.name}`;
  const t0 = Date.now();
  // The job stays RUNNING until its lease runs out; then a LAB worker's reaper puts it back on site-2's list.
  const waiting = await waitUntilQueued(ctx.api, jobId, reason, ctx.leaseMs + 120_000);
  seen.push(`${((Date.now() - t0) / 1000).toFixed(0)} s later QUEUED, waitingFor "${waiting.waitingFor}"`);

  const target = srvPlace(ctx, 0, `in/sites-during-${small}`);
  const during = await job(ctx, { label: "sites-lab-push-while-site2-down", scenario: "sites", dataset: small, type: "copy", direction: "push", rttMs: 0 }, labPlace(ctx, `src/${small}`), target);
  res.jobs.push(during);
  await rm(target.abs, { recursive: true, force: true });
  problems.push(...placementProblems(during, ctx.labSite, [ctx.labSite]).map((p) => `LAB's job meanwhile: ${p}`));
  if (during.status !== "DONE") problems.push(`LAB's job meanwhile ended ${during.status}`);
  const still = await ctx.api.getJob(jobId);
  seen.push(`LAB's job meanwhile ${during.status} in ${during.seconds?.toFixed(1) ?? "?"} s, site-2's job still ${still.status}`);
  if (still.status !== "QUEUED" || !still.waitingFor?.includes(reason)) {
    problems.push(`after LAB's job site-2's job was ${still.status} (waitingFor ${JSON.stringify(still.waitingFor)}), expected QUEUED waiting for site-2`);
  }
}

/** The kill scenario on the large dataset over the slowest link (time to strike mid-transfer), with a LAB job meanwhile. */
async function siteDown(ctx: SitesContext, res: ScenarioResults, report: SitesReport, small: DatasetName): Promise<void> {
  const rtt = Math.max(...ctx.portals.keys());
  const target = srvPlace(ctx, rtt, "in/sites-site2-kill");
  const problems: string[] = [];
  const seen: string[] = [];
  const out = await job(
    ctx, { label: "sites-site2-push-worker-kill", scenario: "sites", dataset: "large", type: "copy", direction: "push", rttMs: rtt, fault: "worker_kill" },
    sitePlace(ctx, "src/large"), target, killSiteWorker(ctx, res, report, small, problems, seen),
  );
  res.jobs.push(out);
  await rm(target.abs, { recursive: true, force: true });
  record(ctx, report, {
    name: "site-2's worker killed mid-job", job: out.label, seen: `${seen.join("; ")}; then ${out.status} after ${out.attempts} attempt(s): ${attempts(out)}`,
    expected: `QUEUED with waitingFor "no live worker for site ${ctx.site.name} …" while LAB's jobs run; DONE and verified at site-2 once its worker is back`,
    problems: [...problems, ...placementProblems(out, ctx.site.name, [ctx.site.name], ctx.site.workerId())],
  });
}

/** The DKU at site-2: passes, and its worker check lists both sites with a live worker. */
async function dku(ctx: SitesContext, report: SitesReport): Promise<void> {
  ctx.log(`sites: KETTER_SITE=${ctx.site.name} bun run dku${ctx.site.kind === "netns" ? " (in site-2's namespace)" : ""} …`);
  const run = await ctx.site.runDku();
  report.dku = run;
  const problems: string[] = [];
  if (run.exitCode !== 0) problems.push(`the DKU exited ${run.exitCode ?? "by a signal"}${run.output ? `: ${run.output}` : ""}`);
  for (const c of run.checks.filter((c) => c.status === "fail")) problems.push(`DKU check ${c.name} failed: ${c.value}${c.hint ? ` (${c.hint})` : ""}`);
  for (const name of [ctx.labSite, ctx.site.name]) if (!((run.sites.find((s) => s.site === name)?.live ?? 0) > 0)) problems.push(`the DKU's worker check shows no live worker of site ${name}`);
  const worker = run.checks.find((c) => c.name === "worker");
  record(ctx, report, {
    name: "DKU at site-2", expected: "exit 0; its worker check lists both sites with live workers; its smoke transfer runs through site-2's worker", job: null, problems,
    seen: run.summary ? `exit ${run.exitCode}: ${run.summary.ok} ok, ${run.summary.warn} warn, ${run.summary.fail} fail; worker: ${worker?.value ?? "—"}; ${run.checks.filter((c) => c.name.startsWith("smoke")).map((c) => `${c.name} ${c.status}`).join(", ") || "no smoke rows"}` : `exit ${run.exitCode ?? "?"}, no report`,
  });
}

/** Runs every sites check, filling `report` as it goes (a step that throws leaves the checks before it). */
export async function runSites(ctx: SitesContext, res: ScenarioResults, report: SitesReport): Promise<void> {
  const small = [...ctx.manifests.keys()][0]!;
  const data = ctx.kill ? [...new Set([small, "large" as const])] : [small];
  for (const d of data) await cp(join(ctx.lab.root, "src", d), join(ctx.site.root, "src", d), { recursive: true });
  await bothLive(ctx, report);
  await routing(ctx, res, report, small);
  if (ctx.kill) await siteDown(ctx, res, report, small);
  await dku(ctx, report);
}
