/**
 * The one place where failures become HTTP answers. Every error body is
 * `{ error: { code, message, details } }`; anything unexpected is a 500 that names the request id
 * (and is logged), so user input can be told apart from server faults.
 */
import { NotFoundError, ParseError } from "elysia";
import { JobError, type JobErrorCode } from "../jobs/repository.ts";
import { PortalError, type PortalErrorCode } from "../portals/repository.ts";
import { SecretError } from "../portals/secrets.ts";
import { SiteError, type SiteErrorCode } from "../sites/repository.ts";
import { isTransferError, type ErrorCode } from "../transfer_engine/errors.ts";

/** An error meant for the client: status, stable code, a message saying what to fix. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(readonly status: number, readonly code: string, message: string, readonly details: Record<string, unknown> = {}) {
    super(message);
  }
}

/** The JSON error body. */
export interface ErrorBody {
  error: { code: string; message: string; details: Record<string, unknown> };
}

const PORTAL_STATUS: Record<PortalErrorCode, number> = { NOT_FOUND: 404, NAME_TAKEN: 409, IN_USE: 409, INVALID: 422 };
const PORTAL_CODE: Record<PortalErrorCode, string> = { NOT_FOUND: "PORTAL_NOT_FOUND", NAME_TAKEN: "PORTAL_NAME_TAKEN", IN_USE: "PORTAL_IN_USE", INVALID: "INVALID_PORTAL" };

const JOB_STATUS: Record<JobErrorCode, number> = {
  NOT_FOUND: 404,
  UNKNOWN_PORTAL: 422,
  INVALID_PATH: 422,
  SAME_PATH: 422,
  TARGET_INSIDE_SOURCE: 422,
  IDEMPOTENCY_CONFLICT: 409,
  INVALID_STATE: 409,
  BAD_CURSOR: 400,
  CROSS_SITE: 422,
  SITE_NOT_ALLOWED: 422,
  NO_COMMON_SITE: 422,
  PORTAL_SITE_UNKNOWN: 422,
  PORTAL_CHANGED: 409,
};
const JOB_CODE: Partial<Record<JobErrorCode, string>> = { NOT_FOUND: "JOB_NOT_FOUND", INVALID_STATE: "JOB_STATE_CONFLICT" };

const SITE_STATUS: Record<SiteErrorCode, number> = { NOT_FOUND: 404, IN_USE: 409, SITE_REQUIRED: 422 };
const SITE_CODE: Record<SiteErrorCode, string> = { NOT_FOUND: "SITE_NOT_FOUND", IN_USE: "SITE_IN_USE", SITE_REQUIRED: "SITE_REQUIRED" };

/**
 * Engine codes that can reach the API (portal check and open): what each means for a client.
 * A code missing here (the engine may add some) maps by its retry flag: 502 if retryable, else 422.
 */
const TRANSFER_STATUS: Partial<Record<ErrorCode, number>> = {
  INVALID_SPEC: 422,
  SOURCE_NOT_FOUND: 404,
  TARGET_EXISTS: 409,
  TARGET_INSIDE_SOURCE: 422,
  SAME_PATH: 422,
  NOT_A_DIRECTORY: 422,
  PATH_ESCAPE: 422,
  PERMISSION_DENIED: 403,
  NO_SPACE: 507,
  SOURCE_CHANGED: 409,
  VERIFY_FAILED: 502,
  CANCELLED: 409,
  IO_ERROR: 502,
  UNSUPPORTED: 422,
  CONNECTION_FAILED: 502,
  CONNECTION_LOST: 502,
  TIMEOUT: 504,
  AUTH_FAILED: 502,
  HOST_KEY_MISMATCH: 409,
  REMOTE_COMMAND_FAILED: 502,
};

/** The fields of an Elysia/zod validation failure we read (kept structural: Elysia's class is generic). */
interface ValidationLike {
  code: "VALIDATION";
  type: string;
  all: { path?: string; message?: string; summary?: string; value?: unknown }[];
}

function isValidation(err: unknown): err is ValidationLike {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === "VALIDATION" && Array.isArray((err as { all?: unknown }).all);
}

const WHERE: Record<string, string> = { body: "body", params: "path parameter", query: "query parameter", headers: "header" };

function validationError(err: ValidationLike): ApiError {
  const where = WHERE[err.type] ?? err.type;
  const problems = err.all.map((i) => {
    const path = !i.path || i.path === "root" ? "" : i.path.replace(/^\//, "").replaceAll("/", ".");
    return { field: path ? `${err.type}.${path}` : err.type, message: i.message ?? i.summary ?? "invalid" };
  });
  if (err.type === "body" && err.all.length === 1 && (err.all[0]!.value === null || err.all[0]!.value === undefined) && problems[0]!.field === "body") {
    return new ApiError(422, "BODY_REQUIRED", "request body is missing; send a JSON object with Content-Type: application/json", { problems });
  }
  const message = `invalid ${where}: ${problems.map((p) => `${p.field}: ${p.message}`).join("; ")}`;
  return new ApiError(422, "VALIDATION_FAILED", message, { problems });
}

const camel = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/**
 * An engine message in the API's words. The engine writes one message for its CLI and the API
 * alike ("allow overwrite"); here that becomes the job option a client sets, and a
 * missing target parent points at `createParents`. `code` is the error's code, when there is one.
 */
export function apiMessage(message: string, code?: string | null): string {
  let m = message
    .replace(/\ballow (overwrite|createParents)\b/g, (_, name: string) => `set options.${name} to true`)
    .replace(/\bpass ([a-z][\w-]*) \(--[a-z][\w-]*\)/g, (_, name: string) => `set options.${camel(name)} to true`)
    .replace(/ ?\(--[a-z][\w-]*(?: [^)]*)?\)/g, "")
    .replace(/--([a-z][\w-]*)/g, (_, flag: string) => `options.${camel(flag)}`);
  if (code === "NOT_A_DIRECTORY" && m.includes("target's parent folder") && !m.includes("createParents")) {
    m += " (or set options.createParents to true to have it created)";
  }
  return m;
}

/**
 * Maps any thrown value to an ApiError; `internal` is true when it was not the client's fault.
 * `allowed`: the methods the request's path answers to, when some route serves it (a NotFoundError
 * there means the method is wrong: 405, with the methods in details.allowed for the Allow header).
 */
export function toApiError(err: unknown, requestId: string, allowed: readonly string[] = []): { error: ApiError; internal: boolean } {
  if (err instanceof ApiError) return { error: err, internal: false };
  // Elysia wraps what a parse hook throws.
  if (err instanceof ParseError && err.cause instanceof ApiError) return { error: err.cause, internal: false };
  // A declared response schema the server's own answer fails: the server's fault, never the client's.
  if (isValidation(err) && err.type === "response") {
    return { error: new ApiError(500, "INTERNAL", `internal error: the answer did not match its documented schema; the API log has the details under request id ${requestId}`), internal: true };
  }
  if (isValidation(err)) return { error: validationError(err), internal: false };
  if (err instanceof PortalError) return { error: new ApiError(PORTAL_STATUS[err.code], PORTAL_CODE[err.code], err.message, err.details), internal: false };
  if (err instanceof JobError) return { error: new ApiError(JOB_STATUS[err.code], JOB_CODE[err.code] ?? err.code, err.message, err.details), internal: false };
  if (err instanceof SiteError) return { error: new ApiError(SITE_STATUS[err.code], SITE_CODE[err.code], err.message, err.details), internal: false };
  if (err instanceof NotFoundError && allowed.length > 0) {
    return { error: new ApiError(405, "METHOD_NOT_ALLOWED", `this method is not allowed here; use ${allowed.join(", ")} (see /swagger)`, { allowed }), internal: false };
  }
  if (err instanceof NotFoundError) return { error: new ApiError(404, "ROUTE_NOT_FOUND", "no such route; see /swagger for the API"), internal: false };
  if (err instanceof ParseError) return { error: new ApiError(400, "INVALID_BODY", "the request body could not be read; send JSON with Content-Type: application/json"), internal: false };
  if (isTransferError(err)) {
    const status = TRANSFER_STATUS[err.code] ?? (err.retryable ? 502 : 422);
    return { error: new ApiError(status, err.code, apiMessage(err.message, err.code), err.details), internal: status >= 500 };
  }
  if (err instanceof SecretError) {
    return { error: new ApiError(500, "SECRET_UNREADABLE", `${err.message} (request ${requestId})`), internal: true };
  }
  return { error: new ApiError(500, "INTERNAL", `internal error; the API log has the details under request id ${requestId}`), internal: true };
}

/** The JSON body for `e`. */
export function errorBody(e: ApiError): ErrorBody {
  return { error: { code: e.code, message: e.message, details: e.details } };
}
