/**
 * The worker process's last resort against errors nothing caught: an `error` event no one listened
 * for (ssh2's SFTP client emits some after a request was answered), a throw in a timer callback, a
 * rejected promise no one awaited. Node's default is to kill the process, and with it every job it
 * runs. Instead each is logged and counted, and the worker keeps serving its other jobs.
 *
 * Attribution: each JobRun runs inside an AsyncLocalStorage context (runAttributed). An uncaught
 * exception is raised from the callback that threw, inside the context of the job whose code path
 * set that callback up, so the guard hands it to that job (JobRun.crash: its engine is stopped and
 * the attempt recorded as a retryable UNCAUGHT_ERROR failure). An unhandled rejection is reported
 * after the promise settled, outside any context (measured under Bun 1.4.5): it is logged and
 * counted only. An error raised by a connection shared between jobs lands in the context that
 * opened it; that job then retries, which costs an attempt but never a byte.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { Logger } from "../log/log.ts";

/** What an escaped error can be attributed to: a running job. */
export interface EscapeOwner {
  readonly jobId: string;
  crash(err: unknown): void;
}

/** Escaped errors seen since the guard was installed. */
export interface EscapeCounts {
  uncaughtExceptions: number;
  unhandledRejections: number;
  /** Of both, those handed to the job they came from. */
  attributed: number;
}

const owners = new AsyncLocalStorage<EscapeOwner>();

/** Runs `fn` (a job's whole run) so that errors escaping from the work it starts are attributed to `owner`. */
export function runAttributed<T>(owner: EscapeOwner, fn: () => T): T {
  return owners.run(owner, fn);
}

function described(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { error: String(err) };
  // A stack is what makes such a bug fixable; it holds code locations, not data.
  return { err, stack: err.stack?.split("\n").slice(0, 12).join("\n") };
}

/** Installs the process-wide handlers; uninstall() removes them (tests). */
export function installEscapeGuard(log: Logger): { counts: EscapeCounts; uninstall(): void } {
  const counts: EscapeCounts = { uncaughtExceptions: 0, unhandledRejections: 0, attributed: 0 };
  const escaped = (kind: string, err: unknown) => {
    const owner = owners.getStore();
    if (owner) counts.attributed++;
    const fields = { kind, ...described(err), counts: { ...counts } };
    if (owner) {
      log.error("an error escaped a job's code path; that attempt fails (retryable), the worker goes on", { jobId: owner.jobId, ...fields });
      owner.crash(err);
    } else {
      log.error("an error escaped outside any job; logged, the worker goes on", fields);
    }
  };
  const onException = (err: unknown) => {
    counts.uncaughtExceptions++;
    escaped("uncaughtException", err);
  };
  const onRejection = (reason: unknown) => {
    counts.unhandledRejections++;
    escaped("unhandledRejection", reason);
  };
  process.on("uncaughtException", onException);
  process.on("unhandledRejection", onRejection);
  return {
    counts,
    uninstall() {
      process.off("uncaughtException", onException);
      process.off("unhandledRejection", onRejection);
    },
  };
}
