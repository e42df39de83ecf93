// Swagger UI works offline: every asset comes from the app, and "Try it out" creates a real job
// in headless Chromium (Debian's chromium through playwright-core).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";
import type { PortalView } from "../portals/schemas.ts";
import { apiFixture, type ApiFixture } from "../test_support.ts";
import { uniqueId } from "../../testing/services.ts";

const TOKEN = "swagger-test-token-0123456789";
let f: ApiFixture;
let base: string;

beforeAll(async () => {
  f = await apiFixture({ apiToken: TOKEN });
  f.app.listen({ hostname: "127.0.0.1", port: 0 });
  base = `http://127.0.0.1:${f.app.server!.port}`;
});
afterAll(async () => {
  await f.app.stop();
  await f.close();
});

interface OpenApiDoc {
  paths: Record<string, Record<string, {
    operationId: string;
    security?: unknown[];
    requestBody?: { content: Record<string, { schema: { examples?: unknown[] } }> };
    responses: Record<string, { description: string; content?: Record<string, { schema: { examples?: unknown[] } }> }>;
    parameters?: { name: string; in: string }[];
  }>>;
  components: { securitySchemes: Record<string, unknown> };
}

describe("Swagger UI", () => {
  test("the OpenAPI document lists every route with schemas and examples", async () => {
    const doc = (await (await fetch(`${base}/swagger/json`)).json()) as OpenApiDoc;
    const ops = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([m, op]) => ({ key: `${m.toUpperCase()} ${path}`, op })));
    expect(ops.map((o) => o.key).sort()).toEqual([
      "DELETE /portals/{id}", "DELETE /sites/{name}", "GET /health", "GET /jobs", "GET /jobs/{id}", "GET /jobs/{id}/events", "GET /jobs/{id}/files", "GET /metrics", "GET /portals", "GET /portals/{id}",
      "GET /sites", "PATCH /portals/{id}", "POST /jobs", "POST /jobs/{id}/cancel", "POST /jobs/{id}/retry", "POST /portals", "POST /portals/{id}/check",
    ]);
    for (const { key, op } of ops) {
      const ok = Object.keys(op.responses).filter((s) => s.startsWith("2"));
      expect(ok.length, key).toBeGreaterThan(0);
      // Every success with a body carries an example; every error is the one Error body, described.
      for (const status of ok.filter((s) => s !== "204")) {
        const content = op.responses[status]!.content ?? {};
        expect(Object.keys(content), `${key} ${status}`).toEqual([key === "GET /metrics" ? "text/plain" : "application/json"]);
        expect(Object.values(content)[0]!.schema.examples?.length, `${key} ${status}`).toBe(1);
      }
      if (key !== "GET /health" && key !== "GET /metrics") expect(Object.keys(op.responses), key).toContain("401");
      for (const [status, r] of Object.entries(op.responses).filter(([s]) => s >= "400")) expect(r.description, `${key} ${status}`).not.toMatch(/^Response for status/);
      // Only JSON bodies are advertised (a form body would answer 415), each with an example.
      if (op.requestBody) {
        expect(Object.keys(op.requestBody.content), key).toEqual(["application/json"]);
        expect(op.requestBody.content["application/json"]!.schema.examples?.length, key).toBeGreaterThan(0);
      }
    }
    expect(doc.paths["/health"]!.get!.security).toEqual([]);
    expect(doc.paths["/metrics"]!.get!.security).toEqual([]);
    const createJob = doc.paths["/jobs"]!.post!;
    expect(createJob.parameters!.map((p) => `${p.in}:${p.name}`)).toContain("header:idempotency-key");
    expect(Object.keys(createJob.responses).sort()).toEqual(["201", "400", "401", "409", "413", "415", "422"]);
    // zod's own JSON Schema keeps the query parameters whose parsing transforms them.
    expect(doc.paths["/jobs"]!.get!.parameters!.map((p) => p.name).sort()).toEqual(["cursor", "limit", "portal", "status"]);
    expect(doc.paths["/jobs/{id}/events"]!.get!.parameters!.map((p) => `${p.in}:${p.name}`).sort()).toEqual(["path:id", "query:after", "query:limit"]);
    expect(doc.components.securitySchemes.bearer).toBeDefined();
  });

  test("assets are served by the app itself", async () => {
    const page = await (await fetch(`${base}/swagger`)).text();
    const srcs = [...page.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(srcs.length).toBeGreaterThan(0);
    for (const s of srcs) {
      expect(s.startsWith("/swagger/")).toBe(true);
      expect((await fetch(base + s)).status).toBe(200);
    }
  });

  test("headless Chromium: Authorize, then Try it out on POST /jobs creates a job (no network beyond the app)", async () => {
    const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
    const portal = async () =>
      (await (await fetch(`${base}/portals`, { method: "POST", headers: auth, body: JSON.stringify({ kind: "local", name: `ui_${uniqueId()}`, rootPath: await f.tempDir() }) })).json()) as PortalView;
    const [a, b] = [await portal(), await portal()];
    const sourcePath = `ui_shoot_${uniqueId()}`;

    const profile = await mkdtemp(join(tmpdir(), "ketter-chromium-"));
    let browser: BrowserContext | undefined;
    const foreign: string[] = [];
    try {
      // A fresh profile; the flags keep Chromium from reaching for the (closed) network on its own.
      browser = await chromium.launchPersistentContext(profile, {
        executablePath: "/usr/bin/chromium",
        headless: true,
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      });
      const page = await browser.newPage();
      // Anything not served by the app would need the (closed) network: record it and refuse it.
      await page.route("**/*", (route) => {
        const url = route.request().url();
        if (url.startsWith(base) || url.startsWith("data:")) return route.continue();
        foreign.push(url);
        return route.abort();
      });
      await page.goto(`${base}/swagger`);
      await page.locator("#operations-jobs-createJob").waitFor({ timeout: 20_000 });

      await page.locator("button.authorize").first().click();
      await page.locator(".auth-container input").first().fill(TOKEN);
      await page.locator(".auth-btn-wrapper button.authorize").click();
      await page.locator(".auth-btn-wrapper button.btn-done").click();

      const op = page.locator("#operations-jobs-createJob");
      await op.locator(".opblock-summary").click();
      await op.locator("button.try-out__btn").click();
      // "Try it out" starts from the documented example, which creates the target's parents.
      const prefilled = JSON.parse(await op.locator("textarea.body-param__text").inputValue()) as { options?: { createParents?: boolean } };
      expect(prefilled.options?.createParents).toBe(true);
      const body = { type: "copy", source: { portal: a.id, path: sourcePath }, target: { portal: b.id, path: "incoming/shoot" }, options: { verify: "size" } };
      await op.locator("textarea.body-param__text").fill(JSON.stringify(body, null, 2));
      await op.locator("button.execute").click();
      await op.locator(".live-responses-table tr.response .response-col_status").first().waitFor({ timeout: 20_000 });
      const status = (await op.locator(".live-responses-table tr.response .response-col_status").first().innerText()).trim();
      expect(status).toBe("201");
    } finally {
      await browser?.close();
      await rm(profile, { recursive: true, force: true });
    }
    expect(foreign).toEqual([]);
    const rows = await f.sql<{ status: string; target_path: string }[]>`select status, target_path from jobs where source_path = ${sourcePath}`;
    expect([...rows]).toEqual([{ status: "QUEUED", target_path: "incoming/shoot" }]);
  }, 90_000);
});
