import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { connectDb, type Sql } from "../db/client.ts";
import { migrateUp } from "../db/migrate.ts";
import { createPortal } from "../portals/repository.ts";
import { freePort } from "../testing/ports.ts";
import { createEmptyDatabase } from "../testing/services.ts";
import { startSshd, type TestSshd } from "../testing/sshd.ts";
import { runCheck } from "./check.ts";
import { judgePortal, portalChecks } from "./portals.ts";

// Real servers start on demand; bun 1.4.5 ignores bunfig's [test] timeout.
setDefaultTimeout(60_000);

const key = randomBytes(32);
const OTHER_FINGERPRINT = `SHA256:${"A".repeat(43)}`;
let full: TestSshd;
let sftpOnly: TestSshd;
let url: string;
let sql: Sql;

beforeAll(async () => {
  [full, sftpOnly] = await Promise.all([startSshd(), startSshd({ sftpOnly: true })]);
  url = await createEmptyDatabase();
  await migrateUp(url);
  sql = connectDb(url, { max: 2 });
});
afterAll(async () => {
  await sql?.end();
  await Promise.all([full?.stop(), sftpOnly?.stop()]);
});

function sftp(name: string, s: TestSshd, fingerprint: string | null, port = s.port) {
  return createPortal(sql, {
    name, kind: "sftp", rootPath: s.root, host: s.host, port, username: s.username,
    auth: { method: "key", privateKey: s.privateKey }, hostKeyFingerprint: fingerprint,
  }, key);
}

describe("portal checks", () => {
  test("none configured: one ok row", async () => {
    const checks = await portalChecks(url, key);
    expect(await Promise.all(checks.map((c) => runCheck(c)))).toMatchObject([{ name: "portals", status: "ok", value: "no SFTP portals configured" }]);
  });

  test("each SFTP portal: pinned and tooled ok, mismatched/unpinned/unreachable fail, SFTP-only warns", async () => {
    await createPortal(sql, { name: "local-one", kind: "local", rootPath: "/tmp", site: "lab" }, key);
    await sftp("good", full, full.hostKeyFingerprint);
    await sftp("moved-key", full, OTHER_FINGERPRINT);
    await sftp("unpinned", full, null);
    await sftp("gone", full, full.hostKeyFingerprint, await freePort());
    await sftp("no-shell", sftpOnly, sftpOnly.hostKeyFingerprint);
    const results = await Promise.all((await portalChecks(url, key)).map((c) => runCheck(c)));
    const by = Object.fromEntries(results.map((r) => [r.name, r]));
    expect(Object.keys(by).sort()).toEqual(["portal.gone", "portal.good", "portal.moved-key", "portal.no-shell", "portal.unpinned"]);

    // Plain checks first: bun's toMatchObject writes its asymmetric matchers into the received object.
    expect(by["portal.good"]?.value).toContain("host key matches");
    expect(by["portal.good"]?.value).toContain("tools: sh unzip zip crc32 xxh3 xxh128 xxh64");
    expect(by["portal.good"]?.status).toBe("ok");

    expect(by["portal.moved-key"]?.value).toContain(`pinned ${OTHER_FINGERPRINT}`);
    expect(by["portal.moved-key"]).toMatchObject({ status: "fail", hint: expect.stringContaining(full.hostKeyFingerprint) });

    expect(by["portal.unpinned"]).toMatchObject({ status: "fail", value: expect.stringContaining("no pinned host key"), hint: expect.stringContaining("hostKeyFingerprint") });
    expect(by["portal.gone"]).toMatchObject({ status: "fail", value: expect.stringContaining("unreachable"), hint: expect.stringContaining("ssh -p") });
    expect(by["portal.no-shell"]).toMatchObject({ status: "warn", value: expect.stringContaining("none (SFTP only)"), hint: expect.stringContaining("zip strategy") });
  });

  test("a server without xxhsum: warn, saying what to install", () => {
    const p = { id: "p1", name: "old", host: "srvtrf", port: 22, username: "ketter", root_path: "/srv" };
    const check = { reachable: true, hostKeyFingerprint: OTHER_FINGERPRINT, pinnedFingerprint: OTHER_FINGERPRINT, fingerprintMatches: true, freeBytes: null, totalBytes: null, error: null };
    const without = judgePortal(p, { ...check, tools: { shell: true, unzip: true, zip: true, hashes: ["crc32", "sha1", "sha256", "md5"] } });
    expect(without).toMatchObject({ status: "warn", hint: expect.stringContaining("apt-get install xxhash") });
    expect(judgePortal(p, { ...check, tools: { shell: true, unzip: true, zip: true, hashes: ["xxh3", "xxh64", "xxh128", "crc32"] } }).status).toBe("ok");
  });

  test("a secret sealed with another key: fail, pointing at KETTER_SECRET_KEY", async () => {
    const results = await Promise.all((await portalChecks(url, randomBytes(32))).map((c) => runCheck(c)));
    const good = results.find((r) => r.name === "portal.good");
    expect(good).toMatchObject({ status: "fail", hint: expect.stringContaining("KETTER_SECRET_KEY") });
  });

  test("Postgres unreachable: one failing portals row", async () => {
    const results = await Promise.all((await portalChecks(`postgres://ketter@127.0.0.1:${await freePort()}/x`, key)).map((c) => runCheck(c)));
    expect(results).toMatchObject([{ name: "portals", status: "fail", value: expect.stringContaining("cannot list portals"), hint: expect.stringContaining("postgres") }]);
  });
});
