/* fuzz-tokenizer.c — bytes in, ids out, through every tokenizer kind.
 *
 * Tokenizers: the bundled default model's byte-level BPE, and when the
 * reference fixtures are present (MS_SHARED_DIR, else MS_SHARED_DEFAULT, else
 * MS_SOURCE_DIR/../shared; MS_SOURCE_DIR defaults to .) the llama.cpp
 * test vocabularies of fixtures/vocab (BPE with several pre-tokenizers,
 * SentencePiece, WordPiece).  The first input byte picks the tokenizer,
 * the second says whether BOS/EOS are added; the rest is the text.
 * Checks: every id is inside the vocabulary, every piece and the decoded
 * text come back without error, and for byte-level BPE on valid UTF-8 the
 * pieces concatenate to exactly the input bytes (encode -> decode round
 * trip, on texts whose every byte has a token: a byte without one is
 * dropped as llama.cpp drops it; SentencePiece and WordPiece normalise, so
 * they cannot). */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tokenizer.h"

static void init(void);
#define FUZZ_INIT init
#include "fuzz.h"

#define MAX_TOK 32
static MsTokenizer *toks[MAX_TOK];
static char *names[MAX_TOK];
static int n_toks;

static void add(const char *path)
{
    if (n_toks == MAX_TOK) return;
    MsError err = { 0 };
    MsGguf *g = ms_gguf_open(path, &err);
    MsTokenizer *t = g ? ms_tokenizer_new(g, &err) : NULL;
    ms_gguf_free(g);
    if (!t) {
        fprintf(stderr, "fuzz-tokenizer: skipping %s: %s\n", path, err.msg);
        return;
    }
    names[n_toks] = strdup(path);
    toks[n_toks++] = t;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void init(void)
{
    /* Directories come from the environment, not the build: a program
     * that holds no path of its own is the same file wherever it is built,
     * which is what the campaign ledger identifies it by. */
    const char *src = getenv("MS_SOURCE_DIR");
    if (!src || !*src) src = ".";
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/data/models/default.gguf", src);
    add(dir);
    const char *shared = getenv("MS_SHARED_DIR");
    if (!shared) shared = getenv("MS_SHARED_DEFAULT");
    char shared_buf[2048];   /* shorter than dir, so the path below always fits */
    if (!shared) {
        snprintf(shared_buf, sizeof shared_buf, "%s/../shared", src);
        shared = shared_buf;
    }
    snprintf(dir, sizeof dir, "%s/fixtures/vocab", shared);
    DIR *d = opendir(dir);
    char *files[64];
    int nf = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) && nf < 64) {
        size_t l = strlen(e->d_name);
        if (l > 5 && !strcmp(e->d_name + l - 5, ".gguf")) files[nf++] = strdup(e->d_name);
    }
    if (d) closedir(d);
    qsort(files, (size_t)nf, sizeof *files, cmp);   /* the same index -> tokenizer every run */
    for (int i = 0; i < nf; i++) {
        char p[8192];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        add(p);
        free(files[i]);
    }
    fprintf(stderr, "fuzz-tokenizer: %d tokenizers\n", n_toks);
    if (n_toks == 0) abort();
}

static bool valid_utf8(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
        else return false;
        if (i + len > n) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        i += len;
    }
    return true;
}

/* Whether the vocabulary has a token for byte b on its own (byte-level
 * BPE): a token whose piece is exactly that one byte.  A byte without one is
 * dropped, as llama.cpp drops it, so the round trip is checked only on texts
 * whose bytes all have tokens.  Read from the vocabulary, not by encoding
 * the byte alone: a lone byte such as 0xF1 is invalid UTF-8 and takes
 * another path than the same byte inside a valid 4-byte character.
 * 1 = yes, 2 = no; a tokenizer's row is filled on first use (0 before). */
static uint8_t byte_ok[MAX_TOK][256];

static bool bytes_representable(int k, const uint8_t *s, size_t len)
{
    if (!byte_ok[k][0]) {
        memset(byte_ok[k], 2, sizeof byte_ok[k]);
        int32_t nv = ms_tokenizer_n_vocab(toks[k]);
        for (int32_t id = 0; id < nv; id++) {
            char piece[8];
            if (ms_tokenizer_piece(toks[k], id, piece, sizeof piece) == 1) byte_ok[k][(uint8_t)piece[0]] = 1;
        }
    }
    for (size_t i = 0; i < len; i++)
        if (byte_ok[k][s[i]] == 2) return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    const MsTokenizer *t = toks[data[0] % n_toks];
    bool special = data[1] & 1;
    const char *text = (const char *)data + 2;
    size_t len = size - 2;
    int32_t *ids = NULL;
    MsError err = { 0 };
    int n = ms_tokenizer_encode(t, text, len, special, &ids, &err);
    if (n < 0) {
        if (!err.msg[0] || strchr(err.msg, '\n')) abort();   /* a failure is one line */
        return 0;
    }
    int32_t nv = ms_tokenizer_n_vocab(t);
    size_t cat_cap = len + 64, cat_n = 0;
    char *cat = malloc(cat_cap);
    bool fits = cat != NULL;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= nv) {
            fprintf(stderr, "fuzz-tokenizer: id %d outside the vocabulary (%d)\n", ids[i], nv);
            abort();
        }
        char piece[256];
        int pl = ms_tokenizer_piece(t, ids[i], piece, sizeof piece);
        if (pl < 0 || !ms_tokenizer_token_text(t, ids[i])) abort();
        if (fits && (size_t)pl <= sizeof piece && cat_n + (size_t)pl <= cat_cap) {
            memcpy(cat + cat_n, piece, (size_t)pl);
            cat_n += (size_t)pl;
        } else {
            fits = false;
        }
    }
    size_t dl = 0;
    char *dec = ms_tokenizer_decode(t, ids, (size_t)n, &dl);
    if (!dec) abort();
    if (ms_tokenizer_kind(t) == MS_TOK_BPE && fits && valid_utf8(data + 2, len) &&
        bytes_representable(data[0] % n_toks, data + 2, len) && (cat_n != len || memcmp(cat, text, len) != 0)) {
        fprintf(stderr, "fuzz-tokenizer: %s: round trip changed %zu bytes into %zu\n", names[data[0] % n_toks], len,
                cat_n);
        abort();
    }
    free(dec);
    free(cat);
    free(ids);
    return 0;
}
