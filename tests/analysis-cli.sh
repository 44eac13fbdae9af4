#!/bin/bash
# analysis-cli.sh — `moescope analyze` end to end (TAP): an imported trace
# with hand-countable routing (block 1 = block 0 shifted by 2 experts), the
# table / csv / json outputs, the result tables in the database, usage
# errors; then, with ../shared, a real trace of a fixture model (probs and
# stats on) through every module.
# Environment (set by tests/meson.build): MOESCOPE; MS_SHARED_DIR / MS_SHARED_DEFAULT (tap.sh).
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
T=$(mktemp -d "${TMPDIR:-/tmp}/msana.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT

. "$(dirname "$0")/tap.sh"
has() { grep -qF -- "$1" "$T/out"; }

# -------------------------------------------------- planted imported trace
# 2 prompts x 10 tokens, E = 4, k = 2; block 0 selects {t%4, (t+1)%4},
# block 1 selects each of those + 2 (mod 4).  Per prompt block-0 counts are
# [5,6,5,4], so over both prompts [10,12,10,8]; block 1 is [10,8,10,12].
for p in 0 1; do
    for t in $(seq 0 9); do
        a=$((t % 4)); b=$(((t + 1) % 4))
        printf '{"prompt":%d,"position":%d,"experts":[[%d,%d],[%d,%d]],"token_id":%d,"piece":"%s"}\n' \
            "$p" "$t" "$a" "$b" $(((a + 2) % 4)) $(((b + 2) % 4)) $((t % 3)) \
            "$([ $((t % 2)) -eq 0 ] && echo 7 || echo ' w')"
    done
done >"$T/tr.jsonl"
printf '{"prompt":0,"labels":{"set":"a"}}\n{"prompt":1,"labels":{"set":"b"}}\n' >"$T/labels.jsonl"
run "$M" import --db "$T/a.db" --format jsonl "$T/tr.jsonl" --labels "$T/labels.jsonl"
check "import of the planted trace" test "$rc" -eq 0

run "$M" analyze load --db "$T/a.db" --format json
check "load --format json exits 0" test "$rc" -eq 0
check "load json: block 0 counts [10,12,10,8]" has '"layers":[{"layer":0,"counts":[10,12,10,8],"share":[0.25,0.29999999999999999,0.25,0.20000000000000001]'
check "load json: block 1 counts [10,8,10,12]" has '{"layer":1,"counts":[10,8,10,12]'
check "load json: entropy_norm, gini, cv, max_over_mean present" \
    grep -q '"entropy_norm":[0-9.e-]*,"gini":[0-9.e-]*,"cv":[0-9.e-]*,"max_over_mean":1.2' "$T/out"
run "$M" analyze load --db "$T/a.db" --format csv
check "load csv: header and two layer rows" \
    test "$(head -1 "$T/out" | cut -d, -f1-3)" = "layer,n_tokens,entropy" -a "$(wc -l <"$T/out")" -eq 3
run "$M" analyze load --db "$T/a.db"
check "load table: header line" test "$(head -1 "$T/out" | awk '{print $1, $2}')" = "layer n_tokens"
run "$M" sql --db "$T/a.db" "SELECT count(*) FROM an_load_experts" --csv
check "result table an_load_experts holds L*E rows" has 8

run "$M" analyze affinity --db "$T/a.db" --format json
check "affinity json: pair 0->1 with C, Q, P" grep -q '"pairs":\[{"from":0,"to":1,"C":\[\[' "$T/out"
check "affinity: planted successor gives top-1 concentration 1" has '"concentration_top1":1.0'
check "affinity: row 0 of P = [0, 2/5, 1, 3/5] (P(e+2 | e) = 1)" has '"P":[[0.0,0.40000000000000002,1.0,0.59999999999999998]'

run "$M" analyze consistency --db "$T/a.db" --segments 2,4 --cache 1,2,4 --format json
check "consistency json: srp/sch keyed by m and C, model level" \
    grep -q '"srp":{"2":[0-9.e-]*,"4":[0-9.e-]*},"sch":{"2":{"1":[0-9.e-]*,"2":[0-9.e-]*,"4":1.0}' "$T/out"
check "consistency json: model object" has '"model":{"srp":{"2":'

run "$M" analyze npmi --db "$T/a.db" --by token --min-support 1 --format json
check "npmi json rows: layer, expert, class, npmi, count" grep -q '"rows":\[{"layer":[0-9],"expert":[0-9],"class":"[0-9]","npmi":' "$T/out"
run "$M" analyze npmi --db "$T/a.db" --by label:set --min-support 1 --plan a --top 1 --out "$T/plan.txt"
check "npmi --plan writes an intervention set file" test "$rc" -eq 0 -a -s "$T/plan.txt"
run "$M" analyze riskdiff --db "$T/a.db" --label set --set1 a --set2 b
check "riskdiff on identical routing: exit 0" test "$rc" -eq 0

run "$M" analyze all --db "$T/a.db" --format json
check "analyze all: modules, skipped (superexperts: no stats) and timing" \
    test "$rc" -eq 0 -a -n "$(grep -F '"skipped":{"superexperts"' "$T/out")" -a -n "$(grep -F '"timing":{"decode"' "$T/out")"

# usage and errors: one line, status 2 (usage) or 1 (failure), never a crash
run "$M" analyze nosuch --db "$T/a.db"
check "unknown module: status 2" test "$rc" -eq 2
run "$M" analyze load
check "missing --db: status 2" test "$rc" -eq 2
run "$M" analyze load --db "$T/a.db" --format xml
check "bad --format: status 2" test "$rc" -eq 2
run "$M" analyze load --db "$T/missing.db"
check "missing database: status 1, one line naming it" \
    test "$rc" -eq 1 -a "$(wc -l <"$T/err")" -eq 1 -a -n "$(grep -F missing.db "$T/err")"
run "$M" analyze superexperts --db "$T/a.db"
check "superexperts without stats: status 1 with a reason" test "$rc" -eq 1 -a -n "$(grep -F stats "$T/err")"
run "$M" analyze load --db "$T/a.db" --layer 7
check "--layer that is not a MoE layer: status 1" test "$rc" -eq 1
run "$M" analyze load --db "$T/a.db" --run 5
check "unknown run: status 1" test "$rc" -eq 1

# ----------------------------------------- real trace of a fixture model
if [ -n "$SHARED" ]; then
    printf '%s\n' '{"text":"The cat sat on the mat 12 times.","labels":{"language":"en","pair_id":"0","set":"a"}}' \
        '{"text":"Die Katze sass 12 mal auf der Matte.","labels":{"language":"de","pair_id":"0","set":"b"}}' \
        '{"text":"def f(x): return x + 1","labels":{"language":"en","pair_id":"1","set":"a"}}' \
        '{"text":"Eine Funktion f gibt x plus 1 zurueck","labels":{"language":"de","pair_id":"1","set":"b"}}' >"$T/p.jsonl"
    run "$M" trace "$SHARED/fixtures/models/olmoe-tiny.F32.gguf" --prompts "$T/p.jsonl" --db "$T/t.db" \
        --probs --stats --gen 3 -t 1
    check "trace olmoe-tiny with probs and stats" test "$rc" -eq 0
    for a in load coactivation affinity consistency superexperts npmi crosslingual pathways; do
        run "$M" analyze "$a" --db "$T/t.db" --format json
        check "analyze $a on a real trace: json object" test "$rc" -eq 0 -a "${out:0:1}" = "{"
    done
    run "$M" analyze riskdiff --db "$T/t.db" --label set --set1 a --set2 b --activate 1 --deactivate 1 --format json
    check "analyze riskdiff on a real trace" test "$rc" -eq 0 -a -n "$(grep -F '"selection"' "$T/out")"
    # plans: METHODS' logit operators, loadable by the engine commands
    run "$M" analyze riskdiff --db "$T/t.db" --label set --set1 a --set2 b --activate 1 --deactivate 1 \
        --role all --out "$T/rd.plan"
    check "riskdiff plan uses SteerMoE's operators (raise / lower by 0.01)" \
        grep -Eq '^raise [0-9]+:[0-9]+:0.01; lower [0-9]+:[0-9]+:0.01$' "$T/rd.plan"
    run "$M" generate "$SHARED/fixtures/models/olmoe-tiny.F32.gguf" -p "The cat" -n 2 -t 1 \
        --interventions "$T/rd.plan"
    check "generate --interventions loads the riskdiff plan" test "$rc" -eq 0
    run "$M" analyze crosslingual --db "$T/t.db" --tau 0 --out "$T/cl.plan"
    check "crosslingual plan, default soft operator: steer-std with lambda 0.5" \
        grep -Eq '^steer-std [0-9,*-]+:[0-9,*-]+:\+0.5' "$T/cl.plan"
    run "$M" analyze crosslingual --db "$T/t.db" --tau 0 --operator hard --out "$T/cl2.plan"
    check "crosslingual --operator hard: raise with margin 0" grep -Eq '^raise [0-9,*-]+:[0-9,*-]+:0$' "$T/cl2.plan"
    run "$M" analyze crosslingual --db "$T/t.db" --operator gentle
    check "crosslingual --operator gentle: usage error" test "$rc" -eq 2
    printf 'raise 99:1\n' >"$T/bad.plan"
    run "$M" generate "$SHARED/fixtures/models/olmoe-tiny.F32.gguf" -p "x" -n 1 --interventions "$T/bad.plan"
    check "bad plan file: status 2, one line naming the file" \
        test "$rc" -eq 2 -a "$(wc -l <"$T/err")" -eq 1 -a -n "$(grep -F bad.plan "$T/err")"
    run "$M" sql --db "$T/t.db" "SELECT count(*) FROM an_load" --csv
    check "an_load has one row per MoE layer" test "$(tail -1 "$T/out")" = 2
else
    skip "real trace of a fixture model: $SHARED_WHY"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
