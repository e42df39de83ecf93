# CRC-32s of byte ranges of files, so a resumed transfer can re-check what an earlier attempt left
# in its staging file before keeping it. NUL-separated "path, offset, length" triples (paths
# relative to the root) on stdin; for each, in order, "<crc32>\0", or "-\0" when the file is missing
# or ends before the range does. Files are opened below the root as the prelude says.
# Argument: root.
use Compress::Raw::Zlib;
root_open($ARGV[0]);
$/ = "\0";
my ($open, $f) = ("", undef);
while (defined(my $p = <STDIN>)) {
  chomp $p;
  my $off = <STDIN>; my $len = <STDIN>;
  die "ketter-crc-ranges: truncated input\n" unless defined $len;
  chomp $off; chomp $len;
  if ($open ne $p) {
    close $f if $f;
    $f = eval { open_file($p) };
    if (!$f) { die $@ unless $@ =~ /No such file|Not a directory/; $open = ""; print "-\0"; next }
    $open = $p;
  }
  sysseek($f, $off, 0) or die "$p: $!\n";
  my ($c, $left, $b, $n) = (0, $len);
  while ($left > 0 && ($n = sysread($f, $b, $left < 1048576 ? $left : 1048576))) { $c = Compress::Raw::Zlib::crc32($b, $c); $left -= $n }
  defined $n or die "$p: $!\n";
  print $left > 0 ? "-\0" : sprintf("%08x\0", $c);
}
