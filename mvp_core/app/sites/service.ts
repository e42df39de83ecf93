/**
 * Sites as the API shows them: every site Postgres has seen a worker of, or Redis has a list or a
 * worker for, with its live workers and queue depths. Also what a waiting job waits for.
 */
import type { JobRow } from "../../jobs/types.ts";
import type { QueueDepth, WorkerInfo } from "../../queue/queue.ts";
import { listSites, type SiteRow } from "../../sites/repository.ts";
import type { AppDeps } from "../deps.ts";
import type { SitesView, SiteView } from "./schemas.ts";

const EMPTY: QueueDepth = { pending: 0, processing: 0, delayed: 0 };

/** Merges Postgres's sites (null: unreadable) with Redis's workers and depths into one list by name. */
export function mergeSites(rows: SiteRow[] | null, workers: WorkerInfo[], depths: Awaited<ReturnType<AppDeps["queue"]["siteDepths"]>>): SitesView {
  const byName = new Map<string, SiteView>();
  const site = (name: string): SiteView => {
    let v = byName.get(name);
    if (!v) byName.set(name, (v = { name, firstSeenAt: null, lastSeenAt: null, live: 0, workers: [], queue: { ...EMPTY } }));
    return v;
  };
  for (const r of rows ?? []) Object.assign(site(r.name), { firstSeenAt: r.first_seen_at.toISOString(), lastSeenAt: r.last_seen_at.toISOString() });
  for (const w of workers) {
    const v = site(w.site);
    v.live++;
    v.workers.push({ id: w.id, host: w.host, pid: w.pid, running: w.running, concurrency: w.concurrency, lastBeatAt: w.lastBeatAt });
  }
  let anySite = { ...EMPTY };
  for (const { site: name, ...depth } of depths) {
    if (name === null) anySite = depth;
    else site(name).queue = depth;
  }
  return { sites: [...byName.values()].sort((a, b) => a.name.localeCompare(b.name)), anySite };
}

/**
 * The sites now; throws when Redis cannot be read. Postgres failing (or `postgres: false`) only
 * leaves out when each was first and last seen, and sites known to Postgres alone.
 */
export async function siteOverview(deps: AppDeps, opts: { postgres?: boolean } = {}): Promise<SitesView> {
  const [rows, workers, depths] = await Promise.all([
    opts.postgres === false
      ? null
      : listSites(deps.sql).catch((err: unknown) => {
          deps.log.warn("sites unreadable in Postgres; showing Redis's view only", { error: err });
          return null;
        }),
    deps.queue.liveWorkers(),
    deps.queue.siteDepths(),
  ]);
  return mergeSites(rows, workers, depths);
}

/** Live worker counts per site; `anySite` counts every live worker. */
export interface Liveness {
  bySite: Map<string, number>;
  anySite: number;
}

/** Counts live workers per site. */
export function liveness(workers: WorkerInfo[]): Liveness {
  const bySite = new Map<string, number>();
  for (const w of workers) bySite.set(w.site, (bySite.get(w.site) ?? 0) + 1);
  return { bySite, anySite: workers.length };
}

/**
 * What a QUEUED or RETRY_WAIT job waits for, in words (null for other states): its retry time, its
 * turn at its site, or — the case an operator must act on — a site with no live worker.
 * `live` is an Error when Redis could not be read.
 */
export function waitingFor(job: Pick<JobRow, "status" | "site" | "next_attempt_at">, live: Liveness | Error): string | null {
  if (job.status !== "QUEUED" && job.status !== "RETRY_WAIT") return null;
  const where = job.site === null ? "any site" : `site ${job.site}`;
  const retry = job.status === "RETRY_WAIT" && job.next_attempt_at ? `its retry at ${job.next_attempt_at.toISOString()}, then ` : "";
  if (live instanceof Error) return `${retry}a worker of ${where} (worker liveness unknown: ${live.message})`;
  const n = job.site === null ? live.anySite : (live.bySite.get(job.site) ?? 0);
  if (n === 0) {
    const start = job.site === null ? "a worker at any site" : `a worker with KETTER_SITE=${job.site} on that site's machine`;
    return `${retry}no live worker for ${where}: it waits in QUEUED and runs once ${start} starts`;
  }
  return `${retry}a free slot on the ${n} live worker(s) of ${where}`;
}
