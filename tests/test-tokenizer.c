/* test-tokenizer.c — tokenizers against llama.cpp's public test vectors
 * (fixtures/vocab: 10 real vocabularies x 46 strings, and tiny-bpe for the
 * fixture models' own vocabulary), the real Qwen3, DeepSeek-V3 and gpt-oss
 * vocabularies of fixtures2/vocab (gzip-compressed there, unpacked into the
 * test's temp dir) with llama.cpp's expectations, the tiny vocabulary under
 * the qwen2 and gpt-4o pre-tokenizers, the reference token lists of every
 * fixture model (BOS as their metadata says), user-defined tokens matched in
 * raw text, round-trip detokenisation, invalid UTF-8 and error handling.
 * The tokenizers of `synth` models and of the bundled default model are
 * checked without ../shared: special ids, BOS, round trips, random input,
 * invalid UTF-8, control tokens. */
#include <jansson.h>
#include <zlib.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "mtest.h"
#include "hf.h"
#include "synth.h"
#include "tok-internal.h"
#include "tokenizer.h"

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (size_t r; buf && (r = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += r;
        if (n == cap) {
            char *p = realloc(buf, (cap *= 2) + 1);
            if (!p) { free(buf); buf = NULL; }
            else buf = p;
        }
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    *len = n;
    return buf;
}

typedef struct {
    char **s;        /* test strings (pointers into the .inp buffer) */
    size_t *len;
    char **ids;      /* matching .out lines */
    size_t n;
    char *inp, *out;
} Vectors;

static void vectors_free(Vectors *v)
{
    free(v->s);
    free(v->len);
    free(v->ids);
    free(v->inp);
    free(v->out);
}

/* .inp: strings joined by "\n__ggml_vocab_test__\n", one trailing separator;
 * .out: one line per string. */
static int load_vectors(const char *inp_path, const char *out_path, Vectors *v)
{
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t il, ol;
    memset(v, 0, sizeof *v);
    v->inp = read_all(inp_path, &il);
    v->out = read_all(out_path, &ol);
    if (!v->inp || !v->out) return -1;
    size_t cap = 64;
    v->s = malloc(cap * sizeof *v->s);
    v->len = malloc(cap * sizeof *v->len);
    v->ids = malloc(cap * sizeof *v->ids);
    char *p = v->inp, *end = v->inp + il;
    while (p < end) {
        char *q = memmem(p, (size_t)(end - p), sep, sizeof sep - 1);
        if (!q) break;
        if (v->n == cap) return -1;
        *q = '\0';
        v->s[v->n] = p;
        v->len[v->n] = (size_t)(q - p);
        v->n++;
        p = q + sizeof sep - 1;
    }
    size_t k = 0;
    for (char *l = v->out; k < v->n && l <= v->out + ol;) {
        char *nl = strchr(l, '\n');
        if (nl) *nl = '\0';
        v->ids[k++] = l;
        if (!nl) break;
        l = nl + 1;
    }
    return k == v->n ? 0 : -1;
}

/* Parse " 1 2 3" into ids; returns count. */
static size_t parse_ids(const char *line, int32_t *ids, size_t cap)
{
    size_t n = 0;
    char *e;
    for (const char *p = line; *p && n < cap; p = e) {
        long x = strtol(p, &e, 10);
        if (e == p) break;
        ids[n++] = (int32_t)x;
    }
    return n;
}

static int vector_matches(const MsTokenizer *t, const char *s, size_t len, const char *expect, bool verbose)
{
    int32_t want[4096], *got = NULL;
    size_t nw = parse_ids(expect, want, 4096);
    MsError err = {0};
    int n = ms_tokenizer_encode(t, s, len, false, &got, &err);
    int ok = n >= 0 && (size_t)n == nw && (nw == 0 || memcmp(got, want, nw * sizeof *got) == 0);
    if (!ok && verbose) {
        printf("#   input: \"");
        for (size_t i = 0; i < len && i < 120; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c == '\n') printf("\\n");
            else if (c == '\t') printf("\\t");
            else putchar(c);
        }
        printf("\"\n#   want:%s\n#   got: ", expect);
        for (int i = 0; i < n; i++) printf(" %d", got[i]);
        if (n < 0) printf("error %d %s", n, err.msg);
        printf("\n");
    }
    free(got);
    return ok;
}

/* Round trip: the pieces of encode(s) concatenate to s for byte-level BPE
 * (no byte is lost); decode() also equals s unless llama.cpp's clean-up of
 * " ." / " '" patterns applies, which it does only when clean_spaces is on,
 * so only strings without such patterns are required to come back. */
static bool has_clean_pattern(const char *s, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (s[i - 1] == ' ' && strchr("?!.,'", s[i]) && s[i]) return true;
    return false;
}

static void check_roundtrip(const char *name, const MsTokenizer *t, const Vectors *v)
{
    /* SentencePiece pieces carry the prefix space that decode() removes, and
     * llama.cpp never applies the clean-up to SPM, so every string counts */
    bool spm = ms_tokenizer_kind(t) == MS_TOK_SPM;
    int pieces_ok = 0, decode_ok = 0, decode_n = 0;
    for (size_t i = 0; i < v->n; i++) {
        int32_t *ids = NULL;
        int n = ms_tokenizer_encode(t, v->s[i], v->len[i], false, &ids, NULL);
        if (n < 0) continue;
        if (!spm) {
            size_t cap = v->len[i] * 4 + 64, cl = 0;
            char *cat = malloc(cap);
            bool fits = cat != NULL;
            for (int k = 0; k < n && fits; k++) {
                int pl = ms_tokenizer_piece(t, ids[k], cat + cl, cap - cl);
                if (pl < 0 || cl + (size_t)pl > cap) fits = false;
                else cl += (size_t)pl;
            }
            pieces_ok += fits && cl == v->len[i] && memcmp(cat, v->s[i], cl) == 0;
            free(cat);
        }
        if (spm || !has_clean_pattern(v->s[i], v->len[i])) {
            size_t dl = 0;
            char *d = ms_tokenizer_decode(t, ids, (size_t)n, &dl);
            decode_n++;
            decode_ok += d && dl == v->len[i] && memcmp(d, v->s[i], dl) == 0 && d[dl] == '\0';
            free(d);
        }
        free(ids);
    }
    if (!spm)
        MT_CHECK(pieces_ok == (int)v->n, "%s: pieces of encode(s) concatenate to s (%d/%zu)", name, pieces_ok, v->n);
    MT_CHECK(decode_ok == decode_n, "%s: decode(encode(s)) == s (%d/%d strings%s)", name, decode_ok, decode_n,
             spm ? "" : " without clean-up patterns");
}

/* Deterministic random inputs (xorshift, fixed seed): every tokenizer must
 * accept any bytes and give back any valid UTF-8 exactly (byte-level BPE
 * through its pieces, SentencePiece through byte fallback and decode).
 * Invalid UTF-8 need not come back: llama.cpp reads a bad lead byte as the
 * start of a multi-byte character, which can swallow the escaped space. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t random_text(uint64_t *rng, char *buf, bool valid_utf8)
{
    static const uint32_t pool[] = { ' ', ' ', '\n', '\t', 'a', 'Z', '7', '\'', '.', '-', 0xA0, 0xE9, 0x3000,
                                     0x4E2D, 0x1F600, 0x200D, 0x0301, 0xD55C, 0x2028, 0xFFFD, 0x10FFFF };
    size_t n = 0, k = rng_next(rng) % 24;
    for (size_t i = 0; i < k; i++) {
        uint64_t r = rng_next(rng);
        if (!valid_utf8) {
            buf[n++] = (char)(r & 0xff);
            continue;
        }
        uint32_t cp = r % 3 ? pool[(r >> 8) % (sizeof pool / sizeof pool[0])] : 0x20 + (uint32_t)((r >> 8) % 0x2fe0);
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
        if (cp < 0x80) buf[n++] = (char)cp;
        else if (cp < 0x800) { buf[n++] = (char)(0xc0 | cp >> 6); buf[n++] = (char)(0x80 | (cp & 63)); }
        else if (cp < 0x10000) {
            buf[n++] = (char)(0xe0 | cp >> 12); buf[n++] = (char)(0x80 | ((cp >> 6) & 63));
            buf[n++] = (char)(0x80 | (cp & 63));
        } else {
            buf[n++] = (char)(0xf0 | cp >> 18); buf[n++] = (char)(0x80 | ((cp >> 12) & 63));
            buf[n++] = (char)(0x80 | ((cp >> 6) & 63)); buf[n++] = (char)(0x80 | (cp & 63));
        }
    }
    return n;
}

static void check_random(const char *name, const MsTokenizer *t)
{
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    int ok = 0, exact = 0, want_exact = 0;
    const int rounds = 300;
    MsTokKind kind = ms_tokenizer_kind(t);
    for (int r = 0; r < rounds; r++) {
        char text[128];
        bool valid = r % 2 == 0;
        size_t n = random_text(&rng, text, valid);
        if (kind == MS_TOK_SPM)  /* U+2581 is how SPM spells a space: keep it out */
            for (size_t i = 0; i < n; i++) if ((uint8_t)text[i] == 0xe2) text[i] = 'e';
        int32_t *ids = NULL;
        int k = ms_tokenizer_encode(t, text, n, true, &ids, NULL);
        bool in_range = k >= 0;
        for (int i = 0; in_range && i < k; i++) in_range = ids[i] >= 0 && ids[i] < ms_tokenizer_n_vocab(t);
        ok += in_range;
        if (in_range && valid && kind != MS_TOK_WPM) {
            want_exact++;
            size_t dl = 0;
            char *d = NULL;
            if (kind == MS_TOK_BPE) {
                char cat[1024];
                size_t cl = 0;
                for (int i = 0; i < k; i++) {
                    int pl = ms_tokenizer_piece(t, ids[i], cat + cl, sizeof cat - cl);
                    if (pl < 0 || cl + (size_t)pl > sizeof cat) { cl = SIZE_MAX; break; }
                    cl += (size_t)pl;
                }
                exact += cl == n && memcmp(cat, text, n) == 0;
            } else {
                /* skip BOS so its empty piece does not take the prefix space */
                int b = k > 0 && ids[0] == ms_tokenizer_bos(t);
                d = ms_tokenizer_decode(t, ids + b, (size_t)(k - b), &dl);
                exact += d && dl == n && memcmp(d, text, n) == 0;
            }
            free(d);
        }
        free(ids);
    }
    MT_CHECK(ok == rounds, "%s: %d random inputs tokenize to in-vocabulary ids (%d)", name, rounds, ok);
    if (want_exact)
        MT_CHECK(exact == want_exact, "%s: random inputs come back exactly (%d/%d)", name, exact, want_exact);
}

static MsTokenizer *open_tok(const char *path, MsGguf **g)
{
    MsError err = {0};
    *g = ms_gguf_open(path, &err);
    if (!*g) {
        mt_diag("cannot open %s: %s", path, err.msg);
        return NULL;
    }
    MsTokenizer *t = ms_tokenizer_new(*g, &err);
    if (!t) mt_diag("tokenizer for %s: %s", path, err.msg);
    return t;
}

/* Unpack a .gz file into dst; 0 on success. */
static int gunzip_to(const char *src, const char *dst)
{
    gzFile in = gzopen(src, "rb");
    FILE *out = in ? fopen(dst, "wb") : NULL;
    int rc = in && out ? 0 : -1;
    char buf[1 << 16];
    int n;
    while (rc == 0 && (n = gzread(in, buf, sizeof buf)) > 0)
        if (fwrite(buf, 1, (size_t)n, out) != (size_t)n) rc = -1;
    if (rc == 0 && n < 0) rc = -1;
    if (in) gzclose(in);
    if (out && fclose(out) != 0) rc = -1;
    return rc;
}

/* Vocabulary gp tested against the vectors ip / op (llama.cpp's ids). */
/* BPE's per-call word cache (texts of 256 bytes and more) gives exactly
 * the ids of merging every piece: all vectors joined into one long text,
 * three times over, with and without it. */
static void check_word_cache(const char *name, MsTokenizer *t, const Vectors *v)
{
    TokStr all = { 0 };
    for (int rep = 0; rep < 3; rep++)
        for (size_t i = 0; i < v->n; i++) {
            tokstr_append(&all, v->s[i], v->len[i]);
            tokstr_append(&all, rep ? " \n" : "\n\n", 2);
        }
    int32_t *a = NULL, *b = NULL;
    int na = ms_tokenizer_encode(t, all.s, all.n, false, &a, NULL);
    t->no_word_cache = true;
    int nb = ms_tokenizer_encode(t, all.s, all.n, false, &b, NULL);
    t->no_word_cache = false;
    MT_CHECK(na > 0 && na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0,
             "%s: word cache on a %zu-byte text: same %d ids as without it", name, all.n, na);
    free(a);
    free(b);
    free(all.s);
}

static void test_vocab_at(const char *gp, const char *ip, const char *op, const char *name, MsTokKind kind)
{
    MsGguf *g = NULL;
    MsTokenizer *t = open_tok(gp, &g);
    if (!MT_CHECK(t != NULL, "%s: tokenizer loads", name)) {
        ms_gguf_free(g);
        return;
    }
    MT_CHECK(ms_tokenizer_kind(t) == kind, "%s: kind %d (model %s, pre %s)", name, (int)ms_tokenizer_kind(t),
             ms_tokenizer_model_name(t), ms_tokenizer_pre_name(t));
    Vectors v;
    if (!MT_CHECK(load_vectors(ip, op, &v) == 0 && v.n == 46, "%s: 46 vectors read", name)) {
        vectors_free(&v);
        ms_tokenizer_free(t);
        ms_gguf_free(g);
        return;
    }
    int pass = 0;
    for (size_t i = 0; i < v.n; i++) pass += vector_matches(t, v.s[i], v.len[i], v.ids[i], true);
    mt_diag("%-15s %2d/%zu vectors pass", name, pass, v.n);
    MT_CHECK(pass == (int)v.n, "%s: all vectors tokenize exactly as llama.cpp (%d/%zu)", name, pass, v.n);
    if (kind != MS_TOK_WPM) check_roundtrip(name, t, &v);
    check_random(name, t);
    if (kind == MS_TOK_BPE) check_word_cache(name, t, &v);
    vectors_free(&v);
    ms_tokenizer_free(t);
    ms_gguf_free(g);
}

static void test_vocab(const char *shared, const char *name, MsTokKind kind)
{
    char gp[1024], ip[1100], op[1100];
    snprintf(gp, sizeof gp, "%s/fixtures/vocab/ggml-vocab-%s.gguf", shared, name);
    snprintf(ip, sizeof ip, "%s.inp", gp);
    snprintf(op, sizeof op, "%s.out", gp);
    test_vocab_at(gp, ip, op, name, kind);
}

/* How many lines of two id files differ (Hugging Face vs llama.cpp). */
static int count_differing_lines(const char *a, const char *b, char *which, size_t cap)
{
    size_t la, lb;
    char *x = read_all(a, &la), *y = read_all(b, &lb);
    int nd = 0, line = 0;
    which[0] = '\0';
    for (char *p = x, *q = y; p && q && *p && *q; line++) {
        char *pe = strchr(p, '\n'), *qe = strchr(q, '\n');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p), ql = qe ? (size_t)(qe - q) : strlen(q);
        if (pl != ql || memcmp(p, q, pl) != 0) {
            size_t o = strlen(which);
            snprintf(which + o, cap - o, "%s%d", nd ? "," : "", line);
            nd++;
        }
        if (!pe || !qe) break;
        p = pe + 1;
        q = qe + 1;
    }
    free(x);
    free(y);
    return nd;
}

/* A real 2025-2026 vocabulary of fixtures2/vocab, unpacked first. */
static void test_vocab2(const char *shared, const char *name)
{
    char gz[1024], gp[1024], ip[1100], op[1100], hp[1100];
    snprintf(gz, sizeof gz, "%s/fixtures2/vocab/ggml-vocab-%s.gguf.gz", shared, name);
    snprintf(gp, sizeof gp, "%s/ggml-vocab-%s.gguf", mt_tmpdir(), name);
    snprintf(ip, sizeof ip, "%s/fixtures2/vocab/ggml-vocab-%s.gguf.inp", shared, name);
    snprintf(op, sizeof op, "%s/fixtures2/vocab/ggml-vocab-%s.gguf.out", shared, name);
    snprintf(hp, sizeof hp, "%s/fixtures2/vocab/ggml-vocab-%s.gguf.hf.out", shared, name);
    if (!MT_CHECK(gunzip_to(gz, gp) == 0, "%s: vocabulary unpacked", name)) return;
    test_vocab_at(gp, ip, op, name, MS_TOK_BPE);
    char which[256];
    int nd = count_differing_lines(op, hp, which, sizeof which);
    mt_diag("%-15s Hugging Face's tokenizer differs from llama.cpp on %d of 46 strings%s%s (we follow llama.cpp)",
            name, nd, nd ? ": " : "", which);
}

/* The same real vocabulary read from its Hugging Face tokenizer.json (with
 * tokenizer_config.json beside it) follows Hugging Face: every string gives
 * exactly the ids of .hf.out (add_special_tokens false). */
static void test_hf_json(const char *shared, const char *name)
{
    char gz[1024], dir[1024], tp[1100], cfg_src[1100], cfg_dst[1100], ip[1100], hp[1100];
    snprintf(gz, sizeof gz, "%s/fixtures2/vocab/tokenizer-%s.json.gz", shared, name);
    snprintf(dir, sizeof dir, "%s/hf-%s", mt_tmpdir(), name);
    snprintf(tp, sizeof tp, "%s/tokenizer.json", dir);
    snprintf(cfg_src, sizeof cfg_src, "%s/fixtures2/vocab/tokenizer_config-%s.json", shared, name);
    snprintf(cfg_dst, sizeof cfg_dst, "%s/tokenizer_config.json", dir);
    snprintf(ip, sizeof ip, "%s/fixtures2/vocab/ggml-vocab-%s.gguf.inp", shared, name);
    snprintf(hp, sizeof hp, "%s/fixtures2/vocab/ggml-vocab-%s.gguf.hf.out", shared, name);
    mkdir(dir, 0700);
    size_t cl;
    char *cfg = read_all(cfg_src, &cl);
    FILE *f = cfg ? fopen(cfg_dst, "wb") : NULL;
    if (f) { fwrite(cfg, 1, cl, f); fclose(f); }
    free(cfg);
    if (!MT_CHECK(gunzip_to(gz, tp) == 0, "%s: tokenizer.json unpacked", name)) return;
    MsError err = { 0 };
    MsGguf *g = ms_hf_open_tokenizer(tp, &err);
    MsTokenizer *t = g ? ms_tokenizer_new(g, &err) : NULL;
    ms_gguf_free(g);
    if (!MT_CHECK(t != NULL, "%s: tokenizer.json loads (%s)", name, t ? "ok" : err.msg)) return;
    Vectors v;
    if (MT_CHECK(load_vectors(ip, hp, &v) == 0, "%s: vectors and Hugging Face ids load", name)) {
        size_t ok = 0;
        for (size_t i = 0; i < v.n; i++) ok += vector_matches(t, v.s[i], v.len[i], v.ids[i], true);
        MT_CHECK(ok == v.n, "%s tokenizer.json: %zu of %zu strings give Hugging Face's ids", name, ok, v.n);
        vectors_free(&v);
    }
    if (!strcmp(name, "qwen3")) {
        /* where HF and llama.cpp differ: the GGUF of the same vocabulary
         * (unpacked by test_vocab2) follows llama.cpp */
        char gp[1024];
        snprintf(gp, sizeof gp, "%s/ggml-vocab-%s.gguf", mt_tmpdir(), name);
        MsGguf *g2 = NULL;
        MsTokenizer *tg = open_tok(gp, &g2);
        int32_t *a = NULL, *b = NULL, *c = NULL, *d = NULL;
        static const char composed[] = "caf\xc3\xa9 na\xc3\xafve", decomposed[] = "cafe\xcc\x81 nai\xcc\x88ve";
        int na = ms_tokenizer_encode(t, composed, strlen(composed), false, &a, &err);
        int nb = ms_tokenizer_encode(t, decomposed, strlen(decomposed), false, &b, &err);
        int nc = tg ? ms_tokenizer_encode(tg, decomposed, strlen(decomposed), false, &c, &err) : -1;
        MT_CHECK(na > 0 && na == nb && !memcmp(a, b, (size_t)na * sizeof *a) && nc > 0 && (nc != na || memcmp(a, c, (size_t)na * sizeof *a)),
                 "qwen3 tokenizer.json applies NFC (decomposed text = composed: %d ids), the GGUF does not (%d ids)", na, nc);
        static const char eot[] = "a<|endoftext|>b";
        free(c);
        c = NULL;
        int ne = ms_tokenizer_encode(t, eot, strlen(eot), false, &d, &err);
        int ng = tg ? ms_tokenizer_encode(tg, eot, strlen(eot), false, &c, &err) : -1;
        MT_CHECK(ne == 3 && d[1] == 151643 && ng > 3,
                 "qwen3 tokenizer.json matches the special token <|endoftext|> in text (%d ids), the GGUF does not (%d)", ne, ng);
        free(a); free(b); free(c); free(d);
        ms_tokenizer_free(tg);
        ms_gguf_free(g2);
    }
    ms_tokenizer_free(t);
}

/* Tokens the vocabulary marks user-defined are cut out of raw text even
 * without parsing special tokens; control tokens are not; gpt-oss's four
 * harmony tokens count as user-defined whatever their GGUF type. */
static void expect_ids(const MsTokenizer *t, const char *what, const char *text, const int32_t *want, int nw)
{
    int32_t *got = NULL;
    int n = ms_tokenizer_encode(t, text, strlen(text), false, &got, NULL);
    bool ok = n == nw;
    for (int i = 0; ok && i < n; i++) ok = got[i] == want[i];
    MT_CHECK(ok, "%s", what);
    free(got);
}

static int32_t vocab_id(const MsTokenizer *t, const char *text)
{
    for (int32_t i = 0; i < ms_tokenizer_n_vocab(t); i++)
        if (strcmp(ms_tokenizer_token_text(t, i), text) == 0) return i;
    return -1;
}

static void test_user_defined(void)
{
    char gp[1024];
    MsGguf *g = NULL;
    snprintf(gp, sizeof gp, "%s/ggml-vocab-qwen3.gguf", mt_tmpdir());
    MsTokenizer *t = open_tok(gp, &g);
    if (t) {
        int32_t th = vocab_id(t, "<think>"), te = vocab_id(t, "</think>"), im = vocab_id(t, "<|im_start|>");
        int32_t *hi = NULL, *ims = NULL;
        int nh = ms_tokenizer_encode(t, "hi", 2, false, &hi, NULL);
        int ni = ms_tokenizer_encode(t, "<|im_start|>", 12, false, &ims, NULL);
        int32_t want[8] = { th, nh == 1 ? hi[0] : -1, te };
        MT_CHECK(th > 0 && te > 0 && im > 0, "qwen3: <think>, </think>, <|im_start|> in the vocabulary");
        expect_ids(t, "qwen3: user-defined <think> ... </think> are single tokens in raw text", "<think>hi</think>",
                   want, 3);
        bool split = ni > 1;
        for (int i = 0; i < ni; i++) split &= ims[i] != im;
        MT_CHECK(split, "qwen3: the control token <|im_start|> is plain text without special parsing (%d tokens)", ni);
        free(hi);
        free(ims);
    }
    ms_tokenizer_free(t);
    ms_gguf_free(g);
    snprintf(gp, sizeof gp, "%s/ggml-vocab-gpt-oss.gguf", mt_tmpdir());
    t = open_tok(gp, &g);
    if (t) {
        static const char *const harmony[] = { "<|start|>", "<|channel|>", "<|message|>", "<|constrain|>" };
        int ok = 0;
        for (int i = 0; i < 4; i++) {
            int32_t id = vocab_id(t, harmony[i]), *got = NULL;
            int n = ms_tokenizer_encode(t, harmony[i], strlen(harmony[i]), false, &got, NULL);
            ok += id >= 0 && n == 1 && got[0] == id;
            free(got);
        }
        MT_CHECK(ok == 4, "gpt-oss: <|start|> <|channel|> <|message|> <|constrain|> match as single tokens (%d/4)", ok);
        int32_t ret = vocab_id(t, "<|return|>"), *got = NULL;
        int n = ms_tokenizer_encode(t, "<|return|>", 10, false, &got, NULL);
        bool plain = n > 1;
        for (int i = 0; i < n; i++) plain &= got[i] != ret;
        MT_CHECK(ret >= 0 && plain && ms_tokenizer_is_eog(t, ret),
                 "gpt-oss: the control token <|return|> stays text, and ends generation");
        free(got);
        char piece[32];
        int pl = ms_tokenizer_piece(t, vocab_id(t, "<|channel|>"), piece, sizeof piece);
        MT_CHECK(pl == 11 && memcmp(piece, "<|channel|>", 11) == 0, "gpt-oss: a harmony token's piece is its text");
    }
    ms_tokenizer_free(t);
    ms_gguf_free(g);
}

/* The fixture models' own tokenizer: tiny-bpe vectors and each model's
 * reference prompts (tokens as llama.cpp produced them, BOS included when
 * the model's add_bos_token says so). */
static void test_model(const char *shared, const char *set, const char *model, bool want_bos, const char *tiny)
{
    char gp[1024], rp[1100], ip[1100], op[1100];
    snprintf(gp, sizeof gp, "%s/%s/models/%s.gguf", shared, set, model);
    snprintf(rp, sizeof rp, "%s/%s/reference/%s.json", shared, set, model);
    MsGguf *g = NULL;
    MsTokenizer *t = open_tok(gp, &g);
    if (!MT_CHECK(t != NULL, "%s: tokenizer loads", model)) {
        ms_gguf_free(g);
        return;
    }
    MT_CHECK(ms_tokenizer_n_vocab(t) == 559 && ms_tokenizer_bos(t) == 557 && ms_tokenizer_eos(t) == 556,
             "%s: 559 tokens, bos 557, eos 556", model);
    MT_CHECK(ms_tokenizer_add_bos(t) == want_bos && !ms_tokenizer_add_eos(t), "%s: add_bos %s, no eos", model,
             want_bos ? "yes" : "no");
    MT_CHECK(ms_tokenizer_is_eog(t, 556) && !ms_tokenizer_is_eog(t, 557), "%s: eos is end-of-generation", model);

    int32_t *ids = NULL;
    int n = ms_tokenizer_encode(t, "Hello", 5, true, &ids, NULL);
    int m = -1;
    int32_t *ids2 = NULL;
    m = ms_tokenizer_encode(t, "Hello", 5, false, &ids2, NULL);
    MT_CHECK(n > 0 && m > 0 && n == m + (want_bos ? 1 : 0) && (!want_bos || ids[0] == 557) &&
             memcmp(ids + (want_bos ? 1 : 0), ids2, (size_t)m * sizeof *ids) == 0,
             "%s: add_special %s BOS", model, want_bos ? "prepends" : "adds no");
    free(ids);
    free(ids2);

    json_error_t je;
    json_t *ref = json_load_file(rp, 0, &je);
    int np = 0, ok = 0;
    json_t *prompts = ref ? json_object_get(ref, "prompts") : NULL;
    MT_CHECK(json_is_boolean(json_object_get(ref, "add_bos")) &&
             json_is_true(json_object_get(ref, "add_bos")) == want_bos, "%s: reference add_bos agrees", model);
    for (size_t i = 0; i < json_array_size(prompts); i++) {
        json_t *p = json_array_get(prompts, i);
        const char *text = json_string_value(json_object_get(p, "text"));
        size_t tl = json_string_length(json_object_get(p, "text"));
        json_t *toks = json_object_get(p, "tokens");
        if (!text || !json_is_array(toks)) continue;
        np++;
        int32_t *got = NULL;
        int k = ms_tokenizer_encode(t, text, tl, true, &got, NULL);
        bool same = k == (int)json_array_size(toks);
        for (int j = 0; same && j < k; j++) same = json_integer_value(json_array_get(toks, (size_t)j)) == got[j];
        if (!same) mt_diag("%s prompt %zu differs from the reference tokens", model, i);
        ok += same;
        free(got);
    }
    MT_CHECK(np == 6 && ok == np, "%s: reference prompt tokens match (%d/%d)", model, ok, np);
    json_decref(ref);

    if (tiny) {   /* the tiny vocabulary's vectors for this model's pre-tokenizer */
        snprintf(ip, sizeof ip, "%s/%s/vocab/%s.inp", shared, set, tiny);
        snprintf(op, sizeof op, "%s/%s/vocab/%s.out", shared, set, tiny);
        Vectors v;
        if (MT_CHECK(load_vectors(ip, op, &v) == 0 && v.n == 46, "%s: 46 vectors read", tiny)) {
            int pass = 0;
            for (size_t i = 0; i < v.n; i++) pass += vector_matches(t, v.s[i], v.len[i], v.ids[i], true);
            mt_diag("%s (%s, pre %s) %2d/%zu vectors pass", tiny, model, ms_tokenizer_pre_name(t), pass, v.n);
            MT_CHECK(pass == (int)v.n, "%s via %s: all vectors exact (%d/%zu)", tiny, model, pass, v.n);
            check_roundtrip(tiny, t, &v);
        }
        vectors_free(&v);
    }
    ms_tokenizer_free(t);
    ms_gguf_free(g);
}

/* Bad bytes become U+FFFD before byte-level BPE, as in llama.cpp. */
static void test_invalid_utf8(const char *shared)
{
    char gp[1024];
    snprintf(gp, sizeof gp, "%s/fixtures/vocab/ggml-vocab-gpt-2.gguf", shared);
    MsGguf *g = NULL;
    MsTokenizer *t = open_tok(gp, &g);
    if (t) {
        int32_t *a = NULL, *b = NULL;
        int na = ms_tokenizer_encode(t, "ab\xff" "cd\xc3", 6, false, &a, NULL);
        int nb = ms_tokenizer_encode(t, "ab\xef\xbf\xbd" "cd\xef\xbf\xbd", 10, false, &b, NULL);
        MT_CHECK(na > 0 && na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0,
                 "invalid UTF-8 bytes tokenize as U+FFFD");
        free(a);
        free(b);
        char buf[8];
        MT_CHECK(ms_tokenizer_piece(t, -1, buf, sizeof buf) == MS_ERANGE &&
                 ms_tokenizer_piece(t, ms_tokenizer_n_vocab(t), buf, sizeof buf) == MS_ERANGE &&
                 ms_tokenizer_token_text(t, ms_tokenizer_n_vocab(t)) == NULL,
                 "ids outside the vocabulary give MS_ERANGE / NULL");
        MT_CHECK(ms_tokenizer_piece(t, 50256, buf, sizeof buf) == 0, "control token <|endoftext|> has an empty piece");
        int32_t *c = NULL;
        const char *sp = "<|endoftext|>";
        int nc = ms_tokenizer_encode(t, sp, strlen(sp), false, &c, NULL);
        MT_CHECK(nc > 1, "control token text is not parsed as the special token (%d tokens)", nc);
        free(c);
    }
    ms_tokenizer_free(t);
    ms_gguf_free(g);
}

static int write_gguf(const char *path, const char *model, const char *pre, bool with_tokens)
{
    MsError err = {0};
    MsGgufWriter *w = ms_gguf_writer_new(path, &err);
    if (!w) return -1;
    ms_gguf_writer_set_str(w, "general.architecture", "llama");
    if (model) ms_gguf_writer_set_str(w, "tokenizer.ggml.model", model);
    if (pre) ms_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
    if (with_tokens) {
        const char *toks[] = { "a", "b", "ab" };
        const char *merges[] = { "a b" };
        ms_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
        ms_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 1);
    }
    int rc = ms_gguf_writer_write_header(w);
    if (!rc) rc = ms_gguf_writer_finish(w, &err);
    ms_gguf_writer_free(w);
    return rc;
}

static int try_load(const char *path, MsError *err)
{
    MsGguf *g = ms_gguf_open(path, err);
    if (!g) return -100;
    MsTokenizer *t = ms_tokenizer_new(g, err);
    int rc = t ? 0 : err->code;
    if (t) {
        int32_t *ids = NULL;
        int n = ms_tokenizer_encode(t, "abab", 4, true, &ids, NULL);
        rc = n == 2 && ids[0] == 2 && ids[1] == 2 ? 1 : -200;
        free(ids);
    }
    ms_tokenizer_free(t);
    ms_gguf_free(g);
    return rc;
}

static void test_errors(void)
{
    char p[512];
    MsError err = {0};
    snprintf(p, sizeof p, "%s/notok.gguf", mt_tmpdir());
    if (!MT_CHECK(write_gguf(p, NULL, NULL, false) == 0, "write a GGUF without tokenizer keys")) return;
    int rc = try_load(p, &err);
    MT_CHECK(rc == MS_ENOTFOUND && strstr(err.msg, "notok.gguf") && strstr(err.msg, "tokenizer"),
             "no tokenizer keys: MS_ENOTFOUND, \"%s\"", err.msg);

    snprintf(p, sizeof p, "%s/t5.gguf", mt_tmpdir());
    write_gguf(p, "t5", NULL, true);
    rc = try_load(p, &err);
    MT_CHECK(rc == MS_EUNSUPPORTED && strstr(err.msg, "t5"), "unknown model: MS_EUNSUPPORTED, \"%s\"", err.msg);

    snprintf(p, sizeof p, "%s/pre.gguf", mt_tmpdir());
    write_gguf(p, "gpt2", "no-such-pre", true);
    rc = try_load(p, &err);
    MT_CHECK(rc == MS_EUNSUPPORTED && strstr(err.msg, "no-such-pre"), "unknown pre: MS_EUNSUPPORTED, \"%s\"",
             err.msg);

    snprintf(p, sizeof p, "%s/notoks.gguf", mt_tmpdir());
    write_gguf(p, "gpt2", "gpt-2", false);
    rc = try_load(p, &err);
    MT_CHECK(rc == MS_ENOTFOUND && strstr(err.msg, "tokenizer.ggml.tokens"), "no token list: MS_ENOTFOUND, \"%s\"",
             err.msg);

    /* a minimal well-formed file: "a" + "b" merge into "ab"; default pre */
    snprintf(p, sizeof p, "%s/mini.gguf", mt_tmpdir());
    write_gguf(p, "gpt2", NULL, true);
    MT_CHECK(try_load(p, &err) == 1, "minimal gpt2 vocabulary without pre: merges apply, no BOS by default");
}

/* ---- tokenizers the project makes itself (no ../shared) ---- */

/* Strings for the round trips: scripts, digits, code, whitespace runs,
 * contractions, emoji and combining marks. */
static const char *const k_texts[] = {
    "Hello world",
    " leading space and trailing space ",
    "The students wrote 42 notes, then 1234567 more.",
    "def f(x):\n    return x + 1  # comment\n",
    "tabs\tand\n\nnewlines\r\n",
    "Die Katze saß auf der Matte; élève, naïve, São Paulo.",
    "Съешь же ещё этих мягких французских булок",
    "中文分词测试，日本語のテキスト。한국어 문장",
    "emoji 😀👍🏽 and a ZWJ family 👨‍👩‍👧",
    "combining e\xcc\x81 and a\xcc\x8a",
    "don't can't I'll we've they're",
    "     many     spaces     ",
    "{\"json\": [1, 2.5, -3e10], \"k\": null}",
    "",
};

static void own_vectors(Vectors *v)
{
    memset(v, 0, sizeof *v);
    v->n = MS_ARRAY_LEN(k_texts);
    v->s = malloc(v->n * sizeof *v->s);
    v->len = malloc(v->n * sizeof *v->len);
    for (size_t i = 0; i < v->n; i++) {
        v->s[i] = (char *)k_texts[i];
        v->len[i] = strlen(k_texts[i]);
    }
}

/* A byte-level BPE tokenizer made by this project: bos/eos/n_vocab as given
 * (facts of the file), add_bos on, round trips, random input, invalid UTF-8,
 * ids out of range, control tokens. */
static void test_own(const char *path, const char *name, int32_t n_vocab, int32_t bos, int32_t eos)
{
    MsGguf *g = NULL;
    MsTokenizer *t = open_tok(path, &g);
    if (!MT_CHECK(t != NULL, "%s: tokenizer loads", name)) {
        ms_gguf_free(g);
        return;
    }
    MT_CHECK(ms_tokenizer_kind(t) == MS_TOK_BPE && ms_tokenizer_n_vocab(t) == n_vocab && ms_tokenizer_bos(t) == bos &&
                 ms_tokenizer_eos(t) == eos && ms_tokenizer_add_bos(t) && !ms_tokenizer_add_eos(t),
             "%s: byte-level BPE, %d tokens, bos %d, eos %d, adds BOS only", name, n_vocab, bos, eos);
    MT_CHECK(ms_tokenizer_is_eog(t, eos) && (bos == eos || !ms_tokenizer_is_eog(t, bos)) && !ms_tokenizer_is_eog(t, 65),
             "%s: eos ends generation, bos and ordinary tokens do not", name);

    const char *text = "Hello world";
    int32_t *a = NULL, *b = NULL;
    int na = ms_tokenizer_encode(t, text, strlen(text), true, &a, NULL);
    int nb = ms_tokenizer_encode(t, text, strlen(text), false, &b, NULL);
    MT_CHECK(na > 1 && na == nb + 1 && a[0] == bos && !memcmp(a + 1, b, (size_t)nb * sizeof *a),
             "%s: add_special prepends BOS %d and changes nothing else", name, bos);
    bool ordinary = nb > 0;
    for (int i = 0; i < nb; i++) ordinary &= b[i] != bos && b[i] != eos;
    MT_CHECK(ordinary && nb < (int)strlen(text), "%s: \"%s\" -> %d ordinary tokens (merges apply)", name, text, nb);
    free(a);
    free(b);

    Vectors v;
    own_vectors(&v);
    check_roundtrip(name, t, &v);
    free(v.s);
    free(v.len);
    check_random(name, t);

    /* bad bytes become U+FFFD before byte-level BPE, as in llama.cpp */
    na = ms_tokenizer_encode(t, "ab\xff" "cd\xc3", 6, false, &a, NULL);
    nb = ms_tokenizer_encode(t, "ab\xef\xbf\xbd" "cd\xef\xbf\xbd", 10, false, &b, NULL);
    MT_CHECK(na > 0 && na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0, "%s: invalid UTF-8 bytes tokenize as U+FFFD",
             name);
    free(a);
    free(b);
    char buf[8];
    MT_CHECK(ms_tokenizer_piece(t, -1, buf, sizeof buf) == MS_ERANGE &&
                 ms_tokenizer_piece(t, n_vocab, buf, sizeof buf) == MS_ERANGE &&
                 ms_tokenizer_token_text(t, n_vocab) == NULL && ms_tokenizer_token_text(t, -1) == NULL,
             "%s: ids outside the vocabulary give MS_ERANGE / NULL", name);
    const char *et = ms_tokenizer_token_text(t, eos);
    MT_CHECK(et && !strcmp(et, "<|endoftext|>") && ms_tokenizer_piece(t, eos, buf, sizeof buf) == 0 &&
                 ms_tokenizer_piece(t, bos, buf, sizeof buf) == 0,
             "%s: <|endoftext|> and BOS are control tokens with empty pieces", name);
    int nc = ms_tokenizer_encode(t, "<|endoftext|>", 13, false, &a, NULL);
    bool has_special = false;
    for (int i = 0; i < nc; i++) has_special |= a[i] == eos || a[i] == bos;
    MT_CHECK(nc > 1 && !has_special, "%s: control token text is not parsed as the special token (%d tokens)", name, nc);
    free(a);
    size_t dl = 0;
    char *d = ms_tokenizer_decode(t, NULL, 0, &dl);
    MT_CHECK(d && dl == 0 && d[0] == '\0', "%s: decode of no ids is the empty string", name);
    free(d);
    ms_tokenizer_free(t);
    ms_gguf_free(g);
}

static void test_synth_tokenizers(void)
{
    /* olmoe writes pre "olmo", the other archs "gpt-2" */
    static const char *const archs[] = { "olmoe", "llama" };
    for (size_t i = 0; i < MS_ARRAY_LEN(archs); i++) {
        MsSynthParams p = ms_synth_default_params();
        p.arch = archs[i];
        p.n_layer = 1; p.n_embd = 32; p.n_head = 2; p.n_expert = 2; p.n_expert_used = 1; p.n_ff = 16;
        p.n_vocab = 700; p.n_threads = 2;
        char path[512], name[64];
        snprintf(path, sizeof path, "%s/tok-%s.gguf", mt_tmpdir(), archs[i]);
        snprintf(name, sizeof name, "synth %s", archs[i]);
        MsError err = {0};
        if (MT_CHECK(ms_synth_write(path, &p, &err) == 0, "%s: written (%s)", name, err.msg[0] ? err.msg : "ok"))
            test_own(path, name, 700, 699, 698);
        remove(path);
    }
    const char *src = getenv("MS_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/data/models/default.gguf", src ? src : ".");
    /* the bundled model's tokenizer (data/models/README.md): 4096 tokens,
     * <|endoftext|> = 4095 serves as BOS and EOS */
    test_own(path, "default model", 4096, 4095, 4095);
}

/* meson runs this twice (mtest.h, mt_parts): "tokenizer" = --own,
 * "tokenizer-vectors" = --reference. */
int main(int argc, char **argv)
{
    const int parts = mt_parts(argc, argv);
    if (parts & MT_OWN) {
        test_errors();
        test_synth_tokenizers();
    }
    if (!(parts & MT_REFERENCE)) return mt_done();
    const char *shared = mt_shared_dir();
    if (!shared) {
        mt_skip("10 vocabularies, tiny-bpe and the fixture models vs llama.cpp's vectors and references: %s",
                mt_shared_absent());
        return mt_done();
    }
    static const struct { const char *name; MsTokKind kind; } vocabs[] = {
        { "bert-bge", MS_TOK_WPM }, { "deepseek-coder", MS_TOK_BPE }, { "deepseek-llm", MS_TOK_BPE },
        { "falcon", MS_TOK_BPE }, { "gpt-2", MS_TOK_BPE }, { "llama-spm", MS_TOK_SPM },
        { "mpt", MS_TOK_BPE }, { "phi-3", MS_TOK_SPM }, { "refact", MS_TOK_BPE },
        { "starcoder", MS_TOK_BPE },
    };
    for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++) test_vocab(shared, vocabs[i].name, vocabs[i].kind);

    /* the real 2025-2026 vocabularies (llama.cpp August 2026) */
    static const char *const vocabs2[] = { "qwen3", "deepseek-v3", "gpt-oss" };
    for (size_t i = 0; i < sizeof vocabs2 / sizeof vocabs2[0]; i++) test_vocab2(shared, vocabs2[i]);
    for (size_t i = 0; i < sizeof vocabs2 / sizeof vocabs2[0]; i++) test_hf_json(shared, vocabs2[i]);
    test_user_defined();

    /* BOS per the fixtures READMEs: mixtral-256, deepseek2-tiny, phimoe-dev and dsv3-tiny add it */
    test_model(shared, "fixtures", "olmoe-tiny.F32", false, "tiny-bpe");
    test_model(shared, "fixtures", "qwen2moe-tiny.F32", false, "tiny-bpe");
    test_model(shared, "fixtures", "mixtral-256.F16", true, NULL);
    test_model(shared, "fixtures", "granitemoe-tiny.F32", false, NULL);
    test_model(shared, "fixtures", "deepseek2-tiny.F32", true, NULL);
    test_model(shared, "fixtures2", "qwen3moe-tiny.F32", false, "tiny-bpe-qwen2");
    test_model(shared, "fixtures2", "gpt-oss-tiny.F32", false, "tiny-bpe-gpt-4o");
    test_model(shared, "fixtures2", "phimoe-dev.F32", true, NULL);
    test_model(shared, "fixtures-dsv3", "dsv3-tiny.F32", true, NULL);

    test_invalid_utf8(shared);
    return mt_done();
}
