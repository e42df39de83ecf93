/**
 * The SSH endpoint: SFTP for metadata and small files (many requests in flight), a plain byte
 * stream over an exec channel for big files and zip archives (measured ~1.5x faster than SFTP),
 * and remote programs for hashing, unpacking, packing and listing when the host offers a shell.
 * This file is the Endpoint facade and the operations on single entries (symlink, rename, remove);
 * each other concern has a file of its own (see docs/ssh.md for the map).
 */
import type { Stats } from "ssh2";
import type {
  Capabilities, Endpoint, Entry, FileRange, FileWriter, HashAlgorithm, Location, OpOptions, ReadOptions, SpaceInfo, StreamCapacity, UnzipStreamEntry, WriteOptions,
} from "../endpoint.ts";
import { TransferError } from "../../errors.ts";
import { mkdir, mkdirMany, setAttributes, setAttributesMany } from "./batch.ts";
import type { ConnectionPool } from "./connection_pool.ts";
import type { RunResult } from "./exec.ts";
import { openRead } from "./file_read.ts";
import { openWrite } from "./file_write.ts";
import { RemoteHost } from "./remote_host.ts";
import { READBACK_HASHES, hashFiles } from "./remote_hash.ts";
import { locate } from "./remote_location.ts";
import { crcRanges, streamCapacity } from "./remote_ranges.ts";
import { type RemoteTools, commandError, remoteHashes, removeCommand, rooted } from "./remote_shell.ts";
import { canPack, canUnzip, canUnzipStream, openUnzipStream, packFolder, unzipArchive } from "./remote_zip.ts";
import { FX_FAILURE, FX_NO_SUCH_FILE, S_IFDIR, S_IFMT, hasExtension, sftpStatus } from "./sftp_calls.ts";
import { freeSpace } from "./space.ts";
import { stat, statMany, walk } from "./walk.ts";

type Done = (e: Error | null | undefined) => void;

/** An SSH-backed Endpoint; create it with connectSsh(). */
export class SftpEndpoint implements Endpoint {
  readonly kind = "sftp" as const;
  private readonly host: RemoteHost;
  /** Present only while the host may have unzip/bsdtar; removed once the probe says otherwise. */
  unzip?: (archive: string, into: string, opts?: OpOptions) => Promise<void>;
  /** Present only while the host may have perl with zlib; removed once the probe says otherwise. */
  unzipStream?: (into: string, entries: readonly UnzipStreamEntry[], opts?: OpOptions) => Promise<FileWriter>;
  /** Present only while the host may have perl with zlib; removed once the probe says otherwise. */
  packZip?: (path: string, opts?: OpOptions) => AsyncIterable<Uint8Array>;
  /** Present only while the host may have perl and GNU find; removed once the probe says otherwise. */
  statMany?: (paths: readonly string[], opts?: OpOptions) => Promise<Map<string, Entry | null>>;
  /** Present only while the host may have perl; removed once the probe says otherwise. */
  crcRanges?: (ranges: readonly FileRange[], opts?: OpOptions) => Promise<(number | null)[]>;

  constructor(pool: ConnectionPool, root: string, readonly label: string) {
    this.host = new RemoteHost(pool, root, label, (t) => this.adopt(t));
    this.unzip = (archive, into, opts) => unzipArchive(this.host, archive, into, opts);
    this.unzipStream = (into, entries, opts) => openUnzipStream(this.host, into, entries, opts);
    this.packZip = (path, opts) => packFolder(this.host, path, opts);
    this.statMany = (paths, opts) => statMany(this.host, paths, opts);
    this.crcRanges = (ranges, opts) => crcRanges(this.host, ranges, opts);
  }

  /** Canonical absolute root on the remote (after realpath). */
  get root(): string {
    return this.host.root;
  }

  /** The host key fingerprint seen when connecting. */
  get fingerprint(): string {
    return this.host.conn.fingerprint;
  }

  /** Drops the optional methods the host cannot back, so `typeof ep.unzip` tells the truth. */
  private adopt(t: RemoteTools): void {
    if (!canUnzip(t)) this.unzip = undefined;
    if (!canUnzipStream(t)) this.unzipStream = undefined;
    if (!canPack(t)) this.packZip = undefined;
    if (!(rooted(t) && t.gnuFind)) this.statMany = undefined;
    if (!rooted(t)) this.crcRanges = undefined;
  }

  /**
   * Remote tools, probed once with one exec; `started` is that exec already under way (connectSsh
   * starts it while it checks the root).
   */
  tools(signal?: AbortSignal, started?: Promise<RunResult>): Promise<RemoteTools> {
    return this.host.tools(signal, started);
  }

  stat(path: string, opts: OpOptions = {}): Promise<Entry | null> {
    return stat(this.host, path, opts);
  }

  walk(path: string, opts: OpOptions = {}): AsyncIterable<Entry> {
    return walk(this.host, path, opts);
  }

  openRead(path: string, opts: ReadOptions = {}): AsyncIterable<Uint8Array> {
    return openRead(this.host, path, opts);
  }

  openWrite(path: string, opts: WriteOptions = {}): Promise<FileWriter> {
    return openWrite(this.host, path, opts);
  }

  streamCapacity(opts: OpOptions = {}): Promise<StreamCapacity> {
    return streamCapacity(this.host, opts);
  }

  warmStreams(streams: number): void {
    this.host.pool.warm(streams);
  }

  mkdir(path: string, opts: OpOptions & { mode?: number; recursive?: boolean } = {}): Promise<void> {
    return mkdir(this.host, path, opts);
  }

  mkdirMany(dirs: readonly { path: string; mode?: number }[], opts: OpOptions = {}): Promise<void> {
    return mkdirMany(this.host, dirs, opts);
  }

  setAttributes(path: string, attrs: { mtimeMs?: number; mode?: number }, opts: OpOptions = {}): Promise<void> {
    return setAttributes(this.host, path, attrs, opts);
  }

  setAttributesMany(items: readonly { path: string; mtimeMs?: number; mode?: number }[], opts: OpOptions = {}): Promise<void> {
    return setAttributesMany(this.host, items, opts);
  }

  space(path: string, opts: OpOptions = {}): Promise<SpaceInfo> {
    return freeSpace(this.host, path, opts.signal);
  }

  locate(path: string, opts: OpOptions = {}): Promise<Location> {
    return locate(this.host, path, opts);
  }

  hashFiles(paths: readonly string[], algorithm: HashAlgorithm, opts: OpOptions = {}): Promise<Map<string, string>> {
    return hashFiles(this.host, paths, algorithm, opts);
  }

  capabilities(opts: OpOptions = {}): Promise<Capabilities> {
    return this.host.op("", "probe", opts.signal, async () => {
      const t = await this.host.tools(opts.signal);
      const remote = remoteHashes(t);
      return { hashes: remote.length ? remote : READBACK_HASHES, unzip: canUnzip(t), packZip: canPack(t) };
    });
  }

  async symlink(target: string, path: string, opts: OpOptions = {}): Promise<void> {
    const host = this.host;
    await host.op(path, "create link", opts.signal, async () => {
      const { rel, abs } = await host.guard.prepare(path);
      const sftp = await host.conn.sftp();
      try {
        await host.call<void>((cb) => sftp.symlink(target, abs, cb as Done));
      } catch (err) {
        if (sftpStatus(err) === FX_FAILURE && (await this.stat(rel))) throw new TransferError("TARGET_EXISTS", `create link ${JSON.stringify(rel)}: already exists`, { details: { path: rel } });
        throw err;
      }
    });
  }

  async rename(from: string, to: string, opts: OpOptions & { replace?: boolean } = {}): Promise<void> {
    const host = this.host;
    await host.op(from, "rename", opts.signal, async () => {
      const [a, b] = [await host.guard.prepare(from), await host.guard.prepare(to)];
      const sftp = await host.conn.sftp();
      try {
        // Without replace no lstat first (a round trip): plain SFTP rename refuses an existing target.
        const existing = !opts.replace ? null : await host.call<Stats>((cb) => sftp.lstat(b.abs, cb)).catch((e: unknown) => {
          if (sftpStatus(e) === FX_NO_SUCH_FILE) return null;
          throw e;
        });
        if (existing && hasExtension(sftp, "posix-rename@openssh.com")) {
          await host.call<void>((cb) => sftp.ext_openssh_rename(a.abs, b.abs, cb as Done));
        } else {
          if (existing) await this.remove(b.rel, { recursive: false, signal: opts.signal });
          // Plain SFTP rename never replaces (sftp-server uses link+unlink): atomic and no-clobber.
          await host.call<void>((cb) => sftp.rename(a.abs, b.abs, cb as Done));
        }
      } catch (err) {
        if (sftpStatus(err) === FX_FAILURE && !opts.replace && (await this.stat(b.rel))) {
          throw new TransferError("TARGET_EXISTS", `rename to ${JSON.stringify(b.rel)}: already exists`, { details: { path: b.rel } });
        }
        throw err;
      }
      host.guard.forget(a.abs);
      host.crc.move(b.abs, null);
      host.crc.move(a.abs, b.abs);
    });
  }

  async remove(path: string, opts: OpOptions & { recursive?: boolean } = {}): Promise<void> {
    const host = this.host;
    await host.op(path, "remove", opts.signal, async () => {
      const { rel, abs } = await host.guard.prepare(path);
      if (rel === "") throw new TransferError("INVALID_SPEC", "refusing to remove the portal's root");
      const sftp = await host.conn.sftp();
      const st = await host.call<Stats>((cb) => sftp.lstat(abs, cb)).catch((e: unknown) => {
        if (sftpStatus(e) === FX_NO_SUCH_FILE) return null;
        throw e;
      });
      if (!st) return;
      host.guard.forget(abs);
      host.crc.move(abs, null);
      if ((st.mode & S_IFMT) !== S_IFDIR) {
        await host.call<void>((cb) => sftp.unlink(abs, cb as Done));
        return;
      }
      if (!opts.recursive) {
        await host.call<void>((cb) => sftp.rmdir(abs, cb as Done)).catch((e: unknown) => {
          // sftp-server reports ENOTEMPTY as a bare FAILURE.
          if (sftpStatus(e) === FX_FAILURE) throw new TransferError("TARGET_EXISTS", `remove ${JSON.stringify(rel)}: the folder is not empty`, { details: { path: rel } });
          throw e;
        });
        return;
      }
      const tools = await host.tools(opts.signal);
      if (tools.shell && tools.commands.has("rm")) {
        const r = await host.run(removeCommand(tools, host.root, rel), { signal: opts.signal });
        if (r.code !== 0) throw commandError("remove", rel, r.code, r.stderr);
        return;
      }
      await this.removeTreeSftp(abs);
    });
  }

  private async removeTreeSftp(abs: string): Promise<void> {
    const host = this.host;
    const sftp = await host.conn.sftp();
    const items = await host.call<{ filename: string; attrs: Stats }[]>((cb) => sftp.readdir(abs, cb));
    await Promise.all(items.filter((i) => i.filename !== "." && i.filename !== "..").map(async (i) => {
      const p = `${abs}/${i.filename}`;
      if ((i.attrs.mode & S_IFMT) === S_IFDIR) await this.removeTreeSftp(p);
      else await host.call<void>((cb) => sftp.unlink(p, cb as Done));
    }));
    await host.call<void>((cb) => sftp.rmdir(abs, cb as Done));
  }

  async close(): Promise<void> {
    if (!this.host.lost) await this.host.lanes.close();
    await this.host.pool.close();
  }
}
