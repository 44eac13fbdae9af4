#!/usr/bin/env bash
# fuzz-seeds.sh [BUILD] — regenerate the committed seed corpora of the fuzz
# targets (tests/fuzz/corpus/TARGET/) from the fixtures and the tests' own
# bad files.  A maintenance tool: run it after a format change, review the
# diff, commit.  Needs a built tree (default build/), sqlite3 and python3;
# ../shared adds the llama.cpp tokenizer test strings when present.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
M=$B/app/moescope
C=tests/fuzz/corpus
SHARED=${MS_SHARED_DIR-../shared}
T=$(mktemp -d "${TMPDIR:-/tmp}/msseeds.XXXXXX")
trap 'rm -rf "$T"' EXIT
for t in gguf tokenizer prompts import interventions db hf; do rm -rf "${C:?}/$t"; mkdir -p "$C/$t"; done

# ---- gguf: tiny models of every architecture and several weight types, and
# the malformed files of test-gguf and test-model-errors
synth() { "$M" synth --layers 2 --embd 32 --heads 2 --experts 4 --used 2 --ff 32 --vocab 258 -t 1 "$@" >/dev/null; }
for a in olmoe qwen2moe llama granitemoe deepseek2; do synth --arch "$a" --type F32 --embd 8 --ff 8 "$C/gguf/synth-$a-F32.gguf"; done
for ty in F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1; do synth --arch olmoe --type "$ty" "$C/gguf/synth-olmoe-$ty.gguf"; done
for ty in Q2_K Q3_K Q4_K Q5_K Q6_K; do
    "$M" synth --arch llama --layers 1 --embd 256 --heads 2 --experts 2 --used 1 --ff 256 --vocab 258 -t 1 \
        --type "$ty" "$T/k.gguf" >/dev/null
    # K-quant blocks are 256 wide: keep one such model of each type, they are large
    [ "$(stat -c %s "$T/k.gguf")" -le 400000 ] && cp "$T/k.gguf" "$C/gguf/synth-llama-$ty.gguf"
done
MS_FUZZ_SEEDS=$T/seeds "$B/tests/test-gguf" >/dev/null 2>&1 || true
MS_FUZZ_SEEDS=$T/seeds "$B/tests/test-model-errors" >/dev/null 2>&1 || true
# (test-model-errors' models are 3 MB, 256 wide for the K-quants: the fuzzer
# reaches their defects by mutating the small models above instead)
find "$T/seeds/gguf" -type f -size -400k -exec cp {} "$C/gguf/" \;

# ---- tokenizer: byte 0 picks the tokenizer, byte 1 BOS/EOS; texts from the
# bundled prompts and llama.cpp's tokenizer test strings
python3 - "$C/tokenizer" "$SHARED/fixtures/vocab" data/prompts/all.jsonl <<'PY'
import glob, json, os, sys
out, vocab, prompts = sys.argv[1:4]
texts = []
for line in open(prompts, encoding='utf-8'):
    texts.append(json.loads(line)['text'].encode())
    if len(texts) >= 40: break
for f in sorted(glob.glob(os.path.join(vocab, '*.inp')))[:4]:
    for s in open(f, 'rb').read().split(b'\n__ggml_vocab_test__\n'):
        if s and len(s) < 2000: texts.append(s)
texts += [b'', b' ', b'\t\n', b'\xff\xfe invalid', b'caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80',
          b'<|endoftext|>', b'a' * 300, b'  leading and trailing  ', b'12345678901234567890']
seen = set()
for i, t in enumerate(texts):
    if t in seen: continue
    seen.add(t)
    open(os.path.join(out, 'text-%03d' % i), 'wb').write(bytes([i % 13, i % 2]) + t)
PY

# ---- prompts: the bundled sets (first lines), plain text, and bad files
for f in data/prompts/*.jsonl; do head -n 12 "$f" > "$C/prompts/$(basename "$f")"; done
printf 'The quick brown fox\nescapes: a\\nb\\tc\\\\d\n\n  \nlast line without newline' > "$C/prompts/plain.txt"
printf '\xef\xbb\xbfwith a BOM\r\nand CRLF\r\n' > "$C/prompts/bom-crlf.txt"
printf '{"text": "a", "labels": {"lang": "en"}}\n{"text": "b\\u00e9", "labels": null}\n' > "$C/prompts/labels.jsonl"
printf 'bad escape \\q here\n' > "$C/prompts/bad-escape.txt"
printf 'invalid \xff byte\n' > "$C/prompts/bad-utf8.txt"
printf 'a NUL \0 byte\n' > "$C/prompts/bad-nul.txt"
printf '{"text": 5}\n' > "$C/prompts/bad-type.jsonl"
printf '{"text": "x", "labels": [1]}\n' > "$C/prompts/bad-labels.jsonl"
printf '{"text": "a\\u0000b"}\n' > "$C/prompts/bad-nul-escape.jsonl"
printf '{"text": "a", "text": "b"}\n' > "$C/prompts/bad-duplicate.jsonl"
printf '{"text": "unterminated\n' > "$C/prompts/bad-json.jsonl"
printf '\n \n\t\n' > "$C/prompts/blank.txt"
: > "$C/prompts/empty.txt"

# ---- import: byte 0 format (0 ids, 1 csv, 2 jsonl; +4 with labels), byte 1
# --experts, byte 2 --top-k, then (labels length, labels) and the file
python3 - "$C/import" <<'PY'
import json, os, struct, sys
out = sys.argv[1]
def seed(name, fmt, data, E=0, K=0, labels=None):
    b = bytes([fmt | (4 if labels is not None else 0), E, K])
    if labels is not None: b += struct.pack('<H', len(labels)) + labels
    open(os.path.join(out, name), 'wb').write(b + data)
csv = b'prompt,position,layer,rank,expert,weight\n' + b''.join(
    b'%d,%d,%d,%d,%d,%s\n' % (p, t, l, r, (t + l + r * 3) % 8, b'0.5' if r == 0 else b'0.25')
    for p in range(2) for t in range(3) for l in range(2) for r in range(2))
seed('csv-ok', 1, csv, 8, 2)
seed('csv-labels', 1, csv, 0, 0, b'{"prompt": 0, "labels": {"lang": "en"}}\n{"prompt": 1, "labels": {"lang": "de"}}\n')
seed('csv-noweight', 1, b'prompt,position,layer,rank,expert\n0,0,0,0,3\n0,0,0,1,1\n0,1,0,0,2\n')
seed('csv-bad-rank', 1, b'prompt,position,layer,rank,expert,weight\n0,0,0,1,3,0.5\n')
seed('csv-bad-header', 1, b'p,t,l\n0,0,0\n')
seed('csv-nan', 1, b'prompt,position,layer,rank,expert,weight\n0,0,0,0,3,nan\n')
jl = b''.join(json.dumps({'prompt': p, 'position': t, 'experts': [[1, 2], [3, 0]], 'weights': [[0.6, 0.4], [0.5, 0.5]],
                          'layers': [0, 2], 'token_id': 7 + t, 'piece': 'tok%d' % t, 'text': 'prompt %d' % p}).encode() + b'\n'
              for p in range(2) for t in range(3))
seed('jsonl-ok', 2, jl)
seed('jsonl-min', 2, b'{"prompt":0,"position":0,"experts":[[1]]}\n')
seed('jsonl-bad', 2, b'{"prompt":0,"position":-1,"experts":[]}\n')
seed('jsonl-labels-missing', 2, b'{"prompt":0,"position":0,"experts":[[1]]}\n', 0, 0, b'{"prompt": 3, "labels": {"a": 1}}\n')
def ids(T, L, K, w=False, text=None, extra=None):
    h = {'tokens': T, 'layers': L, 'top_k': K}
    if w: h['weights'] = True
    if text is not None: h['text'] = text
    if extra: h.update(extra)
    body = struct.pack('<%di' % (T * L * K), *[((t * 3 + l + r) % 6) if r < K - (t % 2) else -1
                                              for t in range(T) for l in range(L) for r in range(K)])
    if w: body += struct.pack('<%df' % (T * L * K), *[0.5] * (T * L * K))
    return json.dumps(h).encode() + b'\n' + body
seed('ids-ok', 0, ids(3, 2, 2) + ids(2, 2, 2, True, 'second'))
seed('ids-layerids', 0, ids(2, 2, 3, extra={'layer_ids': [1, 3]}))
seed('ids-truncated', 0, ids(3, 2, 2)[:-5])
seed('ids-nan', 0, json.dumps({'tokens': 1, 'layers': 1, 'top_k': 1, 'weights': True}).encode() + b'\n'
     + struct.pack('<i', 2) + struct.pack('<f', float('nan')))
PY

# ---- interventions: byte 0 layers, byte 1 experts, byte 2 the flag; text
python3 - "$C/interventions" <<'PY'
import os, sys
out = sys.argv[1]
texts = [b'silence 3:5', b'silence 0-2:1,3; steer 1:*:+1.5', b'raise 3:5; lower 2:1:0.2', b'top-k 2; ser 1:0.5',
         b'# a plan\nforce 0:1\nscale 1:2:0.5\n\nsteer-std 2:3:-0.5 # comment\n', b'drop *:0', b'top-k 1:3',
         b'ser 2:1:0.25', b'silence 1:2 1:3', b'bogus 1:2', b'silence 99:1', b'steer 1:1:nan', b'silence',
         b'0-3:1', b'2:5', b'*:*', b'1:2:+0.5', b'3', b'raise 1:1\r\nlower 1:2\r\n']
for i, t in enumerate(texts):
    open(os.path.join(out, 'text-%02d' % i), 'wb').write(bytes([8, 16, i % 11]) + t)
PY

# ---- db: small traces of each kind and version, shrunk (1 KiB pages, the
# ms_seq helper table cut to 0..63, rollback journal) so a seed is a few KiB
synth --arch olmoe --type F32 --embd 8 --ff 8 "$T/m.gguf"
printf 'hello world\nsecond prompt\n' > "$T/p.txt"
printf '{"text": "en one", "labels": {"lang": "en"}}\n{"text": "de zwei", "labels": {"lang": "de"}}\n' > "$T/p.jsonl"
"$M" trace "$T/m.gguf" --prompts "$T/p.txt" --db "$T/plain.db" -t 1 2>/dev/null
"$M" trace "$T/m.gguf" --prompts "$T/p.jsonl" --db "$T/full.db" -t 1 --probs --stats --gen 2 2>/dev/null
"$M" analyze load --db "$T/full.db" >/dev/null 2>&1 || true
"$M" analyze coactivation --db "$T/full.db" >/dev/null 2>&1 || true
"$M" experiment "$T/m.gguf" --prompts "$T/p.txt" --db "$T/exp.db" --silence 0:1 --gen 2 -t 1 >/dev/null 2>&1 || true
python3 -c "
import sys
sys.stdout.write('prompt,position,layer,rank,expert,weight\n')
for p in range(2):
    for t in range(3):
        for l in range(2):
            for r in range(2): sys.stdout.write('%d,%d,%d,%d,%d,0.5\n' % (p, t, l, r, (t + l + 3 * r) % 4))" > "$T/i.csv"
"$M" import --db "$T/import.db" --format csv "$T/i.csv" >/dev/null
cp "$T/full.db" "$T/v3.db"
sqlite3 "$T/v3.db" 'DROP VIEW an_compare; DROP VIEW an_compare_shift; DROP TABLE an_compare_prompt;
    DROP TABLE an_compare_pos; DROP TABLE an_compare_layer; DROP TABLE sweep_candidate; DROP TABLE sweep;
    PRAGMA user_version=3'
cp "$T/full.db" "$T/v1.db"
sqlite3 "$T/v1.db" 'DROP VIEW expert_stats; ALTER TABLE routing_packed DROP COLUMN out_argmax;
    ALTER TABLE hidden_stats DROP COLUMN channel; CREATE VIEW expert_stats AS SELECT 1 AS stale;
    DROP VIEW routing; CREATE VIEW routing AS SELECT 1 AS stale; DROP VIEW an_compare; DROP VIEW an_compare_shift;
    DROP TABLE an_compare_prompt; DROP TABLE an_compare_pos; DROP TABLE an_compare_layer;
    DROP TABLE sweep_candidate; DROP TABLE sweep; PRAGMA user_version=1'
cp "$T/plain.db" "$T/newer.db"; sqlite3 "$T/newer.db" 'PRAGMA user_version=99'
sqlite3 "$T/foreign.db" 'CREATE TABLE x(a); INSERT INTO x VALUES (1)'
cp "$T/plain.db" "$T/noappid.db"; sqlite3 "$T/noappid.db" 'PRAGMA application_id=0'
for f in plain full exp import v3 v1 newer foreign noappid; do
    [ -f "$T/$f.db" ] || continue
    sqlite3 "$T/$f.db" "PRAGMA journal_mode=DELETE; DELETE FROM ms_seq WHERE i > 63;" >/dev/null 2>&1 || true
    sqlite3 "$T/$f.db" "PRAGMA page_size=1024; VACUUM;" >/dev/null
    cp "$T/$f.db" "$C/db/$f.db"
done
printf 'not a database at all\n' > "$C/db/text.db"
: > "$C/db/empty.db"
head -c 3000 "$C/db/plain.db" > "$C/db/truncated.db"

# ---- hf: byte 0 even + a safetensors image, odd + a tokenizer.json
# (hand-made small files of each dtype and defect, and the tokenizers of
# ../shared/fixtures-hf when present)
python3 - "$C/hf" "$SHARED/fixtures-hf" <<'PY'
import json, os, struct, sys
out, hf = sys.argv[1], sys.argv[2]
def st(tensors, pad=True, meta=True, n_override=None):
    h, data = {}, b""
    if meta: h["__metadata__"] = {"format": "pt"}
    for name, dt, shape, payload in tensors:
        h[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    hj = json.dumps(h).encode()
    if pad: hj += b" " * (-len(hj) % 8)
    return struct.pack("<Q", len(hj) if n_override is None else n_override) + hj + data
ok = [("a.weight", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)),
      ("b.weight", "F16", [3], b"\x00\x3c" * 3), ("c.weight", "BF16", [1, 2], b"\x80\x3f" * 2)]
seeds = {
    "st-valid": st(ok), "st-nopad": st(ok, pad=False, meta=False),
    "st-truncated": st(ok)[:-5], "st-absurd-length": st(ok, n_override=1 << 60),
    "st-i32": st([("x", "I32", [2], b"\0" * 8)]), "st-empty-shape": st([("s", "F32", [], b"\0" * 4)]),
    "st-zero-dim": st([("z", "F32", [0, 3], b"")] + ok),
}
b = bytearray(st(ok)); i = b.index(b'"data_offsets": [0') + 17; b[i] = ord("4"); seeds["st-overlap"] = bytes(b)
for k, v in seeds.items(): open(os.path.join(out, k), "wb").write(b"\0" + v)
tok = {"version": "1.0", "added_tokens": [{"id": 5, "content": "<|x|>", "special": True}, {"id": 6, "content": "yo", "special": False}],
       "normalizer": {"type": "NFC"}, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
       "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|x|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]},
       "decoder": {"type": "ByteLevel"},
       "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3, "Ġa": 4}, "merges": [["a", "b"], "Ġ a"]}}
open(os.path.join(out, "tok-small"), "wb").write(b"\1" + json.dumps(tok).encode())
# SentencePiece-style: Prepend+Replace, byte fallback, unk, added-token flags,
# the Replace/ByteFallback/Fuse/Strip decoder; and a Metaspace + Digits one
sp = {"version": "1.0",
      "added_tokens": [{"id": 0, "content": "<unk>", "special": True, "normalized": False},
                       {"id": 1, "content": "<s>", "special": True, "normalized": False},
                       {"id": 9, "content": "<m>", "special": False, "normalized": False, "lstrip": True, "rstrip": True},
                       {"id": 10, "content": "ab", "special": False, "normalized": True, "single_word": True}],
      "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                         {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
      "pre_tokenizer": None,
      "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                         "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
      "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                                   {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
      "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True,
                "vocab": {"<unk>": 0, "<s>": 1, "<0x0A>": 2, "<0xC3>": 3, "<0xA9>": 4, "\u2581": 5, "a": 6, "b": 7, "\u2581a": 8},
                "merges": ["\u2581 a"]}}
open(os.path.join(out, "tok-spm-bpe"), "wb").write(b"\1" + json.dumps(sp).encode())
sp["normalizer"] = None
sp["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [{"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True},
                                                             {"type": "Digits", "individual_digits": True}]}
sp["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True}
open(os.path.join(out, "tok-metaspace"), "wb").write(b"\1" + json.dumps(sp).encode())
for d in sorted(os.listdir(hf)) if os.path.isdir(hf) else []:
    if d.startswith(("olmoe", "qwen3moe", "gpt-oss", "mixtral")):
        open(os.path.join(out, "tok-" + d), "wb").write(b"\1" + open(os.path.join(hf, d, "tokenizer.json"), "rb").read())
PY

for t in gguf tokenizer prompts import interventions db hf; do
    echo "$t: $(ls "$C/$t" | wc -l) seeds, $(du -sk "$C/$t" | cut -f1) KiB"
done
