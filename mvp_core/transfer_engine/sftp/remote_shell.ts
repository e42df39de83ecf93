/**
 * What we run on the remote host over exec channels: quoting, the capability probe, hash and
 * unpack commands, and the mapping of a failed command's stderr to an engine error.
 */
import type { HashAlgorithm } from "../endpoint.ts";
import { TransferError, fromSystemError } from "../errors.ts";

/** Quotes `s` for a POSIX shell: single quotes, with each embedded quote spelled '\''. */
export function shQuote(s: string): string {
  if (s.includes("\0")) throw new TransferError("INVALID_SPEC", "a path contains a NUL byte");
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** Commands whose presence changes the plan; probed in one exec. */
export const PROBED_COMMANDS = [
  "sha256sum", "md5sum", "sha1sum", "b2sum", "unzip", "bsdtar", "zip", "find", "sed", "xargs", "cat", "tail", "rm", "df",
] as const;
export type RemoteCommand = (typeof PROBED_COMMANDS)[number];

/** Marker proving a real shell ran the probe (a ForceCommand like internal-sftp swallows it). */
export const PROBE_MARKER = "ketter-probe-ok";

/** One shell script listing the available commands, GNU find and a perl with zlib (for crc32). */
export const PROBE_SCRIPT = [
  `for c in ${PROBED_COMMANDS.join(" ")}; do command -v "$c" >/dev/null 2>&1 && printf 'cmd %s\\n' "$c"; done`,
  `find / -maxdepth 0 -printf '' >/dev/null 2>&1 && echo gnufind`,
  `perl -MCompress::Raw::Zlib -e 1 >/dev/null 2>&1 && echo perlzlib`,
  `echo ${PROBE_MARKER}`,
].join("; ");

/** What the probe found on the remote host. */
export interface RemoteTools {
  shell: boolean;
  commands: Set<RemoteCommand>;
  gnuFind: boolean;
  perlZlib: boolean;
}

/** Parses the probe's stdout. */
export function parseProbe(stdout: string): RemoteTools {
  const lines = stdout.split("\n");
  const commands = new Set<RemoteCommand>();
  for (const l of lines) {
    const name = l.startsWith("cmd ") ? l.slice(4) : "";
    if ((PROBED_COMMANDS as readonly string[]).includes(name)) commands.add(name as RemoteCommand);
  }
  return { shell: lines.includes(PROBE_MARKER), commands, gnuFind: lines.includes("gnufind"), perlZlib: lines.includes("perlzlib") };
}

/** The NUL-separated hash command per algorithm: reads paths on stdin, prints "hex  path\0" per file. */
const HASH_COMMANDS: Partial<Record<HashAlgorithm, { needs: (t: RemoteTools) => boolean; cmd: string }>> = {
  // Perl's zlib crc32 runs at memory speed; coreutils has no crc32 before 9.6.
  crc32: {
    needs: (t) => t.perlZlib,
    cmd: `perl -MCompress::Raw::Zlib -e '$/="\\0"; while (my $p = <STDIN>) { chomp $p; open(my $f, "<:raw", $p) or die "$p: $!\\n"; my ($c, $b, $n) = (0); while ($n = sysread($f, $b, 1048576)) { $c = Compress::Raw::Zlib::crc32($b, $c) } defined $n or die "$p: $!\\n"; close $f; printf "%08x  %s\\0", $c, $p }'`,
  },
  sha1: { needs: (t) => t.commands.has("sha1sum") && t.commands.has("xargs"), cmd: "xargs -0 -r sha1sum -z --" },
  sha256: { needs: (t) => t.commands.has("sha256sum") && t.commands.has("xargs"), cmd: "xargs -0 -r sha256sum -z --" },
  blake2b512: { needs: (t) => t.commands.has("b2sum") && t.commands.has("xargs"), cmd: "xargs -0 -r b2sum -z --" },
  md5: { needs: (t) => t.commands.has("md5sum") && t.commands.has("xargs"), cmd: "xargs -0 -r md5sum -z --" },
};

/** Hash algorithms the remote can compute in one command over many files. */
export function remoteHashes(t: RemoteTools): HashAlgorithm[] {
  if (!t.shell) return [];
  return (Object.keys(HASH_COMMANDS) as HashAlgorithm[]).filter((a) => HASH_COMMANDS[a]?.needs(t));
}

/** The hash command for `algorithm` (run with the endpoint root as working folder). */
export function hashCommand(algorithm: HashAlgorithm): string {
  const c = HASH_COMMANDS[algorithm];
  if (!c) throw new TransferError("UNSUPPORTED", `the remote cannot hash with ${algorithm}`);
  return c.cmd;
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

/** Maps a failed remote command (exit code + stderr) to an engine error, recognising errno texts. */
export function commandError(what: string, path: string, code: number | null, stderr: string): TransferError {
  const errno = errnoFromText(stderr);
  if (errno) {
    const e = fromSystemError({ code: errno, message: stderr.trim() }, path, what);
    return e;
  }
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
