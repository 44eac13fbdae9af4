#!/bin/bash
# planted.sh — planted-structure models (TAP): `moescope synth --plant-*`
# writes a model with a known routing structure, `moescope trace` runs it,
# and each analysis must recover exactly what was planted:
#   --plant-route digit:L:E  -> load / npmi: E at block L serves exactly the
#                               digit tokens (rank 0), nPMI 1;
#   --plant-super L:E:IDS    -> superexperts: (L, E) is the only super expert,
#                               routed exactly the IDS occurrences, evidence
#                               and massive activation on one of them;
#   --plant-chain            -> routing identical at every layer: affinity
#                               P[i][i] = 1, top-1 concentration and NMI 1,
#                               equal loads and consistency at every layer.
# Expected values come from the token table (the pieces), never from a
# previous run.  PLANT_ARCH / PLANT_TYPE pick the architecture / weight type
# (default olmoe / F32).
# Environment (set by tests/meson.build): MOESCOPE.
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/msplant.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
ARCH=${PLANT_ARCH:-olmoe}
TYPE=${PLANT_TYPE:-F32}

. "$(dirname "$0")/tap.sh"
[ -x "$PY" ] || skip_all "$PY not available"

SHAPE=(--arch "$ARCH" --layers 4 --embd 64 --heads 4 --experts 8 --used 2 --ff 32 --vocab 512 --type "$TYPE")
# deepseek2: block 0 is dense, so the planted blocks are 1 and 2 anyway
cat >"$T/prompts.txt" <<'EOF'
The year 2024 had 366 days and the price rose to 19.99 dollars.
Call 555-0142 before 9:30 or write to 12 Main Street.
def mean(values): return sum(values) / len(values)
The students walked along the river past the old mill.
for i in range(10): print(i, i + 1, i + 2)
Models of language route each token to a small number of experts.
In 1987 the 3 bridges carried 45000 cars, 12 buses and 7 trains a day.
EOF

# tokens of the trace: prompt, pos, id, piece bytes (hex)
# (prompt = the prompt's index in the file, as the analyses report it)
tokens() { "$M" sql --db "$1" --csv "SELECT p.idx AS prompt_id, t.pos, t.token_id, hex(t.piece_bytes) AS hex
    FROM token t JOIN prompt p USING (run_id, prompt_id) ORDER BY 1, 2" >"$2"; }
# routing: prompt, pos, layer, rank, expert
routing() { "$M" sql --db "$1" --csv "SELECT p.idx AS prompt_id, r.pos, r.layer, r.rank, r.expert
    FROM routing r JOIN prompt p USING (run_id, prompt_id) ORDER BY 1, 2, 3, 4" >"$2"; }

# ------------------------------------------------------------ usage errors
run "$M" synth "${SHAPE[@]}" --plant-route digit:4:1 "$T/x.gguf"
check "plant-route on a layer out of range is a usage error" \
    test "$rc" -eq 2 -a ! -e "$T/x.gguf"
grep -q 'not a MoE layer' "$T/err" || nok "message names the layer: $(cat "$T/err")"
run "$M" synth "${SHAPE[@]}" --plant-route vowels:1:1 "$T/x.gguf"
check "unknown class is a usage error" test "$rc" -eq 2 -a ! -e "$T/x.gguf"
run "$M" synth "${SHAPE[@]}" --plant-super 1:9:3 "$T/x.gguf"
check "super expert out of range is a usage error" test "$rc" -eq 2 -a ! -e "$T/x.gguf"
run "$M" synth "${SHAPE[@]}" --plant-super 1:2:5,x "$T/x.gguf"
check "malformed token list is a usage error" test "$rc" -eq 2 -a ! -e "$T/x.gguf"
run "$M" synth "${SHAPE[@]}" --plant-super 1:2:512 "$T/x.gguf"
check "token id beyond the vocabulary is a usage error" test "$rc" -eq 2 -a ! -e "$T/x.gguf"

# ------------------------------------------------------------ planted route
RL=2 RE=5
run "$M" synth "${SHAPE[@]}" --plant-route digit:$RL:$RE -t 1 "$T/route.gguf"
check "synth --plant-route" test "$rc" -eq 0
run "$M" synth "${SHAPE[@]}" --plant-route digit:$RL:$RE -t 3 "$T/route3.gguf"
check "planted model does not depend on the thread count" cmp -s "$T/route.gguf" "$T/route3.gguf"
run "$M" synth "${SHAPE[@]}" "$T/plain.gguf"
check "planted model differs from the plain one" test "$rc" -eq 0 -a -n "$(cmp "$T/route.gguf" "$T/plain.gguf")"
run "$M" trace "$T/route.gguf" --prompts "$T/prompts.txt" --db "$T/route.db"
check "trace planted-route model" test "$rc" -eq 0
tokens "$T/route.db" "$T/route.tok"
routing "$T/route.db" "$T/route.rt"
"$M" analyze load --db "$T/route.db" --layer $RL --format json >"$T/load.json" 2>"$T/err"
"$M" analyze npmi --db "$T/route.db" --by text --min-support 1 --format json >"$T/npmi.json" 2>>"$T/err"
pycheck "$T" $RL $RE <<'EOF'
import csv, json, math, sys
T, L, E = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def is_digit(hexbytes):
    b = bytes.fromhex(hexbytes)
    rest = [c for c in b if c not in b' \t\n\r\v\f']
    return len(rest) > 0 and all(0x30 <= c <= 0x39 for c in rest)
toks = list(csv.DictReader(open(T + '/route.tok')))
digit = {(t['prompt_id'], t['pos']) for t in toks if is_digit(t["hex"])}
N = len(toks)
rt = list(csv.DictReader(open(T + '/route.rt')))
sel = {(r['prompt_id'], r['pos']) for r in rt if int(r['layer']) == L and int(r['expert']) == E}
top = {(r['prompt_id'], r['pos']) for r in rt if int(r['layer']) == L and int(r['expert']) == E and r['rank'] == '0'}
def ok(cond, what):
    print(('ok' if cond else 'not ok') + ' - route: ' + what)
    if not cond: sys.exit(1)
ok(len(digit) >= 10, f'prompts have digit tokens ({len(digit)})')
ok(sel == digit and top == digit, f'block {L} expert {E} selects exactly the digit tokens, at rank 0 ({len(sel)} vs {len(digit)})')
load = json.load(open(T + '/load.json'))
lay = [x for x in load['layers'] if x['layer'] == L]
ok(len(lay) == 1 and lay[0]['counts'][E] == len(digit) and lay[0]['n_tokens'] == N,
   f'load: count of expert {E} = number of digit tokens')
rows = json.load(open(T + '/npmi.json'))['rows']
d = [r for r in rows if r['class'] == 'digit']
ok(len(d) > 0 and d[0]['layer'] == L and d[0]['expert'] == E, 'npmi: the planted pair ranks first for digits')
r = d[0]
ok(r['count'] == r['n_x'] == r['n_y'] == len(digit) and r['N'] == N, 'npmi: n_xy = n_x = n_y = digit tokens')
pxy, px, py = r['count'] / N, r['n_x'] / N, r['n_y'] / N
expect = math.log2(pxy / (px * py)) / -math.log2(pxy)
ok(abs(r['npmi'] - expect) < 1e-12 and abs(r['npmi'] - 1) < 1e-12, f'npmi = {r["npmi"]} = value from the counts (1)')
others = [x for x in rows if x['layer'] == L and x['expert'] == E and x['class'] != 'digit']
ok(all(x['count'] == 0 or x['npmi'] < 0 for x in others) or not others, 'npmi: no other class shares the planted expert')
EOF

# ------------------------------------------------------------ super expert
SL=1 SE=3
ids=$("$M" tokenize --no-bos "$T/plain.gguf" -- "The river") || nok "tokenize"
# the first and the last token of "The river": both occur in the prompts
IDS=$(echo "$ids" | awk '{print $1 "," $NF}')
run "$M" synth "${SHAPE[@]}" --plant-super $SL:$SE:$IDS "$T/super.gguf"
check "synth --plant-super $SL:$SE:$IDS" test "$rc" -eq 0
run "$M" trace "$T/super.gguf" --prompts "$T/prompts.txt" --db "$T/super.db" --stats
check "trace planted-super model with --stats" test "$rc" -eq 0
tokens "$T/super.db" "$T/super.tok"
routing "$T/super.db" "$T/super.rt"
"$M" analyze superexperts --db "$T/super.db" --format json >"$T/se.json" 2>"$T/err"
pycheck "$T" $SL $SE "$IDS" <<'EOF'
import csv, json, sys
T, L, E, ids = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), {int(x) for x in sys.argv[4].split(',')}
toks = list(csv.DictReader(open(T + '/super.tok')))
tok_at = {(int(t['prompt_id']), int(t['pos'])): int(t['token_id']) for t in toks}
planted = {k for k, v in tok_at.items() if v in ids}
rt = list(csv.DictReader(open(T + '/super.rt')))
sel = {(int(r['prompt_id']), int(r['pos'])) for r in rt if int(r['layer']) == L and int(r['expert']) == E}
def ok(cond, what):
    print(('ok' if cond else 'not ok') + ' - super: ' + what)
    if not cond: sys.exit(1)
ok(len(planted) >= 3, f'planted tokens occur {len(planted)} times')
ok(sel == planted, f'block {L} expert {E} runs on exactly the planted tokens')
d = json.load(open(T + '/se.json'))
se = d['super_experts']
ok(len(se) == 1 and se[0]['layer'] == L and se[0]['expert'] == E, f'the one super expert is ({L}, {E}): {se}')
ok(se[0]['n_routed'] == len(planted), 'n_routed = occurrences of the planted tokens')
ok(tok_at[(se[0]['prompt'], se[0]['pos'])] in ids, 'evidence token is a planted token')
flat = sorted((v, x['layer'], e) for x in d['experts'] for e, v in enumerate(x['a']) if v is not None)
ok(flat[-1][1:] == (L, E) and flat[-1][0] > 10 * flat[-2][0], 'heat map: planted expert 10x above any other')
ma = [m for m in d['massive_activations'] if m['layer'] == L][0]
ok(tok_at[(ma['prompt'], ma['pos'])] in ids and ma['ratio'] > 10, 'massive activation after block L is on a planted token')
# synth writes the planted output on residual channel D-4 (D = 64 here)
ok(se[0]['channel'] == 60, f'evidence channel of the super expert = planted channel 60 ({se[0]["channel"]})')
ok(ma['channel'] == 60, f'massive activation after block L sits on channel 60 ({ma["channel"]})')
EOF

# ------------------------------------------------------------ chained routing
run "$M" synth "${SHAPE[@]}" --plant-chain "$T/chain.gguf"
check "synth --plant-chain" test "$rc" -eq 0
run "$M" trace "$T/chain.gguf" --prompts "$T/prompts.txt" --db "$T/chain.db"
check "trace planted-chain model" test "$rc" -eq 0
routing "$T/chain.db" "$T/chain.rt"
"$M" analyze affinity --db "$T/chain.db" --format json >"$T/aff.json" 2>"$T/err"
"$M" analyze load --db "$T/chain.db" --format json >"$T/cload.json" 2>>"$T/err"
"$M" analyze consistency --db "$T/chain.db" --format json >"$T/cons.json" 2>>"$T/err"
pycheck "$T" <<'EOF'
import csv, json, sys
T = sys.argv[1]
def ok(cond, what):
    print(('ok' if cond else 'not ok') + ' - chain: ' + what)
    if not cond: sys.exit(1)
rt = list(csv.DictReader(open(T + '/chain.rt')))
by = {}
for r in rt:
    by.setdefault((r['prompt_id'], r['pos']), {}).setdefault(int(r['layer']), []).append(int(r['expert']))
layers = sorted({int(r['layer']) for r in rt})
ok(len(layers) >= 3, f'MoE layers {layers}')
ok(all(len({tuple(v) for v in per.values()}) == 1 and len(per) == len(layers) for per in by.values()),
   'every token selects the same experts, in the same order, at every layer')
aff = json.load(open(T + '/aff.json'))
k = len(next(iter(by.values()))[layers[0]])
for p in aff['pairs']:
    X = len(p['n'])
    diag = all(p['P'][i][i] == 1.0 and p['C'][i][i] == p['n'][i] for i in range(X) if p['n'][i] > 0)
    ok(diag, f'affinity {p["from"]}->{p["to"]}: P[i][i] = 1, C[i][i] = n_i')
    ok(p['concentration_top1'] == 1.0 and abs(p['nmi_top1'] - 1.0) < 1e-9, 'top-1 concentration = NMI = 1')
    ok(abs(p['concentration'] - 1.0 / k) < 1e-12, f'top-k concentration = 1/k = {1.0 / k}')
ok(len(aff['pairs']) == len(layers) - 1, 'one affinity pair per adjacent MoE layers')
load = json.load(open(T + '/cload.json'))
ok(len({tuple(x['counts']) for x in load['layers']}) == 1, 'load: the same counts at every layer')
cons = json.load(open(T + '/cons.json'))
strip = [json.dumps({k2: v for k2, v in x.items() if k2 != 'layer'}, sort_keys=True) for x in cons['layers']]
ok(len(cons['layers']) == len(layers) and len(set(strip)) == 1, 'consistency: the same at every layer')
EOF

echo "1..$n"
[ "$failed" -eq 0 ]
