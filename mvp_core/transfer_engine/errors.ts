/**
 * The engine's one error type. Every failure carries a code from a closed set and a `retryable`
 * flag decided where the error is raised: the worker only ever asks `retryable`.
 */

/** Every code the engine (and its endpoints) can raise, with the default retry decision. */
export const ERROR_CODES = {
  INVALID_SPEC: false,
  SOURCE_NOT_FOUND: false,
  TARGET_EXISTS: false,
  TARGET_INSIDE_SOURCE: false,
  /** Replacing the target would delete the source (the source lies inside it). */
  SOURCE_INSIDE_TARGET: false,
  SAME_PATH: false,
  /** A destructive step (a move, replacing a target) where the engine cannot prove source and target are apart. */
  LOCATION_UNKNOWN: false,
  NOT_A_DIRECTORY: false,
  PATH_ESCAPE: false,
  PERMISSION_DENIED: false,
  NO_SPACE: false,
  SOURCE_CHANGED: true,
  VERIFY_FAILED: true,
  CANCELLED: false,
  IO_ERROR: true,
  UNSUPPORTED: false,
  /** Files differ from what their ASC MHL history records, recorded files are missing, or the history is damaged. */
  MHL_MISMATCH: false,
  // Remote (SSH) endpoints.
  CONNECTION_FAILED: true,
  CONNECTION_LOST: true,
  TIMEOUT: true,
  AUTH_FAILED: false,
  HOST_KEY_MISMATCH: false,
  REMOTE_COMMAND_FAILED: true,
} as const satisfies Record<string, boolean>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** A transfer failure with a stable code; `retryable` defaults from the code but the raiser may override it. */
export class TransferError extends Error {
  override readonly name = "TransferError";
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { retryable?: boolean; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.retryable = opts.retryable ?? ERROR_CODES[code];
    this.details = opts.details ?? {};
  }

  toJSON(): { code: ErrorCode; message: string; retryable: boolean; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, retryable: this.retryable, details: this.details };
  }
}

/** True when `err` is a TransferError (instanceof fails across Bun Worker boundaries, so check the shape too). */
export function isTransferError(err: unknown): err is TransferError {
  return (
    err instanceof TransferError ||
    (typeof err === "object" && err !== null && (err as { name?: unknown }).name === "TransferError" &&
      typeof (err as { code?: unknown }).code === "string" && (err as { code: string }).code in ERROR_CODES)
  );
}

/**
 * Maps an operating-system error (ENOENT, EACCES, ENOSPC…) raised while touching `path` to a
 * TransferError; anything already a TransferError passes through unchanged.
 */
export function fromSystemError(err: unknown, path: string, action: string): TransferError {
  if (isTransferError(err)) return err;
  const sys = err as { code?: string; message?: string };
  const where = `${action} ${JSON.stringify(path)}`;
  switch (sys?.code) {
    case "ENOENT":
      return new TransferError("SOURCE_NOT_FOUND", `${where}: no such file or folder`, { cause: err, details: { path } });
    case "EACCES":
    case "EPERM":
    case "EROFS":
      return new TransferError("PERMISSION_DENIED", `${where}: permission denied (${sys.code}); fix the permissions or choose another path`, { cause: err, details: { path } });
    case "ENOSPC":
    case "EDQUOT":
      return new TransferError("NO_SPACE", `${where}: no space left on the destination; free space or choose another target`, { cause: err, details: { path } });
    case "EEXIST":
    case "ENOTEMPTY":
      return new TransferError("TARGET_EXISTS", `${where}: already exists`, { cause: err, details: { path } });
    case "ENOTDIR":
      return new TransferError("NOT_A_DIRECTORY", `${where}: a parent is not a folder`, { cause: err, details: { path } });
    case "ABORT_ERR":
      return new TransferError("CANCELLED", "transfer cancelled", { cause: err });
    default:
      return new TransferError("IO_ERROR", `${where}: ${sys?.message ?? String(err)}`, { cause: err, details: { path, errno: sys?.code } });
  }
}
