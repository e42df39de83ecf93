/**
 * Where a local path really is (endpoint.ts Location): the kernel's boot id, the real path and the
 * device and inode of it and of every ancestor. Inode identities hold across bind mounts, symlinks,
 * chroots and containers on one kernel, so a local portal and an SSH portal reaching the same disk
 * through localhost are recognised as the same place.
 */
import fs from "node:fs";
import path from "node:path";
import type { Location } from "../endpoint.ts";
import { fromSystemError } from "../../errors.ts";

/**
 * statfs f_type of file systems another machine may also serve (NFS, SMB/CIFS, FUSE such as sshfs,
 * Ceph, 9p, AFS, Lustre, GPFS, GlusterFS via FUSE…): a path on one of them can be the same files
 * as a path on another host, which no inode comparison across kernels would show.
 */
const SHARED_FS_TYPES = new Set([
  0x6969, // nfs
  0x517b, // smb
  0xff534d42, // cifs
  0xfe534d42, // smb2
  0x65735546, // fuse
  0x00c36400, // ceph
  0x01021997, // 9p (v9fs)
  0x5346414f, // afs
  0x6b414653, // kafs
  0x0bd00bd0, // lustre
  0x47504653, // gpfs
  0x7461636f, // ocfs2
  0x01161970, // gfs2
  0x73757245, // coda
  0x564c, // ncp
  0x786f4256, // vboxsf
]);

let identity: { kernel: string | null; scope: string } | undefined;

/** This kernel's boot id and the namespace local real paths live in (cached: neither changes while we run). */
export function localIdentity(): { kernel: string | null; scope: string } {
  if (identity === undefined) {
    const kernel = readOrNull("/proc/sys/kernel/random/boot_id");
    let mountNs = "?";
    try {
      mountNs = fs.readlinkSync("/proc/self/ns/mnt");
    } catch {
      // No /proc: the scope falls back to the root's identity alone.
    }
    const root = fs.statSync("/");
    identity = { kernel, scope: `local:${kernel ?? "?"}:${mountNs}:${root.dev}:${root.ino}` };
  }
  return identity;
}

function readOrNull(file: string): string | null {
  try {
    return fs.readFileSync(file, "utf8").trim() || null;
  } catch {
    return null;
  }
}

/** Location of the absolute path `abs`, or of its nearest existing ancestor (with the rest in `missing`). */
export function locateAbsolute(abs: string): Location {
  let existing = abs;
  const missing: string[] = [];
  let real: string;
  for (;;) {
    try {
      real = fs.realpathSync(existing);
      break;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if ((code !== "ENOENT" && code !== "ENOTDIR") || existing === "/") throw fromSystemError(err, existing, "locate");
      missing.unshift(path.basename(existing));
      existing = path.dirname(existing);
    }
  }
  const chain: string[] = [];
  let shared: boolean;
  try {
    for (let p = real; ; p = path.dirname(p)) {
      const st = fs.statSync(p);
      chain.push(`${st.dev}:${st.ino}`);
      if (p === "/") break;
    }
    shared = SHARED_FS_TYPES.has(fs.statfsSync(real).type);
  } catch (err) {
    throw fromSystemError(err, real, "locate");
  }
  return { ...localIdentity(), realPath: real, missing: missing.join("/"), chain, shared };
}
