// POST /portals/{id}/check against a real sshd: the fingerprint a person pins is the server's.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startSshd, type TestSshd } from "../../testing/sshd.ts";
import { uniqueId } from "../../testing/services.ts";
import type { PortalView } from "./schemas.ts";
import { apiFixture, type ApiFixture } from "../test_support.ts";

interface Check {
  reachable: boolean;
  hostKeyFingerprint: string | null;
  fingerprintMatches: boolean | null;
  freeBytes: number | null;
  error: { code: string; message: string } | null;
}

let f: ApiFixture;
let sshd: TestSshd;
beforeAll(async () => {
  [f, sshd] = await Promise.all([apiFixture(), startSshd()]);
});
afterAll(async () => {
  await f.close();
  await sshd.stop();
});

const sftp = (extra: Record<string, unknown> = {}) => ({
  kind: "sftp", name: `ssh_${uniqueId()}`, rootPath: sshd.root, host: sshd.host, port: sshd.port, username: sshd.username,
  auth: { method: "key", privateKey: sshd.privateKey }, ...extra,
});

describe("portal check against a real sshd", () => {
  test("unpinned: reachable, reports the server's fingerprint and free space; after pinning it matches", async () => {
    const p = (await f.call<PortalView>("POST", "/portals", { body: sftp() })).json;
    const first = await f.call<Check>("POST", `/portals/${p.id}/check`);
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({ reachable: true, hostKeyFingerprint: sshd.hostKeyFingerprint, fingerprintMatches: null, error: null });
    expect(first.json.freeBytes).toBeGreaterThan(0);
    const pinned = await f.call<PortalView>("PATCH", `/portals/${p.id}`, { body: { hostKeyFingerprint: first.json.hostKeyFingerprint } });
    expect(pinned.json.hostKeyFingerprint).toBe(sshd.hostKeyFingerprint);
    expect((await f.call<Check>("POST", `/portals/${p.id}/check`)).json).toMatchObject({ reachable: true, fingerprintMatches: true });
  }, 60_000);

  test("a wrong pin and a wrong password are reported in the body, without the secret", async () => {
    const wrongPin = (await f.call<PortalView>("POST", "/portals", { body: sftp({ hostKeyFingerprint: `SHA256:${"A".repeat(43)}` }) })).json;
    const c1 = await f.call<Check>("POST", `/portals/${wrongPin.id}/check`);
    expect(c1.json).toMatchObject({ fingerprintMatches: false, hostKeyFingerprint: sshd.hostKeyFingerprint, error: { code: "HOST_KEY_MISMATCH" } });
    const password = `wrong-${uniqueId()}`;
    const badAuth = (await f.call<PortalView>("POST", "/portals", { body: sftp({ auth: { method: "password", password } }) })).json;
    const c2 = await f.call<Check>("POST", `/portals/${badAuth.id}/check`);
    expect(c2.status).toBe(200);
    expect(c2.json.error?.code).toBe("AUTH_FAILED");
    expect(JSON.stringify(c2.json)).not.toContain(password);
  }, 60_000);
});
