#!/bin/bash
# run-fuzz.sh EXE CORPUS [REGRESS] — fuzz one libFuzzer target for
# MS_FUZZ_SECONDS (default 60) from a copy of its committed corpus (TAP: one
# line with executions and findings).  A finding is kept in
# fuzz-artifacts/ beside EXE and named in the output; add it to
# tests/fuzz/regress/TARGET/ with the fix (README.md).
set -u
exe=$1 corpus=$2 regress=${3:-}
secs=${MS_FUZZ_SECONDS:-60}
name=$(basename "$exe")
art="$(dirname "$exe")/fuzz-artifacts/$name"
mkdir -p "$art"
work=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX") || exit 99
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
cp "$corpus"/* "$work/corpus/" 2>/dev/null
dirs=("$work/corpus")
[ -n "$regress" ] && [ -d "$regress" ] && dirs+=("$regress")
before=$(ls "$art" | wc -l)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
"$exe" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2560 -print_final_stats=1 -artifact_prefix="$art/" \
    "${dirs[@]}" >"$work/log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
after=$(ls "$art" | wc -l)
found=$((after - before))
echo "# $name: ${execs:-0} executions in ${secs} s, $found findings, exit status $rc"
if [ "$rc" -eq 0 ] && [ "$found" -eq 0 ] && [ -n "$execs" ]; then
    echo "ok 1 - $name: ${execs} executions, 0 findings"
else
    echo "not ok 1 - $name: ${execs:-0} executions, $found findings (exit status $rc; artifacts in $art)"
    # on stderr too: meson shows a failed test's stderr, not its TAP lines
    grep -E 'ERROR|SUMMARY|runtime error|==[0-9]+==|Test unit written|fuzz-' "$work/log" | head -n 30 | sed 's/^/# /' |
        tee /dev/stderr
fi
echo "1..1"
[ "$rc" -eq 0 ] && [ "$found" -eq 0 ]
