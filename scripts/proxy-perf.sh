#!/usr/bin/env bash
# What `velollm proxy` costs, beside LiteLLM's proxy in the same run (method and figures: docs/performance.md,
# "The proxy"). Builds velollm in release mode, installs LiteLLM's proxy from PyPI into a venv cached under
# ${VELOLLM_CACHE:-${XDG_CACHE_HOME:-~/.cache}/velollm}/litellm-VERSION, then runs scripts/proxy_perf.py
# (about 3 minutes on 2 cores). Results: results/proxy-perf/ (proxy-perf.md, proxy-perf.json, every run's
# result document and log).
#
#   scripts/proxy-perf.sh                 everything
#   NO_LITELLM=1 scripts/proxy-perf.sh    without LiteLLM
#   PROXY_PERF_SCALE=0.25 …               fewer requests (a quick look)
set -euo pipefail
cd "$(dirname "$0")/.."

# 1.106.12: the newest whose [proxy] extra resolves on PyPI here (1.107.0 was a compromised release)
LITELLM_VERSION=${LITELLM_VERSION:-1.106.12}
CACHE=${VELOLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/velollm}
VENV=$CACHE/litellm-$LITELLM_VERSION

scripts/setup.sh
cargo build --release --locked -p velollm
if [ -z "${NO_LITELLM:-}" ]; then
  if [ ! -x "$VENV/bin/litellm" ]; then
    echo "proxy-perf.sh: installing litellm[proxy]==$LITELLM_VERSION into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "litellm[proxy]==$LITELLM_VERSION"
  fi
  export LITELLM="$VENV/bin/litellm"
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
export VELOLLM="$PWD/target/release/velollm"
exec python3 scripts/proxy_perf.py
