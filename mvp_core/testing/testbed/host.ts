/**
 * Another host beside LAB on the netns testbed — e.g. the field test's second site: a network
 * namespace of its own (ketter-site-<i>) joined to LAB by its own veth pair, and routed through LAB
 * to SRVTRF's addresses, delayed paths included. Like SRVTRF's sshd, its processes are started with
 * `nsenter --net=…` only, so they see this machine's file systems (disks mounted later too).
 * Services that listen on LAB's loopback (Postgres, Redis, the API) are not reachable from it: the
 * caller relays them to `labAddress` (LAB's end of the host's link), as a real site reaches the
 * facility's servers over the network.
 */
import { claimNetwork, createNetwork, type NetworkNames, removeNetwork, routeThroughLab } from "./network.ts";

/** A host beside LAB; see the file comment. */
export interface TestbedHost {
  netns: string;
  /** The host's own address. */
  address: string;
  /** LAB's address on the host's link: where LAB offers (or relays) a service to the host. */
  labAddress: string;
  /** argv prefix that runs a command in the host's network namespace. */
  exec: string[];
  /** One line for reports. */
  describe: string;
  /** Removes the namespace (SIGKILLing what still runs in it), the veth and the routes. Idempotent. */
  stop(): Promise<void>;
}

/** Creates a host beside LAB that reaches SRVTRF (`srvtrf`: the testbed's network) through LAB. */
export async function startHost(srvtrf: NetworkNames, mtu = 1500): Promise<TestbedHost> {
  const names = await claimNetwork("site");
  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => (stopped ??= removeNetwork(names));
  try {
    await createNetwork(names, mtu);
    await routeThroughLab(srvtrf, names);
  } catch (err) {
    await stop().catch(() => undefined); // the set-up error is the one worth reporting
    throw err;
  }
  return {
    netns: names.netns,
    address: names.srvAddress,
    labAddress: names.labAddress,
    exec: ["nsenter", `--net=/run/netns/${names.netns}`],
    describe: `netns: a host beside LAB (namespace ${names.netns}, ${names.srvAddress}) ⇄ veth (MTU ${mtu}) ⇄ LAB (${names.labIf} ${names.labAddress}), routed through LAB to SRVTRF (${srvtrf.srvAddress} and its delayed paths)`,
    stop,
  };
}
