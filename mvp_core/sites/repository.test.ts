import { afterAll, beforeEach, describe, expect, test } from "bun:test";
import { connectDb, type Sql } from "../db/client.ts";
import { migrateUp } from "../db/migrate.ts";
import { createJob } from "../jobs/repository.ts";
import { createEmptyDatabase } from "../testing/services.ts";
import { defaultPortalSite, forgetSite, listSites, registerSite, SiteError } from "./repository.ts";

// The rules depend on every site ever seen, so these tests own a database instead of sharing the run's.
let sqlP: Promise<Sql> | undefined;
const db = () =>
  (sqlP ??= createEmptyDatabase().then(async (url) => {
    await migrateUp(url);
    return connectDb(url, { max: 4 });
  }));

afterAll(async () => {
  await (await db()).end();
});

beforeEach(async () => {
  const sql = await db();
  await sql`delete from jobs`;
  await sql`delete from portals`;
  await sql`delete from sites`;
});

/** A local portal from before migration 0005 (no site), as an upgraded installation has them. */
async function unsitedPortal(sql: Sql, name: string): Promise<string> {
  const [row] = await sql<{ id: string }[]>`insert into portals (name, kind, root_path) values (${name}, 'local', ${`/data/${name}`}) returning id`;
  return row!.id;
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(() => undefined, (e: unknown) => (e as { code?: string }).code);
}

describe("sites repository", () => {
  test("the first worker of the only site ever seen adopts portals and queued jobs from before sites existed", async () => {
    const sql = await db();
    const a = await unsitedPortal(sql, "old-in");
    const b = await unsitedPortal(sql, "old-out");
    const [job] = await sql<{ id: string }[]>`insert into jobs (type, source_portal_id, source_path, target_portal_id, target_path) values ('copy', ${a}, 'x', ${b}, 'x') returning id`;
    expect(await registerSite(sql, "lab-1")).toEqual({ site: "lab-1", portals: 2, jobs: 1 });
    expect((await sql`select site from portals order by name`).map((r) => r.site)).toEqual(["lab-1", "lab-1"]);
    expect((await sql`select site from jobs where id = ${job!.id}`)[0]!.site).toBe("lab-1");
    // Starting again changes nothing but the last-seen time.
    const before = (await listSites(sql))[0]!;
    expect(await registerSite(sql, "lab-1")).toEqual({ site: "lab-1", portals: 0, jobs: 0 });
    const after = (await listSites(sql))[0]!;
    expect(after.first_seen_at).toEqual(before.first_seen_at);
    expect(after.last_seen_at.getTime()).toBeGreaterThanOrEqual(before.last_seen_at.getTime());
  });

  test("with two sites seen nothing is adopted: an unsited portal must be given its site explicitly", async () => {
    const sql = await db();
    await registerSite(sql, "lab-1");
    const old = await unsitedPortal(sql, "old");
    expect(await registerSite(sql, "srvtrf")).toEqual({ site: null, portals: 0, jobs: 0 });
    expect((await sql`select site from portals where id = ${old}`)[0]!.site).toBeNull();
    const job = { type: "copy" as const, sourcePortalId: old, sourcePath: "a", targetPortalId: old, targetPath: "b", options: {}, maxAttempts: 3 };
    expect(await codeOf(createJob(sql, job))).toBe("PORTAL_SITE_UNKNOWN");
  });

  test("a job on an unsited portal adopts it when only one site was ever seen", async () => {
    const sql = await db();
    await registerSite(sql, "lab-1");
    const old = await unsitedPortal(sql, "old");
    const { job } = await createJob(sql, { type: "copy", sourcePortalId: old, sourcePath: "a", targetPortalId: old, targetPath: "b", options: {}, maxAttempts: 3 });
    expect(job.site).toBe("lab-1");
    expect((await sql`select site from portals where id = ${old}`)[0]!.site).toBe("lab-1");
  });

  test("a new local portal's default site: the API's own while none is known, the only one seen, else required", async () => {
    const sql = await db();
    expect(await defaultPortalSite(sql, "api-host")).toBe("api-host");
    await registerSite(sql, "lab-1");
    expect(await defaultPortalSite(sql, "api-host")).toBe("lab-1");
    await registerSite(sql, "srvtrf");
    const err = await defaultPortalSite(sql, "api-host").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SiteError);
    expect(err).toMatchObject({ code: "SITE_REQUIRED", details: { known: ["lab-1", "srvtrf"] } });
    expect((err as Error).message).toContain('"site": "lab-1"');
  });

  test("a site is forgotten only once no live portal is at it and no unfinished job must run there", async () => {
    const sql = await db();
    await registerSite(sql, "old-site");
    const [p] = await sql<{ id: string }[]>`insert into portals (name, kind, root_path, site) values ('at-old', 'local', '/x', 'old-site') returning id`;
    const [j] = await sql<{ id: string }[]>`insert into jobs (type, source_portal_id, source_path, target_portal_id, target_path, site) values ('copy', ${p!.id}, 'a', ${p!.id}, 'b', 'old-site') returning id`;
    expect(await codeOf(forgetSite(sql, "old-site"))).toBe("IN_USE");
    await sql`update jobs set status = 'CANCELLED', finished_at = now() where id = ${j!.id}`;
    expect(await codeOf(forgetSite(sql, "old-site"))).toBe("IN_USE");
    await sql`update portals set deleted_at = now() where id = ${p!.id}`;
    await forgetSite(sql, "old-site");
    expect(await listSites(sql)).toEqual([]);
    expect(await codeOf(forgetSite(sql, "old-site"))).toBe("NOT_FOUND");
  });
});
