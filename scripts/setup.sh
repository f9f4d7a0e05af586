#!/usr/bin/env bash
# Check and install what building velollm needs: a Rust toolchain (>= 1.88) with rustfmt and clippy, and a C
# compiler for the crates that compile C (ring, SQLite), and Debian's Chromium, which the tests use to open
# the HTML report headless. Everything comes from apt: when no recent enough Rust is
# installed, Debian's rustc-web / cargo-web / rustfmt-web / rust-web-clippy packages (Rust 1.9x on Debian 12)
# provide one. A rustup toolchain, when present, is used as it is.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_install() {
  echo "setup: installing $* with apt-get" >&2
  [ -n "$apt_updated" ] || { as_root apt-get update -qq; apt_updated=1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
recent_rust() {
  command -v cargo >/dev/null && command -v rustc >/dev/null || return 1
  local version; version=$(rustc --version | awk '{print $2}')
  [ "$(printf '%s\n1.88.0\n' "$version" | sort -V | head -n1)" = "1.88.0" ]
}

missing=()
command -v cc >/dev/null || missing+=(gcc)
command -v make >/dev/null || missing+=(make)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v chromium >/dev/null || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

if ! recent_rust; then
  if command -v rustup >/dev/null; then
    rustup update stable
  else
    apt_install rustc-web cargo-web rustfmt-web rust-web-clippy
  fi
fi
if ! recent_rust; then
  echo "setup: no Rust 1.88 or newer could be installed (rustc: $(rustc --version 2>/dev/null || echo none))." >&2
  exit 1
fi
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  if command -v rustup >/dev/null; then rustup component add rustfmt clippy; else apt_install rustfmt-web rust-web-clippy; fi
fi
