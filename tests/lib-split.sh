#!/bin/bash
# lib-split.sh — the analysis code is two libraries (analysis/meson.build):
# the pure one must not reference SQLite, jansson or db/ (undefined
# symbols sqlite3_*, json_*, ms_trace_*, ms_db_*); the glue does, which
# shows the check can see such references.  TAP.
#   lib-split.sh PURE.a GLUE.a
set -u
PURE=${1:?usage: lib-split.sh PURE.a GLUE.a}
GLUE=${2:?usage: lib-split.sh PURE.a GLUE.a}
T=$(mktemp -d "${TMPDIR:-/tmp}/mssplit.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/tap.sh"
NM=${NM:-nm}
if ! command -v "$NM" >/dev/null; then
    echo "1..0 # SKIP no nm"
    exit 77
fi
forbidden='^(sqlite3_|json_|jansson_|ms_trace_|ms_db_)'
"$NM" -u "$PURE" 2>/dev/null | awk '$1 == "U" { print $2 }' | sort -u >"$T/pure"
"$NM" -u "$GLUE" 2>/dev/null | awk '$1 == "U" { print $2 }' | sort -u >"$T/glue"
"$NM" --defined-only "$PURE" 2>/dev/null | awk 'NF == 3 { print $3 }' | sort -u >"$T/pure-def"
check "pure library lists undefined symbols (libm, BLAS, engine)" test -s "$T/pure"
check "pure library defines the accumulators and typed results" \
    grep -qx -e ms_load_result_build "$T/pure-def"
bad=$(grep -E "$forbidden" "$T/pure" | tr '\n' ' ')
check "pure library references no sqlite3_/json_/ms_trace_/ms_db_ symbol${bad:+ (found: $bad)}" test -z "$bad"
check "glue library references jansson (json_*)" grep -qE '^json_' "$T/glue"
check "glue library references the trace store (ms_trace_*)" grep -qE '^ms_trace_' "$T/glue"
echo "1..$n"
[ "$failed" -eq 0 ]
