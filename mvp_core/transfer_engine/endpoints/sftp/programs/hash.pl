# Hashes many files: NUL-separated paths (relative to the root) on stdin, "hex  path\0" out.
# Perl's zlib crc32 runs at memory speed (coreutils has no crc32 before 9.6); md5, sha1 and sha256
# come from perl's own Digest modules, so every file is opened below the root as the prelude says.
# xxh64, xxh3 and xxh128 come from xxhsum (big-endian hex, as the ASC MHL records them), handed the
# files this program opened itself as /dev/fd/N, a batch per run: xxhsum resolves no name below the
# root, so a link swapped in is still refused by the rooted open, and one exec serves many files.
# Arguments: root, algorithm (crc32, md5, sha1, sha256, xxh64, xxh3, xxh128).
my ($root, $alg) = @ARGV;
root_open($root);
my %XXH = (xxh64 => 1, xxh128 => 2, xxh3 => 3);
my $digest;
if (exists $XXH{$alg}) { }
elsif ($alg eq "crc32") { require Compress::Raw::Zlib }
elsif ($alg eq "md5") { require Digest::MD5; $digest = sub { Digest::MD5->new } }
elsif ($alg =~ /^sha(1|256)$/) { require Digest::SHA; my $bits = $1; $digest = sub { Digest::SHA->new($bits) } }
else { die "ketter-hash: unknown algorithm $alg\n" }
$/ = "\0";
if (exists $XXH{$alg}) {
  # Handles opened from here on stay open across exec (perl marks those above $^F close-on-exec).
  # As many files per xxhsum as the open-files limit leaves room for: each exec costs a few ms.
  $^F = 1 << 20;
  require POSIX;
  my $per = (POSIX::sysconf(POSIX::_SC_OPEN_MAX()) || 1024) - 64;
  $per = 4096 if $per > 4096;
  $per = 16 if $per < 16;
  my @batch;
  while (defined(my $p = <STDIN>)) {
    chomp $p;
    push @batch, [$p, open_file($p)];
    if (@batch >= $per) { xxhsum($XXH{$alg}, \@batch); @batch = () }
  }
  xxhsum($XXH{$alg}, \@batch) if @batch;
  exit 0;
}
while (defined(my $p = <STDIN>)) {
  chomp $p;
  my $f = open_file($p);
  my ($c, $d, $b, $n) = (0, $digest && $digest->());
  while ($n = sysread($f, $b, 1048576)) { if ($d) { $d->add($b) } else { $c = Compress::Raw::Zlib::crc32($b, $c) } }
  defined $n or die "$p: $!\n";
  close $f;
  printf "%s  %s\0", $d ? $d->hexdigest : sprintf("%08x", $c), $p;
}

# One xxhsum over the open files of $batch ([path, handle] pairs); its lines name /dev/fd/N
# ("hex  /dev/fd/N", or "XXH3 (/dev/fd/N) = hex" for -H3), mapped back to the paths.
sub xxhsum {
  my ($h, $batch) = @_;
  my %path = map { (fileno($_->[1]) => $_->[0]) } @$batch;
  open(my $out, "-|", "xxhsum", "-q", "-H$h", map { "/dev/fd/" . fileno($_->[1]) } @$batch) or die "xxhsum: $!\n";
  local $/ = "\n";
  while (my $l = <$out>) {
    chomp $l;
    my ($hex, $fd) = $l =~ m{^XXH3 \(/dev/fd/(\d+)\) = ([0-9a-f]+)$} ? ($2, $1) : $l =~ m{^([0-9a-f]+)  /dev/fd/(\d+)$} ? ($1, $2) : die "xxhsum: unexpected output: $l\n";
    defined $path{$fd} or die "xxhsum: unexpected file /dev/fd/$fd\n";
    printf "%s  %s\0", $hex, $path{$fd};
  }
  close($out) or die "xxhsum failed (status $?)\n";
  close($_->[1]) for @$batch;
}
