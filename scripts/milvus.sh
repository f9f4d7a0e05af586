#!/usr/bin/env bash
# A Milvus server on loopback: Milvus 2.3.5 standalone (the Go and C++ server, with its etcd embedded and its
# data on local disk), for the semantic cache's Milvus store tests beside Milvus Lite, and for running proxy
# replicas by hand.
#
#   scripts/milvus.sh start [PORT]   fetch and cache Milvus if missing, start it with its gRPC API on
#                                    127.0.0.1:PORT (default 19541) and its internal services on PORT+1 to
#                                    PORT+10 (data under the cache's run/), wait until it is serving
#   scripts/milvus.sh stop [PORT]    stop the server started by `start`
#
# PyPI's `milvus` 2.3.5 ships the server's binary and libraries (compressed) with a small Python launcher
# that writes its configuration and starts `milvus run standalone`. It has no dependencies. It is installed
# pinned into a directory of its own under ${XDG_CACHE_HOME:-~/.cache}/velollm, keyed by version; nothing is
# installed into the system's Python. It is a real Milvus server, where Milvus Lite 3.x (scripts/milvus-lite.sh)
# is the same API served by Python: for instance, it loads a collection in the background.
set -euo pipefail

CACHE=${VELOLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/velollm}
VERSION=2.3.5
DIR=$CACHE/milvus-$VERSION
RUN_DIR=$CACHE/run

log() { printf 'milvus.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=pypi.sh
. "$(dirname "$0")/pypi.sh"

install() {
  [ -f "$DIR/.installed" ] && return 0
  log "fetching Milvus $VERSION from PyPI (58 MB)"
  pip_target "$DIR" "milvus==$VERSION" || die "pip could not install milvus==$VERSION"
  log "installed at $DIR"
}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  local port=$1
  install
  mkdir -p "$RUN_DIR"
  if answers "$port"; then log "a server already answers on 127.0.0.1:$port"; return 0; fi
  local data=$RUN_DIR/milvus-$port log_file=$RUN_DIR/milvus-$port.log
  rm -rf "$data"
  # Every port named, so that nothing falls back on Milvus's defaults (19530, 19531, 2379, …), which other
  # servers of the tests may hold. Warnings only: at its default level (info) the server logs every insert,
  # twice, some 80 MB for every 10,000 inserts.
  PYTHONPATH=$DIR nohup python3 -c 'import sys; sys.argv[0] = "milvus-server"; import milvus; milvus.main()' \
    --extra-config log.level=warn \
    --data "$data" --proxy-port "$port" --etcd-port $((port + 1)) --root-coord-port $((port + 2)) \
    --proxy-internal-port $((port + 3)) --query-coord-port $((port + 4)) --query-node-port $((port + 5)) \
    --index-coord-port $((port + 6)) --index-node-port $((port + 7)) --data-coord-port $((port + 8)) \
    --data-node-port $((port + 9)) >"$log_file" 2>&1 &
  echo $! >"$RUN_DIR/milvus-$port.pid"
  # The launcher prints its banner once the server answers its own health check.
  for _ in $(seq 1 1200); do
    if grep -q "Welcome to use Milvus" "$log_file" 2>/dev/null && answers "$port"; then
      log "ready on milvus://127.0.0.1:$port"
      return 0
    fi
    kill -0 "$(cat "$RUN_DIR/milvus-$port.pid")" 2>/dev/null \
      || die "milvus exited: $(tail -n 5 "$log_file") (logs: $data/logs)"
    sleep 0.1
  done
  die "milvus did not start on port $port within 2 minutes (logs: $log_file, $data/logs)"
}

stop() {
  local port=$1 pidfile="$RUN_DIR/milvus-$1.pid"
  [ -f "$pidfile" ] || { log "no server started by this script on port $port"; return 0; }
  # SIGINT: the launcher stops the server it started, then exits.
  kill -INT "$(cat "$pidfile")" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$(cat "$pidfile")" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$(cat "$pidfile")" 2>/dev/null || true
  pkill -9 -f "$RUN_DIR/milvus-$port/bin/milvus run" 2>/dev/null || true
  rm -f "$pidfile"
  rm -rf "$RUN_DIR/milvus-$port"
}

case "${1:-}" in
  start) start "${2:-19541}" ;;
  stop) stop "${2:-19541}" ;;
  *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
