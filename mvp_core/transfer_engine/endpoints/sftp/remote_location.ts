/**
 * Where a remote path really is (endpoint.ts Location), asked of the remote shell in one command:
 * the kernel's boot id, the mount namespace and root it runs in, the real path and the
 * device:inode of the entry and each ancestor, and the file system type. A host without a shell
 * (SFTP only) can tell only the real path: its locations are then comparable only with another
 * session of the same account on the same host (same host key and user), and never prove "apart".
 */
import type { Location } from "../endpoint.ts";
import { shQuote } from "./remote_shell.ts";

/** GNU `stat -f -c %T` names of file systems another machine may serve too (NFS, SMB, FUSE…). */
const SHARED_FS_NAMES = /^(nfs|cifs|smb|fuse|ceph|v9fs|9p|afs|lustre|gpfs|ocfs2|gfs|coda|novell|vboxsf|glusterfs|beegfs|panfs)/i;

/**
 * The command: walks up from `abs` to the nearest existing entry, resolves its parent's links (not
 * the entry's own: a link is located as itself), then prints NUL-separated key/value pairs.
 */
export function locateScript(abs: string): string {
  return [
    `p=${shQuote(abs)}; m=`,
    `while [ "$p" != / ] && [ ! -e "$p" ] && [ ! -L "$p" ]; do m="\${p##*/}\${m:+/$m}"; p="\${p%/*}"; p="\${p:-/}"; done`,
    `if [ "$p" = / ]; then r=/; else d="\${p%/*}"; d=$(cd -P -- "\${d:-/}" && pwd -P) || exit 3; r="\${d%/}/\${p##*/}"; fi`,
    `if [ -L "$r" ]; then t="\${r%/*}"; t="\${t:-/}"; else t="$r"; fi`,
    `printf 'kernel\\0%s\\0mntns\\0%s\\0root\\0%s\\0real\\0%s\\0missing\\0%s\\0fstype\\0%s\\0' "$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)" "$(readlink /proc/self/ns/mnt 2>/dev/null)" "$(stat -c %d:%i / 2>/dev/null)" "$r" "$m" "$(stat -f -c %T -- "$t" 2>/dev/null)"`,
    `c="$r"; while :; do printf 'id\\0%s\\0' "$(stat -c %d:%i -- "$c")" || exit 4; [ "$c" = / ] && break; c="\${c%/*}"; c="\${c:-/}"; done`,
  ].join("\n");
}

/** Parses locateScript's output; null when it is not complete (the caller then asks over SFTP). */
export function parseLocate(stdout: Uint8Array): Location | null {
  const fields = new TextDecoder().decode(stdout).split("\0");
  const one = new Map<string, string>();
  const chain: string[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const [key, value] = [fields[i] as string, fields[i + 1] as string];
    if (key === "id") {
      if (!/^\d+:\d+$/.test(value)) return null;
      chain.push(value);
    } else one.set(key, value);
  }
  const real = one.get("real");
  if (real === undefined || !real.startsWith("/") || chain.length === 0) return null;
  const kernel = one.get("kernel") || null;
  const fstype = one.get("fstype") ?? "";
  return {
    kernel,
    scope: `local:${kernel ?? "?"}:${one.get("mntns") || "?"}:${one.get("root") || "?"}`,
    realPath: real,
    missing: one.get("missing") ?? "",
    chain: kernel === null ? null : chain,
    shared: fstype === "" || /^UNKNOWN/.test(fstype) ? null : SHARED_FS_NAMES.test(fstype),
  };
}

/** The scope of a host seen only through SFTP: one account on one host (by its key). */
export function sftpOnlyScope(fingerprint: string, username: string): string {
  return `ssh:${fingerprint}:${username}`;
}
