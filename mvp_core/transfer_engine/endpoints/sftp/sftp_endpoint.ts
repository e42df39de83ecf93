/**
 * The SSH endpoint: SFTP for metadata and small files (many requests in flight), a plain byte
 * stream over an exec channel for big files and zip archives (measured ~1.5x faster than SFTP),
 * and remote commands for hashing, unpacking and packing when the host offers a shell.
 */
import { posix } from "node:path";
import type { ClientChannel, SFTPWrapper, Stats } from "ssh2";
import type {
  Capabilities, Endpoint, Entry, EntryType, FileWriter, HashAlgorithm, Location, OpOptions, ReadOptions, SpaceInfo, UnzipStreamEntry,
} from "../endpoint.ts";
import { TransferError, fromSystemError, isTransferError } from "../../errors.ts";
import { LOCAL_HASHES, createHasher } from "../../hash.ts";
import { normalizeRel, parentRel } from "../../paths.ts";
import { type Connection, widenReceiveWindow } from "./connection.ts";
import { locateScript, parseLocate, sftpOnlyScope } from "./remote_location.ts";
import {
  PROBE_SCRIPT, commandError, errnoFromText, hashCommand, parseHashOutput, parseProbe, parseUnzipReport, perlSetAttrs, perlUnzipCommand,
  perlUnzipStreamCommand, perlWriteCommand, remoteHashes, shQuote, unzipStreamPreamble,
  type RemoteTools,
} from "./remote_shell.ts";
import { ExecWriter, LaneWriter, SFTP_IN_FLIGHT, SftpWriter, UnzipStreamWriter, WriterLanes, type WriterHost, collectGarbageEvery, maxLen } from "./writers.ts";

/** How long the capability probe may take. */
export const PROBE_TIMEOUT_MS = 15_000;
/** Files at least this big (or of unknown size) go over an exec byte stream when the host has a shell. */
export const EXEC_STREAM_MIN_BYTES = 4 * 1024 * 1024;
/** Exec reads pause the channel above this much unread data and resume below the low mark. */
const STREAM_QUEUE_HIGH = 8 * 1024 * 1024;
const STREAM_QUEUE_LOW = 2 * 1024 * 1024;
/**
 * Up to this many entries setAttributesMany uses SFTP requests (all in flight, about one round
 * trip); above it one perl process (an exec costs ~3 round trips but no per-entry CPU here).
 */
const SET_ATTRS_VIA_SFTP_MAX = 500;
/** Requests kept in flight by the batch operations (mkdirMany, setAttributesMany). */
const BATCH_IN_FLIGHT = 128;
/** Hashes the host computes locally for a remote without a shell (read back over SFTP). */
const READBACK_HASHES = LOCAL_HASHES;

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFREG = 0o100000;

// SFTP v3 status codes (draft-ietf-secsh-filexfer-02).
const FX_EOF = 1;
const FX_NO_SUCH_FILE = 2;
const FX_PERMISSION_DENIED = 3;
const FX_FAILURE = 4;
const FX_OP_UNSUPPORTED = 8;

type Callback<T> = (err: Error | null | undefined, value: T) => void;

/** Promisifies one ssh2 callback-style call. */
function call<T>(fn: (cb: Callback<T>) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
}

function sftpStatus(err: unknown): number | null {
  const code = (err as { code?: unknown })?.code;
  return typeof code === "number" ? code : null;
}

function typeOf(mode: number): EntryType | null {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "symlink";
    default: return null;
  }
}

const parentOf = parentRel;

/** An SSH-backed Endpoint; create it with connectSsh(). */
export class SftpEndpoint implements Endpoint, WriterHost {
  readonly kind = "sftp" as const;
  private toolsProbe: Promise<RemoteTools> | null = null;
  /**
   * CRC-32 and size of files this endpoint streamed, as the remote computed them while writing;
   * forgotten when the file is rewritten or removed, carried along by rename.
   */
  private writtenCrc = new Map<string, { crc32: string; size: number }>();
  /** Long-lived remote writers for big files (one session and perl start per lane, not per file). */
  private lanes: WriterLanes;
  /** Absolute folders already proven (by realpath) to lie inside the root. */
  private safeDirs = new Set<string>();
  /** Present only while the host may have unzip/bsdtar; removed once the probe says otherwise. */
  unzip?: (archive: string, into: string, opts?: OpOptions) => Promise<void>;
  /** Present only while the host may have perl with zlib; removed once the probe says otherwise. */
  unzipStream?: (into: string, entries: readonly UnzipStreamEntry[], opts?: OpOptions) => Promise<FileWriter>;
  /** Present only while the host may have zip; removed once the probe says otherwise. */
  packZip?: (path: string, opts?: OpOptions) => AsyncIterable<Uint8Array>;

  constructor(
    private readonly conn: Connection,
    /** Canonical absolute root on the remote (after realpath). */
    readonly root: string,
    readonly label: string,
  ) {
    this.safeDirs.add(root);
    this.lanes = new WriterLanes(conn);
    this.unzip = (archive, into, opts) => this.unzipArchive(archive, into, opts);
    this.unzipStream = (into, entries, opts) => this.openUnzipStream(into, entries, opts);
    this.packZip = (path, opts) => this.packFolder(path, opts);
  }

  /** An SFTP request that fails with CONNECTION_LOST as soon as the connection drops. */
  call<T>(fn: (cb: Callback<T>) => void): Promise<T> {
    return this.conn.guard(call(fn));
  }

  /** Races `p` against the connection dropping. */
  guard<T>(p: Promise<T>): Promise<T> {
    return this.conn.guard(p);
  }

  /** The host key fingerprint seen when connecting. */
  get fingerprint(): string {
    return this.conn.fingerprint;
  }

  private abs(rel: string): string {
    return rel === "" ? this.root : this.root === "/" ? `/${rel}` : `${this.root}/${rel}`;
  }

  private inside(absPath: string): boolean {
    return absPath === this.root || absPath.startsWith(this.root === "/" ? "/" : `${this.root}/`);
  }

  /** Converts any failure into a TransferError naming `rel`, preferring cancellation and connection loss. */
  private fail(err: unknown, rel: string, action: string, signal?: AbortSignal): TransferError {
    if (signal?.aborted) return new TransferError("CANCELLED", "transfer cancelled", { cause: err });
    if (isTransferError(err)) return err;
    if (this.conn.lost) return this.conn.lost;
    const status = sftpStatus(err);
    const message = (err as Error)?.message ?? String(err);
    switch (status) {
      case FX_NO_SUCH_FILE: return fromSystemError({ code: "ENOENT", message }, rel, action);
      case FX_PERMISSION_DENIED: return fromSystemError({ code: "EACCES", message }, rel, action);
      case FX_OP_UNSUPPORTED: return new TransferError("UNSUPPORTED", `${action} ${JSON.stringify(rel)}: the server does not support this operation`, { cause: err });
      case FX_FAILURE:
      case FX_EOF: {
        const errno = errnoFromText(message);
        return errno ? fromSystemError({ code: errno, message }, rel, action) : new TransferError("IO_ERROR", `${action} ${JSON.stringify(rel)} on ${this.label}: ${message}`, { cause: err, details: { path: rel } });
      }
      case null:
        // Not an SFTP status: the channel went away under the request (sshd killed, link dropped).
        return new TransferError("CONNECTION_LOST", `${action} ${JSON.stringify(rel)} on ${this.label}: ${message}; it will be retried`, { cause: err });
      default:
        return new TransferError("IO_ERROR", `${action} ${JSON.stringify(rel)} on ${this.label}: ${message}`, { cause: err, details: { path: rel } });
    }
  }

  private start(signal?: AbortSignal): void {
    if (signal?.aborted) throw new TransferError("CANCELLED", "transfer cancelled");
    this.conn.check();
  }

  /** Proves `absDir` (or its nearest existing ancestor) resolves inside the root; symlinks pointing out are refused. */
  private async ensureSafeDir(absDir: string, rel: string): Promise<void> {
    if (this.safeDirs.has(absDir)) return;
    const sftp = await this.conn.sftp();
    let resolved: string;
    try {
      resolved = await this.call<string>((cb) => sftp.realpath(absDir, cb));
    } catch (err) {
      if (sftpStatus(err) !== FX_NO_SUCH_FILE) throw err;
      // Missing: nothing to follow here, but an ancestor may still be a link pointing out.
      const up = absDir.slice(0, absDir.lastIndexOf("/")) || "/";
      if (!this.inside(up)) throw new TransferError("PATH_ESCAPE", `${JSON.stringify(rel)} leaves the portal's root`, { details: { path: rel } });
      return this.ensureSafeDir(up, rel);
    }
    if (!this.inside(resolved)) {
      throw new TransferError("PATH_ESCAPE", `${JSON.stringify(rel)} resolves through a symlink to ${JSON.stringify(resolved)}, outside the portal's root`, { details: { path: rel } });
    }
    this.safeDirs.add(absDir);
  }

  /** ensureSafeDir for many folders at once: one round trip for all of them, not one each. */
  private async ensureSafeDirs(rels: Iterable<string>): Promise<void> {
    await Promise.all([...new Set(rels)].map((r) => this.ensureSafeDir(this.abs(r), r)));
  }

  /** Normalises `path` and proves its parent folder is inside the root. */
  private async prepare(path: string): Promise<{ rel: string; abs: string }> {
    const rel = normalizeRel(path);
    if (rel !== "") await this.ensureSafeDir(this.abs(parentOf(rel)), rel);
    return { rel, abs: this.abs(rel) };
  }

  /**
   * Remote tools, probed once with one exec (a host without a shell answers without our marker);
   * `started` is that exec already under way (connectSsh starts it while it checks the root).
   */
  tools(signal?: AbortSignal, started?: Promise<RunResult>): Promise<RemoteTools> {
    this.toolsProbe ??= (async () => {
      try {
        const r = await (started ?? this.run(PROBE_SCRIPT, { signal, timeoutMs: PROBE_TIMEOUT_MS }));
        return this.adopt(parseProbe(r.stdout.toString()));
      } catch (err) {
        if (this.conn.lost) throw this.conn.lost;
        // The server refused the exec channel: plan without a shell. Anything else (a timeout…)
        // propagates and is not cached, so a transient failure cannot pin "no shell".
        if (isTransferError(err) && err.code === "REMOTE_COMMAND_FAILED") return this.adopt(parseProbe(""));
        throw err;
      }
    })();
    const p = this.toolsProbe;
    p.catch(() => {
      if (this.toolsProbe === p) this.toolsProbe = null; // a cancelled or dropped probe may be retried
    });
    return p;
  }

  /** Drops the optional methods the host cannot back, so `typeof ep.unzip` tells the truth. */
  private adopt(t: RemoteTools): RemoteTools {
    if (!canUnzip(t)) this.unzip = undefined;
    if (!(t.shell && t.perlZlib)) this.unzipStream = undefined;
    if (!(t.shell && t.commands.has("zip") && t.commands.has("sed") && t.commands.has("find"))) this.packZip = undefined;
    return t;
  }

  /** Runs one remote command to completion, feeding `stdin`; returns exit code and output. */
  async run(command: string, opts: RunOptions = {}): Promise<RunResult> {
    this.start(opts.signal);
    return runRemote(this.conn, this.label, command, opts);
  }

  /** Streams a remote command's stdout; a non-zero exit becomes an error after the data. */
  private async *streamCommand(command: string, rel: string, action: string, signal?: AbortSignal, okCodes: readonly number[] = [0]): AsyncGenerator<Uint8Array, number | null> {
    this.start(signal);
    const ch = await this.conn.exec(command, signal);
    let stderr = "";
    let code: number | null = null;
    // A fast command's exit status can arrive before our listener exists (the channel is handed
    // over a microtask later); ssh2 repeats the code on close, which waits for the data to be read.
    const closed = new Promise<void>((r) => ch.once("close", (closeCode?: number | null) => {
      if (code === null && typeof closeCode === "number") code = closeCode;
      r();
    }));
    ch.stderr.on("data", (d: Buffer) => {
      if (stderr.length < 65536) stderr += d.toString();
    });
    ch.on("exit", (c: number | null) => {
      code = c;
    });
    const onAbort = (): void => {
      ch.close();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    ch.end(); // no stdin
    // Not `for await (… of ch)`: at EOF that destroys the channel, and sshd may send the exit
    // status after EOF, so the status was lost under load. Data is queued until the channel closes.
    const queue: Buffer[] = [];
    let queued = 0;
    let ended = false;
    let wake: (() => void) | null = null;
    ch.on("data", (d: Buffer) => {
      queue.push(d);
      queued += d.length;
      if (queued > STREAM_QUEUE_HIGH) ch.pause(); // the window stops growing: the remote waits
      else widenReceiveWindow(ch);
      wake?.();
    });
    void closed.then(() => {
      ended = true;
      wake?.();
    });
    let complete = false;
    try {
      for (;;) {
        const chunk = queue.shift();
        if (chunk) {
          queued -= chunk.length;
          if (queued < STREAM_QUEUE_LOW && ch.isPaused()) ch.resume();
          collectGarbageEvery(chunk.length);
          yield chunk;
          continue;
        }
        if (ended) break;
        await new Promise<void>((r) => {
          wake = r;
        });
        wake = null;
      }
      complete = true;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      if (!complete) ch.close(); // consumer stopped early or failed: free the channel
    }
    if (signal?.aborted) throw new TransferError("CANCELLED", "transfer cancelled");
    if (this.conn.lost) throw this.conn.lost;
    if (code === null || !okCodes.includes(code)) throw commandError(action, rel, code, stderr);
    return code;
  }

  async stat(path: string, opts: OpOptions = {}): Promise<Entry | null> {
    this.start(opts.signal);
    let rel = path;
    try {
      rel = normalizeRel(path);
      const abs = this.abs(rel);
      const sftp = await this.conn.sftp();
      // The lstat goes out together with the parent's symlink check, one round trip instead of two
      // on a parent not checked yet; its answer is used only once the parent is proven inside the root.
      const safe = rel === "" ? Promise.resolve() : this.ensureSafeDir(this.abs(parentOf(rel)), rel);
      const st = this.call<Stats>((cb) => sftp.lstat(abs, cb));
      st.catch(() => undefined); // not read when the parent check fails first
      await safe;
      return await this.entryOf(sftp, rel, abs, await st);
    } catch (err) {
      if (sftpStatus(err) === FX_NO_SUCH_FILE) return null;
      throw this.fail(err, rel, "stat", opts.signal);
    }
  }

  private async entryOf(sftp: SFTPWrapper, rel: string, abs: string, st: { mode: number; size: number; mtime: number }): Promise<Entry | null> {
    const type = typeOf(st.mode);
    if (!type) return null;
    const e: Entry = { path: rel, type, size: type === "file" ? st.size : 0, mtimeMs: st.mtime * 1000, mode: st.mode & 0o7777 };
    if (type === "symlink") {
      e.linkTarget = await this.call<string>((cb) => sftp.readlink(abs, cb));
      e.size = Buffer.byteLength(e.linkTarget);
    }
    return e;
  }

  async *walk(path: string, opts: OpOptions = {}): AsyncIterable<Entry> {
    this.start(opts.signal);
    const rel = normalizeRel(path);
    const abs = this.abs(rel);
    try {
      await this.ensureSafeDir(abs, rel);
      const tools = await this.tools(opts.signal);
      if (tools.shell && tools.gnuFind) yield* this.walkFind(abs, rel, opts.signal);
      else yield* this.walkSftp(abs, opts.signal);
    } catch (err) {
      throw this.fail(err, rel, "walk", opts.signal);
    }
  }

  /** One `find` streams the whole tree: one round trip instead of one per folder. */
  private async *walkFind(abs: string, rel: string, signal?: AbortSignal): AsyncIterable<Entry> {
    const cmd = `find ${shQuote(abs)} -mindepth 1 -printf '%y\\0%s\\0%T@\\0%m\\0%P\\0%l\\0'`;
    const dec = new TextDecoder();
    let carry: Uint8Array | null = null;
    let fields: string[] = [];
    for await (const chunk of this.streamCommand(cmd, rel, "walk", signal)) {
      const buf: Uint8Array = carry?.length ? Buffer.concat([carry, chunk]) : chunk;
      const end = buf.lastIndexOf(0);
      carry = buf.subarray(end + 1);
      if (end < 0) continue;
      // A NUL never occurs inside a UTF-8 sequence, so everything before the last one decodes at
      // once (one decode per chunk, not one per field: 60,000 calls for 10,000 entries).
      for (const field of dec.decode(buf.subarray(0, end)).split("\0")) {
        fields.push(field);
        if (fields.length < 6) continue;
        const [y, size, mtime, mode, p, link] = fields as [string, string, string, string, string, string];
        fields = [];
        const type: EntryType | null = y === "f" ? "file" : y === "d" ? "dir" : y === "l" ? "symlink" : null;
        if (!type) continue; // fifos, sockets, devices are not transferred
        // Whole seconds, like SFTP's stat: the engine compares walk and stat mtimes for equality.
        const e: Entry = { path: p, type, size: type === "dir" ? 0 : Number(size), mtimeMs: Number(mtime.split(".")[0]) * 1000, mode: parseInt(mode, 8) & 0o7777 };
        if (type === "symlink") e.linkTarget = link;
        yield e;
      }
    }
    if (carry?.length || fields.length) throw new TransferError("REMOTE_COMMAND_FAILED", `walk ${JSON.stringify(rel)}: truncated listing from find`);
  }

  /** Breadth-first readdir with several folders in flight (no shell available). */
  private async *walkSftp(abs: string, signal?: AbortSignal): AsyncIterable<Entry> {
    const sftp = await this.conn.sftp();
    type Listing = { prefix: string; list: Promise<{ filename: string; attrs: Stats }[]> };
    const read = (prefix: string): Listing => ({
      prefix,
      list: call((cb) => sftp.readdir(prefix ? `${abs}/${prefix}` : abs, cb)),
    });
    const queue: Listing[] = [read("")];
    while (queue.length) {
      if (signal?.aborted) throw new TransferError("CANCELLED", "transfer cancelled");
      const { prefix, list } = queue.shift()!;
      const items = (await list).filter((i) => i.filename !== "." && i.filename !== "..");
      items.sort((a, b) => (a.filename < b.filename ? -1 : 1));
      for (const it of items) {
        const p = prefix ? `${prefix}/${it.filename}` : it.filename;
        const e = await this.entryOf(sftp, p, `${abs}/${p}`, it.attrs);
        if (!e) continue;
        yield e;
        if (e.type === "dir") queue.push(read(p));
      }
    }
  }

  async *openRead(path: string, opts: ReadOptions = {}): AsyncIterable<Uint8Array> {
    this.start(opts.signal);
    const rel = normalizeRel(path);
    const abs = this.abs(rel);
    const start = opts.start ?? 0;
    let size: number;
    let sftp: SFTPWrapper;
    try {
      sftp = await this.conn.sftp();
      // realpath resolves every link on the way, including the file itself: one round trip proves it is inside.
      const [resolved, st] = await Promise.all([this.call<string>((cb) => sftp.realpath(abs, cb)), this.call<Stats>((cb) => sftp.stat(abs, cb))]);
      if (!this.inside(resolved)) throw new TransferError("PATH_ESCAPE", `${JSON.stringify(rel)} resolves to ${JSON.stringify(resolved)}, outside the portal's root`, { details: { path: rel } });
      if ((st.mode & S_IFMT) !== S_IFREG) throw new TransferError("IO_ERROR", `${JSON.stringify(rel)} is not a regular file`, { details: { path: rel } });
      size = st.size;
    } catch (err) {
      throw this.fail(err, rel, "read", opts.signal);
    }
    try {
      const tools = size - start >= EXEC_STREAM_MIN_BYTES ? await this.tools(opts.signal) : null;
      if (tools?.shell && tools.commands.has("cat") && tools.commands.has("tail")) {
        const cmd = start > 0 ? `tail -c +${start + 1} -- ${shQuote(abs)}` : `cat -- ${shQuote(abs)}`;
        yield* this.streamCommand(cmd, rel, "read", opts.signal);
      } else {
        yield* this.readSftp(sftp, abs, start, size, opts.signal);
      }
    } catch (err) {
      throw this.fail(err, rel, "read", opts.signal);
    }
  }

  /** Pipelined SFTP reads: SFTP_IN_FLIGHT requests outstanding, yielded in order. */
  private async *readSftp(sftp: SFTPWrapper, abs: string, start: number, size: number, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    const handle = await this.call<Buffer>((cb) => sftp.open(abs, "r", cb));
    const chunk = maxLen(sftp, "_maxReadLen");
    try {
      let next = start; // next offset to request
      const inflight: { off: number; p: Promise<Buffer> }[] = [];
      const request = (off: number): void => {
        const len = Math.min(chunk, Math.max(size - off, 0) || chunk);
        const buf = Buffer.allocUnsafe(len);
        inflight.push({
          off,
          p: this.guard(new Promise<Buffer>((resolve, reject) => {
            sftp.read(handle, buf, 0, len, off, (err, n) => {
              if (err && sftpStatus(err) !== FX_EOF) reject(err);
              else resolve(buf.subarray(0, err ? 0 : n));
            });
          })),
        });
      };
      while (true) {
        while (inflight.length < SFTP_IN_FLIGHT && next < size) {
          request(next);
          next += chunk;
        }
        if (!inflight.length) request(next); // probe for growth past the stat size: EOF ends the loop
        const head = inflight.shift()!;
        const data = await head.p;
        if (signal?.aborted) throw new TransferError("CANCELLED", "transfer cancelled");
        if (data.length === 0) {
          await Promise.allSettled(inflight.map((r) => r.p));
          return;
        }
        yield data;
        const expected = Math.min(chunk, Math.max(size - head.off, 0) || chunk);
        if (data.length < expected) {
          // Short read: drop the requests already issued after it and resume right behind the data.
          await Promise.allSettled(inflight.splice(0).map((r) => r.p));
          next = head.off + data.length;
        } else if (!inflight.length && next >= size) {
          next = head.off + data.length;
        }
      }
    } finally {
      await this.call<void>((cb) => sftp.close(handle, cb as (e: Error | null | undefined) => void)).catch((e: unknown) => {
        if (!this.conn.lost) throw e;
      });
    }
  }

  async openWrite(path: string, opts: OpOptions & { mode?: number; size?: number } = {}): Promise<FileWriter> {
    this.start(opts.signal);
    const rel = normalizeRel(path);
    if (rel === "") throw new TransferError("INVALID_SPEC", "cannot write to the portal's root itself");
    const abs = this.abs(rel);
    this.writtenCrc.delete(abs);
    try {
      await this.ensureSafeDir(this.abs(parentOf(rel)), rel);
      const big = opts.size === undefined || opts.size >= EXEC_STREAM_MIN_BYTES;
      const tools = big ? await this.tools(opts.signal) : null;
      const exec = tools?.shell === true && tools.commands.has("cat");
      const sftp = await this.conn.sftp();
      if (!exec) {
        // Common case, one round trip: create exclusively (O_EXCL never follows a link). Anything
        // already there (a FAILURE from sftp-server) takes the careful path below.
        const handle = await this.call<Buffer>((cb) => sftp.open(abs, "wx", { mode: opts.mode ?? 0o644 }, cb)).catch((e: unknown) => {
          if (sftpStatus(e) === FX_FAILURE) return null;
          throw e;
        });
        if (handle) return new SftpWriter(this, sftp, handle, rel, abs, opts.mode, opts.signal);
      }
      const existing = await this.call<Stats>((cb) => sftp.lstat(abs, cb)).catch((e: unknown) => {
        if (sftpStatus(e) === FX_NO_SUCH_FILE) return null;
        throw e;
      });
      if (existing && (existing.mode & S_IFMT) === S_IFLNK) {
        // Opening a link writes (or creates) its target: that must stay inside the root too.
        const [parentReal, link] = await Promise.all([
          this.call<string>((cb) => sftp.realpath(this.abs(parentOf(rel)), cb)),
          this.call<string>((cb) => sftp.readlink(abs, cb)),
        ]);
        if (!this.inside(posix.resolve(parentReal, link))) {
          throw new TransferError("PATH_ESCAPE", `${JSON.stringify(rel)} is a symbolic link pointing outside the portal's root`, { details: { path: rel } });
        }
      } else if (existing && (existing.mode & S_IFMT) !== S_IFREG) {
        throw new TransferError("TARGET_EXISTS", `${JSON.stringify(rel)} exists and is not a regular file`, { details: { path: rel } });
      }
      if (exec) return await this.execWriter(rel, abs, opts.size, opts.mode, tools!, opts.signal);
      return await this.sftpWriter(sftp, rel, abs, opts.mode, opts.signal);
    } catch (err) {
      throw this.fail(err, rel, "write", opts.signal);
    }
  }

  /**
   * Writer over an exec byte stream: a lane when the size is known and the host has perl (many
   * files per process), else one command per stream (`perl` writer hashing as it writes, or `cat >`).
   */
  private async execWriter(rel: string, abs: string, size: number | undefined, mode: number | undefined, tools: RemoteTools, signal?: AbortSignal): Promise<FileWriter> {
    this.writtenCrc.delete(abs);
    if (tools.perlZlib && size !== undefined) {
      const lane = await this.lanes.acquire(signal);
      return new LaneWriter(this, this.lanes, lane, rel, abs, size, mode, signal);
    }
    if (tools.perlZlib) {
      return new ExecWriter(this, await this.conn.exec(perlWriteCommand(abs, mode), signal), rel, abs, signal, true);
    }
    const chmod = mode === undefined ? "" : ` && chmod ${(mode & 0o7777).toString(8)} -- ${shQuote(abs)}`;
    return new ExecWriter(this, await this.conn.exec(`umask 077 && cat > ${shQuote(abs)}${chmod}`, signal), rel, abs, signal, false);
  }

  /** Used by writers: the remote's own CRC-32 of a file it just wrote, kept for verification. */
  recordWritten(abs: string, report: { crc32: string; size: number }): void {
    this.writtenCrc.set(abs, report);
  }

  private async sftpWriter(sftp: SFTPWrapper, rel: string, abs: string, mode: number | undefined, signal?: AbortSignal): Promise<FileWriter> {
    const handle = await this.call<Buffer>((cb) => sftp.open(abs, "w", { mode: mode ?? 0o644 }, cb));
    return new SftpWriter(this, sftp, handle, rel, abs, mode, signal);
  }

  /** Used by writers: a failure mapped with this endpoint's rules. */
  mapError(err: unknown, rel: string, action: string, signal?: AbortSignal): TransferError {
    return this.fail(err, rel, action, signal);
  }

  /** Used by writers: removes a partial file; a connection already gone leaves nothing we can do. */
  async discard(abs: string): Promise<void> {
    if (this.conn.lost) return;
    const sftp = await this.conn.sftp();
    await this.call<void>((cb) => sftp.unlink(abs, cb as (e: Error | null | undefined) => void)).catch((e: unknown) => {
      if (sftpStatus(e) !== FX_NO_SUCH_FILE && !this.conn.lost) throw e;
    });
  }

  /** Used by writers: distinguishes a full disk from other SFTP failures (sftp-server reports ENOSPC as plain FAILURE). */
  async diskFull(abs: string): Promise<boolean> {
    try {
      const s = await this.space(abs.slice(this.root.length + 1).split("/").slice(0, -1).join("/"));
      return s.freeBytes < 1024 * 1024;
    } catch (err) {
      if (isTransferError(err) && err.code === "UNSUPPORTED") return false;
      throw err;
    }
  }

  /** Used by writers: the connection's state. */
  connectionLost(): TransferError | null {
    return this.conn.lost;
  }

  async mkdir(path: string, opts: OpOptions & { mode?: number; recursive?: boolean } = {}): Promise<void> {
    this.start(opts.signal);
    const rel = normalizeRel(path);
    if (rel === "") {
      if (!opts.recursive) throw new TransferError("TARGET_EXISTS", "the portal's root already exists");
      return;
    }
    try {
      await this.ensureSafeDir(this.abs(parentOf(rel)), rel);
      await this.mkdirAt(await this.conn.sftp(), rel, opts.mode, opts.recursive ?? false);
    } catch (err) {
      throw this.fail(err, rel, "create folder", opts.signal);
    }
  }

  /** `ownerOnlyNoChmod`: an owner-only mode (0700) survives any sane umask, so the chmod round trip is skipped. */
  private async mkdirAt(sftp: SFTPWrapper, rel: string, mode: number | undefined, recursive: boolean, ownerOnlyNoChmod = false): Promise<void> {
    const abs = this.abs(rel);
    try {
      await this.call<void>((cb) => sftp.mkdir(abs, mode === undefined ? {} : { mode }, cb as (e: Error | null | undefined) => void));
    } catch (err) {
      const status = sftpStatus(err);
      if (status === FX_NO_SUCH_FILE && recursive && rel.includes("/")) {
        await this.mkdirAt(sftp, parentOf(rel), undefined, true);
        return this.mkdirAt(sftp, rel, mode, false);
      }
      if (status !== FX_FAILURE) throw err;
      // sftp-server reports EEXIST as a bare FAILURE: look at what is there.
      const st = await this.call<Stats>((cb) => sftp.lstat(abs, cb)).catch(() => null); // unknown: report the original failure below
      if (!st) throw err;
      if ((st.mode & S_IFMT) === S_IFDIR && recursive) return;
      throw new TransferError("TARGET_EXISTS", `create folder ${JSON.stringify(rel)}: already exists`, { details: { path: rel } });
    }
    this.safeDirs.add(abs); // we just created it: a real folder, not a link
    if (mode !== undefined && !(ownerOnlyNoChmod && (mode & 0o7077) === 0)) {
      await this.call<void>((cb) => sftp.chmod(abs, mode & 0o7777, cb as (e: Error | null | undefined) => void)); // the server's umask applied to mkdir
    }
  }

  /** Creates folders (parents listed first) with every request in flight: a round trip or two for thousands of folders. */
  async mkdirMany(dirs: readonly { path: string; mode?: number }[], opts: OpOptions = {}): Promise<void> {
    this.start(opts.signal);
    const items = dirs.map((d) => ({ rel: normalizeRel(d.path), mode: d.mode }));
    const depth = new Map<string, number>();
    const levels: (typeof items)[] = [];
    for (const it of items) {
      if (it.rel === "") continue;
      const parent = parentOf(it.rel);
      const level = depth.has(parent) ? depth.get(parent)! + 1 : 0;
      depth.set(it.rel, level);
      (levels[level] ??= []).push(it);
    }
    try {
      await this.ensureSafeDirs((levels[0] ?? []).map((it) => parentOf(it.rel)));
      // One channel, whose requests sftp-server serves in order: a child's mkdir may be sent before
      // its parent's answer arrived, so the whole tree costs about one round trip, not one per level.
      const sftp = await this.conn.sftp();
      await inParallel(levels.flat(), BATCH_IN_FLIGHT, (it) => this.mkdirAt(sftp, it.rel, it.mode, false, true).catch((e: unknown) => {
        throw this.fail(e, it.rel, "create folder", opts.signal);
      }));
    } catch (err) {
      throw this.fail(err, "", "create folder", opts.signal);
    }
  }

  /** Sets attributes on many files and folders with all requests in flight; links are skipped. */
  async setAttributesMany(items: readonly { path: string; mtimeMs?: number; mode?: number }[], opts: OpOptions = {}): Promise<void> {
    this.start(opts.signal);
    const list = items.map((i) => ({ ...i, rel: normalizeRel(i.path) }));
    try {
      await this.ensureSafeDirs(list.map((i) => parentOf(i.rel)));
      const t = await this.tools(opts.signal);
      if (t.shell && t.perlZlib && list.length > SET_ATTRS_VIA_SFTP_MAX) {
        // One process for all of them: 10,000 SFTP requests cost ~0.5 s of this process's CPU.
        const { command, stdin } = perlSetAttrs(this.root, list);
        const r = await this.run(command, { stdin, signal: opts.signal });
        if (r.code !== 0) throw commandError("set attributes", list[0]?.rel ?? "", r.code, r.stderr);
        return;
      }
      const sftp = await this.conn.sftp();
      await inParallel(list, BATCH_IN_FLIGHT, (i) => this.setAttrs(sftp, i.rel, i).catch((e: unknown) => {
        throw this.fail(e, i.rel, "set attributes", opts.signal);
      }));
    } catch (err) {
      throw this.fail(err, "", "set attributes", opts.signal);
    }
  }

  /** One entry's mode and mtime, never following a link (lsetstat@openssh.com, else lstat first). */
  private async setAttrs(sftp: SFTPWrapper, rel: string, attrs: { mtimeMs?: number; mode?: number }): Promise<void> {
    const abs = this.abs(rel);
    const set: { mode?: number; atime?: number; mtime?: number } = {};
    if (attrs.mode !== undefined) set.mode = attrs.mode & 0o7777;
    // SFTP v3 carries whole seconds only.
    if (attrs.mtimeMs !== undefined) set.atime = set.mtime = Math.floor(attrs.mtimeMs / 1000);
    if (set.mode === undefined && set.mtime === undefined) return;
    if (hasExtension(sftp, "lsetstat@openssh.com")) {
      try {
        await this.call<void>((cb) => sftp.ext_openssh_lsetstat(abs, set, cb as (e: Error | null | undefined) => void));
        return;
      } catch (err) {
        // Linux cannot chmod a link itself: fall through and look at what is there.
        if (sftpStatus(err) !== FX_FAILURE && sftpStatus(err) !== FX_OP_UNSUPPORTED) throw err;
      }
    }
    const st = await this.call<Stats>((cb) => sftp.lstat(abs, cb));
    if ((st.mode & S_IFMT) === S_IFLNK) {
      // Link metadata beyond its mtime is not portable; the link text is what matters.
      if (set.mtime !== undefined && hasExtension(sftp, "lsetstat@openssh.com")) {
        await this.call<void>((cb) => sftp.ext_openssh_lsetstat(abs, { atime: set.atime!, mtime: set.mtime! }, cb as (e: Error | null | undefined) => void));
      }
      return;
    }
    await this.call<void>((cb) => sftp.setstat(abs, set, cb as (e: Error | null | undefined) => void));
  }

  async symlink(target: string, path: string, opts: OpOptions = {}): Promise<void> {
    this.start(opts.signal);
    const { rel, abs } = await this.prepare(path).catch((e: unknown) => { throw this.fail(e, path, "create link", opts.signal); });
    try {
      const sftp = await this.conn.sftp();
      await this.call<void>((cb) => sftp.symlink(target, abs, cb as (e: Error | null | undefined) => void));
    } catch (err) {
      if (sftpStatus(err) === FX_FAILURE && (await this.stat(rel))) throw new TransferError("TARGET_EXISTS", `create link ${JSON.stringify(rel)}: already exists`, { details: { path: rel } });
      throw this.fail(err, rel, "create link", opts.signal);
    }
  }

  async setAttributes(path: string, attrs: { mtimeMs?: number; mode?: number }, opts: OpOptions = {}): Promise<void> {
    this.start(opts.signal);
    const { rel } = await this.prepare(path).catch((e: unknown) => { throw this.fail(e, path, "set attributes", opts.signal); });
    try {
      await this.setAttrs(await this.conn.sftp(), rel, attrs);
    } catch (err) {
      throw this.fail(err, rel, "set attributes", opts.signal);
    }
  }

  async rename(from: string, to: string, opts: OpOptions & { replace?: boolean } = {}): Promise<void> {
    this.start(opts.signal);
    const a = await this.prepare(from).catch((e: unknown) => { throw this.fail(e, from, "rename", opts.signal); });
    const b = await this.prepare(to).catch((e: unknown) => { throw this.fail(e, to, "rename", opts.signal); });
    try {
      const sftp = await this.conn.sftp();
      // Without replace no lstat first (a round trip): plain SFTP rename refuses an existing target.
      const existing = !opts.replace ? null : await this.call<Stats>((cb) => sftp.lstat(b.abs, cb)).catch((e: unknown) => {
        if (sftpStatus(e) === FX_NO_SUCH_FILE) return null;
        throw e;
      });
      if (existing && supportsPosixRename(sftp)) {
        await this.call<void>((cb) => sftp.ext_openssh_rename(a.abs, b.abs, cb as (e: Error | null | undefined) => void));
      } else {
        if (existing) await this.remove(b.rel, { recursive: false, signal: opts.signal });
        // Plain SFTP rename never replaces (sftp-server uses link+unlink): atomic and no-clobber.
        await this.call<void>((cb) => sftp.rename(a.abs, b.abs, cb as (e: Error | null | undefined) => void));
      }
      this.forgetSafe(a.abs);
      this.moveCrc(b.abs, null);
      this.moveCrc(a.abs, b.abs);
    } catch (err) {
      if (sftpStatus(err) === FX_FAILURE && !opts.replace && (await this.stat(b.rel))) {
        throw new TransferError("TARGET_EXISTS", `rename to ${JSON.stringify(b.rel)}: already exists`, { details: { path: b.rel } });
      }
      throw this.fail(err, a.rel, "rename", opts.signal);
    }
  }

  /** Moves (to !== null) or drops the written-CRC records at or below `from`. */
  private moveCrc(from: string, to: string | null): void {
    for (const [p, v] of [...this.writtenCrc]) {
      if (p !== from && !p.startsWith(`${from}/`)) continue;
      this.writtenCrc.delete(p);
      if (to !== null) this.writtenCrc.set(to + p.slice(from.length), v);
    }
  }

  /** Drops cached safe folders at or below `abs` (they moved or vanished). */
  private forgetSafe(abs: string): void {
    for (const d of this.safeDirs) if (d === abs || d.startsWith(`${abs}/`)) this.safeDirs.delete(d);
    this.safeDirs.add(this.root);
  }

  async remove(path: string, opts: OpOptions & { recursive?: boolean } = {}): Promise<void> {
    this.start(opts.signal);
    const { rel, abs } = await this.prepare(path).catch((e: unknown) => { throw this.fail(e, path, "remove", opts.signal); });
    if (rel === "") throw new TransferError("INVALID_SPEC", "refusing to remove the portal's root");
    try {
      const sftp = await this.conn.sftp();
      const st = await this.call<Stats>((cb) => sftp.lstat(abs, cb)).catch((e: unknown) => {
        if (sftpStatus(e) === FX_NO_SUCH_FILE) return null;
        throw e;
      });
      if (!st) return;
      this.forgetSafe(abs);
      this.moveCrc(abs, null);
      if ((st.mode & S_IFMT) !== S_IFDIR) {
        await this.call<void>((cb) => sftp.unlink(abs, cb as (e: Error | null | undefined) => void));
        return;
      }
      if (!opts.recursive) {
        await this.call<void>((cb) => sftp.rmdir(abs, cb as (e: Error | null | undefined) => void)).catch((e: unknown) => {
          // sftp-server reports ENOTEMPTY as a bare FAILURE.
          if (sftpStatus(e) === FX_FAILURE) throw new TransferError("TARGET_EXISTS", `remove ${JSON.stringify(rel)}: the folder is not empty`, { details: { path: rel } });
          throw e;
        });
        return;
      }
      const tools = await this.tools(opts.signal);
      if (tools.shell && tools.commands.has("rm")) {
        const r = await this.run(`rm -rf -- ${shQuote(abs)}`, { signal: opts.signal });
        if (r.code !== 0) throw commandError("remove", rel, r.code, r.stderr);
        return;
      }
      await this.removeTreeSftp(sftp, abs);
    } catch (err) {
      throw this.fail(err, rel, "remove", opts.signal);
    }
  }

  private async removeTreeSftp(sftp: SFTPWrapper, abs: string): Promise<void> {
    const items = await this.call<{ filename: string; attrs: Stats }[]>((cb) => sftp.readdir(abs, cb));
    await Promise.all(items.filter((i) => i.filename !== "." && i.filename !== "..").map(async (i) => {
      const p = `${abs}/${i.filename}`;
      if ((i.attrs.mode & S_IFMT) === S_IFDIR) await this.removeTreeSftp(sftp, p);
      else await this.call<void>((cb) => sftp.unlink(p, cb as (e: Error | null | undefined) => void));
    }));
    await this.call<void>((cb) => sftp.rmdir(abs, cb as (e: Error | null | undefined) => void));
  }

  async locate(path: string, opts: OpOptions = {}): Promise<Location> {
    this.start(opts.signal);
    const rel = normalizeRel(path);
    const abs = this.abs(rel);
    try {
      const t = await this.tools(opts.signal);
      if (t.shell && t.commands.has("stat")) {
        const r = await this.run(locateScript(abs), { signal: opts.signal });
        const seen = r.code === 0 ? parseLocate(r.stdout) : null;
        if (seen !== null) return seen;
      }
      // SFTP only: the real path of the nearest existing entry (its parent resolved, not itself).
      const sftp = await this.conn.sftp();
      const missing: string[] = [];
      let at = abs;
      for (;;) {
        const parent = at.slice(0, at.lastIndexOf("/")) || "/";
        const exists = at === "/" || (await this.call<Stats>((cb) => sftp.lstat(at, cb)).then(() => true, (e: unknown) => {
          if (sftpStatus(e) === FX_NO_SUCH_FILE) return false;
          throw e;
        }));
        if (exists) {
          const realParent = at === "/" ? "/" : await this.call<string>((cb) => sftp.realpath(parent, cb));
          const realPath = at === "/" ? "/" : `${realParent === "/" ? "" : realParent}/${at.slice(at.lastIndexOf("/") + 1)}`;
          const user = this.label.slice(0, this.label.indexOf("@"));
          return { kernel: null, scope: sftpOnlyScope(this.fingerprint, user), realPath, missing: missing.join("/"), chain: null, shared: null };
        }
        missing.unshift(at.slice(at.lastIndexOf("/") + 1));
        at = parent;
      }
    } catch (err) {
      throw this.fail(err, rel, "locate", opts.signal);
    }
  }

  async space(path: string, opts: OpOptions = {}): Promise<SpaceInfo> {
    this.start(opts.signal);
    const { rel, abs } = await this.prepare(path).catch((e: unknown) => { throw this.fail(e, path, "check space", opts.signal); });
    try {
      const sftp = await this.conn.sftp();
      type Vfs = { f_bavail: number | bigint; f_frsize: number | bigint; f_blocks: number | bigint };
      const statvfs = (at: string): Promise<Vfs> => this.call<Vfs>((cb) => {
        try {
          sftp.ext_openssh_statvfs(at, cb);
        } catch (err) {
          // ssh2 throws synchronously when the server lacks statvfs@openssh.com.
          throw new TransferError("UNSUPPORTED", `${this.label} cannot report free space`, { cause: err });
        }
      });
      let at = abs;
      let info: Vfs;
      for (;;) {
        try {
          info = await statvfs(at);
          break;
        } catch (err) {
          // A folder not created yet lives on its nearest existing ancestor's file system.
          if (sftpStatus(err) !== FX_NO_SUCH_FILE || at === this.root) throw err;
          at = at.slice(0, at.lastIndexOf("/")) || "/";
        }
      }
      return { freeBytes: Number(info.f_bavail) * Number(info.f_frsize), totalBytes: Number(info.f_blocks) * Number(info.f_frsize) };
    } catch (err) {
      throw this.fail(err, rel, "check space", opts.signal);
    }
  }

  async capabilities(opts: OpOptions = {}): Promise<Capabilities> {
    const t = await this.tools(opts.signal).catch((e: unknown) => { throw this.fail(e, "", "probe", opts.signal); });
    const remote = remoteHashes(t);
    return {
      hashes: remote.length ? remote : READBACK_HASHES,
      unzip: canUnzip(t),
      packZip: t.shell && t.commands.has("zip") && t.commands.has("sed") && t.commands.has("find"),
    };
  }

  async hashFiles(paths: readonly string[], algorithm: HashAlgorithm, opts: OpOptions = {}): Promise<Map<string, string>> {
    this.start(opts.signal);
    const rels = paths.map(normalizeRel);
    // A remote source's 10,000 files sit in ~100 folders: one by one, that was 2 s at 20 ms RTT.
    await this.ensureSafeDirs(rels.map(parentOf)).catch((e: unknown) => { throw this.fail(e, rels[0] ?? "", "hash", opts.signal); });
    const t = await this.tools(opts.signal).catch((e: unknown) => { throw this.fail(e, "", "probe", opts.signal); });
    if (algorithm === "crc32" && rels.some((r) => this.writtenCrc.has(this.abs(r)))) {
      // Files we streamed were hashed by the remote as it wrote them; hash only the others.
      const result = new Map<string, string>();
      const rest: number[] = [];
      rels.forEach((r, i) => {
        const known = this.writtenCrc.get(this.abs(r));
        if (known) result.set(paths[i]!, known.crc32);
        else rest.push(i);
      });
      if (rest.length) {
        const more = await this.hashFiles(rest.map((i) => paths[i]!), algorithm, opts);
        for (const [p, h] of more) result.set(p, h);
      }
      return result;
    }
    if (remoteHashes(t).includes(algorithm)) return this.hashRemote(paths, rels, algorithm, opts.signal);
    if (!READBACK_HASHES.includes(algorithm)) throw new TransferError("UNSUPPORTED", `${this.label} cannot hash with ${algorithm}`);
    return this.hashReadBack(paths, rels, algorithm, opts.signal);
  }

  /** One remote command hashes every file: NUL-separated names in, "hash  name\0" out. */
  private async hashRemote(paths: readonly string[], rels: string[], algorithm: HashAlgorithm, signal?: AbortSignal): Promise<Map<string, string>> {
    const result = new Map<string, string>();
    if (!paths.length) return result;
    const stdin = new TextEncoder().encode(rels.map((r) => `${r}\0`).join(""));
    const r = await this.run(`cd ${shQuote(this.root)} && ${hashCommand(algorithm)}`, { stdin, signal }).catch((e: unknown) => { throw this.fail(e, "", "hash", signal); });
    if (r.code !== 0) throw commandError("hash", rels[0] ?? "", r.code, r.stderr);
    const byRel = parseHashOutput(r.stdout);
    paths.forEach((p, i) => {
      const h = byRel.get(rels[i]!);
      if (h === undefined) throw new TransferError("REMOTE_COMMAND_FAILED", `hash ${JSON.stringify(p)}: no hash in the remote output`);
      result.set(p, h);
    });
    return result;
  }

  /** Without a shell: read every file back over SFTP and hash here, a few files at a time. */
  private async hashReadBack(paths: readonly string[], rels: string[], algorithm: HashAlgorithm, signal?: AbortSignal): Promise<Map<string, string>> {
    const result = new Map<string, string>();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < paths.length) {
        const i = next++;
        const h = createHasher(algorithm);
        for await (const chunk of this.openRead(rels[i]!, { signal })) h.update(chunk);
        result.set(paths[i]!, h.digest());
      }
    };
    await Promise.all(Array.from({ length: Math.min(4, paths.length) }, worker));
    return result;
  }

  private async unzipArchive(archive: string, into: string, opts: OpOptions = {}): Promise<void> {
    this.start(opts.signal);
    const a = await this.prepare(archive).catch((e: unknown) => { throw this.fail(e, archive, "unzip", opts.signal); });
    const d = await this.prepare(into).catch((e: unknown) => { throw this.fail(e, into, "unzip", opts.signal); });
    await this.ensureSafeDir(d.abs, d.rel).catch((e: unknown) => { throw this.fail(e, into, "unzip", opts.signal); });
    const t = await this.tools(opts.signal).catch((e: unknown) => { throw this.fail(e, "", "probe", opts.signal); });
    let cmd: string;
    // Perl first (parallel, exact names); unzip strips "../" and leading "/" from member names, so an
    // archive cannot write outside `into`; -^ keeps control characters (a newline is a legal name character).
    if (t.shell && t.perlZlib) cmd = perlUnzipCommand(a.abs, d.abs, Math.min(t.cpus, 4));
    else if (t.shell && t.commands.has("unzip")) cmd = `unzip -q -o -^ ${shQuote(a.abs)} -d ${shQuote(d.abs)}`;
    else if (t.shell && t.commands.has("bsdtar")) cmd = `bsdtar -x -f ${shQuote(a.abs)} -C ${shQuote(d.abs)}`;
    else throw new TransferError("UNSUPPORTED", `${this.label} has no unzip or bsdtar`);
    const perl = cmd.startsWith("perl");
    if (!perl) this.moveCrc(d.abs, null);
    const r = await this.run(cmd, { signal: opts.signal }).catch((e: unknown) => {
      this.moveCrc(d.abs, null);
      throw this.fail(e, a.rel, "unzip", opts.signal);
    });
    this.unzipDone(a.rel, d.abs, perl, r.code, r.stdout, r.stderr);
  }

  /** A writer unpacking a stored zip into `into` as it arrives (see PERL_UNZIP_STREAM). */
  private async openUnzipStream(into: string, entries: readonly UnzipStreamEntry[], opts: OpOptions = {}): Promise<FileWriter> {
    this.start(opts.signal);
    const d = await this.prepare(into).catch((e: unknown) => { throw this.fail(e, into, "unzip", opts.signal); });
    const t = await this.tools(opts.signal).catch((e: unknown) => { throw this.fail(e, "", "probe", opts.signal); });
    if (!(t.shell && t.perlZlib)) throw new TransferError("UNSUPPORTED", `${this.label} has no perl with zlib to unpack a stream`);
    // The unpacker waits for its size list before it touches the disk, so the channel opens while
    // `into` is checked (two round trips and one, at once); a refused folder closes it unused.
    const safe = this.ensureSafeDir(d.abs, d.rel);
    const opening = this.conn.exec(perlUnzipStreamCommand(d.abs), opts.signal);
    const [checked, opened] = await Promise.allSettled([safe, opening]);
    if (checked.status === "rejected") {
      if (opened.status === "fulfilled") opened.value.close();
      throw this.fail(checked.reason, into, "unzip", opts.signal);
    }
    if (opened.status === "rejected") throw opened.reason;
    const ch = opened.value;
    return new UnzipStreamWriter(this, ch, d.rel, unzipStreamPreamble(entries), opts.signal, (code, stdout, stderr) => this.unzipDone(d.rel, d.abs, true, code, stdout, stderr));
  }

  /**
   * Maps an unpacker's exit status to the engine's errors; on success keeps the CRC-32 records the
   * perl unpackers report. Records of files an archive overwrites must go: the perl unpackers report
   * every file they wrote, so on success their report replaces exactly those and the records of
   * earlier archives unpacked into the same folder survive (dropping them all made verification
   * re-hash every archive but the last); other unpackers report nothing, and a failure leaves
   * unknown files.
   */
  private unzipDone(rel: string, intoAbs: string, perl: boolean, code: number | null, stdout: Buffer, stderr: string): void {
    if (code !== 0 || !perl) this.moveCrc(intoAbs, null);
    if (code === 50) throw new TransferError("NO_SPACE", `unzip ${JSON.stringify(rel)} on ${this.label}: the disk filled up; free space or choose another target`, { details: { path: rel } });
    if (code !== 0 && /unsafe name/.test(stderr)) {
      throw new TransferError("PATH_ESCAPE", `unzip ${JSON.stringify(rel)}: an entry name leaves the destination folder`, { details: { path: rel } });
    }
    if (code !== 0 && /bad CRC|checksum error|CRC error|malformed|bad central|bad local|end of central|compressed entry|truncated|short |size list|data after/i.test(stdout.toString() + stderr)) {
      throw new TransferError("VERIFY_FAILED", `unzip ${JSON.stringify(rel)} on ${this.label}: the archive arrived corrupted (CRC mismatch)`, { details: { path: rel } });
    }
    if (code !== 0) throw commandError("unzip", rel, code, stderr || stdout.toString());
    if (perl) {
      // Each file's CRC-32 was computed on the remote as it was written and matched the archive's,
      // which the sender computed from the source bytes: verification can reuse it.
      const base = intoAbs === "/" ? "" : intoAbs;
      for (const e of parseUnzipReport(stdout)) this.writtenCrc.set(`${base}/${e.name}`, { crc32: e.crc32, size: e.size });
    }
  }

  private async *packFolder(path: string, opts: OpOptions = {}): AsyncIterable<Uint8Array> {
    this.start(opts.signal);
    const rel = normalizeRel(path);
    const abs = this.abs(rel);
    try {
      await this.ensureSafeDir(abs, rel);
      const t = await this.tools(opts.signal);
      if (!t.shell || !t.commands.has("zip") || !t.commands.has("sed") || !t.commands.has("find")) throw new TransferError("UNSUPPORTED", `${this.label} has no zip`);
      // -0 stores. Links are left out (-y keeps them unfollowed, -x@ drops them, -nw takes names
      // literally): the engine recreates links itself. "Nothing to do" (12) is an empty folder.
      const cmd = `cd ${shQuote(abs)} && find . -type l | sed 's|^\\./||' | zip -0 -q -r -y -nw - . -x@/dev/stdin`;
      const it = this.streamCommand(cmd, rel, "pack", opts.signal, [0, 12]);
      let sent = 0;
      while (true) {
        const r = await it.next();
        if (r.done) {
          if (r.value === 12 && sent === 0) yield EMPTY_ZIP;
          return;
        }
        sent += r.value.length;
        yield r.value;
      }
    } catch (err) {
      throw this.fail(err, rel, "pack", opts.signal);
    }
  }

  async close(): Promise<void> {
    if (!this.conn.lost) await this.lanes.close();
    await this.conn.close();
  }
}

/** Options of a remote command run to completion. */
export interface RunOptions {
stdin?: Uint8Array;
signal?: AbortSignal;
timeoutMs?: number;
}

/** Exit code and output of a remote command. */
export interface RunResult {
code: number | null;
stdout: Buffer;
stderr: string;
}

/** Runs one remote command on `conn` to completion, feeding `stdin`; returns exit code and output. */
export async function runRemote(conn: Connection, label: string, command: string, opts: RunOptions = {}): Promise<RunResult> {
  if (opts.signal?.aborted) throw new TransferError("CANCELLED", "transfer cancelled");
  conn.check();
  const ch = await conn.exec(command, opts.signal);
  return await new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    let err = "";
    let code: number | null = null;
    const onAbort = (): void => {
      ch.close();
    };
    let timedOut = false;
    const timer = opts.timeoutMs ? setTimeout(() => {
      timedOut = true;
      ch.close();
    }, opts.timeoutMs) : null;
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    ch.on("data", (d: Buffer) => out.push(d));
    ch.stderr.on("data", (d: Buffer) => {
      if (err.length < 65536) err += d.toString();
    });
    ch.on("exit", (c: number | null) => {
      code = c;
    });
    // ssh2 passes the exit code to close as well; the exit event alone was missed at times.
    ch.on("close", (closeCode?: number | null) => {
      if (code === null && typeof closeCode === "number") code = closeCode;
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      if (opts.signal?.aborted) return reject(new TransferError("CANCELLED", "transfer cancelled"));
      if (conn.lost) return reject(conn.lost);
      if (timedOut) return reject(new TransferError("TIMEOUT", `remote command on ${label} did not finish within ${opts.timeoutMs} ms`));
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
    if (opts.stdin) ch.end(opts.stdin);
    else ch.end();
  });
}

/** A zip with no entries: just the end-of-central-directory record. */
const EMPTY_ZIP = new Uint8Array([0x50, 0x4b, 0x05, 0x06, ...new Array<number>(18).fill(0)]);

function canUnzip(t: RemoteTools): boolean {
  return t.shell && (t.perlZlib || t.commands.has("unzip") || t.commands.has("bsdtar"));
}

function hasExtension(sftp: SFTPWrapper, name: string): boolean {
  const ext = (sftp as unknown as { _extensions?: Record<string, string> })._extensions;
  return typeof ext?.[name] === "string";
}

function supportsPosixRename(sftp: SFTPWrapper): boolean {
  return hasExtension(sftp, "posix-rename@openssh.com");
}

/** Runs fn over items with at most `limit` in flight; the first failure wins once all settled. */
async function inParallel<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | null = null;
  const lane = async (): Promise<void> => {
    while (next < items.length && !failure) {
      const it = items[next++]!;
      await fn(it).catch((err: unknown) => {
        failure ??= { err };
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure) throw (failure as { err: unknown }).err;
}


