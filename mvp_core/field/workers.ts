/**
 * Worker processes for the kill scenario. The stack's worker is found through /health (worker ids
 * are `host:pid:random`), its environment, folder and log read from /proc, so the extra worker this
 * command starts runs with exactly the stack's settings, and a killed stack worker can be started
 * again exactly as dev_up.sh started it (same command, environment, log file and pid file).
 */
import { closeSync, existsSync, openSync } from "node:fs";
import { readFile, readlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join } from "node:path";

/** A worker process on this host, as /health and /proc describe it. */
export interface WorkerProcess {
  id: string;
  pid: number;
  /** Its parent: dev_up.sh's pid file names this subshell rather than bun itself. */
  ppid: number;
  /** Its environment (the stack's configuration). */
  env: Record<string, string>;
  cwd: string;
  /** Where its stdout goes when that is a file (dev_up's log), else null. */
  logPath: string | null;
}

/** The pid inside a worker id `host:pid:random`, when the worker runs on this host. */
export function localPid(workerId: string): number | null {
  const [host, pid] = workerId.split(":");
  return host === hostname() && pid && /^\d+$/.test(pid) ? Number(pid) : null;
}

/** The first of `ids` (as /health lists them) whose process runs on this host and is still alive, or null. */
export function findLocalWorker(ids: readonly string[]): string | null {
  for (const id of ids) {
    const pid = localPid(id);
    if (pid !== null && existsSync(`/proc/${pid}`)) return id;
  }
  return null;
}

/** Like findLocalWorker, but throws when there is none: the kill scenario needs a worker it can kill. */
export function pickLocalWorker(ids: readonly string[]): string {
  const id = findLocalWorker(ids);
  if (id !== null) return id;
  throw new Error(`none of the live workers (${ids.join(", ") || "none"}) runs on this host (${hostname()}): the kill scenario needs a worker it can kill`);
}

/** Reads a live worker's environment, folder and log from /proc. */
export async function inspectWorker(id: string): Promise<WorkerProcess> {
  const pid = localPid(id);
  if (pid === null) throw new Error(`worker ${id} does not run on this host (${hostname()}): the kill scenario needs a worker it can kill`);
  const raw = await readFile(`/proc/${pid}/environ`, "utf8");
  const env: Record<string, string> = {};
  for (const pair of raw.split("\0")) {
    const eq = pair.indexOf("=");
    if (eq > 0) env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const cwd = await readlink(`/proc/${pid}/cwd`);
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  const out = await readlink(`/proc/${pid}/fd/1`).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return null;
    throw err;
  });
  return { id, pid, ppid, env, cwd, logPath: out && out.startsWith("/") && !out.startsWith("/dev/") ? out.replace(/ \(deleted\)$/, "") : null };
}

/** A worker this command started; its output is kept (tail) for the report. */
export interface OwnWorker {
  pid: number;
  output(): string;
  /** False once it exited (or was killed). */
  alive(): boolean;
  /** SIGTERM and wait (the worker drains and hands its jobs back). */
  stop(): Promise<void>;
}

/** How a worker of another kind than the stack's runs: extra variables (e.g. KETTER_SITE), and a command prefix (e.g. nsenter into a network namespace, which execs in place: the pid stays bun's). */
export interface WorkerVariant {
  env?: Record<string, string>;
  prefix?: string[];
}

/** Starts `bun mvp_core/worker/main.ts` with `like`'s environment (plus `variant.env`) and folder. */
export function spawnWorker(like: WorkerProcess, variant: WorkerVariant = {}): OwnWorker {
  const proc = Bun.spawn([...(variant.prefix ?? []), "bun", "mvp_core/worker/main.ts"], {
    cwd: like.cwd, env: { ...like.env, ...variant.env }, stdin: "ignore", stdout: "pipe", stderr: "pipe",
  });
  const tail: string[] = [];
  for (const stream of [proc.stdout, proc.stderr]) {
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) {
        tail.push(decoder.decode(chunk));
        if (tail.length > 100) tail.shift();
      }
    })();
  }
  return {
    pid: proc.pid,
    output: () => tail.join(""),
    alive: () => proc.exitCode === null && proc.signalCode === null,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const exited = await Promise.race([proc.exited.then(() => true), Bun.sleep(60_000).then(() => false)]);
      if (!exited) {
        proc.kill("SIGKILL");
        await proc.exited;
      }
    },
  };
}

/** SIGKILLs `pid` and waits until it is gone. */
export async function killHard(pid: number): Promise<void> {
  process.kill(pid, "SIGKILL");
  for (let i = 0; i < 200; i++) {
    try {
      process.kill(pid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ESRCH") return;
      throw err;
    }
    await Bun.sleep(25);
  }
  throw new Error(`process ${pid} still alive 5 s after SIGKILL`);
}

/**
 * Starts a killed stack worker again the way dev_up.sh does (`setsid bun mvp_core/worker/main.ts`
 * appending to its log, pid file next to the log updated), so the stack is left as it was found.
 * Returns the new pid.
 */
export async function restartStackWorker(old: WorkerProcess): Promise<number> {
  const logFd = old.logPath ? openSync(old.logPath, "a") : "ignore";
  try {
    const proc = Bun.spawn(["setsid", "bun", "mvp_core/worker/main.ts"], { cwd: old.cwd, env: old.env, stdin: "ignore", stdout: logFd, stderr: logFd });
    // setsid execs in place (we are not a group leader), so this is bun's own pid, as in dev_up.
    proc.unref();
    if (old.logPath) {
      const pidFile = join(dirname(old.logPath), "worker.pid");
      const previous = await readFile(pidFile, "utf8").catch((err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT") return null;
        throw err;
      });
      // dev_down.sh stops what the pid file names: point it at the new process if it named the old one
      // (or, as dev_up.sh writes it today, the subshell that started the old one).
      if (previous !== null && [String(old.pid), String(old.ppid)].includes(previous.trim())) await writeFile(pidFile, `${proc.pid}\n`);
    }
    return proc.pid;
  } finally {
    if (typeof logFd === "number") closeSync(logFd);
  }
}
