# Unpacks a stored zip while it arrives on stdin, so no archive lands at the destination and
# unpacking overlaps the transfer. fflate's streaming zip puts sizes after the data (a data
# descriptor), which a reader cannot find without scanning stored bytes for signatures; so the
# sender first states every entry's size, in archive order, and the mode and mtime each file gets
# once written ("-": none): "<count>\n<sizes>\n<octal modes>\n<mtimes in seconds>\n", space-separated.
# Each entry's local header, name rules (no "..", no absolute names) and the CRC-32 in its data
# descriptor are checked as in unzip.pl, with the same exit codes (3 malformed, 4 bad CRC) and the
# same "crc32 size\0name\0" report. The central directory is read to the end and its entry count
# checked. Arguments: root, destination folder (relative to the root).
use Compress::Raw::Zlib; use Time::HiRes ();
grow_stdin();
my ($root, $dest) = @ARGV;
root_open($root);
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
  my $out;
  if ($dir || $name eq "") { enter(under($dest, $name), 1) if $name ne "" }
  else { $out = beneath(under($dest, $name), O_WRONLY | O_CREAT | O_TRUNC, 0600, 1) }
  my ($c, $left) = (0, $size);
  while ($left > 0) {
    need(1) or fail("truncated archive");
    my $n = length($buf) - $pos; $n = $left if $n > $left;
    my $piece = substr($buf, $pos, $n); $pos += $n; $left -= $n;
    $c = Compress::Raw::Zlib::crc32($piece, $c);
    if (defined $out) { my $w = 0; while ($w < $n) { my $x = syswrite($out, $piece, $n - $w, $w) // die "$name: $!\n"; $w += $x } }
  }
  if ($flags & 8) {
    my $d = take(12);
    if (unpack("V", $d) == 0x08074b50) { $d = substr($d, 4) . take(4) }
    ($crc, $csize, $usize) = unpack("V V V", $d);
    fail("entry size differs from the size list") if $usize != $size || $csize != $size;
  }
  if (defined $out) {
    # The file's final mode and mtime, set through its handle rather than in a second pass over every file.
    if ($modes->[$k] ne "-") { chmod(oct($modes->[$k]), $out) or die "$name: $!\n" }
    if ($mtimes->[$k] ne "-") { Time::HiRes::utime($mtimes->[$k], $mtimes->[$k], $out) or die "$name: $!\n" }
    close($out) or die "$name: $!\n";
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
exit 0;
