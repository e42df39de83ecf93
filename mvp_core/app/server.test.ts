// The same app through a real listening server (Bun.serve), as clients and Swagger UI reach it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect } from "node:net";
import type { JobView } from "./jobs/schemas.ts";
import type { PortalView } from "./portals/schemas.ts";
import { MAX_BODY_BYTES, SERVER_MAX_BODY_BYTES } from "./http.ts";
import { apiFixture, type ApiFixture } from "./test_support.ts";
import { uniqueId } from "../testing/services.ts";

const TOKEN = "server-test-token-0123456789";
let f: ApiFixture;
let base: string;

beforeAll(async () => {
  f = await apiFixture({ apiToken: TOKEN });
  f.app.listen({ hostname: "127.0.0.1", port: 0, maxRequestBodySize: SERVER_MAX_BODY_BYTES });
  base = `http://127.0.0.1:${f.app.server!.port}`;
});
afterAll(async () => {
  await f.app.stop();
  await f.close();
});

const headers = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
const post = (path: string, body: unknown, extra: Record<string, string> = {}) => fetch(base + path, { method: "POST", headers: { ...headers, ...extra }, body: JSON.stringify(body) });

describe("API through a listening server", () => {
  test("create portals and an idempotent job over HTTP", async () => {
    const portal = async () => (await (await post("/portals", { kind: "local", name: `srv_${uniqueId()}`, rootPath: await f.tempDir() })).json()) as PortalView;
    const [a, b] = [await portal(), await portal()];
    const body = { type: "copy", source: { portal: a.id, path: "shoot" }, target: { portal: b.id, path: "shoot" } };
    const key = { "idempotency-key": `srv-${uniqueId()}` };
    const first = await post("/jobs", body, key);
    const again = await post("/jobs", body, key);
    expect([first.status, again.status]).toEqual([201, 201]);
    const [j1, j2] = [(await first.json()) as JobView, (await again.json()) as JobView];
    expect(j2.id).toBe(j1.id);
    expect(first.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const got = await fetch(`${base}/jobs/${j1.id}`, { headers });
    expect(((await got.json()) as JobView).status).toBe("QUEUED");
  });

  test("a chunked body over the limit is refused with 413 JSON; no token is 401; /health is public", async () => {
    const big = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode(`{"pad":"${"x".repeat(MAX_BODY_BYTES + 10)}"}`));
        c.close();
      },
    });
    const r = await fetch(`${base}/jobs`, { method: "POST", headers, body: big });
    expect(r.status).toBe(413);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe("BODY_TOO_LARGE");
    const declared = await fetch(`${base}/jobs`, { method: "POST", headers, body: JSON.stringify({ pad: "x".repeat(300_000) }) });
    expect(declared.status).toBe(413);
    expect(((await declared.json()) as { error: { code: string } }).error.code).toBe("BODY_TOO_LARGE");
    expect((await fetch(`${base}/jobs`)).status).toBe(401);
    expect((await fetch(`${base}/health`)).status).toBe(200);
  });

  test("bodies over a mebibyte, declared or chunked, get the JSON 413 naming the limit, not Bun's bare one", async () => {
    const size = 3 * 1024 * 1024;
    const declared = await fetch(`${base}/jobs`, { method: "POST", headers, body: JSON.stringify({ pad: "x".repeat(size) }) });
    expect(declared.status).toBe(413);
    expect(declared.headers.get("content-type")).toContain("application/json");
    expect((await declared.json()) as object).toMatchObject({ error: { code: "BODY_TOO_LARGE", message: expect.stringContaining(`the limit is ${MAX_BODY_BYTES} bytes`), details: { limit: MAX_BODY_BYTES } } });
    const chunked = new ReadableStream({
      start(c) {
        for (let sent = 0; sent < size; sent += 65_536) c.enqueue(new Uint8Array(65_536).fill(0x20));
        c.close();
      },
    });
    const streamed = await fetch(`${base}/portals`, { method: "POST", headers, body: chunked });
    expect(streamed.status).toBe(413);
    expect((await streamed.json()) as object).toMatchObject({ error: { code: "BODY_TOO_LARGE", details: { limit: MAX_BODY_BYTES } } });
  });

  test("a method the path does not serve gets a JSON 405 with Allow, also for methods fetch cannot send", async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(new URL(base).port), "127.0.0.1", () => socket.write(`PURGE /jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`));
      let out = "";
      socket.on("data", (d) => (out += d.toString()));
      socket.on("end", () => resolve(out));
      socket.on("error", reject);
    });
    const [head, body] = answer.split("\r\n\r\n");
    expect(head).toStartWith("HTTP/1.1 405");
    expect(head!.toLowerCase()).toContain("allow: get, head, post");
    expect(JSON.parse(body!)).toMatchObject({ error: { code: "METHOD_NOT_ALLOWED" } });
  });
});
