/**
 * Where a remote path really is (endpoint.ts Location), asked of the remote shell in one command:
 * the kernel's boot id, the mount namespace and root it runs in, the real path and the
 * device:inode of the entry and each ancestor, and the file system type. A host without a shell
 * (SFTP only) can tell only the real path: its locations are then comparable only with another
 * session of the same account on the same host (same host key and user), and never prove "apart".
 */
import type { Stats } from "ssh2";
import type { Location, OpOptions } from "../endpoint.ts";
import { throwIfCancelled } from "../../cancel.ts";
import { normalizeRel } from "../../paths.ts";
import type { RemoteHost } from "./remote_host.ts";
import { locateCommand } from "./remote_shell.ts";
import { FX_NO_SUCH_FILE, sftpStatus } from "./sftp_calls.ts";

/** GNU `stat -f -c %T` names of file systems another machine may serve too (NFS, SMB, FUSE…). */
const SHARED_FS_NAMES = /^(nfs|cifs|smb|fuse|ceph|v9fs|9p|afs|lustre|gpfs|ocfs2|gfs|coda|novell|vboxsf|glusterfs|beegfs|panfs)/i;

/** Parses programs/locate.sh's output; null when it is not complete (the caller then asks over SFTP). */
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

/** Where `path` (or its nearest existing ancestor) really is: asked of the shell, else (SFTP only) its real path. */
export function locate(host: RemoteHost, path: string, opts: OpOptions = {}): Promise<Location> {
  return host.op(path, "locate", opts.signal, async () => {
    const abs = host.guard.abs(normalizeRel(path));
    // The command starts while the tools probe (begun at connect) may still run: on a host with a
    // shell that saves one exec's round trip before the first byte. A host without one refuses it
    // or answers nothing parseLocate accepts; it is stopped then and the SFTP answer below is used.
    const stop = new AbortController();
    const asked = host.probed?.shell === false ? null : askShell(host, abs, opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal);
    const t = await host.tools(opts.signal).catch((err: unknown) => {
      stop.abort();
      throw err;
    });
    if (asked !== null && t.shell && t.commands.has("stat")) {
      const seen = await asked;
      throwIfCancelled(opts.signal); // (askShell answers null when cancelled)
      if (seen !== null) return seen;
    } else stop.abort();
    // SFTP only: the real path of the nearest existing entry (its parent resolved, not itself).
    const sftp = await host.conn.sftp();
    const missing: string[] = [];
    for (let at = abs; ;) {
      const parent = at.slice(0, at.lastIndexOf("/")) || "/";
      const exists = at === "/" || (await host.call<Stats>((cb) => sftp.lstat(at, cb)).then(() => true, (e: unknown) => {
        if (sftpStatus(e) === FX_NO_SUCH_FILE) return false;
        throw e;
      }));
      if (exists) {
        const realParent = at === "/" ? "/" : await host.call<string>((cb) => sftp.realpath(parent, cb));
        const realPath = at === "/" ? "/" : `${realParent === "/" ? "" : realParent}/${at.slice(at.lastIndexOf("/") + 1)}`;
        const user = host.label.slice(0, host.label.indexOf("@"));
        return { kernel: null, scope: sftpOnlyScope(host.conn.fingerprint, user), realPath, missing: missing.join("/"), chain: null, shared: null };
      }
      missing.unshift(at.slice(at.lastIndexOf("/") + 1));
      at = parent;
    }
  });
}

/** programs/locate.sh's answer; null when the command failed, was refused or answered incompletely. */
function askShell(host: RemoteHost, abs: string, signal: AbortSignal): Promise<Location | null> {
  return host.run(locateCommand(abs), { signal }).then(
    (r) => (r.code === 0 ? parseLocate(r.stdout) : null),
    () => null,
  );
}
