#!/usr/bin/env bash
# Brings the Ketter dev stack up: Docker Compose when a Docker engine answers, otherwise the native
# path (this machine's PostgreSQL and Redis, then the API and worker as background processes).
# Running it twice is harmless: whatever already runs is reused. dev_down.sh stops what this started.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export DATABASE_URL="${DATABASE_URL:-postgres://ketter:ketter@127.0.0.1:5432/ketter}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export API_HOST="${API_HOST:-127.0.0.1}"
export API_PORT="${API_PORT:-8080}"
API_URL="http://$API_HOST:$API_PORT"
mkdir -p "$KETTER_RUN_DIR"

# The key that encrypts portal secrets must outlive restarts, or stored secrets become unreadable.
# Processes get the file's path, not the key, so it never shows in their environment; any process
# started later from this checkout finds the same file (config.ts).
if [ -z "${KETTER_SECRET_KEY:-}" ] && [ -z "${KETTER_SECRET_KEY_FILE:-}" ]; then
  [ -s "$KETTER_RUN_DIR/secret_key" ] || (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$KETTER_RUN_DIR/secret_key")
  export KETTER_SECRET_KEY_FILE="$KETTER_RUN_DIR/secret_key"
fi

compose_up() {
  log "Docker engine found: docker compose up"
  # Compose passes the key itself (docker-compose.yml interpolates KETTER_SECRET_KEY).
  [ -n "${KETTER_SECRET_KEY:-}" ] || KETTER_SECRET_KEY="$(cat "$KETTER_SECRET_KEY_FILE")"
  export KETTER_SECRET_KEY
  docker compose -f "$KETTER_ROOT/mvp_core/infra/docker-compose.yml" up -d --build --wait
  touch "$KETTER_RUN_DIR/compose.started"
}

start_postgres() {
  local host port user password db bindir data
  host=$(url_part "$DATABASE_URL" host); port=$(url_part "$DATABASE_URL" port); port=${port:-5432}
  user=$(url_part "$DATABASE_URL" user); password=$(url_part "$DATABASE_URL" password); db=$(url_part "$DATABASE_URL" db)
  if port_open "$host" "$port"; then
    log "PostgreSQL already answers on $host:$port: reusing it"
    return 0
  fi
  case "$host" in 127.*|localhost) ;; *) die "PostgreSQL at $host:$port does not answer and is not local: start it or fix DATABASE_URL" ;; esac
  is_root && ensure_packages postgresql
  bindir=$(pg_bindir) || die "PostgreSQL server binaries not found: apt-get install postgresql (as root)"
  data=$(pg_datadir)
  if [ ! -s "$data/PG_VERSION" ]; then
    log "creating a PostgreSQL cluster in $data (role $user, database $db)"
    mkdir -p "$data"
    is_root && chown postgres:postgres "$data"
    local pwfile="$data.pw"
    (umask 077 && printf '%s\n' "$password" >"$pwfile")
    is_root && chown postgres "$pwfile"
    as_postgres "$bindir/initdb" -D "$data" -U "$user" --pwfile="$pwfile" --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C >/dev/null
    rm -f "$pwfile"
  fi
  log "starting PostgreSQL on $host:$port"
  # The socket lives in the data folder: the postgres user can always write there.
  as_postgres "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-p $port -k $data -c listen_addresses=$host" start >/dev/null
  echo "$data" >"$KETTER_RUN_DIR/postgres.started"
  as_postgres "$bindir/psql" -h "$data" -p "$port" -U "$user" -d postgres -tAc "select 1 from pg_database where datname = '$db'" | grep -q 1 ||
    as_postgres "$bindir/createdb" -h "$data" -p "$port" -U "$user" "$db"
}

start_redis() {
  local host port
  host=$(url_part "$REDIS_URL" host); port=$(url_part "$REDIS_URL" port); port=${port:-6379}
  if port_open "$host" "$port"; then
    log "Redis already answers on $host:$port: reusing it"
    return 0
  fi
  is_root && ensure_packages redis-server
  command -v redis-server >/dev/null || die "redis-server not found: apt-get install redis-server (as root)"
  mkdir -p "$KETTER_RUN_DIR/redis"
  log "starting Redis on $host:$port (append-only persistence)"
  # appendonly keeps the queue across restarts; noeviction because a queue must never drop keys.
  redis-server --bind "$host" --port "$port" --daemonize yes --appendonly yes --appendfsync everysec \
    --maxmemory-policy noeviction --dir "$KETTER_RUN_DIR/redis" \
    --pidfile "$KETTER_RUN_DIR/redis.pid" --logfile "$KETTER_RUN_DIR/redis.log"
  wait_until port_open_redis "$host:$port" 10 || die "Redis did not start: see $KETTER_RUN_DIR/redis.log"
}
port_open_redis() { port_open "${1%:*}" "${1#*:}"; }

api_healthy() { bun -e "const r = await fetch('$API_URL/health', { signal: AbortSignal.timeout(2000) }).catch(() => null); process.exit(r?.ok ? 0 : 1)" 2>/dev/null; }

# Starts `bun run NAME` in the background (own session, so it outlives this shell) unless it already runs.
start_process() {
  local name="$1" entry="$2" pidfile="$KETTER_RUN_DIR/$1.pid"
  [ -f "$KETTER_ROOT/$entry" ] || { log "$name: $entry does not exist yet, skipped"; return 0; }
  if pid_alive "$pidfile"; then log "$name already running (pid $(cat "$pidfile"))"; return 0; fi
  log "starting $name (log: $KETTER_RUN_DIR/$name.log)"
  # exec keeps one pid from subshell to bun (so the pid file names bun itself), and the redirections
  # come first so no descriptor of this script's callers stays open in the background process.
  (cd "$KETTER_ROOT" && exec setsid bun "$entry" >>"$KETTER_RUN_DIR/$name.log" 2>&1 </dev/null) &
  echo $! >"$pidfile"
}

native_up() {
  log "no Docker engine: native path (this machine's PostgreSQL and Redis)"
  is_root && ensure_packages postgresql redis-server openssh-client rsync zip unzip curl
  ensure_bun
  ensure_node_modules
  start_postgres
  start_redis
  log "applying migrations"
  (cd "$KETTER_ROOT" && bun run --silent migrate)
  start_process api mvp_core/app/main.ts
  start_process worker mvp_core/worker/main.ts
  if [ -f "$KETTER_RUN_DIR/api.pid" ]; then
    wait_until api_healthy "" 30 || die "the API did not answer on $API_URL/health: see $KETTER_RUN_DIR/api.log"
  fi
}

if docker info >/dev/null 2>&1; then
  compose_up
  # Inside the api container: Postgres and Redis are not published to the host, and the smoke
  # fixture must sit on the /data volume the worker shares.
  [ "${KETTER_SKIP_DKU:-0}" = 1 ] || docker compose -f "$KETTER_ROOT/mvp_core/infra/docker-compose.yml" exec -T api \
    bun run dku --smoke-dir /data/dku-smoke || die "the DKU found a problem: see the report above"
else
  native_up
  if [ "${KETTER_SKIP_DKU:-0}" != 1 ]; then
    log "running the DKU"
    (cd "$KETTER_ROOT" && KETTER_API_URL="$API_URL" bun run --silent dku) || die "the DKU found a problem: see the report above"
  fi
fi
log "Ketter is up. Swagger UI: $API_URL/swagger   (stop with: bash mvp_core/infra/dev_down.sh)"
