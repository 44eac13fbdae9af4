#!/bin/bash
# default-model.sh — the bundled model is a real language model (TAP):
#  * data/models/default.gguf exists, is at most 10 MB and loads;
#  * on each domain's held-out excerpt (data/heldout/DOMAIN.txt, text never
#    seen in training) `moescope perplexity` is at most half the perplexity of
#    an add-one unigram model of that domain's training tokens
#    (data/models/default.unigram.json), both scored on exactly the same
#    tokens (the second half of each chunk, as `perplexity --help` says);
#  * routing specialises: tracing data/prompts/all.jsonl, `analyze npmi`
#    finds for code, German, French, Spanish (prompt label `language`) and
#    digits (token-text class) an expert with nPMI >= 0.3 over >= 20 tokens.
#    The same model with its initial weights stays at 0.16-0.21 on these
#    classes (data/models/README.md has both);
#  * `moescope demo`, the README's main job, runs on it.
# Environment (set by tests/meson.build): MOESCOPE, MS_SOURCE_DIR.
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
S=${MS_SOURCE_DIR:?MS_SOURCE_DIR must point at the source tree}
PY=/usr/bin/python3
MODEL=${MS_DEFAULT_MODEL:-$S/data/models/default.gguf}
UNI=${MS_DEFAULT_UNIGRAM:-$S/data/models/default.unigram.json}
HELD=$S/data/heldout
T=$(mktemp -d "${TMPDIR:-/tmp}/msdefault.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/tap.sh"
[ -x "$PY" ] || skip_all "$PY not available"

size=$(stat -c %s "$MODEL" 2>/dev/null || echo 0)
check "default model present and at most 10 MB ($size bytes)" test "$size" -gt 0 -a "$size" -le 10000000
"$M" info "$MODEL" >"$T/info" 2>"$T/err"
check "moescope info reads it" test $? -eq 0
grep -q 'olmoe' "$T/info" || nok "architecture is olmoe: $(head -c 200 "$T/info")"

# ---------------------------------------------------------- perplexity
CTX=256
for f in "$HELD"/*.txt; do
    d=$(basename "$f" .txt)
    "$M" perplexity "$MODEL" --file "$f" --ctx $CTX -t 2 >"$T/ppl.$d" 2>"$T/err"
    if [ $? -ne 0 ]; then nok "$d: perplexity failed: $(cat "$T/err")"; continue; fi
    "$M" tokenize "$MODEL" --no-bos --file "$f" >"$T/ids.$d" 2>>"$T/err" || { nok "$d: tokenize failed"; continue; }
    line=$("$PY" - "$T/ppl.$d" "$T/ids.$d" "$UNI" "$d" $CTX <<'EOF'
import json, math, re, sys
out, idsf, unif, dom, ctx = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
m = re.search(r"PPL = ([0-9.]+)\s+tokens = (\d+)", open(out).read())
ppl, scored = float(m.group(1)), int(m.group(2))
ids = [int(x) for x in open(idsf).read().split()]
uni = json.load(open(unif))
c = uni["counts"][dom]
tot = sum(c) + len(c)
cl = min(len(ids), ctx)
# the targets perplexity scores: chunk[j + 1] for j = cl/2 .. cl-2 of each whole chunk
tg = [ids[k * cl + j + 1] for k in range(len(ids) // cl) for j in range(cl // 2, cl - 1)]
nll = -sum(math.log((c[t] + 1) / tot) for t in tg) / len(tg)
print(f"{ppl} {math.exp(nll):.2f} {scored} {len(tg)}")
EOF
)
    read -r p u sc tg <<<"$line"
    if [ -z "${tg:-}" ]; then nok "$d: baseline computation failed"; continue; fi
    check "$d: held-out perplexity $p <= half the unigram baseline $u ($sc tokens)" \
        "$PY" -c "import sys; p, u, a, b = map(float, sys.argv[1:]); sys.exit(not (a == b and a >= 500 and p <= 0.5 * u))" "$p" "$u" "$sc" "$tg"
done

# ---------------------------------------------------------- specialisation
"$M" trace "$MODEL" --prompts "$S/data/prompts/all.jsonl" --db "$T/t.db" -t 2 >"$T/trace.out" 2>"$T/err"
check "trace data/prompts/all.jsonl" test $? -eq 0
"$M" analyze npmi --db "$T/t.db" --by label:language --format json >"$T/lang.json" 2>"$T/err"
check "npmi by language" test $? -eq 0
"$M" analyze npmi --db "$T/t.db" --by text --format json >"$T/text.json" 2>"$T/err"
check "npmi by token text" test $? -eq 0
pycheck "$T" <<'EOF'
import json, sys
T = sys.argv[1]
for f, classes in (("lang.json", ["code", "de", "fr", "es"]), ("text.json", ["digit"])):
    rows = json.load(open(f"{T}/{f}"))["rows"]
    for c in classes:
        best = max((r for r in rows if r["class"] == c and r["npmi"] is not None and r["count"] >= 20),
                   key=lambda r: r["npmi"], default=None)
        good = best is not None and best["npmi"] >= 0.3
        what = (f"layer {best['layer']} expert {best['expert']} nPMI {best['npmi']:.3f} over {best['count']} tokens"
                if best else "no expert")
        print(("ok" if good else "not ok") + f" - {c}: {what}")
EOF

# ---------------------------------------------------------- the main job
# `moescope demo` (README's main command after set-up) on the default model
# and prompt set, in a scratch directory
if [ -z "${MS_DEFAULT_MODEL:-}" ]; then
    "$M" demo --dir "$T/demo" -t 2 >"$T/demo.out" 2>"$T/err"
    check "moescope demo runs on the bundled model" test $? -eq 0
    grep -q "models/default.gguf" "$T/demo.out" && grep -q "top experts per language label" "$T/demo.out" &&
        grep -q "top experts per token class" "$T/demo.out"
    check "demo traced the bundled model and printed the nPMI summaries" test $? -eq 0
fi

echo "1..$n"
[ "$failed" -eq 0 ]
