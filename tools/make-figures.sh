#!/usr/bin/env bash
# make-figures.sh — the gallery of docs/figures.md: every view that
# `moescope plot --help` lists, rendered from the demo trace, and the
# gallery section of docs/figures.md rewritten with each figure and the
# command that made it.
#   tools/make-figures.sh [BUILD_DIR] [WORK_DIR]
# BUILD_DIR defaults to build/.  WORK_DIR (default: a new temporary
# directory) holds the databases; the commands run inside it with data/
# linked to the repository's, so each printed command is exactly what ran
# (`moescope` standing for BUILD_DIR/app/moescope).  An existing demo.db /
# exp.db in WORK_DIR is reused.
#
# Views are taken from the registry, not from a list here: a view this
# script has no special case for is plotted from the demo trace with
# defaults (`plot VIEW --db demo.db`), so new views join the gallery when
# they are registered.  Special cases: compare and sweep read the
# experiment database exp.db (silencing the demo model's German expert,
# docs/experiments.md); npmi uses the language labels of the prompts.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$ROOT/build}" && pwd)
W=${2:-$(mktemp -d "${TMPDIR:-/tmp}/msfigures.XXXXXX")}
M=$B/app/moescope
OUT=$ROOT/docs/figures
DOC=$ROOT/docs/figures.md
[ -x "$M" ] || { echo "make-figures: $M is not built (ninja -C $B)" >&2; exit 1; }
grep -q '^<!-- gallery:begin' "$DOC" && grep -q '^<!-- gallery:end' "$DOC" ||
    { echo "make-figures: $DOC has no gallery markers" >&2; exit 1; }
mkdir -p "$W" "$OUT"
cd "$W"
[ -e data ] || ln -s "$ROOT/data" data
export OPENBLAS_NUM_THREADS=1
T=${THREADS:-2}

# The setup commands, shown in the gallery as typed (the threads option
# left out) and run when their database is not there yet.
SETUP=(
    "moescope trace data/models/default.gguf --prompts data/prompts/all.jsonl --db demo.db --probs --stats --gen 8"
    "grep '\"language\": \"de\"' data/prompts/parallel.jsonl > de.jsonl"
    "moescope experiment data/models/default.gguf --prompts de.jsonl --db exp.db --silence 1:5 --gen 16"
    "moescope sweep data/models/default.gguf --prompts de.jsonl --db exp.db --silence-each 1 --random-controls 8 --seed 1"
)
run() {
    echo "\$ $1" >&2
    case $1 in
    grep*) eval "$1" ;;
    moescope*) eval "\"\$M\" ${1#moescope } -t $T" >/dev/null ;;
    esac
}
if [ ! -s demo.db ]; then run "${SETUP[0]}"; fi
if [ ! -s exp.db ]; then
    for c in "${SETUP[@]:1}"; do run "$c"; done
fi

# The views, in registry order, with their one-line summaries.
"$M" plot --help | awk '/^views:/ { on = 1; next } on && /^$/ { exit } on { print }' >views.txt
[ -s views.txt ] || { echo "make-figures: moescope plot --help lists no views" >&2; exit 1; }

args_of() {
    case $1 in
    compare) echo "--db exp.db --prompt 2" ;;
    sweep) echo "--db exp.db" ;;
    npmi) echo "--db demo.db --classes label:language" ;;
    *) echo "--db demo.db" ;;
    esac
}

G=$W/gallery.md
{
    echo "<!-- gallery:begin (written by tools/make-figures.sh; edit the script, not this section) -->"
    echo
    echo "## Gallery"
    echo
    echo "Every view of \`moescope plot\`, drawn from the demo trace (the bundled model"
    echo "\`data/models/default.gguf\` over the bundled prompts, as \`moescope demo\` traces them) and,"
    echo "for \`compare\` and \`sweep\`, an experiment silencing the demo model's German expert 1:5"
    echo "(see [experiments.md](experiments.md)). The databases were made with:"
    echo
    echo '```sh'
    printf '%s\n' "${SETUP[@]}"
    echo '```'
    echo
    echo "Each figure below shows the command that drew it, at the view's default size. Any view"
    echo "also writes SVG or PDF (\`-o FILE.svg\`, \`-o FILE.pdf\`) and takes \`--width\`, \`--height\`,"
    echo "\`--scale\` and \`--title\`; \`moescope plot --help\` lists the options. Regenerate this section"
    echo "and the images with \`tools/make-figures.sh\`."
    echo
} >"$G"
failed=0
while read -r name summary; do
    [ -n "$name" ] || continue
    # shellcheck disable=SC2046
    set -- $(args_of "$name")
    cmd="moescope plot $name $* -o $name.png"
    echo "\$ $cmd" >&2
    t0=$(date +%s.%N)
    if "$M" plot "$name" "$@" -o "$OUT/$name.png" 2>"$W/err"; then
        t1=$(date +%s.%N)
        printf '  %.2f s\n' "$(echo "$t1 - $t0" | bc)" >&2
        {
            echo "### \`$name\`"
            echo
            echo "$summary"
            echo
            echo '```sh'
            echo "$cmd"
            echo '```'
            echo
            echo "![$name]($(basename "$OUT")/$name.png)"
            echo
        } >>"$G"
    else
        failed=$((failed + 1))
        echo "make-figures: $name: $(cat "$W/err")" >&2
    fi
done <views.txt
echo "<!-- gallery:end -->" >>"$G"

# Replace the section between the markers (inclusive) in docs/figures.md.
awk -v g="$G" '
    /^<!-- gallery:begin/ { while ((getline l < g) > 0) print l; skip = 1; next }
    /^<!-- gallery:end/ { skip = 0; next }
    !skip { print }' "$DOC" >"$DOC.tmp"
mv "$DOC.tmp" "$DOC"
echo "make-figures: $(grep -c . views.txt) views, $failed failed; images in $OUT" >&2
[ "$failed" -eq 0 ]
