#!/usr/bin/env bash
# The main job, from a fresh clone: build velollm, install and start a local llama-server with
# SmolLM2-135M-Instruct (cached after the first time), run the standard suite against it and print the summary.
# The result document is written to results/standard.json, with an HTML and a Markdown report beside it; when an
# earlier run exists it is kept as results/previous.json and compared with the new one. Every run is also
# indexed in the history database (`velollm history`). The result also carries the server's RSS/CPU and its own
# Prometheus metrics per step. The server keeps running (stop it with
# `scripts/llama-server.sh stop`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
port=${VELOLLM_PORT:-8080}
scripts/llama-server.sh start "$port"
cargo build --release --locked -p velollm
mkdir -p results
velollm=target/release/velollm
[ -f results/standard.json ] && cp results/standard.json results/previous.json
status=0
# The server's RSS and CPU are sampled when its pid is known; its /metrics are scraped around every step.
server_pid=()
pidfile=${VELOLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/velollm}/run/llama-server-$port.pid
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then server_pid=(--server-pid "$(cat "$pidfile")"); fi
"$velollm" bench --url "http://127.0.0.1:$port" --model smollm2 --scenario standard "${server_pid[@]}" \
  -o results/standard.json --records results/standard.jsonl "$@" || status=$?
if [ -f results/standard.json ]; then
  "$velollm" report results/standard.json --html results/standard.html --md results/standard.md
  if [ -f results/previous.json ]; then
    echo
    "$velollm" compare results/previous.json results/standard.json || true
  fi
fi
exit "$status"
