/**
 * What we run on the remote host over exec channels: quoting, the capability probe, hash and
 * unpack commands, and the mapping of a failed command's stderr to an engine error.
 */
import type { HashAlgorithm } from "../endpoint.ts";
import { TransferError, fromSystemError } from "../../errors.ts";

/** Quotes `s` for a POSIX shell: single quotes, with each embedded quote spelled '\''. */
export function shQuote(s: string): string {
  if (s.includes("\0")) throw new TransferError("INVALID_SPEC", "a path contains a NUL byte");
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** Commands whose presence changes the plan; probed in one exec. */
export const PROBED_COMMANDS = [
  "sha256sum", "md5sum", "sha1sum", "b2sum", "unzip", "bsdtar", "zip", "find", "sed", "xargs", "cat", "tail", "rm", "df", "stat",
] as const;
export type RemoteCommand = (typeof PROBED_COMMANDS)[number];

/** Marker proving a real shell ran the probe (a ForceCommand like internal-sftp swallows it). */
export const PROBE_MARKER = "ketter-probe-ok";

/** One shell script listing the available commands, GNU find and a perl with zlib (for crc32). */
export const PROBE_SCRIPT = [
  `for c in ${PROBED_COMMANDS.join(" ")}; do command -v "$c" >/dev/null 2>&1 && printf 'cmd %s\\n' "$c"; done`,
  `find / -maxdepth 0 -printf '' >/dev/null 2>&1 && echo gnufind`,
  `perl -MCompress::Raw::Zlib -e 1 >/dev/null 2>&1 && echo perlzlib`,
  `echo "cpus $(nproc 2>/dev/null || echo 1)"`,
  `echo ${PROBE_MARKER}`,
].join("; ");

/**
 * Appended to the probe by connectSsh: the root folder's state and real path. An exec answers a
 * round trip or two before SFTP is ready (subsystem start, version, limits), so connecting need
 * not wait for SFTP to check the root. Prints "root ok\0REALPATH\0", or "root missing|notdir|denied".
 */
export function probeRootScript(root: string): string {
  const r = shQuote(root);
  return `if [ ! -e ${r} ]; then echo 'root missing'; elif [ ! -d ${r} ]; then echo 'root notdir'; elif [ ! -r ${r} ] || [ ! -x ${r} ]; then echo 'root denied'; `
    + `else printf 'root ok\\0%s\\0' "$(cd -P -- ${r} && pwd -P)"; fi`;
}

/** What probeRootScript printed; null when it did not run (no shell) or said nothing we understand. */
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
  perlZlib: boolean;
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
  return { shell: lines.includes(PROBE_MARKER), commands, gnuFind: lines.includes("gnufind"), perlZlib: lines.includes("perlzlib"), cpus: Number.isInteger(cpus) && cpus > 0 ? cpus : 1 };
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

/**
 * Unpacks a stored zip through its central directory with `workers` processes, each writing every
 * n-th file: creating thousands of small files is system-call bound, and two workers on two cores
 * measured ~20% faster than Info-ZIP unzip here. Names are taken as bytes (no code-page guessing),
 * ".." and absolute names are refused, existing links are never followed (O_NOFOLLOW, folders
 * checked with lstat), and every entry's CRC-32 is checked (exit 4). Exit 3: a malformed archive.
 * Prints "crc32 size\0name\0" per file written and verified, so verification need not re-read them.
 * Arguments: archive, destination folder, workers.
 */
export const PERL_UNZIP = String.raw`use strict; use warnings; use Compress::Raw::Zlib; use Fcntl qw(O_WRONLY O_CREAT O_TRUNC O_NOFOLLOW);
my ($zip, $dest, $n) = @ARGV;
sub fail { print STDERR "ketter-unzip: $_[0]\n"; exit 3 }
open(my $fh, "<:raw", $zip) or die "$zip: $!\n";
my $size = -s $fh;
my $tl = $size < 65557 ? $size : 65557;
sysseek($fh, $size - $tl, 0); sysread($fh, my $tail, $tl) == $tl or die "$zip: $!\n";
my $e = rindex($tail, "PK\x05\x06"); $e >= 0 or fail("no end of central directory");
my ($count, $cdsize, $cdoff) = unpack("x10 v V V", substr($tail, $e, 22));
sysseek($fh, $cdoff, 0); sysread($fh, my $cd, $cdsize) == $cdsize or fail("short central directory");
my (@files, %made); my $p = 0;
sub mkdirs { my $d = shift; return if $d eq "" || $made{$d}; my $i = rindex($d, "/"); mkdirs(substr($d, 0, $i)) if $i > 0;
  my $a = "$dest/$d"; if (!mkdir($a, 0700)) { die "$a: $!\n" unless $!{EEXIST} && !-l $a && -d _; } $made{$d} = 1 }
for (1..$count) {
  my ($sig, $method, $crc, $csize, $usize, $nlen, $xlen, $clen, $off) = unpack("V x6 v x4 V V V v v v x8 V", substr($cd, $p, 46));
  $sig == 0x02014b50 or fail("bad central directory entry");
  my $name = substr($cd, $p + 46, $nlen); $p += 46 + $nlen + $xlen + $clen;
  ($method == 0 && $csize == $usize) or fail("compressed entry");
  my $dir = $name =~ s{/+$}{};
  fail("unsafe name") if $name =~ m{^/} || grep { $_ eq ".." } split m{/}, $name;
  next if $name eq "";
  if ($dir) { mkdirs($name) } else { my $i = rindex($name, "/"); mkdirs(substr($name, 0, $i)) if $i > 0; push @files, [$name, $crc, $usize, $off] }
}
my @kids;
for my $k (0 .. $n - 1) {
  my $pid = fork() // die "fork: $!\n";
  if ($pid) { push @kids, $pid; next }
  $| = 1; # one write per record: records from the workers stay whole on the shared pipe
  close($fh); open($fh, "<:raw", $zip) or die "$zip: $!\n"; # a forked handle shares its offset
  for (my $i = $k; $i < @files; $i += $n) {
    my ($name, $crc, $size, $off) = @{$files[$i]};
    sysseek($fh, $off, 0); sysread($fh, my $lh, 30) == 30 or fail("short local header");
    my ($lsig, $ln, $lx) = unpack("V x22 v v", $lh); $lsig == 0x04034b50 or fail("bad local header");
    sysseek($fh, $off + 30 + $ln + $lx, 0);
    sysopen(my $out, "$dest/$name", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600) or die "$dest/$name: $!\n";
    my ($c, $left) = (0, $size);
    while ($left > 0) { my $r = sysread($fh, my $buf, $left < 1048576 ? $left : 1048576); die "$zip: $!\n" unless defined $r; fail("truncated archive") if $r == 0;
      $c = Compress::Raw::Zlib::crc32($buf, $c); my $w = 0; while ($w < $r) { my $x = syswrite($out, $buf, $r - $w, $w); die "$dest/$name: $!\n" unless defined $x; $w += $x } $left -= $r }
    close($out) or die "$dest/$name: $!\n";
    printf(STDERR "ketter-unzip: bad CRC %s\n", $name), exit 4 if $c != $crc;
    printf("%08x %d\0%s\0", $c, $size, $name) if length($name) < 4000;
  }
  exit 0;
}
my $bad = 0; for (@kids) { waitpid($_, 0); $bad ||= $? >> 8 } exit $bad;`;

/**
 * sshd hands an exec'd command its input through a pipe of 64 KiB, so sshd and the writer took
 * turns every 64 KiB; growing the pipe to 1 MiB (F_SETPIPE_SZ, Linux; elsewhere, or over a user's
 * pipe quota, the call fails and nothing changes) lets them overlap. 1 GiB pushed on loopback,
 * interleaved with tar|ssh (median 1.75 s): 2.29 s before, 1.65 s after, and the remote's CPU
 * (sshd and writer) fell from ~2.0 to ~1.4 s. For reads the pipe made no difference (cat writes
 * 128 KiB at a time and sshd keeps up), so they are left as they are.
 */
const GROW_STDIN_PIPE = "fcntl(STDIN, 1031, 1048576);";

/**
 * Unpacks a stored zip while it arrives on stdin, so no archive lands at the destination and
 * unpacking overlaps the transfer. fflate's streaming zip puts sizes after the data (a data
 * descriptor), which a reader cannot find without scanning stored bytes for signatures; so the
 * sender first states every entry's size, in archive order, and the mode and mtime each file gets
 * once written ("-": none): "<count>\n<sizes>\n<octal modes>\n<mtimes in seconds>\n", space-separated. Each
 * entry's local header, name rules (no "..", no absolute names, links never followed) and the
 * CRC-32 in its data descriptor are checked as in PERL_UNZIP, with the same exit codes (3 malformed,
 * 4 bad CRC) and the same "crc32 size\0name\0" report. The central directory is read to the end and
 * its entry count checked. Argument: destination folder.
 */
export const PERL_UNZIP_STREAM = String.raw`use strict; use warnings; use Compress::Raw::Zlib; use Fcntl qw(O_WRONLY O_CREAT O_TRUNC O_NOFOLLOW); use POSIX (); use Time::HiRes ();
${GROW_STDIN_PIPE}
my ($dest) = @ARGV;
sub fail { print STDERR "ketter-unzip: $_[0]\n"; exit 3 }
my ($buf, $pos) = ("", 0);
# Bytes are consumed by moving $pos; the buffer is compacted now and then (not per entry: that
# would move up to 1 MiB for every 4 KiB file).
sub need { my $n = shift; if ($pos > 1048576) { substr($buf, 0, $pos, ""); $pos = 0 }
  while (length($buf) - $pos < $n) { my $r = sysread(STDIN, $buf, 1048576, length $buf); die "stdin: $!\n" unless defined $r; return 0 if $r == 0 } 1 }
sub take { my $n = shift; need($n) or fail("truncated archive"); my $s = substr($buf, $pos, $n); $pos += $n; $s }
sub line { my $i; while (($i = index($buf, "\n", $pos)) < 0) { my $r = sysread(STDIN, $buf, 1048576, length $buf); die "stdin: $!\n" unless defined $r; fail("truncated size list") if $r == 0 } my $s = substr($buf, $pos, $i - $pos); $pos = $i + 1; $s }
my $count = line(); $count =~ /^\d+$/ or fail("bad size list");
my @lists = map { [split / /, line()] } 1 .. 3;
my ($sizes, $modes, $mtimes) = @lists;
@$_ == $count or fail("size list does not match its count") for @lists;
my %made;
sub mkdirs { my $d = shift; return if $d eq "" || $made{$d}; my $i = rindex($d, "/"); mkdirs(substr($d, 0, $i)) if $i > 0;
  my $a = "$dest/$d"; if (!mkdir($a, 0700)) { die "$a: $!\n" unless $!{EEXIST} && !-l $a && -d _; } $made{$d} = 1 }
$| = 0;
for my $k (0 .. $count - 1) {
  my ($sig, $flags, $method, $crc, $csize, $usize, $nlen, $xlen) = unpack("V x2 v v x4 V V V v v", take(30));
  $sig == 0x04034b50 or fail("bad local header");
  $method == 0 or fail("compressed entry");
  my $name = take($nlen); take($xlen) if $xlen;
  my $size = $sizes->[$k];
  fail("entry size differs from the size list") if !($flags & 8) && $usize != $size;
  my $dir = $name =~ s{/+$}{};
  fail("unsafe name") if $name =~ m{^/} || grep { $_ eq ".." } split m{/}, $name;
  # Plain descriptors: a perl file handle costs an fstat, an ioctl and an lseek more per file.
  my $out;
  if ($dir || $name eq "") { mkdirs($name) if $name ne "" }
  else { my $i = rindex($name, "/"); mkdirs(substr($name, 0, $i)) if $i > 0;
    $out = POSIX::open("$dest/$name", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600) // die "$dest/$name: $!\n" }
  my ($c, $left) = (0, $size);
  while ($left > 0) {
    need(1) or fail("truncated archive");
    my $n = length($buf) - $pos; $n = $left if $n > $left;
    my $piece = substr($buf, $pos, $n); $pos += $n; $left -= $n;
    $c = Compress::Raw::Zlib::crc32($piece, $c);
    if (defined $out) { my $w = 0; while ($w < $n) { my $x = POSIX::write($out, $w ? substr($piece, $w) : $piece, $n - $w) // die "$dest/$name: $!\n"; $w += $x } }
  }
  if ($flags & 8) {
    my $d = take(12);
    if (unpack("V", $d) == 0x08074b50) { $d = substr($d, 4) . take(4) }
    ($crc, $csize, $usize) = unpack("V V V", $d);
    fail("entry size differs from the size list") if $usize != $size || $csize != $size;
  }
  if (defined $out) {
    POSIX::close($out) // die "$dest/$name: $!\n";
    # The file's final mode and mtime, set here rather than in a second pass over every file.
    if ($modes->[$k] ne "-") { chmod(oct($modes->[$k]), "$dest/$name") or die "$dest/$name: $!\n" }
    if ($mtimes->[$k] ne "-") { Time::HiRes::utime($mtimes->[$k], $mtimes->[$k], "$dest/$name") or die "$dest/$name: $!\n" }
    printf(STDERR "ketter-unzip: bad CRC %s\n", $name), exit 4 if $c != $crc;
    printf("%08x %d\0%s\0", $c, $size, $name) if length($name) < 4000;
  }
}
my ($entries, $seen) = (0, 0);
while (need(4)) {
  my $sig = unpack("V", substr($buf, $pos, 4));
  if ($sig == 0x02014b50) { my ($nl, $xl, $cl) = unpack("x28 v v v", take(46)); take($nl + $xl + $cl); $seen++ }
  elsif ($sig == 0x06054b50) { my $cl; ($entries, $cl) = unpack("x10 v x8 v", take(22)); take($cl) if $cl; last }
  else { fail("bad central directory entry") }
}
fail("no end of central directory") unless defined $entries && $entries == $count && $seen == $count;
need(1) and fail("data after the end of the archive");
exit 0;`;

/** The command running PERL_UNZIP_STREAM into `into`. */
export function perlUnzipStreamCommand(into: string): string {
  return `perl -e ${shQuote(PERL_UNZIP_STREAM)} -- ${shQuote(into)}`;
}

/** The lists PERL_UNZIP_STREAM reads before the archive: count, sizes, modes, mtimes ("-": leave as is). */
export function unzipStreamPreamble(entries: readonly { size: number; mode?: number; mtimeMs?: number }[]): Buffer {
  const sizes = entries.map((e) => e.size).join(" ");
  const modes = entries.map((e) => (e.mode === undefined ? "-" : octalMode(e.mode))).join(" ");
  const mtimes = entries.map((e) => (e.mtimeMs === undefined ? "-" : utimeSeconds(e.mtimeMs))).join(" ");
  return Buffer.from(`${entries.length}\n${sizes}\n${modes}\n${mtimes}\n`);
}

/** The command running PERL_UNZIP. */
export function perlUnzipCommand(archive: string, into: string, workers: number): string {
  return `perl -e ${shQuote(PERL_UNZIP)} -- ${shQuote(archive)} ${shQuote(into)} ${Math.max(1, Math.floor(workers))}`;
}

/**
 * Writes stdin to a file and prints "crc32 size": the receiver hashes the bytes as it writes them
 * (as rsync's receiver does), so checksum verification need not read a big file back afterwards.
 * Arguments: path, octal mode or "".
 */
const PERL_WRITE = String.raw`use strict; use warnings; use Compress::Raw::Zlib; use Fcntl qw(O_WRONLY O_CREAT O_TRUNC);
${GROW_STDIN_PIPE}
my ($path, $mode) = @ARGV;
sysopen(my $o, $path, O_WRONLY | O_CREAT | O_TRUNC, 0600) or die "$path: $!\n";
my ($c, $n, $b, $r) = (0, 0);
while ($r = sysread(STDIN, $b, 1048576)) { $c = Compress::Raw::Zlib::crc32($b, $c); my $w = 0; while ($w < $r) { my $x = syswrite($o, $b, $r - $w, $w); defined $x or die "$path: $!\n"; $w += $x } $n += $r }
defined $r or die "stdin: $!\n";
close($o) or die "$path: $!\n";
if ($mode ne "") { chmod(oct($mode), $path) or die "$path: $!\n" }
printf "%08x %d\n", $c, $n;`;

/** The command writing stdin to `abs` (created 0600, then `mode`), reporting CRC-32 and size. */
export function perlWriteCommand(abs: string, mode: number | undefined): string {
  return `perl -e ${shQuote(PERL_WRITE)} -- ${shQuote(abs)} ${mode === undefined ? "''" : (mode & 0o7777).toString(8)}`;
}

/**
 * A writer "lane": one long-lived process receiving many files over one exec channel. Starting a
 * session, a shell and perl cost ~10 ms of CPU and ~25-40 ms of latency per file here, which
 * halved the throughput of 20 MiB files; a lane pays it once. Each file is a header line
 * "<octal mode or -> <size> <path length>\n", the path bytes, then exactly <size> bytes; the lane
 * answers "<crc32> <size>\n" once the file is closed (and chmodded). Any error ends the lane with
 * the message on stderr; EOF between files ends it cleanly (0), EOF inside a file with 3.
 */
const PERL_LANE = String.raw`use strict; use warnings; use Compress::Raw::Zlib; use Fcntl qw(O_WRONLY O_CREAT O_TRUNC);
${GROW_STDIN_PIPE}
$| = 1;
my $buf = "";
sub fill { my $r = sysread(STDIN, $buf, 1048576, length $buf); defined $r or die "stdin: $!\n"; $r }
for (;;) {
  my $nl;
  while (($nl = index($buf, "\n")) < 0) { fill() or exit(length $buf ? 3 : 0) }
  my ($mode, $size, $plen) = split / /, substr($buf, 0, $nl + 1, "");
  while (length $buf < $plen) { fill() or exit 3 }
  my $path = substr($buf, 0, $plen, "");
  sysopen(my $o, $path, O_WRONLY | O_CREAT | O_TRUNC, 0600) or die "$path: $!\n";
  my ($c, $left, $d) = (0, $size, "");
  # Header reads may have taken the file's first bytes; the rest is read no further than the file's
  # end, into one reused buffer (a fresh 1 MiB string per pipe read was 2x slower).
  my $head = length $buf <= $left ? $buf : substr($buf, 0, $left);
  substr($buf, 0, length $head, "");
  for (my $first = 1; $left > 0; $first = 0) {
    if (!$first || !length $head) {
      my $r = sysread(STDIN, $d, $left < 1048576 ? $left : 1048576);
      defined $r or die "stdin: $!\n";
      $r or do { print STDERR "$path: stream ended $left bytes early\n"; exit 3 };
    }
    my $piece = $first && length $head ? \$head : \$d;
    my $n = length $$piece;
    $c = Compress::Raw::Zlib::crc32($$piece, $c);
    my $w = 0;
    while ($w < $n) { my $x = syswrite($o, $$piece, $n - $w, $w); defined $x or die "$path: $!\n"; $w += $x }
    $left -= $n;
  }
  close($o) or die "$path: $!\n";
  if ($mode ne "-") { chmod(oct($mode), $path) or die "$path: $!\n" }
  printf "%08x %d\n", $c, $size;
}`;

/** The command starting a writer lane (see PERL_LANE). */
export function perlLaneCommand(): string {
  return `perl -e ${shQuote(PERL_LANE)}`;
}

/** The header announcing one file to a lane. */
export function laneHeader(abs: string, size: number, mode: number | undefined): Buffer {
  const path = Buffer.from(abs);
  return Buffer.concat([Buffer.from(`${mode === undefined ? "-" : (mode & 0o7777).toString(8)} ${size} ${path.length}\n`), path]);
}

/** Parses PERL_WRITE's report. */
export function parseWriteReport(stdout: string): { crc32: string; size: number } | null {
  const m = /^([0-9a-f]{8}) (\d+)\n?$/.exec(stdout);
  return m ? { crc32: m[1]!, size: Number(m[2]) } : null;
}

/** Parses the unpacker's "crc32 size\0name\0" records. */
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

/**
 * Sets mode and mtime (sub-second, Time::HiRes) of many entries in one process: NUL-separated
 * "octal mode, seconds, path" triples on stdin, paths relative to the working folder; links skipped.
 */
const PERL_SET_ATTRS = String.raw`use strict; use warnings; use Time::HiRes ();
$/ = "\0";
while (defined(my $mode = <STDIN>)) {
  my $t = <STDIN>; my $p = <STDIN>; defined $p or die "ketter-attrs: truncated input\n";
  chomp($mode, $t, $p);
  next if -l $p;
  if ($mode ne "") { chmod(oct($mode), $p) or die "$p: $!\n" }
  if ($t ne "") { Time::HiRes::utime($t, $t, $p) or die "$p: $!\n" }
}`;

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

/** The PERL_SET_ATTRS command run in `root`, and its stdin. */
export function perlSetAttrs(root: string, items: readonly { rel: string; mode?: number; mtimeMs?: number }[]): { command: string; stdin: Uint8Array } {
  const body = items.map((i) => `${i.mode === undefined ? "" : octalMode(i.mode)}\0${i.mtimeMs === undefined ? "" : utimeSeconds(i.mtimeMs)}\0${i.rel === "" ? "." : i.rel}\0`).join("");
  return { command: `cd ${shQuote(root)} && perl -e ${shQuote(PERL_SET_ATTRS)}`, stdin: new TextEncoder().encode(body) };
}
