/**
 * The cost of per-file bookkeeping for `bench:sync`: a fresh copy of N small files by the engine,
 * with and without its file outcomes written to Postgres the way the worker writes them — the
 * worker's own FileOutcomes (one fenced multi-row upsert per batch of 1,000, behind the engine),
 * waited for at the commit fence and before the commit is recorded, as job_run.ts does, and until
 * the last batch landed (the worker completes the job only then). Local to local, the fastest
 * transfer there is, so the relative overhead is the largest it gets. Rounds interleave the two.
 */
import fs from "node:fs";
import path from "node:path";
import { connectDb } from "../db/client.ts";
import { claimJob } from "../jobs/lifecycle.ts";
import { createLogger } from "../log/log.ts";
import { createMigratedDatabase, startPostgresServer } from "../testing/services.ts";
import { openEndpoint, type TransferContext, transfer } from "../transfer_engine/index.ts";
import { FileOutcomes } from "../worker/file_outcomes.ts";
import { median } from "./timed_run.ts";

/** One variant's timings, and what the job_files table held after the bookkeeping runs. */
export interface BookkeepingResult {
  files: number;
  rounds: number;
  withoutS: number[];
  withS: number[];
  medianWithoutS: number;
  medianWithS: number;
  /** (median with ÷ median without) − 1: the whole cost, but on a loaded machine as noisy as the copy itself. */
  overhead: number;
  /** Per run with job_files: time the transfer spent waiting for the outcome writes (at its commit fence, its commit record, and the last batch). */
  waitedS: number[];
  /** median waited ÷ median without: the time job_files adds to the critical path, measured directly. */
  waitOverhead: number;
  rowsPerRun: number;
}

/** Times `rounds` fresh copies of the folder `src` (N files) into `work`, alternating without/with job_files. */
export async function measureBookkeeping(opts: { src: string; work: string; files: number; rounds: number; log: (s: string) => void }): Promise<BookkeepingResult> {
  const pg = await startPostgresServer();
  const url = await createMigratedDatabase(pg.url);
  const sql = connectDb(url, { max: 4, applicationName: "ketter-bench-sync" });
  const log = createLogger("bench-sync", "error", {}, () => undefined);
  const withoutS: number[] = [];
  const withS: number[] = [];
  const waitedS: number[] = [];
  let rowsPerRun = 0;
  try {
    const [portal] = await sql<{ id: string }[]>`insert into portals (name, kind, root_path, site) values ('bench', 'local', '/', 'bench') returning id`;
    fs.mkdirSync(opts.work, { recursive: true });
    const endpoint = await openEndpoint({ kind: "local", root: path.dirname(opts.src) });
    const target = await openEndpoint({ kind: "local", root: opts.work });
    const run = async (bookkeeping: boolean, round: number): Promise<{ seconds: number; waited: number }> => {
      const name = `copy-${round}-${bookkeeping ? "with" : "without"}`;
      fs.rmSync(path.join(opts.work, name), { recursive: true, force: true });
      Bun.spawnSync(["sync"]);
      const ctx: TransferContext = { source: endpoint, target };
      let outcomes: FileOutcomes | null = null;
      let waited = 0;
      const wait = async (): Promise<void> => {
        const t = performance.now();
        await outcomes?.settled();
        waited += performance.now() - t;
      };
      if (bookkeeping) {
        const [job] = await sql<{ id: string }[]>`
          insert into jobs (type, source_portal_id, source_path, target_portal_id, target_path, site)
          values ('copy', ${portal!.id}, 'src', ${portal!.id}, ${name}, 'bench') returning id`;
        const worker = { id: "bench", site: "bench" };
        const claimed = await claimJob(sql, job!.id, worker, 600_000);
        if (!claimed.claimed) throw new Error("the bench job could not be claimed");
        const files = (outcomes = new FileOutcomes(sql, { jobId: job!.id, worker, attempt: claimed.job.attempts }, log));
        ctx.onFiles = (batch) => files.add(batch);
        ctx.hooks = { beforeStep: wait, committed: wait };
      }
      const t0 = performance.now();
      const r = await transfer({ sourcePath: path.basename(opts.src), targetPath: name, mode: "copy", verify: "checksum" }, ctx);
      await wait();
      const seconds = (performance.now() - t0) / 1000;
      if (r.files !== opts.files) throw new Error(`copied ${r.files} files, expected ${opts.files}`);
      fs.rmSync(path.join(opts.work, name), { recursive: true, force: true });
      return { seconds, waited: waited / 1000 };
    };
    await run(false, -1); // warm-up: page cache, JIT, the connection pool
    await run(true, -1);
    for (let round = 0; round < opts.rounds; round++) {
      // Alternate which goes first: the machine drifts between seconds.
      for (const bookkeeping of round % 2 === 0 ? [false, true] : [true, false]) {
        const { seconds, waited } = await run(bookkeeping, round);
        (bookkeeping ? withS : withoutS).push(seconds);
        if (bookkeeping) waitedS.push(waited);
        opts.log(`bookkeeping round ${round + 1}/${opts.rounds}  ${bookkeeping ? "with job_files   " : "without job_files"}  ${seconds.toFixed(3)} s${bookkeeping ? ` (${waited.toFixed(3)} s waiting for the writes)` : ""}`);
      }
    }
    const [rows] = await sql<{ n: number; jobs: number }[]>`select count(*)::int as n, count(distinct job_id)::int as jobs from job_files`;
    rowsPerRun = rows!.jobs > 0 ? rows!.n / rows!.jobs : 0;
    await Promise.all([endpoint.close(), target.close()]);
  } finally {
    await sql.end({ timeout: 1 });
    await pg.stop();
  }
  const medianWithoutS = median(withoutS);
  const medianWithS = median(withS);
  return {
    files: opts.files, rounds: opts.rounds, withoutS, withS, medianWithoutS, medianWithS, overhead: medianWithS / medianWithoutS - 1,
    waitedS, waitOverhead: median(waitedS) / medianWithoutS, rowsPerRun,
  };
}
