#!/bin/sh
# The default model (data/models/default.gguf): corpus, training (93 minutes
# on one core for the committed model), Q8_0 export and the engine-vs-PyTorch
# check.  Run as root once: tools/corpus/install-deps.sh.  Then:
#   tools/train/run-full.sh [BUILD_DIR] [WORK_DIR]
# MS_TRAIN_STEPS (3000) and MS_TRAIN_THREADS (1) are part of the result.
# Then tools/train/card_data.py writes the test data (see docs/training.md).
# Results: WORK_DIR/model/{model.gguf,model.pt,metrics.json,train.log,tokenizer.json},
# WORK_DIR/corpus/manifest.json (sources and licences).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
work=${2:-/tmp/moescope-train-full}
py=/usr/bin/python3
mkdir -p "$work"
[ -f "$work/corpus/manifest.json" ] || nice $py "$root/tools/corpus/build_corpus.py" --out "$work/corpus" --chars 6000000
nice $py "$here/train_moe.py" --corpus "$work/corpus" --out "$work/model" --gguf-pack "$build/gguf-pack" \
    --vocab 4096 --layers 4 --embd 192 --heads 6 --experts 16 --top-k 2 --ff 160 --ctx 256 --batch 16 \
    --steps ${MS_TRAIN_STEPS:-3000} --warmup 300 --lr 3e-3 --eval-tokens 50000 --bpe-chars 2000000 \
    --type Q8_0 --seed 1234 --threads ${MS_TRAIN_THREADS:-1}
nice $py "$here/check_gguf.py" --ckpt "$work/model/model.pt" --gguf "$work/model/model.gguf" \
    --moescope "$build/app/moescope" --type Q8_0
"$build/app/moescope" info "$work/model/model.gguf"
cat "$work/model/metrics.json"
