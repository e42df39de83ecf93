/**
 * The WAN testbed: LAB and SRVTRF as two hosts joined by a real link with a real round-trip time.
 *
 * As root ("netns"): SRVTRF is a network namespace with its own sshd (testing/sshd.ts, so tests get
 * its user, key file and pinned host key as usual), joined to the root namespace — LAB — by a veth
 * pair with addresses from 198.18.0.0/15 (network.ts). `path({ rttMs, lossPct })` gives another
 * address of SRVTRF whose packets, both ways, pass a packet-level delay line (delay_line.c on
 * NFQUEUE): TCP itself sees the delay and the loss. The link can be cut and restored, and the veth's
 * counters tell the bytes on the wire.
 *
 * Not root ("loopback"): sshd on 127.0.0.1 and delays through the stream relay
 * (testing/latency_relay.ts); no loss, no cut, no counters. `kind` tells which one a test got and
 * `describe` says it in words for reports.
 *
 *   await withTestbed({ scratchBytes: 4 * 1024 ** 3 }, async (tb) => {
 *     const far = await tb.path({ rttMs: 100 });   // connect to far.host:far.port
 *     const before = tb.wireBytes();
 *     await tb.cut(); …; await tb.restore();
 *   });
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { type ScratchDisk, mountScratchDisk } from "../../bench/scratch_disk.ts";
import { startLatencyRelay, type LatencyRelay } from "../latency_relay.ts";
import { type SshdOptions, startSshd, type TestSshd } from "../sshd.ts";
import { type DelayLine, type QueueStats, startDelayLine } from "./delay_line.ts";
import { startHost, type TestbedHost } from "./host.ts";
import { type NetworkNames, addPathRules, claimNetwork, createNetwork, pathOf, removeNetwork, setLink, wireBytes } from "./network.ts";

/** How to build the testbed. */
export interface TestbedOptions {
  /** Passed to SRVTRF's sshd (e.g. hide unzip, SFTP only, the CPUs it may use). */
  sshd?: Pick<SshdOptions, "hideCommands" | "sftpOnly" | "cpus">;
  /** Use the loopback testbed even as root (to compare the two). */
  loopback?: boolean;
  /** The loopback testbed's sshd address (default 127.0.0.1). */
  loopbackAddress?: string;
  /** MTU of both veth ends (default 1500, an Ethernet's; loopback's is 65536). netns only. */
  mtu?: number;
  /** Mount a fresh journaled ext4 of this size on LAB's folder and on SRVTRF's root (root only; see bench/scratch_disk.ts). */
  scratchBytes?: number;
}

/** A way from LAB to SRVTRF's sshd with a given round trip. */
export interface TestbedPath {
  host: string;
  port: number;
  rttMs: number;
  /** Packets dropped in each direction, in % (netns only). */
  lossPct: number;
}

/** Bytes that crossed the link, counted at LAB's end of the veth (headers included). */
export interface WireBytes {
  labToSrvtrf: number;
  srvtrfToLab: number;
}

/** A running testbed; see the file comment. */
export interface Testbed {
  kind: "netns" | "loopback";
  /** SRVTRF's network namespace (for `ip netns exec`), null on loopback. */
  netns: string | null;
  /** One line for reports: what the link is. */
  describe: string;
  /** SRVTRF's sshd; `sshd.host`/`sshd.port` is the path without added delay. */
  sshd: TestSshd;
  /** LAB's working folder (a fresh journaled ext4 when `scratchBytes` was given and running as root). */
  labRoot: string;
  labDisk: ScratchDisk | null;
  srvtrfDisk: ScratchDisk | null;
  /** A path with `rttMs` round trip (and `lossPct` % loss each way); the same options give the same path. */
  path(opts: { rttMs: number; lossPct?: number }): Promise<TestbedPath>;
  /** Cuts the link (SRVTRF's veth end down): packets both ways are lost until restore(). netns only. */
  cut(): Promise<void>;
  restore(): Promise<void>;
  /** netns only. */
  wireBytes(): WireBytes;
  /** The delay line's counters for a path, at each end (netns only). */
  pathStats(p: TestbedPath): Promise<{ atLab: QueueStats; atSrvtrf: QueueStats }>;
  /** Another host beside LAB in a namespace of its own, routed through LAB to SRVTRF (netns only; see host.ts). Stopped with the testbed at the latest. */
  addHost(): Promise<TestbedHost>;
  /** Stops everything it started: sshd, delay lines, rules, namespace, veth, disks, folders. */
  stop(): Promise<void>;
}

/** Raised by what only the netns testbed can do, when the loopback one is running. */
export class TestbedUnsupportedError extends Error {
  constructor(what: string, why: string) {
    super(`${what} needs the netns WAN testbed, but this one is loopback (${why})`);
    this.name = "TestbedUnsupportedError";
  }
}

/** Null when the netns testbed can run here; otherwise why not (then startTestbed falls back to loopback). */
export function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "not root: network namespaces need it";
  const missing = ["ip", "iptables", "gcc"].filter((t) => !Bun.which(t));
  if (missing.length) return `missing ${missing.join(", ")} (apt-get install iproute2 iptables gcc)`;
  return null;
}

/** Every testbed started and not stopped yet (a test whose set-up failed halfway may never stop it). */
const running = new Set<Testbed>();

/** Stops every testbed still running (the test preload calls it after the run); returns how many there were. */
export async function stopAllTestbeds(): Promise<number> {
  const left = [...running];
  await Promise.allSettled(left.map((t) => t.stop()));
  return left.length;
}

/** Runs `fn` on a fresh testbed and always stops it. */
export async function withTestbed<T>(opts: TestbedOptions, fn: (tb: Testbed) => Promise<T>): Promise<T> {
  const tb = await startTestbed(opts);
  try {
    return await fn(tb);
  } finally {
    await tb.stop();
  }
}

/** Starts the netns testbed, or the loopback one with a message on stderr saying why. */
export async function startTestbed(opts: TestbedOptions = {}): Promise<Testbed> {
  const why = opts.loopback ? "asked for loopback" : netnsUnavailable();
  let tb: Testbed;
  if (why === null) tb = await startNetnsTestbed(opts);
  else if (opts.loopback) tb = await startLoopbackTestbed(opts, why);
  else {
    process.stderr.write(`WAN testbed: ${why}. Falling back to loopback: sshd on ${opts.loopbackAddress ?? "127.0.0.1"}, delays through a stream relay that does not delay TCP's ACKs; no loss, no link cut, no wire counters.\n`);
    tb = await startLoopbackTestbed(opts, why);
  }
  const stop = tb.stop;
  const registered: Testbed = {
    ...tb,
    stop: async () => {
      running.delete(registered);
      await stop();
    },
  };
  running.add(registered);
  return registered;
}

/** Stops what was started so far, in reverse order, collecting every failure. */
class Teardown {
  private steps: Array<() => Promise<void> | void> = [];
  add(step: () => Promise<void> | void): void {
    this.steps.push(step);
  }
  async run(): Promise<void> {
    const errors: unknown[] = [];
    for (const step of this.steps.reverse()) await Promise.resolve().then(step).catch((err: unknown) => errors.push(err));
    this.steps = [];
    if (errors.length) throw new AggregateError(errors, "WAN testbed teardown failed");
  }
}

function labFolder(opts: TestbedOptions, down: Teardown): { root: string; disk: ScratchDisk | null } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ketter-testbed-lab-"));
  down.add(() => fs.rmSync(root, { recursive: true, force: true }));
  const disk = opts.scratchBytes ? mountScratchDisk({ imageDir: os.tmpdir(), at: root, bytes: opts.scratchBytes }) : null;
  if (disk) down.add(() => disk.stop());
  return { root, disk };
}

function srvtrfScratch(opts: TestbedOptions, sshd: TestSshd, down: Teardown): ScratchDisk | null {
  const disk = opts.scratchBytes ? mountScratchDisk({ imageDir: sshd.dir, at: sshd.root, bytes: opts.scratchBytes, owner: sshd.username }) : null;
  if (disk) down.add(() => disk.stop());
  return disk;
}

async function startNetnsTestbed(opts: TestbedOptions): Promise<Testbed> {
  const down = new Teardown();
  try {
    const names = await claimNetwork();
    down.add(() => removeNetwork(names));
    await createNetwork(names, opts.mtu);
    const sshd = await startSshd({ ...opts.sshd, netns: names.netns, listenAddress: names.srvAddress });
    down.add(() => sshd.stop());
    const srvtrfDisk = srvtrfScratch(opts, sshd, down);
    const lab = labFolder(opts, down);
    const paths = new Map<string, Promise<TestbedPath>>();
    const queues = new Map<TestbedPath, number>();
    let lines: Promise<{ lab: DelayLine; srvtrf: DelayLine }> | null = null;
    // Started with the first delayed path, so a testbed without delays needs no gcc run.
    const delayLines = (): Promise<{ lab: DelayLine; srvtrf: DelayLine }> =>
      (lines ??= (async () => {
        const labLine = await startDelayLine(null);
        down.add(() => labLine.stop());
        const srvtrfLine = await startDelayLine(names.netns);
        down.add(() => srvtrfLine.stop());
        return { lab: labLine, srvtrf: srvtrfLine };
      })());
    const addPath = async (rttMs: number, lossPct: number): Promise<TestbedPath> => {
      if (rttMs === 0 && lossPct === 0) return { host: sshd.host, port: sshd.port, rttMs, lossPct };
      const { lab: labLine, srvtrf } = await delayLines();
      const p = pathOf(names, queues.size);
      // Each end delays what it receives by half the round trip; bound before the rules send packets there.
      await labLine.set(p.queue, rttMs / 2, lossPct);
      await srvtrf.set(p.queue, rttMs / 2, lossPct);
      await addPathRules(names, p);
      const result = { host: p.address, port: sshd.port, rttMs, lossPct };
      queues.set(result, p.queue);
      return result;
    };
    return {
      kind: "netns",
      netns: names.netns,
      describe: `netns: LAB (root namespace, ${names.labIf} ${names.labAddress}) ⇄ veth (MTU ${opts.mtu ?? 1500}) ⇄ SRVTRF (namespace ${names.netns}, ${names.srvAddress}); delays and loss by a packet-level NFQUEUE delay line on each end's ingress`,
      sshd, labRoot: lab.root, labDisk: lab.disk, srvtrfDisk,
      path({ rttMs, lossPct = 0 }) {
        if (!(rttMs >= 0) || !(lossPct >= 0 && lossPct < 100)) return Promise.reject(new Error(`path: rttMs must be ≥ 0 and lossPct in [0, 100) (got ${rttMs}, ${lossPct})`));
        const key = `${rttMs}/${lossPct}`;
        let p = paths.get(key);
        if (!p) {
          p = addPath(rttMs, lossPct);
          paths.set(key, p);
          p.catch(() => paths.delete(key));
        }
        return p;
      },
      cut: () => setLink(names, false),
      restore: () => setLink(names, true),
      wireBytes: () => wireBytes(names),
      async pathStats(p) {
        const queue = queues.get(p);
        if (queue === undefined) throw new Error(`pathStats: ${p.host} is not a delayed path of this testbed`);
        const l = await delayLines();
        return { atLab: await l.lab.stats(queue), atSrvtrf: await l.srvtrf.stats(queue) };
      },
      async addHost() {
        const host = await startHost(names, opts.mtu);
        down.add(() => host.stop());
        return host;
      },
      stop: () => down.run(),
    };
  } catch (err) {
    await down.run().catch(() => undefined); // the set-up error is the one worth reporting
    throw err;
  }
}

async function startLoopbackTestbed(opts: TestbedOptions, why: string): Promise<Testbed> {
  const down = new Teardown();
  try {
    const sshd = await startSshd({ ...opts.sshd, listenAddress: opts.loopbackAddress });
    down.add(() => sshd.stop());
    const srvtrfDisk = srvtrfScratch(opts, sshd, down);
    const lab = labFolder(opts, down);
    const relays = new Map<number, Promise<LatencyRelay>>();
    const unsupported = (what: string): never => {
      throw new TestbedUnsupportedError(what, why);
    };
    return {
      kind: "loopback",
      netns: null,
      describe: `loopback: sshd on ${sshd.host}, delays by a TCP stream relay (${why})`,
      sshd, labRoot: lab.root, labDisk: lab.disk, srvtrfDisk,
      async path({ rttMs, lossPct = 0 }) {
        if (lossPct > 0) unsupported("packet loss");
        if (rttMs === 0) return { host: sshd.host, port: sshd.port, rttMs, lossPct };
        let relay = relays.get(rttMs);
        if (!relay) {
          relay = startLatencyRelay({ listenHost: sshd.host, targetHost: sshd.host, targetPort: sshd.port, oneWayMs: rttMs / 2 });
          relays.set(rttMs, relay);
          const started = relay;
          down.add(async () => (await started).stop());
        }
        return { host: sshd.host, port: (await relay).port, rttMs, lossPct };
      },
      cut: async () => unsupported("cutting the link"),
      restore: async () => unsupported("restoring the link"),
      wireBytes: () => unsupported("counting bytes on the wire"),
      pathStats: async () => unsupported("delay line counters"),
      addHost: async () => unsupported("a host in a network namespace of its own"),
      stop: () => down.run(),
    };
  } catch (err) {
    await down.run().catch(() => undefined);
    throw err;
  }
}
