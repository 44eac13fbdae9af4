#!/usr/bin/python3
"""Build the moescope training corpus from text shipped in Debian packages.

Domains (one JSONL file each, one {"id", "package", "text"} document a line):
  en      English manual pages (sections 1, 5, 8): technical documentation
  de fr es  German, French and Spanish translations of manual pages; the same
          page names as in "en" come first, so the four domains hold
          parallel documents
  prose   English prose: long package descriptions (dpkg status), section 7
          overview manual pages, README files under /usr/share/doc
  c       C headers under /usr/include
  python  Python modules of the installed python3.11 standard library
Every document's id decides its split (held-out when sha1(id) % 100 < the
held-out percentage); manual pages use the page name as id in every
language, so held-out pages are held out in all languages.  Files are taken
in sha1(path) order (spread over packages) until a domain's character budget
is spent.  Same installed files -> same corpus.

The manifest records, for every package that contributed text, its version,
its /usr/share/doc/PKG/copyright file and the License: fields found there.

Run tools/corpus/install-deps.sh first (apt-get, as root).
"""
import argparse
import glob
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def h(s):
    return int(hashlib.sha1(s.encode("utf-8")).hexdigest(), 16)


def owners():
    """path -> owning package, from dpkg's file lists."""
    m = {}
    for lst in glob.glob("/var/lib/dpkg/info/*.list"):
        pkg = os.path.basename(lst)[:-5].split(":")[0]
        with open(lst, encoding="utf-8", errors="replace") as f:
            for line in f:
                m[line.rstrip("\n")] = pkg
    return m


def owner(own, path):
    """Owning package, also for files reached through a symlinked directory."""
    return own.get(path) or own.get(os.path.realpath(path)) or "?"


def dpkg_status():
    """[(package, version, long description)] of installed packages."""
    out, cur, key = [], {}, None
    with open("/var/lib/dpkg/status", encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                if cur:
                    out.append(cur)
                cur, key = {}, None
            elif line[0] in " \t" and key:
                cur[key] += "\n" + line
            elif ":" in line:
                key, v = line.split(":", 1)
                cur[key] = v.strip()
    if cur:
        out.append(cur)
    return out


def licences(pkg):
    p = f"/usr/share/doc/{pkg}/copyright"
    if not os.path.exists(p):
        return None, []
    seen = []
    with open(p, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("License:"):
                v = line[8:].strip()
                if v and v not in seen:
                    seen.append(v)
    return p, seen


MAX_DOC = 40000
SPACES = re.compile(r"(?<=\S) {2,}")
BLANKS = re.compile(r"\n{3,}")


def render_man(path):
    """Manual page -> plain UTF-8 text (no overstrike, no hyphenation)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        src = f.read()
    if src.startswith(b".so "):
        return None  # link to another page
    env = dict(os.environ, LC_ALL="C.UTF-8")
    r = subprocess.run(["groff", "-k", "-Tutf8", "-mandoc", "-P-cbou", "-rLL=78n", "-rHY=0", "-dAD=l"],
                       input=src, capture_output=True, env=env, timeout=60)
    if r.returncode != 0:
        return None
    t = r.stdout.decode("utf-8", errors="replace")
    t = "\n".join(SPACES.sub(" ", line.rstrip()) for line in t.split("\n"))
    return BLANKS.sub("\n\n", t).strip() + "\n"


def read_text(path):
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            b = f.read(2_000_000)
        t = b.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError):
        return None
    if "\0" in t:
        return None
    return t


def page_name(path):
    b = os.path.basename(path)
    return re.sub(r"\.gz$", "", b)


def man_pages(lang, sections):
    base = "/usr/share/man" if lang == "en" else f"/usr/share/man/{lang}"
    pages = {}
    for s in sections:
        for p in glob.glob(f"{base}/man{s}/*"):
            if os.path.isfile(p) and not os.path.islink(p):
                pages.setdefault(page_name(p), p)
    return pages


class Domain:
    def __init__(self, name, budget, heldout_pct):
        self.name, self.budget, self.pct = name, budget, heldout_pct
        self.docs = []
        self.chars = 0

    def full(self):
        return self.budget and self.chars >= self.budget

    def add(self, doc_id, pkg, text, split_id=None):
        if not text or not text.strip() or self.full():
            return False
        if len(text) > MAX_DOC:  # keep one huge file from filling a domain
            cut = text.rfind("\n", 0, MAX_DOC)
            text = text[:cut + 1 if cut > 0 else MAX_DOC]
        split = "heldout" if h(split_id or doc_id) % 100 < self.pct else "train"
        self.docs.append({"id": doc_id, "package": pkg, "split": split, "text": text})
        self.chars += len(text)
        return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--chars", type=int, default=6_000_000, help="character budget per domain")
    ap.add_argument("--heldout", type=int, default=5, help="held-out percentage")
    a = ap.parse_args()

    own = owners()
    dom = {n: Domain(n, a.chars, a.heldout) for n in ["en", "de", "fr", "es", "prose", "c", "python"]}

    # parallel manual pages: names present in en and all three translations
    sec = ["1", "5", "8"]
    man = {lang: man_pages(lang, sec) for lang in ["en", "de", "fr", "es"]}
    shared = sorted(set(man["en"]) & set(man["de"]) & set(man["fr"]) & set(man["es"]), key=h)
    print(f"{len(shared)} manual pages exist in en, de, fr and es", file=sys.stderr)
    for name in shared:
        if all(dom[x].full() for x in ["en", "de", "fr", "es"]):
            break
        texts = {lang: render_man(man[lang][name]) for lang in ["en", "de", "fr", "es"]}
        if not all(texts.values()):
            continue
        for lang, t in texts.items():
            dom[lang].add(f"man:{name}:{lang}", owner(own, man[lang][name]), t, split_id=f"man:{name}")
    # then more translated pages (not parallel) and English pages, until budgets are spent
    for lang in ["en", "de", "fr", "es"]:
        for name in sorted(set(man[lang]) - set(shared), key=h):
            if dom[lang].full():
                break
            dom[lang].add(f"man:{name}:{lang}", owner(own, man[lang][name]), render_man(man[lang][name]),
                          split_id=f"man:{name}")

    # prose: package descriptions, overview pages, READMEs
    for st in sorted(dpkg_status(), key=lambda s: h(s.get("Package", ""))):
        d = st.get("Description", "")
        if "\n" not in d:
            continue
        short, long_ = d.split("\n", 1)
        body = "\n".join("" if ln.strip() == "." else ln.strip() for ln in long_.split("\n"))
        dom["prose"].add(f"desc:{st['Package']}", st["Package"], short + "\n\n" + body.strip() + "\n")
    for name, p in sorted(man_pages("en", ["7"]).items(), key=lambda kv: h(kv[0])):
        dom["prose"].add(f"man:{name}:en", owner(own, p), render_man(p))
    for p in sorted(glob.glob("/usr/share/doc/*/README*"), key=h):
        if os.path.isfile(p) and not re.search(r"\.(html?|pdf|png)$", p):
            dom["prose"].add(f"file:{p}", owner(own, p), read_text(p))

    for p in sorted(glob.glob("/usr/include/**/*.h", recursive=True), key=h):
        if os.path.isfile(p):
            dom["c"].add(f"file:{p}", owner(own, p), read_text(p))
    py = [p for p in glob.glob("/usr/lib/python3.11/**/*.py", recursive=True)
          if "/test" not in p and "site-packages" not in p and "dist-packages" not in p]
    for p in sorted(py, key=h):
        dom["python"].add(f"file:{p}", owner(own, p), read_text(p))

    for split in ["train", "heldout"]:
        os.makedirs(os.path.join(a.out, split), exist_ok=True)
    pkgs = {}
    summary = {}
    for n, d in dom.items():
        files = {s: open(os.path.join(a.out, s, n + ".jsonl"), "w", encoding="utf-8") for s in ["train", "heldout"]}
        cnt = {"train": [0, 0], "heldout": [0, 0]}
        for doc in d.docs:
            files[doc["split"]].write(json.dumps({"id": doc["id"], "package": doc["package"], "text": doc["text"]},
                                                 ensure_ascii=False) + "\n")
            cnt[doc["split"]][0] += 1
            cnt[doc["split"]][1] += len(doc["text"])
            pkgs.setdefault(doc["package"], 0)
            pkgs[doc["package"]] += len(doc["text"])
        for f in files.values():
            f.close()
        summary[n] = {s: {"docs": c[0], "chars": c[1]} for s, c in cnt.items()}
        print(f"{n}: " + ", ".join(f"{s} {c[0]} docs {c[1]} chars" for s, c in cnt.items()), file=sys.stderr)

    versions = {st.get("Package"): st.get("Version") for st in dpkg_status()}
    manifest = {"builder": "tools/corpus/build_corpus.py", "args": vars(a), "domains": summary, "packages": {}}
    for pkg in sorted(pkgs):
        cp, lic = licences(pkg)
        manifest["packages"][pkg] = {"version": versions.get(pkg), "chars": pkgs[pkg],
                                     "copyright_file": cp, "licenses": lic}
    with open(os.path.join(a.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
