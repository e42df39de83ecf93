#!/usr/bin/env bash
# Stops exactly what dev_up.sh started (its pid files and markers in the run folder), nothing else.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
script_start dev_down.sh "usage: bash mvp_core/infra/dev_down.sh [--help | --version]
Stops what dev_up.sh started (compose services, or the API, worker, Redis and PostgreSQL it
launched), found through its run folder (KETTER_RUN_DIR, default .run/); nothing else.
exit status: 0 stopped (or nothing to stop), 1 failed, 2 bad arguments, 130/143 interrupted" "$@"

[ -d "$KETTER_RUN_DIR" ] || { log "nothing to stop ($KETTER_RUN_DIR does not exist)"; exit 0; }

# TERM first (the worker releases running jobs within its grace period), KILL after $2 seconds.
stop_pidfile() {
  local pidfile="$1" grace="${2:-40}" pid i
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $(basename "$pidfile" .pid) (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

if [ -f "$KETTER_RUN_DIR/compose.started" ]; then
  # The Compose command dev_up used (v2 or v1), else whichever this machine has now.
  compose=$(cat "$KETTER_RUN_DIR/compose.started")
  case "$compose" in "docker compose"|docker-compose) ;; *) compose=$(compose_cmd) || die "cannot stop the compose stack: no Compose command works" ;; esac
  # `down` must render the file, which names the secret's file; it reads nothing from it.
  KETTER_COMPOSE_SECRET_FILE="${KETTER_COMPOSE_SECRET_FILE:-$KETTER_RUN_DIR/compose/secret_key}" \
    $compose -f "$KETTER_COMPOSE_FILE" down
  rm -f "$KETTER_RUN_DIR/compose.started"
fi

stop_pidfile "$KETTER_RUN_DIR/worker.pid"
stop_pidfile "$KETTER_RUN_DIR/api.pid" 10
stop_pidfile "$KETTER_RUN_DIR/redis.pid" 10

if [ -f "$KETTER_RUN_DIR/postgres.started" ]; then
  log "stopping PostgreSQL"
  bindir=$(pg_bindir) && as_postgres "$bindir/pg_ctl" -D "$(cat "$KETTER_RUN_DIR/postgres.started")" -m fast -w stop >/dev/null || log "warning: PostgreSQL did not stop cleanly"
  rm -f "$KETTER_RUN_DIR/postgres.started"
fi
log "stopped"
