#!/usr/bin/env bash
# The main job, from a fresh clone: build velollm, install and start a local llama-server with
# SmolLM2-135M-Instruct (cached after the first time), run the standard suite against it and print the summary.
# The result document is written to results/standard.json; the server keeps running (stop it with
# `scripts/llama-server.sh stop`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
port=${VELOLLM_PORT:-8080}
scripts/llama-server.sh start "$port"
cargo build --release --locked -p velollm
mkdir -p results
exec target/release/velollm bench --url "http://127.0.0.1:$port" --model smollm2 --scenario standard \
  -o results/standard.json --records results/standard.jsonl "$@"
