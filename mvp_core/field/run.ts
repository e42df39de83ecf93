/**
 * The field test as named steps: preflight, SRVTRF and relays, portals, datasets, scenarios,
 * cleanup, report. Cleanup runs whatever happened before it, and the report is written even when a
 * step failed, so a failed run still says what it did and why it failed.
 */
import { rm } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { FieldApi, type Health, type Portal } from "./api.ts";
import { datasetSpecs, writeDataset, type DatasetName, type Manifest } from "./datasets.ts";
import type { FieldOptions } from "./options.ts";
import { buildTable, failures, renderTerminalTable, writeReport, type FieldReport } from "./report.ts";
import { runDataset, runFaults, type FieldContext, type ScenarioResults } from "./scenarios.ts";
import { createLab, labSiteOf, preflight, registerSrvtrfPortal, sitesPreflight, startSrvtrf, type Srvtrf, type SrvtrfPortal } from "./setup.ts";
import { retireSite, SITE_2, startSecondSite, type SecondSite } from "./site2.ts";
import { runSites, type SitesReport } from "./sites.ts";
import { findLocalWorker, inspectWorker } from "./workers.ts";

/** What main needs: where the stack is (the configuration's view, for what the stack worker's environment leaves unset) and how to print progress. */
export interface FieldEnv {
  api: { url: string; token: string | undefined };
  databaseUrl: string;
  redisUrl: string;
  command: string;
  /** Aborted on Ctrl-C: the run stops, cleans up and still writes its report. */
  signal: AbortSignal;
  log: (line: string) => void;
}

/** What a finished run returns to main. */
export interface FieldOutcome {
  report: FieldReport;
  paths: string[];
  table: string;
}

/** State the steps fill in, so cleanup knows what exists. */
interface Resources {
  srv: Srvtrf | null;
  lab: Awaited<ReturnType<typeof createLab>> | null;
  portals: SrvtrfPortal[];
  site2: SecondSite | null;
  site2Portal: Portal | null;
}

function machine(loadAvgStart: number[]): FieldReport["machine"] {
  const uname = Bun.spawnSync(["uname", "-sr"]).stdout.toString().trim();
  return {
    host: os.hostname(), nproc: os.availableParallelism(), memGiB: Math.round(os.totalmem() / 2 ** 30),
    cpu: os.cpus()[0]?.model ?? "?", kernel: os.release(), bun: Bun.version, os: uname.split(" ")[0] ?? os.type(),
    loadAvgStart, loadAvgEnd: os.loadavg(),
  };
}

/** Generates the datasets in LAB's src/ folder (the pristine copies every job and tool reads). */
async function makeDatasets(labRoot: string, opts: FieldOptions, log: FieldEnv["log"], signal: AbortSignal): Promise<Map<DatasetName, Manifest>> {
  const manifests = new Map<DatasetName, Manifest>();
  for (const spec of datasetSpecs(opts.quick).filter((s) => opts.datasets.includes(s.name))) {
    signal.throwIfAborted();
    log(`writing dataset ${spec.name}: ${spec.describe}`);
    manifests.set(spec.name, await writeDataset(join(labRoot, "src", spec.name), spec));
  }
  return manifests;
}

/** Deletes portals (once their jobs are over), stops SRVTRF (sshd and its link), removes LAB; returns what it could not do. */
async function cleanup(api: FieldApi, res: Resources): Promise<string[]> {
  const problems: string[] = [];
  const attempt = async (what: string, step: () => Promise<void>) => {
    await step().catch((err: unknown) => problems.push(`cleanup: ${what}: ${err instanceof Error ? err.message : String(err)}`));
  };
  for (const p of res.portals) await attempt(`delete portal ${p.portal.name}`, () => api.deletePortal(p.portal.id));
  if (res.site2Portal) {
    const portal = res.site2Portal;
    await attempt(`delete portal ${portal.name}`, () => api.deletePortal(portal.id));
  }
  if (res.site2) {
    const site = res.site2;
    await attempt(`stop ${site.name} (worker, relays, namespace, folder)`, () => site.stop());
    // Leaves the stack with the one site it had: with two, new local portals would need a `site`.
    await attempt(`retire site ${site.name}`, () => retireSite(api, site.name, 120_000));
  }
  if (res.lab) {
    const lab = res.lab;
    await attempt(`delete portal ${lab.portal.name}`, () => api.deletePortal(lab.portal.id));
    await attempt(`remove ${lab.root}`, async () => {
      lab.disk?.stop();
      await rm(lab.root, { recursive: true, force: true });
    });
  }
  if (res.srv) {
    const srv = res.srv;
    await attempt("stop SRVTRF (sshd, link) and remove its user and folders", () => srv.stop());
  }
  return problems;
}

/**
 * Starts site-2 beside LAB with the environment of the stack's worker here (which may have been
 * restarted by the faults: found afresh) and registers its local portal.
 */
async function startSites(ctx: FieldContext, res: Resources, o: { labSite: string; kill: boolean; parent: string | undefined; env: FieldEnv }): Promise<{ report: SitesReport; leaseMs: number }> {
  const health = await ctx.api.health();
  const local = findLocalWorker(health.sites.find((s) => s.name === o.labSite)?.workers.map((w) => w.id) ?? []);
  if (local === null) throw new Error(`no live worker of site ${o.labSite} runs on this machine any more: site-2 copies its environment`);
  const stack = await inspectWorker(local);
  const site = await startSecondSite({
    api: ctx.api, testbed: ctx.srv.testbed, stack, parent: o.parent,
    urls: { database: stack.env.DATABASE_URL || o.env.databaseUrl, redis: stack.env.REDIS_URL || o.env.redisUrl, api: o.env.api.url, apiToken: o.env.api.token },
  });
  res.site2 = site;
  ctx.log(`sites: ${site.name}: worker ${site.workerId()}; ${site.describe}`);
  res.site2Portal = await ctx.api.createPortal({ kind: "local", name: `field-site2-${ctx.runId}`, rootPath: site.root, site: site.name });
  const lease = Number(stack.env.WORKER_LEASE_MS || 30_000);
  return {
    report: { lab: o.labSite, second: site.name, kind: site.kind, describe: site.describe, workers: [site.workerId()], checks: [], dku: null },
    leaseMs: Number.isFinite(lease) && lease > 0 ? lease : 30_000,
  };
}

/** Runs the whole field test and writes its report. Throws PreflightError when there is no stack to test. */
export async function runField(opts: FieldOptions, env: FieldEnv): Promise<FieldOutcome> {
  const started = performance.now();
  const loadAvgStart = os.loadavg();
  const when = new Date().toISOString();
  const runId = crypto.randomUUID().slice(0, 8);
  const api = new FieldApi(env.api.url, env.api.token);
  const health: Health = await preflight(api);
  const labSite = opts.sites ? sitesPreflight(health, SITE_2) : labSiteOf(health);
  env.log(`stack at ${env.api.url}: ${health.status}, workers ${health.workers.ids.join(", ")}${labSite ? ` (site ${labSite})` : ""}`);

  const res: Resources = { srv: null, lab: null, portals: [], site2: null, site2Portal: null };
  let sites: Awaited<ReturnType<typeof startSites>> | null = null;
  const results: ScenarioResults = { jobs: [], references: [], notes: [] };
  const errors: string[] = [];
  try {
    res.srv = await startSrvtrf({ address: opts.address, loopback: opts.loopback });
    env.log(`SRVTRF: sshd on ${res.srv.sshd.host}:${res.srv.sshd.port}, user ${res.srv.sshd.username}, host key ${res.srv.sshd.hostKeyFingerprint}`);
    env.log(`link: ${res.srv.testbed.describe}`);
    results.notes.push(`link: ${res.srv.testbed.describe}`);
    res.lab = await createLab(api, `field-lab-${runId}`, opts.labParent, labSite);
    for (const rtt of opts.rttsMs) {
      res.portals.push(await registerSrvtrfPortal(api, res.srv, `field-srvtrf-${rtt === 0 ? "direct" : `rtt${rtt}`}-${runId}`, rtt));
    }
    env.log(`portals: ${[res.lab.portal.name, ...res.portals.map((p) => p.portal.name)].join(", ")} (SRVTRF host key pinned)`);
    results.notes.push(res.lab.disk && res.srv.disk
      ? `file systems: LAB's folder and SRVTRF's root are each a fresh journaled ext4 on a loop device (${res.lab.disk.describe}; ${res.srv.disk.describe}), as real hosts have; this machine's own root file system slows every file creation for minutes after many deletions, whichever tool runs next`
      : "file systems: LAB's folder and SRVTRF's root are plain folders in the temp directory (not root: no scratch file systems); small-file times then depend on what was deleted there in the last minutes");
    const manifests = await makeDatasets(res.lab.root, opts, env.log, env.signal);
    const ctx: FieldContext = {
      api, runId, lab: res.lab, srv: res.srv, portals: new Map(res.portals.map((p) => [p.rttMs, p])), manifests, maxToolSeconds: opts.maxToolSeconds, signal: env.signal, log: env.log,
    };
    for (const rtt of opts.rttsMs) {
      for (const dataset of opts.datasets) await runDataset(ctx, dataset, rtt, results);
    }
    if (opts.faults) await runFaults(ctx, results, { workerIds: health.workers.ids });
    if (opts.sites && labSite) {
      sites = await startSites(ctx, res, { labSite, kill: opts.faults, parent: opts.labParent, env });
      await runSites({ ...ctx, site: res.site2!, sitePortal: res.site2Portal!, labSite, kill: opts.faults, leaseMs: sites.leaseMs }, results, sites.report);
    }
  } catch (err) {
    errors.push(`the run stopped early: ${err instanceof Error ? err.message : String(err)}`);
    env.log(`the run stopped early: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
  errors.push(...(await cleanup(api, res)));
  if (sites && !errors.some((e) => e.includes(`retire site ${SITE_2}`))) results.notes.push(`cleanup: ${SITE_2}'s worker stopped (SIGTERM), its relays, namespace and folder removed, its portal deleted and the site retired (DELETE /sites/${SITE_2}): the stack has its one site again`);
  if (results.jobs.length > 0) {
    results.notes.push(`cleanup: portals deleted, LAB's folder and SRVTRF (sshd, user, keys, root) and its link (testbed namespace and delay lines, or relays) removed; the ${results.jobs.length} jobs stay in the job history (the API deletes no jobs); their ids are listed under "Every job"`);
  }

  const report: FieldReport = {
    when, runId, quick: opts.quick, command: env.command, passed: false, durationS: (performance.now() - started) / 1000,
    machine: machine(loadAvgStart),
    stack: { apiUrl: env.api.url, version: health.version, workers: health.workers.ids },
    srvtrf: res.srv
      ? {
          address: res.srv.sshd.host, port: res.srv.sshd.port, user: res.srv.sshd.username, root: res.srv.sshd.root, hostKeyFingerprint: res.srv.sshd.hostKeyFingerprint,
          link: res.srv.testbed.kind,
          portals: res.portals.map((p) => ({ name: p.portal.name, id: p.portal.id, rttMs: p.rttMs, host: p.host, port: p.port })),
        }
      : null,
    datasets: datasetSpecs(opts.quick).filter((s) => opts.datasets.includes(s.name)).map((s) => ({ name: s.name, describe: s.describe })),
    rttsMs: opts.rttsMs,
    table: buildTable(results.jobs, results.references),
    jobs: results.jobs,
    references: results.references,
    sites: sites?.report ?? null,
    notes: results.notes,
    errors,
  };
  report.passed = results.jobs.length > 0 && failures(report).length === 0 && results.jobs.every((j) => j.status === "DONE");
  const paths = await writeReport(opts.docsDir, report);
  return { report, paths, table: renderTerminalTable(report.table) };
}
