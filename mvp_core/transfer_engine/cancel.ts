/** Cancellation as the engine reports it: one error, built in one place. */
import { TransferError } from "./errors.ts";

/** The CANCELLED error (not retryable: a cancel means "stop", not "try again"). */
export function cancelledError(cause?: unknown): TransferError {
  return new TransferError("CANCELLED", "transfer cancelled", cause === undefined ? {} : { cause });
}

/** Throws CANCELLED once `signal` fired. */
export function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw cancelledError(signal.reason);
}
