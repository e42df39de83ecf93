/**
 * The connections of one SSH endpoint. The first one carries SFTP, metadata and short commands;
 * byte streams (writer lanes, big reads, unzip streams, packs) spread over up to `maxConnections`
 * connections, `streamsPerConnection` each, opened when first needed.
 *
 * Why several: an OpenSSH session channel lets ~2 MiB travel per round trip (sshd's window), and
 * one TCP connection about its send buffer per round trip (4 MiB here: ~40 MB/s at 100 ms), so over
 * a long link one stream of one connection is a fraction of the path (docs/ssh.md, "Several
 * streams").
 *
 * Respecting the server: a channel the server refuses (sshd's MaxSessions) teaches that
 * connection its limit (Connection.sessionLimit) and the stream goes to another connection; a
 * connection it refuses (MaxStartups, a per-user limit, a firewall) ends the growth at what is
 * open. Either way the transfer goes on with fewer streams, and `refusal` says why.
 */
import type { ClientChannel } from "ssh2";
import { TransferError } from "../../errors.ts";
import { type Connection, isChannelRefusal } from "./connection.ts";

/** What runs remote commands: a connection pool (or, in tests, anything with the same three calls). */
export interface ExecSource {
  /** An exec channel running `command`; `bulk` marks a byte stream, which may go to another connection. */
  exec(command: string, signal?: AbortSignal, bulk?: boolean): Promise<ClientChannel>;
  /** Throws CONNECTION_LOST once the endpoint's first connection dropped. */
  check(): void;
  /** The loss of the connection `ch` runs on (else of the first connection), once it dropped. */
  lostFor(ch: ClientChannel): TransferError | null;
}

/** How many connections and streams per connection a pool aims for. */
export interface PoolShape {
  maxConnections: number;
  streamsPerConnection: number;
}

/** Retries of one exec after refusals (each refusal teaches a connection its limit). */
const MAX_REFUSALS = 8;
/** Pause before retrying after the n-th refusal: n times this. */
const REFUSAL_PAUSE_MS = 10;

/** See the file comment. */
export class ConnectionPool implements ExecSource {
  private readonly conns: Connection[];
  private readonly streams = new Map<Connection, number>();
  private readonly byChannel = new WeakMap<ClientChannel, Connection>();
  private opening: Promise<void> | null = null;
  private closed = false;
  /** Connections this pool may still grow to (lowered when the server refuses one). */
  private cap: number;
  /** What the server refused, in words (null: nothing). */
  refusal: string | null = null;
  /** Asked to free an exec slot on `conn` (end an idle writer lane there) when a command waits for one. */
  onExecPressure: ((conn: Connection) => boolean) | null = null;

  constructor(
    readonly primary: Connection,
    private readonly connect: () => Promise<Connection>,
    readonly shape: PoolShape,
  ) {
    this.conns = [primary];
    this.cap = Math.max(1, shape.maxConnections);
    this.adopt(primary);
  }

  private adopt(c: Connection): void {
    this.streams.set(c, 0);
    c.onExecPressure = () => this.onExecPressure?.(c) ?? false;
  }

  check(): void {
    this.primary.check();
  }

  lostFor(ch: ClientChannel): TransferError | null {
    return this.byChannel.get(ch)?.lost ?? this.primary.lost;
  }

  /** The connection `ch` was opened on (undefined for a channel not opened here). */
  connectionOf(ch: ClientChannel): Connection | undefined {
    return this.byChannel.get(ch);
  }

  /** Connections open now (lost ones left out). */
  get live(): Connection[] {
    return this.conns.filter((c) => c.lost === null);
  }

  /**
   * Byte streams this pool carries at once: streamsPerConnection on each connection it has or may
   * still open, fewer where the server set a lower limit.
   */
  get capacity(): number {
    const per = this.shape.streamsPerConnection;
    let n = 0;
    for (const c of this.live) n += c.sessionLimit === null ? per : Math.min(per, Math.max(0, c.sessionLimit - c.sftpChannels));
    n += Math.max(0, this.cap - this.conns.length) * per;
    return Math.max(1, n);
  }

  async exec(command: string, signal?: AbortSignal, bulk = false): Promise<ClientChannel> {
    for (let refusals = 0; ; refusals++) {
      this.check();
      // A stream is counted from the moment its connection is chosen (inside pick, synchronously),
      // so streams asked for at once spread instead of all choosing the same idle connection.
      const conn = await this.pick(bulk);
      try {
        const ch = await conn.exec(command, signal);
        this.byChannel.set(ch, conn);
        if (bulk) ch.once("close", () => this.count(conn, -1));
        return ch;
      } catch (err) {
        if (bulk) this.count(conn, -1);
        // Refused here (the connection now knows its limit): another connection, or a wait here.
        if (!isChannelRefusal(err) || refusals >= MAX_REFUSALS) throw err;
        this.refusal = `the server refused a session beyond ${conn.sessionLimit} on one connection (sshd MaxSessions)`;
        // A refusal with room left is the server still closing a session: give it a moment.
        await Bun.sleep(REFUSAL_PAUSE_MS * (refusals + 1));
      }
    }
  }

  private count(conn: Connection, delta: number): void {
    this.streams.set(conn, (this.streams.get(conn) ?? 0) + delta);
  }

  /**
   * The connection for the next channel: a short command goes to the first connection when it
   * has room; a byte stream to the connection with the fewest streams, opening another while
   * every one has streamsPerConnection and the pool may grow.
   */
  private async pick(bulk: boolean): Promise<Connection> {
    const chosen = (c: Connection): Connection => {
      if (bulk) this.count(c, +1);
      return c;
    };
    for (;;) {
      const live = this.live;
      const room = live.filter((c) => c.execRoom);
      if (!bulk && room.length > 0) return room.includes(this.primary) ? this.primary : room[0]!;
      const least = leastBusy(room, this.streams);
      if (bulk && least !== null && (this.streams.get(least) ?? 0) < this.shape.streamsPerConnection) return chosen(least);
      if (this.conns.length < this.cap && !this.closed) {
        await this.grow();
        continue;
      }
      if (least !== null) return chosen(least);
      // Every connection is busy: the least busy one that can ever run a command waits for a slot.
      const waiting = leastBusy(live.filter((c) => c.execPossible), this.streams);
      if (waiting !== null) return chosen(waiting);
      this.check();
      throw new TransferError("REMOTE_COMMAND_FAILED", `${this.primary.where} allows no remote command next to its SFTP sessions (sshd MaxSessions)`, { details: { refused: "channel" } });
    }
  }

  /**
   * Opens the connections `streams` byte streams need (at most the shape's), one after the other,
   * in the background: a stream that needs one later finds it open instead of waiting a handshake.
   * A refusal ends it, as in grow().
   */
  warm(streams: number): void {
    const want = Math.min(this.cap, Math.ceil(streams / this.shape.streamsPerConnection));
    const next = (): void => {
      if (this.closed || this.conns.length >= Math.min(want, this.cap)) return;
      void this.grow().then(next);
    };
    next();
  }

  /** Opens one more connection (one at a time); a refusal ends the growth at what is open. */
  private grow(): Promise<void> {
    this.opening ??= (async () => {
      try {
        const c = await this.connect();
        if (this.closed) {
          await c.close();
          return;
        }
        this.conns.push(c);
        this.adopt(c);
      } catch (err) {
        // Not this transfer's failure: it goes on over the connections it has.
        this.cap = this.conns.length;
        this.refusal = `the server refused connection ${this.conns.length + 1} (${(err as Error).message}); using ${this.conns.length}`;
      } finally {
        this.opening = null;
      }
    })();
    return this.opening;
  }

  /** Closes every connection (idempotent). */
  async close(): Promise<void> {
    this.closed = true;
    await this.opening;
    await Promise.all(this.conns.map((c) => c.close()));
  }
}

function leastBusy(conns: readonly Connection[], streams: ReadonlyMap<Connection, number>): Connection | null {
  let best: Connection | null = null;
  for (const c of conns) if (best === null || (streams.get(c) ?? 0) < (streams.get(best) ?? 0)) best = c;
  return best;
}
