#!/usr/bin/env bash
# valgrind.sh [-d BUILD] [-a] [TEST...] — the engine and db test programs and
# a short `moescope trace` under valgrind's memcheck
# (--error-exitcode=1 --leak-check=full), one at a time at low priority, then
# a table per program: exit status, memcheck errors, bytes definitely and
# indirectly lost, time.  The logs stay in BUILD/valgrind-logs/.  Exit status 1 when any program has an error or a
# definite leak.
#
# BUILD (default build-valgrind) is set up when missing without sanitizers and
# without -march=native (valgrind does not decode every AVX-512 instruction),
# as a debugoptimized build so that reports carry line numbers.  TEST names a
# test program (tests/test-NAME) and its argument, e.g. "tokenizer --own";
# the default is the engine and db programs that finish in minutes under
# valgrind; -a adds the slow ones (synth, conformance --own, intervene, jobs).
# Fixtures from ../shared are used when present, as in the suite.  Columns:
# exit status, memcheck errors, bytes definitely / indirectly lost, the
# program's TAP "ok" and "not ok" lines, wall time.
set -uo pipefail
cd "$(dirname "$0")/.."
src=$PWD
build=build-valgrind all=0
while getopts d:a o; do
    case $o in
        d) build=$OPTARG ;;
        a) all=1 ;;
        *) echo "usage: $0 [-d BUILD] [-a] [TEST...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
    tests=("common" "gguf" "model-errors" "quant" "route" "prompts" "tokenizer --own" "tokenizer --reference" "db"
           "ivset" "analysis-db")
    # (tokenizer --reference gave 686 "conditional jump on uninitialised
    # value" reports inside PCRE2's JIT code until the regex subject got 64
    # zero bytes of padding: the JIT's vector loads read past the subject's
    # end, into the buffer's unwritten tail or past the block)
    [ "$all" = 1 ] && tests+=("intervene" "synth" "conformance --own" "jobs")
fi
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" -Dbuildtype=debugoptimized -Db_sanitize=none -Dnative=false >/dev/null || exit 1
fi
targets=(app/moescope)
for t in "${tests[@]}"; do targets+=("tests/test-${t%% *}"); done
ninja -C "$build" -j2 "${targets[@]}" >/dev/null || { echo "valgrind.sh: build failed" >&2; exit 1; }

out=$(mktemp -d "${TMPDIR:-/tmp}/msvg.XXXXXX") || exit 1
trap 'rm -rf "$out"' EXIT
logs=$build/valgrind-logs   # one memcheck log per program, kept for reading
mkdir -p "$logs"
export MS_SHARED_DEFAULT=${MS_SHARED_DEFAULT:-$src/../shared} MS_SOURCE_DIR=$src MS_BUILD_DIR=$src/$build
export MOESCOPE=$src/$build/app/moescope LC_ALL=C.UTF-8 TZ=UTC OPENBLAS_NUM_THREADS=1
VG=(valgrind --error-exitcode=1 --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite
    --track-origins=no --num-callers=30)

rows=() bad=0
run_one() { # LABEL LOGNAME WANT_EXIT CMD...: memcheck's own errors make the exit 1 (--error-exitcode)
    local label=$1 log=$logs/$2.log want=$3; shift 3
    local t0=$SECONDS
    nice -n 10 "${VG[@]}" --log-file="$log" "$@" >"$out/$label.out" 2>&1
    local rc=$? secs=$((SECONDS - t0))
    local errs def ind
    errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$log" | tr -d , | awk '{s += $1} END {print s + 0}')
    def=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tr -d , | awk '{s += $1} END {print s + 0}')
    ind=$(sed -n 's/.*indirectly lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tr -d , | awk '{s += $1} END {print s + 0}')
    # TAP lines of the test programs: a failing check is reported too
    local tok tnok
    tok=$(grep -c '^ok ' "$out/$label.out") tnok=$(grep -c '^not ok ' "$out/$label.out")
    rows+=("$(printf '%-28s %4s %8s %12s %12s %6s %6s %7ss' "$label" "$rc" "$errs" "$def" "$ind" "$tok" "$tnok" "$secs")")
    if [ "$rc" -ne "$want" ] || [ "$tnok" -ne 0 ] || [ "$errs" -ne 0 ] || [ "$def" -ne 0 ]; then
        bad=1
        echo "== $label: exit $rc, $errs errors, $def bytes definitely lost; first reports:" >&2
        grep -m 40 -E '^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Mismatched|Source|   (at|by) |[0-9,]+ bytes in)' "$log" >&2
        tail -5 "$out/$label.out" >&2
    fi
    echo "${rows[-1]}" >&2
}
for t in "${tests[@]}"; do
    name=${t%% *} arg=
    [ "$name" != "$t" ] && arg=${t#* }
    # shellcheck disable=SC2086
    run_one "test-$t" "test-$name" 0 "$src/$build/tests/test-$name" $arg
done
# a short trace through the command line: synth, then trace with probs, stats and --gen
"$MOESCOPE" synth --arch qwen2moe --layers 2 --embd 32 --heads 2 --experts 6 --used 2 --ff 16 --vocab 300 \
    --type Q8_0 --seed 3 "$out/m.gguf" >/dev/null 2>&1
printf 'The quick brown fox\nprint(add(2, 3))\ncaf\xc3\xa9 \xe2\x98\x83\n' >"$out/p.txt"
run_one "moescope trace" trace 0 "$MOESCOPE" trace "$out/m.gguf" --prompts "$out/p.txt" --db "$out/t.db" \
    --gen 4 --probs --stats -t 2
run_one "moescope export sql" export 0 "$MOESCOPE" export --db "$out/t.db" --format sql -o "$out/t.sql"
# a rejected prompt file: exit 2 here (the program's own 1 is indistinguishable from memcheck's)
printf 'x\n\xff\n' >"$out/bad.txt"
VG[1]=--error-exitcode=99
run_one "moescope trace (bad prompt)" badp 1 "$MOESCOPE" trace "$out/m.gguf" --prompts "$out/bad.txt" --db "$out/u.db"
VG[1]=--error-exitcode=1

printf '%-28s %4s %8s %12s %12s %6s %6s %8s\n' program exit errors "def. lost B" "ind. lost B" "ok" "not ok" time
printf '%s\n' "${rows[@]}"
exit $bad
