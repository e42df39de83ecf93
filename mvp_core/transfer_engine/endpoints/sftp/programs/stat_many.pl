# The current entries of many paths: NUL-separated paths (relative to the root) on stdin. For each
# folder they lie in, in order: "dir\0<folder>\0", then find's records of that folder's entries
# (the walk's format, so a file's change stamp compares equal to the one its scan recorded), or
# "gone\0<folder>\0" when the folder no longer exists. Arguments: root, -printf format.
my ($root, $format) = @ARGV;
root_open($root);
$/ = "\0";
my (@order, %seen);
while (defined(my $p = <STDIN>)) {
  chomp $p;
  my $i = rindex($p, "/");
  my $d = $i < 0 ? "" : substr($p, 0, $i);
  push @order, $d unless $seen{$d}++;
}
$| = 1;
for my $d (@order) {
  unless (eval { enter($d) }) {
    die $@ unless $@ =~ /No such file or directory|Not a directory/;
    print "gone\0$d\0";
    next;
  }
  print "dir\0$d\0";
  my $pid = fork() // die "fork: $!\n";
  if (!$pid) { exec { "find" } "find", ".", "-mindepth", "1", "-maxdepth", "1", "-printf", $format; die "find: $!\n" }
  waitpid($pid, 0);
  $? == 0 or die "$d: find exited " . ($? >> 8) . "\n";
}
