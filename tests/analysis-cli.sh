#!/bin/bash
# analysis-cli.sh — `moescope analyze` end to end (TAP): an imported trace
# with hand-countable routing (block 1 = block 0 shifted by 2 experts), the
# table / csv / json outputs, the result tables in the database, usage
# errors; then real traces (probs and stats on) of a synth model and, with
# ../shared, of a fixture model through every module, the stored tokens and
# routing checked against `moescope tokenize` and `moescope dump`.
# Environment (set by tests/meson.build): MOESCOPE; MS_SHARED_DIR / MS_SHARED_DEFAULT (tap.sh).
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
T=$(mktemp -d "${TMPDIR:-/tmp}/msana.XXXXXX") || exit 99
PID=
trap '[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$T"' EXIT

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
# a plan that would be empty, or --out where no plan is made: an error, no file
run "$M" analyze npmi --db "$T/a.db" --by label:set --min-support 100000 --plan a --top 1 --out "$T/empty.plan"
check "npmi --plan with no expert at --min-support 100000: exit 1, one line naming the file, no file ($(cat "$T/err"))" \
    eval '[ "$rc" -eq 1 ] && [ ! -e "$T/empty.plan" ] && [ "$(wc -l <"$T/err")" -eq 1 ] &&
          grep -qF "$T/empty.plan: not written: no expert of class '"'a'"'" "$T/err"'
check "and the analysis says plan (none) where it printed 'plan: ' ($(tail -1 "$T/out"))" grep -q "^plan: (none: " "$T/out"
run "$M" analyze riskdiff --db "$T/a.db" --label set --set1 a --set2 b --activate 0 --deactivate 0 --out "$T/rd0.plan"
check "riskdiff choosing no expert with --out: exit 1, no file ($(cat "$T/err"))" \
    eval '[ "$rc" -eq 1 ] && [ ! -e "$T/rd0.plan" ] && grep -qF ": $T/rd0.plan: not written" "$T/err"'
for a in "all" "load" "npmi --by token"; do
    run "$M" analyze $a --db "$T/a.db" --out "$T/x.plan"
    check "analyze $a --out: a usage error (exit 2), no file" \
        eval '[ "$rc" -eq 2 ] && [ ! -e "$T/x.plan" ] && grep -qF "writes a steering plan" "$T/err"'
done
run "$M" analyze riskdiff --db "$T/a.db" --label set
check "riskdiff without --set1/--set2: a usage error (exit 2)" eval '[ "$rc" -eq 2 ] && grep -qF "(try moescope analyze --help)" "$T/err"'
run "$M" analyze load --db "$T/a.db" --layer 9
check "a layer that is not a MoE layer: exit 1, the line names the database ($(cat "$T/err"))" \
    eval '[ "$rc" -eq 1 ] && grep -qF "$T/a.db: run " "$T/err"'

run "$M" analyze all --db "$T/a.db" --format json
check "analyze all: modules, skipped (superexperts: no stats) and timing" \
    test "$rc" -eq 0 -a -n "$(grep -F '"skipped":{"superexperts"' "$T/out")" -a -n "$(grep -F '"timing":{"decode"' "$T/out")"

for a in coactivation affinity "npmi --by token --min-support 1"; do
    "$M" analyze $a --db "$T/a.db" --no-write >"$T/tab.${a%% *}" 2>&1
done
pycheck "$T/tab.coactivation" "$T/tab.affinity" "$T/tab.npmi" <<'EOF'
import sys
def col_ends(s):
    out, i = [], 0
    for t in s.split():
        i = s.index(t, i); i += len(t); out.append(i)
    return out
for f in sys.argv[1:]:
    lines = open(f).read().splitlines()
    h = col_ends(lines[0])
    # numeric columns only: text ones (npmi's class) are left-aligned
    num = [k for k, t in enumerate(lines[0].split()) if t != "class"]
    ok = len(lines) > 1 and all(len(col_ends(r)) == len(h) and all(col_ends(r)[k] == h[k] for k in num) for r in lines[1:])
    print(("ok" if ok else "not ok") + f" - analyze {f.rsplit('.', 1)[1]} table: numeric headers end over their numbers ({lines[0]!r} / {lines[1] if len(lines) > 1 else ''!r})")
EOF

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
usage2() {   # DESC EXPECTED-TEXT ARGS...: a usage error, status 2, one line
    local d=$1 want=$2; shift 2
    run "$M" analyze "$@"
    check "$d: status 2, one line ($err)" test "$rc" -eq 2 -a "$(wc -l <"$T/err")" -eq 1 -a -n "$(grep -F -- "$want" "$T/err")"
}
usage2 "--run 0 (run ids start at 1)" "--run: 0 is out of range" load --db "$T/a.db" --run 0
usage2 "--role foo" "--role must be" load --db "$T/a.db" --role foo
usage2 "--variant foo" "--variant must be" affinity --db "$T/a.db" --variant foo
usage2 "--by pos:0" "--by pos:B needs B >= 1" npmi --db "$T/a.db" --by pos:0
usage2 "--set1 = --set2" "are both 'a'" riskdiff --db "$T/a.db" --label set --set1 a --set2 a
usage2 "--middle reversed" "reversed range 3-1" crosslingual --db "$T/a.db" --middle 3-1
run "$M" analyze affinity --db "$T/a.db" --distance 40
check "--distance past the last MoE layer: status 1, one line, instead of no rows ($err)" \
    test "$rc" -eq 1 -a "$(wc -l <"$T/err")" -eq 1 -a -n "$(grep -F -- "--distance 40 is not below its" "$T/err")"
run "$M" analyze crosslingual --db "$T/a.db" --middle 0-40
check "--middle past the last block: status 1, one line ($err)" \
    test "$rc" -eq 1 -a "$(wc -l <"$T/err")" -eq 1 -a -n "$(grep -F -- "--middle 0-40 reaches past its last block" "$T/err")"

# ------------------------------------------ Ctrl+C: stops, writes nothing
# consistency's default grid (4 windows x 64 cache sizes) on 25,600 tokens
# of 16 layers, E = 64, k = 8 runs for many seconds: a SIGINT after one
# second lands mid-way.
GEN=${MS_BUILD_DIR:-}/bench/bench-analysis-gen
if [ -x "$GEN" ]; then
    "$GEN" 400 64 16 64 8 7 >"$T/big.ids"
    run "$M" import --db "$T/big.db" --format ids "$T/big.ids" --labels "$T/labels.jsonl"
    check "import of a 25,600-token trace" test "$rc" -eq 0
    run "$M" analyze load --db "$T/big.db" --format csv
    state() {
        "$M" sql --db "$T/big.db" --csv "SELECT type, name, sql FROM sqlite_master ORDER BY name"
        "$M" sql --db "$T/big.db" --csv "SELECT * FROM analysis ORDER BY analysis_id"
        "$M" sql --db "$T/big.db" --csv "SELECT * FROM an_load ORDER BY rowid"
    }
    state >"$T/state0"
    for what in consistency all; do
        "$M" analyze "$what" --db "$T/big.db" >"$T/out" 2>"$T/err" &
        PID=$!
        sleep 1
        alive=no
        kill -0 "$PID" 2>/dev/null && alive=yes
        t0=$(date +%s.%N)
        kill -INT "$PID"
        wait "$PID"
        rc=$?
        t1=$(date +%s.%N)
        PID=
        lat=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
        check "analyze $what: still running after 1 s ($alive), exit 130 after SIGINT (got $rc)" \
            test "$alive" = yes -a "$rc" -eq 130
        check "analyze $what: stopped ${lat} s after the signal (< 1 s)" \
            python3 -c "import sys; sys.exit(0 if $t1 - $t0 < 1.0 else 1)"
        check "analyze $what: one line says nothing was written ($(cat "$T/err"))" \
            test "$(wc -l <"$T/err")" -eq 1 -a -n "$(grep -F 'interrupted: nothing was written' "$T/err")"
        state >"$T/state1"
        check "analyze $what: tables and registry unchanged" cmp -s "$T/state0" "$T/state1"
    done
else
    skip "bench-analysis-gen not built: Ctrl+C checks"
fi

# ------------------------------------------------------- real traces
# A traced model (probs and stats on) through every module; the stored
# tokens and routing against `moescope tokenize` and `moescope dump` of the
# same prompts (the database keeps what the engine decided); plans written by
# riskdiff / crosslingual load into generate.  On a synth model always, on a
# fixture model of ../shared in addition.
printf '%s\n' '{"text":"The cat sat on the mat 12 times.","labels":{"language":"en","pair_id":"0","set":"a"}}' \
    '{"text":"Die Katze sass 12 mal auf der Matte.","labels":{"language":"de","pair_id":"0","set":"b"}}' \
    '{"text":"def f(x): return x + 1","labels":{"language":"en","pair_id":"1","set":"a"}}' \
    '{"text":"Eine Funktion f gibt x plus 1 zurueck","labels":{"language":"de","pair_id":"1","set":"b"}}' >"$T/p.jsonl"
python3 -c '
import json, sys
for i, l in enumerate(open(sys.argv[1])):
    open("%s.%d.txt" % (sys.argv[2], i), "wb").write(json.loads(l)["text"].encode())' "$T/p.jsonl" "$T/pt"
real_trace() { # NAME MODEL
    local d=$1 mdl=$2 db=$T/t-$1.db
    run "$M" trace "$mdl" --prompts "$T/p.jsonl" --db "$db" --probs --stats --gen 3 -t 1
    check "$d: trace with probs and stats" test "$rc" -eq 0
    for a in load coactivation affinity consistency superexperts npmi crosslingual pathways; do
        run "$M" analyze "$a" --db "$db" --format json
        check "$d: analyze $a on a real trace: json object" test "$rc" -eq 0 -a "${out:0:1}" = "{"
    done
    # what the database holds = what tokenize and dump say for the same prompts
    "$M" info --json "$mdl" >"$T/info.json"
    for i in 0 1 2 3; do "$M" tokenize "$mdl" --file "$T/pt.$i.txt"; done >"$T/tok.txt"
    run "$M" dump "$mdl" --prompts "$T/p.jsonl" --out "$T/dump-$d" -t 2
    check "$d: dump of the same prompts" test "$rc" -eq 0
    run "$M" analyze load --db "$db" --format json
    pycheck "$T/info.json" "$T/tok.txt" "$T/dump-$d.json" "$db" "$T/out" "$d" <<'PY'
import json, sqlite3, struct, sys
info = json.load(open(sys.argv[1]))
toks = [[int(x) for x in l.split()] for l in open(sys.argv[2])]
dump = json.load(open(sys.argv[3]))
db = sqlite3.connect(sys.argv[4])
load = json.load(open(sys.argv[5]))
d = sys.argv[6]
k = info["n_expert_used"]
def say(ok, what):
    print(("ok - " if ok else "not ok - ") + d + ": " + what)
q = lambda s: db.execute(s).fetchall()
pids = [p for (p,) in q("SELECT DISTINCT prompt_id FROM token ORDER BY prompt_id")]
stored = [[t for (t,) in q("SELECT token_id FROM token WHERE prompt_id = %d AND is_generated = 0 ORDER BY pos" % p)]
          for p in pids]
say(stored == toks, "stored prompt tokens = moescope tokenize of each prompt (%s tokens)" % [len(t) for t in toks])
gen = q("SELECT prompt_id, count(*) FROM token WHERE is_generated = 1 GROUP BY prompt_id")
say(len(gen) == 4 and all(c == 3 for _, c in gen), "--gen 3: three generated tokens per prompt (%s)" % gen)
n_tok = q("SELECT count(*) FROM token")[0][0]
layers = sorted(r["layer"] for r in dump["prompts"][0]["routing"])
n_route = q("SELECT count(*) FROM routing")[0][0]
say(n_route == n_tok * len(layers) * k,
    "routing rows = tokens x MoE layers x k (%d = %d x %d x %d)" % (n_route, n_tok, len(layers), k))
say([l["layer"] for l in load["layers"]] == layers and
    all(l["n_tokens"] == n_tok and sum(l["counts"]) == n_tok * k == l["n_selections"] for l in load["layers"]),
    "analyze load: every MoE layer, n_tokens %d, counts sum to n_tokens x k" % n_tok)
f32 = lambda x: struct.unpack("f", struct.pack("f", x))[0]
f16 = lambda x: struct.unpack("e", struct.pack("e", x))[0]
bad_sel = bad_w = bad_p = n = 0
for pid, pr in zip(pids, dump["prompts"]):
    for r in pr["routing"]:
        rows, probs = {}, {}
        for pos, rank, e, w in q("SELECT pos, rank, expert, weight FROM routing WHERE prompt_id = %d AND layer = %d"
                                 % (pid, r["layer"])):
            rows.setdefault(pos, []).append((rank, e, w))
        for pos, e, p in q("SELECT pos, expert, prob FROM router_prob WHERE prompt_id = %d AND layer = %d"
                           % (pid, r["layer"])):
            probs.setdefault(pos, {})[e] = p
        for t, (ex, ws, ps) in enumerate(zip(r["experts"], r["weights"], r["probs"])):
            n += 1
            got = sorted(rows.get(t, []))
            bad_sel += [e for _, e, _ in got] != ex
            bad_w += [f32(w) for _, _, w in got] != [f32(w) for w in ws]
            bad_p += [probs.get(t, {}).get(e) for e in range(len(ps))] != [f16(f32(p)) for p in ps]
say(n == sum(len(t) for t in toks) * len(layers) and bad_sel == 0,
    "stored routing = moescope dump's experts in rank order (%d token-layers, %d differ)" % (n, bad_sel))
say(bad_w == 0, "stored weights = dump's float32 weights exactly (%d token-layers differ)" % bad_w)
say(bad_p == 0, "stored probs = dump's probs rounded to binary16 (%d token-layers differ)" % bad_p)
PY
    run "$M" analyze riskdiff --db "$db" --label set --set1 a --set2 b --activate 1 --deactivate 1 --format json
    check "$d: analyze riskdiff on a real trace" test "$rc" -eq 0 -a -n "$(grep -F '"selection"' "$T/out")"
    # plans: METHODS' logit operators, loadable by the engine commands
    run "$M" analyze riskdiff --db "$db" --label set --set1 a --set2 b --activate 1 --deactivate 1 \
        --role all --out "$T/rd.plan"
    check "$d: riskdiff plan uses SteerMoE's operators (raise / lower by 0.01)" \
        grep -Eq '^raise [0-9]+:[0-9]+:0.01; lower [0-9]+:[0-9]+:0.01$' "$T/rd.plan"
    run "$M" generate "$mdl" -p "The cat" -n 2 -t 1 --interventions "$T/rd.plan"
    check "$d: generate --interventions loads the riskdiff plan" test "$rc" -eq 0
    run "$M" analyze crosslingual --db "$db" --tau 0 --out "$T/cl.plan"
    check "$d: crosslingual plan, default soft operator: steer-std with lambda 0.5" \
        grep -Eq '^steer-std [0-9,*-]+:[0-9,*-]+:\+0.5' "$T/cl.plan"
    run "$M" analyze crosslingual --db "$db" --tau 0 --operator hard --out "$T/cl2.plan"
    check "$d: crosslingual --operator hard: raise with margin 0" grep -Eq '^raise [0-9,*-]+:[0-9,*-]+:0$' "$T/cl2.plan"
    run "$M" analyze crosslingual --db "$db" --operator gentle
    check "$d: crosslingual --operator gentle: usage error" test "$rc" -eq 2
    printf 'raise 99:1\n' >"$T/bad.plan"
    run "$M" generate "$mdl" -p "x" -n 1 --interventions "$T/bad.plan"
    check "$d: bad plan file: status 1 (a file's content, not a usage error), one line naming the file" \
        test "$rc" -eq 1 -a "$(wc -l <"$T/err")" -eq 1 -a -n "$(grep -F bad.plan "$T/err")"
    local nmoe
    nmoe=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["prompts"][0]["routing"]))' \
        "$T/dump-$d.json" 2>/dev/null)
    run "$M" sql --db "$db" "SELECT count(*) FROM an_load" --csv
    check "$d: an_load has one row per MoE layer ($nmoe)" test -n "$nmoe" -a "$(tail -1 "$T/out")" = "$nmoe"
}
# deepseek2: a dense lead block, so MoE layers are 1 and 2
run "$M" synth --arch deepseek2 --layers 3 --embd 64 --heads 4 --experts 8 --used 2 --ff 32 --vocab 600 --seed 9 \
    "$T/synth.gguf"
check "synth deepseek2 model for the real trace${err:+ ($err)}" test "$rc" -eq 0
real_trace synth-deepseek2 "$T/synth.gguf"
# gpt-oss stores its router logits in probs: the checks above hold as for any
# model (stored = dump's), and the analyses must still see a distribution
# (entropies within [0, ln 8], mean probabilities summing to 1)
run "$M" synth --arch gpt-oss --layers 2 --embd 64 --heads 4 --experts 8 --used 2 --ff 32 --vocab 600 --seed 9 \
    "$T/synth-go.gguf"
check "synth gpt-oss model for the real trace${err:+ ($err)}" test "$rc" -eq 0
real_trace synth-gpt-oss "$T/synth-go.gguf"
run "$M" sql --db "$T/t-synth-gpt-oss.db" "SELECT score_func FROM model" --csv
check "gpt-oss model row: score_func softmax_topk" test "$(tail -1 "$T/out")" = softmax_topk
run "$M" analyze load --db "$T/t-synth-gpt-oss.db" --format json
check "load on gpt-oss: token entropies within [0, ln 8], mean probabilities summing to 1" python3 -c '
import json, math, sys
d = json.load(open(sys.argv[1]))
ok = len(d["layers"]) == 2
for l in d["layers"]:
    h = l["token_entropy_mean"]
    ok = ok and 0 < h <= math.log(8) + 1e-9 and abs(sum(l["pbar"]) - 1) < 1e-4 and min(l["pbar"]) >= 0
sys.exit(0 if ok else 1)' "$T/out"
if [ -n "$SHARED" ]; then
    real_trace olmoe-tiny "$SHARED/fixtures/models/olmoe-tiny.F32.gguf"
else
    skip "real trace of a fixture model: $SHARED_WHY"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
