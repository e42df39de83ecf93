import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { startSshd, type TestSshd } from "./sshd.ts";

/** Real sshd, real processes, a loaded 2-core machine: generous per-test limits (no timing is asserted). */
const TIMEOUT_MS = 120_000;

function ssh(s: TestSshd, command: string): { code: number; out: string } {
  const r = Bun.spawnSync(["ssh", ...s.sshArgs(), s.host, command], { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString().trim() };
}

test("starts a real sshd with key login into a private root, and removes everything on stop", async () => {
  const s = await startSshd();
  try {
    expect(s.hostKeyFingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(ssh(s, "id -un").out).toBe(s.username);
    const w = ssh(s, `touch ${s.root}/ok && echo yes`);
    expect(w.out).toBe("yes");
  } finally {
    await s.stop();
  }
  expect(existsSync(s.dir)).toBe(false);
  if (process.getuid?.() === 0) expect(Bun.spawnSync(["id", s.username]).exitCode).not.toBe(0);
}, TIMEOUT_MS);

test("hides commands from the remote PATH and listens on another loopback address", async () => {
  const s = await startSshd({ hideCommands: ["unzip"], listenAddress: "127.0.0.3" });
  try {
    expect(s.host).toBe("127.0.0.3");
    expect(ssh(s, "command -v unzip || echo none").out).toBe("none");
    expect(ssh(s, "command -v zip >/dev/null && echo zip").out).toBe("zip");
  } finally {
    await s.stop();
  }
}, TIMEOUT_MS);

test("kill drops live sessions; restart serves again on the same port", async () => {
  const s = await startSshd();
  try {
    const long = Bun.spawn(["ssh", ...s.sshArgs(), s.host, "sleep 60"], { stdout: "ignore", stderr: "ignore" });
    await Bun.sleep(300);
    await s.kill();
    expect(await long.exited).not.toBe(0);
    expect(ssh(s, "true").code).not.toBe(0);
    await s.restart();
    expect(ssh(s, "echo back").out).toBe("back");
  } finally {
    await s.stop();
  }
}, TIMEOUT_MS);
