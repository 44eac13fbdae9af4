# tap.sh — TAP helpers shared by the shell tests; source it after setting T
# (the test's scratch directory).  A test ends with
#   echo "1..$n"; [ "$failed" -eq 0 ]
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
skip() { n=$((n + 1)); echo "ok $n # SKIP $*"; }
diag() { echo "# $*"; }
# check DESC CMD...: ok when CMD succeeds
check() { local d=$1; shift; if "$@"; then ok "$d"; else nok "$d"; fi; }
# run CMD...: sets rc, out (stdout), err (stderr); both are also in $T/out, $T/err
run() {
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    out=$(cat "$T/out")
    err=$(cat "$T/err")
}
# pycheck ARGS... <<'EOF': run a Python check block with Debian's python3
# ($PY); each line it prints as "ok - X" or "not ok - X" becomes a TAP line.
# A block that fails without saying "not ok" counts as one failure.
PY=${PY:-/usr/bin/python3}
pycheck() {
    local line prc
    "$PY" - "$@" >"$T/py.out" 2>"$T/py.err"
    prc=$?
    while IFS= read -r line; do
        case $line in
            "ok - "*) ok "${line#ok - }" ;;
            "not ok - "*) nok "${line#not ok - }" ;;
        esac
    done <"$T/py.out"
    if [ "$prc" -ne 0 ] && ! grep -q '^not ok' "$T/py.out"; then
        nok "check script failed: $(tail -n 3 "$T/py.err" | tr '\n' ' ')"
    fi
}
