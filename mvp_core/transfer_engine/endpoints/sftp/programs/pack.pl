# Streams a stored (uncompressed) zip of a folder to stdout: every regular file below it, in name
# order, named relative to it; links and special files are left out (the engine recreates links).
# The folder is entered below the root as the prelude says; below it each folder and file is opened
# relative to the folder before it without following links (a link swapped in: exit 5). Sizes and
# CRC-32 follow each entry's data (a data descriptor), the central directory ends the archive.
# Plain zip only: over 65,535 files or 4 GiB is refused (exit 6). Arguments: root, folder.
use Compress::Raw::Zlib;
my ($root, $dir) = @ARGV;
root_open($root);
enter($dir);
my ($out, $off, $cd, $count) = ("", 0, "", 0);
sub flush_out { my $w = 0; while ($w < length $out) { my $x = syswrite(STDOUT, $out, length($out) - $w, $w); defined $x or die "stdout: $!\n"; $w += $x } $out = "" }
sub emit { $out .= $_[0]; $off += length $_[0]; flush_out() if length $out >= 1048576 }
sub too_big { print STDERR "ketter-pack: the folder is too large for a plain zip (over 65,535 files or 4 GiB)\n"; exit 6 }
sub dos_time { my @t = localtime(shift); my $y = $t[5] - 80; return (0, 33) if $y < 0; $y = 127 if $y > 127;
  (($t[2] << 11) | ($t[1] << 5) | ($t[0] >> 1), ($y << 9) | (($t[4] + 1) << 5) | $t[3]) }
sub add_file {
  my ($f, $name, $st) = @_;
  too_big() if $count >= 65535;
  my ($time, $date) = dos_time($st->[9]);
  my $at = $off;
  emit(pack("V v v v v v V V V v v", 0x04034b50, 10, 8, 0, $time, $date, 0, 0, 0, length $name, 0) . $name);
  my ($c, $size, $b, $r) = (0, 0);
  while ($r = sysread($f, $b, 1048576)) { $c = Compress::Raw::Zlib::crc32($b, $c); $size += $r; emit($b) }
  defined $r or die "$name: $!\n";
  too_big() if $off > 0xFFFFFFFF;
  emit(pack("V V V V", 0x08074b50, $c, $size, $size));
  $cd .= pack("V v v v v v v V V V v v v v v V V", 0x02014b50, 0x031e, 10, 8, 0, $time, $date, $c, $size, $size, length $name, 0, 0, 0, 0, ((0100000 | ($st->[2] & 07777)) << 16) & 0xFFFFFFFF, $at) . $name;
  $count++;
}
# The working folder's files, then its folders, each entered from its handle and left for the one it was entered from.
sub pack_dir {
  my $prefix = shift;
  opendir(my $dh, ".") or die "$prefix.: $!\n";
  my @names = sort grep { $_ ne "." && $_ ne ".." } readdir($dh);
  closedir $dh;
  for my $n (@names) {
    my @st = lstat($n) or die "ketter-pack: $prefix$n vanished while being packed\n";
    if (S_ISREG($st[2])) {
      sysopen(my $f, $n, O_RDONLY | O_NONBLOCK | O_NOFOLLOW) or do { escape("$prefix$n") if $!{ELOOP}; die "$prefix$n: $!\n" };
      -f $f or die "ketter-pack: $prefix$n changed while being packed\n";
      add_file($f, "$prefix$n", \@st);
    } elsif (S_ISDIR($st[2])) {
      sysopen(my $d, $n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) or do { escape("$prefix$n") if $!{ELOOP}; die "$prefix$n: $!\n" };
      sysopen(my $back, ".", O_RDONLY | O_DIRECTORY) or die "$prefix.: $!\n";
      chdir($d) or die "$prefix$n: $!\n";
      pack_dir("$prefix$n/");
      chdir($back) or die "$prefix.: $!\n";
    }
  }
}
pack_dir("");
my $cdo = $off;
emit($cd);
too_big() if $off > 0xFFFFFFFF;
emit(pack("V v v v v V V v", 0x06054b50, 0, 0, $count, $count, length $cd, $cdo, 0));
flush_out();
