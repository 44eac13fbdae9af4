#!/usr/bin/env bash
# fuzz-campaign.sh [-n RUNS] [-t SECONDS] [-d BUILD] [-k DIR] [-j JOBS] [TARGET...] —
# the long fuzz campaign: each target (default: all seven) runs RUNS
# executions (default 10,000,000; with -t also at most SECONDS seconds)
# under ASan+UBSan from a copy of its committed corpus, one target at a
# time at low priority, and a table of executions, findings, time and rate
# per target is printed at the end.  BUILD (default build-fuzz) is set up
# with clang and -Dfuzz=true when missing.  Findings stay in
# BUILD/tests/fuzz/fuzz-artifacts/TARGET/ (tests/fuzz/README.md).
#
# -k DIR keeps a campaign across sessions, for targets that need more hours
# than one sitting has: DIR/TARGET/corpus is the growing corpus (seeded
# from the committed one), and the ledger tests/fuzz/ledger (in the
# repository, so it outlives the machine: commit it) gets a line per
# session and target: date, target, program, executions, findings,
# seconds.  The program is named by tests/fuzz/program-id.sh: a digest of
# the compiler's version and of the build commands and sources of the
# objects linked into it, so the same tree names the same program on any
# machine (the executable itself may differ: -march=native).  A session runs the executions still
# missing and the table gives the executions with no finding that the same
# program has accumulated since its last finding; a changed program starts
# from zero.
#
# -j JOBS runs JOBS processes of each target side by side (one per core),
# sharing its corpus (each reloads what the others add); their executions
# and findings are added up, RUNS in all.
set -uo pipefail
# Bash reads a script as it runs it: a campaign lasts hours, so it runs from
# a private copy and editing this file meanwhile cannot derail it.
if [ -z "${MS_CAMPAIGN_SRC:-}" ]; then
    copy=$(mktemp "${TMPDIR:-/tmp}/fuzz-campaign.XXXXXX.sh") && cp "$0" "$copy" || exit 1
    MS_CAMPAIGN_SRC=$(cd "$(dirname "$0")/.." && pwd) exec bash "$copy" "$@"
fi
rm -f "$0"   # the copy: bash has it open
cd "$MS_CAMPAIGN_SRC" || exit 1
runs=10000000 build=build-fuzz maxsecs=0 keep= jobs=1
while getopts n:t:d:k:j: o; do
    case $o in
        n) runs=$OPTARG ;;
        t) maxsecs=$OPTARG ;;
        d) build=$OPTARG ;;
        k) keep=$OPTARG ;;
        j) jobs=$OPTARG ;;
        *) echo "usage: $0 [-n RUNS] [-t SECONDS] [-d BUILD] [-k DIR] [-j JOBS] [TARGET...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "$0: -j wants a positive number, not '$jobs'" >&2; exit 2; }
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(gguf tokenizer prompts import interventions db hf)
if [ ! -f "$build/build.ninja" ]; then
    # the options of tools/run-tests.sh's fuzz build, so both name one program
    CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false >/dev/null || exit 1
fi
# every target is built now, so a compile error stops the campaign before
# it starts; each is built again when its turn comes (below), so it runs
# the program the tree builds then, not the one it built hours before
for t in "${targets[@]}"; do ninja -C "$build" -j2 "tests/fuzz/fuzz-$t" >/dev/null || exit 1; done
# ASan keeps freed memory poisoned in a quarantine (256 MB by default) to
# catch a use after free; fuzz-db frees a lot per execution, and recycling
# that much memory was most of its time (page faults, fills: perf on 3,000
# executions), so the quarantine is 64 MB: fuzz-db ran 1.4-1.75x faster
# (600-750 executions/s against 375-428, side by side).  A use of memory
# freed less than 64 MB of frees earlier is still caught.
export ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=64 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# the programs read their directories from the environment (tests/fuzz/meson.build)
export MS_SOURCE_DIR=$PWD MS_SHARED_DEFAULT=${MS_SHARED_DEFAULT:-$PWD/../shared} LC_ALL=C.UTF-8 OPENBLAS_NUM_THREADS=1
ledger=tests/fuzz/ledger
# the program's name in the ledger: what it is built from, not where
program_id() { tests/fuzz/program-id.sh "$build" "$1"; }
# 1 when the artifact $2 is a finding of program $1, else 0.  A slow unit or
# timeout that replays alone within a second of the program's start-up time
# (an empty input) was a starved process on a loaded machine, not a slow
# input: it is moved to starved/ beside it and not counted.
is_finding() {
    case $(basename "$2") in
        slow-unit-*|timeout-*) ;;
        *) echo 1; return ;;
    esac
    local empty tf base t
    empty=$(mktemp) tf=$(mktemp)
    # time(1) writes to -o: its stderr is the program's, sent to /dev/null
    /usr/bin/time -f %e -o "$tf" "$1" "$empty" >/dev/null 2>&1
    base=$(tail -n 1 "$tf")
    /usr/bin/time -f %e -o "$tf" timeout 60 "$1" "$2" >/dev/null 2>&1
    t=$(tail -n 1 "$tf")
    rm -f "$empty" "$tf"
    # a time that did not parse counts as a finding, never as starved
    if [[ $t =~ ^[0-9.]+$ && $base =~ ^[0-9.]+$ ]] &&
       awk -v t="$t" -v b="$base" 'BEGIN { exit !(t + 0 < b + 1) }'; then
        mkdir -p "$(dirname "$2")/starved" && mv "$2" "$(dirname "$2")/starved/"
        echo "   $(basename "$2"): replays in $t s, start-up $base s: a starved process, not counted" >&2
        echo 0
    else
        echo 1
    fi
}
# executions with no finding of target $1 by program $2, from the ledger
clean_runs() {
    awk -v t="$1" -v h="$2" '$2 == t && $3 == h { n = ($5 > 0) ? 0 : n + $4 } END { print n + 0 }' "$ledger" 2>/dev/null || echo 0
}
summary=()
total_found=0
for t in "${targets[@]}"; do
    exe=$build/tests/fuzz/fuzz-$t
    ninja -C "$build" -j2 "tests/fuzz/fuzz-$t" >/dev/null || exit 1
    art=$build/tests/fuzz/fuzz-artifacts/fuzz-$t
    mkdir -p "$art"
    work=$(mktemp -d "${TMPDIR:-/tmp}/campaign-$t.XXXXXX")
    want=$runs
    if [ -n "$keep" ]; then
        mkdir -p "$keep/$t/corpus" || exit 1
        [ -n "$(ls -A "$keep/$t/corpus")" ] || cp tests/fuzz/corpus/"$t"/* "$keep/$t/corpus/" 2>/dev/null
        sha=$(program_id "$t") || exit 1
        # a session that was killed (the machine stopped) left its logs (one
        # per process): the last status line of each is a lower bound of the
        # executions that process made
        if [ -f "$keep/$t/session.sha" ] && compgen -G "$keep/$t/session.log*" >/dev/null; then
            n=0 f=0
            for sl in "$keep/$t"/session.log*; do
                k=$(grep -oE '^#[0-9]+' "$sl" | tail -n 1 | tr -d '#')
                n=$((n + ${k:-0}))
                grep -qE 'ERROR' "$sl" && f=$((f + 1))
                for u in $(sed -n 's/.*Test unit written to //p' "$sl"); do
                    [ -f "$u" ] && f=$((f + $(is_finding "$exe" "$u")))
                done
            done
            printf '%s %s %s %s %s %s killed\n' "$(date -u -r "$(ls -t "$keep/$t"/session.log* | head -n 1)" +%Y-%m-%dT%H:%M:%SZ)" \
                "$t" "$(cat "$keep/$t/session.sha")" "$n" "$f" 0 >>"$ledger"
        fi
        rm -f "$keep/$t"/session.log* "$keep/$t/session.sha"
        before_runs=$(clean_runs "$t" "$sha")
        want=$((runs - before_runs))
        if [ "$want" -le 0 ]; then
            summary+=("$(printf '%-22s %12s %9s   (program %s: %s executions with no finding already)' \
                "fuzz-$t" 0 0 "$sha" "$before_runs")")
            rm -rf "$work"
            continue
        fi
        corpus=$keep/$t/corpus
        echo "$sha" >"$keep/$t/session.sha"
        log=$keep/$t/session.log
    else
        log=$work.log
        cp tests/fuzz/corpus/"$t"/* "$work/" 2>/dev/null
        corpus=$work
    fi
    dirs=("$corpus")   # past findings too, when there are any
    [ -d "tests/fuzz/regress/$t" ] && dirs+=("tests/fuzz/regress/$t")
    t0=$(date +%s)
    logs=("$log")
    [ "$jobs" -gt 1 ] && logs=($(for j in $(seq "$jobs"); do echo "$log.$j"; done))
    echo "== fuzz-$t: $want executions in $jobs process(es) (log: ${logs[*]})"
    # -fork would hide a finding's exit status: plain processes, restarted
    # after a finding only by hand (a finding ends that process)
    pids=()
    for j in $(seq "$jobs"); do
        per=$(( want / jobs + (j <= want % jobs ? 1 : 0) ))
        nice -n 10 "$exe" -runs="$per" -max_total_time="$maxsecs" -timeout=25 -rss_limit_mb=2560 -print_final_stats=1 \
            -artifact_prefix="$art/" "${dirs[@]}" >"${logs[j - 1]}" 2>&1 &
        pids+=($!)
    done
    rc=0
    for p in "${pids[@]}"; do wait "$p" || rc=$?; done
    secs=$(( $(date +%s) - t0 ))
    execs=0
    for l in "${logs[@]}"; do
        e=$(sed -n 's/^stat::number_of_executed_units: *//p' "$l" | tail -n 1)
        # a process stopped with a signal prints no final stats: its last
        # status line is a lower bound
        [ -n "$e" ] || e=$(grep -oE '^#[0-9]+' "$l" | tail -n 1 | tr -d '#')
        execs=$((execs + ${e:-0}))
    done
    found=0
    for u in $(find "$art" -maxdepth 1 -type f -newermt "@$t0"); do found=$((found + $(is_finding "$exe" "$u"))); done
    total_found=$((total_found + found))
    rate=$(( ${execs:-0} / (secs > 0 ? secs : 1) ))
    summary+=("$(printf '%-22s %12s %9s %8s s %9s/s   exit %s' "fuzz-$t" "${execs:-0}" "$found" "$secs" "$rate" "$rc")")
    cat "${logs[@]}" | grep -E 'ERROR|SUMMARY|Test unit written' | head -n 5
    cov=$(grep -ohE 'cov: [0-9]+ ft: [0-9]+' "${logs[@]}" | tail -n 1)
    summary[${#summary[@]}-1]+="   ${cov:-}"
    if [ -n "$keep" ]; then
        printf '%s %s %s %s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$t" "$sha" "${execs:-0}" "$found" "$secs" \
            >>"$ledger"
        summary[${#summary[@]}-1]+="   program $sha: $(clean_runs "$t" "$sha") with no finding in all"
        cat "${logs[@]}" >"$keep/$t/last.log" && rm -f "${logs[@]}"
        rm -f "$keep/$t/session.sha"
    fi
    rm -rf "$work"
done
echo
printf '%-22s %12s %9s %10s %11s\n' target executions findings time rate
for l in "${summary[@]}"; do echo "$l"; done
echo "command: nice -n 10 FUZZ ($jobs process(es), RUNS in all) -runs=$runs -max_total_time=$maxsecs -timeout=25 -rss_limit_mb=2560 CORPUS tests/fuzz/regress/TARGET ($build: clang, -Dfuzz=true, ASan+UBSan)"
[ "$total_found" -eq 0 ]
