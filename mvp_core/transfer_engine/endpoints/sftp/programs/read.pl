# Streams a file (or a range of it) from an offset: the file is opened below the root as the
# prelude says, then `cat` (or, for a range, `head -c`) reads it from that handle (its standard
# input), so no path is resolved after the open. Arguments: root, path, offset, length ("" = to the end).
my ($root, $path, $start, $length) = @ARGV;
root_open($root);
my $f = open_file($path);
open(STDIN, "<&", $f) or die "$path: $!\n";
close $f;
sysseek(STDIN, $start, 0) or die "$path: $!\n";
if (defined $length && $length ne "") { exec { "head" } "head", "-c", $length or die "head: $!\n" }
exec { "cat" } "cat" or die "cat: $!\n";
