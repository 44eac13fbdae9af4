#!/bin/sh
# Tiny end-to-end proof of the training pipeline (about 5 minutes of CPU):
# corpus -> BPE tokenizer -> PyTorch training -> GGUF (gguf-pack) ->
# moescope info / generate / dump agreement with PyTorch (F32 and Q8_0).
#   tools/train/run-tiny.sh [BUILD_DIR] [WORK_DIR]
# BUILD_DIR must hold a built moescope and gguf-pack (default: build).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
work=${2:-/tmp/moescope-train-tiny}
py=/usr/bin/python3
mkdir -p "$work"
[ -f "$work/corpus/manifest.json" ] || nice $py "$root/tools/corpus/build_corpus.py" --out "$work/corpus" --chars 200000
nice $py "$here/train_moe.py" --corpus "$work/corpus" --out "$work/f32" --gguf-pack "$build/gguf-pack" \
    --vocab 1024 --layers 2 --embd 64 --heads 4 --experts 8 --top-k 2 --ff 64 --ctx 64 --batch 8 \
    --steps 300 --warmup 30 --eval-tokens 5000 --bpe-chars 100000 --type F32 --seed 1234
nice $py "$here/train_moe.py" --export "$work/f32/model.pt" --out "$work/q8" --gguf-pack "$build/gguf-pack" --type Q8_0
"$build/app/moescope" info "$work/q8/model.gguf"
"$build/app/moescope" generate "$work/q8/model.gguf" -p "The program reads" -n 16 -t 1
nice $py "$here/check_gguf.py" --ckpt "$work/f32/model.pt" --gguf "$work/f32/model.gguf" --moescope "$build/app/moescope" --type F32
nice $py "$here/check_gguf.py" --ckpt "$work/f32/model.pt" --gguf "$work/q8/model.gguf" --moescope "$build/app/moescope" --type Q8_0
cat "$work/f32/metrics.json"
