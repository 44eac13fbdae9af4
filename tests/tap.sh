# tap.sh — TAP helpers shared by the shell tests; run and pycheck write to $T
# (the test's scratch directory), which must be set before they are used.
# A test ends with
#   echo "1..$n"; [ "$failed" -eq 0 ]
# A test that cannot run at all calls skip_all REASON before any check: Debian
# 12's meson (1.0.1) counts a TAP test as skipped only when it exits 0 with
# nothing but skips ("1..0 # SKIP reason"); exit status 77 is an error there.
n=0
failed=0
# a description is one line: captured command output often holds newlines,
# and a bare line is not TAP (meson reports it as an error)
tap_line() { local d="$*"; printf '%s\n' "${d//$'\n'/ }"; }
ok() { n=$((n + 1)); tap_line "ok $n - $*"; }
nok() { n=$((n + 1)); failed=$((failed + 1)); tap_line "not ok $n - $*"; }
skip() { n=$((n + 1)); echo "ok $n # SKIP $*"; }
skip_all() { echo "1..0 # SKIP $*"; exit 0; }
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
# SHARED: the reference fixtures (../shared) or empty when absent.
# MS_SHARED_DIR in the environment overrides the default that tests/meson.build
# sets (MS_SHARED_DEFAULT); an empty value or a directory without fixtures/
# means absent.  SHARED_WHY says why it is empty, for skip reasons.
SHARED=${MS_SHARED_DIR-${MS_SHARED_DEFAULT:-}}
if [ -n "$SHARED" ] && [ -d "$SHARED/fixtures" ]; then
    SHARED_WHY=
elif [ -n "$SHARED" ]; then
    SHARED_WHY="reference fixtures (../shared) not found: no $SHARED/fixtures"
    SHARED=
else
    SHARED_WHY="reference fixtures (../shared) not available: $([ -n "${MS_SHARED_DIR+set}" ] && echo MS_SHARED_DIR ||
        echo MS_SHARED_DEFAULT) is empty or unset"
fi
