#!/usr/bin/env bash
# fuzz-campaign.sh [-n RUNS] [-t SECONDS] [-d BUILD] [TARGET...] — the long
# fuzz campaign: each target (default: all seven) runs RUNS executions
# (default 10,000,000; with -t also at most SECONDS seconds)
# under ASan+UBSan from a copy of its committed corpus, one target at a
# time at low priority, and a table of executions, findings, time and rate
# per target is printed at the end.  BUILD (default build-fuzz) is set up
# with clang and -Dfuzz=true when missing.  Findings stay in
# BUILD/tests/fuzz/fuzz-artifacts/TARGET/ (tests/fuzz/README.md).
set -uo pipefail
cd "$(dirname "$0")/.."
runs=10000000 build=build-fuzz maxsecs=0
while getopts n:t:d: o; do
    case $o in
        n) runs=$OPTARG ;;
        t) maxsecs=$OPTARG ;;
        d) build=$OPTARG ;;
        *) echo "usage: $0 [-n RUNS] [-t SECONDS] [-d BUILD] [TARGET...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(gguf tokenizer prompts import interventions db hf)
if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined >/dev/null || exit 1
fi
for t in "${targets[@]}"; do ninja -C "$build" -j2 "tests/fuzz/fuzz-$t" >/dev/null || exit 1; done
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
summary=()
total_found=0
for t in "${targets[@]}"; do
    exe=$build/tests/fuzz/fuzz-$t
    art=$build/tests/fuzz/fuzz-artifacts/fuzz-$t
    mkdir -p "$art"
    work=$(mktemp -d "${TMPDIR:-/tmp}/campaign-$t.XXXXXX")
    cp tests/fuzz/corpus/"$t"/* "$work/" 2>/dev/null
    dirs=("$work")   # past findings too, when there are any
    [ -d "tests/fuzz/regress/$t" ] && dirs+=("tests/fuzz/regress/$t")
    before=$(ls "$art" | wc -l)
    t0=$(date +%s)
    echo "== fuzz-$t: $runs executions (log: $work.log)"
    # -fork would hide a finding's exit status; one process, restarted after
    # a finding only by hand: a finding ends that target's campaign
    nice -n 10 "$exe" -runs="$runs" -max_total_time="$maxsecs" -timeout=25 -rss_limit_mb=2560 -print_final_stats=1 \
        -artifact_prefix="$art/" "${dirs[@]}" >"$work.log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - t0 ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work.log" | tail -n 1)
    found=$(( $(ls "$art" | wc -l) - before ))
    total_found=$((total_found + found))
    rate=$(( ${execs:-0} / (secs > 0 ? secs : 1) ))
    summary+=("$(printf '%-22s %12s %9s %8s s %9s/s   exit %s' "fuzz-$t" "${execs:-0}" "$found" "$secs" "$rate" "$rc")")
    grep -E 'ERROR|SUMMARY|Test unit written' "$work.log" | head -n 5
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$work.log" | tail -n 1)
    summary[${#summary[@]}-1]+="   ${cov:-}"
    rm -rf "$work"
done
echo
printf '%-22s %12s %9s %10s %11s\n' target executions findings time rate
for l in "${summary[@]}"; do echo "$l"; done
echo "command: nice -n 10 FUZZ -runs=$runs -max_total_time=$maxsecs -timeout=25 -rss_limit_mb=2560 CORPUS tests/fuzz/regress/TARGET ($build: clang, -Dfuzz=true, ASan+UBSan)"
[ "$total_found" -eq 0 ]
