#!/bin/bash
# views-a.sh — `moescope plot` for the views tokens, heatmap and load (TAP
# output).  The defaults just work on a fresh trace (`plot load --db t.db -o
# load.pdf`), every colouring and option the views take renders, and each
# bad case gives exactly one line on stderr naming the problem, a non-zero
# exit, and leaves its output directory empty (no figure, no temporary file):
# missing run or prompt, a block range without MoE blocks, a colouring the
# view or the trace cannot give, unreadable databases, unwritable paths,
# absurd sizes; --no-run names the `moescope analyze load` command, and
# after that command the same plot works; a stored load table from an older
# layout (a column dropped) is recomputed, never misread.
# Environment (set by tests/meson.build): MOESCOPE.
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
. "$(dirname "$0")/tap.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/msviewsa.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT

SHAPE=(--arch olmoe --layers 4 --embd 64 --heads 4 --experts 8 --used 2 --ff 32 --vocab 512 --type F32)
cat >"$T/p.txt" <<'EOF'
The year 2024 had 366 days and the price rose to 19.99 dollars.
Call 555-0142 before 9:30 or write to 12 Main Street.
EOF
setup() { "$@" >/dev/null 2>"$T/err" || { echo "Bail out! $*: $(head -c 300 "$T/err")"; exit 1; }; }
setup "$M" synth "${SHAPE[@]}" "$T/m.gguf"
setup "$M" trace "$T/m.gguf" --prompts "$T/p.txt" --db "$T/plain.db" -t 1
setup "$M" trace "$T/m.gguf" --prompts "$T/p.txt" --db "$T/full.db" --probs --stats --gen 4 -t 1

# good DESC FILE CMD...: CMD succeeds, silently, and FILE is a figure
# (PNG/SVG read back by python3's header check, PDF by pdftoppm when there)
good() {
    local d=$1 f=$2
    shift 2
    rm -f "$f"
    run "$@"
    local kind=bad
    case $f in
        *.png) head -c 8 "$f" 2>/dev/null | od -An -tx1 | grep -q '89 50 4e 47 0d 0a 1a 0a' && kind=ok ;;
        *.svg) grep -q '<svg' "$f" 2>/dev/null && kind=ok ;;
        *.pdf) if command -v pdftoppm >/dev/null; then
                   pdftoppm -png -r 20 -singlefile "$f" "$T/pdfcheck" 2>/dev/null && kind=ok
               else
                   head -c 5 "$f" 2>/dev/null | grep -q '%PDF-' && kind=ok
               fi ;;
    esac
    if [ "$rc" -eq 0 ] && [ "$kind" = ok ] && [ ! -s "$T/err" ]; then
        ok "$d"
    else
        nok "$d: exit $rc, figure $kind: $(head -c 400 "$T/err")"
    fi
}

# bad DESC EXPECT CMD...: CMD fails with one line on stderr holding EXPECT
# (a fixed string) and leaves the output directory $O empty
O=$T/out.d
bad() {
    local d=$1 want=$2
    shift 2
    rm -rf "$O"
    mkdir -p "$O"
    run "$@"
    local lines left
    lines=$(wc -l <"$T/err")
    left=$(ls -A "$O" | tr '\n' ' ')
    if [ "$rc" -ne 0 ] && [ "$lines" -eq 1 ] && grep -qF -- "$want" "$T/err" && [ -z "$left" ]; then
        ok "$d"
    else
        nok "$d: exit $rc, $lines stderr lines, left in the directory: '$left': $(head -c 400 "$T/err")"
    fi
}

# ------------------------------------------------------------ the views
run "$M" plot --help
check "plot --help lists tokens, heatmap and load" \
    bash -c 'for v in tokens heatmap load; do grep -q "^  $v " "$0" || exit 1; done' "$T/out"

G=$T/good
mkdir -p "$G"
good "plot load --db t.db -o load.pdf just works" "$G/load.pdf" "$M" plot load --db "$T/plain.db" -o "$G/load.pdf"
good "plot heatmap, defaults, PNG" "$G/h.png" "$M" plot heatmap --db "$T/plain.db" -o "$G/h.png"
good "plot tokens, defaults, SVG" "$G/t.svg" "$M" plot tokens --db "$T/plain.db" -o "$G/t.svg"
for c in expert entropy weight hidden; do
    good "heatmap --color-by $c" "$G/h-$c.png" "$M" plot heatmap --db "$T/full.db" --color-by "$c" -o "$G/h-$c.png"
done
good "heatmap --prompt 1 --layers 1-2 --width 640 --height 420 --scale 2 --title T" "$G/h2.png" \
    "$M" plot heatmap --db "$T/full.db" --prompt 1 --layers 1-2 --width 640 --height 420 --scale 2 --title "T" \
    -o "$G/h2.png"
good "tokens --layer 3 --color-by entropy, PDF" "$G/t3.pdf" \
    "$M" plot tokens --db "$T/full.db" --layer 3 --color-by entropy -o "$G/t3.pdf"
good "load --layers 2-3 --run 1, SVG" "$G/l.svg" "$M" plot load --db "$T/full.db" --layers 2-3 --run 1 -o "$G/l.svg"
if command -v python3 >/dev/null; then
    pycheck "$G/h2.png" "$G/t.svg" <<'EOF'
import struct, sys
with open(sys.argv[1], 'rb') as f:
    head = f.read(24)
w, h = struct.unpack('>II', head[16:24])
print(('ok' if (w, h) == (1280, 840) else 'not ok') + ' - --width 640 --height 420 --scale 2 gives a 1280x840 PNG (%dx%d)' % (w, h))
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[2]).getroot()
texts = ' '.join((e.text or '') for e in root.iter('{http://www.w3.org/2000/svg}text'))
for want in ('Top-1 expert', 'The', 'had', 'Line start'):
    print(('ok' if want in texts else 'not ok') + ' - the tokens SVG holds %r' % want)
EOF
else
    skip "python3 not installed: PNG size and SVG text checks"
fi

# ------------------------------------------------------------ bad input
bad "missing run" "no run 99" "$M" plot heatmap --db "$T/plain.db" --run 99 -o "$O/x.png"
bad "missing prompt" "has no prompt 7 (it has 2, numbered from 0)" \
    "$M" plot heatmap --db "$T/plain.db" --prompt 7 -o "$O/x.png"
bad "missing prompt (tokens)" "no prompt 2" "$M" plot tokens --db "$T/plain.db" --prompt 2 -o "$O/x.svg"
bad "blocks the model lacks" "run 1: --layers 7-9 reaches past its last block (blocks 0..3)" \
    "$M" plot heatmap --db "$T/plain.db" --layers 7-9 -o "$O/x.pdf"
bad "blocks partly past the last" "run 1: --layers 0-9 reaches past its last block (blocks 0..3)" \
    "$M" plot heatmap --db "$T/plain.db" --layers 0-9 -o "$O/x.pdf"
bad "an unknown matrix order: a usage error" "--order must be id, load or cluster (got 'bogus') (try moescope plot --help)" \
    "$M" plot coactivation --db "$T/plain.db" --order bogus -o "$O/x.png"
bad "an unknown class scheme: a usage error" "--classes: 'pos:0' is not text, token, label:NAME or pos[:B] with B >= 1 (try moescope plot --help)" \
    "$M" plot npmi --db "$T/plain.db" --classes pos:0 -o "$O/x.png"
bad "tokens at a block the model lacks" "block 9 of run 1 is not a shown MoE layer" \
    "$M" plot tokens --db "$T/plain.db" --layer 9 -o "$O/x.png"
bad "load at a block the model lacks" "plain.db: block 9 of run 1 is not a MoE layer (the model has 4 blocks)" \
    "$M" plot load --db "$T/plain.db" --layer 9 -o "$O/x.png"
bad "tokens --color-by weight is refused" "tokens colours by expert or entropy (got weight)" \
    "$M" plot tokens --db "$T/plain.db" --color-by weight -o "$O/x.png"
# a colouring the view does not take is a usage error (exit 2), named before the trace is read
bad "coactivation --color-by entropy is refused" "coactivation colours by lift or jaccard (got entropy) (try moescope plot --help)" \
    "$M" plot coactivation --db "$T/plain.db" --color-by entropy -o "$O/x.png"
[ "$rc" -eq 2 ] && ok "and exits 2, as usage errors do" || nok "coactivation --color-by entropy exits $rc, not 2"
bad "a view without colourings says so" "load takes no --color-by (got lift)" \
    "$M" plot load --db "$T/plain.db" --color-by lift -o "$O/x.png"
bad "heatmap --color-by hidden without --stats names the option" "trace with --stats" \
    "$M" plot heatmap --db "$T/plain.db" --color-by hidden -o "$O/x.png"
bad "unknown colouring" "--color-by must be" "$M" plot heatmap --db "$T/plain.db" --color-by nosuch -o "$O/x.png"
bad "missing database" "nosuch.db" "$M" plot load --db "$T/nosuch.db" -o "$O/x.png"
echo "not a database at all, just text" >"$T/garbage.db"
bad "a file that is not a database" "garbage.db" "$M" plot heatmap --db "$T/garbage.db" -o "$O/x.png"
bad "absurd size" "too large" "$M" plot heatmap --db "$T/plain.db" --width 20000 --height 20000 -o "$O/x.png"
bad "tiny size" "--width" "$M" plot load --db "$T/plain.db" --width 5 -o "$O/x.png"
bad "a figure too small for its text" "too small" \
    "$M" plot tokens --db "$T/plain.db" --width 40 --height 30 -o "$O/x.png"
bad "output directory that does not exist" "$O/nodir/x.png" \
    "$M" plot heatmap --db "$T/plain.db" -o "$O/nodir/x.png"
bad "unknown extension" "x.jpg" "$M" plot tokens --db "$T/plain.db" -o "$O/x.jpg"

# --no-run, the command it names, and a stale or older stored result
bad "load --no-run without the analysis names the command" \
    "run \`moescope analyze load --db $T/full.db --run 1\` first" \
    "$M" plot load --db "$T/full.db" --no-run -o "$O/x.png"
run "$M" analyze load --db "$T/full.db" --run 1
check "moescope analyze load (the named command) runs" [ "$rc" -eq 0 ]
good "after it, load --no-run reads the stored result" "$G/l-stored.png" \
    "$M" plot load --db "$T/full.db" --no-run -o "$G/l-stored.png"
# the stored result against a fresh computation on a copy without the
# registry rows: the same figure
if command -v sqlite3 >/dev/null; then
    cp "$T/full.db" "$T/nostore.db"
    sqlite3 "$T/nostore.db" "DELETE FROM analysis WHERE name = 'load'"
    good "load computed on a copy without the stored result" "$G/l-fresh.png" \
        "$M" plot load --db "$T/nostore.db" -o "$G/l-fresh.png"
    check "the stored and the computed load give identical PNGs" cmp -s "$G/l-stored.png" "$G/l-fresh.png"
    run "$M" analyze load --db "$T/full.db" --run 1 --layer 2
    bad "a stored load over one layer only is not the figure's: --no-run names the command" \
        "no current load analysis over every layer" "$M" plot load --db "$T/full.db" --no-run -o "$O/x.png"
    run "$M" analyze load --db "$T/full.db" --run 1
    sqlite3 "$T/full.db" "ALTER TABLE an_load DROP COLUMN gini"
    bad "an older an_load layout (gini dropped) with --no-run names the command" "moescope analyze load" \
        "$M" plot load --db "$T/full.db" --no-run -o "$O/x.png"
    good "an older an_load layout is recomputed from the trace" "$G/l-old.png" \
        "$M" plot load --db "$T/full.db" -o "$G/l-old.png"
    check "and draws what the current layout does" cmp -s "$G/l-old.png" "$G/l-fresh.png"
else
    skip "sqlite3 CLI not installed: stored vs computed load, older layouts"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
