/**
 * One SSH connection's view of the remote host, shared by the endpoint's parts: the root guard,
 * the probed tools, the CRC-32 records, the writer lanes, SFTP requests and remote commands, and the
 * one place where an operation's failure is caught and mapped (op/opStream).
 */
import { throwIfCancelled } from "../../cancel.ts";
import { TransferError, isTransferError } from "../../errors.ts";
import { CrcRecords } from "./crc_records.ts";
import type { ClientChannel } from "ssh2";
import type { Connection } from "./connection.ts";
import type { ConnectionPool } from "./connection_pool.ts";
import { type RunOptions, type RunResult, runRemote, streamCommand } from "./exec.ts";
import { type RemoteTools, parseProbe, probeCommand } from "./remote_shell.ts";
import { RootGuard } from "./root_guard.ts";
import { type Callback, FX_NO_SUCH_FILE, call, mapFailure, sftpStatus } from "./sftp_calls.ts";
import { freeSpace } from "./space.ts";
import { WriterLanes, type WriterHost } from "./writers.ts";

/** How long the capability probe may take. */
export const PROBE_TIMEOUT_MS = 15_000;

/** The remote host behind one SftpEndpoint. */
export class RemoteHost implements WriterHost {
  readonly guard: RootGuard;
  /** CRC-32s the remote computed while writing (crc_records.ts). */
  readonly crc = new CrcRecords();
  /** Long-lived remote writers for big files (one session and perl start per lane, not per file). */
  readonly lanes: WriterLanes;
  private toolsProbe: Promise<RemoteTools> | null = null;
  /** What the probe found, once it answered (null before). */
  probed: RemoteTools | null = null;

  /** The first connection: SFTP, metadata and short commands (pool.primary). */
  readonly conn: Connection;

  constructor(
    /** Every connection of the endpoint; byte streams spread over them. */
    readonly pool: ConnectionPool,
    /** Canonical absolute root on the remote (after realpath). */
    readonly root: string,
    readonly label: string,
    /** Told what the probe found, once (the endpoint drops the optional methods the host cannot back). */
    private readonly onTools: (t: RemoteTools) => void,
  ) {
    this.conn = pool.primary;
    this.guard = new RootGuard(root, async (abs) => {
      const sftp = await this.conn.sftp();
      return this.call<string>((cb) => sftp.realpath(abs, cb));
    });
    this.lanes = new WriterLanes(pool, root);
  }

  /** The connection's loss, once it dropped. */
  get lost(): TransferError | null {
    return this.conn.lost;
  }

  /** An SFTP request that fails with CONNECTION_LOST as soon as the connection drops. */
  call<T>(fn: (cb: Callback<T>) => void): Promise<T> {
    return this.conn.guard(call(fn));
  }

  /** Races `p` against the connection dropping. */
  guardLoss<T>(p: Promise<T>): Promise<T> {
    return this.conn.guard(p);
  }

  /** Throws CANCELLED or CONNECTION_LOST before an operation starts. */
  start(signal?: AbortSignal): void {
    throwIfCancelled(signal);
    this.conn.check();
  }

  /** Converts any failure into a TransferError naming `rel` (sftp_calls.ts mapFailure). */
  fail(err: unknown, rel: string, action: string, signal?: AbortSignal): TransferError {
    return mapFailure(err, this, rel, action, signal);
  }

  /** Runs the operation `action` on `rel`: checked before it starts, any failure mapped by fail(). */
  async op<T>(rel: string, action: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    this.start(signal);
    try {
      return await fn();
    } catch (err) {
      throw this.fail(err, rel, action, signal);
    }
  }

  /** op() for an operation that streams. */
  async *opStream<T>(rel: string, action: string, signal: AbortSignal | undefined, fn: () => AsyncIterable<T>): AsyncGenerator<T, void, undefined> {
    this.start(signal);
    try {
      yield* fn();
    } catch (err) {
      throw this.fail(err, rel, action, signal);
    }
  }

  /**
   * Remote tools, probed once with one exec (a host without a shell answers without our marker);
   * `started` is that exec already under way (connectSsh starts it while it checks the root).
   */
  tools(signal?: AbortSignal, started?: Promise<RunResult>): Promise<RemoteTools> {
    this.toolsProbe ??= (async () => {
      try {
        const r = await (started ?? this.run(probeCommand(this.root), { signal, timeoutMs: PROBE_TIMEOUT_MS }));
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

  private adopt(t: RemoteTools): RemoteTools {
    this.probed = t;
    this.onTools(t);
    return t;
  }

  /** Runs one remote command to completion, feeding `stdin`; returns exit code and output. */
  run(command: string, opts: RunOptions = {}): Promise<RunResult> {
    this.start(opts.signal);
    return runRemote(this.pool, this.label, command, opts);
  }

  /** Streams a remote command's stdout (exec.ts streamCommand). */
  stream(command: string, rel: string, action: string, signal?: AbortSignal, okCodes?: readonly number[]): AsyncGenerator<Uint8Array, number | null> {
    return streamCommand(this.pool, command, rel, action, signal, okCodes);
  }

  // WriterHost: what the writers need from their endpoint.

  connectionLost(ch?: ClientChannel): TransferError | null {
    return ch === undefined ? this.conn.lost : this.pool.lostFor(ch);
  }

  mapError(err: unknown, rel: string, action: string, signal?: AbortSignal): TransferError {
    return this.fail(err, rel, action, signal);
  }

  recordWritten(abs: string, report: { crc32: string; size: number }): void {
    this.crc.set(abs, report);
  }

  recordRange(abs: string, offset: number, report: { crc32: string; size: number }): void {
    this.crc.setRange(abs, offset, report);
  }

  /** Removes a partial file; a connection already gone leaves nothing we can do. */
  async discard(abs: string): Promise<void> {
    if (this.conn.lost) return;
    const sftp = await this.conn.sftp();
    await this.call<void>((cb) => sftp.unlink(abs, cb as (e: Error | null | undefined) => void)).catch((e: unknown) => {
      if (sftpStatus(e) !== FX_NO_SUCH_FILE && !this.conn.lost) throw e;
    });
  }

  /** Distinguishes a full disk from other SFTP failures (sftp-server reports ENOSPC as plain FAILURE). */
  async diskFull(abs: string): Promise<boolean> {
    try {
      const s = await freeSpace(this, this.guard.rel(abs).split("/").slice(0, -1).join("/"));
      return s.freeBytes < 1024 * 1024;
    } catch (err) {
      if (isTransferError(err) && err.code === "UNSUPPORTED") return false;
      throw err;
    }
  }
}
