// Bad input: every case is a 4xx with a JSON error whose message names what to fix.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortalView } from "./portals/schemas.ts";
import { apiFixture, type ApiFixture } from "./test_support.ts";
import { uniqueId } from "../testing/services.ts";

const TOKEN = "test-token-0123456789abcdef";
let f: ApiFixture;
let a: PortalView;
let b: PortalView;
const missing = "7d4f7a52-8a4b-4c3e-9d51-2f6a1b0c9e83";

beforeAll(async () => {
  f = await apiFixture({ apiToken: TOKEN });
  const mk = async () => (await f.call<PortalView>("POST", "/portals", { body: { kind: "local", name: `bad_${uniqueId()}`, rootPath: await f.tempDir() }, headers: auth })).json;
  a = await mk();
  b = await mk();
});
afterAll(() => f.close());

const auth = { authorization: `Bearer ${TOKEN}` };
const job = (over: Record<string, unknown> = {}) => ({ type: "copy", source: { portal: a.id, path: "shoot" }, target: { portal: b.id, path: "in/shoot" }, ...over });
const src = (path: string) => job({ source: { portal: a.id, path } });

interface Case {
  name: string;
  method: string;
  path: () => string;
  body?: () => unknown;
  raw?: string;
  /** Send `raw` with its quotes' contents as bytes that are not UTF-8 (a CESU-8 surrogate). */
  rawBytes?: boolean;
  headers?: Record<string, string>;
  noAuth?: boolean;
  status: number;
  code: string;
  /** Part of the message that tells the person what to fix. */
  says: RegExp;
  /** The Allow header a 405 must carry. */
  allow?: string;
}

const cursorAt = (at: string) => Buffer.from(JSON.stringify([at, missing])).toString("base64url");

const cases: Case[] = [
  { name: "no body", method: "POST", path: () => "/jobs", status: 422, code: "BODY_REQUIRED", says: /send a JSON object/ },
  { name: "malformed JSON", method: "POST", path: () => "/jobs", raw: "{\"type\":", headers: { "content-type": "application/json" }, status: 400, code: "INVALID_JSON", says: /not valid JSON/ },
  { name: "wrong content type", method: "POST", path: () => "/jobs", raw: "type=copy", headers: { "content-type": "application/x-www-form-urlencoded" }, status: 415, code: "UNSUPPORTED_MEDIA_TYPE", says: /Content-Type: application\/json/ },
  { name: "oversize body", method: "POST", path: () => "/jobs", raw: JSON.stringify({ pad: "x".repeat(70_000) }), headers: { "content-type": "application/json" }, status: 413, code: "BODY_TOO_LARGE", says: /limit is 65536/ },
  { name: "body is an array", method: "POST", path: () => "/jobs", body: () => [job()], status: 422, code: "VALIDATION_FAILED", says: /expected object/ },
  { name: "missing type", method: "POST", path: () => "/jobs", body: () => ({ source: job().source, target: job().target }), status: 422, code: "VALIDATION_FAILED", says: /body\.type/ },
  { name: "unknown job type", method: "POST", path: () => "/jobs", body: () => job({ type: "sync" }), status: 422, code: "VALIDATION_FAILED", says: /body\.type: .*copy/ },
  { name: "missing target", method: "POST", path: () => "/jobs", body: () => ({ type: "copy", source: job().source }), status: 422, code: "VALIDATION_FAILED", says: /body\.target/ },
  { name: "portal is not a UUID", method: "POST", path: () => "/jobs", body: () => job({ source: { portal: "lab", path: "x" } }), status: 422, code: "VALIDATION_FAILED", says: /body\.source\.portal: must be a portal id/ },
  { name: "path of wrong type", method: "POST", path: () => "/jobs", body: () => job({ source: { portal: a.id, path: 42 } }), status: 422, code: "VALIDATION_FAILED", says: /body\.source\.path: .*expected string/ },
  { name: "unknown portal", method: "POST", path: () => "/jobs", body: () => job({ target: { portal: missing, path: "x" } }), status: 422, code: "UNKNOWN_PORTAL", says: /target\.portal: no portal with id/ },
  { name: "path with ..", method: "POST", path: () => "/jobs", body: () => src("shoot/../../etc"), status: 422, code: "INVALID_PATH", says: /source\.path: .*"\.\."/ },
  { name: "absolute path outside the root", method: "POST", path: () => "/jobs", body: () => src("/etc/passwd"), status: 422, code: "INVALID_PATH", says: /outside the portal root/ },
  { name: "NUL byte in path", method: "POST", path: () => "/jobs", body: () => src("a\u0000b"), status: 422, code: "VALIDATION_FAILED", says: /body\.source\.path: contains a NUL character \(U\+0000\) at position 1; remove it/ },
  { name: "lone surrogate in a path", method: "POST", path: () => "/jobs", body: () => src("shoot/\ud800.mov"), status: 422, code: "VALIDATION_FAILED", says: /body\.source\.path: contains a lone UTF-16 surrogate \(\\ud800\) at position 6.*U\+FFFD/ },
  { name: "lone low surrogate in a target path", method: "POST", path: () => "/jobs", body: () => job({ target: { portal: b.id, path: "in/\udc00" } }), status: 422, code: "VALIDATION_FAILED", says: /body\.target\.path: contains a lone UTF-16 surrogate \(\\udc00\)/ },
  { name: "lone surrogate in a portal root", method: "POST", path: () => "/portals", body: () => ({ kind: "local", name: "sur", rootPath: "/data/\udbff" }), status: 422, code: "VALIDATION_FAILED", says: /body\.rootPath: contains a lone UTF-16 surrogate/ },
  { name: "lone surrogate in a host", method: "POST", path: () => "/portals", body: () => ({ kind: "sftp", name: "s", rootPath: "/srv", host: "h\ud83d", username: "u", auth: { method: "password", password: "p" } }), status: 422, code: "VALIDATION_FAILED", says: /body\.host: contains a lone UTF-16 surrogate/ },
  { name: "lone surrogate in a password", method: "POST", path: () => "/portals", body: () => ({ kind: "sftp", name: "s", rootPath: "/srv", host: "h", username: "u", auth: { method: "password", password: "p\ud800w" } }), status: 422, code: "VALIDATION_FAILED", says: /body\.auth\.password: contains a lone UTF-16 surrogate/ },
  { name: "lone surrogate in a renamed root", method: "PATCH", path: () => `/portals/${a.id}`, body: () => ({ rootPath: "/data/\ud800x" }), status: 422, code: "VALIDATION_FAILED", says: /body\.rootPath: contains a lone UTF-16 surrogate/ },
  { name: "body that is not UTF-8", method: "POST", path: () => "/jobs", raw: "{\"type\":\"copy\"}", rawBytes: true, headers: { "content-type": "application/json" }, status: 400, code: "INVALID_BODY", says: /not valid UTF-8/ },
  { name: "empty path", method: "POST", path: () => "/jobs", body: () => src(""), status: 422, code: "VALIDATION_FAILED", says: /must name a file or folder/ },
  { name: "path is the root", method: "POST", path: () => "/jobs", body: () => src("./"), status: 422, code: "INVALID_PATH", says: /portal root itself/ },
  { name: "same source and target", method: "POST", path: () => "/jobs", body: () => job({ target: { portal: a.id, path: "shoot" } }), status: 422, code: "SAME_PATH", says: /choose another target/ },
  { name: "target inside source", method: "POST", path: () => "/jobs", body: () => job({ target: { portal: a.id, path: "shoot/copy" } }), status: 422, code: "TARGET_INSIDE_SOURCE", says: /outside it/ },
  { name: "maxAttempts 0", method: "POST", path: () => "/jobs", body: () => job({ options: { maxAttempts: 0 } }), status: 422, code: "VALIDATION_FAILED", says: /body\.options\.maxAttempts/ },
  { name: "unknown verify mode", method: "POST", path: () => "/jobs", body: () => job({ options: { verify: "md5" } }), status: 422, code: "VALIDATION_FAILED", says: /body\.options\.verify: .*size.*checksum/ },
  { name: "unknown field", method: "POST", path: () => "/jobs", body: () => job({ priority: 1 }), status: 422, code: "VALIDATION_FAILED", says: /Unrecognized key: "priority"/ },
  { name: "Idempotency-Key too long", method: "POST", path: () => "/jobs", body: () => job(), headers: { "idempotency-key": "k".repeat(300) }, status: 422, code: "VALIDATION_FAILED", says: /headers\.idempotency-key/ },
  { name: "limit 0", method: "GET", path: () => "/jobs?limit=0", status: 422, code: "VALIDATION_FAILED", says: /query\.limit: must be at least 1/ },
  { name: "limit not a number", method: "GET", path: () => "/jobs?limit=ten", status: 422, code: "VALIDATION_FAILED", says: /query\.limit: must be a whole number/ },
  { name: "unknown status filter", method: "GET", path: () => "/jobs?status=PAUSED", status: 422, code: "VALIDATION_FAILED", says: /unknown status PAUSED; use one or more of QUEUED/ },
  { name: "bad cursor", method: "GET", path: () => "/jobs?cursor=bm90LWEtY3Vyc29y", status: 400, code: "BAD_CURSOR", says: /omit it to start again/ },
  { name: "cursor dated year 0", method: "GET", path: () => `/jobs?cursor=${cursorAt("0000-01-01T00:00:00.000000Z")}`, status: 400, code: "BAD_CURSOR", says: /omit it to start again/ },
  { name: "cursor dated 30 February", method: "GET", path: () => `/jobs?cursor=${cursorAt("2026-02-30T10:00:00.000000Z")}`, status: 400, code: "BAD_CURSOR", says: /omit it to start again/ },
  { name: "cursor dated 31 April", method: "GET", path: () => `/jobs?cursor=${cursorAt("2026-04-31T10:00:00.000000Z")}`, status: 400, code: "BAD_CURSOR", says: /omit it to start again/ },
  { name: "cursor dated 29 February of a common year", method: "GET", path: () => `/jobs?portal=${a.id}&status=DONE&cursor=${cursorAt("2025-02-29T10:00:00.000000Z")}`, status: 400, code: "BAD_CURSOR", says: /omit it to start again/ },
  { name: "NUL in the cursor", method: "GET", path: () => "/jobs?cursor=%00", status: 422, code: "VALIDATION_FAILED", says: /query\.cursor: contains a NUL character/ },
  { name: "portal filter not a UUID", method: "GET", path: () => "/jobs?portal=lab", status: 422, code: "VALIDATION_FAILED", says: /query\.portal/ },
  { name: "unknown query parameter", method: "GET", path: () => "/jobs?sort=asc", status: 422, code: "VALIDATION_FAILED", says: /Unrecognized key: "sort"/ },
  { name: "job id not a UUID", method: "GET", path: () => "/jobs/42", status: 422, code: "VALIDATION_FAILED", says: /params\.id: must be a job id/ },
  { name: "unknown job", method: "GET", path: () => `/jobs/${missing}`, status: 404, code: "JOB_NOT_FOUND", says: /no job with id/ },
  { name: "events of unknown job", method: "GET", path: () => `/jobs/${missing}/events`, status: 404, code: "JOB_NOT_FOUND", says: /no job with id/ },
  { name: "negative events cursor", method: "GET", path: () => `/jobs/${missing}/events?after=-1`, status: 422, code: "VALIDATION_FAILED", says: /query\.after/ },
  { name: "cancel unknown job", method: "POST", path: () => `/jobs/${missing}/cancel`, status: 404, code: "JOB_NOT_FOUND", says: /no job with id/ },
  { name: "retry unknown job", method: "POST", path: () => `/jobs/${missing}/retry`, status: 404, code: "JOB_NOT_FOUND", says: /no job with id/ },
  { name: "portal without name", method: "POST", path: () => "/portals", body: () => ({ kind: "local", rootPath: "/data" }), status: 422, code: "VALIDATION_FAILED", says: /body\.name/ },
  { name: "unknown portal kind", method: "POST", path: () => "/portals", body: () => ({ kind: "ftp", name: "x", rootPath: "/data" }), status: 422, code: "VALIDATION_FAILED", says: /body\.kind: .*'local' \| 'sftp'/ },
  { name: "portal name with spaces", method: "POST", path: () => "/portals", body: () => ({ kind: "local", name: "my footage", rootPath: "/data" }), status: 422, code: "VALIDATION_FAILED", says: /body\.name: must be 1-64 letters/ },
  { name: "relative portal root", method: "POST", path: () => "/portals", body: () => ({ kind: "local", name: "rel", rootPath: "data" }), status: 422, code: "VALIDATION_FAILED", says: /body\.rootPath: must be an absolute folder path/ },
  { name: "sftp portal without auth", method: "POST", path: () => "/portals", body: () => ({ kind: "sftp", name: "s", rootPath: "/srv", host: "h", username: "u" }), status: 422, code: "VALIDATION_FAILED", says: /body\.auth/ },
  { name: "port out of range", method: "POST", path: () => "/portals", body: () => ({ kind: "sftp", name: "s", rootPath: "/srv", host: "h", port: 70000, username: "u", auth: { method: "password", password: "p" } }), status: 422, code: "VALIDATION_FAILED", says: /body\.port/ },
  { name: "malformed fingerprint", method: "POST", path: () => "/portals", body: () => ({ kind: "sftp", name: "s", rootPath: "/srv", host: "h", username: "u", auth: { method: "password", password: "p" }, hostKeyFingerprint: "MD5:aa:bb" }), status: 422, code: "VALIDATION_FAILED", says: /hostKeyFingerprint: must look like "SHA256:"/ },
  { name: "private key that is not a key", method: "POST", path: () => "/portals", body: () => ({ kind: "sftp", name: "s", rootPath: "/srv", host: "h", username: "u", auth: { method: "key", privateKey: "hello" } }), status: 422, code: "VALIDATION_FAILED", says: /privateKey: must be a PEM\/OpenSSH private key/ },
  { name: "duplicate portal name", method: "POST", path: () => "/portals", body: () => ({ kind: "local", name: a.name, rootPath: "/data" }), status: 409, code: "PORTAL_NAME_TAKEN", says: /choose another name/ },
  { name: "empty portal update", method: "PATCH", path: () => `/portals/${a.id}`, body: () => ({}), status: 422, code: "VALIDATION_FAILED", says: /at least one field/ },
  { name: "remote field on a local portal", method: "PATCH", path: () => `/portals/${a.id}`, body: () => ({ host: "srv" }), status: 422, code: "INVALID_PORTAL", says: /only name, rootPath and site can change/ },
  { name: "unknown portal id", method: "GET", path: () => `/portals/${missing}`, status: 404, code: "PORTAL_NOT_FOUND", says: /no portal with id/ },
  { name: "delete unknown portal", method: "DELETE", path: () => `/portals/${missing}`, status: 404, code: "PORTAL_NOT_FOUND", says: /no portal with id/ },
  { name: "check unknown portal", method: "POST", path: () => `/portals/${missing}/check`, status: 404, code: "PORTAL_NOT_FOUND", says: /no portal with id/ },
  { name: "unknown route", method: "GET", path: () => "/jobz", status: 404, code: "ROUTE_NOT_FOUND", says: /see \/swagger/ },
  { name: "unknown method on /jobs", method: "DELETE", path: () => "/jobs", status: 405, code: "METHOD_NOT_ALLOWED", says: /use GET, HEAD, POST/, allow: "GET, HEAD, POST" },
  { name: "unknown method on a job", method: "PUT", path: () => `/jobs/${missing}`, body: () => job(), status: 405, code: "METHOD_NOT_ALLOWED", says: /use GET, HEAD/, allow: "GET, HEAD" },
  { name: "GET on a cancel", method: "GET", path: () => `/jobs/${missing}/cancel`, status: 405, code: "METHOD_NOT_ALLOWED", says: /use POST/, allow: "POST" },
  { name: "OPTIONS on a portal", method: "OPTIONS", path: () => `/portals/${a.id}`, status: 405, code: "METHOD_NOT_ALLOWED", says: /use DELETE, GET, HEAD, PATCH/, allow: "DELETE, GET, HEAD, PATCH" },
  { name: "unknown method on an unknown route", method: "DELETE", path: () => "/jobz", status: 404, code: "ROUTE_NOT_FOUND", says: /see \/swagger/ },
  { name: "asset outside the list", method: "GET", path: () => "/swagger/assets/package.json", status: 404, code: "ROUTE_NOT_FOUND", says: /no Swagger UI asset/ },
  { name: "no token", method: "GET", path: () => "/jobs", noAuth: true, status: 401, code: "UNAUTHORIZED", says: /Authorization: Bearer/ },
  { name: "wrong token", method: "GET", path: () => "/portals", noAuth: true, headers: { authorization: "Bearer not-the-token-000000" }, status: 401, code: "UNAUTHORIZED", says: /check KETTER_API_TOKEN/ },
  { name: "not a bearer token", method: "POST", path: () => "/jobs", noAuth: true, headers: { authorization: "Basic dXNlcjpwdw==" }, body: () => job(), status: 401, code: "UNAUTHORIZED", says: /must be `Bearer <token>`/ },
];

describe("bad requests", () => {
  test("at least 25 distinct cases", () => {
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
    expect(cases.length).toBeGreaterThanOrEqual(25);
  });

  test.each(cases.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    const headers = { ...(c.noAuth ? {} : auth), ...c.headers };
    const raw = c.rawBytes && c.raw !== undefined ? Buffer.concat([Buffer.from(c.raw.slice(0, -2)), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from(c.raw.slice(-2))]) : c.raw;
    const r = await f.call(c.method, c.path(), {
      headers,
      ...(c.body ? { body: c.body() } : {}),
      ...(raw !== undefined ? { raw } : {}),
    });
    expect(r.status).toBe(c.status);
    expect(r.headers.get("content-type")).toContain("application/json");
    expect(r.json.error?.code).toBe(c.code);
    expect(r.json.error?.message).toMatch(c.says);
    expect(r.json.error?.details).toBeObject();
    if (c.status === 401) expect(r.headers.get("www-authenticate")).toContain("Bearer");
    expect(r.headers.get("allow")).toBe(c.allow ?? null);
  });

  test("/health, /metrics and /swagger need no token", async () => {
    expect((await f.call("GET", "/health")).status).toBe(200);
    expect((await f.call("GET", "/metrics")).status).toBe(200);
    expect((await f.call("GET", "/swagger")).status).toBe(200);
    expect((await f.call("GET", "/swagger/json")).status).toBe(200);
  });
});

// Every leaf of a valid body replaced by odd values, plus odd URLs: user input must never be a 500.
describe("odd input never causes a 500", () => {
  const ODD: unknown[] = [null, 0, -1, 1.5, 2 ** 53, "", " ", "\u0000", "\ud800", "é/ü/🎬", "../x", "/", "a".repeat(5000), [], {}, true];

  function leaves(o: unknown, prefix: string[] = []): string[][] {
    if (o === null || typeof o !== "object" || Array.isArray(o)) return [prefix];
    return Object.entries(o as Record<string, unknown>).flatMap(([k, v]) => leaves(v, [...prefix, k]));
  }

  function replaced(o: unknown, path: string[], value: unknown): unknown {
    if (path.length === 0) return value;
    const copy = { ...(o as Record<string, unknown>) };
    copy[path[0]!] = replaced(copy[path[0]!], path.slice(1), value);
    return copy;
  }

  const bodies = (): [string, string, Record<string, unknown>][] => [
    ["POST", "/jobs", { ...job(), options: { strategy: "zip", verify: "size", overwrite: true, maxAttempts: 2 } }],
    ["POST", "/portals", { kind: "local", name: "odd", rootPath: "/data" }],
    ["POST", "/portals", { kind: "sftp", name: "odd2", rootPath: "/srv", host: "h", port: 22, username: "u", auth: { method: "key", privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----", passphrase: "p" }, hostKeyFingerprint: `SHA256:${"A".repeat(43)}` }],
    ["PATCH", `/portals/${b.id}`, { name: "odd3", rootPath: "/data/x" }],
  ];

  test("bodies of POST /jobs, POST /portals and PATCH /portals/{id}", async () => {
    const statuses: number[] = [];
    for (const [method, path, body] of bodies()) {
      for (const leaf of leaves(body)) {
        for (const value of ODD) {
          const r = await f.call(method, path, { headers: auth, body: replaced(body, leaf, value) });
          if (r.status >= 500) throw new Error(`${method} ${path} with ${leaf.join(".")}=${JSON.stringify(value)} → ${r.status} ${JSON.stringify(r.json)}`);
          statuses.push(r.status);
        }
      }
    }
    expect(statuses.length).toBeGreaterThan(300);
  }, 60_000);

  test("a lone surrogate or a NUL appended to any string field of a valid body is refused with 422 naming that field", async () => {
    let checked = 0;
    for (const [method, path, body] of bodies()) {
      for (const leaf of leaves(body)) {
        const valid = leaf.reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], body);
        if (typeof valid !== "string") continue;
        for (const bad of ["\ud800", "\udfff", "\u0000"]) {
          const r = await f.call(method, path, { headers: auth, body: replaced(body, leaf, valid + bad) });
          const field = `body.${leaf.join(".")}`;
          const problems = (r.json.error?.details.problems ?? []) as { field: string; message: string }[];
          expect({ field, bad, status: r.status, named: problems.some((p) => p.field === field) }).toEqual({ field, bad, status: 422, named: true });
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(40);
  });

  test("odd URLs, query strings and headers", async () => {
    const urls = [
      "/jobs/%ZZ", "/jobs/%00", "/portals/%2e%2e", "/jobs?limit=%ZZ", "/jobs?limit=99999999999999999999", "/jobs?status=", "/jobs?status=QUEUED&status=DONE",
      "/jobs?cursor=", `/jobs?cursor=${"A".repeat(600)}`, "/jobs?portal=", "/jobs/00000000-0000-0000-0000-000000000000/events?after=999999999999999",
      "/swagger/assets/%2e%2e%2fpackage.json", "/jobs//events", "/portals/",
      "/jobs?cursor=%ED%A0%80", "/jobs?status=%ED%A0%80", "/jobs/%ED%A0%80", "/jobs?portal=%ED%A0%80", "/jobs?cursor=%00",
    ];
    for (const u of urls) {
      const r = await f.call("GET", u, { headers: auth });
      if (r.status >= 500) throw new Error(`GET ${u} → ${r.status} ${JSON.stringify(r.json)}`);
    }
    for (const key of ["é", "a b", "\t"]) {
      const r = await f.call("POST", "/jobs", { headers: { ...auth, "idempotency-key": encodeURIComponent(key) + key.replace(/[^\x21-\x7e]/g, "") }, body: job() });
      expect(r.status).toBeLessThan(500);
    }
  });
});
