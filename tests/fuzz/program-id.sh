#!/usr/bin/env bash
# program-id.sh BUILD TARGET — the name of fuzz-TARGET's program in the
# ledger (tests/fuzz/ledger): the first 16 hex digits of a SHA-256 over the
# compiler's version line, the compile commands of every object linked into
# the executable and its link command (tree paths made relative), and the
# content of every file those objects were compiled from (sources and
# headers, the project's and the system's, as ninja's dependency log lists
# them).  Run from the source tree after the target is built.
#
# Why not the executable's digest: the build uses -march=native, so two
# machines of one kind whose CPUs report different features build
# different code from one tree, and a campaign would restart on every new
# machine.  The source digest changes whenever anything the program is
# built from changes, and names the flags as written ("-march=native").
set -euo pipefail
build=$1 t=$2
src=$PWD
exe=tests/fuzz/fuzz-$t
# the objects a command line writes (-o X.o); none in link and archive lines
objects_of() { grep -oE -- '-o [^ ]+\.o( |$)' | awk '{print $2}' || true; }
cmds=$(ninja -C "$build" -t commands "$exe")
[ -n "$cmds" ] || { echo "$0: no commands for $exe in $build" >&2; exit 1; }
all=$(printf '%s\n' "$cmds" | objects_of | sort -u)
[ -n "$all" ] || { echo "$0: no objects for $exe" >&2; exit 1; }
[ -x "$build/$exe" ] || { echo "$0: $build/$exe is not built" >&2; exit 1; }
# Only the objects the linker took from the static libraries are the
# program: one whose first function is not in the executable was left in
# its archive (so a change to export code, say, does not restart fuzz-db).
# An object without a global function counts, to be safe.
defined=$(nm --defined-only "$build/$exe" | awk 'NF == 3 { print $3 }' | sort -u)
objs=()
for o in $all; do
    f=$(nm -g --defined-only "$build/$o" | awk 'NF == 3 && $2 == "T" { print $3; exit }')
    if [ -z "$f" ] || grep -qxF -- "$f" <<<"$defined"; then objs+=("$o"); fi
done
files=()
for o in "${objs[@]}"; do
    d=$(ninja -C "$build" -t deps "$o")
    # a stale or missing record would hide a file: refuse, never guess
    [[ ${d%%$'\n'*} == *'(VALID)' ]] || { echo "$0: no valid dependency record for $o (build $exe first)" >&2; exit 1; }
    while read -r f; do files+=("$f"); done < <(printf '%s\n' "$d" | sed -n 's/^    //p')
done
sums=()
for f in $(printf '%s\n' "${files[@]}" | sort -u); do
    case $f in
        /*) p=$f ;;
        *) p=$build/$f ;;
    esac
    [ -f "$p" ] || { echo "$0: $exe depends on $f, which is missing" >&2; exit 1; }
    n=$(realpath -m "$p")
    sums+=("$(sha256sum <"$p" | cut -c1-64) ${n#"$src"/}")
done
{
    clang --version | head -n 1
    # the linked objects' compile commands and the link command (not the
    # archive commands, which list every object of a library)
    printf '%s\n' "$cmds" | grep -v '^rm -f ' | while IFS= read -r c; do
        o=$(objects_of <<<"$c")
        if [ -z "$o" ] || [[ " ${objs[*]} " == *" $o "* ]]; then printf '%s\n' "$c"; fi
    done | sed "s#$src/#@SRC@/#g"
    printf '%s\n' "${sums[@]}" | sort -k2
} | sha256sum | cut -c1-16
