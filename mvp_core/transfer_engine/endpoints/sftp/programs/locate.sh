# Where a path really is (remote_location.ts): walks up from the path to the nearest existing entry,
# resolves its parent's links (not the entry's own: a link is located as itself), then prints
# NUL-separated key/value pairs: kernel boot id, mount namespace, root identity, real path, missing
# components, file system type, and "id" with device:inode of the entry and each ancestor.
# Argument: the absolute path.
p=$1; m=
while [ "$p" != / ] && [ ! -e "$p" ] && [ ! -L "$p" ]; do m="${p##*/}${m:+/$m}"; p="${p%/*}"; p="${p:-/}"; done
if [ "$p" = / ]; then r=/; else d="${p%/*}"; d=$(cd -P -- "${d:-/}" && pwd -P) || exit 3; r="${d%/}/${p##*/}"; fi
if [ -L "$r" ]; then t="${r%/*}"; t="${t:-/}"; else t="$r"; fi
printf 'kernel\0%s\0mntns\0%s\0root\0%s\0real\0%s\0missing\0%s\0fstype\0%s\0' "$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)" "$(readlink /proc/self/ns/mnt 2>/dev/null)" "$(stat -c %d:%i / 2>/dev/null)" "$r" "$m" "$(stat -f -c %T -- "$t" 2>/dev/null)"
c="$r"; while :; do printf 'id\0%s\0' "$(stat -c %d:%i -- "$c")" || exit 4; [ "$c" = / ] && break; c="${c%/*}"; c="${c:-/}"; done
