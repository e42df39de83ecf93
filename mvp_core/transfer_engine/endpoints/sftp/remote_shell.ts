/**
 * What we run on the remote host over exec channels: quoting, the capability probe, the commands
 * built from the programs in programs/ (each a file of its own), and the mapping of a failed
 * command's exit status and stderr to an engine error.
 *
 * Where the host has perl (with the modules the programs use), every program opens paths below the
 * root one component at a time without following links (programs/rooted.pl): a link swapped in
 * mid-run is refused with PATH_ESCAPE, nothing outside the root is read or written. Without perl,
 * the plain commands (find, cat, rm, coreutils hashes, Info-ZIP) resolve paths by name, after the
 * same check-then-use guard as SFTP (docs/ssh.md).
 */
import type { HashAlgorithm } from "../endpoint.ts";
import { TransferError, fromSystemError } from "../../errors.ts";
import CRC_RANGES_PL from "./programs/crc_ranges.pl" with { type: "text" };
import HASH_PL from "./programs/hash.pl" with { type: "text" };
import LANE_PL from "./programs/lane.pl" with { type: "text" };
import LOCATE_SH from "./programs/locate.sh" with { type: "text" };
import PACK_PL from "./programs/pack.pl" with { type: "text" };
import PROBE_SH from "./programs/probe.sh" with { type: "text" };
import READ_PL from "./programs/read.pl" with { type: "text" };
import REMOVE_PL from "./programs/remove.pl" with { type: "text" };
import ROOTED_PL from "./programs/rooted.pl" with { type: "text" };
import SET_ATTRS_PL from "./programs/set_attrs.pl" with { type: "text" };
import STAT_MANY_PL from "./programs/stat_many.pl" with { type: "text" };
import UNZIP_PL from "./programs/unzip.pl" with { type: "text" };
import UNZIP_STREAM_PL from "./programs/unzip_stream.pl" with { type: "text" };
import WALK_PL from "./programs/walk.pl" with { type: "text" };
import WRITE_PL from "./programs/write.pl" with { type: "text" };

/** Quotes `s` for a POSIX shell: single quotes, with each embedded quote spelled '\''. */
export function shQuote(s: string): string {
  if (s.includes("\0")) throw new TransferError("INVALID_SPEC", "a path contains a NUL byte");
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** The absolute remote path of `rel` below `root`. */
export function remotePath(root: string, rel: string): string {
  return rel === "" ? root : root === "/" ? `/${rel}` : `${root}/${rel}`;
}

/** A program's text as sent: whole-line comments dropped (they document the file, not the run). */
function code(text: string): string {
  return text.split("\n").filter((l) => !/^\s*#/.test(l)).join("\n");
}

/** `perl -e` running the rooted prelude and `body` with `args`. */
function perl(body: string, args: readonly string[]): string {
  return `perl -e ${shQuote(code(ROOTED_PL) + code(body))} -- ${args.map(shQuote).join(" ")}`;
}

/** `sh -c` running `script` with positional `args`. */
function sh(script: string, args: readonly string[]): string {
  return `sh -c ${shQuote(code(script))} ketter ${args.map(shQuote).join(" ")}`;
}

/** Commands whose presence changes the plan; probed in one exec. */
export const PROBED_COMMANDS = [
  "sha256sum", "md5sum", "sha1sum", "b2sum", "unzip", "bsdtar", "zip", "find", "sed", "xargs", "cat", "tail", "head", "rm", "df", "stat", "xxhsum",
] as const;
export type RemoteCommand = (typeof PROBED_COMMANDS)[number];

/** Marker proving a real shell ran the probe (a ForceCommand like internal-sftp swallows it). */
export const PROBE_MARKER = "ketter-probe-ok";

/** The probe (programs/probe.sh): tools, and the root folder's state and real path. */
export function probeCommand(root: string): string {
  return sh(PROBE_SH, [root, ...PROBED_COMMANDS]);
}

/** What the probe printed about the root; null when it did not run (no shell) or said nothing we understand. */
export function parseProbeRoot(stdout: string): { state: "ok"; real: string } | { state: "missing" | "notdir" | "denied" } | null {
  const ok = /(?:^|\n)root ok\0([^\0]+)\0/.exec(stdout);
  if (ok) return ok[1]!.startsWith("/") ? { state: "ok", real: ok[1]! } : null;
  const bad = /(?:^|\n)root (missing|notdir|denied)\n/.exec(stdout);
  return bad ? { state: bad[1] as "missing" | "notdir" | "denied" } : null;
}

/** What the probe found on the remote host. */
export interface RemoteTools {
  shell: boolean;
  commands: Set<RemoteCommand>;
  gnuFind: boolean;
  /** perl with zlib, Time::HiRes, POSIX and Fcntl: every program in programs/ runs (and is rooted). */
  perlZlib: boolean;
  /** perl's Digest::SHA and Digest::MD5, for md5/sha1/sha256 through the rooted hasher. */
  perlDigest: boolean;
  cpus: number;
}

/** Parses the probe's stdout. */
export function parseProbe(stdout: string): RemoteTools {
  const lines = stdout.split("\n");
  const commands = new Set<RemoteCommand>();
  for (const l of lines) {
    const name = l.startsWith("cmd ") ? l.slice(4) : "";
    if ((PROBED_COMMANDS as readonly string[]).includes(name)) commands.add(name as RemoteCommand);
  }
  const cpus = Number(lines.find((l) => l.startsWith("cpus "))?.slice(5));
  return {
    shell: lines.includes(PROBE_MARKER), commands, gnuFind: lines.includes("gnufind"), perlZlib: lines.includes("perlzlib"),
    perlDigest: lines.includes("perldigest"), cpus: Number.isInteger(cpus) && cpus > 0 ? cpus : 1,
  };
}

/** True when the host runs Ketter's own programs, which never follow a link below the root. */
export function rooted(t: RemoteTools): boolean {
  return t.shell && t.perlZlib;
}

/** Coreutils hashers for a host without perl: NUL-separated names in, "hex  name\0" out. */
const COREUTILS_HASHES: Partial<Record<HashAlgorithm, RemoteCommand>> = { sha1: "sha1sum", sha256: "sha256sum", blake2b512: "b2sum", md5: "md5sum" };

/**
 * Hash algorithms the remote computes in one command over many files. A host with perl hashes only
 * through the rooted hasher (crc32, md5/sha1/sha256 with perl's Digest modules, and xxh64/xxh3/
 * xxh128 with xxhsum over the files it opened). CRC-32 comes first: the remote writers compute it
 * while writing what Ketter streams, so verifying a push with it costs no second read (xxh3 would
 * re-read every file: +35-60 % on 10,000 small files); an ASC MHL needs an MHL format, so it gets
 * xxh3 — or, on a host without xxhsum, sha1 next to the data instead of xxh3 read back.
 */
export function remoteHashes(t: RemoteTools): HashAlgorithm[] {
  if (!t.shell) return [];
  if (rooted(t)) return ["crc32", ...(t.commands.has("xxhsum") ? (["xxh3", "xxh128", "xxh64"] as const) : []), ...(t.perlDigest ? (["sha1", "sha256", "md5"] as const) : [])];
  if (!t.commands.has("xargs")) return [];
  return (Object.keys(COREUTILS_HASHES) as HashAlgorithm[]).filter((a) => t.commands.has(COREUTILS_HASHES[a]!));
}

/** The command hashing the NUL-separated paths (relative to `root`) on its stdin. */
export function hashCommand(t: RemoteTools, root: string, algorithm: HashAlgorithm): string {
  if (!remoteHashes(t).includes(algorithm)) throw new TransferError("UNSUPPORTED", `the remote cannot hash with ${algorithm}`);
  if (rooted(t)) return perl(HASH_PL, [root, algorithm]);
  return `cd ${shQuote(root)} && xargs -0 -r ${COREUTILS_HASHES[algorithm]} -z --`;
}

/** The command printing the CRC-32 of each range on its stdin (programs/crc_ranges.pl). */
export function crcRangesCommand(root: string): string {
  return perl(CRC_RANGES_PL, [root]);
}

/** crc_ranges.pl's stdin: "path\0offset\0length\0" per range, paths relative to the root. */
export function crcRangesInput(ranges: readonly { rel: string; offset: number; length: number }[]): Uint8Array {
  return new TextEncoder().encode(ranges.map((r) => `${r.rel}\0${r.offset}\0${r.length}\0`).join(""));
}

/** Parses "hex\0" or "-\0" per range. */
export function parseCrcRanges(out: Uint8Array, count: number): (number | null)[] {
  const parts = new TextDecoder().decode(out).split("\0").slice(0, count);
  if (parts.length !== count || parts.some((p) => p !== "-" && !/^[0-9a-f]{8}$/.test(p))) {
    throw new TransferError("REMOTE_COMMAND_FAILED", `the remote range hasher answered ${parts.length} of ${count} ranges`);
  }
  return parts.map((p) => (p === "-" ? null : parseInt(p, 16)));
}

/** Parses "hex  path\0" (or "hex *path\0") records into a map keyed by path. */
export function parseHashOutput(out: Uint8Array): Map<string, string> {
  const text = new TextDecoder().decode(out);
  const result = new Map<string, string>();
  for (const rec of text.split("\0")) {
    if (!rec) continue;
    const sp = rec.indexOf(" ");
    if (sp < 0) continue;
    result.set(rec.slice(sp + 2), rec.slice(0, sp).toLowerCase());
  }
  return result;
}

/**
 * find's record of one entry (NUL-separated fields): type, size, mtime, mode, path below the start,
 * link text, inode, ctime. Shared by the walk and statMany, so their change stamps compare equal.
 */
export const FIND_FORMAT = "%y\\0%s\\0%T@\\0%m\\0%P\\0%l\\0%i\\0%C@\\0";

/** The command listing the tree below `rel` in FIND_FORMAT (GNU find). */
export function walkCommand(t: RemoteTools, root: string, rel: string): string {
  if (rooted(t)) return perl(WALK_PL, [root, rel, FIND_FORMAT]);
  return `find ${shQuote(remotePath(root, rel))} -mindepth 1 -printf '${FIND_FORMAT}'`;
}

/** The command printing the current entries of the folders of the paths on its stdin (programs/stat_many.pl). */
export function statManyCommand(root: string): string {
  return perl(STAT_MANY_PL, [root, FIND_FORMAT]);
}

/** The command streaming `rel` from byte `start` (`length` bytes of it when given). */
export function readCommand(t: RemoteTools, root: string, rel: string, start: number, length?: number): string {
  if (rooted(t)) return perl(READ_PL, [root, rel, String(start), length === undefined ? "" : String(length)]);
  const abs = shQuote(remotePath(root, rel));
  const read = start > 0 ? `tail -c +${start + 1} -- ${abs}` : `cat -- ${abs}`;
  return length === undefined ? read : `${read} | head -c ${length}`;
}

/** The command removing `rel` and everything below it. */
export function removeCommand(t: RemoteTools, root: string, rel: string): string {
  if (rooted(t)) return perl(REMOVE_PL, [root, rel]);
  return `rm -rf -- ${shQuote(remotePath(root, rel))}`;
}

/** The command streaming a stored zip of the folder `rel` (programs/pack.pl; exit 6: too large for a plain zip). */
export function packCommand(root: string, rel: string): string {
  return perl(PACK_PL, [root, rel]);
}

/** The command printing where `abs` really is (programs/locate.sh). */
export function locateCommand(abs: string): string {
  return sh(LOCATE_SH, [abs]);
}

/** The command unpacking the stored zip `archive` into `into` (programs/unzip.pl). */
export function perlUnzipCommand(root: string, archive: string, into: string, workers: number): string {
  return perl(UNZIP_PL, [root, archive, into, String(Math.max(1, Math.floor(workers)))]);
}

/** The command unpacking a zip arriving on stdin into `into` (programs/unzip_stream.pl). */
export function perlUnzipStreamCommand(root: string, into: string): string {
  return perl(UNZIP_STREAM_PL, [root, into]);
}

/** The lists unzip_stream.pl reads before the archive: count, sizes, modes, mtimes ("-": leave as is). */
export function unzipStreamPreamble(entries: readonly { size: number; mode?: number; mtimeMs?: number }[]): Buffer {
  const sizes = entries.map((e) => e.size).join(" ");
  const modes = entries.map((e) => (e.mode === undefined ? "-" : octalMode(e.mode))).join(" ");
  const mtimes = entries.map((e) => (e.mtimeMs === undefined ? "-" : utimeSeconds(e.mtimeMs))).join(" ");
  return Buffer.from(`${entries.length}\n${sizes}\n${modes}\n${mtimes}\n`);
}

/** The command writing stdin to `rel` (created 0600, then `mode`), reporting CRC-32 and size (programs/write.pl). */
export function perlWriteCommand(root: string, rel: string, mode: number | undefined): string {
  return perl(WRITE_PL, [root, rel, mode === undefined ? "" : octalMode(mode)]);
}

/** The command starting a writer lane (programs/lane.pl). */
export function perlLaneCommand(root: string): string {
  return perl(LANE_PL, [root]);
}

/**
 * The header announcing one file (path relative to the root) to a lane; with `offset`, a range of
 * it: written there without truncating, and progress reported as it goes (programs/lane.pl).
 */
export function laneHeader(rel: string, size: number, mode: number | undefined, offset?: number): Buffer {
  const path = Buffer.from(rel);
  const at = offset === undefined ? "" : ` ${offset}`;
  return Buffer.concat([Buffer.from(`${mode === undefined || offset !== undefined ? "-" : octalMode(mode)} ${size} ${path.length}${at}\n`), path]);
}

/** Parses a lane's "+crc32 bytes" progress line within a range; null for any other line. */
export function parseRangeProgress(line: string): { crc32: number; bytes: number } | null {
  const m = /^\+([0-9a-f]{8}) (\d+)$/.exec(line);
  return m ? { crc32: parseInt(m[1]!, 16), bytes: Number(m[2]) } : null;
}

/** Parses a writer's "crc32 size" report. */
export function parseWriteReport(stdout: string): { crc32: string; size: number } | null {
  const m = /^([0-9a-f]{8}) (\d+)\n?$/.exec(stdout);
  return m ? { crc32: m[1]!, size: Number(m[2]) } : null;
}

/** Parses the unpackers' "crc32 size\0name\0" records. */
export function parseUnzipReport(out: Uint8Array): { name: string; crc32: string; size: number }[] {
  const parts = new TextDecoder().decode(out).split("\0");
  const result: { name: string; crc32: string; size: number }[] = [];
  for (let i = 0; i + 1 < parts.length; i += 2) {
    const m = /^([0-9a-f]{8}) (\d+)$/.exec(parts[i]!);
    if (!m) break; // never expected; whatever is not understood is simply hashed again later
    result.push({ crc32: m[1]!, size: Number(m[2]), name: parts[i + 1]! });
  }
  return result;
}

/** Permission bits as chmod takes them. */
function octalMode(mode: number): string {
  return (mode & 0o7777).toString(8);
}

/**
 * An mtime as utime takes it. Truncated to whole milliseconds first: toFixed rounds, so an mtime of
 * x.9996 s became x+1 s, a different second than the source's (seen on files written just before a
 * second boundary).
 */
function utimeSeconds(mtimeMs: number): string {
  return (Math.floor(mtimeMs) / 1000).toFixed(3);
}

/** The set_attrs.pl command and its stdin ("octal mode, seconds, path" triples, paths relative to `root`). */
export function perlSetAttrs(root: string, items: readonly { rel: string; mode?: number; mtimeMs?: number }[]): { command: string; stdin: Uint8Array } {
  const body = items.map((i) => `${i.mode === undefined ? "" : octalMode(i.mode)}\0${i.mtimeMs === undefined ? "" : utimeSeconds(i.mtimeMs)}\0${i.rel === "" ? "." : i.rel}\0`).join("");
  return { command: perl(SET_ATTRS_PL, [root]), stdin: new TextEncoder().encode(body) };
}

/** The path a rooted program refused ("ketter-escape: <path>" on its stderr), or null. */
export function escapedPath(stderr: string): string | null {
  const m = /(?:^|\n)ketter-escape: ([^\n]*)/.exec(stderr);
  return m ? m[1]! : null;
}

/** PATH_ESCAPE for a link a remote program met at `at` while working on `path`. */
export function escapeError(what: string, path: string, at: string): TransferError {
  return new TransferError("PATH_ESCAPE", `${what} ${JSON.stringify(path)}: a symbolic link (or a folder moved out of the portal's root) is on the path at ${JSON.stringify(at)}; Ketter never follows links below a portal's root — replace the link with the folder or file itself`, {
    details: { path, at },
  });
}

/** Maps a failed remote command (exit code + stderr) to an engine error: a refused link, a known errno text, or the command's failure. */
export function commandError(what: string, path: string, code: number | null, stderr: string): TransferError {
  const escaped = escapedPath(stderr);
  if (escaped !== null) return escapeError(what, path, escaped);
  const errno = errnoFromText(stderr);
  if (errno) return fromSystemError({ code: errno, message: stderr.trim() }, path, what);
  const tail = stderr.trim().split("\n").slice(-3).join(" | ").slice(0, 500);
  return new TransferError("REMOTE_COMMAND_FAILED", `${what} ${JSON.stringify(path)}: remote command exited ${code ?? "without status"}${tail ? `: ${tail}` : ""}`, {
    details: { path, exitCode: code },
  });
}

/** Recognises the strerror texts of the errnos the engine distinguishes. */
export function errnoFromText(text: string): string | null {
  if (/No space left on device/i.test(text)) return "ENOSPC";
  if (/Disk quota exceeded/i.test(text)) return "EDQUOT";
  if (/Permission denied|Operation not permitted/i.test(text)) return "EACCES";
  if (/Read-only file system/i.test(text)) return "EROFS";
  if (/No such file or directory/i.test(text)) return "ENOENT";
  if (/Not a directory/i.test(text)) return "ENOTDIR";
  return null;
}
