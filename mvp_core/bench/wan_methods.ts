/**
 * The command lines `bench:wan` times: Ketter's CLI and the tools people use instead — scp, rsync,
 * tar through ssh, rclone over SFTP — all pushing a folder from LAB to a new folder on SRVTRF, and
 * the two resumable ones for the resume scenario. Every OpenSSH tool uses aes128-gcm@openssh.com
 * (what Ketter negotiates) and checks SRVTRF's pinned host key.
 */
import path from "node:path";
import { shq } from "./timed_run.ts";

const REPO = path.resolve(import.meta.dir, "../..");
/** The engine CLI (the restructured engine keeps it in cli/). */
export const KETTER_CLI = path.join(REPO, "mvp_core/transfer_engine/cli/cli.ts");
/** The cipher of every OpenSSH tool. */
export const CIPHER = "aes128-gcm@openssh.com";

/** Where the tools connect and how they log in. */
export interface WanLink {
  host: string;
  port: number;
  username: string;
  keyFile: string;
  /** known_hosts holding SRVTRF's key for every host name ("*"), so the tools check it on every path. */
  knownHosts: string;
  hostKeyFingerprint: string;
}

/** One timed method: `argv` copies folder `src` to the new folder `dst` (absolute on SRVTRF). */
export interface WanMethod {
  name: string;
  /** Ketter's CLI (peak RSS reported, JSON result kept). */
  ketter: boolean;
  /** Only when named in --methods (Ketter with a forced strategy, for investigations). */
  extra?: boolean;
  argv(src: string, dst: string, link: WanLink): string[];
}

/** Ketter's own options for a run: the transfer id (a second run after a kill is "the same transfer"), a strategy, and the stream tuning. */
export interface KetterOptions {
  id?: string;
  strategy?: "direct" | "zip";
  /** --streams: streams per transfer at most (default: chosen from the link's round trip, up to 8). */
  streams?: number;
  /** --max-connections: SSH connections to SRVTRF at most (default 4). */
  maxConnections?: number;
}

/**
 * Ketter's command line — the one place to change it: the engine CLI with its default strategy
 * and checksum verification; big files go as ranges over several streams and connections (chosen
 * from the link, or set by `streams`/`maxConnections`), and a run with the `id` of a killed one
 * resumes from what arrived.
 */
export function ketterArgv(src: string, dst: string, link: WanLink, opts: KetterOptions = {}): string[] {
  return [
    "bun", KETTER_CLI, "--from", src, "--to", `sftp://${link.username}@${link.host}:${link.port}${dst}`,
    "--identity", link.keyFile, "--host-key", link.hostKeyFingerprint, "--mode", "copy", "--verify", "checksum", "--json",
    ...(opts.id ? ["--id", opts.id] : []),
    ...(opts.strategy ? ["--strategy", opts.strategy] : []),
    ...(opts.streams !== undefined ? ["--streams", String(opts.streams)] : []),
    ...(opts.maxConnections !== undefined ? ["--max-connections", String(opts.maxConnections)] : []),
  ];
}

/** ssh(1) options of every OpenSSH tool (no port: ssh spells it -p, scp -P). */
function sshOptions(link: WanLink): string[] {
  return [
    "-i", link.keyFile, "-c", CIPHER, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
    "-o", `UserKnownHostsFile=${link.knownHosts}`, "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR",
  ];
}

function rsyncShell(link: WanLink): string {
  return ["ssh", ...sshOptions(link), "-p", String(link.port)].map(shq).join(" ");
}

/** `rsync -a` plus `extra` options, folder contents into the new folder. */
export function rsyncArgv(src: string, dst: string, link: WanLink, extra: string[] = []): string[] {
  return ["rsync", "-a", ...extra, "-e", rsyncShell(link), `${src}/`, `${link.username}@${link.host}:${dst}/`];
}

/**
 * Every method `--methods` may name; rclone only when installed. The default matrix leaves out the
 * `extra` ones. `tuning` (bench:wan's --streams/--max-connections) goes to every Ketter run.
 */
export function wanMethods(tuning: Pick<KetterOptions, "streams" | "maxConnections"> = {}): WanMethod[] {
  const list: WanMethod[] = [
    { name: "ketter", ketter: true, argv: (src, dst, l) => ketterArgv(src, dst, l, tuning) },
    { name: "ketter direct", ketter: true, extra: true, argv: (src, dst, l) => ketterArgv(src, dst, l, { ...tuning, strategy: "direct" }) },
    { name: "ketter zip", ketter: true, extra: true, argv: (src, dst, l) => ketterArgv(src, dst, l, { ...tuning, strategy: "zip" }) },
    { name: "scp -r", ketter: false, argv: (src, dst, l) => ["scp", "-q", "-r", ...sshOptions(l), "-P", String(l.port), src, `${l.username}@${l.host}:${dst}`] },
    { name: "rsync -a", ketter: false, argv: (src, dst, l) => rsyncArgv(src, dst, l) },
    {
      name: "tar | ssh",
      ketter: false,
      argv: (src, dst, l) => ["sh", "-c", `tar -C ${shq(src)} -cf - . | ssh ${[...sshOptions(l), "-p", String(l.port), "-l", l.username, l.host].map(shq).join(" ")} ${shq(`mkdir -p ${shq(dst)} && tar -C ${shq(dst)} -xf -`)}`],
    },
  ];
  if (Bun.which("rclone")) {
    list.push({
      name: "rclone copy",
      ketter: false,
      // Default options: 4 files at a time, a hash check over ssh after each upload (like Ketter's checksum).
      argv: (src, dst, l) => [
        "rclone", "copy", "-q", "--sftp-host", l.host, "--sftp-port", String(l.port), "--sftp-user", l.username, "--sftp-key-file", l.keyFile,
        "--sftp-known-hosts-file", l.knownHosts, "--sftp-shell-type", "unix", src, `:sftp:${dst}`,
      ],
    });
  }
  return list;
}

/** The OpenSSH tools the ratios compare with ("the fastest OpenSSH tool"). */
export const OPENSSH_TOOLS = ["scp -r", "rsync -a", "tar | ssh"] as const;
