/**
 * CPU time SRVTRF spends on a run, the same way for every tool: its sshd is moved into a cpuacct
 * cgroup of its own (v1, as on this machine), which every session, sftp-server, sha256sum or tar
 * it forks inherits, and the cgroup's counter is read before and after. (The listener's reaped-child
 * times do not work: the sessions' processes are not all waited for up the chain.) What the client
 * spends comes from /usr/bin/time (timed_run.ts). Unlike wall time on a shared 2-core machine, CPU
 * seconds barely move with what else runs — and they are what client and server fight over here.
 */
import fs from "node:fs";
import path from "node:path";

const CPUACCT = "/sys/fs/cgroup/cpuacct";

/** A cpuacct cgroup holding a server's processes. */
export interface CpuAccount {
  /** CPU seconds (user + system) used by every process of the cgroup so far. */
  seconds(): number;
  /** Moves what is left back to the root cgroup and removes this one. */
  stop(): void;
}

/** Puts `pid` (and every child it forks from now on) into a fresh cpuacct cgroup; null when there is no cgroup v1 cpuacct (or not root). */
export function accountCpu(pid: number, name: string): CpuAccount | null {
  if (!fs.existsSync(path.join(CPUACCT, "cgroup.procs")) || process.getuid?.() !== 0) return null;
  const dir = path.join(CPUACCT, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, "cgroup.procs"), String(pid));
  return {
    seconds: () => Number(fs.readFileSync(path.join(dir, "cpuacct.usage"), "utf8")) / 1e9,
    stop() {
      for (const p of fs.readFileSync(path.join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean)) {
        try {
          fs.writeFileSync(path.join(CPUACCT, "cgroup.procs"), p);
        } catch (err) {
          if ((err as { code?: string }).code !== "ESRCH") throw err; // gone meanwhile
        }
      }
      fs.rmdirSync(dir);
    },
  };
}
