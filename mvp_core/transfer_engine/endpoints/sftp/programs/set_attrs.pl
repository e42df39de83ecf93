# Sets mode and mtime (sub-second, Time::HiRes) of many entries in one process: NUL-separated
# "octal mode, seconds, path" triples on stdin, paths relative to the root ("." is the root); links
# are skipped. Each entry is changed through a handle opened without following links; one its owner
# may neither read nor write (mode 0) is reached as an O_PATH handle through /proc (Linux).
# Argument: root.
use Time::HiRes ();
my $O_PATH = 010000000;
root_open($ARGV[0]);
$/ = "\0";
while (defined(my $mode = <STDIN>)) {
  my $t = <STDIN>; my $p = <STDIN>; defined $p or die "ketter-attrs: truncated input\n";
  chomp($mode, $t, $p);
  my ($h, $via) = (undef, undef);
  if ($p eq "." || $p eq "") { $h = $ROOT }
  else {
    my $i = rindex($p, "/");
    enter($i < 0 ? "" : substr($p, 0, $i));
    my $name = substr($p, $i + 1);
    my @st = lstat($name) or die "$p: $!\n";
    next if S_ISLNK($st[2]);
    my $kind = S_ISDIR($st[2]) ? O_DIRECTORY : O_NONBLOCK;
    unless (sysopen($h, $name, O_RDONLY | $kind | O_NOFOLLOW) || ($!{EACCES} && sysopen($h, $name, O_WRONLY | $kind | O_NOFOLLOW))) {
      escape($p) if $!{ELOOP};
      die "$p: $!\n" unless $!{EACCES} || $!{EISDIR};
      sysopen($h, $name, $O_PATH | O_NOFOLLOW) or do { escape($p) if $!{ELOOP}; die "$p: $!\n" };
      $via = "/proc/self/fd/" . fileno($h);
    }
  }
  if ($mode ne "") { chmod(oct($mode), $via // $h) or die "$p: $!\n" }
  if ($t ne "") { Time::HiRes::utime($t, $t, $via // $h) or die "$p: $!\n" }
}
