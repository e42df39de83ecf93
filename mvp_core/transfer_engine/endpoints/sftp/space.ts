/** Free space below the root over SFTP (statvfs@openssh.com): the engine's space check and the writers' full-disk test. */
import type { SpaceInfo } from "../endpoint.ts";
import { TransferError } from "../../errors.ts";
import type { RemoteHost } from "./remote_host.ts";
import { FX_NO_SUCH_FILE, sftpStatus } from "./sftp_calls.ts";

type Vfs = { f_bavail: number | bigint; f_frsize: number | bigint; f_blocks: number | bigint };

/** Free and total bytes of the file system holding `path` (or, when it does not exist yet, its nearest existing ancestor). */
export function freeSpace(host: RemoteHost, path: string, signal?: AbortSignal): Promise<SpaceInfo> {
  return host.op(path, "check space", signal, async () => {
    const { abs } = await host.guard.prepare(path);
    const sftp = await host.conn.sftp();
    const statvfs = (at: string): Promise<Vfs> => host.call<Vfs>((cb) => {
      try {
        sftp.ext_openssh_statvfs(at, cb);
      } catch (err) {
        // ssh2 throws synchronously when the server lacks statvfs@openssh.com.
        throw new TransferError("UNSUPPORTED", `${host.label} cannot report free space`, { cause: err });
      }
    });
    for (let at = abs; ;) {
      try {
        const info = await statvfs(at);
        return { freeBytes: Number(info.f_bavail) * Number(info.f_frsize), totalBytes: Number(info.f_blocks) * Number(info.f_frsize) };
      } catch (err) {
        // A folder not created yet lives on its nearest existing ancestor's file system.
        if (sftpStatus(err) !== FX_NO_SUCH_FILE || at === host.root) throw err;
        at = at.slice(0, at.lastIndexOf("/")) || "/";
      }
    }
  });
}
