/**
 * A throw-away OpenSSH server for tests and the SFTP benchmark: real `/usr/sbin/sshd` on a free
 * loopback port (or inside the WAN testbed's SRVTRF namespace: testing/testbed/), fresh host and
 * client keys, a temporary root folder, and (when running as root) a
 * throw-away unprivileged user with a password, so permission errors behave as in production.
 * `stop()` kills sshd, unmounts what it mounted, deletes the user and every temporary file.
 */
import { mkdtemp, mkdir, readdir, readFile, rm, symlink, writeFile, chmod, chown } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** How to start the test sshd. */
export interface SshdOptions {
  /** Loopback address to listen on, e.g. "127.0.0.5" for a field test (default 127.0.0.1). */
  listenAddress?: string;
  /** Commands hidden from the remote PATH (e.g. ["unzip"]) to exercise fallbacks. */
  hideCommands?: readonly string[];
  /** Only the SFTP subsystem is allowed (ForceCommand internal-sftp): no shell, no exec. */
  sftpOnly?: boolean;
  /**
   * Network namespace to run sshd in (the WAN testbed's SRVTRF): it then listens on every address
   * of that namespace, on `port`, and `listenAddress` is the one address callers connect to.
   */
  netns?: string;
  /** Port inside `netns` (default 22: the namespace is the server's own). Ignored without netns. */
  port?: number;
  /** CPUs sshd and its sessions may run on (`taskset -c` list, e.g. "1"): a server with cores of its own. */
  cpus?: string;
  /** sshd's MaxSessions: channels (shell, exec, SFTP) per connection (default 32). */
  maxSessions?: number;
  /** sshd's MaxStartups: connections waiting for authentication at once, e.g. "1" (default 100). */
  maxStartups?: string;
}

/** A running test sshd and the credentials to reach it. */
export interface TestSshd {
  host: string;
  port: number;
  username: string;
  /** Password of the throw-away user (null when not running as root: password login is then unavailable). */
  password: string | null;
  /** OpenSSH-format private key authorised for `username`. */
  privateKey: string;
  privateKeyPath: string;
  /** Host key fingerprint as `ssh-keygen -l` prints it ("SHA256:…"). */
  hostKeyFingerprint: string;
  /** Absolute folder owned by `username`, the natural endpoint root for tests. */
  root: string;
  /** Harness folder (keys, config); not visible to the remote user's tests. */
  dir: string;
  /** ssh(1) arguments (without the destination command) reaching this server non-interactively. */
  sshArgs(): string[];
  /** Pid of the listening sshd (its /proc entry counts the CPU of every finished session); null while killed. */
  pid(): number | null;
  /** Mounts a tmpfs of `bytes` at `root/<rel>` owned by the user (for full-disk tests); undone by stop(). */
  mountSmallDisk(rel: string, bytes: number): Promise<string>;
  /** SIGKILLs sshd and every session it forked: live connections drop at once. */
  kill(): Promise<void>;
  /** Starts sshd again on the same address, port and keys. */
  restart(): Promise<void>;
  /** Kills sshd and removes the user, mounts and temporary files. */
  stop(): Promise<void>;
}

const SSHD = "/usr/sbin/sshd";

/** Every sshd started and not stopped yet: a test whose set-up failed halfway may never call stop(). */
const running = new Set<TestSshd>();

/** Stops every sshd still running (the test preload calls it after the run); returns how many there were. */
export async function stopAllSshd(): Promise<number> {
  const left = [...running];
  await Promise.allSettled(left.map((s) => s.stop()));
  return left.length;
}

/** Starts a fresh sshd; always pair with `await sshd.stop()` (in afterAll/finally). */
export async function startSshd(opts: SshdOptions = {}): Promise<TestSshd> {
  const host = opts.listenAddress ?? "127.0.0.1";
  const dir = await mkdtemp(join(tmpdir(), "ketter-sshd-"));
  const isRoot = process.getuid?.() === 0;
  const username = isRoot ? `kt${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}` : (process.env.USER ?? "root");
  const password = isRoot ? crypto.randomUUID() : null;
  const mounts: string[] = [];
  let proc: ReturnType<typeof Bun.spawn> | null = null;
  let userCreated = false;
  const logTail: string[] = [];

  const cleanup = async (): Promise<void> => {
    const errors: unknown[] = [];
    if (proc) await killTree(proc.pid).catch((e: unknown) => errors.push(e));
    proc = null;
    for (const m of mounts.reverse()) {
      const r = Bun.spawnSync(["umount", "-l", m]);
      if (r.exitCode !== 0) errors.push(new Error(`umount ${m}: ${r.stderr.toString()}`));
    }
    if (userCreated) {
      // A session of a killed or closing sshd can outlive its listener for a moment (seen under
      // load: "user … is currently used by process N"): end the user's processes and ask again.
      let r = Bun.spawnSync(["userdel", username]);
      for (let i = 0; r.exitCode !== 0 && i < 50; i++) {
        Bun.spawnSync(["pkill", "-KILL", "-u", username]);
        await Bun.sleep(100);
        r = Bun.spawnSync(["userdel", username]);
      }
      if (r.exitCode !== 0) errors.push(new Error(`userdel ${username}: ${r.stderr.toString()}`));
    }
    await rm(dir, { recursive: true, force: true });
    if (errors.length) throw new AggregateError(errors, "test sshd cleanup failed");
  };

  try {
    const home = join(dir, "home");
    const root = join(dir, "root");
    await mkdir(home);
    await mkdir(root);
    await chmod(dir, 0o755);
    await run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ketter-test-host", "-f", join(dir, "host_ed25519")]);
    await run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ketter-test-client", "-f", join(dir, "client_ed25519")]);
    const hostKeyFingerprint = (await run(["ssh-keygen", "-l", "-E", "sha256", "-f", join(dir, "host_ed25519.pub")])).split(" ")[1] ?? "";
    const privateKey = await readFile(join(dir, "client_ed25519"), "utf8");
    await writeFile(join(dir, "authorized_keys"), await readFile(join(dir, "client_ed25519.pub"), "utf8"));

    if (isRoot) {
      await run(["useradd", "-M", "-d", home, "-s", "/bin/bash", username]);
      userCreated = true;
      await run(["chpasswd"], `${username}:${password}\n`);
      const uid = Number(await run(["id", "-u", username]));
      const gid = Number(await run(["id", "-g", username]));
      await chown(home, uid, gid);
      await chown(root, uid, gid);
    }

    const env: string[] = [];
    if (opts.hideCommands?.length) env.push(`SetEnv PATH=${await pathWithout(dir, opts.hideCommands)}`);
    const port = opts.netns ? (opts.port ?? 22) : await freePort(host);
    const config = [
      `ListenAddress ${opts.netns ? "0.0.0.0" : host}`,
      `Port ${port}`,
      `HostKey ${join(dir, "host_ed25519")}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      "StrictModes no",
      "UsePAM no",
      `PermitRootLogin ${isRoot ? "no" : "prohibit-password"}`,
      `PasswordAuthentication ${isRoot ? "yes" : "no"}`,
      "KbdInteractiveAuthentication no",
      "PubkeyAuthentication yes",
      `AllowUsers ${username}`,
      `MaxStartups ${opts.maxStartups ?? "100"}`,
      `MaxSessions ${opts.maxSessions ?? 32}`,
      "LogLevel ERROR",
      `Subsystem sftp ${opts.sftpOnly ? "internal-sftp" : "/usr/lib/openssh/sftp-server"}`,
      ...(opts.sftpOnly ? ["ForceCommand internal-sftp"] : []),
      ...env,
    ];
    await writeFile(join(dir, "sshd_config"), config.join("\n") + "\n");
    await mkdir("/run/sshd", { recursive: true }).catch(() => undefined); // only root needs it; others cannot create it

    const start = async (): Promise<void> => {
      // nsenter, not `ip netns exec`: that one also gives sshd a mount namespace of its own, and on
      // a host whose / is private, disks mounted later (scratch disks, mountSmallDisk) would not be
      // visible to it. nsenter execs sshd in place, so kill() still reaches it by pid.
      const inNetns = opts.netns ? ["nsenter", `--net=/run/netns/${opts.netns}`] : [];
      const onCpus = opts.cpus ? ["taskset", "-c", opts.cpus] : [];
      const p = Bun.spawn([...onCpus, ...inNetns, SSHD, "-D", "-e", "-f", join(dir, "sshd_config")], { stdout: "ignore", stderr: "pipe" });
      proc = p;
      void collect(p.stderr, logTail);
      await waitForPort(host, port, p, logTail);
    };
    await start();

    const sshd: TestSshd = {
      host, port, username, password, privateKey, hostKeyFingerprint, root, dir,
      privateKeyPath: join(dir, "client_ed25519"),
      pid: () => proc?.pid ?? null,
      sshArgs: () => [
        "-p", String(port), "-i", join(dir, "client_ed25519"), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
        "-o", `UserKnownHostsFile=${join(dir, "known_hosts")}`, "-o", "StrictHostKeyChecking=no", "-o", "LogLevel=ERROR",
        "-l", username,
      ],
      async mountSmallDisk(rel, bytes) {
        const at = join(root, rel);
        await mkdir(at, { recursive: true });
        await run(["mount", "-t", "tmpfs", "-o", `size=${bytes},mode=0755`, "tmpfs", at]);
        mounts.push(at);
        if (isRoot) await run(["chown", `${username}:`, at]);
        return at;
      },
      async kill() {
        if (proc) await killTree(proc.pid);
        proc = null;
      },
      async restart() {
        if (proc) await killTree(proc.pid);
        await start();
      },
      async stop() {
        running.delete(sshd);
        await cleanup();
      },
    };
    running.add(sshd);
    return sshd;
  } catch (err) {
    await cleanup().catch(() => undefined); // the original error is the one worth reporting
    throw err;
  }
}

/** Runs a command, returns trimmed stdout, throws with stderr on failure. */
async function run(cmd: string[], stdin?: string): Promise<string> {
  const p = Bun.spawn(cmd, { stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin), stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${cmd[0]} exited ${code}: ${err.trim()}`);
  return out.trim();
}

async function collect(stream: ReadableStream<Uint8Array>, tail: string[]): Promise<void> {
  const dec = new TextDecoder();
  for await (const chunk of stream) {
    tail.push(dec.decode(chunk));
    if (tail.length > 50) tail.shift();
  }
}

/** Asks the kernel for a free port on `host` (bind port 0, then release it). */
async function freePort(host: string): Promise<number> {
  const server = Bun.listen({ hostname: host, port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}

async function waitForPort(host: string, port: number, p: { exitCode: number | null }, logTail: string[]): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (p.exitCode !== null) throw new Error(`sshd exited ${p.exitCode}: ${logTail.join("").trim()}`);
    const ok = await new Promise<boolean>((resolve) => {
      Bun.connect({
        hostname: host, port,
        socket: {
          open(s) { s.end(); resolve(true); },
          data() {},
          connectError() { resolve(false); },
          error() { resolve(false); },
        },
      }).catch(() => resolve(false));
    });
    if (ok) return;
    await Bun.sleep(50);
  }
  throw new Error(`sshd did not listen on ${host}:${port} within 15 s: ${logTail.join("").trim()}`);
}

/** SIGKILLs `pid` and all its descendants (sshd forks one process per connection). */
async function killTree(pid: number): Promise<void> {
  const children = new Map<number, number[]>();
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, "utf8").catch(() => null); // processes vanish while we look
    if (!stat) continue;
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const all: number[] = [];
  const visit = (p: number): void => {
    all.push(p);
    for (const c of children.get(p) ?? []) visit(c);
  };
  visit(pid);
  // The listener first, so it cannot fork replacements while the sessions die.
  for (const p of all) {
    try {
      process.kill(p, "SIGKILL");
    } catch (err) {
      if ((err as { code?: string }).code !== "ESRCH") throw err;
    }
  }
  for (let i = 0; i < 100 && all.some(alive); i++) await Bun.sleep(20);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === "ESRCH") return false;
    throw err;
  }
}

/** A PATH folder of links to every standard command except `hidden`. */
async function pathWithout(dir: string, hidden: readonly string[]): Promise<string> {
  const bin = join(dir, "bin");
  await mkdir(bin);
  await chmod(bin, 0o755);
  const seen = new Set<string>();
  for (const d of ["/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin", "/sbin"]) {
    const names = await readdir(d).catch(() => [] as string[]); // a missing standard folder is fine
    for (const n of names) {
      if (seen.has(n) || hidden.includes(n)) continue;
      seen.add(n);
      await symlink(join(d, n), join(bin, n));
    }
  }
  return bin;
}
