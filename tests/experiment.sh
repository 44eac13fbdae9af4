#!/bin/bash
# experiment.sh — `moescope experiment`, `compare` and `sweep` (TAP output).
#   * an empty intervention set: KL exactly 0, identical tokens and routing,
#     and a run compared with itself likewise;
#   * a planted model (synth --plant-route digit:1:3: block 1 sends exactly
#     the digit tokens to expert 3): silencing 1:3 removes the association,
#     KL > 0 where the expert was routed and exactly 0 before the first
#     digit, while random controls of the same size leave it in place;
#   * teacher-forced positions align token by token with the baseline, the
#     stored set reloads identically, --resume completes an interrupted pair;
#   * bad input: one-line errors, non-zero exit, nothing written.
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
PY=/usr/bin/python3
. "$(dirname "$0")/tap.sh"
command -v sqlite3 >/dev/null || skip_all "sqlite3 CLI not installed"
T=$(mktemp -d "${TMPDIR:-/tmp}/msexp.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT

SHAPE=(--arch olmoe --layers 4 --embd 64 --heads 4 --experts 8 --used 2 --ff 32 --vocab 512 --type F32)
"$M" synth "${SHAPE[@]}" --plant-route digit:1:3 "$T/m.gguf" >/dev/null 2>"$T/err" ||
    { echo "Bail out! synth failed: $(cat "$T/err")"; exit 1; }
"$M" synth "${SHAPE[@]}" --seed 7 "$T/other.gguf" >/dev/null 2>&1
cat >"$T/p.txt" <<'EOF'
The year 2024 had 366 days and the price rose to 19.99 dollars.
Call 555-0142 before 9:30 or write to 12 Main Street.
for i in range(10): print(i, i + 1, i + 2)
In 1987 the 3 bridges carried 45000 cars, 12 buses and 7 trains a day.
Models of language route each token to a small number of experts.
EOF
q() { sqlite3 "$T/e.db" "$1"; }

# ------------------------------------------------------------ empty set
printf '# an empty set: nothing but comments\n\n' >"$T/empty.iv"
run "$M" experiment "$T/m.gguf" --prompts "$T/p.txt" --db "$T/e.db" --interventions "$T/empty.iv" --gen 6 -t 2
check "empty set: experiment runs ($(head -c 200 "$T/err"))" [ "$rc" -eq 0 ]
check "and notes that the pair will be identical (a null control)" grep -qF "note: the interventions given change nothing" "$T/err"
check "it prints both run ids" grep -q '^baseline run 1, intervened run 2: 5 prompts' "$T/out"
check "KL exactly 0 at every position" [ "$(q 'SELECT count(*) FROM an_compare_pos WHERE run_id=2 AND kl != 0')" = 0 ]
check "... of $(q 'SELECT count(*) FROM an_compare_pos WHERE run_id=2') positions" \
    [ "$(q 'SELECT count(*) FROM an_compare_pos WHERE run_id=2')" -gt 50 ]
check "identical tokens" [ "$(q 'SELECT group_concat(token_id) FROM token WHERE run_id=1')" = \
    "$(q 'SELECT group_concat(token_id) FROM token WHERE run_id=2')" ]
check "identical routing" [ "$(q 'SELECT group_concat(hex(experts)||hex(weights)) FROM routing_packed WHERE run_id=1')" = \
    "$(q 'SELECT group_concat(hex(experts)||hex(weights)) FROM routing_packed WHERE run_id=2')" ]
check "identical free continuation" \
    [ "$(q 'SELECT count(*) FROM an_compare_prompt WHERE run_id=2 AND tokens_run != tokens_baseline')" = 0 ]
check "run 2's parent is run 1, kinds baseline/intervened" \
    [ "$(q 'SELECT kind||parent_run_id FROM run WHERE run_id=2')$(q 'SELECT kind FROM run WHERE run_id=1')" = intervened1baseline ]
run "$M" compare --db "$T/e.db" --baseline 1 --run 2 --format json
pycheck "$T/out" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); o = d["overall"]
print(("ok" if o["kl_mean"] == 0 and o["kl_max"] == 0 else "not ok") + f" - compare json: kl_mean {o['kl_mean']} kl_max {o['kl_max']}")
print(("ok" if o["top1_agreement"] == 1 and o["first_divergence_mean"] is None else "not ok") + " - top-1 agreement 1, no divergence")
print(("ok" if all(r["changed_share"] == 0 and r["jaccard_mean"] == 1 for r in o["routing_shift"]) and len(o["routing_shift"]) == 4 else "not ok") + " - routing shift 0 at 4 layers")
print(("ok" if o["ppl_baseline"] == o["ppl_run"] else "not ok") + " - equal perplexity")
print(("ok" if len(d["prompts"]) == 5 and all(p["diff"] == [] or all(x["op"] == "same" for x in p["diff"]) for p in d["prompts"]) else "not ok") + " - 5 prompts, no word differs")
print(("ok" if all(p["n_scored"] == p["n_tokens"] - 1 for p in d["prompts"]) else "not ok") + " - every prompt has n_scored, one fewer than n_tokens, as the CSV")
EOF
run "$M" compare --db "$T/e.db" --baseline 1 --run 2 --prompts 2
check "the table shows 2 prompts' continuations and says 3 were left out" \
    eval '[ "$(grep -c "^prompt [0-9]*:" "$T/out")" -eq 2 ] && grep -qF "(continuations of 2 of 5 prompts shown" "$T/out"'
run "$M" compare --db "$T/e.db" --baseline 1 --run 1 --format json
pycheck "$T/out" <<'EOF'
import json, sys
o = json.load(open(sys.argv[1]))["overall"]
print(("ok" if o["kl_mean"] == 0 and o["top1_agreement"] == 1 and o["n_diverged"] == 0 else "not ok") + " - a run compared with itself: KL 0, agreement 1")
EOF

# ------------------------------------------------------ planted silencing
run "$M" experiment "$T/m.gguf" --prompts "$T/p.txt" --db "$T/e.db" --silence 1:3 --gen 6 -t 2
check "silence 1:3: runs 3 and 4" grep -q '^baseline run 3, intervened run 4' "$T/out"
# digit positions routed to 1:3 in the baseline / in the intervened run
base13=$(q "SELECT count(*) FROM routing WHERE run_id=3 AND layer=1 AND expert=3")
run13=$(q "SELECT count(*) FROM routing WHERE run_id=4 AND layer=1 AND expert=3")
check "the baseline routes $base13 positions to 1:3, the silenced run none" [ "$base13" -gt 10 ] && [ "$run13" = 0 ]
check "the stored set reloads as written" [ "$(q 'SELECT interventions FROM run WHERE run_id=4')" = "silence 1:3" ]
check "teacher forcing: the intervened run has the baseline's tokens" \
    [ "$(q 'SELECT group_concat(token_id) FROM token WHERE run_id=3')" = "$(q 'SELECT group_concat(token_id) FROM token WHERE run_id=4')" ]
# KL is 0 before the first position routed to 1:3 (causal), > 0 at it.  "0"
# up to float noise: the prompt's prefill is one batch, and the other experts'
# matrix products see more rows once 1:3 is silenced, which may reorder a
# BLAS sum (seen: 1e-13)
pre=$(q "SELECT count(*) FROM an_compare_pos c JOIN prompt p ON p.run_id=3 AND p.idx=c.idx
         WHERE c.run_id=4 AND c.kl > 1e-9 AND c.pos < (SELECT min(r.pos) FROM routing r
         WHERE r.prompt_id=p.prompt_id AND r.layer=1 AND r.expert=3)")
at=$(q "SELECT count(*) FROM an_compare_pos c JOIN prompt p ON p.run_id=3 AND p.idx=c.idx
        JOIN routing r ON r.prompt_id=p.prompt_id AND r.pos=c.pos AND r.layer=1 AND r.expert=3
        WHERE c.run_id=4 AND c.kl > 0")
check "KL 0 (< 1e-9) before the first routed position ($pre above), > 0 at $at of $base13 routed ones" \
    [ "$pre" = 0 ] && [ "$at" -gt $((base13 / 2)) ]
# a control: silencing another block-1 expert leaves the planted association
# in place and moves the digit positions less
run "$M" experiment "$T/m.gguf" --prompts "$T/p.txt" --db "$T/c.db" --silence 1:5 --gen 6 -t 2
ctl13=$(sqlite3 "$T/c.db" "SELECT count(*) FROM routing WHERE run_id=2 AND layer=1 AND expert=3")
check "control silence 1:5: the digits still go to 1:3 ($ctl13 of $base13)" [ "$ctl13" = "$base13" ]
kl_dig() {   # mean KL at the positions the baseline routes to 1:3
    sqlite3 "$1" "SELECT avg(c.kl) FROM an_compare_pos c JOIN prompt p ON p.run_id=$2 AND p.idx=c.idx
        JOIN routing r ON r.prompt_id=p.prompt_id AND r.pos=c.pos AND r.layer=1 AND r.expert=3 WHERE c.run_id=$3"
}
kc=$(kl_dig "$T/e.db" 3 4) kk=$(kl_dig "$T/c.db" 1 2)
check "mean KL at the digit positions: candidate $kc > control $kk" python3 -c "import sys; sys.exit(0 if $kc > $kk else 1)"
run "$M" compare --db "$T/e.db" --baseline 3 --run 4
check "compare prints KL, agreement and the routing shift" grep -q 'KL mean' "$T/out"
lay1=$(awk '$1 == "layer" && $2 == 1 {print $3}' "$T/out")
check "routing shift at layer 1 > 0 ($lay1)" python3 -c "import sys; sys.exit(0 if float('$lay1') > 0 else 1)"
# --format csv carries the JSON's per-prompt values; what a pair lacks is an empty field
"$M" compare --db "$T/e.db" --baseline 3 --run 4 --format json >"$T/cmp.json" 2>/dev/null
run "$M" compare --db "$T/e.db" --baseline 3 --run 4 --format csv
pycheck "$T/out" "$T/cmp.json" <<'EOF'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
js = json.load(open(sys.argv[2]))["prompts"]
def same(c, j):
    return all((c[k] == "" if j[k] is None else abs(float(c[k]) - j[k]) <= 1e-6 * max(1, abs(j[k])))
               for k in ("kl_mean", "kl_max", "top1_agreement", "ppl_baseline", "ppl_run", "first_divergence"))
ok = len(rows) == len(js) == 5 and all(same(c, j) for c, j in zip(rows, js))
print(("ok" if ok else "not ok") + f" - compare csv = json per prompt ({rows[0] if rows else None})")
ok = all(0 <= float(c["top1_agreement"]) <= 1 for c in rows)
print(("ok" if ok else "not ok") + " - top1_agreement is a share in [0, 1]")
EOF
"$M" trace "$T/m.gguf" --prompts "$T/p.txt" --db "$T/t.db" >/dev/null 2>&1
"$M" trace "$T/m.gguf" --prompts "$T/p.txt" --db "$T/t.db" --silence 1:3 >/dev/null 2>&1
run "$M" compare --db "$T/t.db" --baseline 1 --run 2 --format csv
pycheck "$T/out" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
ok = len(rows) == 5 and all(r["kl_mean"] == r["kl_max"] == r["top1_agreement"] == "" and float(r["ppl_run"]) > 0 for r in rows)
print(("ok" if ok else "not ok") + f" - two traces compared: no KL or agreement in csv, perplexity there ({rows[0] if rows else None})")
EOF
run "$M" compare --db "$T/t.db" --baseline 1 --run 2
bad_cells=$(grep -cE 'nan|divergence -1' "$T/out") p0=$(grep '^prompt 0: ' "$T/out")
check "... and the table says '-' for KL, never nan or -1 ($p0)" [ "$bad_cells" = 0 ] && [ "${p0#*KL mean -, }" != "$p0" ]

# sweep: the candidate against 6 random single-expert controls at layer 1
run "$M" sweep "$T/m.gguf" --prompts "$T/p.txt" --silence-each 1 --random-controls 6 --seed 3 --db "$T/e.db" --format json -t 2
check "sweep --silence-each 1 runs ($(head -c 200 "$T/err"))" [ "$rc" -eq 0 ]
pycheck "$T/out" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
c = [s for s in d["sets"] if s["kind"] == "candidate"]; k = [s for s in d["sets"] if s["kind"] == "control"]
print(("ok" if len(c) == 8 and len(k) == 6 else "not ok") + f" - 8 candidates and 6 controls ({len(c)}, {len(k)})")
ranks = sorted(s["rank"] for s in c)
print(("ok" if ranks == list(range(1, 9)) else "not ok") + f" - candidates ranked 1..8 {ranks}")
print(("ok" if all(s["label"].startswith("control") and s["n_experts"] == 1 for s in k) else "not ok") + " - controls of the same size")
z = [s["z_kl"] for s in c if s["z_kl"] is not None]
print(("ok" if len(z) == 8 else "not ok") + f" - every candidate has a z-score against the controls ({len(z)})")
EOF
run "$M" sweep "$T/m.gguf" --prompts "$T/p.txt" --silence-each 1 --random-controls 2 -t 2
check "sweep table output has ranks and a controls line" grep -q '^controls (2)' "$T/out"
run "$M" sweep "$T/m.gguf" --prompts "$T/p.txt" --silence-each 1 -t 2
pycheck "$T/out" <<'EOF'
import sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
head, rows = lines[0], lines[1:]
def col_ends(s):
    out, i = [], 0
    for t in s.split():
        i = s.index(t, i); i += len(t); out.append(i)
    return out
h = col_ends(head)
ok = len(rows) == 8 and all(col_ends(r)[-6:] == h[-6:] for r in rows)
print(("ok" if ok else "not ok") + f" - sweep table: Δppl and the other headers end over their numbers ({head!r} / {rows[0] if rows else ''!r})")
ok = all(r.split()[-1] == "-" for r in rows) and "nan" not in "".join(rows)
print(("ok" if ok else "not ok") + " - without controls z_kl is '-', not nan")
EOF
run "$M" sweep "$T/m.gguf" --prompts "$T/p.txt" --silence-each 1 -t 2 --format csv
pycheck "$T/out" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
ok = len(rows) == 8 and all(r["z_kl"] == "" and r["z_dppl"] == "" and float(r["kl_mean"]) >= 0 for r in rows)
print(("ok" if ok else "not ok") + f" - sweep csv without controls: empty z fields ({rows[0] if rows else None})")
EOF
check "the sweep is stored" [ "$(q 'SELECT count(*) FROM sweep_candidate')" = 14 ]
# '*' is every layer with experts: deepseek2's leading dense block is skipped
"$M" synth --arch deepseek2 --layers 3 --embd 64 --heads 4 --experts 8 --used 2 --ff 32 --vocab 512 --type F32 "$T/ds.gguf" >/dev/null 2>&1
run "$M" sweep "$T/ds.gguf" --prompts "$T/p.txt" --silence-each '*' --format csv -t 2
nds=$(grep -c '^[0-9]*,candidate,"silence [12]:' "$T/out")
check "sweep --silence-each '*' on deepseek2: the 16 experts of its two MoE layers, not the dense block ($nds; $(head -c 120 "$T/err"))" [ "$rc-$nds" = 0-16 ]

# ---------------------------------------------------------------- resume
run "$M" experiment "$T/m.gguf" --prompts "$T/p.txt" --db "$T/e.db" --silence 1:3 --gen 6 --resume -t 2
check "--resume finds the pair complete" grep -q '^baseline run 3, intervened run 4: 5 prompts (0 written, 5 already present)' "$T/out"
q "DELETE FROM an_compare_pos WHERE run_id=4 AND idx=4; DELETE FROM an_compare_layer WHERE run_id=4 AND idx=4;
   DELETE FROM an_compare_prompt WHERE run_id=4 AND idx=4;
   DELETE FROM routing_packed WHERE prompt_id IN (SELECT prompt_id FROM prompt WHERE run_id IN (3,4) AND idx=4);
   DELETE FROM token WHERE prompt_id IN (SELECT prompt_id FROM prompt WHERE run_id IN (3,4) AND idx=4);
   DELETE FROM prompt WHERE run_id IN (3,4) AND idx=4; UPDATE run SET status='incomplete' WHERE run_id IN (3,4)"
cp "$T/p.txt" "$T/renamed.txt"
run "$M" experiment "$T/m.gguf" --prompts "$T/renamed.txt" --db "$T/e.db" --silence 1:3 --gen 6 --resume -t 2
check "--resume completes a pair missing its last prompt (the prompt file renamed)" grep -q '(1 written, 4 already present)' "$T/out"
check "... and marks both runs complete" [ "$(q "SELECT group_concat(status) FROM run WHERE run_id IN (3,4)")" = complete,complete ]
check "... with the same comparison" [ "$(q 'SELECT count(*) FROM an_compare_prompt WHERE run_id=4')" = 5 ]

# ------------------------------------------------------------- bad input
before=$(q 'SELECT count(*) FROM run')
bad() {   # DESC EXPECTED-TEXT CMD...
    local d=$1 want=$2; shift 2
    run "$@"
    if [ "$rc" -ne 0 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -qF -- "$want" "$T/err"; then ok "$d: $err"
    else nok "$d (rc $rc): $err"; fi
}
printf 'silence 1:2\n# fine\nsilence 9:1\n' >"$T/bad.iv"
bad "intervention file error names the line" "bad.iv:3: " "$M" experiment "$T/m.gguf" --prompts "$T/p.txt" --db "$T/e.db" --interventions "$T/bad.iv"
bad "ser KMIN > k" "ser" "$M" experiment "$T/m.gguf" --prompts "$T/p.txt" --db "$T/e.db" --ser 3:0.5
bad "ser T outside [0, 1]" "ser" "$M" experiment "$T/m.gguf" --prompts "$T/p.txt" --db "$T/e.db" --ser 1:1.5
bad "no intervention given" "no intervention" "$M" experiment "$T/m.gguf" --prompts "$T/p.txt" --db "$T/e.db"
bad "ser KMIN > k, named as typed" "--ser 3:0.5: layer 0: ser" \
    "$M" experiment "$T/m.gguf" --prompts "$T/p.txt" --db "$T/e.db" --ser 3:0.5
check "a flag's value the model cannot take is a usage error (exit 2)" test "$rc" -eq 2
check "nothing written by the failed experiments" [ "$(q 'SELECT count(*) FROM run')" = "$before" ]
bad "unknown run id" "no run 99" "$M" compare --db "$T/e.db" --baseline 1 --run 99
"$M" trace "$T/other.gguf" --prompts "$T/p.txt" --db "$T/e.db" >/dev/null 2>&1
other=$(q 'SELECT max(run_id) FROM run')
bad "runs of different models" "different models" "$M" compare --db "$T/e.db" --baseline 1 --run "$other"
head -3 "$T/p.txt" >"$T/p3.txt"; echo "a different prompt" >>"$T/p3.txt"
"$M" trace "$T/m.gguf" --prompts "$T/p3.txt" --db "$T/e.db" >/dev/null 2>&1
p3=$(q 'SELECT max(run_id) FROM run')
bad "runs of different prompt sets" "different prompt sets" "$M" compare --db "$T/e.db" --baseline 1 --run "$p3"
bad "sweep on a layer out of range" "layer out of range" "$M" sweep "$T/m.gguf" --prompts "$T/p.txt" --silence-each 7
bad "sweep on a malformed layer list" "'1,x' is not a layer list" "$M" sweep "$T/m.gguf" --prompts "$T/p.txt" --silence-each 1,x
bad "sweep on a reversed range" "bad range in '3-1'" "$M" sweep "$T/m.gguf" --prompts "$T/p.txt" --silence-each 3-1
bad "sweep on an empty layer list" "the layer list is empty" "$M" sweep "$T/m.gguf" --prompts "$T/p.txt" --silence-each ""
bad "sweep of a dense block named on purpose" "layer 0 has no experts (dense block)" "$M" sweep "$T/ds.gguf" --prompts "$T/p.txt" --silence-each 0
bad "sweep --from-analysis of an unknown kind: a usage error" "'bogus' is not superexperts, npmi:CLASS or riskdiff (try moescope sweep --help)" "$M" sweep "$T/m.gguf" --prompts "$T/p.txt" --db "$T/e.db" --from-analysis bogus
bad "sweep from an analysis not run" "moescope analyze" "$M" sweep "$T/m.gguf" --prompts "$T/p.txt" --db "$T/e.db" --from-analysis riskdiff
# a refused command leaves no new database behind (trace and import do the same)
$PY -c "print(' '.join(['word'] * 6000))" >"$T/long.txt"
bad "experiment on a prompt longer than the context" "longer than the model's context" \
    "$M" experiment "$T/m.gguf" --prompts "$T/long.txt" --db "$T/new1.db" --silence 1:2
bad "sweep on a prompt longer than the context" "longer than the model's context" \
    "$M" sweep "$T/m.gguf" --prompts "$T/long.txt" --db "$T/new2.db" --silence-each 1
bad "sweep with a layer out of range into a new database" "layer out of range" \
    "$M" sweep "$T/m.gguf" --prompts "$T/p.txt" --db "$T/new3.db" --silence-each 7
bad "sweep --from-analysis on a missing database says so" "new4.db: No such file or directory" \
    "$M" sweep "$T/m.gguf" --prompts "$T/p.txt" --db "$T/new4.db" --from-analysis superexperts
bad "merge of runs that are not shards of one run" "not shards of one run" "$M" merge "$T/e.db" "$T/e.db" --db "$T/new5.db"
check "none of them left a database file ($(ls "$T" | grep new | tr '\n' ' '))" \
    [ -z "$(ls "$T" | grep '^new')" ]
echo "1..$n"
[ "$failed" -eq 0 ]
