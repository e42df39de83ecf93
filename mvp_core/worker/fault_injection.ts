/**
 * Test support: the engine's transfer() wrapped by a fault plan, so worker tests can stop a real
 * worker process at an exact point of a job (and kill it there) or make an error escape from a
 * job's code path. Only the hooks, progress callback and timing are wrapped — never the endpoints,
 * so the engine chooses the same strategies and fast paths as in production.
 *
 * Points are reported by creating `<dir>/<jobId>.<point>` (synchronously, so a frozen process has
 * written it), each at most once per job across processes: the attempt that runs after a kill
 * finds the file and goes through. Every commit the engine actually made is appended to
 * `<dir>/commits.log`, one `<jobId> <pid>` line each, so a test can count commits across attempts.
 */
import fs from "node:fs";
import path from "node:path";
import { type TransferContext, type TransferHooks, transfer } from "../transfer_engine/index.ts";
import type { TransferFn } from "./job_run.ts";

/** Where a job pauses: after its commit fence passed (nothing committed yet), right after the commit before it is recorded, after it is recorded. */
export type PausePoint = "commit_fence" | "after_commit" | "after_committed";

/** What to do to jobs whose source path contains `match` (all jobs when omitted). */
export interface FaultPlan {
  dir: string;
  match?: string;
  /** Pause the job at this point (its event loop keeps running: the lease is renewed meanwhile). */
  pauseAt?: PausePoint;
  /** Resume a paused job once `<dir>/<jobId>.go` exists; without it, the pause lasts until the process is killed. */
  resumeOnGo?: boolean;
  /** Freeze the whole process (event loop included, as SIGSTOP would) once this many source entries were removed. */
  freezeAfterRemoved?: number;
  /** Throw from a timer this long after the transfer started (an error nothing catches). */
  throwAfterMs?: number;
  /** Reject a promise nobody awaits this long after the transfer started. */
  rejectAfterMs?: number;
  /** Remove this (absolute) source file when the transfer phase starts: listed by the scan, gone when read. */
  removeAtTransfer?: string;
}

/** The plan from its JSON form (the fault entry reads it from the environment); throws on a malformed one. */
export function parsePlan(json: string | undefined): FaultPlan {
  const plan = JSON.parse(json ?? "null") as FaultPlan | null;
  if (!plan || typeof plan.dir !== "string") throw new Error("KETTER_TEST_FAULT must be a JSON fault plan with a dir");
  return plan;
}

/** Path of the file that reports `point` of `jobId`. */
export function pointFile(dir: string, jobId: string, point: string): string {
  return path.join(dir, `${jobId}.${point}`);
}

/** `<jobId>` of every commit logged in `dir`, in order. */
export function commitsLogged(dir: string): string[] {
  const file = path.join(dir, "commits.log");
  return fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => l.split(" ")[0]!) : [];
}

/** Creates the point's file; false when it already existed (an earlier attempt got there). */
function reach(dir: string, jobId: string, point: string): boolean {
  try {
    fs.writeFileSync(pointFile(dir, jobId, point), `${process.pid}\n`, { flag: "wx" });
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === "EEXIST") return false;
    throw err;
  }
}

async function hold(plan: FaultPlan, jobId: string): Promise<void> {
  const go = pointFile(plan.dir, jobId, "go");
  // Without resumeOnGo the test kills this process during the pause.
  while (!(plan.resumeOnGo && fs.existsSync(go))) await Bun.sleep(20);
}

/** Blocks the thread, timers and I/O included, for `ms` (the test kills the process meanwhile). */
function freeze(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function wrapHooks(plan: FaultPlan, jobId: string, hooks: TransferHooks | undefined): TransferHooks {
  const pauseAt = async (point: PausePoint) => {
    if (plan.pauseAt === point && reach(plan.dir, jobId, point)) await hold(plan, jobId);
  };
  return {
    beforeStep: async (step) => {
      await hooks?.beforeStep?.(step);
      if (step === "commit") await pauseAt("commit_fence");
    },
    committed: async () => {
      fs.appendFileSync(path.join(plan.dir, "commits.log"), `${jobId} ${process.pid}\n`);
      await pauseAt("after_commit");
      await hooks?.committed?.();
      await pauseAt("after_committed");
    },
  };
}

function armEscapes(plan: FaultPlan, jobId: string): void {
  if (plan.throwAfterMs !== undefined && reach(plan.dir, jobId, "thrown")) {
    setTimeout(() => {
      throw new Error(`injected: an error escaped job ${jobId}'s code path`);
    }, plan.throwAfterMs);
  }
  if (plan.rejectAfterMs !== undefined && reach(plan.dir, jobId, "rejected")) {
    setTimeout(() => void Promise.reject(new Error(`injected: a rejection nobody awaited in job ${jobId}`)), plan.rejectAfterMs);
  }
}

/** `inner` (the real engine by default) with `plan` applied to the jobs it matches; commits are logged for every job. */
export function faultyTransfer(plan: FaultPlan, inner: TransferFn = transfer): TransferFn {
  fs.mkdirSync(plan.dir, { recursive: true });
  return (spec, ctx) => {
    const jobId = spec.id ?? "unnamed";
    const matched = plan.match === undefined || spec.sourcePath.includes(plan.match);
    if (!matched) return inner(spec, { ...ctx, hooks: wrapHooks({ dir: plan.dir }, jobId, ctx.hooks) });
    armEscapes(plan, jobId);
    const wrapped: TransferContext = { ...ctx, hooks: wrapHooks(plan, jobId, ctx.hooks) };
    const { freezeAfterRemoved: freezeAt, removeAtTransfer: doomed } = plan;
    if (freezeAt !== undefined || doomed !== undefined) {
      wrapped.onProgress = (p) => {
        ctx.onProgress?.(p);
        if (doomed !== undefined && p.phase === "transfer" && reach(plan.dir, jobId, "removed")) fs.rmSync(doomed);
        if (freezeAt !== undefined && p.phase === "cleanup" && p.filesDone >= freezeAt && reach(plan.dir, jobId, "frozen")) freeze(60_000);
      };
    }
    return inner(spec, wrapped);
  };
}
