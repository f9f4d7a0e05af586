#!/usr/bin/env bash
# llm-d's Benchmark Report package (PyPI `llmd-benchmark-report`): its JSON Schema and its own model, which the
# tests check `velollm report --llm-d` against; also a way to check a report by hand.
#
#   scripts/llmd-report.sh env            fetch and cache the package if missing; print
#                                         VELOLLM_LLMD_REPORT=DIR (the folder to put on PYTHONPATH)
#   scripts/llmd-report.sh check FILE…    load each report with the package's own model (exit 1 if one fails)
#
# The package and its dependencies are installed with pip, pinned, into a directory of their own under
# ${XDG_CACHE_HOME:-~/.cache}/velollm, keyed by version; nothing is installed into the system's Python.
set -euo pipefail

CACHE=${VELOLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/velollm}
VERSION=0.2.1
# Every package, pinned: the report package and what it imports.
PACKAGES=(
  "llmd-benchmark-report==$VERSION" pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0
  typing-inspection==0.4.5 typing_extensions==4.16.0 pyyaml==6.0.4 numpy==2.4.6
)
DIR=$CACHE/llmd-benchmark-report-$VERSION

log() { printf 'llmd-report.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=pypi.sh
. "$(dirname "$0")/pypi.sh"

install() {
  [ -f "$DIR/.installed" ] && return 0
  log "fetching llmd-benchmark-report $VERSION and its dependencies from PyPI (about 90 MB installed)"
  pip_target "$DIR" "${PACKAGES[@]}" || die "pip could not install ${PACKAGES[*]}"
  log "installed at $DIR"
}

check() {
  install
  [ $# -gt 0 ] || die "give the reports to check: scripts/llmd-report.sh check report.json"
  PYTHONPATH=$DIR python3 - "$@" <<'PY'
import sys
from llmd_benchmark_report import import_benchmark_report
for path in sys.argv[1:]:
    report = import_benchmark_report(path)
    print(f"{path}: a valid Benchmark Report {report.version}")
PY
}

case "${1:-}" in
  env) install; printf 'VELOLLM_LLMD_REPORT=%q\n' "$DIR" ;;
  check) shift; check "$@" ;;
  *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
