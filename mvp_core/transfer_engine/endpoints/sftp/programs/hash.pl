# Hashes many files: NUL-separated paths (relative to the root) on stdin, "hex  path\0" out.
# Perl's zlib crc32 runs at memory speed (coreutils has no crc32 before 9.6); md5, sha1 and sha256
# come from perl's own Digest modules, so every file is opened below the root as the prelude says.
# Arguments: root, algorithm (crc32, md5, sha1, sha256).
my ($root, $alg) = @ARGV;
root_open($root);
my $digest;
if ($alg eq "crc32") { require Compress::Raw::Zlib }
elsif ($alg eq "md5") { require Digest::MD5; $digest = sub { Digest::MD5->new } }
elsif ($alg =~ /^sha(1|256)$/) { require Digest::SHA; my $bits = $1; $digest = sub { Digest::SHA->new($bits) } }
else { die "ketter-hash: unknown algorithm $alg\n" }
$/ = "\0";
while (defined(my $p = <STDIN>)) {
  chomp $p;
  my $f = open_file($p);
  my ($c, $d, $b, $n) = (0, $digest && $digest->());
  while ($n = sysread($f, $b, 1048576)) { if ($d) { $d->add($b) } else { $c = Compress::Raw::Zlib::crc32($b, $c) } }
  defined $n or die "$p: $!\n";
  close $f;
  printf "%s  %s\0", $d ? $d->hexdigest : sprintf("%08x", $c), $p;
}
