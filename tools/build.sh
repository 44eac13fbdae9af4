#!/usr/bin/env bash
# build.sh [DIR [MESON-OPTION...] [-- TARGET...]] — configure DIR (default
# build/) once with the meson options, then build everything or the targets.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}; shift || true
opts=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
[ $# -gt 0 ] && shift
if [ ! -f "$dir/build.ninja" ]; then
  meson setup "$dir" "${opts[@]}" >/dev/null
fi
# quiet when it builds; the compiler's messages when it does not
if ! out=$(ninja -C "$dir" "$@" 2>&1); then
  printf '%s\n' "$out" | grep -v '^\[[0-9]*/[0-9]*\] ' | tail -n 40
  exit 1
fi
