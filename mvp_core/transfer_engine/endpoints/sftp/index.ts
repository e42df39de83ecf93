/**
 * Remote portals over SSH: `connectSsh` opens an Endpoint on a folder of a remote host (pinned host
 * key, key or password auth); `probeSsh` reports what a person needs to set a portal up (the host
 * key fingerprint to pin, free space, tools found).
 */
import type { HashAlgorithm } from "../endpoint.ts";
import { TransferError, isTransferError, type ErrorCode } from "../../errors.ts";
import { SFTP_CHANNELS, normalizeFingerprint, openConnection, type Connection, type ConnectParams } from "./connection.ts";
import { ConnectionPool, type PoolShape } from "./connection_pool.ts";
import { type RunResult, runRemote } from "./exec.ts";
import { PROBE_TIMEOUT_MS } from "./remote_host.ts";
import { parseProbeRoot, probeCommand, remoteHashes } from "./remote_shell.ts";
import { canPack, canUnzip } from "./remote_zip.ts";
import { SftpEndpoint } from "./sftp_endpoint.ts";

export { SftpEndpoint } from "./sftp_endpoint.ts";

/** Where and how to reach a remote portal. Secrets live only in `auth`. */
export interface SshTarget {
  host: string;
  port: number;
  username: string;
  /** Absolute folder on the remote host; every endpoint path is relative to it. */
  root: string;
  auth: { method: "key"; privateKey: string; passphrase?: string } | { method: "password"; password: string };
  /** "SHA256:base64…" as `ssh-keygen -l` prints it; required unless acceptAnyHostKey. */
  hostKeyFingerprint?: string;
  /** Skips host key pinning (tests and first contact only); the key seen is still reported. */
  acceptAnyHostKey?: boolean;
  connectTimeoutMs?: number;
  /** Keepalive period; three unanswered keepalives end a silent connection (default 10 s). */
  keepaliveIntervalMs?: number;
  /**
   * Connections the endpoint may open to this host at once (a portal's `maxConnections`; default
   * DEFAULT_MAX_CONNECTIONS): byte streams spread over them (docs/ssh.md, "Several streams").
   */
  maxConnections?: number;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 20_000;
const DEFAULT_KEEPALIVE_MS = 10_000;
/** Connections per endpoint unless the portal says otherwise (measured: docs/ssh.md, "Several streams"). */
export const DEFAULT_MAX_CONNECTIONS = 4;
/** What a portal may ask for (sshd's own default MaxStartups begins refusing at 10 unauthenticated). */
export const MAX_CONNECTIONS_LIMIT = 16;
/** Streams at most, whatever the round trip (8 filled the 100 ms testbed path; 16 added nothing). */
const MAX_STREAMS = 8;
/** A stream's window is ~2 MiB per round trip: one stream more for every this many ms of round trip. */
const RTT_MS_PER_STREAM = 12.5;

/**
 * How many byte streams, over how many connections, for a link of `rttMs` round trip (measured in
 * docs/ssh.md, "Several streams"): two even on a LAN (a second connection is a second sshd
 * process on the server, +20 % at 0 ms), one per 12.5 ms of round trip above that (each stream's
 * window moves ~2 MiB per round trip), at most 8; spread over as many connections as allowed
 * first (two streams on two connections beat two on one: the server decrypts on two cores), then
 * up to two per connection (one TCP connection's 4 MiB send buffer per round trip).
 */
export function poolShape(rttMs: number | null, maxConnections: number): PoolShape {
  const streams = Math.min(MAX_STREAMS, Math.max(2, Math.ceil((rttMs ?? 0) / RTT_MS_PER_STREAM)));
  const connections = Math.max(1, Math.min(streams, maxConnections));
  return { maxConnections: connections, streamsPerConnection: Math.ceil(streams / connections) };
}

/** Validates `t`, listing every problem in one INVALID_SPEC error. */
function validate(t: SshTarget, needPin: boolean): ConnectParams {
  const problems: string[] = [];
  if (typeof t.host !== "string" || !t.host.trim()) problems.push("host is empty");
  if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535) problems.push(`port ${String(t.port)} is not between 1 and 65535`);
  if (typeof t.username !== "string" || !t.username.trim()) problems.push("username is empty");
  if (typeof t.root !== "string" || !t.root.startsWith("/")) problems.push("root must be an absolute path on the remote host");
  else if (t.root.split("/").includes("..")) problems.push("root must not contain \"..\"");
  if (t.auth?.method === "key" && !t.auth.privateKey) problems.push("auth.privateKey is empty");
  else if (t.auth?.method === "password" && !t.auth.password) problems.push("auth.password is empty");
  else if (t.auth?.method !== "key" && t.auth?.method !== "password") problems.push("auth.method must be \"key\" or \"password\"");
  if (t.maxConnections !== undefined && !(Number.isInteger(t.maxConnections) && t.maxConnections >= 1 && t.maxConnections <= MAX_CONNECTIONS_LIMIT)) {
    problems.push(`maxConnections must be a whole number from 1 to ${MAX_CONNECTIONS_LIMIT}`);
  }
  let pin: string | null = null;
  if (t.hostKeyFingerprint !== undefined && t.hostKeyFingerprint !== "") {
    pin = normalizeFingerprint(t.hostKeyFingerprint);
    if (!pin) problems.push("hostKeyFingerprint must look like \"SHA256:\" followed by 43 base64 characters (ssh-keygen -l -E sha256)");
  } else if (needPin && !t.acceptAnyHostKey) {
    problems.push("hostKeyFingerprint is required (run the portal check to see the server's fingerprint)");
  }
  if (problems.length) throw new TransferError("INVALID_SPEC", `SSH portal ${t.username ?? "?"}@${t.host ?? "?"}: ${problems.join("; ")}`, { details: { problems } });
  return {
    host: t.host.trim(),
    port: t.port,
    username: t.username,
    auth: t.auth,
    hostKeyFingerprint: t.acceptAnyHostKey && needPin ? null : pin,
    connectTimeoutMs: t.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    keepaliveIntervalMs: t.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_MS,
  };
}

/** Label shown in events and logs: user, host, port and root, never credentials. */
export function sshLabel(t: Pick<SshTarget, "host" | "port" | "username" | "root">): string {
  return `${t.username}@${t.host}:${t.port}:${t.root}`;
}

/** Connects, checks the host key and that the root is a readable folder; capabilities are probed lazily. */
export async function connectSsh(t: SshTarget, opts: { signal?: AbortSignal } = {}): Promise<SftpEndpoint> {
  const params = validate(t, true);
  const conn = await openConnection({ ...params, signal: opts.signal });
  const shape = poolShape(conn.rttMs, t.maxConnections ?? DEFAULT_MAX_CONNECTIONS);
  // More connections open only for byte streams, on first need; the same pinned key for each.
  const pool = new ConnectionPool(conn, () => openConnection(params), shape);
  try {
    // While the root is checked: both SFTP channels open (the engine's first requests go to either)
    // and the capability probe runs, so the engine plans without waiting for it. A failed probe is
    // not cached: capabilities() probes again and reports it to its caller.
    for (let i = 0; i < SFTP_CHANNELS; i++) conn.sftp().catch(() => undefined);
    const probe = runRemote(pool, sshLabel(t), probeCommand(t.root), { timeoutMs: PROBE_TIMEOUT_MS });
    probe.catch(() => undefined);
    // The root is checked both ways at once; the shell usually answers first, SFTP covers a host
    // without one (or a slow one).
    const root = await firstAnswer(rootFromProbe(probe, t.root, sshLabel(t)), resolveRoot(conn, t.root, sshLabel(t)));
    const ep = new SftpEndpoint(pool, root, sshLabel(t));
    void ep.tools(undefined, probe).catch(() => undefined);
    return ep;
  } catch (err) {
    await pool.close();
    throw err;
  }
}

/** The first of two answers to the same question that is not null; a failure of either is final. */
function firstAnswer<T>(a: Promise<T | null>, b: Promise<T | null>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let nulls = 0;
    for (const p of [a, b]) {
      p.then((v) => {
        if (v !== null) resolve(v);
        else if (++nulls === 2) reject(new TransferError("CONNECTION_FAILED", "no answer about the root folder"));
      }, reject);
    }
  });
}

/** Missing, not a folder and unreadable roots each get their own code. */
function rootError(state: "missing" | "notdir" | "denied", root: string, label: string): TransferError {
  if (state === "missing") return new TransferError("SOURCE_NOT_FOUND", `${label}: the folder ${JSON.stringify(root)} does not exist on the remote host`, { details: { path: root } });
  if (state === "notdir") return new TransferError("NOT_A_DIRECTORY", `${label}: ${JSON.stringify(root)} is not a folder`, { details: { path: root } });
  return new TransferError("PERMISSION_DENIED", `${label}: no permission to use ${JSON.stringify(root)}; fix its permissions or choose another folder`, { details: { path: root } });
}

/** The root as the probe's shell saw it; null without a shell or a usable answer (SFTP decides then). */
async function rootFromProbe(probe: Promise<RunResult>, root: string, label: string): Promise<string | null> {
  const r = await probe.catch(() => null);
  const seen = r === null ? null : parseProbeRoot(r.stdout.toString());
  if (seen === null) return null;
  if (seen.state === "ok") return seen.real;
  throw rootError(seen.state, root, label);
}

/** realpath + stat + opendir of the root over SFTP. */
async function resolveRoot(conn: Connection, root: string, label: string): Promise<string> {
  const sftp = await conn.sftp();
  const status = (err: unknown): number | null => (typeof (err as { code?: unknown })?.code === "number" ? (err as { code: number }).code : null);
  const fail = (err: unknown): TransferError => {
    if (conn.lost) return conn.lost;
    if (status(err) === 2) return rootError("missing", root, label);
    if (status(err) === 3) return rootError("denied", root, label);
    return new TransferError("CONNECTION_FAILED", `${label}: could not open ${JSON.stringify(root)}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  };
  try {
    // All three at once (one round trip on a distant link); stat and opendir follow links as realpath does.
    const [real, st, handle] = await Promise.allSettled([
      conn.guard(new Promise<string>((res, rej) => sftp.realpath(root, (e, p) => (e ? rej(e) : res(p))))),
      conn.guard(new Promise<{ isDirectory(): boolean }>((res, rej) => sftp.stat(root, (e, s) => (e ? rej(e) : res(s))))),
      conn.guard(new Promise<Buffer>((res, rej) => sftp.opendir(root, (e, h) => (e ? rej(e) : res(h))))),
    ]);
    // Not awaited (a round trip): the handle is closed in the background, a failure changes nothing.
    if (handle.status === "fulfilled") sftp.close(handle.value, () => undefined);
    if (real.status === "rejected") throw real.reason;
    if (st.status === "rejected") throw st.reason;
    if (!st.value.isDirectory()) throw rootError("notdir", root, label);
    if (handle.status === "rejected") throw handle.reason;
    return real.value;
  } catch (err) {
    throw isTransferError(err) ? err : fail(err);
  }
}

/** What probeSsh found; `error` is set when a step failed (the fingerprint is reported whenever the server answered). */
export interface SshProbe {
  reachable: boolean;
  fingerprint: string;
  fingerprintMatches: boolean | null;
  freeBytes?: number;
  /** What the host can do next to the data: unpack archives (perl, unzip or bsdtar), pack a folder (perl), hash. */
  tools: { shell: boolean; unzip: boolean; zip: boolean; hashes: HashAlgorithm[] };
  error?: { code: ErrorCode; message: string };
}

/** Checks a portal without pinning: reports the host key seen (for a person to pin), free space and tools. Never throws. */
export async function probeSsh(t: Omit<SshTarget, "hostKeyFingerprint"> & { hostKeyFingerprint?: string }): Promise<SshProbe> {
  const tools: SshProbe["tools"] = { shell: false, unzip: false, zip: false, hashes: [] };
  let params: ConnectParams;
  try {
    params = validate(t, false);
  } catch (err) {
    const e = err as TransferError;
    return { reachable: false, fingerprint: "", fingerprintMatches: null, tools, error: { code: e.code, message: e.message } };
  }
  const pinned = params.hostKeyFingerprint;
  let ep: SftpEndpoint | null = null;
  let seen = "";
  try {
    // Connect accepting any key, then compare: a mismatch is reported, not refused, so the key can be shown.
    const conn = await openConnection({ ...params, hostKeyFingerprint: null });
    seen = conn.fingerprint;
    const matches = pinned === null ? null : pinned === seen;
    try {
      const root = await resolveRoot(conn, t.root, sshLabel(t));
      ep = new SftpEndpoint(new ConnectionPool(conn, () => openConnection(params), { maxConnections: 1, streamsPerConnection: 1 }), root, sshLabel(t));
    } catch (err) {
      await conn.close();
      throw err;
    }
    const found = await ep.tools();
    tools.shell = found.shell;
    tools.unzip = canUnzip(found);
    tools.zip = canPack(found);
    tools.hashes = remoteHashes(found);
    const space = await ep.space("").catch((e: unknown) => {
      if (isTransferError(e) && e.code === "UNSUPPORTED") return null;
      throw e;
    });
    const result: SshProbe = { reachable: true, fingerprint: seen, fingerprintMatches: matches, tools };
    if (space) result.freeBytes = space.freeBytes;
    if (matches === false) result.error = { code: "HOST_KEY_MISMATCH", message: `host key is ${seen}, but ${pinned} was pinned` };
    return result;
  } catch (err) {
    const e = isTransferError(err) ? err : new TransferError("CONNECTION_FAILED", String(err));
    const fp = seen || (typeof e.details.seenFingerprint === "string" ? e.details.seenFingerprint : "");
    return { reachable: fp !== "", fingerprint: fp, fingerprintMatches: fp && pinned ? fp === pinned : null, tools, error: { code: e.code, message: e.message } };
  } finally {
    await ep?.close();
  }
}
