/**
 * One attempt's file outcomes on their way to Postgres (job_files). The engine hands them over in
 * batches of up to 1,000 (TransferContext.onFiles, synchronously); each batch is one fenced
 * statement (jobs/files.ts recordFiles), written in order behind the engine. A batch that cannot
 * be written over a short outage is set aside and written again before the job is completed, so
 * the outcome recorded for the job (DONE or DONE_WITH_ERRORS) always has its files behind it.
 */
import type { Sql } from "postgres";
import { type FileOutcome, recordFiles } from "../jobs/files.ts";
import type { Fence } from "../jobs/lifecycle.ts";
import type { Logger } from "../log/log.ts";

/** Tries of one batch while the engine runs (100 ms, doubling, between them). */
const TRIES = 4;

/** The outcomes of one attempt: queued as the engine reports them, written a batch per statement. */
export class FileOutcomes {
  /** Names this attempt in job_files (attempt_token): a batch written twice counts as one attempt. */
  readonly token = crypto.randomUUID();
  private chain: Promise<void> = Promise.resolve();
  private readonly setAside: FileOutcome[][] = [];

  constructor(
    private readonly sql: Sql,
    private readonly fence: Fence,
    private readonly log: Logger,
  ) {}

  /** Queues a batch (the engine's onFiles). */
  add(batch: FileOutcome[]): void {
    this.chain = this.chain.then(() => this.write(batch));
  }

  /** Resolves once every batch queued so far is written (or set aside); never rejects. */
  settled(): Promise<void> {
    return this.chain;
  }

  /** Writes the batches set aside during an outage; throws while Postgres still fails (the caller tries again). */
  async writeSetAside(): Promise<void> {
    while (this.setAside.length > 0) {
      if (!(await recordFiles(this.sql, this.fence, this.token, this.setAside[0]!))) this.log.debug("file outcomes not recorded: the job is no longer this attempt's");
      this.setAside.shift();
    }
  }

  private async write(batch: FileOutcome[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        if (!(await recordFiles(this.sql, this.fence, this.token, batch))) this.log.debug("file outcomes not recorded: the job is no longer this attempt's");
        return;
      } catch (err) {
        if (attempt >= TRIES) {
          this.log.warn("recording file outcomes failed; kept to be written before the job completes", { err, files: batch.length });
          this.setAside.push(batch);
          return;
        }
        await Bun.sleep(100 * 2 ** (attempt - 1));
      }
    }
  }
}
