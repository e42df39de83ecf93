/**
 * SFTP requests as promises, and the one mapping of their failures to the engine's errors. ssh2's
 * SFTP client speaks callbacks and reports failures as bare status numbers (v3 has no errno):
 * everything that turns those into a TransferError lives here.
 */
import type { SFTPWrapper } from "ssh2";
import type { EntryType } from "../endpoint.ts";
import { cancelledError } from "../../cancel.ts";
import { TransferError, fromSystemError, isTransferError } from "../../errors.ts";
import { errnoFromText } from "./remote_shell.ts";

// SFTP v3 status codes (draft-ietf-secsh-filexfer-02).
export const FX_EOF = 1;
export const FX_NO_SUCH_FILE = 2;
export const FX_PERMISSION_DENIED = 3;
export const FX_FAILURE = 4;
export const FX_OP_UNSUPPORTED = 8;

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;

/** An ssh2 callback. */
export type Callback<T> = (err: Error | null | undefined, value: T) => void;

/** Promisifies one ssh2 callback-style call (a synchronous throw becomes the rejection). */
export function call<T>(fn: (cb: Callback<T>) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
}

/** The SFTP status of a failed request; null when the failure is not an SFTP status (the channel went away). */
export function sftpStatus(err: unknown): number | null {
  const code = (err as { code?: unknown })?.code;
  return typeof code === "number" ? code : null;
}

/** The entry type of an SFTP mode; null for fifos, sockets and devices (never transferred). */
export function typeOf(mode: number): EntryType | null {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "symlink";
    default: return null;
  }
}

/** Whether the server announced the OpenSSH extension `name` (ssh2 keeps the list private). */
export function hasExtension(sftp: SFTPWrapper, name: string): boolean {
  const ext = (sftp as unknown as { _extensions?: Record<string, string> })._extensions;
  return typeof ext?.[name] === "string";
}

/** ssh2 learns the server's limits (limits@openssh.com) but keeps them private; 32 KiB is the safe default. */
export function maxLen(sftp: SFTPWrapper, key: "_maxReadLen" | "_maxWriteLen"): number {
  const v = (sftp as unknown as Record<string, unknown>)[key];
  return typeof v === "number" && v > 0 ? v : 32 * 1024;
}

/** Where a failure happened, for mapFailure. */
export interface FailureContext {
  /** The connection's loss, once it dropped: it explains every failure after it. */
  lost: TransferError | null;
  label: string;
}

/**
 * Converts any failure of an operation on `rel` into a TransferError naming it: cancellation first,
 * then errors already coded, then the connection's loss, then the SFTP status.
 */
export function mapFailure(err: unknown, at: FailureContext, rel: string, action: string, signal?: AbortSignal): TransferError {
  if (signal?.aborted) return cancelledError(err);
  if (isTransferError(err)) return err;
  if (at.lost) return at.lost;
  const message = (err as Error)?.message ?? String(err);
  const where = `${action} ${JSON.stringify(rel)} on ${at.label}`;
  switch (sftpStatus(err)) {
    case FX_NO_SUCH_FILE: return fromSystemError({ code: "ENOENT", message }, rel, action);
    case FX_PERMISSION_DENIED: return fromSystemError({ code: "EACCES", message }, rel, action);
    case FX_OP_UNSUPPORTED: return new TransferError("UNSUPPORTED", `${action} ${JSON.stringify(rel)}: the server does not support this operation`, { cause: err });
    case FX_FAILURE:
    case FX_EOF: {
      const errno = errnoFromText(message);
      return errno ? fromSystemError({ code: errno, message }, rel, action) : new TransferError("IO_ERROR", `${where}: ${message}`, { cause: err, details: { path: rel } });
    }
    case null:
      // Not an SFTP status: the channel went away under the request (sshd killed, link dropped).
      return new TransferError("CONNECTION_LOST", `${where}: ${message}; it will be retried`, { cause: err });
    default:
      return new TransferError("IO_ERROR", `${where}: ${message}`, { cause: err, details: { path: rel } });
  }
}
