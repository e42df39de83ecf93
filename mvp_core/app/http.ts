/**
 * Cross-cutting HTTP plumbing for the root app: request ids, the bearer token, JSON bodies (size,
 * content type, syntax) and one access-log line per request. Bodies are never logged.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { ApiError } from "./errors.ts";

/** Largest request body accepted; portal keys are the biggest legitimate bodies (a few KiB). */
export const MAX_BODY_BYTES = 64 * 1024;

/**
 * Bun.serve's own cap. Beyond it Bun answers 413 itself, with no body at all, before the app sees
 * the request; so it is lifted out of the way, and the app enforces MAX_BODY_BYTES in JSON: a
 * declared Content-Length from the headers alone (checkBodyHeaders), a chunked body while reading
 * it (parseJsonBody stops at the limit, so nothing larger is ever buffered).
 */
export const SERVER_MAX_BODY_BYTES = Number.MAX_SAFE_INTEGER;

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

/**
 * For a path some route serves, the methods it answers (HEAD wherever GET is); empty for a path no
 * route serves. Built from the app's registered routes, so a 405's Allow header is never stale.
 */
export function allowedMethods(routes: readonly { method: string; path: string }[]): (path: string) => string[] {
  const table = routes.map((r) => ({
    method: r.method.toUpperCase(),
    pattern: new RegExp(`^${r.path.split("/").map((seg) => (seg.startsWith(":") ? "[^/]+" : seg === "*" ? ".*" : seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))).join("/")}$`),
  }));
  return (path) => {
    const methods = new Set(table.filter((r) => r.pattern.test(path)).map((r) => r.method));
    if (methods.has("GET")) methods.add("HEAD");
    return [...methods].sort();
  };
}

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/** The body as UTF-8 text, read only up to MAX_BODY_BYTES. Bytes that are not UTF-8 are refused, never replaced by U+FFFD. */
async function readBody(request: Request): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    const reader = request.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > MAX_BODY_BYTES) {
        // The answer is decided; what the client sends after the limit is never read.
        await reader.cancel();
        throw new ApiError(413, "BODY_TOO_LARGE", `request body is larger than the limit; the limit is ${MAX_BODY_BYTES} bytes`, { limit: MAX_BODY_BYTES });
      }
      chunks.push(value);
    }
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new ApiError(400, "INVALID_BODY", "request body is not valid UTF-8; send the JSON encoded as UTF-8");
  }
}

/** Parses a JSON body with messages a person can act on; an empty body parses as null. */
export async function parseJsonBody(request: Request, contentType: string): Promise<unknown> {
  const text = await readBody(request);
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
