/**
 * The second site: a worker with KETTER_SITE=site-2 and a local folder of its own, as an ingest
 * station beside LAB would have. The stack's own worker is the first site, whatever its KETTER_SITE.
 *
 * As root on the WAN testbed, site-2 is a host of its own (`testbed.addHost()`: its own network
 * namespace and veth, routed through LAB to SRVTRF, delayed paths included). The stack's Postgres,
 * Redis and API listen on LAB's loopback, which another namespace cannot reach, so a TCP relay
 * (testing/latency_relay.ts at 0 ms) per service offers them on LAB's address of site-2's link, and
 * site-2's worker and DKU get DATABASE_URL, REDIS_URL and KETTER_API_URL pointing there — as a real
 * site's point at the facility's servers (decided: relays rather than DNAT to 127.0.0.1, which would
 * need route_localnet and would reach Postgres from an address its pg_hba does not allow).
 * Otherwise (not root, or --loopback, where SRVTRF is on a loopback address no namespace reaches)
 * site-2 is a plain second process on this host.
 *
 * Everything else in the environment is the stack worker's own (secret key, key prefix, lease),
 * read from /proc, so site-2 belongs to the same installation.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { mountScratchDisk, type ScratchDisk } from "../bench/scratch_disk.ts";
import { startLatencyRelay } from "../testing/latency_relay.ts";
import type { Testbed } from "../testing/testbed/testbed.ts";
import { ApiError, type FieldApi } from "./api.ts";
import { waitForWorker } from "./scenarios.ts";
import { killHard, spawnWorker, type OwnWorker, type WorkerProcess } from "./workers.ts";

/** The second site's name (its workers' KETTER_SITE). */
export const SITE_2 = "site-2";

/** Sparse, so it costs only what is written; above the DKU's 10 GiB free-space warning, as an ingest station's disk would be. */
const SCRATCH_BYTES = 16 * 1024 ** 3;

/** What the DKU for site-2 said (its JSON report, parsed). */
export interface DkuRun {
  exitCode: number | null;
  summary: { ok: number; warn: number; fail: number } | null;
  checks: Array<{ name: string; status: string; value: string; hint?: string | undefined }>;
  /** The worker check's per-site lines: live workers and jobs waiting. */
  sites: Array<{ site: string; live: number; pending: number }>;
  /** The end of its stderr, when it said something there (or its stdout was not a report). */
  output: string;
}

const DkuReport = z.looseObject({
  exitCode: z.number(),
  summary: z.object({ ok: z.number(), warn: z.number(), fail: z.number() }),
  checks: z.array(z.looseObject({
    name: z.string(), status: z.string(), value: z.string(), hint: z.string().optional(),
    details: z.looseObject({ sites: z.array(z.looseObject({ site: z.string(), live: z.number(), pending: z.number() })).optional() }).optional(),
  })),
});

/** The second site while it runs. */
export interface SecondSite {
  name: string;
  /** "netns": a host of its own on the WAN testbed; "process": a second process on this host. */
  kind: "netns" | "process";
  /** One line for the report: how site-2 is made and how it reaches the stack. */
  describe: string;
  /** Its local folder (the disk of site-2's machine). */
  root: string;
  disk: ScratchDisk | null;
  /** The id of its worker (host:pid:random) once /health lists it. */
  workerId(): string;
  workerPid(): number;
  /** Starts its worker (again) and waits until /health lists it; returns the id. */
  startWorker(): Promise<string>;
  /** kill -9 of its worker. */
  killWorker(): Promise<void>;
  /** `KETTER_SITE=site-2 bun run dku --json` at site-2 (inside its namespace when it has one). */
  runDku(): Promise<DkuRun>;
  /** Stops its worker (SIGTERM: it hands its jobs back), relays and namespace; removes its folder. */
  stop(): Promise<void>;
}

/** Where the second site's processes find the stack from LAB (the stack worker's effective configuration). */
export interface StackUrls {
  database: string;
  redis: string;
  api: string;
  apiToken: string | undefined;
}

/** Host and port a URL points at (`defaultPort` when it names none). */
export function urlTarget(url: string, defaultPort: number): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname.replace(/^\[|\]$/g, ""), port: u.port ? Number(u.port) : defaultPort };
}

/** `url` with its host and port replaced (user, password, path and query kept). */
export function relayedUrl(url: string, host: string, port: number): string {
  const u = new URL(url);
  u.hostname = host;
  u.port = String(port);
  return u.toString();
}

/** Runs `argv` and collects its output; SIGKILLed after `timeoutMs`. */
async function collect(argv: string[], opts: { cwd: string; env: Record<string, string>; timeoutMs: number }): Promise<{ code: number | null; out: string; err: string }> {
  const proc = Bun.spawn(argv, { cwd: opts.cwd, env: opts.env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs);
  try {
    const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    await proc.exited;
    return { code: proc.exitCode, out, err };
  } finally {
    clearTimeout(timer);
  }
}

/** Parses the DKU's `--json` report; an unreadable one is a DkuRun without checks whose output says why. */
export function readDku(code: number | null, out: string, err: string): DkuRun {
  const tail = (s: string) => s.trim().split("\n").slice(-20).join("\n");
  let json: unknown;
  try {
    json = JSON.parse(out);
  } catch {
    return { exitCode: code, summary: null, checks: [], sites: [], output: tail(`${out}\n${err}`) };
  }
  const report = DkuReport.safeParse(json);
  if (!report.success) return { exitCode: code, summary: null, checks: [], sites: [], output: tail(`${z.prettifyError(report.error)}\n${err}`) };
  const worker = report.data.checks.find((c) => c.name === "worker");
  return {
    exitCode: code,
    summary: report.data.summary,
    checks: report.data.checks.map(({ name, status, value, hint }) => ({ name, status, value, hint })),
    sites: (worker?.details?.sites ?? []).map(({ site, live, pending }) => ({ site, live, pending })),
    output: tail(err),
  };
}

/** Starts site-2 beside LAB: its network (as root on the testbed), folder and worker. */
export async function startSecondSite(opts: {
  api: FieldApi;
  testbed: Testbed;
  /** The stack's worker, whose environment and folder site-2's processes inherit. */
  stack: WorkerProcess;
  urls: StackUrls;
  /** Parent of site-2's folder (default: the OS temp folder). */
  parent: string | undefined;
}): Promise<SecondSite> {
  const steps: Array<() => Promise<void> | void> = [];
  const teardown = async (): Promise<void> => {
    const errors: unknown[] = [];
    for (const step of steps.reverse()) await Promise.resolve().then(step).catch((err: unknown) => errors.push(err));
    steps.length = 0;
    if (errors.length) throw new AggregateError(errors, "stopping site-2 failed");
  };
  try {
    const env: Record<string, string> = { KETTER_SITE: SITE_2, DATABASE_URL: opts.urls.database, REDIS_URL: opts.urls.redis, KETTER_API_URL: opts.urls.api };
    if (opts.urls.apiToken) env.KETTER_API_TOKEN = opts.urls.apiToken;
    let prefix: string[] = [];
    let describe = `a second worker process on this host with KETTER_SITE=${SITE_2} (${opts.testbed.kind === "loopback" ? "SRVTRF is on a loopback address, which no other network namespace reaches" : "not root"}); it reaches Postgres, Redis and the API as the stack's worker does`;
    if (opts.testbed.kind === "netns") {
      const host = await opts.testbed.addHost();
      steps.push(() => host.stop());
      const relay = async (name: keyof typeof RELAYED, url: string): Promise<string> => {
        const target = urlTarget(url, RELAYED[name]);
        const r = await startLatencyRelay({ listenHost: host.labAddress, targetHost: target.host, targetPort: target.port, oneWayMs: 0 });
        steps.push(() => r.stop());
        return relayedUrl(url, host.labAddress, r.port);
      };
      env.DATABASE_URL = await relay("postgres", opts.urls.database);
      env.REDIS_URL = await relay("redis", opts.urls.redis);
      env.KETTER_API_URL = await relay("api", opts.urls.api);
      prefix = host.exec;
      describe = `${host.describe}; the stack's Postgres, Redis and API (on LAB's loopback) reached through TCP relays in LAB on ${host.labAddress} (DATABASE_URL, REDIS_URL, KETTER_API_URL of site-2's processes point there)`;
    }
    const root = await mkdtemp(join(opts.parent ?? tmpdir(), "ketter-field-site2-"));
    steps.push(() => rm(root, { recursive: true, force: true }));
    const disk = mountScratchDisk({ imageDir: opts.parent ?? tmpdir(), at: root, bytes: SCRATCH_BYTES });
    if (disk) steps.push(() => disk.stop());

    let worker: OwnWorker | null = null;
    let id = "";
    const startWorker = async (): Promise<string> => {
      const w = spawnWorker(opts.stack, { env, prefix });
      worker = w;
      id = await waitForWorker(opts, w.pid);
      return id;
    };
    steps.push(async () => {
      if (worker) await worker.stop();
    });
    await startWorker();
    return {
      name: SITE_2, kind: opts.testbed.kind === "netns" ? "netns" : "process", describe, root, disk,
      workerId: () => id,
      workerPid: () => worker?.pid ?? 0,
      startWorker,
      killWorker: async () => {
        if (worker?.alive()) await killHard(worker.pid);
      },
      runDku: async () => {
        const reports = await mkdtemp(join(tmpdir(), "ketter-field-site2-dku-"));
        try {
          const r = await collect([...prefix, "bun", "mvp_core/dku/main.ts", "--json", "--report-dir", reports], { cwd: opts.stack.cwd, env: { ...opts.stack.env, ...env }, timeoutMs: 300_000 });
          return readDku(r.code, r.out, r.err);
        } finally {
          await rm(reports, { recursive: true, force: true });
        }
      },
      stop: teardown,
    };
  } catch (err) {
    await teardown().catch(() => undefined); // the start-up error is the one worth reporting
    throw err;
  }
}

/** Default ports of the relayed services, for URLs that name none. */
const RELAYED = { postgres: 5432, redis: 6379, api: 80 } as const;

/**
 * DELETE /sites/{name}, retried while the answer is 409 for a live worker (a killed worker's
 * heartbeat outlives it by up to a lease); any other refusal is thrown as it is.
 */
export async function retireSite(api: FieldApi, name: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await api.retireSite(name);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 409 && /live worker/.test(err.message)) || Date.now() > deadline) throw err;
    }
    await Bun.sleep(1000);
  }
}
