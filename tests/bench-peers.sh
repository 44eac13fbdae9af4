#!/bin/bash
# bench-peers.sh — bench/run-peers.sh wiring (TAP), with stand-ins for the
# peers: a llama-bench stub that prints fixed llama-bench JSON (samples 100,
# 200, 300 tokens/s for pp, 10, 20, 30 for tg), one that fails, and a
# llama-quantize stub that copies its input.  The ratio table must show the
# stub's medians, ratios that are moescope's median over them, the failing
# engine as "could not run", and what was not given as skipped.
# Environment (set by tests/meson.build): MOESCOPE, MS_SOURCE_DIR.
set -u
M=${MOESCOPE:?MOESCOPE must point at the moescope binary}
S=${MS_SOURCE_DIR:?MS_SOURCE_DIR must point at the source tree}
T=$(mktemp -d "${TMPDIR:-/tmp}/mspeers.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/tap.sh"
[ -x "$PY" ] || skip_all "$PY not available"

mkdir -p "$T/ll" "$T/ik"
cat >"$T/ll/llama-bench" <<'SH'
#!/bin/bash
echo "$*" >>"$(dirname "$0")/args"
cat <<'J'
[
  {"build_commit": "abc1234", "build_number": 7, "n_prompt": 64, "n_gen": 0, "avg_ts": 200, "samples_ts": [ 100, 200, 300 ]},
  {"build_commit": "abc1234", "build_number": 7, "n_prompt": 0, "n_gen": 8, "avg_ts": 20, "samples_ts": [ 10, 20, 30 ]}
]
J
SH
printf '#!/bin/sh\ncp "$1" "$2"\n' >"$T/ll/llama-quantize"
printf '#!/bin/sh\necho "unknown model architecture" >&2\nexit 1\n' >"$T/ik/llama-bench"
chmod +x "$T/ll/llama-bench" "$T/ll/llama-quantize" "$T/ik/llama-bench"

run env MOESCOPE="$M" BENCH_STREAM=/nonexistent MODELS="tiny:Q8_0 nosuch:F16" REPS=1 ROUNDS=2 PP=64 TG=8 \
    bash "$S/bench/run-peers.sh" --llama-bench "$T/ll/llama-bench" --ik-bench "$T/ik/llama-bench" --cache "$T/c"
check "run-peers.sh exits 0 (rc $rc)" [ "$rc" -eq 0 ]
check "the mainline stub ran twice (two rounds) with -t 2 -p 64 -n 8 -o json" \
    [ "$(grep -c -- '-t 2 -p 64 -n 8 -r 1 -o json' "$T/ll/args" 2>/dev/null)" = 2 ]
check "llama-quantize (found next to llama-bench) wrote the Q8_0 file" [ -s "$T/c/tiny.Q8_0.llama-quantize.gguf" ]
check "an unknown shape is skipped with its name" grep -q "skip nosuch:F16: unknown shape" "$T/err"
check "no bandwidth column without bench-stream, said so" grep -q "skip the read-bandwidth column" "$T/err"
pycheck "$T/out" <<'PYEOF'
import sys
out = open(sys.argv[1]).read()
rows = [l for l in out.splitlines() if l.startswith("| tiny | Q8_0 |")]
print(("ok" if len(rows) == 1 else "not ok") + " - one row for tiny Q8_0")
c = [x.strip() for x in rows[0].strip("|").split("|")]
ms_pp, ll_pp, ik_pp, r_ll, r_ik, ms_tg, ll_tg, ik_tg, t_ll, t_ik = c[2:12]
print(("ok" if (ll_pp, ll_tg) == ("200.0", "20.0") else "not ok") + " - mainline medians of the pooled samples (%s, %s)" % (ll_pp, ll_tg))
print(("ok" if abs(float(r_ll) - float(ms_pp) / 200) < 0.006 and abs(float(t_ll) - float(ms_tg) / 20) < 0.006 else "not ok")
      + " - ratios are moescope / mainline (%s, %s)" % (r_ll, t_ll))
print(("ok" if ik_pp == "-" and r_ik == "-" else "not ok") + " - the failing engine has no figures")
print(("ok" if "ik_llama.cpp could not run tiny:Q8_0" in out else "not ok") + " - the failing engine is named")
print(("ok" if "llama.cpp: commit abc1234 (build 7)" in out else "not ok") + " - mainline's commit from its JSON")
print(("ok" if float(c[12]) > 0 and c[17] != "(same file)" else "not ok") + " - MB/token and moescope on synth's own file")
print(("ok" if c[14] == "-" and c[15] == "-" and c[16] == "-" else "not ok") + " - no read bandwidth, no shares (%s)" % c[14:17])
PYEOF
# a bench-stream stand-in that reads 10, 40, 60, 20 GB/s in turn: the run's
# first figure, the two rounds', the last.  The shares must use the rounds'
# median (50), not the run's ends (15).  ik's stand-in decodes at 20,000
# tokens/s, so its share of the tiny model's reads is not 0.
cat >"$T/stream" <<'SH'
#!/bin/bash
f=$(dirname "$0")/stream.n
n=$(cat "$f" 2>/dev/null || echo 0); echo $((n + 1)) >"$f"
v=(10 40 60 20)
echo "{\"read_gbps_median\": ${v[$n]:-99}}"
SH
chmod +x "$T/stream"
mkdir -p "$T/ik2"
sed 's/"avg_ts": 20, "samples_ts": \[ 10, 20, 30 \]/"avg_ts": 20000, "samples_ts": [ 10000, 20000, 30000 ]/' "$T/ll/llama-bench" >"$T/ik2/llama-bench"
chmod +x "$T/ik2/llama-bench"
run env MOESCOPE="$M" BENCH_STREAM="$T/stream" MODELS="tiny:Q8_0" REPS=1 ROUNDS=2 PP=16 TG=4 \
    bash "$S/bench/run-peers.sh" --llama-bench "$T/ll/llama-bench" --ik-bench "$T/ik2/llama-bench" --cache "$T/c"
check "with a bench-stream: exit 0 (rc $rc)" [ "$rc" -eq 0 ]
pycheck "$T/out" <<'PYEOF'
import sys
out = open(sys.argv[1]).read()
rows = [l for l in out.splitlines() if l.startswith("| tiny | Q8_0 |")]
c = [x.strip() for x in rows[0].strip("|").split("|")]
mb, gbs, rbw, pct, ikpct = c[12:17]
print(("ok" if rbw == "50.0" else "not ok") + " - read bw is the median of the rounds' figures (%s)" % rbw)
# MB/token is printed to 0.1: about 4 % at the tiny model's 1.4
want = float(mb) * float(c[7]) / 1e3
print(("ok" if abs(float(gbs) - want) <= 0.05 + 0.04 * want else "not ok") + " - GB/s = MB/token x tg (%s, %.2f)" % (gbs, want))
print(("ok" if pct.endswith("%") and abs(float(pct.rstrip(" %")) - 100 * float(gbs) / 50) <= 0.6 else "not ok")
      + " - moescope's share against it (%s)" % pct)
ik = float(ikpct.rstrip(" %"))
print(("ok" if ik > 0 and abs(ik - 100 * float(mb) * 20000 / 1e3 / 50) <= 0.6 + ik * 0.04 else "not ok")
      + " - ik's share: its decode median (20,000) at the same MB/token (%s)" % ikpct)
print(("ok" if "first and last of the run: 10.0 / 20.0 GB/s" in out else "not ok") + " - the run's ends are printed")
PYEOF
run env MOESCOPE="$M" BENCH_STREAM=/nonexistent MODELS="tiny:F16" REPS=1 ROUNDS=1 PP=16 TG=4 \
    bash "$S/bench/run-peers.sh" --cache "$T/c"
check "with no peers at all: runs moescope alone, exit 0" [ "$rc" -eq 0 ]
check "... and says both peers were not run" \
    bash -c 'grep -q "mainline llama.cpp: not run" "$0" && grep -q "ik_llama.cpp: not run" "$0"' "$T/out"
# a llama-bench built outside a git checkout reports the commit "unknown"
mkdir -p "$T/nc"
sed 's/"build_commit": "abc1234", "build_number": 7/"build_commit": "unknown", "build_number": 0/' "$T/ll/llama-bench" >"$T/nc/llama-bench"
chmod +x "$T/nc/llama-bench"
run env MOESCOPE="$M" BENCH_STREAM=/nonexistent MODELS="tiny:Q8_0" REPS=1 ROUNDS=1 PP=16 TG=4 \
    bash "$S/bench/run-peers.sh" --llama-bench "$T/nc/llama-bench" --quantize "$T/ll/llama-quantize" --cache "$T/c"
check "an unknown commit says how to give it" grep -q "llama.cpp: commit unknown (its llama-bench was built outside a git checkout; give it in LLAMA_COMMIT)" "$T/out"
run env MOESCOPE="$M" BENCH_STREAM=/nonexistent MODELS="tiny:Q8_0" REPS=1 ROUNDS=1 PP=16 TG=4 LLAMA_COMMIT=d32676d7 \
    bash "$S/bench/run-peers.sh" --llama-bench "$T/nc/llama-bench" --quantize "$T/ll/llama-quantize" --cache "$T/c"
check "... and prints the commit given in LLAMA_COMMIT" grep -q "llama.cpp: commit d32676d7 (given in LLAMA_COMMIT)" "$T/out"
run bash "$S/bench/run-peers.sh" --bogus
check "an unknown argument: exit 2 and a one-line error" bash -c '[ "$0" = 2 ] && grep -q "unknown argument" "$1"' "$rc" "$T/err"
echo "1..$n"
[ "$failed" -eq 0 ]
