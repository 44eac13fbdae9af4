#!/bin/bash
# views-c.sh — `moescope plot` on bad input, for the views superexperts,
# npmi, compare and sweep (TAP output).  Each bad case must give exactly one
# line on stderr naming the problem, a non-zero exit, and leave its output
# directory empty (no figure, no temporary file):
#   unknown view or extension, missing run, prompt or sweep, a trace without
#   --stats, an analysis table from an older schema (a column dropped) and a
#   registry row whose table is gone, unwritable output paths, absurd sizes;
#   --no-run on a missing analysis names the exact `moescope analyze` command,
#   and running that command makes the same plot work.
# Environment (set by tests/meson.build): MOESCOPE.
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
. "$(dirname "$0")/tap.sh"
command -v sqlite3 >/dev/null || skip_all "sqlite3 CLI not installed"
T=$(mktemp -d "${TMPDIR:-/tmp}/msviewsc.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT

SHAPE=(--arch olmoe --layers 4 --embd 64 --heads 4 --experts 8 --used 2 --ff 32 --vocab 512 --type F32)
cat >"$T/p.txt" <<'EOF'
The year 2024 had 366 days and the price rose to 19.99 dollars.
Call 555-0142 before 9:30 or write to 12 Main Street.
for i in range(10): print(i, i + 1, i + 2)
The students walked along the river past the old mill.
EOF
setup() { "$@" >/dev/null 2>"$T/err" || { echo "Bail out! $*: $(head -c 300 "$T/err")"; exit 1; }; }
setup "$M" synth "${SHAPE[@]}" "$T/m.gguf"
setup "$M" trace "$T/m.gguf" --prompts "$T/p.txt" --db "$T/plain.db" -t 1
setup "$M" trace "$T/m.gguf" --prompts "$T/p.txt" --db "$T/stats.db" --stats -t 1
setup "$M" experiment "$T/m.gguf" --prompts "$T/p.txt" --db "$T/exp.db" --silence 1:3 --gen 4 -t 1

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
check "plot --help lists superexperts, npmi, compare and sweep" \
    bash -c 'for v in superexperts npmi compare sweep; do grep -q "^  $v " "$0" || exit 1; done' "$T/out"

# ------------------------------------------------------------ bad input
bad "unknown view" "unknown view 'nosuch'" "$M" plot nosuch --db "$T/stats.db" -o "$O/x.png"
bad "unknown extension" "x.jpg" "$M" plot superexperts --db "$T/stats.db" -o "$O/x.jpg"
bad "missing run" "no run 99" "$M" plot superexperts --db "$T/stats.db" --run 99 -o "$O/x.png"
bad "missing run (npmi)" "no run 42" "$M" plot npmi --db "$T/stats.db" --run 42 -o "$O/x.svg"
bad "missing intervened run" "no run 99" "$M" plot compare --db "$T/exp.db" --run 99 -o "$O/x.png"
bad "missing prompt" "prompt 50 is not in the comparison of run 2 with baseline 1" \
    "$M" plot compare --db "$T/exp.db" --prompt 50 -o "$O/x.pdf"
bad "compare on a trace without experiment" "no intervened run" "$M" plot compare --db "$T/plain.db" -o "$O/x.png"
bad "compare with a run without parent" "run 1 has no parent run" "$M" plot compare --db "$T/exp.db" --run 1 -o "$O/x.png"
bad "missing sweep" "no sweep stored" "$M" plot sweep --db "$T/exp.db" -o "$O/x.png"
bad "missing sweep id" "no sweep 7" "$M" plot sweep --db "$T/exp.db" --sweep 7 -o "$O/x.png"
bad "superexperts on a trace without --stats names the option" "traced without --stats" \
    "$M" plot superexperts --db "$T/plain.db" -o "$O/x.png"
bad "unknown class scheme" "--classes: 'nosuch' is not text, token, label:NAME or pos[:B] with B >= 1" "$M" plot npmi --db "$T/stats.db" --classes nosuch -o "$O/x.png"
bad "missing database" "nosuch.db" "$M" plot npmi --db "$T/nosuch.db" -o "$O/x.png"

# unwritable output paths
echo x >"$T/afile"
bad "output directory that does not exist" "$O/nodir/x.png" \
    "$M" plot superexperts --db "$T/stats.db" -o "$O/nodir/x.png"
rm -rf "$O" && mkdir -p "$O"
run "$M" plot superexperts --db "$T/stats.db" -o "$T/afile/x.png"
check "output below a regular file: one line, exit 1 ($(head -c 200 "$T/err"))" \
    [ "$rc" -eq 1 -a "$(wc -l <"$T/err")" -eq 1 -a "$(cat "$T/afile")" = x ]

# absurd sizes: refused by the option parser, or too small for the view
bad "--width 0" "--width" "$M" plot superexperts --db "$T/stats.db" --width 0 -o "$O/x.png"
bad "--width 50000" "--width" "$M" plot npmi --db "$T/stats.db" --width 50000 -o "$O/x.png"
bad "--height -3" "--height" "$M" plot sweep --db "$T/exp.db" --height -3 -o "$O/x.png"
bad "--scale 16 at 8000 wide is over the PNG limit" "20000" \
    "$M" plot superexperts --db "$T/stats.db" --width 8000 --height 600 --scale 16 -o "$O/x.png"
bad "compare at 100x80 is too small" "too small" \
    "$M" plot compare --db "$T/exp.db" --width 100 --height 80 -o "$O/x.png"
bad "npmi at 40x40 is too small" "too small" "$M" plot npmi --db "$T/stats.db" --width 40 --height 40 -o "$O/x.svg"

# --no-run names the command that computes the analysis; that command makes it work
cp "$T/stats.db" "$T/norun.db"
for view in superexperts npmi; do
    bad "--no-run $view: names the analysis command" "moescope analyze $view --db $T/norun.db --run 1" \
        "$M" plot "$view" --db "$T/norun.db" --no-run -o "$O/x.png"
    cmd=$(sed -n 's/.*run `moescope \([^`]*\)`.*/\1/p' "$T/err")
    # shellcheck disable=SC2086
    setup "$M" $cmd
    rm -rf "$O" && mkdir -p "$O"
    run "$M" plot "$view" --db "$T/norun.db" --no-run -o "$O/x.png"
    check "--no-run $view after \`moescope $cmd\`: the figure is made" \
        [ "$rc" -eq 0 -a "$(ls -A "$O")" = x.png -a "$(head -c 4 "$O/x.png" | od -An -c | tr -d ' ')" = 211PNG ]
done
bad "--no-run npmi with another class scheme: names it" \
    "moescope analyze npmi --db $T/norun.db --run 1 --by pos:8" \
    "$M" plot npmi --db "$T/norun.db" --no-run --classes pos:8 -o "$O/x.png"

# an analysis table from an older schema: a column the view needs is missing
cp "$T/norun.db" "$T/old.db"
sqlite3 "$T/old.db" "ALTER TABLE an_superexperts_all DROP COLUMN is_se; ALTER TABLE an_npmi DROP COLUMN n_y"
bad "older result table without is_se: names the table and column" \
    "result table 'an_superexperts_all' has no column 'is_se'" \
    "$M" plot superexperts --db "$T/old.db" -o "$O/x.png"
check "... and the command that rewrites it" grep -qF "run \`moescope analyze superexperts --db $T/old.db --run 1\` again" "$T/err"
bad "older result table without n_y" "result table 'an_npmi' has no column 'n_y'" \
    "$M" plot npmi --db "$T/old.db" -o "$O/x.png"
# the registry names a table that is gone
cp "$T/norun.db" "$T/gone.db"
sqlite3 "$T/gone.db" "DROP TABLE an_superexperts_all; DROP TABLE an_npmi"
bad "registry row without its table (superexperts)" "result table 'an_superexperts_all' is registered but missing" \
    "$M" plot superexperts --db "$T/gone.db" -o "$O/x.png"
bad "registry row without its table (npmi)" "run \`moescope analyze npmi --db $T/gone.db --run 1\` again" \
    "$M" plot npmi --db "$T/gone.db" -o "$O/x.png"

# a good figure replaces an existing file only when complete
rm -rf "$O" && mkdir -p "$O"
echo keep >"$O/x.png"
run "$M" plot compare --db "$T/exp.db" --width 60 --height 60 -o "$O/x.png"
check "a failed plot leaves an existing file as it was" [ "$rc" -ne 0 -a "$(cat "$O/x.png")" = keep -a "$(ls -A "$O")" = x.png ]
run "$M" plot compare --db "$T/exp.db" -o "$O/x.png"
check "a good plot replaces it, nothing else left" [ "$rc" -eq 0 -a "$(ls -A "$O")" = x.png -a "$(head -c 4 "$O/x.png" | od -An -c | tr -d ' ')" = 211PNG ]

echo "1..$n"
[ "$failed" -eq 0 ]
