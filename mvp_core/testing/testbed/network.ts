/**
 * The testbed's network: SRVTRF's namespace, the veth pair joining it to LAB, its addresses and the
 * iptables rules that send a path's packets through the delay line.
 *
 * LAB is the root namespace's end of the veth, on purpose: the processes that play LAB — the test
 * runner with the engine in it, the engine CLI, the stack's worker in the field test, scp and rsync —
 * all run there and reach SRVTRF at 198.18.x.y without `ip netns exec`. Two network stacks still
 * talk over a real link device, which is what separates this from loopback.
 *
 * Several testbeds may exist at once (parallel test processes): each claims an index by creating
 * /run/ketter-testbed/<index> (mkdir is atomic), and everything it creates is named after it: the
 * namespace ketter-srvtrf-<i>, the interfaces ktlab<i>/ktsrv<i>, the subnet 198.18.0.0/15's <i>th
 * /24, the root namespace's iptables chain KETTER-WAN-<i> and the NFQUEUE numbers. A claim whose
 * owner died (SIGKILLed test process) is swept before its index is reused.
 *
 * A slot's role names its namespace: "srvtrf" (SRVTRF) or "site" (another LAB-side host, e.g. the
 * field test's second site: ketter-site-<i>, interfaces ktlab<i>/ktsite<i>). The role is written
 * into the claim so the sweep removes the right namespace.
 */
import fs from "node:fs";
import path from "node:path";

const CLAIMS = "/run/ketter-testbed";
const MAX_INDEX = 511; // 198.18.0.0/15 holds 512 /24s; index 0 is left alone
/** Paths (delayed addresses) a testbed can have; each takes one NFQUEUE number per namespace. */
export const MAX_PATHS = 48;

/** What a claimed slot's namespace plays: SRVTRF, or another host beside LAB (a second site). */
export type HostRole = "srvtrf" | "site";

/** Names and addresses of one testbed's network. */
export interface NetworkNames {
  index: number;
  role: HostRole;
  netns: string;
  labIf: string;
  srvIf: string;
  chain: string;
  labAddress: string;
  /** SRVTRF's own address: the path without delay. */
  srvAddress: string;
}

/** The names belonging to index `i` (with role "site": ketter-site-<i> and ktsite<i>). */
export function namesOf(i: number, role: HostRole = "srvtrf"): NetworkNames {
  const prefix = `198.${18 + (i >> 8)}.${i & 255}`;
  return {
    index: i, role, netns: `ketter-${role}-${i}`, labIf: `ktlab${i}`, srvIf: `${role === "srvtrf" ? "ktsrv" : "ktsite"}${i}`, chain: `KETTER-WAN-${i}`,
    labAddress: `${prefix}.1`, srvAddress: `${prefix}.2`,
  };
}

/** Address and NFQUEUE number of path `n` (0-based) of a testbed. */
export function pathOf(names: NetworkNames, n: number): { address: string; queue: number } {
  if (n < 0 || n >= MAX_PATHS) throw new Error(`a testbed has at most ${MAX_PATHS} delayed paths`);
  return { address: names.srvAddress.replace(/\.2$/, `.${10 + n}`), queue: 1000 + names.index * 64 + n };
}

/** Runs a command; throws with its stderr when it fails. */
export async function sh(argv: string[]): Promise<string> {
  const p = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${argv.join(" ")} failed (${code}): ${err.trim()}`);
  return out;
}

/** Claims a free index for a namespace playing `role` (sweeping the leftovers of dead owners on the way). */
export async function claimNetwork(role: HostRole = "srvtrf"): Promise<NetworkNames> {
  fs.mkdirSync(CLAIMS, { recursive: true });
  const me = ownerId(process.pid);
  // Start at a pid-dependent index: parallel test processes rarely race for the same one.
  const start = (process.pid % MAX_INDEX) + 1;
  for (let k = 0; k < MAX_INDEX; k++) {
    const i = ((start - 1 + k) % MAX_INDEX) + 1;
    const dir = path.join(CLAIMS, String(i));
    if (!tryMkdir(dir)) {
      if (!(await sweepIfAbandoned(i))) continue;
      if (!tryMkdir(dir)) continue; // someone else took it while we swept
    }
    // The role first: a sweeper that sees the owner file must find the role beside it.
    fs.writeFileSync(path.join(dir, "role"), role);
    fs.writeFileSync(path.join(dir, "owner"), me);
    return namesOf(i, role);
  }
  throw new Error(`all ${MAX_INDEX} WAN testbed slots in ${CLAIMS} are taken by live processes`);
}

/** Creates SRVTRF's namespace and the veth pair (`mtu` both ends), addresses up, IPv6 off (no stray traffic in the counters). */
export async function createNetwork(n: NetworkNames, mtu = 1500): Promise<void> {
  await sh(["ip", "netns", "add", n.netns]);
  await sh(["ip", "link", "add", n.labIf, "mtu", String(mtu), "type", "veth", "peer", "name", n.srvIf, "mtu", String(mtu), "netns", n.netns]);
  fs.writeFileSync(`/proc/sys/net/ipv6/conf/${n.labIf}/disable_ipv6`, "1");
  await sh(["ip", "netns", "exec", n.netns, "sysctl", "-q", "-w", `net.ipv6.conf.${n.srvIf}.disable_ipv6=1`]);
  await sh(["ip", "addr", "add", `${n.labAddress}/24`, "dev", n.labIf]);
  await sh(["ip", "-n", n.netns, "addr", "add", `${n.srvAddress}/24`, "dev", n.srvIf]);
  await sh(["ip", "link", "set", n.labIf, "up"]);
  await sh(["ip", "-n", n.netns, "link", "set", "lo", "up"]);
  await sh(["ip", "-n", n.netns, "link", "set", n.srvIf, "up"]);
}

/**
 * Sends path `p`'s packets through NFQUEUE `p.queue` on arrival at either end: in SRVTRF's
 * namespace those addressed to it, in the root namespace (through this testbed's own chain, reached
 * only from its own interface) those coming from it.
 */
export async function addPathRules(n: NetworkNames, p: { address: string; queue: number }): Promise<void> {
  await sh(["ip", "-n", n.netns, "addr", "add", `${p.address}/24`, "dev", n.srvIf]);
  await sh(["ip", "netns", "exec", n.netns, "iptables", "-w", "-t", "raw", "-A", "PREROUTING", "-i", n.srvIf, "-d", p.address, "-j", "NFQUEUE", "--queue-num", String(p.queue)]);
  if (!(await hasChain(n))) {
    await sh(["iptables", "-w", "-t", "raw", "-N", n.chain]);
    await sh(["iptables", "-w", "-t", "raw", "-A", "PREROUTING", "-i", n.labIf, "-j", n.chain]);
  }
  await sh(["iptables", "-w", "-t", "raw", "-A", n.chain, "-s", p.address, "-j", "NFQUEUE", "--queue-num", String(p.queue)]);
}

/**
 * Lets hosts `a` and `b` (two slots' namespaces) reach each other through LAB, as two hosts on two
 * LAN segments behind a router would: LAB forwards between the two veth ends (per interface, so the
 * machine's global ip_forward stays as it is), and each namespace routes the other's /24 via LAB.
 * Packets to and from a delayed path of SRVTRF still pass its delay lines (raw PREROUTING sees
 * forwarded packets too).
 */
export async function routeThroughLab(a: NetworkNames, b: NetworkNames): Promise<void> {
  for (const n of [a, b]) fs.writeFileSync(`/proc/sys/net/ipv4/conf/${n.labIf}/forwarding`, "1");
  await sh(["ip", "-n", a.netns, "route", "add", subnetOf(b), "via", a.labAddress]);
  await sh(["ip", "-n", b.netns, "route", "add", subnetOf(a), "via", b.labAddress]);
}

/** The slot's /24. */
function subnetOf(n: NetworkNames): string {
  return n.labAddress.replace(/\.1$/, ".0/24");
}

/** Takes SRVTRF's end down (`up` false) or up again; LAB's end then has no carrier and drops what it sends. */
export async function setLink(n: NetworkNames, up: boolean): Promise<void> {
  await sh(["ip", "-n", n.netns, "link", "set", n.srvIf, up ? "up" : "down"]);
}

/** Bytes LAB's end of the veth sent and received, link headers included: the bytes on the wire. */
export function wireBytes(n: NetworkNames): { labToSrvtrf: number; srvtrfToLab: number } {
  const read = (what: string): number => Number(fs.readFileSync(`/sys/class/net/${n.labIf}/statistics/${what}`, "utf8"));
  return { labToSrvtrf: read("tx_bytes"), srvtrfToLab: read("rx_bytes") };
}

/** Removes everything of index `n` (rules, processes left in the namespace, namespace, veth, claim). */
export async function removeNetwork(n: NetworkNames): Promise<void> {
  const errors: unknown[] = [];
  const attempt = async (f: () => Promise<unknown>): Promise<void> => {
    await f().catch((err: unknown) => errors.push(err));
  };
  if (await hasChain(n)) {
    await attempt(() => sh(["iptables", "-w", "-t", "raw", "-D", "PREROUTING", "-i", n.labIf, "-j", n.chain]));
    await attempt(() => sh(["iptables", "-w", "-t", "raw", "-F", n.chain]));
    await attempt(() => sh(["iptables", "-w", "-t", "raw", "-X", n.chain]));
  }
  if (fs.existsSync(`/run/netns/${n.netns}`)) {
    const listed = await sh(["ip", "netns", "pids", n.netns]).catch((err: unknown) => {
      errors.push(err);
      return "";
    });
    const pids = listed.split("\n").filter(Boolean).map(Number);
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch (err) {
        if ((err as { code?: string }).code !== "ESRCH") errors.push(err);
      }
    }
    await attempt(() => sh(["ip", "netns", "del", n.netns]));
  }
  // Deleting the namespace destroys its veth end and with it LAB's; wait for that, then insist.
  for (let k = 0; k < 50 && fs.existsSync(`/sys/class/net/${n.labIf}`); k++) await Bun.sleep(20);
  if (fs.existsSync(`/sys/class/net/${n.labIf}`)) await attempt(() => sh(["ip", "link", "del", n.labIf]));
  fs.rmSync(path.join(CLAIMS, String(n.index)), { recursive: true, force: true });
  if (errors.length) throw new AggregateError(errors, `WAN testbed ${n.index}: cleanup failed`);
}

async function hasChain(n: NetworkNames): Promise<boolean> {
  const p = Bun.spawn(["iptables", "-w", "-t", "raw", "-S", n.chain], { stdout: "ignore", stderr: "ignore" });
  return (await p.exited) === 0;
}

function tryMkdir(dir: string): boolean {
  try {
    fs.mkdirSync(dir);
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === "EEXIST") return false;
    throw err;
  }
}

/** "pid starttime": a pid alone may be reused by an unrelated process after its owner died. */
function ownerId(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  return `${pid} ${stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]}`;
}

/** Sweeps index `i` when its owner is gone; true when the index is free again. */
async function sweepIfAbandoned(i: number): Promise<boolean> {
  let owner: string;
  const role = claimRole(i);
  try {
    owner = fs.readFileSync(path.join(CLAIMS, String(i), "owner"), "utf8").trim();
  } catch (err) {
    if ((err as { code?: string }).code !== "ENOENT") throw err;
    // No owner file: someone is claiming it right now, or died between mkdir and write long ago.
    const age = Date.now() - fs.statSync(path.join(CLAIMS, String(i))).mtimeMs;
    if (age < 60_000) return false;
    await removeNetwork(namesOf(i, role));
    return true;
  }
  const pid = Number(owner.split(" ")[0]);
  let alive: boolean;
  try {
    alive = ownerId(pid) === owner;
  } catch (err) {
    if ((err as { code?: string }).code !== "ENOENT") throw err;
    alive = false;
  }
  if (alive) return false;
  await removeNetwork(namesOf(i, role));
  return true;
}

/** The role a slot was claimed for; claims older than roles were all SRVTRF's. */
function claimRole(i: number): HostRole {
  try {
    return fs.readFileSync(path.join(CLAIMS, String(i), "role"), "utf8").trim() === "site" ? "site" : "srvtrf";
  } catch (err) {
    if ((err as { code?: string }).code !== "ENOENT") throw err;
    return "srvtrf";
  }
}
