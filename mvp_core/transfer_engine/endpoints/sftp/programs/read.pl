# Streams a file from an offset: the file is opened below the root as the prelude says, then `cat`
# reads it from that handle (its standard input), so no path is resolved after the open.
# Arguments: root, path, offset.
my ($root, $path, $start) = @ARGV;
root_open($root);
my $f = open_file($path);
open(STDIN, "<&", $f) or die "$path: $!\n";
close $f;
sysseek(STDIN, $start, 0) or die "$path: $!\n";
exec { "cat" } "cat" or die "cat: $!\n";
