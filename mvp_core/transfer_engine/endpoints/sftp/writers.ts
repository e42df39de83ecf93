/**
 * How bytes reach a remote file: a plain byte stream over an exec channel (one command per file
 * for streams of unknown size, or a long-lived "lane" receiving many files), or SFTP WRITE
 * requests kept in flight when the host has no shell or the file is small.
 */
import type { ClientChannel, SFTPWrapper } from "ssh2";
import type { FileWriter, WriteOptions } from "../endpoint.ts";
import { cancelledError, throwIfCancelled } from "../../cancel.ts";
import { TransferError } from "../../errors.ts";
import { raceTimeout } from "../../timeout.ts";
import type { Connection } from "./connection.ts";
import type { ConnectionPool } from "./connection_pool.ts";
import { ChannelState } from "./exec.ts";
import { collectGarbageEvery } from "../../gc.ts";
import { commandError, laneHeader, parseRangeProgress, parseWriteReport, perlLaneCommand } from "./remote_shell.ts";
import { type Callback, FX_FAILURE, maxLen, sftpStatus } from "./sftp_calls.ts";

/** Batch size for stream writes: fflate emits tiny chunks, the channel wants big ones. */
const WRITE_BATCH_BYTES = 1024 * 1024;
/** Outstanding SFTP read/write requests per file. */
export const SFTP_IN_FLIGHT = 32;
/** How long an aborted stream may take to end its remote process before its channel is closed. */
const ABORT_GRACE_MS = 5_000;

/** What writers need from their endpoint. */
export interface WriterHost {
  call<T>(fn: (cb: Callback<T>) => void): Promise<T>;
  guardLoss<T>(p: Promise<T>): Promise<T>;
  /** The loss of the connection `ch` runs on (else of the endpoint's first one), once it dropped. */
  connectionLost(ch?: ClientChannel): TransferError | null;
  mapError(err: unknown, rel: string, action: string, signal?: AbortSignal): TransferError;
  discard(abs: string): Promise<void>;
  diskFull(abs: string): Promise<boolean>;
  /** Called with the remote's CRC-32 and size of a file it wrote and hashed. */
  recordWritten(abs: string, report: { crc32: string; size: number }): void;
  /** The same for a range of a file written at `offset`. */
  recordRange(abs: string, offset: number, report: { crc32: string; size: number }): void;
}

/**
 * The part every exec-channel writer shares: small chunks copied into large channel writes, big
 * ones written as they are, the channel's backpressure honoured, and a dead channel turned into
 * the remote's own error.
 */
abstract class ChannelWriter implements FileWriter {
  /** Bytes to send before any data (a lane's file header, the unpacker's size list); ours. */
  private lead: Uint8Array | null = null;
  /** Small chunks copied together for the next channel write (callers may reuse theirs). */
  private batch: Buffer | null = null;
  private batchBytes = 0;
  protected done = false;

  constructor(protected host: WriterHost, protected channel: ChannelState, protected rel: string, protected abs: string, protected signal: AbortSignal | undefined) {}

  /** The error that ended the channel: cancellation, connection loss, or the remote's stderr. */
  protected async failure(): Promise<TransferError> {
    await this.channel.closed;
    if (this.signal?.aborted) return cancelledError(this.signal.reason);
    const lost = this.host.connectionLost(this.channel.ch);
    if (lost) return lost;
    return commandError("write", this.rel, this.channel.exitCode, this.channel.stderr);
  }

  async write(chunk: Uint8Array): Promise<void> {
    throwIfCancelled(this.signal);
    if (this.channel.isClosed) throw await this.failure();
    this.accept(chunk);
    await this.sendLead();
    for (let at = 0; at < chunk.length;) {
      if (this.batchBytes === 0 && chunk.length - at >= WRITE_BATCH_BYTES) {
        await this.send(chunk.subarray(at), false);
        return;
      }
      const batch = (this.batch ??= Buffer.allocUnsafe(WRITE_BATCH_BYTES));
      const n = Math.min(WRITE_BATCH_BYTES - this.batchBytes, chunk.length - at);
      batch.set(chunk.subarray(at, at + n), this.batchBytes);
      this.batchBytes += n;
      at += n;
      if (this.batchBytes === WRITE_BATCH_BYTES) await this.flush();
    }
  }

  /** Lets a subclass refuse a chunk before it is queued. */
  protected accept(_chunk: Uint8Array): void {}

  /** Sets bytes (given to this writer, not lent) to go ahead of all data; called before any write. */
  protected sendFirst(bytes: Uint8Array): void {
    this.lead = bytes;
  }

  private async sendLead(): Promise<void> {
    if (!this.lead) return;
    const lead = this.lead;
    this.lead = null;
    await this.send(lead, true);
  }

  protected async flush(): Promise<void> {
    await this.sendLead();
    if (!this.batchBytes) return;
    const buf = this.batch!.subarray(0, this.batchBytes);
    this.batch = null; // the channel may hold it until the remote's window opens: the next batch is new
    this.batchBytes = 0;
    await this.send(buf, true);
  }

  /**
   * Writes to the channel and honours its backpressure. Bytes we do not own (`owned` false: the
   * caller's chunk) are waited for until ssh2 has packed them, which may take until the remote's
   * window opens; until then ssh2 holds a reference, and the caller may reuse the memory after.
   */
  private async send(buf: Uint8Array, owned: boolean): Promise<void> {
    collectGarbageEvery(buf.length);
    const ch = this.channel.ch;
    let writeError: Error | null | undefined = null;
    let packed: Promise<void> | null = null;
    let ready: boolean;
    if (owned) {
      ready = ch.write(buf);
    } else {
      let resolvePacked!: () => void;
      packed = new Promise<void>((r) => (resolvePacked = r));
      ready = ch.write(buf, (err?: Error | null) => {
        writeError = err;
        resolvePacked();
      });
    }
    if (ready && packed === null) return;
    // Wait until the channel drains (or packed our bytes), or until it dies under us.
    await new Promise<void>((resolve) => {
      const done = (): void => {
        ch.off("drain", done);
        resolve();
      };
      if (packed) void packed.then(done);
      else ch.once("drain", done);
      void this.channel.closed.then(done);
    });
    if (this.channel.isClosed) throw await this.failure();
    if (writeError) throw this.host.mapError(writeError, this.rel, "write", this.signal);
  }

  /** Sends what is pending, ends the remote's input and waits until the command exited. */
  protected async endInput(action: string): Promise<void> {
    try {
      await this.flush();
      this.channel.ch.end();
      await this.channel.closed;
    } catch (err) {
      throw this.host.mapError(err, this.rel, action, this.signal);
    }
  }

  /** Ends the remote process: EOF first, so it cannot create a file after our cleanup; a stuck one is closed after a grace period. */
  protected async endChannel(): Promise<void> {
    this.lead = null;
    this.batch = null;
    this.batchBytes = 0;
    if (this.channel.isClosed) return;
    this.channel.ch.end();
    await raceTimeout(this.channel.closed, ABORT_GRACE_MS, () => {
      this.channel.ch.close();
      return this.channel.closed;
    });
  }

  protected async endAndDiscard(): Promise<void> {
    await this.endChannel();
    await this.host.discard(this.abs);
  }

  abstract close(): Promise<void>;
  abstract abort(): Promise<void>;
}

/** Writes one stream of unknown size (a zip archive) through one command: perl writer or `cat >`. */
export class ExecWriter extends ChannelWriter {
  constructor(host: WriterHost, ch: ClientChannel, rel: string, abs: string, signal: AbortSignal | undefined, private reports: boolean) {
    super(host, new ChannelState(ch), rel, abs, signal);
  }

  async close(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.endInput("write");
    if (this.channel.exitCode !== 0) throw await this.failure();
    if (this.reports) {
      const r = parseWriteReport((await this.channel.nextLine()) ?? this.channel.tail);
      if (r) this.host.recordWritten(this.abs, r);
    }
  }

  async abort(): Promise<void> {
    this.done = true;
    await this.endAndDiscard();
  }
}

/**
 * Feeds a stored zip to the remote streaming unpacker (PERL_UNZIP_STREAM), size list first;
 * `finish` maps its exit status and report (as for an unpacked archive) once it has exited.
 */
export class UnzipStreamWriter extends ChannelWriter {
  constructor(host: WriterHost, ch: ClientChannel, into: string, preamble: Uint8Array, signal: AbortSignal | undefined,
    private finish: (code: number | null, stdout: Buffer, stderr: string) => void) {
    super(host, new ChannelState(ch, true), into, into, signal);
    this.sendFirst(preamble);
  }

  async close(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.endInput("unzip");
    if (this.signal?.aborted || this.host.connectionLost(this.channel.ch)) throw await this.failure();
    this.finish(this.channel.exitCode, Buffer.concat(this.channel.stdout), this.channel.stderr);
  }

  /** Stops the unpacker; what it wrote lies in the staging tree, which the engine removes. */
  async abort(): Promise<void> {
    this.done = true;
    await this.endChannel();
  }
}

/**
 * Long-lived writer processes on the remote, one per file being written at once, each receiving
 * file after file (see PERL_LANE). Idle lanes are kept for the next file and ended when the
 * connection needs their exec slot or the endpoint closes.
 */
export class WriterLanes {
  private idle: ChannelState[] = [];
  private live = new Set<ChannelState>();

  constructor(private pool: ConnectionPool, private root: string) {
    pool.onExecPressure = (conn) => this.retireOne(conn);
  }

  /** An idle lane, or a new one (on the connection with the fewest streams). */
  async acquire(signal?: AbortSignal): Promise<ChannelState> {
    for (let lane = this.idle.pop(); lane; lane = this.idle.pop()) if (!lane.isClosed) return lane;
    const ch = await this.pool.exec(perlLaneCommand(this.root), signal, true);
    const lane = new ChannelState(ch);
    this.live.add(lane);
    void lane.closed.then(() => {
      this.live.delete(lane);
      this.idle = this.idle.filter((l) => l !== lane);
    });
    return lane;
  }

  /** Puts a lane that finished its file back for the next one, or ends it when a command waits for its connection's slot. */
  release(lane: ChannelState): void {
    if (lane.isClosed) return;
    if (this.pool.connectionOf(lane.ch)?.execWanted) lane.ch.end();
    else this.idle.push(lane);
  }

  /** Ends one idle lane (EOF between files: it exits cleanly), on `conn` when given; false when none is idle. */
  private retireOne(conn?: Connection): boolean {
    const i = conn === undefined ? 0 : this.idle.findIndex((l) => this.pool.connectionOf(l.ch) === conn);
    const lane = i < 0 ? undefined : this.idle.splice(i, 1)[0];
    if (!lane) return false;
    lane.ch.end();
    return true;
  }

  /** Ends every lane; busy lanes are not expected here (the transfer finished) and are closed too. */
  async close(): Promise<void> {
    while (this.retireOne());
    for (const lane of this.live) if (!lane.isClosed) lane.ch.end();
    await Promise.all([...this.live].map((l) => l.closed));
  }
}

/** A range of a file, for a writer in range mode (WriteOptions.offset). */
export interface RangeTarget {
  offset: number;
  onWritten: WriteOptions["onWritten"];
}

/**
 * Writes one file of known size (or, with `range`, a range of one) through a lane; close() waits
 * for the lane's report of it. A range's progress lines go to its onWritten as they arrive.
 */
export class LaneWriter extends ChannelWriter {
  private written = 0;
  private finished = false;
  /** Range mode: the lane's final report, once its progress lines were read up to it. */
  private readonly report: Promise<string | null> | null;

  constructor(host: WriterHost, private lanes: WriterLanes, lane: ChannelState, rel: string, abs: string, private size: number, mode: number | undefined, signal: AbortSignal | undefined, private range?: RangeTarget) {
    super(host, lane, rel, abs, signal);
    this.sendFirst(laneHeader(rel, size, mode, range?.offset));
    this.report = range === undefined ? null : this.readProgress(range);
    this.report?.catch(() => undefined); // awaited by close()
  }

  private async readProgress(range: RangeTarget): Promise<string | null> {
    for (;;) {
      const line = await this.channel.nextLine();
      const p = line === null ? null : parseRangeProgress(line);
      if (p === null) return line;
      range.onWritten?.(p.bytes, p.crc32);
    }
  }

  protected override accept(chunk: Uint8Array): void {
    this.written += chunk.length;
    if (this.written > this.size) throw this.sizeMismatch();
  }

  private sizeMismatch(): TransferError {
    return new TransferError("SOURCE_CHANGED", `source of ${JSON.stringify(this.rel)} delivered ${this.written} bytes where ${this.size} were announced; the file changed while being copied — retry when it is stable`, { details: { path: this.rel } });
  }

  async close(): Promise<void> {
    if (this.done) return;
    this.done = true;
    if (this.written !== this.size) throw this.sizeMismatch(); // abort() then ends the lane mid-file
    let line: string | null;
    try {
      await this.flush();
      line = await (this.report ?? this.channel.nextLine());
    } catch (err) {
      throw this.host.mapError(err, this.rel, "write", this.signal);
    }
    if (line === null) throw await this.failure();
    const r = parseWriteReport(line);
    if (!r || r.size !== this.size) throw new TransferError("REMOTE_COMMAND_FAILED", `write ${JSON.stringify(this.rel)}: unexpected report from the remote writer: ${JSON.stringify(line.slice(0, 200))}`);
    this.finished = true;
    if (this.range === undefined) this.host.recordWritten(this.abs, r);
    else {
      this.host.recordRange(this.abs, this.range.offset, r);
      this.range.onWritten?.(r.size, parseInt(r.crc32, 16));
    }
    this.lanes.release(this.channel);
  }

  async abort(): Promise<void> {
    this.done = true;
    if (this.finished) {
      if (this.range === undefined) await this.host.discard(this.abs);
      return;
    }
    // Mid-file: the lane cannot be told to stop one file, so it ends (EOF inside a file: exit 3).
    // A range leaves the file: the other ranges are in it.
    if (this.range === undefined) await this.endAndDiscard();
    else await this.endChannel();
  }
}

/** Writes one file over SFTP with many WRITE requests in flight (ssh2's own streams keep one). */
export class SftpWriter implements FileWriter {
  private pos = 0;
  /** The start of the next request, copied (callers may reuse their chunks); ssh2 copies what it sends. */
  private pending: Buffer | null = null;
  private pendingBytes = 0;
  private inflight = 0;
  private waiters: (() => void)[] = [];
  private error: unknown = null;
  private done = false;
  private readonly chunk: number;
  /** Range mode: CRC-32 of the bytes sent (SFTP reports none), told to onWritten at close. */
  private crc = 0;

  constructor(private ep: WriterHost, private sftp: SFTPWrapper, private handle: Buffer, private rel: string, private abs: string, private mode: number | undefined, private signal?: AbortSignal, private range?: RangeTarget) {
    this.chunk = maxLen(sftp, "_maxWriteLen");
    this.pos = range?.offset ?? 0;
  }

  private async check(): Promise<void> {
    throwIfCancelled(this.signal);
    if (this.error) {
      const err = this.error;
      if (sftpStatus(err) === FX_FAILURE && (await this.ep.diskFull(this.abs).catch(() => false))) {
        throw new TransferError("NO_SPACE", `write ${JSON.stringify(this.rel)}: no space left on the destination; free space or choose another target`, { cause: err, details: { path: this.rel } });
      }
      throw this.ep.mapError(err, this.rel, "write", this.signal);
    }
  }

  async write(chunk: Uint8Array): Promise<void> {
    await this.check();
    if (this.range) this.crc = Bun.hash.crc32(chunk, this.crc);
    let at = 0;
    if (this.pendingBytes) {
      at = Math.min(this.chunk - this.pendingBytes, chunk.length);
      this.pending!.set(chunk.subarray(0, at), this.pendingBytes);
      this.pendingBytes += at;
      if (this.pendingBytes < this.chunk) return;
      await this.sendPending();
    }
    for (; chunk.length - at >= this.chunk; at += this.chunk) await this.send(chunk.subarray(at, at + this.chunk));
    if (at < chunk.length) {
      (this.pending ??= Buffer.allocUnsafe(this.chunk)).set(chunk.subarray(at));
      this.pendingBytes = chunk.length - at;
    }
  }

  private async sendPending(): Promise<void> {
    const n = this.pendingBytes;
    this.pendingBytes = 0;
    await this.send(this.pending!.subarray(0, n));
  }

  private async send(buf: Uint8Array): Promise<void> {
    while (this.inflight >= SFTP_IN_FLIGHT) await this.ep.guardLoss(new Promise<void>((r) => this.waiters.push(r)));
    await this.check();
    const at = this.pos;
    this.pos += buf.length;
    this.inflight++;
    this.sftp.write(this.handle, Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength), 0, buf.length, at, (err) => {
      this.inflight--;
      if (err && !this.error) this.error = err;
      this.waiters.shift()?.();
    });
  }

  private async drain(): Promise<void> {
    while (this.inflight > 0) await this.ep.guardLoss(new Promise<void>((r) => this.waiters.push(r)));
    await this.check();
  }

  async close(): Promise<void> {
    if (this.done) return;
    this.done = true;
    try {
      if (this.pendingBytes) await this.sendPending();
      await this.drain();
      // The server's umask applied at open: set the exact bits, sent with the close (one round trip).
      const chmod = this.mode === undefined ? null : this.ep.call<void>((cb) => this.sftp.fchmod(this.handle, this.mode! & 0o7777, cb as (e: Error | null | undefined) => void));
      const close = this.ep.call<void>((cb) => this.sftp.close(this.handle, cb as (e: Error | null | undefined) => void));
      const [a, b] = await Promise.allSettled([chmod, close]);
      if (a.status === "rejected") throw a.reason;
      if (b.status === "rejected") throw b.reason;
    } catch (err) {
      throw this.ep.mapError(err, this.rel, "write", this.signal);
    }
    if (this.range) this.range.onWritten?.(this.pos - this.range.offset, this.crc >>> 0);
  }

  async abort(): Promise<void> {
    this.done = true;
    this.pendingBytes = 0;
    await this.ep.guardLoss((async () => {
      while (this.inflight > 0) await new Promise<void>((r) => this.waiters.push(r));
    })()).catch((e: unknown) => {
      if (!this.ep.connectionLost()) throw e;
    });
    if (this.ep.connectionLost()) return;
    await this.ep.call<void>((cb) => this.sftp.close(this.handle, cb as (e: Error | null | undefined) => void)).catch((e: unknown) => {
      if (!this.ep.connectionLost()) throw this.ep.mapError(e, this.rel, "write", this.signal);
    });
    if (this.range === undefined) await this.ep.discard(this.abs);
  }
}
