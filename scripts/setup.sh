#!/usr/bin/env bash
# Check and install what building velollm needs: a Rust toolchain (>= 1.88) with rustfmt and clippy, and a C
# compiler for the crates that compile C (ring). System packages come from apt; nothing else is downloaded.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v cc >/dev/null || missing+=(gcc)
command -v make >/dev/null || missing+=(make)
command -v pkg-config >/dev/null || missing+=(pkg-config)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} with apt-get" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: no Rust toolchain found. Install one (https://rustup.rs: curl … | sh), then run this again." >&2
  exit 1
fi
version=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n1.88.0\n' "$version" | sort -V | head -n1)" != "1.88.0" ]; then
  echo "setup: rustc $version is too old; velollm needs 1.88 or newer (rustup update)." >&2
  exit 1
fi
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null; then rustup component add "$component"; else
      echo "setup: cargo $component is missing (rustup component add $component)." >&2; exit 1; fi
  fi
done
