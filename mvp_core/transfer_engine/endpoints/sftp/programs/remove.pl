# Removes a file or a whole tree: its folder is entered below the root as the prelude says, then
# `rm -rf` removes the entry by its bare name (rm never follows a link inside the tree it removes).
# Arguments: root, path.
my ($root, $path) = @ARGV;
root_open($root);
my $i = rindex($path, "/");
enter($i < 0 ? "" : substr($path, 0, $i));
exec { "rm" } "rm", "-rf", "--", "./" . substr($path, $i + 1) or die "rm: $!\n";
