/**
 * Fault injectors: wait until the job is moving bytes, then break something under it — kill -9 the
 * worker running it, or kill SRVTRF's sshd and start it again a second later. What happens next is
 * the stack's business (lease expiry and reaper, or retry with backoff); jobs.ts judges the result.
 */
import type { FieldApi, Job } from "./api.ts";
import type { FaultInjector } from "./jobs.ts";
import type { Srvtrf } from "./setup.ts";
import { inspectWorker, killHard, localPid, restartStackWorker, type OwnWorker } from "./workers.ts";

/** Polls until the job is RUNNING with some bytes done; throws when it finished or `timeoutMs` passed first. */
export async function waitUntilMidTransfer(api: FieldApi, id: string, timeoutMs: number): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await api.getJob(id);
    const total = job.progress.bytesTotal ?? 0;
    if (job.status === "RUNNING" && job.progress.bytesDone > 0 && job.progress.bytesDone < total) return job;
    if (["DONE", "DONE_WITH_ERRORS", "FAILED", "CANCELLED"].includes(job.status)) throw new Error(`job ${id} was ${job.status} before the fault could be injected (make the large dataset larger)`);
    if (Date.now() > deadline) throw new Error(`job ${id} still ${job.status} with ${job.progress.bytesDone} bytes done after ${timeoutMs / 1000} s`);
    // Progress reaches Postgres at most once a second; poll faster than that to hit the first write.
    await Bun.sleep(50);
  }
}

/** Polls until the job is QUEUED with a `waitingFor` containing `reason` (a dead worker's job, back from the reaper); throws after `timeoutMs`. */
export async function waitUntilQueued(api: FieldApi, id: string, reason: string, timeoutMs: number): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await api.getJob(id);
    if (job.status === "QUEUED" && job.waitingFor?.includes(reason)) return job;
    if (["DONE", "FAILED", "CANCELLED"].includes(job.status)) throw new Error(`job ${id} ended ${job.status} instead of waiting for "${reason}"`);
    if (Date.now() > deadline) throw new Error(`job ${id} still ${job.status} (waitingFor ${JSON.stringify(job.waitingFor)}) after ${timeoutMs / 1000} s, expected QUEUED waiting for "${reason}"`);
    await Bun.sleep(250);
  }
}

/** How far the job got, e.g. "40 %". */
export const percent = (job: Job) => (job.progress.bytesTotal ? `${Math.round((job.progress.bytesDone / job.progress.bytesTotal) * 100)} %` : "?");

/** The worker running the job, from its latest `started` event (worker ids are host:pid:random). */
async function workerOf(api: FieldApi, jobId: string): Promise<string> {
  const started = (await api.events(jobId)).filter((e) => e.kind === "started").at(-1);
  const id = started?.data.workerId;
  if (typeof id !== "string") throw new Error(`job ${jobId} has no started event naming its worker`);
  return id;
}

/**
 * kill -9 of whichever worker runs the job: the extra worker this command started (`own`), or the
 * stack's own worker, which is then started again the way dev_up.sh started it. `onStackRestart`
 * hears the new pid so the report can say so.
 */
export function killWorkerMidJob(api: FieldApi, own: OwnWorker, onStackRestart: (oldPid: number, newPid: number) => void): FaultInjector {
  return async (created) => {
    const job = await waitUntilMidTransfer(api, created.id, 120_000);
    const workerId = await workerOf(api, created.id);
    const pid = localPid(workerId);
    if (pid === own.pid) {
      await killHard(pid);
      return `kill -9 of this command's extra worker ${workerId} at ${percent(job)} of the bytes`;
    }
    // Read before the kill: /proc forgets a process once it is gone.
    const info = await inspectWorker(workerId);
    await killHard(info.pid);
    const newPid = await restartStackWorker(info);
    onStackRestart(info.pid, newPid);
    return `kill -9 of the stack's worker ${workerId} at ${percent(job)} of the bytes; the stack's worker was started again as pid ${newPid} (as dev_up.sh does)`;
  };
}

/** Kills SRVTRF's sshd (and every session) while the job moves bytes, and starts it again after `downMs`. */
export function restartSshdMidTransfer(api: FieldApi, srv: Srvtrf, downMs: number): FaultInjector {
  return async (created) => {
    const job = await waitUntilMidTransfer(api, created.id, 120_000);
    await srv.sshd.kill();
    await Bun.sleep(downMs);
    await srv.sshd.restart();
    return `sshd killed (with its sessions) at ${percent(job)} of the bytes, started again ${downMs / 1000} s later`;
  };
}
