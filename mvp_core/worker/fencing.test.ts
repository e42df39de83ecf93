// Fencing at the worker level (in-process workers, real Postgres): a renewal that hangs (its row is
// locked, as a stalled Postgres would hold it) stops the engine at 80 % of the lease while it still
// hangs; a guarded step needs a fence statement that proves the lease within its deadline; an
// attempt whose job was taken over cannot commit, and nothing it writes is recorded.
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import type { Sql } from "postgres";
import { claimJob, reclaimJob } from "../jobs/lifecycle.ts";
import { waitFor } from "../testing/ports.ts";
import { transfer } from "../transfer_engine/index.ts";
import { commitsLogged, faultyTransfer } from "./fault_injection.ts";
import type { TransferFn } from "./job_run.ts";
import { Scenario, sameBytes } from "./test_support.ts";

const T = 60_000;

let scenario: Scenario | undefined;
afterEach(async () => {
  await scenario?.clean();
  scenario = undefined;
});

/** Holds a row lock on the job (FOR NO KEY UPDATE: updates of the row wait, event inserts do not) until release() is called. */
function lockJobRow(sql: Sql, jobId: string): { held: Promise<void>; release: () => void; done: Promise<unknown> } {
  let release = () => {};
  let markHeld = () => {};
  const held = new Promise<void>((r) => (markHeld = r));
  const released = new Promise<void>((r) => (release = r));
  const done = sql.begin(async (tx) => {
    await tx`select id from jobs where id = ${jobId} for no key update`;
    markHeld();
    await released;
  });
  return { held, release, done };
}

/** Statements of this database waiting for a lock whose text starts like `prefix`. */
async function waitingStatements(sql: Sql, prefix: string): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from pg_stat_activity
    where datname = current_database() and wait_event_type = 'Lock' and query like ${`%${prefix}%`}`;
  return row!.n;
}

function stagingLeft(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.startsWith(".ketter-"));
}

describe("fencing in the worker", () => {
  test("a hung renewal counts as failed: the engine stops at 80 % of the lease while the renewal still hangs", async () => {
    const s = (scenario = await new Scenario("hung-renewal").setup());
    const dir = s.path("faults");
    // 6 MiB at 1 MiB/s: the engine paces from its first chunk on, so the copy is still running
    // (seconds from its end) when the lock is taken.
    await s.writeSource("reel.mov", 6 * 1024 * 1024);
    // The engine calls that have returned (or thrown): the stopped one must, while the lock still holds.
    let settled = 0;
    const watched: TransferFn = (spec, ctx) => transfer(spec, ctx).finally(() => void settled++);
    await s.startWorker({ leaseMs: 1500, maxBytesPerSec: 1024 * 1024 }, { transfer: faultyTransfer({ dir }, watched) });
    const job = await s.job("reel.mov", "reel.mov");
    await s.waitForJob(job.id, "bytes to flow", (r) => r.status === "RUNNING" && r.bytes_done > 0);

    const lock = lockJobRow(s.sql, job.id);
    await lock.held;
    try {
      await waitFor(() => s.logLines.some((l) => l.includes("lease lost; stopping the engine") && l.includes(job.id)), { what: "the engine to be stopped while the lock is held", timeoutMs: 15_000 });
      // The renewal is still hanging behind the lock: the watchdog did not wait for it.
      expect(await waitingStatements(s.sql, "update jobs set lease_expires_at")).toBeGreaterThanOrEqual(1);
      // A lost lease leaves the staging as it is: the job may already run elsewhere, resuming from it.
      await waitFor(() => settled === 1, { what: "the stopped engine to return" });
      expect(existsSync(s.path("dst/reel.mov"))).toBe(false);
    } finally {
      lock.release();
      await lock.done;
    }

    const done = await s.waitForStatus(job.id, "DONE");
    expect(done.attempts).toBe(2);
    expect(await sameBytes(s.path("src/reel.mov"), s.path("dst/reel.mov"))).toBe(true);
    expect((await s.kinds(job.id)).filter((k) => k === "done")).toHaveLength(1);
    expect(commitsLogged(dir)).toEqual([job.id]);
  }, T);

  test("a commit fence that hangs past its deadline is refused: nothing is committed, a later attempt finishes the job", async () => {
    const s = (scenario = await new Scenario("hung-fence").setup());
    const dir = s.path("faults");
    await s.writeSource("reel.mov", 300_000);
    let lock: ReturnType<typeof lockJobRow> | undefined;
    // Right before the first attempt's commit fence, Postgres stalls on the job's row.
    const stallOnce: TransferFn = (spec, ctx) =>
      transfer(spec, {
        ...ctx,
        hooks: {
          beforeStep: async (step) => {
            if (step === "commit" && !lock) {
              lock = lockJobRow(s.sql, spec.id!);
              await lock.held;
            }
            await ctx.hooks?.beforeStep?.(step);
          },
          committed: () => ctx.hooks!.committed!(),
        },
      });
    await s.startWorker({ leaseMs: 1500, maxBytesPerSec: 1024 ** 3 }, { transfer: faultyTransfer({ dir }, stallOnce) });
    const job = await s.job("reel.mov", "reel.mov");
    try {
      await waitFor(() => s.logLines.some((l) => l.includes("the lease could not be proven before a guarded step")), { what: "the fence to give up", timeoutMs: 15_000 });
      expect(existsSync(s.path("dst/reel.mov"))).toBe(false);
      expect(commitsLogged(dir)).toEqual([]);
    } finally {
      lock?.release();
      await lock?.done;
    }
    const done = await s.waitForStatus(job.id, "DONE");
    expect(done.attempts).toBe(2);
    expect(commitsLogged(dir)).toEqual([job.id]);
    expect(await sameBytes(s.path("src/reel.mov"), s.path("dst/reel.mov"))).toBe(true);
  }, T);

  // A copying move (direct) and a move by rename (auto, one file system): neither may commit.
  for (const strategy of ["direct", "auto"] as const) {
    test(`an attempt whose job was taken over cannot commit, and its later writes are refused (move, strategy ${strategy})`, async () => {
      const s = (scenario = await new Scenario(`stale-attempt-${strategy}`).setup());
      const dir = s.path("faults");
      await s.writeSource("reel.mov", 300_000);
      // Just before the commit fence the job is reclaimed and claimed by another worker, as after a
      // lease that lapsed unnoticed (the lease is long here, so no renewal notices it first).
      const stolen: TransferFn = (spec, ctx) =>
        transfer(spec, {
          ...ctx,
          hooks: {
            beforeStep: async (step) => {
              if (step === "commit") {
                await s.sql`update jobs set lease_expires_at = now() - interval '1 second' where id = ${spec.id!}`;
                expect(await reclaimJob(s.sql, spec.id!, { id: "test", site: s.site })).toBe("reclaimed");
                expect((await claimJob(s.sql, spec.id!, { id: "thief", site: s.site }, 60_000)).claimed).toBe(true);
              }
              await ctx.hooks?.beforeStep?.(step);
            },
            committed: () => ctx.hooks!.committed!(),
          },
        });
      await s.startWorker({ leaseMs: 60_000 }, { transfer: faultyTransfer({ dir }, stolen) });
      const job = await s.job("reel.mov", "reel.mov", { type: "move", options: { strategy } });
      await waitFor(() => s.logLines.some((l) => l.includes("job stopped: lease lost")), { what: "the stale attempt to stop", timeoutMs: 15_000 });

      expect(commitsLogged(dir)).toEqual([]);
      expect(existsSync(s.path("dst/reel.mov"))).toBe(false);
      expect(existsSync(s.path("src/reel.mov"))).toBe(true);
      // A lost lease touches nothing the job wrote: the thief owns the job now and may be resuming
      // from the staging. A copy's staging and the commit marker (written before the fence; with the
      // staging there it means "not committed", transfer.test.ts "a rename's commit marker") stay for it.
      const left = stagingLeft(s.path("dst")).map((n) => n.slice(`.ketter-${job.id}.`.length)).sort();
      expect(left).toEqual(strategy === "direct" ? expect.arrayContaining(["moved", "partial"]) : ["moved"]);
      expect(left.every((n) => ["moved", "partial", "journal"].includes(n))).toBe(true);
      expect(await s.row(job.id)).toMatchObject({ status: "RUNNING", worker_id: "thief", attempts: 2, phase: null, committed_at: null });
      const kinds = await s.kinds(job.id);
      expect(kinds.slice(-2)).toEqual(["reclaimed", "started"]);
      expect(kinds).not.toContain("committed");
    }, T);
  }
});
