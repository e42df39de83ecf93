# Prelude of every perl program Ketter runs on an SSH host (remote_shell.ts puts it first).
#
# Paths are relative to the portal's root, which root_open opens by name (links in the root's own
# path are the administrator's choice). Below it nothing is resolved by name from a folder that was
# not itself opened this way: each component is opened relative to the folder before it, with
# O_NOFOLLOW (and O_DIRECTORY for folders). A symbolic link at any component, one swapped in while
# Ketter works included, fails that open (ELOOP) and the program stops with "ketter-escape: <path>"
# on stderr, exit 5. There is no check-then-use window: the open is the check.
use strict; use warnings;
use Fcntl qw(O_RDONLY O_WRONLY O_CREAT O_TRUNC O_NOFOLLOW O_DIRECTORY O_NONBLOCK F_SETFL S_ISDIR S_ISREG S_ISLNK);
our ($ROOT, @ROOT_ID, $CWD, $CWD_DEPTH);

sub escape { print STDERR "ketter-escape: $_[0]\n"; exit 5 }

# Opens the portal root and makes it the working folder.
sub root_open {
  my $r = shift;
  sysopen($ROOT, $r, O_RDONLY | O_DIRECTORY) or die "$r: $!\n";
  @ROOT_ID = (stat $ROOT)[0, 1];
  chdir($ROOT) or die "$r: $!\n";
  ($CWD, $CWD_DEPTH) = ("", 0);
}

# "a/b" below "dir" (either may be "").
sub under { my ($a, $b) = @_; $a eq "" ? $b : $b eq "" ? $a : "$a/$b" }

# Makes the folder $dir (relative to the root) the working folder, each component opened from the
# one before without following links; with $make, missing components are created (mode 0700).
# The folder entered last is kept for the next path in it (entering costs a few system calls per
# component, measured 3-4x the cost of the file's own open); before it is used again its real
# ancestors ("..", never a link) must still lead to the root, so a folder moved out of the root
# meanwhile is refused as well, and it must still exist.
sub enter {
  my ($dir, $make) = @_;
  # A folder removed since (a staging folder made anew under the same name: no links left to it)
  # is entered again; its leftover handle would create files nowhere.
  if (defined $CWD && $CWD eq $dir && ((stat("."))[3] // 0) > 0) {
    return 1 unless $CWD_DEPTH;
    my @id = stat("../" x $CWD_DEPTH);
    return 1 if @id && $id[0] == $ROOT_ID[0] && $id[1] == $ROOT_ID[1];
    escape($dir);
  }
  my @parts = grep { $_ ne "" && $_ ne "." } split m{/}, $dir;
  escape($dir) if grep { $_ eq ".." } @parts;
  undef $CWD;
  chdir($ROOT) or die "root: $!\n";
  my $at = "";
  for my $c (@parts) {
    $at = under($at, $c);
    my ($d, $tries) = (undef, 0);
    until (sysopen($d, $c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) {
      my ($err, $loop, $missing) = ("$!", $!{ELOOP}, $!{ENOENT});
      escape($at) if $loop || -l $c;
      die "$at: $err\n" unless $make && $missing && $tries++ < 3;
      mkdir($c, 0700) or $!{EEXIST} or die "$at: $!\n";
    }
    chdir($d) or die "$at: $!\n";
  }
  ($CWD, $CWD_DEPTH) = ($dir, scalar @parts);
  1;
}

# Opens the file $rel below the root with $flags (O_NOFOLLOW added), its folder entered as above.
sub beneath {
  my ($rel, $flags, $mode, $make) = @_;
  my $i = rindex($rel, "/");
  enter($i < 0 ? "" : substr($rel, 0, $i), $make);
  my $name = substr($rel, $i + 1);
  my $f;
  return $f if sysopen($f, $name, $flags | O_NOFOLLOW, $mode // 0600);
  escape($rel) if $!{ELOOP};
  die "$rel: $!\n";
}

# Opens the file $rel for reading; anything but a regular file (a fifo swapped in would block) is refused.
sub open_file {
  my $rel = shift;
  my $f = beneath($rel, O_RDONLY | O_NONBLOCK);
  -f $f or die "$rel: not a regular file\n";
  fcntl($f, F_SETFL, 0) or die "$rel: $!\n";
  $f;
}

# sshd hands an exec'd command its input through a pipe of 64 KiB, so sshd and the writer took
# turns every 64 KiB; growing the pipe to 1 MiB (F_SETPIPE_SZ, Linux; elsewhere, or over a user's
# pipe quota, the call fails and nothing changes) lets them overlap. 1 GiB pushed on loopback,
# interleaved with tar|ssh (median 1.75 s): 2.29 s before, 1.65 s after, and the remote's CPU
# (sshd and writer) fell from ~2.0 to ~1.4 s. For reads the pipe made no difference.
sub grow_stdin { fcntl(STDIN, 1031, 1048576) }
