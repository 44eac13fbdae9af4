#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds twice (release, and
# ASan+UBSan), runs `meson test` in both and ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh || { echo "dependency installation failed"; echo "0 passed, 1 failed"; exit 1; }
werror=()
[ "${CI:-}" = true ] && werror=(-Dwerror=true)
passed=0 failed=0 skipped=0
for cfg in "build" "build-asan"; do
  opts=("${werror[@]}")
  [ "$cfg" = build-asan ] && opts+=(-Db_sanitize=address,undefined -Dbuildtype=debugoptimized -Db_lundef=false)
  if ! tools/build.sh "$cfg" "${opts[@]}"; then
    echo "build failed: $cfg"
    failed=$((failed + 1))
    continue
  fi
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  meson test -C "$cfg" --print-errorlogs --num-processes 2 --timeout-multiplier 3 || true
  log="$cfg/meson-logs/testlog.json"
  if [ -f "$log" ]; then
    read -r p f s < <(python3 - "$log" <<'PY'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result")
    if r in ("OK", "EXPECTEDFAIL"): p += 1
    elif r == "SKIP": s += 1
    else: f += 1
print(p, f, s)
PY
)
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    echo "$cfg: $p passed, $f failed, $s skipped"
  else
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
