/**
 * Setting the scene: the running stack answers with a live worker (preflight), SRVTRF exists as a
 * second host (its own sshd on a loopback address of its own, its own user, keys and root folder),
 * latency relays sit in front of it, and the LAB and SRVTRF portals are registered through the API
 * with SRVTRF's host key pinned the way a person would pin it: check, read, patch, check again.
 */
import { chown, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLatencyRelay, type LatencyRelay } from "../testing/latency_relay.ts";
import { type ScratchDisk, mountScratchDisk } from "../bench/scratch_disk.ts";
import { startSshd, type TestSshd } from "../testing/sshd.ts";
import { ApiError, type FieldApi, type Health, type Portal } from "./api.ts";

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

/** SRVTRF: its sshd, a known_hosts file pinning its key for the OpenSSH tools, and its folders. */
export interface Srvtrf {
  sshd: TestSshd;
  /** The file system mounted on its root folder (null: not root, the root folder is in /tmp). */
  disk: ScratchDisk | null;
  /** known_hosts with SRVTRF's key under the alias "srvtrf", so ssh/scp/rsync check it on any port. */
  knownHosts: string;
  /** Owner of SRVTRF's files (the throw-away user), to hand it folders the field test prepares. */
  uid: number;
  gid: number;
}

/** Starts SRVTRF's sshd on `address` and prepares its `in/` and `ref/` folders. */
export async function startSrvtrf(address: string): Promise<Srvtrf> {
  const sshd = await startSshd({ listenAddress: address });
  let disk: ScratchDisk | null = null;
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
    return { sshd, disk, knownHosts, uid: info.uid, gid: info.gid };
  } catch (err) {
    disk?.stop();
    await sshd.stop();
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

/** A latency relay per round-trip time (0 needs none: the portal points at sshd itself). */
export async function startRelays(srv: Srvtrf, rttsMs: readonly number[]): Promise<Map<number, LatencyRelay>> {
  const relays = new Map<number, LatencyRelay>();
  try {
    for (const rtt of rttsMs.filter((r) => r > 0)) {
      relays.set(rtt, await startLatencyRelay({ listenHost: srv.sshd.host, targetHost: srv.sshd.host, targetPort: srv.sshd.port, oneWayMs: rtt / 2 }));
    }
    return relays;
  } catch (err) {
    await Promise.allSettled([...relays.values()].map((r) => r.stop()));
    throw err;
  }
}

/** An SFTP portal to SRVTRF and what registering it showed. */
export interface SrvtrfPortal {
  portal: Portal;
  rttMs: number;
  port: number;
  /** Fingerprint POST /portals/{id}/check reported before pinning. */
  seenFingerprint: string;
}

/** Registers an SFTP portal to SRVTRF at `port`, then checks it, pins the key it saw and checks again. */
export async function registerSrvtrfPortal(api: FieldApi, srv: Srvtrf, name: string, port: number, rttMs: number): Promise<SrvtrfPortal> {
  const portal = await api.createPortal({
    kind: "sftp", name, rootPath: srv.sshd.root, host: srv.sshd.host, port, username: srv.sshd.username,
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
  return { portal: pinned, rttMs, port, seenFingerprint: first.hostKeyFingerprint };
}

/** LAB's folder (a fresh temp folder the worker sees at the same path, on its own file system when root) and its local portal. */
export async function createLab(api: FieldApi, name: string, parent: string | undefined): Promise<{ root: string; portal: Portal; disk: ScratchDisk | null }> {
  const root = await mkdtemp(join(parent ?? tmpdir(), "ketter-field-lab-"));
  let disk: ScratchDisk | null = null;
  try {
    disk = mountScratchDisk({ imageDir: parent ?? tmpdir(), at: root, bytes: SCRATCH_BYTES });
    for (const d of ["src", "movesrc", "back", "ref"]) await mkdir(join(root, d));
    return { root, portal: await api.createPortal({ kind: "local", name, rootPath: root }), disk };
  } catch (err) {
    disk?.stop();
    await rm(root, { recursive: true, force: true });
    throw err;
  }
}
