/**
 * Setting the scene: the running stack answers with a live worker (preflight), SRVTRF exists as a
 * second host — as root on the WAN testbed (testing/testbed/: its own network namespace and sshd
 * behind a veth, latency by a packet-level delay line), otherwise its own sshd on a loopback address
 * with latency relays in front — with its own user, keys and root folder, and the LAB and SRVTRF
 * portals are registered through the API with SRVTRF's host key pinned the way a person would pin
 * it: check, read, patch, check again.
 */
import { chown, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ScratchDisk, mountScratchDisk } from "../bench/scratch_disk.ts";
import { startTestbed, type Testbed } from "../testing/testbed/testbed.ts";
import type { TestSshd } from "../testing/sshd.ts";
import { ApiError, type FieldApi, type Health, type Portal } from "./api.ts";
import { findLocalWorker } from "./workers.ts";

/** The stack is not there (or has no worker): main exits 2 with this message. */
export class PreflightError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PreflightError";
  }
}

const DEV_UP = "run bash mvp_core/infra/dev_up.sh first";

/** The tools the reference measurements and SRVTRF need. */
export const REQUIRED_TOOLS = ["/usr/sbin/sshd", "ssh", "ssh-keygen", "rsync", "scp"] as const;

/** Checks that the API answers, is healthy and has a live worker, and that the reference tools exist. */
export async function preflight(api: FieldApi): Promise<Health> {
  const missing = REQUIRED_TOOLS.filter((t) => !Bun.which(t));
  if (missing.length > 0) throw new PreflightError(`missing tools: ${missing.join(", ")} (apt-get install openssh-server openssh-client rsync)`);
  let health: Health;
  try {
    health = await api.health();
  } catch (err) {
    throw new PreflightError(`the API at ${api.baseUrl} does not answer (${err instanceof Error ? err.message : String(err)}): ${DEV_UP}`);
  }
  if (health.status !== "ok") throw new PreflightError(`the API at ${api.baseUrl} is ${health.status} (database ok: ${health.database.ok}, redis ok: ${health.redis.ok}): ${DEV_UP}`);
  if (health.workers.live === 0) throw new PreflightError(`the API at ${api.baseUrl} has no live worker: ${DEV_UP}`);
  // /health is public; the rest is not. A refused token would otherwise only show up mid-setup.
  await api.listPortals().catch((err: unknown) => {
    if (err instanceof ApiError && err.status === 401) throw new PreflightError(`the API at ${api.baseUrl} refused the request (${err.message}): set KETTER_API_TOKEN to its token`);
    throw err;
  });
  return health;
}

/** Each host's folder is a fresh journaled ext4 when run as root (see bench/scratch_disk.ts). */
const SCRATCH_BYTES = 8 * 1024 ** 3;

/** SRVTRF: its sshd, how LAB reaches it, a known_hosts file pinning its key for the OpenSSH tools, and its folders. */
export interface Srvtrf {
  sshd: TestSshd;
  /** The link between LAB and SRVTRF: `testbed.path({ rttMs })` is where a portal or tool connects. */
  testbed: Testbed;
  /** The file system mounted on its root folder (null: not root, the root folder is in /tmp). */
  disk: ScratchDisk | null;
  /** known_hosts with SRVTRF's key under the alias "srvtrf", so ssh/scp/rsync check it on any address and port. */
  knownHosts: string;
  /** Owner of SRVTRF's files (the throw-away user), to hand it folders the field test prepares. */
  uid: number;
  gid: number;
  /** Stops the testbed (sshd, delay lines or relays, namespace) and unmounts the disk. */
  stop(): Promise<void>;
}

/** Starts SRVTRF (on the WAN testbed unless `loopback` or not root; then its sshd listens on `address`) and prepares its `in/` and `ref/` folders. */
export async function startSrvtrf(opts: { address: string; loopback: boolean }): Promise<Srvtrf> {
  const testbed = await startTestbed({ loopback: opts.loopback, loopbackAddress: opts.address });
  const sshd = testbed.sshd;
  let disk: ScratchDisk | null = null;
  const stop = async (): Promise<void> => {
    disk?.stop();
    await testbed.stop();
  };
  try {
    disk = mountScratchDisk({ imageDir: sshd.dir, at: sshd.root, bytes: SCRATCH_BYTES, owner: sshd.username });
    const pub = (await readFile(join(sshd.dir, "host_ed25519.pub"), "utf8")).trim().split(" ").slice(0, 2).join(" ");
    const knownHosts = join(sshd.dir, "field_known_hosts");
    await writeFile(knownHosts, `srvtrf ${pub}\n`);
    const info = await Bun.file(sshd.root).stat();
    for (const d of ["in", "ref"]) {
      await mkdir(join(sshd.root, d));
      await chown(join(sshd.root, d), info.uid, info.gid);
    }
    return { sshd, testbed, disk, knownHosts, uid: info.uid, gid: info.gid, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** ssh(1) options for the reference tools (no port: ssh spells it -p, scp -P): SRVTRF's client key and pinned host key (strict). */
export function sshOptions(srv: Srvtrf, cipher: string): string[] {
  return [
    "-i", srv.sshd.privateKeyPath, "-c", cipher,
    "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "HostKeyAlias=srvtrf",
    "-o", `UserKnownHostsFile=${srv.knownHosts}`, "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR",
  ];
}

/** An SFTP portal to SRVTRF and what registering it showed. */
export interface SrvtrfPortal {
  portal: Portal;
  rttMs: number;
  /** Where the portal (and the reference tools at this RTT) connect. */
  host: string;
  port: number;
  /** Fingerprint POST /portals/{id}/check reported before pinning. */
  seenFingerprint: string;
}

/** Registers an SFTP portal to SRVTRF over the testbed's path with `rttMs` round trip, then checks it, pins the key it saw and checks again. */
export async function registerSrvtrfPortal(api: FieldApi, srv: Srvtrf, name: string, rttMs: number): Promise<SrvtrfPortal> {
  const { host, port } = await srv.testbed.path({ rttMs });
  const portal = await api.createPortal({
    kind: "sftp", name, rootPath: srv.sshd.root, host, port, username: srv.sshd.username,
    auth: { method: "key", privateKey: srv.sshd.privateKey },
  });
  const first = await api.checkPortal(portal.id);
  if (!first.reachable || !first.hostKeyFingerprint) {
    throw new Error(`portal ${name}: check before pinning failed: ${first.error ? `${first.error.code}: ${first.error.message}` : "no fingerprint reported"}`);
  }
  // The fingerprint the API saw must be the one sshd was started with (read from its key file by
  // ssh-keygen): otherwise something else answered on that address.
  if (first.hostKeyFingerprint !== srv.sshd.hostKeyFingerprint) {
    throw new Error(`portal ${name}: the API saw host key ${first.hostKeyFingerprint}, SRVTRF's key is ${srv.sshd.hostKeyFingerprint}`);
  }
  const pinned = await api.updatePortal(portal.id, { hostKeyFingerprint: first.hostKeyFingerprint });
  const second = await api.checkPortal(portal.id);
  if (second.fingerprintMatches !== true) throw new Error(`portal ${name}: check after pinning says fingerprintMatches=${String(second.fingerprintMatches)}`);
  return { portal: pinned, rttMs, host, port, seenFingerprint: first.hostKeyFingerprint };
}

/**
 * LAB's site: the site of a live stack worker on this machine (LAB's folder is on this machine's
 * disk), or undefined when none runs here (the API then defaults it, as for a one-machine install).
 */
export function labSiteOf(health: Health): string | undefined {
  const id = findLocalWorker(health.workers.ids);
  return id === null ? undefined : health.sites.find((s) => s.workers.some((w) => w.id === id))?.name;
}

/** The second site needs a stack worker here to copy, a first site of another name, and its own name free. */
export function sitesPreflight(health: Health, second: string): string {
  const lab = labSiteOf(health);
  if (lab === undefined) throw new PreflightError(`no live worker of the stack runs on this machine (${health.workers.ids.join(", ") || "none"}): the second site copies its environment; run the field test on the stack's machine as its user, or pass --no-sites`);
  if (lab === second) throw new PreflightError(`the stack's worker already runs for site ${second}; start it with another KETTER_SITE, or pass --no-sites`);
  const busy = health.sites.find((s) => s.name === second && s.live > 0);
  if (busy) throw new PreflightError(`site ${second} already has live workers (${busy.workers.map((w) => w.id).join(", ")}: another field run?); stop them, or pass --no-sites`);
  return lab;
}

/** LAB's folder (a fresh temp folder the worker sees at the same path, on its own file system when root) and its local portal at `site`. */
export async function createLab(api: FieldApi, name: string, parent: string | undefined, site: string | undefined): Promise<{ root: string; portal: Portal; disk: ScratchDisk | null }> {
  const root = await mkdtemp(join(parent ?? tmpdir(), "ketter-field-lab-"));
  let disk: ScratchDisk | null = null;
  try {
    disk = mountScratchDisk({ imageDir: parent ?? tmpdir(), at: root, bytes: SCRATCH_BYTES });
    for (const d of ["src", "movesrc", "back", "ref"]) await mkdir(join(root, d));
    return { root, portal: await api.createPortal({ kind: "local", name, rootPath: root, ...(site ? { site } : {}) }), disk };
  } catch (err) {
    disk?.stop();
    await rm(root, { recursive: true, force: true });
    throw err;
  }
}
