/**
 * Cross-cutting HTTP plumbing for the root app: request ids, the bearer token, JSON bodies (size,
 * content type, syntax) and one access-log line per request. Bodies are never logged.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { ApiError } from "./errors.ts";

/** Largest request body accepted; portal keys are the biggest legitimate bodies (a few KiB). */
export const MAX_BODY_BYTES = 64 * 1024;

/**
 * Bun.serve's own cap (it answers beyond it without JSON). Far above MAX_BODY_BYTES so that a
 * declared Content-Length is refused by checkBodyHeaders first, with a JSON answer.
 */
export const SERVER_MAX_BODY_BYTES = 1024 * 1024;

/** Routes anyone may call, token or not: health and metrics (scraped without credentials), the API's documentation. */
export function isPublicPath(path: string): boolean {
  return path === "/health" || path === "/metrics" || path === "/swagger" || path.startsWith("/swagger/");
}

const digest = (s: string) => createHash("sha256").update(s).digest();

/** Returns a checker for `Authorization` headers against `token` (constant time). */
export function bearerChecker(token: string): (header: string | null) => void {
  const want = digest(token);
  return (header) => {
    if (!header) throw new ApiError(401, "UNAUTHORIZED", "missing Authorization header; send `Authorization: Bearer <KETTER_API_TOKEN>` (in Swagger UI: Authorize)");
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    if (!m) throw new ApiError(401, "UNAUTHORIZED", "Authorization header must be `Bearer <token>`");
    if (!timingSafeEqual(digest(m[1]!), want)) throw new ApiError(401, "UNAUTHORIZED", "the bearer token is not valid; check KETTER_API_TOKEN");
  };
}

/** Refuses, from the headers alone, a body that is too large or not JSON (before reading it). */
export function checkBodyHeaders(request: Request): void {
  const len = request.headers.get("content-length");
  if (len !== null && Number(len) > MAX_BODY_BYTES) {
    throw new ApiError(413, "BODY_TOO_LARGE", `request body is ${len} bytes; the limit is ${MAX_BODY_BYTES} bytes`, { limit: MAX_BODY_BYTES });
  }
}

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/** Parses a JSON body with messages a person can act on; an empty body parses as null. */
export async function parseJsonBody(request: Request, contentType: string): Promise<unknown> {
  const text = await request.text();
  if (Buffer.byteLength(text) > MAX_BODY_BYTES) {
    throw new ApiError(413, "BODY_TOO_LARGE", `request body is larger than the limit; the limit is ${MAX_BODY_BYTES} bytes`, { limit: MAX_BODY_BYTES });
  }
  if (text.trim() === "") return null;
  if (!JSON_TYPE.test(contentType)) {
    throw new ApiError(415, "UNSUPPORTED_MEDIA_TYPE", `Content-Type ${JSON.stringify(contentType || "(none)")} is not accepted; send the body as JSON with Content-Type: application/json`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ApiError(400, "INVALID_JSON", `request body is not valid JSON: ${(err as Error).message}`);
  }
}
