#!/bin/bash
# replay.sh EXE DIR... — run every file of the committed corpus and of the
# past findings through a fuzz target once (TAP, one line per directory).
# The first DIR is the seed corpus: it must hold inputs.
# Works with the replaying build (plain main) and with a libFuzzer build
# (given files, libFuzzer runs each once and exits).
set -u
exe=$1; shift
name=$(basename "$exe")
n=0 failed=0
for dir in "$@"; do
    n=$((n + 1))
    what="$name: $(basename "$(dirname "$dir")")/$(basename "$dir")"
    files=()
    if [ -d "$dir" ]; then
        while IFS= read -r -d '' f; do files+=("$f"); done < <(find "$dir" -maxdepth 1 -type f ! -name '.*' ! -name '*.md' -print0 | sort -z)
    fi
    if [ ${#files[@]} -eq 0 ]; then
        # past findings may be none; the seed corpus (the first) never is
        if [ "$n" -eq 1 ]; then
            failed=$((failed + 1))
            echo "not ok $n - $what: the seed corpus is missing or empty"
        else
            echo "ok $n - $what: no inputs"
        fi
        continue
    fi
    log=$(mktemp)
    "$exe" "${files[@]}" >"$log" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ]; then
        echo "ok $n - $what: ${#files[@]} inputs, no finding"
    else
        failed=$((failed + 1))
        echo "not ok $n - $what: a finding (exit status $rc)"
        sed 's/^/# /' "$log" | grep -v '^# \(Running\|Executed\):' | tail -n 40
    fi
    rm -f "$log"
done
echo "1..$n"
[ "$failed" -eq 0 ]
