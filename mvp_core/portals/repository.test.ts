import { afterAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { testSql, uniqueId } from "../testing/services.ts";
import { createPortal, decryptPortalSecret, deletePortal, getPortal, listPortals, PortalError, updatePortal } from "./repository.ts";
import type { Sql } from "postgres";

const key = randomBytes(32);
let sqlP: Promise<Sql> | undefined;
const db = () => (sqlP ??= testSql(2));
const created: string[] = [];
afterAll(async () => {
  const sql = await db();
  await sql`delete from jobs where source_portal_id = any(${created}) or target_portal_id = any(${created})`;
  await sql`delete from portals where id = any(${created})`;
});

async function local(name = `p_${uniqueId()}`) {
  const p = await createPortal(await db(), { name, kind: "local", rootPath: "/tmp", site: "lab" }, key);
  created.push(p.id);
  return p;
}

describe("portal repository", () => {
  test("sftp portal: secret sealed at rest, readable only through decryptPortalSecret", async () => {
    const sql = await db();
    const p = await createPortal(sql, {
      name: `s_${uniqueId()}`, kind: "sftp", rootPath: "/srv/in", host: "127.0.0.1", port: 22, username: "ketter",
      auth: { method: "password", password: "pw-never-shown-123" },
    }, key);
    created.push(p.id);
    expect(p.auth_method).toBe("password");
    expect(Buffer.from(p.secret_encrypted!).includes(Buffer.from("pw-never-shown"))).toBe(false);
    expect(decryptPortalSecret((await getPortal(sql, p.id))!, key)).toEqual({ password: "pw-never-shown-123" });
    const u = await updatePortal(sql, p.id, { auth: { method: "key", privateKey: "KEYDATA", passphrase: "pp" } }, key);
    expect(u.auth_method).toBe("key");
    expect(decryptPortalSecret(u, key)).toEqual({ privateKey: "KEYDATA", passphrase: "pp" });
  });

  test("names are unique among live portals; delete frees the name and hides the portal", async () => {
    const sql = await db();
    const p = await local();
    await expect(local(p.name)).rejects.toMatchObject({ code: "NAME_TAKEN" });
    await deletePortal(sql, p.id);
    expect(await getPortal(sql, p.id)).toBeNull();
    expect((await listPortals(sql)).some((x) => x.id === p.id)).toBe(false);
    const again = await local(p.name);
    expect(again.id).not.toBe(p.id);
    await expect(deletePortal(sql, p.id)).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  test("delete and moving the root are refused while an active job uses the portal", async () => {
    const sql = await db();
    const a = await local();
    const b = await local();
    const [job] = await sql<{ id: string }[]>`
      insert into jobs (type, source_portal_id, source_path, target_portal_id, target_path) values ('copy', ${a.id}, 'x', ${b.id}, 'y') returning id`;
    await expect(deletePortal(sql, b.id)).rejects.toMatchObject({ code: "IN_USE" });
    await expect(updatePortal(sql, a.id, { rootPath: "/var" }, key)).rejects.toBeInstanceOf(PortalError);
    expect((await updatePortal(sql, a.id, { name: `${a.name}_r` }, key)).name).toBe(`${a.name}_r`);
    await sql`update jobs set status = 'DONE', finished_at = now() where id = ${job!.id}`;
    await deletePortal(sql, b.id);
    expect(await getPortal(sql, b.id)).toBeNull();
  });

  test("a local portal refuses remote fields", async () => {
    const p = await local();
    await expect(updatePortal(await db(), p.id, { host: "x" }, key)).rejects.toMatchObject({ code: "INVALID" });
  });
});
