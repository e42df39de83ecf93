/**
 * Opening a remote file for writing, and which writer gets it (writers.ts): a writer lane for a big
 * file of known size, one exec per stream of unknown size, SFTP for small files and for hosts
 * without a shell. Writers on exec channels are Ketter's rooted perl programs where the host has
 * perl (links refused at every component); SFTP writes are checked first (root_guard.ts).
 */
import { posix } from "node:path";
import type { SFTPWrapper, Stats } from "ssh2";
import type { FileWriter, WriteOptions } from "../endpoint.ts";
import { TransferError } from "../../errors.ts";
import { normalizeRel, parentRel } from "../../paths.ts";
import { EXEC_STREAM_MIN_BYTES } from "./file_read.ts";
import type { RemoteHost } from "./remote_host.ts";
import { type RemoteTools, perlWriteCommand, rooted, shQuote } from "./remote_shell.ts";
import { FX_FAILURE, FX_NO_SUCH_FILE, S_IFLNK, S_IFMT, S_IFREG, sftpStatus } from "./sftp_calls.ts";
import { ExecWriter, LaneWriter, type RangeTarget, SftpWriter } from "./writers.ts";

/** SFTP open flags of a range writer: write, create when missing, never truncate (ssh2's OPEN_MODE). */
const SFTP_WRITE_CREATE = 0x02 | 0x08;

/** Creates or truncates `path` for writing, or (opts.offset) writes a range of it (see the file comment for which writer). */
export function openWrite(host: RemoteHost, path: string, opts: WriteOptions = {}): Promise<FileWriter> {
  return host.op(path, "write", opts.signal, async () => {
    const rel = normalizeRel(path);
    if (rel === "") throw new TransferError("INVALID_SPEC", "cannot write to the portal's root itself");
    const abs = host.guard.abs(rel);
    await host.guard.ensureSafeDir(host.guard.abs(parentRel(rel)), rel);
    if (opts.offset !== undefined) return await rangeWriter(host, rel, abs, opts.size ?? 0, { offset: opts.offset, onWritten: opts.onWritten }, opts.signal);
    host.crc.drop(abs);
    const big = opts.size === undefined || opts.size >= EXEC_STREAM_MIN_BYTES;
    const tools = big ? await host.tools(opts.signal) : null;
    const exec = tools?.shell === true && tools.commands.has("cat");
    const sftp = await host.conn.sftp();
    if (!exec) {
      // Common case, one round trip: create exclusively (O_EXCL never follows a link). Anything
      // already there (a FAILURE from sftp-server) takes the careful path below.
      const handle = await host.call<Buffer>((cb) => sftp.open(abs, "wx", { mode: opts.mode ?? 0o644 }, cb)).catch((e: unknown) => {
        if (sftpStatus(e) === FX_FAILURE) return null;
        throw e;
      });
      if (handle) return new SftpWriter(host, sftp, handle, rel, abs, opts.mode, opts.signal);
    }
    await checkExisting(host, sftp, rel, abs);
    if (exec) return await execWriter(host, rel, abs, opts.size, opts.mode, tools!, opts.signal);
    return await sftpWriter(host, sftp, rel, abs, opts.mode, opts.signal);
  });
}

/** Before an SFTP open that may meet an existing entry: a link must point inside the root, anything but a file is refused. */
async function checkExisting(host: RemoteHost, sftp: SFTPWrapper, rel: string, abs: string): Promise<void> {
  const existing = await host.call<Stats>((cb) => sftp.lstat(abs, cb)).catch((e: unknown) => {
    if (sftpStatus(e) === FX_NO_SUCH_FILE) return null;
    throw e;
  });
  if (existing && (existing.mode & S_IFMT) === S_IFLNK) {
    // Opening a link writes (or creates) its target: that must stay inside the root too.
    const [parentReal, link] = await Promise.all([
      host.call<string>((cb) => sftp.realpath(host.guard.abs(parentRel(rel)), cb)),
      host.call<string>((cb) => sftp.readlink(abs, cb)),
    ]);
    const target = posix.resolve(parentReal, link);
    if (!host.guard.inside(target)) throw host.guard.escape(rel, target, "is a symbolic link pointing to");
  } else if (existing && (existing.mode & S_IFMT) !== S_IFREG) {
    throw new TransferError("TARGET_EXISTS", `${JSON.stringify(rel)} exists and is not a regular file`, { details: { path: rel } });
  }
}

/**
 * A range of a file: a writer lane that seeks (rooted perl: links refused at every component, and
 * CRC-32 and progress reported by the remote), else SFTP writes at the offset (opened without
 * truncating, after the same check as any SFTP write). Measured in docs/ssh.md: the lane.
 */
async function rangeWriter(host: RemoteHost, rel: string, abs: string, size: number, range: RangeTarget, signal?: AbortSignal): Promise<FileWriter> {
  const tools = await host.tools(signal);
  if (rooted(tools)) return new LaneWriter(host, host.lanes, await host.lanes.acquire(signal), rel, abs, size, undefined, signal, range);
  const sftp = await host.conn.sftp();
  await checkExisting(host, sftp, rel, abs);
  const handle = await host.call<Buffer>((cb) => sftp.open(abs, SFTP_WRITE_CREATE, { mode: 0o600 }, cb));
  return new SftpWriter(host, sftp, handle, rel, abs, undefined, signal, range);
}

/**
 * Writer over an exec byte stream: a lane when the size is known and the host has perl (many
 * files per process), else one command per stream (`perl` writer hashing as it writes, or `cat >`).
 */
async function execWriter(host: RemoteHost, rel: string, abs: string, size: number | undefined, mode: number | undefined, tools: RemoteTools, signal?: AbortSignal): Promise<FileWriter> {
  if (tools.perlZlib && size !== undefined) {
    const lane = await host.lanes.acquire(signal);
    return new LaneWriter(host, host.lanes, lane, rel, abs, size, mode, signal);
  }
  if (tools.perlZlib) return new ExecWriter(host, await host.pool.exec(perlWriteCommand(host.root, rel, mode), signal, true), rel, abs, signal, true);
  const chmod = mode === undefined ? "" : ` && chmod ${(mode & 0o7777).toString(8)} -- ${shQuote(abs)}`;
  return new ExecWriter(host, await host.pool.exec(`umask 077 && cat > ${shQuote(abs)}${chmod}`, signal, true), rel, abs, signal, false);
}

async function sftpWriter(host: RemoteHost, sftp: SFTPWrapper, rel: string, abs: string, mode: number | undefined, signal?: AbortSignal): Promise<FileWriter> {
  const handle = await host.call<Buffer>((cb) => sftp.open(abs, "w", { mode: mode ?? 0o644 }, cb));
  return new SftpWriter(host, sftp, handle, rel, abs, mode, signal);
}
