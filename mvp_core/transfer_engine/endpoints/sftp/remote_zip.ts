/**
 * Zip archives on the remote host: unpacking an archive that landed there (perl, else Info-ZIP
 * unzip or bsdtar), unpacking a zip while it arrives (perl), and packing a folder into a stored
 * zip streamed back (perl). The perl programs are rooted (remote_shell.ts).
 */
import type { FileWriter, OpOptions, UnzipStreamEntry } from "../endpoint.ts";
import { TransferError } from "../../errors.ts";
import { normalizeRel } from "../../paths.ts";
import type { RemoteHost } from "./remote_host.ts";
import {
  type RemoteTools, commandError, escapeError, escapedPath, packCommand, parseUnzipReport, perlUnzipCommand, perlUnzipStreamCommand, rooted,
  shQuote, unzipStreamPreamble,
} from "./remote_shell.ts";
import { UnzipStreamWriter } from "./writers.ts";

/** An unpack stream carrying less than this shares an open connection instead of waiting for another. */
const OWN_CONNECTION_MIN_BYTES = 32 * 1024 * 1024;

/** Exit status of pack.pl for a folder a plain zip cannot hold. */
const PACK_TOO_LARGE = 6;
/** Unpackers run at once by the perl unpacker (one per CPU, up to this many). */
const MAX_UNZIP_WORKERS = 4;

/** True when the host can unpack an archive that landed on it. */
export function canUnzip(t: RemoteTools): boolean {
  return t.shell && (t.perlZlib || t.commands.has("unzip") || t.commands.has("bsdtar"));
}

/** True when the host can unpack a zip as it arrives. */
export function canUnzipStream(t: RemoteTools): boolean {
  return rooted(t);
}

/** True when the host can pack a folder into a zip. */
export function canPack(t: RemoteTools): boolean {
  return rooted(t);
}

/** Unpacks the stored zip `archive` into the existing folder `into`. */
export function unzipArchive(host: RemoteHost, archive: string, into: string, opts: OpOptions = {}): Promise<void> {
  return host.op(archive, "unzip", opts.signal, async () => {
    const a = await host.guard.prepare(archive);
    const d = await host.guard.prepare(into);
    await host.guard.ensureSafeDir(d.abs, d.rel);
    const t = await host.tools(opts.signal);
    let cmd: string;
    // Perl first (parallel, exact names, rooted); unzip strips "../" and leading "/" from member names, so an
    // archive cannot write outside `into`; -^ keeps control characters (a newline is a legal name character).
    if (t.shell && t.perlZlib) cmd = perlUnzipCommand(host.root, a.rel, d.rel, Math.min(t.cpus, MAX_UNZIP_WORKERS));
    else if (t.shell && t.commands.has("unzip")) cmd = `unzip -q -o -^ ${shQuote(a.abs)} -d ${shQuote(d.abs)}`;
    else if (t.shell && t.commands.has("bsdtar")) cmd = `bsdtar -x -f ${shQuote(a.abs)} -C ${shQuote(d.abs)}`;
    else throw new TransferError("UNSUPPORTED", `${host.label} has no unzip or bsdtar`);
    const perl = t.perlZlib;
    if (!perl) host.crc.move(d.abs, null);
    try {
      const r = await host.run(cmd, { signal: opts.signal });
      unzipDone(host, a.rel, d.abs, perl, r.code, r.stdout, r.stderr);
    } catch (err) {
      host.crc.move(d.abs, null);
      throw err;
    }
  });
}

/** A writer unpacking a stored zip into `into` as it arrives (programs/unzip_stream.pl). */
export function openUnzipStream(host: RemoteHost, into: string, entries: readonly UnzipStreamEntry[], opts: OpOptions = {}): Promise<FileWriter> {
  return host.op(into, "unzip", opts.signal, async () => {
    const d = await host.guard.prepare(into);
    const t = await host.tools(opts.signal);
    if (!canUnzipStream(t)) throw new TransferError("UNSUPPORTED", `${host.label} has no perl with zlib to unpack a stream`);
    // The unpacker waits for its size list before it touches the disk, so the channel opens while
    // `into` is checked (two round trips and one, at once); a refused folder closes it unused.
    const safe = host.guard.ensureSafeDir(d.abs, d.rel);
    // A part too small to pay for a connection of its own (a handshake is ~0.1-0.2 s of two
    // machines' CPU) runs beside the others on one already open, as a short command does: 2,000 ×
    // 4 KiB in two parts waited 0.2 s for a second connection at 0 ms. Over a WAN two channels of
    // one connection move as much as two connections (the send buffer per round trip is twice a
    // channel's window).
    const bytes = entries.reduce((n, e) => n + e.size, 0);
    const opening = host.pool.exec(perlUnzipStreamCommand(host.root, d.rel), opts.signal, bytes >= OWN_CONNECTION_MIN_BYTES);
    const [checked, opened] = await Promise.allSettled([safe, opening]);
    if (checked.status === "rejected") {
      if (opened.status === "fulfilled") opened.value.close();
      throw checked.reason;
    }
    if (opened.status === "rejected") throw opened.reason;
    return new UnzipStreamWriter(host, opened.value, d.rel, unzipStreamPreamble(entries), opts.signal, (code, stdout, stderr) => unzipDone(host, d.rel, d.abs, true, code, stdout, stderr));
  });
}

/**
 * Maps an unpacker's exit status to the engine's errors; on success keeps the CRC-32 records the
 * perl unpackers report. Records of files an archive overwrites must go: the perl unpackers report
 * every file they wrote, so on success their report replaces exactly those and the records of
 * earlier archives unpacked into the same folder survive (dropping them all made verification
 * re-hash every archive but the last); other unpackers report nothing, and a failure leaves
 * unknown files.
 */
function unzipDone(host: RemoteHost, rel: string, intoAbs: string, perl: boolean, code: number | null, stdout: Buffer, stderr: string): void {
  if (code !== 0 || !perl) host.crc.move(intoAbs, null);
  const escaped = escapedPath(stderr);
  if (code !== 0 && escaped !== null) throw escapeError("unzip into", rel, escaped);
  if (code === 50) throw new TransferError("NO_SPACE", `unzip ${JSON.stringify(rel)} on ${host.label}: the disk filled up; free space or choose another target`, { details: { path: rel } });
  if (code !== 0 && /unsafe name/.test(stderr)) {
    throw new TransferError("PATH_ESCAPE", `unzip ${JSON.stringify(rel)}: an entry name leaves the destination folder`, { details: { path: rel } });
  }
  if (code !== 0 && /bad CRC|checksum error|CRC error|malformed|bad central|bad local|end of central|compressed entry|truncated|short |size list|data after/i.test(stdout.toString() + stderr)) {
    throw new TransferError("VERIFY_FAILED", `unzip ${JSON.stringify(rel)} on ${host.label}: the archive arrived corrupted (CRC mismatch)`, { details: { path: rel } });
  }
  if (code !== 0) throw commandError("unzip", rel, code, stderr || stdout.toString());
  if (perl) {
    // Each file's CRC-32 was computed on the remote as it was written and matched the archive's,
    // which the sender computed from the source bytes: verification can reuse it.
    const base = intoAbs === "/" ? "" : intoAbs;
    for (const e of parseUnzipReport(stdout)) host.crc.set(`${base}/${e.name}`, { crc32: e.crc32, size: e.size });
  }
}

/** Streams a stored zip of the folder `path`, packed next to the data (programs/pack.pl). */
export function packFolder(host: RemoteHost, path: string, opts: OpOptions = {}): AsyncIterable<Uint8Array> {
  return host.opStream(path, "pack", opts.signal, async function* () {
    const rel = normalizeRel(path);
    await host.guard.ensureSafeDir(host.guard.abs(rel), rel);
    const t = await host.tools(opts.signal);
    if (!canPack(t)) throw new TransferError("UNSUPPORTED", `${host.label} has no perl with zlib to pack a folder`);
    try {
      yield* host.stream(packCommand(host.root, rel), rel, "pack", opts.signal);
    } catch (err) {
      const code = (err as TransferError).details?.exitCode;
      if (code === PACK_TOO_LARGE) throw new TransferError("UNSUPPORTED", `pack ${JSON.stringify(rel)} on ${host.label}: the folder holds over 65,535 files or 4 GiB, more than a plain zip can`, { cause: err });
      throw err;
    }
  });
}
