import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { netnsUnavailable, startTestbed, type Testbed, type TestbedPath } from "./testbed.ts";

/** Real namespaces, sshd and ssh sessions on a loaded 2-core machine: generous limits; no timing is asserted, only lower bounds of delays. */
const TIMEOUT_MS = 120_000;
const MiB = 1024 * 1024;
const unavailable = netnsUnavailable();

function ssh(tb: Testbed, p: TestbedPath, command: string, stdin?: Uint8Array): { code: number; out: string; err: string } {
  const r = Bun.spawnSync(["ssh", ...tb.sshd.sshArgs(), "-p", String(p.port), p.host, command], { stdin: stdin ?? "ignore", stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString().trim(), err: r.stderr.toString().trim() };
}

/** Milliseconds of one TCP handshake (SYN → SYN-ACK: exactly one round trip on the wire). */
async function connectMs(p: TestbedPath): Promise<number> {
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    Bun.connect({
      hostname: p.host, port: p.port,
      socket: { open(s) { s.end(); resolve(); }, data() {}, connectError(_s, err) { reject(err); } },
    }).catch(reject);
  });
  return performance.now() - t0;
}

async function until(what: string, ok: () => boolean, deadlineMs = 60_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await Bun.sleep(50);
  }
}

describe.skipIf(unavailable !== null)(`WAN testbed (netns)${unavailable ? ` — skipped: ${unavailable}` : ""}`, () => {
  let tb: Testbed;
  let direct: TestbedPath;
  beforeAll(async () => {
    tb = await startTestbed({ scratchBytes: 128 * MiB });
    direct = await tb.path({ rttMs: 0 });
  }, TIMEOUT_MS);
  afterAll(async () => {
    await tb?.stop();
  }, TIMEOUT_MS);

  test("SRVTRF's sshd runs in its own namespace and is reached from LAB over the veth, into its scratch disk", () => {
    expect(tb.kind).toBe("netns");
    expect(tb.sshd.host).toMatch(/^198\.1[89]\.\d+\.\d+$/);
    const inode = (f: string): string => Bun.spawnSync(["stat", "-L", "-c", "%i", f]).stdout.toString().trim();
    const r = ssh(tb, direct, `id -un; stat -L -c %i /proc/self/ns/net; stat -f -c %T ${tb.sshd.root}; findmnt -n -o SOURCE --target ${tb.sshd.root}`);
    expect(r.err).toBe("");
    const [user, netns, fsType, source] = r.out.split("\n");
    expect(user).toBe(tb.sshd.username);
    expect(netns).toBe(inode(`/run/netns/${tb.netns}`));
    expect(netns).not.toBe(inode("/proc/self/ns/net"));
    expect(fsType).toBe("ext2/ext3"); // stat -f's name for ext4
    expect(source).toMatch(/^\/dev\/loop\d+$/);
    expect(tb.labDisk?.path).toBe(tb.labRoot);
  }, TIMEOUT_MS);

  test("a delayed path's TCP round trip is at least the configured RTT; the direct path bypasses the delay line", async () => {
    const far = await tb.path({ rttMs: 60 });
    expect(far.host).not.toBe(direct.host);
    expect(await tb.path({ rttMs: 60 })).toBe(far); // same options, same path
    const delayed = [await connectMs(far), await connectMs(far), await connectMs(far)];
    for (const ms of delayed) expect(ms).toBeGreaterThanOrEqual(60);
    // The direct path bypasses the delay line: a path nobody used yet sees none of its packets.
    const unused = await tb.path({ rttMs: 30 });
    await connectMs(direct);
    const none = { passed: 0, dropped: 0, held: 0 };
    expect(await tb.pathStats(unused)).toEqual({ atLab: none, atSrvtrf: none });
    expect(ssh(tb, far, "echo through").out).toBe("through");
    const stats = await tb.pathStats(far);
    expect(stats.atLab.passed).toBeGreaterThan(0);
    expect(stats.atSrvtrf.passed).toBeGreaterThan(0);
    expect(stats.atLab.dropped + stats.atSrvtrf.dropped).toBe(0);
  }, TIMEOUT_MS);

  test("a host beside LAB has its own namespace, reaches SRVTRF's direct and delayed paths through LAB, and is removed by stop()", async () => {
    const host = await tb.addHost();
    const far = await tb.path({ rttMs: 40 });
    const inHost = (command: string) => Bun.spawnSync([...host.exec, "bash", "-c", command], { stdout: "pipe", stderr: "pipe" });
    // The host's own network stack: its namespace, its address; LAB's loopback services are not there.
    const ns = (f: string): string => Bun.spawnSync(["stat", "-L", "-c", "%i", f]).stdout.toString().trim();
    expect(inHost("stat -L -c %i /proc/self/ns/net").stdout.toString().trim()).toBe(ns(`/run/netns/${host.netns}`));
    expect(inHost(`ip -br -4 addr`).stdout.toString()).toContain(`${host.address}/24`);
    // Through LAB to sshd: its banner on the direct path and on the delayed one (whose delay line counts the packets).
    const before = await tb.pathStats(far);
    for (const p of [direct, far]) {
      const r = inHost(`exec 3<>/dev/tcp/${p.host}/${p.port}; head -c 4 <&3`);
      expect(r.stderr.toString()).toBe("");
      expect(r.stdout.toString()).toBe("SSH-");
    }
    expect((await tb.pathStats(far)).atSrvtrf.passed).toBeGreaterThan(before.atSrvtrf.passed);
    await host.stop();
    expect(fs.existsSync(`/run/netns/${host.netns}`)).toBe(false);
    expect(Bun.spawnSync(["ip", "-br", "-4", "addr"]).stdout.toString()).not.toContain(`${host.labAddress}/24`);
    await host.stop(); // idempotent: the testbed's own stop() calls it again
  }, TIMEOUT_MS);

  test("the wire counters count at least the bytes sent, and not much more", () => {
    const data = crypto.getRandomValues(new Uint8Array(16 * MiB)); // not compressible, in 16 MiB
    const before = tb.wireBytes();
    const r = ssh(tb, direct, "wc -c", data);
    expect(r.out).toBe(String(data.length));
    const after = tb.wireBytes();
    const sent = after.labToSrvtrf - before.labToSrvtrf;
    expect(sent).toBeGreaterThanOrEqual(data.length);
    // TCP/IP and Ethernet headers, SSH packet framing and MACs, the handshake: a few percent.
    expect(sent).toBeLessThan(data.length * 1.1 + 256 * 1024);
    expect(after.srvtrfToLab - before.srvtrfToLab).toBeLessThan(data.length * 0.1);
  }, TIMEOUT_MS);

  test("packet loss is recovered by TCP: the bytes arrive intact and the delay line counted drops", async () => {
    const lossy = await tb.path({ rttMs: 4, lossPct: 3 });
    const data = crypto.getRandomValues(new Uint8Array(8 * MiB));
    const digest = new Bun.CryptoHasher("sha256").update(data).digest("hex");
    const r = ssh(tb, lossy, `sha256sum | cut -d' ' -f1`, data);
    expect(r.out).toBe(digest);
    const stats = await tb.pathStats(lossy);
    expect(stats.atSrvtrf.dropped).toBeGreaterThan(0); // data segments dropped on their way in
    expect(stats.atLab.dropped + stats.atLab.passed).toBeGreaterThan(0);
  }, TIMEOUT_MS);

  test("cutting the link stops the traffic; restoring it lets the same session go on", async () => {
    // SRVTRF streams to LAB until told to stop; LAB counts what arrives.
    const session = Bun.spawn(["ssh", ...tb.sshd.sshArgs(), direct.host, "cat /dev/zero"], { stdout: "pipe", stderr: "pipe" });
    let received = 0;
    const reading = (async () => {
      for await (const chunk of session.stdout) received += chunk.length;
    })();
    try {
      await until("the stream to start", () => received > 4 * MiB);
      await tb.cut();
      const atCut = tb.wireBytes();
      const receivedAtCut = received;
      await Bun.sleep(1500);
      expect(tb.wireBytes()).toEqual(atCut);
      // What was in socket buffers may still be read, but nothing new crossed the link.
      const receivedLater = received;
      await Bun.sleep(500);
      expect(received).toBe(receivedLater);
      expect(receivedLater - receivedAtCut).toBeLessThan(64 * MiB);
      await tb.restore();
      // TCP retransmits after its backed-off timeout; the same ssh session carries on.
      await until("the stream to resume", () => received > receivedLater + 4 * MiB);
      expect(tb.wireBytes().srvtrfToLab).toBeGreaterThan(atCut.srvtrfToLab + 4 * MiB);
      expect(session.exitCode).toBeNull();
    } finally {
      session.kill("SIGKILL");
      await session.exited;
      await reading.catch(() => undefined); // the stream ends with the killed session; nothing to report
    }
  }, TIMEOUT_MS);
});

test.skipIf(unavailable !== null)("stop() removes the namespace, the veth, the rules, the delay lines, the disks and the folders", async () => {
  const tb = await startTestbed({ scratchBytes: 64 * MiB });
  await tb.path({ rttMs: 10 });
  const netns = tb.netns as string;
  const labIf = Bun.spawnSync(["ip", "-br", "-4", "addr"]).stdout.toString().split("\n").find((l) => l.includes(tb.sshd.host.replace(/\.2$/, ".1/24")))?.split(/[ @]/)[0];
  expect(labIf).toMatch(/^ktlab\d+$/);
  const chain = `KETTER-WAN-${labIf!.slice("ktlab".length)}`;
  expect(Bun.spawnSync(["iptables", "-t", "raw", "-S", chain]).exitCode).toBe(0);
  // Both delay lines are this process's children (nsenter execs in place).
  const lines = Bun.spawnSync(["pgrep", "-P", String(process.pid), "-f", "delay_line-"]).stdout.toString().split("\n").filter(Boolean);
  expect(lines.length).toBeGreaterThanOrEqual(2);
  const mounts = [tb.labRoot, tb.sshd.root];
  await tb.stop();
  expect(fs.existsSync(`/run/netns/${netns}`)).toBe(false);
  expect(fs.existsSync(`/sys/class/net/${labIf}`)).toBe(false);
  expect(Bun.spawnSync(["iptables", "-t", "raw", "-S", chain]).exitCode).not.toBe(0);
  // Whole words: another testbed's chain (KETTER-WAN-266 beside our KETTER-WAN-2) is not ours.
  expect(Bun.spawnSync(["iptables", "-t", "raw", "-S", "PREROUTING"]).stdout.toString().split(/\s+/)).not.toContain(chain);
  for (const pid of lines) expect(fs.existsSync(`/proc/${pid}`)).toBe(false);
  const mounted = fs.readFileSync("/proc/mounts", "utf8");
  for (const m of mounts) {
    expect(mounted).not.toContain(` ${m} `);
    expect(fs.existsSync(m)).toBe(false);
  }
  expect(fs.existsSync(path.join("/run/ketter-testbed", labIf!.slice("ktlab".length)))).toBe(false);
}, TIMEOUT_MS);
