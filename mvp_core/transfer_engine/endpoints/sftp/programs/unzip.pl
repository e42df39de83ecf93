# Unpacks a stored zip through its central directory with <workers> processes, each writing every
# n-th file: creating thousands of small files is system-call bound, and two workers on two cores
# measured ~20% faster than Info-ZIP unzip here. Names are taken as bytes (no code-page guessing),
# ".." and absolute names are refused, and every entry's CRC-32 is checked (exit 4). Exit 3: a
# malformed archive. Prints "crc32 size\0name\0" per file written and verified, so verification need
# not re-read them. Arguments: root, archive, destination folder (both relative to the root), workers.
use Compress::Raw::Zlib;
my ($root, $zip, $dest, $n) = @ARGV;
root_open($root);
sub fail { print STDERR "ketter-unzip: $_[0]\n"; exit 3 }
my $fh = open_file($zip);
my $size = -s $fh;
my $tl = $size < 65557 ? $size : 65557;
sysseek($fh, $size - $tl, 0); sysread($fh, my $tail, $tl) == $tl or die "$zip: $!\n";
my $e = rindex($tail, "PK\x05\x06"); $e >= 0 or fail("no end of central directory");
my ($count, $cdsize, $cdoff) = unpack("x10 v V V", substr($tail, $e, 22));
sysseek($fh, $cdoff, 0); sysread($fh, my $cd, $cdsize) == $cdsize or fail("short central directory");
my @files; my $p = 0;
for (1..$count) {
  my ($sig, $method, $crc, $csize, $usize, $nlen, $xlen, $clen, $off) = unpack("V x6 v x4 V V V v v v x8 V", substr($cd, $p, 46));
  $sig == 0x02014b50 or fail("bad central directory entry");
  my $name = substr($cd, $p + 46, $nlen); $p += 46 + $nlen + $xlen + $clen;
  ($method == 0 && $csize == $usize) or fail("compressed entry");
  my $dir = $name =~ s{/+$}{};
  fail("unsafe name") if $name =~ m{^/} || grep { $_ eq ".." } split m{/}, $name;
  next if $name eq "";
  if ($dir) { enter(under($dest, $name), 1) } else { my $i = rindex($name, "/"); enter(under($dest, substr($name, 0, $i)), 1) if $i > 0; push @files, [$name, $crc, $usize, $off] }
}
my @kids;
for my $k (0 .. $n - 1) {
  my $pid = fork() // die "fork: $!\n";
  if ($pid) { push @kids, $pid; next }
  $| = 1; # one write per record: records from the workers stay whole on the shared pipe
  close($fh); $fh = open_file($zip); # a forked handle shares its offset
  for (my $i = $k; $i < @files; $i += $n) {
    my ($name, $crc, $size, $off) = @{$files[$i]};
    sysseek($fh, $off, 0); sysread($fh, my $lh, 30) == 30 or fail("short local header");
    my ($lsig, $ln, $lx) = unpack("V x22 v v", $lh); $lsig == 0x04034b50 or fail("bad local header");
    sysseek($fh, $off + 30 + $ln + $lx, 0);
    my $out = beneath(under($dest, $name), O_WRONLY | O_CREAT | O_TRUNC, 0600, 1);
    my ($c, $left) = (0, $size);
    while ($left > 0) { my $r = sysread($fh, my $buf, $left < 1048576 ? $left : 1048576); die "$zip: $!\n" unless defined $r; fail("truncated archive") if $r == 0;
      $c = Compress::Raw::Zlib::crc32($buf, $c); my $w = 0; while ($w < $r) { my $x = syswrite($out, $buf, $r - $w, $w); die "$name: $!\n" unless defined $x; $w += $x } $left -= $r }
    close($out) or die "$name: $!\n";
    printf(STDERR "ketter-unzip: bad CRC %s\n", $name), exit 4 if $c != $crc;
    printf("%08x %d\0%s\0", $c, $size, $name) if length($name) < 4000;
  }
  exit 0;
}
my $bad = 0; for (@kids) { waitpid($_, 0); $bad ||= $? >> 8 } exit $bad;
