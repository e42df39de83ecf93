import { afterAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Sql } from "postgres";
import { testSql, uniqueId } from "../testing/services.ts";
import { checkPortal, openPortalEndpoint } from "./endpoints.ts";
import { createPortal } from "./repository.ts";

const key = randomBytes(32);
let sqlP: Promise<Sql> | undefined;
const db = () => (sqlP ??= testSql(2));
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe("openPortalEndpoint / checkPortal", () => {
  test("a local portal opens on its root and checks as reachable with free space", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ketter-portal-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, "a.txt"), "hello");
    const sql = await db();
    const p = await createPortal(sql, { name: `l_${uniqueId()}`, kind: "local", rootPath: dir, site: "lab" }, key);
    cleanups.push(() => sql`delete from portals where id = ${p.id}`);
    const ep = await openPortalEndpoint(p, key);
    expect((await ep.stat("a.txt"))?.size).toBe(5);
    await ep.close();
    const check = await checkPortal(p, key);
    expect(check.reachable).toBe(true);
    expect(check.freeBytes).toBeGreaterThan(0);
    const missing = await checkPortal({ ...p, root_path: join(dir, "nope") }, key);
    expect(missing).toMatchObject({ reachable: false, error: { code: "SOURCE_NOT_FOUND" } });
  });

  test("an sftp portal without a pinned host key is refused before connecting", async () => {
    const sql = await db();
    const p = await createPortal(sql, {
      name: `s_${uniqueId()}`, kind: "sftp", rootPath: "/srv", host: "127.0.0.1", port: 1, username: "u",
      auth: { method: "password", password: "secret-pw" },
    }, key);
    cleanups.push(() => sql`delete from portals where id = ${p.id}`);
    const err = await openPortalEndpoint(p, key).then(() => null, (e: unknown) => e as Error);
    expect(err?.message).toContain("no pinned host key");
    expect(err?.message).not.toContain("secret-pw");
  });
});
