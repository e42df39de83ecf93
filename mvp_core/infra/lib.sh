# Shared shell helpers for dev_up.sh, dev_down.sh and test.sh. Sourced, never run.
# Everything here is idempotent: running a script twice is harmless.

KETTER_BUN_VERSION="1.4.5"   # keep in step with package.json "packageManager"
KETTER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KETTER_RUN_DIR="${KETTER_RUN_DIR:-$KETTER_ROOT/.run}"

KETTER_COMPOSE_FILE="$KETTER_ROOT/mvp_core/infra/docker-compose.yml"

# Colour only for a person at a terminal: never in logs, pipes or CI, nor when NO_COLOR is set
# (https://no-color.org) or the terminal is dumb.
if [ -t 2 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-dumb}" != dumb ]; then
  C_BOLD=$'\033[1m' C_ERR=$'\033[1;31m' C_OFF=$'\033[0m'
else
  C_BOLD="" C_ERR="" C_OFF=""
fi
log()  { printf '%s[ketter]%s %s\n' "$C_BOLD" "$C_OFF" "$*" >&2; }
die()  { printf '%s[ketter] error:%s %s\n' "$C_ERR" "$C_OFF" "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

# The project's version (package.json), for --version.
ketter_version() { sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$KETTER_ROOT/package.json" | head -n 1; }

# Handles --help/--version for a script whose usage text is $2 (name $1); any other argument is a
# usage error (exit 2). Ctrl-C and SIGTERM end the script with the conventional 130/143.
script_start() {
  local name="$1" usage="$2"; shift 2
  case "${1:-}" in
    "") ;;
    -h|--help) printf '%s\n' "$usage"; exit 0 ;;
    -V|--version) printf '%s %s\n' "$name" "$(ketter_version)"; exit 0 ;;
    *) printf '%s: unknown argument %s\n%s\n' "$name" "$1" "$usage" >&2; exit 2 ;;
  esac
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Reads the repository's .env the way Bun does for the processes (a variable already in the
# environment wins), so the defaults this script exports do not hide the file's values.
load_dotenv() {
  local file="$KETTER_ROOT/.env" line key value
  [ -f "$file" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    [[ "$line" =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
    key="${BASH_REMATCH[2]}" value="${BASH_REMATCH[3]}"
    [ -z "${!key+set}" ] || continue
    if [[ "$value" =~ ^\"(.*)\"[[:space:]]*$ || "$value" =~ ^\'(.*)\'[[:space:]]*$ ]]; then value="${BASH_REMATCH[1]}"
    else value="${value%%[[:space:]]#*}"; value="${value%"${value##*[![:space:]]}"}"
    fi
    export "$key=$value"
  done <"$file"
}

# True when a Docker engine answers.
docker_engine_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

# The Compose command this machine has: v2 (`docker compose`) when it answers, else v1
# (`docker-compose`, the only one Debian 12 packages); fails when neither works.
compose_cmd() {
  if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then echo "docker compose"
  elif command -v docker-compose >/dev/null 2>&1 && docker-compose version >/dev/null 2>&1; then echo "docker-compose"
  else return 1
  fi
}

# Which stack dev_up brings up: KETTER_STACK=native|compose when set, else compose when a Docker
# engine and a Compose command both answer, else native. Prints the choice; fails (with why) when
# compose is demanded but cannot run.
choose_stack() {
  case "${KETTER_STACK:-}" in
    native) echo native ;;
    compose)
      docker_engine_answers || die "KETTER_STACK=compose, but no Docker engine answers (docker info); unset KETTER_STACK for the native path"
      compose_cmd >/dev/null || die "KETTER_STACK=compose, but neither \`docker compose\` (v2) nor \`docker-compose\` (v1) works; apt-get install docker-compose"
      echo compose ;;
    "")
      if docker_engine_answers && compose_cmd >/dev/null; then echo compose; else echo native; fi ;;
    *) die "KETTER_STACK must be native or compose (got \"$KETTER_STACK\")" ;;
  esac
}

# True when GET http://$1/health answers 200, in plain bash (no curl or bun needed on the host).
http_health_ok() {
  local host="${1%:*}" port="${1##*:}"
  timeout 3 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "GET /health HTTP/1.0\r\nHost: %s\r\n\r\n" "$0" >&3
    read -r status <&3
    [[ "$status" == HTTP/1.?" 200"* ]]' "$host" "$port" 2>/dev/null
}

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
