/**
 * What the field test runs, in order. For each round-trip time and dataset: Ketter copies LAB →
 * SRVTRF, then rsync and scp do the same; Ketter copies it back SRVTRF → LAB, then rsync and scp do
 * the same; at 0 ms also a move each way. Then the faults on the large dataset over the slowest
 * link: a worker killed mid-job (a move out, a copy back) and sshd restarted mid-transfer (a copy
 * out, a move back).
 * Every destination is verified and removed as soon as it is judged, so disk use stays at about
 * three copies of the largest dataset.
 */
import { cp, rm } from "node:fs/promises";
import { join } from "node:path";
import type { FieldApi, Portal } from "./api.ts";
import type { DatasetName, Manifest } from "./datasets.ts";
import { killWorkerMidJob, restartSshdMidTransfer } from "./faults.ts";
import { runJob, type Fault, type FaultInjector, type JobDirection, type JobOutcome, type Scenario } from "./jobs.ts";
import { TOOLS, runReference, skipReason, type Direction, type ReferenceRun } from "./measure.ts";
import type { Srvtrf, SrvtrfPortal } from "./setup.ts";
import { inspectWorker, pickLocalWorker, spawnWorker, type OwnWorker } from "./workers.ts";

/** Everything the scenarios need; built by run.ts. */
export interface FieldContext {
  api: FieldApi;
  runId: string;
  lab: { root: string; portal: Portal };
  srv: Srvtrf;
  /** SRVTRF portals by round-trip time (0: straight to sshd). */
  portals: Map<number, SrvtrfPortal>;
  manifests: Map<DatasetName, Manifest>;
  maxToolSeconds: number;
  /** Aborted by Ctrl-C: the running job is cancelled and the run stops before the next step. */
  signal: AbortSignal;
  log: (line: string) => void;
}

/** What the scenarios produced. */
export interface ScenarioResults {
  jobs: JobOutcome[];
  references: ReferenceRun[];
  /** Things worth knowing that are not failures (e.g. which worker was killed and restarted). */
  notes: string[];
}

/** A path inside a portal (LAB, SRVTRF, another site), as the portal sees it and as this machine sees it. */
export interface Place {
  portal: Portal;
  rel: string;
  abs: string;
}

/** `rel` inside LAB's folder. */
export function labPlace(ctx: FieldContext, rel: string): Place {
  return { portal: ctx.lab.portal, rel, abs: join(ctx.lab.root, rel) };
}

/** `rel` inside SRVTRF's root, through the portal with `rttMs` round trip. */
export function srvPlace(ctx: FieldContext, rttMs: number, rel: string): Place {
  return { portal: portalAt(ctx, rttMs).portal, rel, abs: join(ctx.srv.sshd.root, rel) };
}

function portalAt(ctx: FieldContext, rttMs: number): SrvtrfPortal {
  const p = ctx.portals.get(rttMs);
  if (!p) throw new Error(`no SRVTRF portal for ${rttMs} ms`);
  return p;
}

// Generous: a job that needs longer than this on loopback is stuck, not slow.
function timeoutFor(expected: Manifest, fault: Fault): number {
  let bytes = 0;
  for (const f of expected.files.values()) bytes += f.size;
  return 120_000 + (bytes / (10 * 1024 * 1024)) * 1000 + (fault === "none" ? 0 : 180_000);
}

/** Runs one Ketter job from `from` to `to` through the API and judges it (jobs.ts), logging the outcome. */
export async function job(
  ctx: FieldContext,
  what: { label: string; dataset: DatasetName; type: "copy" | "move"; direction: JobDirection; rttMs: number; fault?: Fault; scenario?: Scenario },
  from: Place,
  to: Place,
  inject?: FaultInjector,
): Promise<JobOutcome> {
  const expected = ctx.manifests.get(what.dataset)!;
  const fault = what.fault ?? "none";
  ctx.signal.throwIfAborted();
  ctx.log(`ketter ${what.label} …`);
  const outcome = await runJob(
    ctx.api,
    {
      label: what.label, scenario: what.scenario ?? "main", dataset: what.dataset, direction: what.direction, rttMs: what.rttMs, fault,
      request: {
        type: what.type,
        source: { portal: from.portal.id, path: from.rel },
        target: { portal: to.portal.id, path: to.rel },
        // Faults cost attempts on purpose; leave room so the outcome is about recovery, not the budget.
        options: { verify: "checksum", ...(fault === "none" ? {} : { maxAttempts: 5 }) },
      },
      sourceDir: from.abs, targetDir: to.abs, expected, timeoutMs: timeoutFor(expected, fault),
    },
    ctx.runId,
    ctx.signal,
    inject,
  );
  ctx.log(`ketter ${what.label}: ${outcome.status} in ${outcome.seconds?.toFixed(2) ?? "?"} s${outcome.problems.length ? ` — ${outcome.problems.join("; ")}` : ""}`);
  return outcome;
}

async function references(ctx: FieldContext, res: ScenarioResults, dataset: DatasetName, direction: Direction, rttMs: number, source: string, targetParent: string): Promise<void> {
  for (const tool of TOOLS) {
    ctx.signal.throwIfAborted();
    // More latency never makes a tool faster: a run bound to blow the budget is not worth its minutes.
    const skip = skipReason(res.references, tool, dataset, direction, rttMs, ctx.maxToolSeconds);
    if (skip !== null) {
      ctx.log(`${tool} ${direction} ${dataset} ${rttMs} ms: ${skip}`);
      res.references.push({ tool, dataset, direction, rttMs, seconds: null, stoppedAfter: ctx.maxToolSeconds, problems: [skip], command: "" });
      continue;
    }
    const r = await runReference(
      { tool, dataset, direction, rttMs, host: portalAt(ctx, rttMs).host, port: portalAt(ctx, rttMs).port, maxSeconds: ctx.maxToolSeconds },
      { source, target: join(targetParent, `${dataset}-${tool}-rtt${rttMs}`) },
      ctx.srv,
      ctx.manifests.get(dataset)!,
    );
    ctx.log(`${tool} ${direction} ${dataset} ${rttMs} ms: ${r.seconds === null ? r.problems.join("; ") : `${r.seconds.toFixed(2)} s`}`);
    res.references.push(r);
  }
}

/** A copy of LAB's pristine dataset that a move may consume. */
async function moveSource(ctx: FieldContext, dataset: DatasetName, tag: string): Promise<Place> {
  const place = labPlace(ctx, `movesrc/${dataset}-${tag}`);
  await cp(join(ctx.lab.root, "src", dataset), place.abs, { recursive: true });
  return place;
}

/** Copies out and back (Ketter, rsync, scp) at `rttMs`; at 0 ms also moves out and back. */
export async function runDataset(ctx: FieldContext, dataset: DatasetName, rttMs: number, res: ScenarioResults): Promise<void> {
  const tag = `rtt${rttMs}`;
  const src = labPlace(ctx, `src/${dataset}`);
  const out = srvPlace(ctx, rttMs, `in/${dataset}-copy-${tag}`);
  const pushed = await job(ctx, { label: `${dataset}-copy-push-${tag}`, dataset, type: "copy", direction: "push", rttMs }, src, out);
  res.jobs.push(pushed);
  await references(ctx, res, dataset, "push", rttMs, src.abs, join(ctx.srv.sshd.root, "ref"));
  if (pushed.status === "DONE") {
    const back = labPlace(ctx, `back/${dataset}-copy-${tag}`);
    res.jobs.push(await job(ctx, { label: `${dataset}-copy-pull-${tag}`, dataset, type: "copy", direction: "pull", rttMs }, out, back));
    await rm(back.abs, { recursive: true, force: true });
    await references(ctx, res, dataset, "pull", rttMs, out.abs, join(ctx.lab.root, "ref"));
  } else {
    res.notes.push(`${dataset} at ${rttMs} ms: nothing copied back (Ketter's copy out ended ${pushed.status}); rsync and scp back not measured either`);
  }
  await rm(out.abs, { recursive: true, force: true });
  if (rttMs !== 0) return;

  const moving = await moveSource(ctx, dataset, "move");
  const moved = srvPlace(ctx, 0, `in/${dataset}-move`);
  const movedOut = await job(ctx, { label: `${dataset}-move-push-${tag}`, dataset, type: "move", direction: "push", rttMs }, moving, moved);
  res.jobs.push(movedOut);
  if (movedOut.status === "DONE") {
    const back = labPlace(ctx, `back/${dataset}-move`);
    res.jobs.push(await job(ctx, { label: `${dataset}-move-pull-${tag}`, dataset, type: "move", direction: "pull", rttMs }, moved, back));
    await rm(back.abs, { recursive: true, force: true });
  }
  await rm(moving.abs, { recursive: true, force: true });
  await rm(moved.abs, { recursive: true, force: true });
}

/**
 * The fault scenarios on the large dataset: a worker killed mid-job (a move out, a copy back), then
 * sshd restarted mid-transfer (a copy out, a move back). They run over the slowest link, as a real
 * WAN transfer would, which also leaves the injector time to hit the transfer mid-way.
 */
export async function runFaults(ctx: FieldContext, res: ScenarioResults, health: { workerIds: string[] }): Promise<void> {
  const dataset: DatasetName = "large";
  const rtt = Math.max(...ctx.portals.keys());
  const stackWorker = pickLocalWorker(health.workerIds);
  const own: OwnWorker = spawnWorker(await inspectWorker(stackWorker));
  res.notes.push(`worker kill: started an extra worker (pid ${own.pid}) with the environment of the stack's worker ${stackWorker}; whichever of the two runs the job is killed`);
  const onStackRestart = (oldPid: number, newPid: number) => res.notes.push(`worker kill: the stack's worker pid ${oldPid} was killed and started again as pid ${newPid}`);
  try {
    await waitForWorker(ctx, own.pid);
    const moving = await moveSource(ctx, dataset, "kill");
    const killedOut = srvPlace(ctx, rtt, `in/${dataset}-kill`);
    const out = await job(ctx, { label: `${dataset}-move-push-worker-kill`, dataset, type: "move", direction: "push", rttMs: rtt, fault: "worker_kill" }, moving, killedOut, killWorkerMidJob(ctx.api, own, onStackRestart));
    res.jobs.push(out);
    await rm(moving.abs, { recursive: true, force: true });
    if (out.status === "DONE") {
      // The extra worker may be the one that died; the kill needs a second worker alive again.
      const second = own.alive() ? own : spawnWorker(await inspectWorker(pickLocalWorker((await ctx.api.health()).workers.ids)));
      if (second !== own) res.notes.push(`worker kill: started another extra worker (pid ${second.pid}) for the copy back`);
      try {
        await waitForWorker(ctx, second.pid);
        const back = labPlace(ctx, `back/${dataset}-kill`);
        res.jobs.push(await job(ctx, { label: `${dataset}-copy-pull-worker-kill`, dataset, type: "copy", direction: "pull", rttMs: rtt, fault: "worker_kill" }, killedOut, back, killWorkerMidJob(ctx.api, second, onStackRestart)));
        await rm(back.abs, { recursive: true, force: true });
      } finally {
        if (second !== own) await second.stop();
      }
    }
    await rm(killedOut.abs, { recursive: true, force: true });
  } finally {
    await own.stop();
  }

  const src = labPlace(ctx, `src/${dataset}`);
  const sshdOut = srvPlace(ctx, rtt, `in/${dataset}-sshd`);
  const restarted = await job(ctx, { label: `${dataset}-copy-push-sshd-restart`, dataset, type: "copy", direction: "push", rttMs: rtt, fault: "sshd_restart" }, src, sshdOut, restartSshdMidTransfer(ctx.api, ctx.srv, 1000));
  res.jobs.push(restarted);
  if (restarted.status === "DONE") {
    const back = labPlace(ctx, `back/${dataset}-sshd`);
    res.jobs.push(await job(ctx, { label: `${dataset}-move-pull-sshd-restart`, dataset, type: "move", direction: "pull", rttMs: rtt, fault: "sshd_restart" }, sshdOut, back, restartSshdMidTransfer(ctx.api, ctx.srv, 1000)));
    await rm(back.abs, { recursive: true, force: true });
  }
  await rm(sshdOut.abs, { recursive: true, force: true });
}

/** Waits until /health lists the worker with `pid` (it has registered its heartbeat and listens for jobs); returns its id. */
export async function waitForWorker(ctx: Pick<FieldContext, "api">, pid: number): Promise<string> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const health = await ctx.api.health();
    const id = health.workers.ids.find((w) => w.split(":")[1] === String(pid));
    if (id !== undefined) return id;
    await Bun.sleep(200);
  }
  throw new Error(`the worker started as pid ${pid} did not show up in /health within 30 s`);
}
