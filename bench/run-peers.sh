#!/bin/bash
# run-peers.sh — moescope against mainline llama.cpp and ik_llama.cpp, side
# by side on the same files, the same machine and the same threads:
# prefill (pp512) and decode (tg32) in tokens/s, moescope with a routing
# observer attached, and the ratio of moescope to each peer.
#
# It fetches nothing and runs nothing it cannot find: give it the peers'
# llama-bench binaries (built from their public sources, outside this
# repository); an engine or a quantiser that is not given or not found is
# skipped with a printed reason, and its columns show "-".
#
# Models: random weights from `moescope synth` at real per-layer shapes,
# 4 layers (SHAPES below), written in F16, then quantised twice: with
# llama.cpp's own llama-quantize (Q8_0, Q4_K_M: the files all three engines
# run) and with `moescope synth --type` (Q8_0, Q4_K: moescope's own
# quantiser, run by moescope only, for comparison).  F16 is the synth file.
#
# usage: bench/run-peers.sh [--llama-bench PATH] [--ik-bench PATH]
#                           [--quantize PATH] [--cache DIR]
#   --llama-bench  mainline llama.cpp's llama-bench
#   --ik-bench     ik_llama.cpp's llama-bench
#   --quantize     llama-quantize (default: the one next to the mainline
#                  llama-bench, else next to ik's)
#   --cache DIR    where models are kept between runs (default:
#                  $TMPDIR or /tmp, in moescope-peers/; needs ~25 GB for all)
# environment: MOESCOPE (default build/app/moescope next to this script),
#   BENCH_STREAM (default build/bench/bench-stream: the read bandwidth, taken
#   at the start, before each round of each model and at the end; a row's
#   shares are against its rounds' median), THREADS (2), REPS (3 per
#   invocation), ROUNDS (2 interleaved rounds; the medians pool all samples),
#   MODELS (default "olmoe:Q8_0 olmoe:Q4_K_M olmoe:F16 mixtral-q3:Q8_0
#   mixtral-q3:Q4_K_M mixtral-q3:F16 qwen3moe:Q8_0 qwen3moe:Q4_K_M
#   qwen3moe:F16"; shape "tiny" checks the script in seconds), LLAMA_FLAGS / IK_FLAGS (extra llama-bench options, e.g.
#   IK_FLAGS="-fmoe 1" for ik's fused MoE), PP (512), TG (32), LLAMA_COMMIT /
#   IK_COMMIT (the peer's commit, printed when its llama-bench reports none:
#   one built outside a git checkout says "unknown").
#
# Nothing else should run meanwhile: on 2 cores one background compile
# halves every figure.  Each file is read once before it is measured so it
# is in the page cache.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
M=${MOESCOPE:-$here/build/app/moescope}
STREAM=${BENCH_STREAM:-$here/build/bench/bench-stream}
threads=${THREADS:-2} reps=${REPS:-3} rounds=${ROUNDS:-2} pp=${PP:-512} tg=${TG:-32}
LB="" IKB="" LQ="" cache=${TMPDIR:-/tmp}/moescope-peers
while [ $# -gt 0 ]; do
    case $1 in
    --llama-bench) LB=$2; shift 2 ;;
    --ik-bench) IKB=$2; shift 2 ;;
    --quantize) LQ=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-peers.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
if [ ! -x "$M" ]; then
    echo "run-peers.sh: $M: moescope not built (set MOESCOPE or build into build/)" >&2
    exit 1
fi
have() { [ -n "$1" ] && [ -x "$1" ] && [ -f "$1" ]; }
note() { echo "# $*" >&2; }
if ! have "$LB"; then note "skip mainline llama.cpp: ${LB:-no --llama-bench given}${LB:+: not an executable file}"; LB=""; fi
if ! have "$IKB"; then note "skip ik_llama.cpp: ${IKB:-no --ik-bench given}${IKB:+: not an executable file}"; IKB=""; fi
if [ -z "$LQ" ]; then
    for b in "$LB" "$IKB"; do
        if [ -n "$b" ] && have "$(dirname "$b")/llama-quantize"; then LQ=$(dirname "$b")/llama-quantize; break; fi
    done
fi
if ! have "$LQ"; then
    note "skip llama-quantize: ${LQ:-none given or next to a llama-bench}${LQ:+: not an executable file}; the engines run moescope synth's quantised files instead"
    LQ=""
fi
if ! have "$STREAM"; then note "skip the read-bandwidth column: $STREAM not built"; STREAM=""; fi
mkdir -p "$cache"

shape() {
    case $1 in
    # OLMoE-1B-7B per-layer shapes
    olmoe) echo "--arch olmoe --layers 4 --embd 2048 --heads 16 --experts 64 --used 8 --ff 1024 --vocab 50277" ;;
    # Mixtral layout (arch llama) with Qwen3-30B-A3B's experts, vocabulary and GQA
    mixtral-q3) echo "--arch llama --layers 4 --embd 2048 --heads 32 --kv-heads 4 --experts 128 --used 8 --ff 768 --vocab 151936" ;;
    # Qwen3-30B-A3B per-layer shapes
    qwen3moe) echo "--arch qwen3moe --layers 4 --embd 2048 --heads 32 --kv-heads 4 --head-dim 128 --experts 128 --used 8 --ff 768 --vocab 151936" ;;
    # a few-MB model to check the script itself (MODELS=tiny:Q8_0)
    tiny) echo "--arch llama --layers 2 --embd 256 --heads 8 --kv-heads 4 --experts 4 --used 2 --ff 256 --vocab 512" ;;
    *) return 1 ;;
    esac
}

# synth TYPE FILE: moescope's own file (F16 is the base the quantiser reads)
synth() {
    [ -s "$3" ] && return 0
    note "synthesising $3 ..."
    # shellcheck disable=SC2046
    "$M" synth $(shape "$1") --type "$2" --seed 1 "$3.part" >/dev/null && mv "$3.part" "$3"
}

# run_ms FILE -> JSON line (moescope, observer attached)
run_ms() { "$M" bench "$1" -p "$pp" -n "$tg" -t "$threads" -r "$reps" --observer --json 2>/dev/null || echo null; }
# run_llb BIN FLAGS FILE -> JSON (llama-bench); "null" when it fails
run_llb() {
    local out
    # shellcheck disable=SC2086
    if out=$("$1" -m "$3" -t "$threads" -p "$pp" -n "$tg" -r "$reps" -o json $2 2>/dev/null); then
        echo "$out" | tr '\n' ' '; echo
    else
        echo null
    fi
}

stream_gbps() {
    [ -n "$STREAM" ] || { echo null; return; }
    "$STREAM" -t "$threads" -m 1024 -r 7 --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["read_gbps_median"])' || echo null
}

results=$(mktemp)
trap 'rm -f "$results"' EXIT
bw_before=$(stream_gbps)
for mt in ${MODELS:-olmoe:Q8_0 olmoe:Q4_K_M olmoe:F16 mixtral-q3:Q8_0 mixtral-q3:Q4_K_M mixtral-q3:F16 qwen3moe:Q8_0 qwen3moe:Q4_K_M qwen3moe:F16}; do
    sh=${mt%%:*} ty=${mt#*:}
    if ! shape "$sh" >/dev/null; then note "skip $mt: unknown shape '$sh'"; continue; fi
    base=$cache/$sh.F16.gguf
    synth "$sh" F16 "$base" || { note "skip $mt: moescope synth failed"; continue; }
    mstype=$ty; [ "$ty" = Q4_K_M ] && mstype=Q4_K
    own=$cache/$sh.$mstype.synth.gguf
    [ "$ty" = F16 ] && own=$base
    synth "$sh" "$mstype" "$own" || { note "skip $mt: moescope synth --type $mstype failed"; continue; }
    file=$own
    if [ "$ty" = F16 ]; then
        file=$base
    elif [ -n "$LQ" ]; then
        file=$cache/$sh.$ty.llama-quantize.gguf
        if [ ! -s "$file" ]; then
            note "llama-quantize $base -> $ty ..."
            if "$LQ" "$base" "$file.part" "$ty" >"$cache/quantize-$sh-$ty.log" 2>&1; then mv "$file.part" "$file"
            else note "llama-quantize failed for $mt (log: $cache/quantize-$sh-$ty.log); using moescope synth's file"; file=$own; fi
        fi
    fi
    cat "$file" "$own" >/dev/null   # into the page cache
    for r in $(seq 1 "$rounds"); do
        # the read bandwidth beside each model's decode, not only at the
        # start and end: on a shared host it moves by 2x within minutes, and
        # a share is only meaningful against a figure taken at the same time
        printf '%s\tbw\t%s\n' "$mt" "$(stream_gbps)" >>"$results"
        # rotate the order each round so no engine always runs first
        order="ms ll ik ow"; [ $((r % 2)) = 0 ] && order="ik ll ms ow"
        for e in $order; do
            case $e in
            ms) printf '%s\tms\t%s\n' "$mt" "$(run_ms "$file")" >>"$results" ;;
            ow) [ "$own" != "$file" ] && printf '%s\town\t%s\n' "$mt" "$(run_ms "$own")" >>"$results" ;;
            ll) [ -n "$LB" ] && printf '%s\tll\t%s\n' "$mt" "$(run_llb "$LB" "${LLAMA_FLAGS:-}" "$file")" >>"$results" ;;
            ik) [ -n "$IKB" ] && printf '%s\tik\t%s\n' "$mt" "$(run_llb "$IKB" "${IK_FLAGS:-}" "$file")" >>"$results" ;;
            esac
        done
    done
done
bw_after=$(stream_gbps)

python3 - "$results" "$bw_before" "$bw_after" "$threads" "$pp" "$tg" "${LB:+1}" "${IKB:+1}" "${LQ:+1}" <<'PY'
import json, statistics, sys
path, bw0, bw1, thr, pp, tg, have_ll, have_ik, have_lq = sys.argv[1:10]
pp, tg = int(pp), int(tg)
bws = [float(x) for x in (bw0, bw1) if x not in ("null", "")]
bw = statistics.median(bws) if bws else None
rows, order, commits, meta = {}, [], {}, {}
stream = {}   # model -> the read bandwidth figures taken before its rounds
for line in open(path):
    mt, eng, js = line.rstrip("\n").split("\t", 2)
    if mt not in rows:
        rows[mt] = {}
        order.append(mt)
    if eng == "bw":
        if js.strip() not in ("null", ""):
            stream.setdefault(mt, []).append(float(js))
        continue
    d = rows[mt].setdefault(eng, {"pp": [], "tg": [], "failed": 0})
    v = json.loads(js) if js.strip() else None
    if v is None:
        d["failed"] += 1
        continue
    if eng in ("ms", "own"):
        for k, key in (("pp", "prefill"), ("tg", "decode")):
            if v.get(key):
                d[k] += v[key]["runs"]
        if eng == "ms":
            meta[mt] = (v.get("decode_weight_bytes"), v.get("isa"), v.get("cpu_flags"))
    else:
        for t in v:
            k = "pp" if t.get("n_prompt", 0) > 0 and t.get("n_gen", 0) == 0 else "tg"
            d[k] += t.get("samples_ts") or [t["avg_ts"]]
            commits[eng] = "%s (build %s)" % (t.get("build_commit", "?"), t.get("build_number", "?"))

def med(mt, eng, k):
    d = rows[mt].get(eng)
    return statistics.median(d[k]) if d and d[k] else None

def f(x, w=7):
    return ("%*.1f" % (w, x)) if x is not None else "%*s" % (w, "-")

def ratio(a, b):
    return ("%5.2f" % (a / b)) if a and b else "    -"

print("| model | type | pp%d moescope | llama.cpp | ik | x llama | x ik | tg%d moescope | llama.cpp | ik | x llama | x ik "
      "| MB/token | GB/s | read bw | %% of read bw | ik %% | moescope, synth's file pp / tg |" % (pp, tg))
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for mt in order:
    ms_pp, ll_pp, ik_pp = med(mt, "ms", "pp"), med(mt, "ll", "pp"), med(mt, "ik", "pp")
    ms_tg, ll_tg, ik_tg = med(mt, "ms", "tg"), med(mt, "ll", "tg"), med(mt, "ik", "tg")
    wb = meta.get(mt, (None,))[0]
    gbs = wb * ms_tg * 1e-9 if wb and ms_tg else None
    # against the stream figures taken during this model's rounds, else the
    # run's first and last
    rbw = statistics.median(stream[mt]) if stream.get(mt) else bw
    pct = "%5.0f %%" % (100 * gbs / rbw) if gbs and rbw else "    -"
    # ik reads the same weights of the same file (moescope's count of them)
    ikpct = "%5.0f %%" % (100 * wb * ik_tg * 1e-9 / rbw) if wb and ik_tg and rbw else "    -"
    own = "%s / %s" % (f(med(mt, "own", "pp"), 1), f(med(mt, "own", "tg"), 1)) if "own" in rows[mt] else "(same file)"
    sh, ty = mt.split(":")
    print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        sh, ty, f(ms_pp), f(ll_pp), f(ik_pp), ratio(ms_pp, ll_pp), ratio(ms_pp, ik_pp),
        f(ms_tg), f(ll_tg), f(ik_tg), ratio(ms_tg, ll_tg), ratio(ms_tg, ik_tg),
        "%.1f" % (wb / 1e6) if wb else "-", f(gbs, 5), f(rbw, 5), pct, ikpct, own))
    for eng, name in (("ll", "llama.cpp"), ("ik", "ik_llama.cpp"), ("ms", "moescope")):
        d = rows[mt].get(eng)
        if d and d["failed"] and not (d["pp"] or d["tg"]):
            print("#   %s could not run %s (every invocation failed)" % (name, mt))
print()
print("tokens/s, medians over all samples of the interleaved rounds, %s threads; moescope with --observer;" % thr)
print("MB/token: weight bytes one decoded token reads (moescope's count); GB/s = MB/token x tg; read bw: "
      "bench-stream, %s threads, median of the figures taken before each round of the row's model "
      "(first and last of the run: %s GB/s); %% of read bw: moescope's GB/s against it; ik %%: ik's decode "
      "at the same MB/token" % (thr, " / ".join("%.1f" % x for x in bws) if bws else "not measured"))
if meta:
    isa, flags = next(iter(meta.values()))[1:]
    print("moescope kernels: %s; cpu: %s" % (isa, flags))
import os
for eng, name, var in (("ll", "llama.cpp", "LLAMA_COMMIT"), ("ik", "ik_llama.cpp", "IK_COMMIT")):
    if eng in commits:
        c = commits[eng]
        if c.startswith(("unknown", "?")):
            c = ("%s (given in %s)" % (os.environ[var], var)) if os.environ.get(var) else \
                "unknown (its llama-bench was built outside a git checkout; give it in %s)" % var
        print("%s: commit %s" % (name, c))
if not have_ll: print("mainline llama.cpp: not run (no llama-bench given or found)")
if not have_ik: print("ik_llama.cpp: not run (no llama-bench given or found)")
if not have_lq: print("llama-quantize: not found, all engines ran moescope synth's quantised files")
PY
