# Lists a folder's tree: the folder is entered below the root as the prelude says, then GNU find
# walks it from there ("."). find never follows a link (-P, the default) and descends through
# handles, checking each folder it enters is the one it listed. Arguments: root, folder, -printf format.
my ($root, $dir, $format) = @ARGV;
root_open($root);
enter($dir);
exec { "find" } "find", ".", "-mindepth", "1", "-printf", $format or die "find: $!\n";
