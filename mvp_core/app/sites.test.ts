// Sites through the API: a local portal's default site, sftp restrictions, the 422 for a job across
// two sites, what a waiting job waits for, /health and /sites per site, and retiring a site. The
// default-site rule depends on every site ever seen, so this file owns its database.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { connectDb, type Sql } from "../db/client.ts";
import { migrateUp } from "../db/migrate.ts";
import { registerSite } from "../sites/repository.ts";
import { createEmptyDatabase } from "../testing/services.ts";
import type { HealthView } from "./health/module.ts";
import type { JobView } from "./jobs/schemas.ts";
import type { PortalView } from "./portals/schemas.ts";
import type { SitesView } from "./sites/schemas.ts";
import { apiFixture, type ApiFixture } from "./test_support.ts";

let sql: Sql;
let f: ApiFixture;
const KEY = "ab".repeat(32);

beforeAll(async () => {
  const url = await createEmptyDatabase();
  await migrateUp(url);
  sql = connectDb(url, { max: 4 });
  f = await apiFixture({ sql, site: "api-site" });
}, 60_000);

afterAll(async () => {
  await f.close();
  await sql.end();
});

beforeEach(async () => {
  await sql`delete from jobs`;
  await sql`delete from portals`;
  await sql`delete from sites`;
});

async function local(site?: string): Promise<PortalView> {
  const r = await f.call<PortalView>("POST", "/portals", { body: { kind: "local", name: `l-${crypto.randomUUID().slice(0, 8)}`, rootPath: await f.tempDir(), ...(site ? { site } : {}) } });
  expect(r.status).toBe(201);
  return r.json;
}

async function sftp(allowedSites?: string[]): Promise<PortalView> {
  const body = {
    kind: "sftp", name: `s-${crypto.randomUUID().slice(0, 8)}`, rootPath: "/srv/in", host: "srvtrf.test", username: "ketter",
    auth: { method: "password", password: KEY }, ...(allowedSites ? { allowedSites } : {}),
  };
  const r = await f.call<PortalView>("POST", "/portals", { body });
  expect(r.status).toBe(201);
  return r.json;
}

const copy = (a: PortalView, b: PortalView) => ({ type: "copy", source: { portal: a.id, path: "shoot" }, target: { portal: b.id, path: "shoot" } });

describe("sites through the API", () => {
  test("a local portal's site: the API's own while no site is known, then the only one seen, then required", async () => {
    expect((await local()).site).toBe("api-site");
    await registerSite(sql, "lab-1");
    expect((await local()).site).toBe("lab-1");
    expect((await local("srvtrf")).site).toBe("srvtrf");
    await registerSite(sql, "srvtrf");
    const r = await f.call("POST", "/portals", { body: { kind: "local", name: "ambiguous", rootPath: "/data" } });
    expect(r.status).toBe(422);
    expect(r.json.error).toMatchObject({ code: "SITE_REQUIRED", details: { known: ["lab-1", "srvtrf"] } });
    const bad = await f.call("POST", "/portals", { body: { kind: "local", name: "bad-site", rootPath: "/data", site: "no spaces" } });
    expect([bad.status, bad.json.error?.code]).toEqual([422, "VALIDATION_FAILED"]);
    expect(bad.json.error?.message).toContain("body.site");
  });

  test("portal warnings: a missing root at the API's own site is ROOT_NOT_FOUND; another site's folder is on another machine, so none", async () => {
    const missing = `${await f.tempDir()}/not-here`;
    const post = (site: string) => f.call<{ id: string; site: string; warnings: { code: string }[] }>("POST", "/portals", { body: { kind: "local", name: `w-${crypto.randomUUID().slice(0, 8)}`, rootPath: missing, site } });
    const here = await post("api-site");
    expect([here.status, here.json.site, here.json.warnings.map((w) => w.code)]).toEqual([201, "api-site", ["ROOT_NOT_FOUND"]]);
    const there = await post("srvtrf");
    expect([there.status, there.json.site, there.json.warnings]).toEqual([201, "srvtrf", []]);
    // Moved to another site (its disk moved there), the folder is no longer the API's to look at.
    const moved = await f.call<{ site: string; warnings: { code: string }[] }>("PATCH", `/portals/${here.json.id}`, { body: { site: "srvtrf" } });
    expect([moved.status, moved.json.warnings]).toEqual([200, []]);
  });

  test("a local → local job across two sites is refused with 422 saying to use an sftp portal; same site, or via sftp, is accepted", async () => {
    const [lab, lab2, srv] = [await local("lab-1"), await local("lab-1"), await local("srvtrf")];
    const refused = await f.call("POST", "/jobs", { body: copy(lab, srv) });
    expect(refused.status).toBe(422);
    expect(refused.json.error?.code).toBe("CROSS_SITE");
    expect(refused.json.error?.message).toMatch(/site lab-1.*site srvtrf.*sftp portal/s);
    expect(await sql`select id from jobs`).toHaveLength(0);

    const same = await f.call<JobView>("POST", "/jobs", { body: copy(lab, lab2) });
    expect([same.status, same.json.site]).toEqual([201, "lab-1"]);
    const viaSftp = await f.call<JobView>("POST", "/jobs", { body: copy(lab, await sftp()) });
    expect([viaSftp.status, viaSftp.json.site]).toEqual([201, "lab-1"]);
    const anywhere = await f.call<JobView>("POST", "/jobs", { body: copy(await sftp(), await sftp()) });
    expect([anywhere.status, anywhere.json.site]).toEqual([201, null]);
    const restricted = await f.call("POST", "/jobs", { body: copy(lab, await sftp(["srvtrf"])) });
    expect([restricted.status, restricted.json.error?.code]).toEqual([422, "SITE_NOT_ALLOWED"]);
    // Each accepted job waits on its own site's list.
    expect(await f.redis.lrange(f.queue.pendingKey("lab-1"), 0, -1)).toEqual([viaSftp.json.id, same.json.id]);
    expect(await f.redis.lrange(f.queue.pendingKey(null), 0, -1)).toEqual([anywhere.json.id]);
  });

  test("a waiting job says whether its site has a live worker; /health and /sites show each site's workers and queue", async () => {
    const [a, b] = [await local("quiet-site"), await local("quiet-site")];
    const job = (await f.call<JobView>("POST", "/jobs", { body: copy(a, b) })).json;
    expect(job.waitingFor).toContain("no live worker for site quiet-site");
    expect(job.waitingFor).toContain("KETTER_SITE=quiet-site");

    await f.queue.heartbeat({ id: "quiet-1", site: "quiet-site", host: "h", pid: 1, startedAt: new Date().toISOString(), running: 0, concurrency: 4 }, 10_000);
    await registerSite(sql, "quiet-site");
    // Liveness is read at most every half second per app.
    let seen = "";
    for (let i = 0; i < 40 && !seen.includes("free slot"); i++) {
      await Bun.sleep(50);
      seen = (await f.call<JobView>("GET", `/jobs/${job.id}`)).json.waitingFor ?? "";
    }
    expect(seen).toBe("a free slot on the 1 live worker(s) of site quiet-site");

    const h = (await f.call<HealthView>("GET", "/health")).json;
    expect(h.sites.find((s) => s.name === "quiet-site")).toMatchObject({ live: 1, workers: [{ id: "quiet-1", concurrency: 4 }], queue: { pending: 1, processing: 0, delayed: 0 } });
    const sites = (await f.call<SitesView>("GET", "/sites")).json;
    const quiet = sites.sites.find((s) => s.name === "quiet-site")!;
    expect(quiet.firstSeenAt).not.toBeNull();
    expect(quiet.queue.pending).toBe(1);
    await f.queue.removeWorker("quiet-1");
  });

  test("retiring a site: refused while a worker beats, a portal is there or a job must run there; then forgotten", async () => {
    await registerSite(sql, "old-site");
    const p = await local("old-site");
    const job = (await f.call<JobView>("POST", "/jobs", { body: { ...copy(p, p), target: { portal: p.id, path: "other" } } })).json;
    await f.queue.heartbeat({ id: "old-1", site: "old-site", host: "h", pid: 1, startedAt: new Date().toISOString(), running: 0, concurrency: 1 }, 10_000);
    const live = await f.call("DELETE", "/sites/old-site");
    expect([live.status, live.json.error?.code]).toEqual([409, "SITE_IN_USE"]);
    expect(live.json.error?.message).toContain("live worker");
    await f.queue.removeWorker("old-1");
    const busy = await f.call("DELETE", "/sites/old-site");
    expect([busy.status, busy.json.error?.code]).toEqual([409, "SITE_IN_USE"]);
    expect(busy.json.error?.message).toContain("1 unfinished job");
    await f.call("POST", `/jobs/${job.id}/cancel`);
    expect((await f.call("DELETE", `/portals/${p.id}`)).status).toBe(204);
    const allowing = await sftp(["srvtrf", "old-site"]);
    expect((await f.call("DELETE", "/sites/old-site")).status).toBe(409);
    expect((await f.call("PATCH", `/portals/${allowing.id}`, { body: { allowedSites: ["srvtrf"] } })).status).toBe(200);
    // The cancelled job's entry still sits in the site's list; retiring drops it.
    expect(await f.redis.llen(f.queue.pendingKey("old-site"))).toBe(1);
    expect((await f.call("DELETE", "/sites/old-site")).status).toBe(204);
    expect(await f.redis.exists(f.queue.pendingKey("old-site"))).toBe(0);
    expect((await f.call<SitesView>("GET", "/sites")).json.sites.map((s) => s.name)).not.toContain("old-site");
    expect((await f.call("DELETE", "/sites/old-site")).status).toBe(404);
  });
});
