# Lists a folder's tree: the folder is entered below the root as the prelude says, then GNU find
# walks it from there ("."). find never follows a link (-P, the default) and descends through
# handles, checking each folder it enters is the one it listed. Its listing (~100 bytes a file:
# names, sizes, times, inodes) leaves deflated at level 1, ~6x smaller: on a WAN the listing is
# most of what a re-run of a big tree sends. find's exit status is passed on.
# Arguments: root, folder, -printf format.
use Compress::Raw::Zlib;
my ($root, $dir, $format) = @ARGV;
root_open($root);
enter($dir);
my ($z) = Compress::Raw::Zlib::Deflate->new(-Level => 1, -AppendOutput => 0);
open(my $find, "-|", "find", ".", "-mindepth", "1", "-printf", $format) or die "find: $!\n";
binmode $find;
binmode STDOUT;
my ($buf, $out);
while (sysread($find, $buf, 262144)) {
  $z->deflate($buf, $out);
  print $out if length $out;
}
$z->flush($out);
print $out;
close($find);
exit($? >> 8);
