/**
 * One SSH connection per endpoint: connect with a pinned host key, then hand out SFTP channels (a
 * small pool) and exec channels (bounded, because OpenSSH allows MaxSessions=10 per connection).
 * Once the connection drops every later call fails with the same retryable CONNECTION_LOST.
 *
 * A dying server must never take the process down: ssh2 reports some failures as `error` events
 * (on the client, on an SFTP session, on a channel), some of them after the request they belong to
 * was answered, and an `error` event without a listener is thrown by Node's EventEmitter. Every
 * client, SFTP session and channel made here therefore gets its listener, which marks the
 * connection lost (CONNECTION_LOST, retryable) and ends it.
 */
import { Client, type CipherAlgorithm, type ClientChannel, type ConnectConfig, type SFTPWrapper } from "ssh2";
import { TransferError, isTransferError } from "../../errors.ts";

/** Ciphers Bun's crypto implements (no chacha20-poly1305), fastest first. */
export const CIPHERS: CipherAlgorithm[] = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes192-ctr", "aes256-ctr"];

/** Everything needed to open the connection (secrets stay in here, never in messages). */
export interface ConnectParams {
  host: string;
  port: number;
  username: string;
  auth: { method: "key"; privateKey: string; passphrase?: string } | { method: "password"; password: string };
  /** null accepts any key (probe only); the fingerprint seen is reported either way. */
  hostKeyFingerprint: string | null;
  connectTimeoutMs: number;
  keepaliveIntervalMs: number;
  signal?: AbortSignal;
}

/** "SHA256:<base64 without padding>" of a raw host key blob, as `ssh-keygen -l` prints it. */
export function fingerprintOf(key: Uint8Array): string {
  return "SHA256:" + new Bun.CryptoHasher("sha256").update(key).digest("base64").replace(/=+$/, "");
}

/** Canonical form of a user-supplied fingerprint (prefix optional, padding ignored), or null if malformed. */
export function normalizeFingerprint(fp: string): string | null {
  const body = fp.trim().replace(/^SHA256:/i, "").replace(/=+$/, "");
  return /^[A-Za-z0-9+/]{43}$/.test(body) ? `SHA256:${body}` : null;
}

/** What a bulk read keeps open of its channel's receive window (see widenReceiveWindow). */
export const BULK_RECEIVE_WINDOW = 8 * 1024 * 1024;

/**
 * ssh2 keeps a channel's receive window at 2 MiB and tops it up only once it has fallen to 1 MiB,
 * so at most ~1 MiB arrives per round trip (traced: 1 MiB every 21 ms through the 20 ms relay, a
 * 10,000-file pull's archive at ~48 MB/s). A bulk reader calls this for each chunk it takes while
 * it is not pausing the channel: the window is topped up to `target` in quarter steps. ssh2's own
 * top-up stays idle while the window is above 1 MiB; a paused reader stops calling, so the
 * sender still stops once the window is used up. (ssh2 exposes the window only on the channel's
 * untyped `incoming`/`outgoing` state; pinned ssh2 1.17.)
 */
export function widenReceiveWindow(ch: ClientChannel, target = BULK_RECEIVE_WINDOW): void {
  const c = ch as unknown as { incoming: { window: number }; outgoing: { id: number; state: string }; _client?: { _protocol?: { channelWindowAdjust(id: number, n: number): void } } };
  const protocol = c._client?._protocol;
  if (!protocol || !c.outgoing || c.outgoing.state === "closed" || typeof c.incoming?.window !== "number") return;
  const missing = target - c.incoming.window;
  if (missing < target / 4) return;
  c.incoming.window += missing;
  protocol.channelWindowAdjust(c.outgoing.id, missing);
}

const MAX_EXEC_CHANNELS = 6;
/** SFTP channels per connection (files alternate between them so sftp-server can overlap disk waits). */
export const SFTP_CHANNELS = 2;

/** ssh2's message when the server refuses to open a channel (sshd: MaxSessions reached). */
const CHANNEL_REFUSED = /Channel open failure/i;

/** True for the error a Connection raises when the server refused a channel (see Connection.sessionLimit). */
export function isChannelRefusal(err: unknown): boolean {
  return isTransferError(err) && err.details.refused === "channel";
}

/** A live SSH connection and its channels. */
export class Connection {
  /** Set once the connection is gone; every later operation rethrows it. */
  lost: TransferError | null = null;
  /** Called once on loss: ssh2 may leave SFTP callbacks pending forever after a drop. A set, not a promise, so settled requests hold no memory. */
  private lostListeners = new Set<(e: TransferError) => void>();
  private closing = false;
  private sftpPool = new Map<number, Promise<SFTPWrapper>>();
  private nextSftp = 0;
  /** SFTP channels to spread requests over: one once the server refused a second. */
  private sftpSlots = SFTP_CHANNELS;
  private sftpOpen = 0;
  private execSlots = MAX_EXEC_CHANNELS;
  /** Exec channels whose command has exited but whose close we have not seen yet (see channelError). */
  private execFinishing = 0;
  private execWaiters: (() => void)[] = [];
  /** Asked to free an exec slot (e.g. end an idle writer lane) when a command has to wait for one. */
  onExecPressure: (() => boolean) | null = null;
  /**
   * Channels of every kind (SFTP and exec) the server allows on this connection, learned when it
   * refused one (sshd's MaxSessions counts them all; default 10): null until then.
   */
  sessionLimit: number | null = null;

  constructor(readonly client: Client, readonly where: string, readonly fingerprint: string, readonly rttMs: number | null = null) {
    client.on("error", (err: Error) => this.markLost(err));
    client.on("close", () => this.markLost(null));
  }

  /** Records the loss once, fails everything waiting on the connection, and ends it (a channel's failure leaves the socket open). */
  private markLost(err: Error | null): void {
    if (this.lost) return;
    this.lost = this.closing
      ? new TransferError("CONNECTION_LOST", `connection to ${this.where} was closed`, { retryable: false })
      : new TransferError("CONNECTION_LOST", `connection to ${this.where} lost${err ? `: ${err.message}` : ""}; it will be retried`, { cause: err ?? undefined });
    for (const w of this.execWaiters.splice(0)) w();
    const lost = this.lost;
    for (const l of [...this.lostListeners]) l(lost);
    this.lostListeners.clear();
    this.client.end();
  }

  /** Contains `emitter`'s failures: an error marks the connection lost instead of being thrown. */
  private contain(emitter: { on(event: "error", l: (err: Error) => void): unknown }, what: string): void {
    emitter.on("error", (err: Error) => this.markLost(new Error(`${what}: ${err?.message ?? String(err)}`)));
  }

  /** `p`, or the loss error as soon as the connection drops, whichever comes first. */
  guard<T>(p: Promise<T>): Promise<T> {
    if (this.lost) {
      // `p` still settles later (ssh2 answers pending SFTP requests with "No response from server"): observed, never unhandled.
      p.catch(() => undefined);
      return Promise.reject(this.lost);
    }
    return new Promise<T>((resolve, reject) => {
      this.lostListeners.add(reject);
      p.then(
        (v) => {
          this.lostListeners.delete(reject);
          resolve(v);
        },
        (e: unknown) => {
          this.lostListeners.delete(reject);
          reject(e);
        },
      );
    });
  }

  /** Throws CONNECTION_LOST if the connection has dropped. */
  check(): void {
    if (this.lost) throw this.lost;
  }

  /** Channels open now (SFTP and exec). */
  get channels(): number {
    return this.sftpOpen + MAX_EXEC_CHANNELS - this.execSlots;
  }

  /** SFTP channels open now. */
  get sftpChannels(): number {
    return this.sftpOpen;
  }

  /** False once the server's limit leaves no room for a command next to the SFTP channels. */
  get execPossible(): boolean {
    return this.sessionLimit === null || this.sessionLimit > this.sftpOpen;
  }

  /** True while a command waits for an exec slot here (an idle channel should give its slot up). */
  get execWanted(): boolean {
    return this.execWaiters.length > 0;
  }

  /** True when an exec channel could open now without waiting (a slot free, under the learned limit). */
  get execRoom(): boolean {
    return this.execSlots > 0 && (this.sessionLimit === null || this.channels < this.sessionLimit);
  }

  /** An SFTP channel from the pool (opened on first use); spreading files over two lets sftp-server overlap disk waits. */
  sftp(): Promise<SFTPWrapper> {
    this.check();
    const i = this.nextSftp++ % this.sftpSlots;
    let p = this.sftpPool.get(i);
    if (!p) {
      p = this.guard(new Promise<SFTPWrapper>((resolve, reject) => {
        this.client.sftp((err, sftp) => {
          if (err) return reject(this.channelError(err, "open an SFTP session"));
          this.sftpOpen++;
          this.contain(sftp, "SFTP session");
          // sftp-server gone while the connection lives: its pending requests never get answers.
          sftp.on("close", () => this.markLost(new Error("the SFTP session ended")));
          resolve(sftp);
        });
      }));
      // A failed open must not poison the pool slot forever; a refused second one means "use one".
      const opening = p;
      opening.catch(() => {
        if (this.sftpPool.get(i) === opening) this.sftpPool.delete(i);
      });
      this.sftpPool.set(i, opening);
      if (i > 0) {
        return opening.catch((err: unknown) => {
          if (!isChannelRefusal(err)) throw err;
          this.sftpSlots = 1;
          return this.sftp();
        });
      }
    }
    return p;
  }

  /** Opens an exec channel running `command`; its exec slot is freed once it closed. */
  async exec(command: string, signal?: AbortSignal): Promise<ClientChannel> {
    await this.acquireExec(signal);
    try {
      const ch = await this.guard(new Promise<ClientChannel>((resolve, reject) => {
        this.client.exec(command, (err, stream) => {
          if (err) return reject(this.channelError(err, "run a remote command", 1));
          this.contain(stream, "remote command channel");
          this.contain(stream.stderr, "remote command's error stream");
          resolve(stream);
        });
      }));
      // After a drop the channel may never emit close on its own; readers and writers wait for it.
      const onLost = (): void => void ch.destroy();
      this.lostListeners.add(onLost);
      let exited = false;
      ch.once("exit", () => {
        exited = true;
        this.execFinishing++;
      });
      ch.once("close", () => {
        if (exited) this.execFinishing--;
        this.lostListeners.delete(onLost);
        this.releaseExec();
      });
      return ch;
    } catch (err) {
      this.releaseExec();
      throw err;
    }
  }

  private async acquireExec(signal?: AbortSignal): Promise<void> {
    while (!this.execRoom) {
      this.check();
      signal?.throwIfAborted();
      // Only SFTP channels under the server's limit: no exec channel will ever close to make room.
      if (this.sessionLimit !== null && this.sftpOpen >= this.sessionLimit) throw this.refused();
      this.onExecPressure?.();
      await new Promise<void>((r) => this.execWaiters.push(r));
    }
    this.check();
    this.execSlots--;
  }

  private refused(): TransferError {
    return new TransferError("REMOTE_COMMAND_FAILED", `${this.where} refused another session on this connection (sshd's MaxSessions is ${this.sessionLimit})`, { details: { refused: "channel" } });
  }

  private releaseExec(): void {
    this.execSlots++;
    this.execWaiters.shift()?.();
  }

  /** Maps a channel-level failure; after a drop that is the connection's own error. */
  channelError(err: unknown, action: string, pending = 0): TransferError {
    if (isTransferError(err)) return err;
    if (this.lost) return this.lost;
    const msg = (err as Error)?.message ?? String(err);
    if (CHANNEL_REFUSED.test(msg)) {
      // Learned: the server allows the channels open now, no more (MaxSessions). A channel whose
      // command exited is not counted: the server may be closing it while its close is still on the
      // way to us (it then counted as open here, and MaxSessions 1 was learned as 2 under load).
      // If the server still counted it, the limit learned is one lower than the real one: fewer
      // streams, never more refusals. At least one: a refusal with none open is the server still
      // closing the last one (seen at MaxSessions 1). A later refusal can only lower it.
      const seen = Math.max(this.channels - this.execFinishing - pending, 1);
      this.sessionLimit = Math.min(this.sessionLimit ?? seen, seen);
      return new TransferError("REMOTE_COMMAND_FAILED", `could not ${action} on ${this.where}: the server refused another session (${msg}; ${this.sessionLimit} open)`, { cause: err, details: { refused: "channel" } });
    }
    return new TransferError("REMOTE_COMMAND_FAILED", `could not ${action} on ${this.where}: ${msg}`, { cause: err });
  }

  /** Ends the connection (idempotent). */
  async close(): Promise<void> {
    if (this.lost) return;
    this.closing = true;
    await new Promise<void>((resolve) => {
      this.client.once("close", () => resolve());
      this.client.end();
    });
  }
}

/** Connects and authenticates; refuses a host key that does not match the pinned fingerprint. */
export async function openConnection(p: ConnectParams): Promise<Connection> {
  const where = `${p.host}:${p.port}`;
  p.signal?.throwIfAborted();
  const client = new Client();
  let seen = "";
  let mismatch = false;
  const cfg: ConnectConfig = {
    host: p.host,
    port: p.port,
    username: p.username,
    readyTimeout: p.connectTimeoutMs,
    keepaliveInterval: p.keepaliveIntervalMs,
    keepaliveCountMax: 3,
    algorithms: { cipher: CIPHERS },
    // ssh2 accepts any host key unless told otherwise: this is the pin.
    hostVerifier: (key: Buffer) => {
      seen = fingerprintOf(key);
      mismatch = p.hostKeyFingerprint !== null && seen !== p.hostKeyFingerprint;
      return !mismatch;
    },
    tryKeyboard: false,
    // Only the configured method: ssh2 otherwise tries "none" first, a round trip wasted.
    authHandler: [p.auth.method === "key" ? "publickey" : "password"],
    ...(p.auth.method === "key"
      ? { privateKey: p.auth.privateKey, ...(p.auth.passphrase ? { passphrase: p.auth.passphrase } : {}) }
      : { password: p.auth.password }),
  };
  // The TCP handshake is one round trip: the streams a connection gets are chosen by it.
  let connectedAt: number | null = null;
  const startedAt = performance.now();
  client.once("connect", () => {
    connectedAt = performance.now();
  });
  return await new Promise<Connection>((resolve, reject) => {
    let settled = false;
    const onAbort = (): void => {
      fail(new TransferError("CANCELLED", "transfer cancelled"));
      client.end();
    };
    const fail = (err: TransferError): void => {
      if (settled) return;
      settled = true;
      p.signal?.removeEventListener("abort", onAbort);
      reject(err);
    };
    p.signal?.addEventListener("abort", onAbort, { once: true });
    client.once("ready", () => {
      if (settled) return;
      settled = true;
      p.signal?.removeEventListener("abort", onAbort);
      resolve(new Connection(client, where, seen, connectedAt === null ? null : connectedAt - startedAt));
    });
    client.on("error", (err: Error & { level?: string; code?: string }) => {
      const e = connectError(err, where, p, mismatch ? seen : null);
      // Lets probeSsh show the key even when authentication failed afterwards.
      if (seen) e.details.seenFingerprint = seen;
      fail(e);
      client.end();
    });
    client.once("close", () => fail(new TransferError("CONNECTION_FAILED", `${where} closed the connection during the handshake`)));
    try {
      client.connect(cfg);
    } catch (err) {
      // ssh2 throws synchronously for an unreadable private key (the message names the format, not the key).
      fail(new TransferError("AUTH_FAILED", `the private key could not be used: ${(err as Error).message}`, { cause: err }));
    }
  });
}

/** Turns an ssh2 connect-time error into a coded error with a message that says what to fix. */
function connectError(err: Error & { level?: string; code?: string }, where: string, p: ConnectParams, seenOnMismatch: string | null): TransferError {
  if (seenOnMismatch) {
    return new TransferError("HOST_KEY_MISMATCH",
      `host key of ${where} is ${seenOnMismatch}, but ${p.hostKeyFingerprint} was pinned; if the server was reinstalled, check the new key with its administrator and update the portal`,
      { details: { seen: seenOnMismatch, expected: p.hostKeyFingerprint } });
  }
  const code = err.code ?? "";
  if (err.level === "client-authentication") {
    return new TransferError("AUTH_FAILED", `${p.username}@${where} refused the ${p.auth.method === "key" ? "private key" : "password"}; check the user name and credentials`);
  }
  if (err.level === "client-timeout") {
    return new TransferError("TIMEOUT", `no SSH handshake with ${where} within ${p.connectTimeoutMs} ms`);
  }
  if (err.level === "client-dns" || code === "ENOTFOUND" || code === "EAI_NONAME") {
    const transient = code === "EAI_AGAIN";
    return new TransferError("CONNECTION_FAILED", `unknown host ${JSON.stringify(p.host)}; check the host name`, { retryable: transient, details: { errno: code } });
  }
  if (code === "ECONNREFUSED") {
    return new TransferError("CONNECTION_FAILED", `nothing accepts connections on ${where} (port closed or sshd down)`, { details: { errno: code } });
  }
  if (code === "ETIMEDOUT" || code === "EHOSTUNREACH" || code === "ENETUNREACH") {
    return new TransferError("CONNECTION_FAILED", `${where} is unreachable (${code})`, { details: { errno: code } });
  }
  if (/Cannot parse privateKey|passphrase/i.test(err.message)) {
    return new TransferError("AUTH_FAILED", `the private key could not be used: ${err.message}`);
  }
  if (/handshake failed|no matching/i.test(err.message)) {
    return new TransferError("CONNECTION_FAILED", `SSH handshake with ${where} failed: ${err.message} (Ketter offers only AES-GCM/CTR ciphers)`, { retryable: false });
  }
  return new TransferError("CONNECTION_FAILED", `could not connect to ${where}: ${err.message}`, { cause: err, details: { errno: code } });
}
