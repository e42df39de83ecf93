# A writer "lane": one long-lived process receiving many files over one exec channel. Starting a
# session, a shell and perl cost ~10 ms of CPU and ~25-40 ms of latency per file here, which
# halved the throughput of 20 MiB files; a lane pays it once. Each file is a header line
# "<octal mode or -> <size> <path length>[ <offset>]\n", the path bytes (relative to the root), then
# exactly <size> bytes; the lane answers "<crc32> <size>\n" once the file is closed (and chmodded),
# and takes the next. With an offset the bytes are a range of the file: written there into the
# file as it is (created if missing, never truncated: other lanes write its other ranges), and every
# MiB the lane reports "+<crc32> <bytes>\n" for what it has written of the range so far, so a
# resumed transfer knows what it may keep. Any error ends the lane with the message on stderr; EOF
# between files ends it cleanly (0), EOF inside a file with 3. Argument: root.
use Compress::Raw::Zlib;
grow_stdin();
$| = 1;
root_open($ARGV[0]);
my $buf = "";
sub fill { my $r = sysread(STDIN, $buf, 1048576, length $buf); defined $r or die "stdin: $!\n"; $r }
for (;;) {
  my $nl;
  while (($nl = index($buf, "\n")) < 0) { fill() or exit(length $buf ? 3 : 0) }
  my ($mode, $size, $plen, $offset) = split / /, substr($buf, 0, $nl + 1, "");
  while (length $buf < $plen) { fill() or exit 3 }
  my $path = substr($buf, 0, $plen, "");
  my $range = defined $offset;
  my $o = beneath($path, $range ? O_WRONLY | O_CREAT : O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if ($range) { sysseek($o, $offset + 0, 0) or die "$path: $!\n" }
  my ($c, $left, $d, $told) = (0, $size, "", 0);
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
    if ($range && $size - $left - $told >= 1048576 && $left > 0) { $told = $size - $left; printf "+%08x %d\n", $c, $told }
  }
  if ($mode ne "-") { chmod(oct($mode), $o) or die "$path: $!\n" }
  close($o) or die "$path: $!\n";
  printf "%08x %d\n", $c, $size;
}
