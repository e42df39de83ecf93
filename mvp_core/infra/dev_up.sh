#!/usr/bin/env bash
# Brings the Ketter dev stack up: Docker Compose when a Docker engine and Compose (v2 or v1) answer,
# otherwise the native path (this machine's PostgreSQL and Redis, then the API and worker as
# background processes); KETTER_STACK=native|compose chooses explicitly. Running it twice is
# harmless: whatever already runs is reused. dev_down.sh stops what this started.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
script_start dev_up.sh "usage: bash mvp_core/infra/dev_up.sh [--help | --version]
Brings Ketter up: PostgreSQL, Redis, migrations, the API and a worker, then runs the DKU.
  KETTER_STACK=compose  Docker Compose (mvp_core/infra/docker-compose.yml; v2 or v1)
  KETTER_STACK=native   this machine's PostgreSQL and Redis, processes in the background (.run/)
  (unset)               compose when a Docker engine and Compose answer, native otherwise
  KETTER_SKIP_DKU=1     skip the DKU at the end
Configuration: the variables of .env.example (DATABASE_URL, REDIS_URL, API_HOST, API_PORT, …).
Stop with: bash mvp_core/infra/dev_down.sh
exit status: 0 up, 1 failed (the message says why), 2 bad arguments, 130/143 interrupted" "$@"

load_dotenv
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
  local compose secret_dir="$KETTER_RUN_DIR/compose"
  compose=$(compose_cmd)
  log "Docker engine and Compose found: $compose up (mvp_core/infra/docker-compose.yml)"
  # The key reaches the containers as a compose secret: a file mounted at /run/secrets, which
  # `docker inspect` does not show. World-readable inside an owner-only folder, because the
  # container's user (bun, uid 1000) reads the bind-mounted file with the host's permissions.
  mkdir -p "$secret_dir" && chmod 700 "$secret_dir"
  rm -f "$secret_dir/secret_key"
  if [ -n "${KETTER_SECRET_KEY:-}" ]; then printf '%s\n' "$KETTER_SECRET_KEY" >"$secret_dir/secret_key"
  else cat "$KETTER_SECRET_KEY_FILE" >"$secret_dir/secret_key"
  fi
  chmod 444 "$secret_dir/secret_key"
  export KETTER_COMPOSE_SECRET_FILE="$secret_dir/secret_key"
  # No `up --wait`: Compose v1 lacks it; the API's /health on the published port says when it is up.
  $compose -f "$KETTER_COMPOSE_FILE" up -d --build
  echo "$compose" >"$KETTER_RUN_DIR/compose.started"
  wait_until http_health_ok "$API_HOST:$API_PORT" 180 || die "the API did not answer on $API_URL/health: see \`$compose -f $KETTER_COMPOSE_FILE logs api\`"
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
  log "native path (this machine's PostgreSQL and Redis)${KETTER_STACK:+, as KETTER_STACK asks}"
  is_root && ensure_packages postgresql redis-server openssh-client rsync zip unzip curl libxxhash0
  ensure_bun
  ensure_node_modules
  start_postgres
  start_redis
  log "applying migrations"
  (cd "$KETTER_ROOT" && bun mvp_core/db/migrate_cli.ts up)
  start_process api mvp_core/app/main.ts
  start_process worker mvp_core/worker/main.ts
  if [ -f "$KETTER_RUN_DIR/api.pid" ]; then
    wait_until http_health_ok "$API_HOST:$API_PORT" 30 || die "the API did not answer on $API_URL/health: see $KETTER_RUN_DIR/api.log"
  fi
}

stack=$(choose_stack) || exit 1
if [ "$stack" = compose ]; then
  compose_up
  # Inside the api container: Postgres and Redis are not published to the host, and the smoke
  # fixture must sit on the /data volume the worker shares.
  [ "${KETTER_SKIP_DKU:-0}" = 1 ] || $(compose_cmd) -f "$KETTER_COMPOSE_FILE" exec -T api \
    bun mvp_core/dku/main.ts --smoke-dir /data/dku-smoke || die "the DKU found a problem: see the report above"
else
  if docker_engine_answers && [ -z "${KETTER_STACK:-}" ]; then
    log "a Docker engine answers, but neither \`docker compose\` (v2) nor \`docker-compose\` (v1) works"
  fi
  native_up
  if [ "${KETTER_SKIP_DKU:-0}" != 1 ]; then
    log "running the DKU"
    (cd "$KETTER_ROOT" && KETTER_API_URL="$API_URL" bun mvp_core/dku/main.ts) || die "the DKU found a problem: see the report above"
  fi
fi
log "Ketter is up. Swagger UI: $API_URL/swagger   (stop with: bash mvp_core/infra/dev_down.sh)"
