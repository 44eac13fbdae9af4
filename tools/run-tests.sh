#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds twice (release, and
# ASan+UBSan), runs `meson test` in both, then fuzzes each libFuzzer target
# for about a minute (a clang build of the fuzz programs only; MS_NO_FUZZ=1
# leaves it out), lists what was skipped and why, and ends with
# "N passed, N failed, N skipped" (tests, all builds).  Without
# ../shared the tests that need it are skipped; MS_SHARED_DIR=DIR points them
# elsewhere (MS_SHARED_DIR= : none).
set -uo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh || { echo "dependency installation failed"; echo "0 passed, 1 failed"; exit 1; }
werror=()
[ "${CI:-}" = true ] && werror=(-Dwerror=true)
passed=0 failed=0 skipped=0
cfgs=(build build-asan)
# the fuzz targets, each fuzzed for MS_FUZZ_SECONDS (60) under ASan+UBSan
# with clang's libFuzzer (tests/fuzz/README.md): only those programs are built
if [ "${MS_NO_FUZZ:-}" = 1 ]; then
  echo "build-fuzz: skipped: MS_NO_FUZZ=1"
elif ! command -v clang >/dev/null; then
  echo "build-fuzz: skipped: clang is missing"
else
  cfgs+=(build-fuzz)
fi
for cfg in "${cfgs[@]}"; do
  opts=("${werror[@]}")
  [ "$cfg" = build-asan ] && opts+=(-Db_sanitize=address,undefined -Dbuildtype=debugoptimized -Db_lundef=false)
  targets=() suite=()
  if [ "$cfg" = build-fuzz ]; then
    opts+=(-Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false)
    for t in gguf tokenizer prompts import interventions db hf; do targets+=("tests/fuzz/fuzz-$t"); done
    suite=(--suite fuzzing --no-rebuild)
  fi
  cc=${CC:-cc}
  [ "$cfg" = build-fuzz ] && cc=clang
  if ! CC=$cc tools/build.sh "$cfg" "${opts[@]}" -- "${targets[@]}"; then
    echo "build failed: $cfg"
    failed=$((failed + 1))
    continue
  fi
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  meson test -C "$cfg" "${suite[@]}" --print-errorlogs --num-processes 2 --timeout-multiplier 3 || true
  log="$cfg/meson-logs/testlog.json"
  # first line "passed failed skipped" (tests), then one line per skip
  # with its reason (a whole test, or one part of it: TAP "# SKIP reason")
  if [ -f "$log" ] && summary=$(python3 - "$log" "$cfg" <<'PY'
import json, re, sys
p = f = s = 0
why = []
for line in open(sys.argv[1]):
    t = json.loads(line)
    r = t.get("result")
    if r in ("OK", "EXPECTEDFAIL"): p += 1
    elif r == "SKIP": s += 1
    else: f += 1
    for m in re.finditer(r"^(?:1\.\.0|ok \d+)\s*#\s*SKIP\S*\s*(.*)$", t.get("stdout") or "", re.M):
        what = "skipped" if r == "SKIP" else "part skipped"
        why.append("%s: %s %s: %s" % (sys.argv[2], t.get("name"), what, m.group(1)))
print(p, f, s)
print("\n".join(why))
PY
  ); then
    read -r p f s <<<"${summary%%$'\n'*}"
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    printf '%s\n' "$summary" | tail -n +2 | grep -v '^$'
    echo "$cfg: $p passed, $f failed, $s skipped"
  else
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
