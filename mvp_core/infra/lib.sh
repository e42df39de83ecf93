# Shared shell helpers for dev_up.sh, dev_down.sh and test.sh. Sourced, never run.
# Everything here is idempotent: running a script twice is harmless.

KETTER_BUN_VERSION="1.4.5"   # keep in step with package.json "packageManager"
KETTER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KETTER_RUN_DIR="${KETTER_RUN_DIR:-$KETTER_ROOT/.run}"

log()  { printf '\033[1m[ketter]\033[0m %s\n' "$*" >&2; }
die()  { printf '\033[1;31m[ketter] error:\033[0m %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

# Installs Debian packages that are missing; as non-root, says which ones to install instead.
ensure_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! is_root; then
    die "missing OS packages: ${missing[*]} — install them (sudo apt-get install ${missing[*]}) or run as root"
  fi
  log "installing OS packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

# Puts the pinned Bun on PATH, installing it from npm when missing or of another version.
ensure_bun() {
  if command -v bun >/dev/null 2>&1 && [ "$(bun --version 2>/dev/null)" = "$KETTER_BUN_VERSION" ]; then return 0; fi
  command -v npm >/dev/null 2>&1 || die "npm not found: install Node.js and npm first (apt-get install nodejs npm)"
  log "installing bun@$KETTER_BUN_VERSION from npm"
  npm install -g --silent "bun@$KETTER_BUN_VERSION" >/dev/null 2>&1 || die "npm install -g bun@$KETTER_BUN_VERSION failed"
  hash -r
  PATH="$(npm prefix -g)/bin:$PATH"
  [ "$(bun --version 2>/dev/null)" = "$KETTER_BUN_VERSION" ] || die "bun $KETTER_BUN_VERSION is not on PATH after npm install (found: $(command -v bun || echo none))"
}

# Installs the project's JavaScript dependencies exactly as locked.
ensure_node_modules() {
  (cd "$KETTER_ROOT" && bun install --frozen-lockfile >/dev/null) || die "bun install failed"
}

# The newest PostgreSQL server binaries directory installed by Debian.
pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] || return 1
  echo "$d"
}

# Where dev_up keeps its own PostgreSQL cluster. As root the postgres user must be able to reach it,
# which a checkout under /root does not allow, so root's clusters live under /var/lib/postgresql.
pg_datadir() {
  if is_root; then
    echo "/var/lib/postgresql/ketter-$(printf '%s' "$KETTER_RUN_DIR" | md5sum | cut -c1-12)"
  else
    echo "$KETTER_RUN_DIR/postgres"
  fi
}

# Runs a command as the postgres OS user when we are root (Postgres refuses to run as root).
as_postgres() {
  if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

# URL parts: url_part URL (user|password|host|port|db). Plain-shell parsing of postgres:// and redis:// URLs.
url_part() {
  local url="$1" part="$2" rest auth hostport path
  rest="${url#*://}"
  path=""; [[ "$rest" == */* ]] && path="${rest#*/}"
  rest="${rest%%/*}"
  auth=""; [[ "$rest" == *@* ]] && auth="${rest%@*}"
  hostport="${rest##*@}"
  case "$part" in
    user) echo "${auth%%:*}" ;;
    password) [[ "$auth" == *:* ]] && echo "${auth#*:}" || echo "" ;;
    host) echo "${hostport%%:*}" ;;
    port) [[ "$hostport" == *:* ]] && echo "${hostport##*:}" || echo "" ;;
    db) echo "${path%%\?*}" ;;
  esac
}

# True when a TCP port answers on host.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# Waits up to $3 seconds for `$1 $2` (a command and its argument) to succeed.
wait_until() {
  local fn="$1" arg="$2" secs="${3:-30}" i
  for ((i = 0; i < secs * 10; i++)); do
    "$fn" "$arg" && return 0
    sleep 0.1
  done
  return 1
}

# True when the process in pid file $1 is alive.
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
