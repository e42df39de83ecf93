/**
 * What one DKU check is and how it runs: a small async function that measures one thing and says
 * whether it is fine. The runner times it, bounds it with a deadline and turns a throw into `fail`,
 * so one broken service never stops the others from being checked.
 */

/** ok: healthy; warn: works but an operator should look; fail: Ketter cannot work correctly. */
export type CheckStatus = "ok" | "warn" | "fail";

/** What a check function reports; the runner adds the name and the timing. */
export interface CheckOutcome {
  status: CheckStatus;
  /** The measured value, short and human-readable ("PostgreSQL 16.4", "3 live, depth 0"). */
  value: string;
  /** How to fix a warn or fail; omitted when ok. */
  hint?: string;
  /** Machine-readable facts for the JSON report (numbers, lists). */
  details?: Record<string, unknown>;
}

/** One row of the report. */
export interface CheckResult extends CheckOutcome {
  name: string;
  /** When the check started (ISO 8601, UTC). */
  at: string;
  durationMs: number;
}

/** A named check; `run` gets a signal that aborts when the check's deadline passes. */
export interface Check {
  name: string;
  timeoutMs: number;
  /** How to fix it when `run` throws or times out (a CheckFailure brings its own hint). */
  failHint: string;
  run(signal: AbortSignal): Promise<CheckOutcome>;
}

/** Raised inside a check to fail it with a specific hint (a plain Error fails it with a generic one). */
export class CheckFailure extends Error {
  constructor(message: string, readonly hint: string, readonly details?: Record<string, unknown>) {
    super(message);
    this.name = "CheckFailure";
  }
}

/**
 * Runs `check` within its deadline; never throws — an exception, a timeout or `interrupt` (Ctrl-C)
 * becomes `fail`.
 */
export async function runCheck(check: Check, interrupt?: AbortSignal): Promise<CheckResult> {
  const at = new Date();
  const started = performance.now();
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onInterrupt: (() => void) | undefined;
  const deadline = new Promise<never>((_, reject) => {
    const stop = (err: Error) => {
      controller.abort(err);
      reject(err);
    };
    timer = setTimeout(() => stop(new Error(`no answer within ${check.timeoutMs} ms`)), check.timeoutMs);
    onInterrupt = () => stop(new CheckFailure("interrupted", "the DKU was interrupted (Ctrl-C): rerun it to finish the checks"));
    if (interrupt?.aborted) onInterrupt();
    else interrupt?.addEventListener("abort", onInterrupt, { once: true });
  });
  let outcome: CheckOutcome;
  try {
    // Interrupted before it began: do not start work that would only be abandoned.
    outcome = await Promise.race(controller.signal.aborted ? [deadline] : [check.run(controller.signal), deadline]);
  } catch (err) {
    outcome = failureOutcome(err, check.failHint);
  } finally {
    clearTimeout(timer);
    if (onInterrupt) interrupt?.removeEventListener("abort", onInterrupt);
  }
  return { name: check.name, ...outcome, at: at.toISOString(), durationMs: Math.round(performance.now() - started) };
}

function failureOutcome(err: unknown, fallbackHint: string): CheckOutcome {
  if (err instanceof CheckFailure) return { status: "fail", value: err.message, hint: err.hint, ...(err.details ? { details: err.details } : {}) };
  return { status: "fail", value: errorMessage(err), hint: fallbackHint };
}

/** The message of anything thrown, on one line. */
export function errorMessage(err: unknown): string {
  const e = err as { message?: unknown; code?: unknown; errors?: unknown };
  let msg = err instanceof Error || typeof e?.message === "string" ? String(e.message) : String(err);
  // Connection errors (ECONNREFUSED on several addresses) arrive as an AggregateError with an empty message.
  if (!msg && Array.isArray(e?.errors) && e.errors.length > 0) msg = errorMessage(e.errors[0]);
  if (!msg && typeof e?.code === "string") msg = e.code;
  return (msg || "unknown error").replace(/\s+/g, " ").trim();
}
