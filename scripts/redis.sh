#!/usr/bin/env bash
# Debian's redis-server on loopback, for the proxy's shared-cache tests and for running replicas by hand.
#
#   scripts/redis.sh start [PORT]    install redis-server with apt if missing, start it on 127.0.0.1:PORT
#                                    (default 6379, no persistence), wait until it answers PING
#   scripts/redis.sh stop [PORT]     stop the server started by `start`
#
# State (pid file, log) lives under ${XDG_CACHE_HOME:-~/.cache}/velollm/run.
set -euo pipefail

CACHE=${VELOLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/velollm}
RUN_DIR=$CACHE/run

log() { printf 'redis.sh: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

install() {
  command -v redis-server >/dev/null && return 0
  log "installing redis-server with apt-get"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
}

ping() { # ping PORT: true when the server answers PONG (redis-cli comes with redis-server)
  [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = "PONG" ]
}

start() {
  local port=$1
  install
  mkdir -p "$RUN_DIR"
  if ping "$port"; then log "a server already answers on 127.0.0.1:$port"; return 0; fi
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$RUN_DIR/redis-$port.pid" --logfile "$RUN_DIR/redis-$port.log" --dir "$RUN_DIR"
  for _ in $(seq 1 100); do
    if ping "$port"; then log "ready on redis://127.0.0.1:$port"; return 0; fi
    sleep 0.1
  done
  log "error: redis-server did not answer on port $port (log: $RUN_DIR/redis-$port.log)"
  exit 1
}

stop() {
  local port=$1 pidfile="$RUN_DIR/redis-$1.pid"
  [ -f "$pidfile" ] || { log "no server started by this script on port $port"; return 0; }
  kill "$(cat "$pidfile")" 2>/dev/null || true
  rm -f "$pidfile"
}

case "${1:-}" in
  start) start "${2:-6379}" ;;
  stop) stop "${2:-6379}" ;;
  *) sed -n '2,8p' "$0" >&2; exit 2 ;;
esac
