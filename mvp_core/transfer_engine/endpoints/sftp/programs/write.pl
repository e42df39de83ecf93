# Writes stdin to a file and prints "crc32 size": the receiver hashes the bytes as it writes them
# (as rsync's receiver does), so checksum verification need not read a big file back afterwards.
# Arguments: root, path (created 0600, then given the octal mode, or "" to leave it).
use Compress::Raw::Zlib;
grow_stdin();
my ($root, $path, $mode) = @ARGV;
root_open($root);
my $o = beneath($path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
my ($c, $n, $b, $r) = (0, 0);
while ($r = sysread(STDIN, $b, 1048576)) { $c = Compress::Raw::Zlib::crc32($b, $c); my $w = 0; while ($w < $r) { my $x = syswrite($o, $b, $r - $w, $w); defined $x or die "$path: $!\n"; $w += $x } $n += $r }
defined $r or die "stdin: $!\n";
if ($mode ne "") { chmod(oct($mode), $o) or die "$path: $!\n" }
close($o) or die "$path: $!\n";
printf "%08x %d\n", $c, $n;
