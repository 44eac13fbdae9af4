#!/usr/bin/python3
"""Data that lets a test check the trained default model without the corpus.

  card_data.py --corpus CORPUS_DIR --model MODEL_DIR --heldout OUT_DIR --unigram OUT.json
               --sources OUT.tsv [--chars N]

Writes
  OUT_DIR/DOMAIN.txt   the first N characters (default 12000) of each domain's
                       held-out split, documents in corpus order separated by a
                       blank line: a prefix of the text train_moe.py evaluates;
  OUT_DIR/SOURCES.md   which documents (id, Debian package, version, licences,
                       copyright file) those excerpts come from;
  OUT.json             per domain, the count of every token id in the training
                       split (train_moe.py's encoding, one separator token per
                       document): the unigram baseline's data;
  OUT.tsv              every Debian package the corpus drew text from: version,
                       characters taken, licences (the copyright file's
                       machine-readable License: fields), copyright file.
Deterministic: same corpus and tokenizer give the same files.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--model", required=True, help="train_moe.py output directory (tokenizer.json)")
    ap.add_argument("--heldout", required=True)
    ap.add_argument("--unigram", required=True)
    ap.add_argument("--sources", required=True)
    ap.add_argument("--chars", type=int, default=12000)
    a = ap.parse_args()
    tok = bpe.Tokenizer.load(os.path.join(a.model, "tokenizer.json"))
    manifest = json.load(open(os.path.join(a.corpus, "manifest.json"), encoding="utf-8"))
    pk = manifest["packages"]
    os.makedirs(a.heldout, exist_ok=True)
    domains = sorted(n[:-6] for n in os.listdir(os.path.join(a.corpus, "train")) if n.endswith(".jsonl"))
    src = ["# Sources of the held-out excerpts", "",
           "Each DOMAIN.txt is the start of that domain's held-out split of the training corpus",
           "(tools/corpus/build_corpus.py; never seen in training), written by",
           "tools/train/card_data.py.  The excerpts are unmodified text of the documents below",
           "(manual pages rendered by groff), distributed under the licences their Debian",
           "packages state; the copyright file named is the one in the package.", ""]
    counts = {}
    for d in domains:
        docs = read_jsonl(os.path.join(a.corpus, "heldout", d + ".jsonl"))
        parts, used, n = [], [], 0
        for doc in docs:
            if n >= a.chars:
                break
            t = doc["text"][: a.chars - n]
            parts.append(t)
            used.append((doc, len(t)))
            n += len(t) + 2
        with open(os.path.join(a.heldout, d + ".txt"), "w", encoding="utf-8") as f:
            f.write("\n\n".join(parts) + "\n")
        src += [f"## {d}", "", "| document | package | version | licences | copyright file | chars |",
                "| --- | --- | --- | --- | --- | ---: |"]
        for doc, c in used:
            p = pk.get(doc["package"], {})
            lic = "; ".join(p.get("licenses") or []) or "see copyright file"
            src.append(f"| {doc['id']} | {doc['package']} | {p.get('version', '?')} | {lic} | "
                       f"{p.get('copyright_file', '?')} | {c} |")
        src.append("")
        c = [0] * len(tok)
        for doc in read_jsonl(os.path.join(a.corpus, "train", d + ".jsonl")):
            c[tok.eos] += 1
            for i in tok.encode(doc["text"]):
                c[i] += 1
        counts[d] = c
    with open(os.path.join(a.heldout, "SOURCES.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(src))
    with open(a.sources, "w", encoding="utf-8") as f:
        f.write("package\tversion\tchars\tlicences\tcopyright_file\n")
        for name in sorted(pk):
            p = pk[name]
            lic = "; ".join(p.get("licenses") or []) or "see copyright file"
            f.write(f"{name}\t{p.get('version', '')}\t{p.get('chars', 0)}\t{lic}\t{p.get('copyright_file', '')}\n")
    with open(a.unigram, "w", encoding="utf-8") as f:
        json.dump({"n_vocab": len(tok), "note": "training-split token counts per domain (card_data.py)",
                   "counts": counts}, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
