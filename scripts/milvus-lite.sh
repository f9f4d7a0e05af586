#!/usr/bin/env bash
# Milvus Lite on loopback: the semantic cache's Milvus vector store, for its tests and for running proxy
# replicas by hand.
#
#   scripts/milvus-lite.sh start [PORT]   fetch and cache Milvus Lite if missing, start its gRPC server on
#                                         127.0.0.1:PORT (default 19530; data under the cache's run/), wait
#                                         until the port answers
#   scripts/milvus-lite.sh stop [PORT]    stop the server started by `start`
#
# Milvus Lite 3.x is Milvus's gRPC API served by Python (PyPI `milvus-lite`, with `pymilvus` for the protocol's
# messages and faiss-cpu for the indexes). It and its dependencies are installed with pip, pinned, into a
# directory of their own under ${XDG_CACHE_HOME:-~/.cache}/velollm, keyed by version; nothing is installed
# into the system's Python.
set -euo pipefail

CACHE=${VELOLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/velollm}
VERSION=3.2.2
# Every package, pinned: milvus-lite, pymilvus (its generated protobuf modules) and what they import.
PACKAGES=(
  "milvus-lite==$VERSION" pymilvus==3.0.2 faiss-cpu==1.15.1 grpcio==1.85.3 protobuf==7.36.2 numpy==2.4.6
  pyarrow==26.0.1 pandas==3.1.1 python-dateutil==4.0.0 tzdata==2026.6 orjson==3.13.0 python-dotenv==1.2.4
  cachetools==8.0.2 requests==2.34.2 urllib3==2.8.0 idna==3.20 charset-normalizer==3.5.3
  certifi==2026.10.19.post1 packaging==26.4 typing_extensions==4.16.0
)
DIR=$CACHE/milvus-lite-$VERSION
RUN_DIR=$CACHE/run

log() { printf 'milvus-lite.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=pypi.sh
. "$(dirname "$0")/pypi.sh"

install() {
  [ -f "$DIR/.installed" ] && return 0
  log "fetching Milvus Lite $VERSION and its dependencies from PyPI (about 450 MB installed)"
  pip_target "$DIR" "${PACKAGES[@]}" || die "pip could not install ${PACKAGES[*]}"
  log "installed at $DIR"
}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  local port=$1
  install
  mkdir -p "$RUN_DIR"
  if answers "$port"; then log "a server already answers on 127.0.0.1:$port"; return 0; fi
  local data=$RUN_DIR/milvus-lite-$port
  rm -rf "$data"
  PYTHONPATH=$DIR nohup python3 -m milvus_lite server --data-dir "$data" --host 127.0.0.1 --port "$port" \
    >"$RUN_DIR/milvus-lite-$port.log" 2>&1 &
  echo $! >"$RUN_DIR/milvus-lite-$port.pid"
  for _ in $(seq 1 300); do
    if answers "$port"; then log "ready on milvus://127.0.0.1:$port"; return 0; fi
    kill -0 "$(cat "$RUN_DIR/milvus-lite-$port.pid")" 2>/dev/null \
      || die "milvus-lite exited: $(tail -n 3 "$RUN_DIR/milvus-lite-$port.log")"
    sleep 0.1
  done
  die "milvus-lite did not answer on port $port (log: $RUN_DIR/milvus-lite-$port.log)"
}

stop() {
  local port=$1 pidfile="$RUN_DIR/milvus-lite-$1.pid"
  [ -f "$pidfile" ] || { log "no server started by this script on port $port"; return 0; }
  kill "$(cat "$pidfile")" 2>/dev/null || true
  rm -f "$pidfile"
  rm -rf "$RUN_DIR/milvus-lite-$port"
}

case "${1:-}" in
  start) start "${2:-19530}" ;;
  stop) stop "${2:-19530}" ;;
  *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
