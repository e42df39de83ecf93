import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmod, mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isTransferError, type TransferError } from "../../errors.ts";
import { startSshd, type TestSshd } from "../../../testing/sshd.ts";
import { connectSsh, probeSsh, type SshTarget } from "./index.ts";
import { parseProbeRoot } from "./remote_shell.ts";

/** Real sshd, real processes, a loaded 2-core machine: generous per-test limits (no timing is asserted). */
const TIMEOUT_MS = 120_000;

async function errorOf(p: Promise<unknown>): Promise<TransferError> {
  try {
    await p;
  } catch (err) {
    if (isTransferError(err)) return err;
    throw new Error(`not a TransferError: ${String(err)}`);
  }
  throw new Error("resolved, expected a failure");
}

/** A second key the server does not know. */
async function strangerKey(dir: string): Promise<string> {
  const path = join(dir, `stranger-${crypto.randomUUID()}`);
  const r = Bun.spawnSync(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path]);
  if (r.exitCode !== 0) throw new Error(r.stderr.toString());
  return Bun.file(path).text();
}

describe("connectSsh and probeSsh", () => {
  let s: TestSshd;
  let base: SshTarget;

  beforeAll(async () => {
    s = await startSshd();
    base = { host: s.host, port: s.port, username: s.username, root: s.root, auth: { method: "key", privateKey: s.privateKey }, hostKeyFingerprint: s.hostKeyFingerprint };
  }, TIMEOUT_MS);
  afterAll(async () => {
    await s.stop();
  }, TIMEOUT_MS);

  test("key and password authentication both connect; the label carries no secret", async () => {
    const a = await connectSsh(base);
    expect(a.label).toBe(`${s.username}@${s.host}:${s.port}:${s.root}`);
    expect(a.fingerprint).toBe(s.hostKeyFingerprint);
    await a.close();
    if (s.password === null) return; // password login needs the throw-away user (root only)
    const b = await connectSsh({ ...base, auth: { method: "password", password: s.password } });
    expect(b.label).not.toContain(s.password);
    expect((await b.capabilities()).unzip).toBe(true);
    await b.close();
  }, TIMEOUT_MS);

  test("a pinned fingerprint that does not match is refused, showing the key seen", async () => {
    const wrong = "SHA256:" + "A".repeat(43);
    const err = await errorOf(connectSsh({ ...base, hostKeyFingerprint: wrong }));
    expect(err.code).toBe("HOST_KEY_MISMATCH");
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(s.hostKeyFingerprint);
    expect(err.message).toContain(wrong);
  }, TIMEOUT_MS);

  test("without a fingerprint the connection is refused unless acceptAnyHostKey", async () => {
    const { hostKeyFingerprint: _, ...unpinned } = base;
    expect((await errorOf(connectSsh(unpinned))).code).toBe("INVALID_SPEC");
    const ep = await connectSsh({ ...unpinned, acceptAnyHostKey: true });
    await ep.close();
  }, TIMEOUT_MS);

  test("wrong password and wrong key are AUTH_FAILED without leaking the secret", async () => {
    if (s.password !== null) {
      const err = await errorOf(connectSsh({ ...base, auth: { method: "password", password: "not-the-password-42" } }));
      expect(err.code).toBe("AUTH_FAILED");
      expect(err.retryable).toBe(false);
      expect(JSON.stringify(err.toJSON())).not.toContain("not-the-password-42");
    }
    const key = await strangerKey(s.dir);
    const err = await errorOf(connectSsh({ ...base, auth: { method: "key", privateKey: key } }));
    expect(err.code).toBe("AUTH_FAILED");
    expect(JSON.stringify(err.toJSON())).not.toContain("PRIVATE KEY");
    const garbage = await errorOf(connectSsh({ ...base, auth: { method: "key", privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nnonsense\n" } }));
    expect(garbage.code).toBe("AUTH_FAILED");
    expect(garbage.message).not.toContain("nonsense");
  }, TIMEOUT_MS);

  test("unknown host and closed port are CONNECTION_FAILED with a message that says which", async () => {
    const unknown = await errorOf(connectSsh({ ...base, host: "no-such-host.invalid" }));
    expect(unknown.code).toBe("CONNECTION_FAILED");
    expect(unknown.message).toContain("unknown host");
    const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const closedPort = server.port;
    server.stop(true);
    const closed = await errorOf(connectSsh({ ...base, port: closedPort }));
    expect(closed.code).toBe("CONNECTION_FAILED");
    expect(closed.retryable).toBe(true);
    expect(closed.message).toContain("port closed");
  }, TIMEOUT_MS);

  test("bad input is INVALID_SPEC listing every problem", async () => {
    const err = await errorOf(connectSsh({ ...base, port: 0, root: "relative/path", hostKeyFingerprint: "md5:xx" }));
    expect(err.code).toBe("INVALID_SPEC");
    expect(err.message).toContain("port");
    expect(err.message).toContain("root");
    expect(err.message).toContain("hostKeyFingerprint");
  }, TIMEOUT_MS);

  test("a root that is missing, a file, or unreadable gets its own code", async () => {
    expect((await errorOf(connectSsh({ ...base, root: join(s.root, "missing") }))).code).toBe("SOURCE_NOT_FOUND");
    await writeFile(join(s.root, "a-file"), "x");
    expect((await errorOf(connectSsh({ ...base, root: join(s.root, "a-file") }))).code).toBe("NOT_A_DIRECTORY");
    if (s.password === null) return; // as the same user as the test, permissions cannot be taken away
    const locked = join(s.dir, "locked");
    await mkdir(locked);
    await chmod(locked, 0o700); // owned by root, the test user may not enter
    expect((await errorOf(connectSsh({ ...base, root: locked }))).code).toBe("PERMISSION_DENIED");
  }, TIMEOUT_MS);

  test("the shell's root check and SFTP's give the same codes (an SFTP-only host has only the latter)", async () => {
    const only = await startSshd({ sftpOnly: true });
    try {
      const sftpBase = { ...base, port: only.port, username: only.username, root: only.root, auth: { method: "key" as const, privateKey: only.privateKey }, hostKeyFingerprint: only.hostKeyFingerprint };
      await writeFile(join(only.root, "a-file"), "x");
      for (const [t, root] of [[base, s.root], [sftpBase, only.root]] as const) {
        expect((await errorOf(connectSsh({ ...t, root: join(root, "missing") }))).code).toBe("SOURCE_NOT_FOUND");
        await writeFile(join(root, "a-file"), "x");
        expect((await errorOf(connectSsh({ ...t, root: join(root, "a-file") }))).code).toBe("NOT_A_DIRECTORY");
        // A symlinked root resolves to its real path either way.
        const link = join(root, `link-${crypto.randomUUID()}`);
        await symlink(root, link);
        const ep = await connectSsh({ ...t, root: link });
        expect(ep.root).toBe(root);
        await ep.close();
      }
    } finally {
      await only.stop();
    }
  }, TIMEOUT_MS);

  test("parseProbeRoot reads the root lines and ignores anything else", () => {
    expect(parseProbeRoot("cmd find\nketter-probe-ok\nroot ok\0/srv/in dir\nx\0")).toEqual({ state: "ok", real: "/srv/in dir\nx" });
    expect(parseProbeRoot("cmd find\nroot denied\n")).toEqual({ state: "denied" });
    expect(parseProbeRoot("This account is currently not available.\n")).toBeNull();
    expect(parseProbeRoot("root ok\0relative\0")).toBeNull();
  });

  test("probeSsh reports the fingerprint, whether it matches, tools and free space; it never throws", async () => {
    const { hostKeyFingerprint: _, ...unpinned } = base;
    const p = await probeSsh(unpinned);
    expect(p).toMatchObject({ reachable: true, fingerprint: s.hostKeyFingerprint, fingerprintMatches: null });
    expect(p.tools.shell).toBe(true);
    expect(p.tools.unzip).toBe(true);
    expect(p.tools.hashes).toContain("sha256");
    expect(p.freeBytes).toBeGreaterThan(0);
    const mismatch = await probeSsh({ ...base, hostKeyFingerprint: "SHA256:" + "B".repeat(43) });
    expect(mismatch.fingerprintMatches).toBe(false);
    expect(mismatch.error?.code).toBe("HOST_KEY_MISMATCH");
    const key = await strangerKey(s.dir);
    const badAuth = await probeSsh({ ...base, auth: { method: "key", privateKey: key } });
    expect(badAuth).toMatchObject({ reachable: true, fingerprint: s.hostKeyFingerprint, fingerprintMatches: true });
    expect(badAuth.error?.code).toBe("AUTH_FAILED");
  }, TIMEOUT_MS);
});

describe("connection faults", () => {
  test("sshd killed mid-write: retryable CONNECTION_LOST, nothing under the final name", async () => {
    const s = await startSshd();
    try {
      const target: SshTarget = { host: s.host, port: s.port, username: s.username, root: s.root, auth: { method: "key", privateKey: s.privateKey }, hostKeyFingerprint: s.hostKeyFingerprint };
      for (const size of [undefined, 1000]) { // unknown size: exec stream; small hint: SFTP
        const ep = await connectSsh(target);
        const w = await ep.openWrite(`staging-${size}.part`, size === undefined ? {} : { size });
        await w.write(new Uint8Array(1024 * 1024));
        await s.kill();
        const err = await errorOf((async () => {
          for (let i = 0; i < 1000; i++) await w.write(new Uint8Array(256 * 1024));
          await w.close();
        })());
        expect(err.code).toBe("CONNECTION_LOST");
        expect(err.retryable).toBe(true);
        await w.abort(); // the host is unreachable: must neither throw nor hang
        expect((await errorOf(ep.stat("x"))).code).toBe("CONNECTION_LOST");
        await ep.close();
        await s.restart();
        // A new connection after the restart works; the partial data is only under its staging name.
        const again = await connectSsh(target);
        expect(await again.stat(`staging-${size}`)).toBeNull();
        await again.remove(`staging-${size}.part`);
        await again.close();
      }
    } finally {
      await s.stop();
    }
  }, TIMEOUT_MS);
});
