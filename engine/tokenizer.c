/* tokenizer.c — loading a tokenizer from GGUF metadata, user-defined token
 * partition, dispatch to BPE / SPM / WPM, pieces and detokenisation, all
 * following llama.cpp's llama-vocab.cpp (Feb 2025).  Facts: GGUF-MOE.md §7. */
#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>

#include "tok-internal.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const eot_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<EOT>", "_<EOT>", ("<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"),   /* DeepSeek's <｜end▁of▁sentence｜> */
};
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|eom_id|>", "<EOT>", "_<EOT>", "<|return|>", "<|call|>",
};
/* gpt-oss (harmony) tokens llama.cpp re-marks as user-defined whenever a
 * vocabulary has them, so they are matched in raw text without parsing
 * special tokens, whatever the GGUF token type says */
static const char *const harmony_user_texts[] = {
    "<|channel|>", "<|message|>", "<|start|>", "<|constrain|>",
};
/* FIM markers llama.cpp recognises by text and turns into control tokens */
static const char *const fim_texts[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", "<PRE>",
    "<|fim_suffix|>", "<fim-suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "hole\xef\xbd\x9c>", "<SUF>",
    "<|fim_middle|>", "<fim-middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>", "<MID>",
    "<|fim_pad|>", "<fim-pad>", "<PAD>",
    "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
    "<|file_sep|>", "<fim-sep>",
};

static int32_t find_text(const MsTokenizer *t, const char *s)
{
    return tokmap_get(&t->vocab, s, strlen(s));
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

void ms_tokenizer_free(MsTokenizer *t)
{
    if (!t) return;
    tok_bpe_free(t);
    for (size_t i = 0; i < t->n_hf_rx; i++) free(t->hf_rx[i]);
    free(t->hf_rx);
    for (size_t i = 0; i < t->n_hf_norm; i++) free(t->hf_norm[i].a), free(t->hf_norm[i].b);
    free(t->hf_norm);
    for (size_t i = 0; i < t->n_hf_dec; i++) free(t->hf_dec[i].a), free(t->hf_dec[i].b);
    free(t->hf_dec);
    for (size_t i = 0; i < t->n_hf_added; i++) free(t->hf_added[i].match);
    free(t->hf_added);
    free(t->hf_added_ix);
    free(t->hf_by_byte);
    free(t->hf_meta);
    free(t->model);
    free(t->pre);
    free(t->pool);
    free(t->tok_off);
    free(t->tok_len);
    free(t->scores);
    free(t->attr);
    free(t->eog);
    tokmap_clear(&t->vocab);
    free(t->merge_pool);
    tokmap_clear(&t->merges);
    free(t->pairs.key);
    free(t->pairs.rank);
    free(t->pairs.result);
    free(t->special);
    free(t->spm_pairs);
    free(t);
}

/* Optional u32 id key: absent keeps *id; out of vocabulary is ignored
 * (llama.cpp warns and keeps its default). */
/* A special token id.  llama.cpp warns about an id outside the vocabulary
 * and keeps the default; for the ids that change what is traced (BOS added
 * to every prompt, the end-of-generation ids) that default silently
 * differs from what the file says, so strict ids are an error naming the
 * key.  The others (unknown, separator, padding) keep llama.cpp's rule. */
static int read_id(const MsGguf *g, const char *path, const char *key, bool strict, int32_t n_vocab,
                   int32_t *id, MsError *err)
{
    uint32_t v;
    int rc = ms_gguf_get_u32(g, key, &v, err);
    if (rc == MS_ENOTFOUND) return MS_OK;
    if (rc) return rc;
    if (v < (uint32_t)n_vocab) *id = (int32_t)v;
    else if (strict)
        return ms_error_set(err, MS_EFORMAT, "%s: %s = %" PRIu32 " is outside the vocabulary of %" PRId32 " tokens",
                            path, key, v, n_vocab);
    return MS_OK;
}

static int read_bool(const MsGguf *g, const char *key, bool *out, MsError *err)
{
    bool v;
    int rc = ms_gguf_get_bool(g, key, &v, err);
    if (rc == MS_ENOTFOUND) return MS_OK;
    if (rc) return rc;
    *out = v;
    return MS_OK;
}

static int load_tokens(MsTokenizer *t, const MsGguf *g, const char *path, MsError *err)
{
    MsGgufArray a;
    int rc = ms_gguf_get_arr(g, "tokenizer.ggml.tokens", &a, err);
    if (rc == MS_ENOTFOUND)
        return ms_error_set(err, MS_ENOTFOUND, "%s: no tokenizer: tokenizer.ggml.tokens missing", path);
    if (rc) return rc;
    if (a.elem_type != MS_GGUF_STRING)
        return ms_error_set(err, MS_EFORMAT, "%s: tokenizer.ggml.tokens is not a string array", path);
    if (a.n == 0 || a.n > INT32_MAX / 2)
        return ms_error_set(err, MS_EFORMAT, "%s: tokenizer.ggml.tokens has %llu entries", path,
                            (unsigned long long)a.n);
    int32_t n = t->n_vocab = (int32_t)a.n;

    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        const char *s;
        uint64_t len;
        ms_gguf_arr_str(&a, (uint64_t)i, &s, &len);
        total += (len ? len : 32) + 1;
    }
    t->pool = malloc(total);
    t->tok_off = malloc((size_t)n * sizeof *t->tok_off);
    t->tok_len = malloc((size_t)n * sizeof *t->tok_len);
    t->scores = calloc((size_t)n, sizeof *t->scores);
    t->attr = calloc((size_t)n, 1);
    t->eog = calloc((size_t)n, 1);
    if (!t->pool || !t->tok_off || !t->tok_len || !t->scores || !t->attr || !t->eog ||
        tokmap_init(&t->vocab, (size_t)n))
        return ms_error_set(err, MS_ENOMEM, "%s: out of memory for %d tokens", path, n);
    size_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        const char *s;
        uint64_t len;
        ms_gguf_arr_str(&a, (uint64_t)i, &s, &len);
        t->tok_off[i] = off;
        if (len == 0) {  /* as llama.cpp: an empty token gets a placeholder name */
            len = (uint64_t)snprintf(t->pool + off, 32, "[EMPTY_%d]", i);
        } else {
            memcpy(t->pool + off, s, len);
        }
        t->pool[off + len] = '\0';
        t->tok_len[i] = (uint32_t)len;
        if (len > t->max_token_len) t->max_token_len = (uint32_t)len;
        off += len + 1;
    }
    /* map after the copy: a later duplicate text wins, as in llama.cpp */
    for (int32_t i = 0; i < n; i++) tokmap_put(&t->vocab, tok_text(t, i), t->tok_len[i], i, true);

    rc = ms_gguf_get_arr(g, "tokenizer.ggml.token_type", &a, err);
    if (rc && rc != MS_ENOTFOUND) return rc;
    bool have_types = rc == MS_OK;
    if (have_types && (a.elem_type == MS_GGUF_STRING || a.elem_type == MS_GGUF_FLOAT32 ||
                       a.elem_type == MS_GGUF_FLOAT64 || a.n != (uint64_t)n))
        return ms_error_set(err, MS_EFORMAT, "%s: tokenizer.ggml.token_type must be %d integers", path, n);
    for (int32_t i = 0; i < n; i++) {
        int64_t ty = have_types ? ms_gguf_arr_i64(&a, (uint64_t)i) : 1;
        static const uint8_t map[7] = { 0, TOK_ATTR_NORMAL, TOK_ATTR_UNKNOWN, TOK_ATTR_CONTROL,
                                        TOK_ATTR_USER, TOK_ATTR_UNUSED, TOK_ATTR_BYTE };
        t->attr[i] = ty >= 0 && ty < 7 ? map[ty] : 0;
    }

    rc = ms_gguf_get_arr(g, "tokenizer.ggml.scores", &a, err);
    if (rc && rc != MS_ENOTFOUND) return rc;
    if (rc == MS_OK) {
        if (a.elem_type == MS_GGUF_STRING || a.elem_type == MS_GGUF_BOOL || a.n != (uint64_t)n)
            return ms_error_set(err, MS_EFORMAT, "%s: tokenizer.ggml.scores must be %d numbers", path, n);
        for (int32_t i = 0; i < n; i++) t->scores[i] = (float)ms_gguf_arr_f64(&a, (uint64_t)i);
    }
    return MS_OK;
}

static int load_merges(MsTokenizer *t, const MsGguf *g, const char *path, MsError *err)
{
    MsGgufArray a;
    int rc = ms_gguf_get_arr(g, "tokenizer.ggml.merges", &a, err);
    if (rc == MS_ENOTFOUND)
        return ms_error_set(err, MS_ENOTFOUND, "%s: tokenizer.ggml.merges missing (required for gpt2 tokenizers)", path);
    if (rc) return rc;
    if (a.elem_type != MS_GGUF_STRING || a.n > INT32_MAX)
        return ms_error_set(err, MS_EFORMAT, "%s: tokenizer.ggml.merges is not a string array", path);
    size_t total = 0;
    for (uint64_t i = 0; i < a.n; i++) {
        const char *s;
        uint64_t len;
        ms_gguf_arr_str(&a, i, &s, &len);
        total += len + 1;
    }
    t->merge_pool = malloc(total ? total : 1);
    if (!t->merge_pool || tokmap_init(&t->merges, (size_t)a.n))
        return ms_error_set(err, MS_ENOMEM, "%s: out of memory for merges", path);
    /* A merge "left right" is split at the first space after its first
     * byte; looking up left + " " + right then finds exactly this string, so
     * the string itself is the key.  The first occurrence keeps its rank
     * (llama.cpp's emplace).  llama.cpp keeps a merge without such a space
     * (or with an empty side) as an inert entry and never checks the
     * encoding; a converter that wrote one is broken, and the file would
     * tokenize differently from what its author meant, so both are refused
     * here.  Sides that are not vocabulary tokens stay allowed, as in
     * llama.cpp (the pair can still form from text). */
    size_t off = 0;
    for (uint64_t i = 0; i < a.n; i++) {
        const char *s;
        uint64_t len;
        ms_gguf_arr_str(&a, i, &s, &len);
        const char *sp = len >= 2 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp || sp + 1 == s + len)
            return ms_error_set(err, MS_EFORMAT, "%s: tokenizer.ggml.merges[%" PRIu64 "] is not two tokens "
                                "separated by a space", path, i);
        if (memchr(s, '\0', len) || ms_utf8_valid_prefix(s, len) != len)
            return ms_error_set(err, MS_EFORMAT, "%s: tokenizer.ggml.merges[%" PRIu64 "] is not valid UTF-8 "
                                "without NUL", path, i);
        memcpy(t->merge_pool + off, s, len);
        t->merge_pool[off + len] = '\0';
        tokmap_put(&t->merges, t->merge_pool + off, len, (int32_t)i, false);
        off += len + 1;
    }
    return MS_OK;
}

static int cmp_special(const void *pa, const void *pb, void *ctx)
{
    const MsTokenizer *t = ctx;
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    if (t->tok_len[a] != t->tok_len[b]) return t->tok_len[a] > t->tok_len[b] ? -1 : 1;
    return (a > b) - (a < b);
}

static void setup_specials(MsTokenizer *t, const MsGguf *g)
{
    /* Tokens llama.cpp recognises by text become control tokens (and so are
     * not cut out of plain text); ids are taken lowest first. */
    for (size_t k = 0; k < MS_ARRAY_LEN(eot_texts) && t->eot < 0; k++) {
        int32_t id = find_text(t, eot_texts[k]);
        if (id >= 0 && !(t->attr[id] & TOK_ATTR_CONTROL)) t->attr[id] = TOK_ATTR_CONTROL;
        if (id >= 0) t->eot = id;
    }
    if (t->eom < 0 && (t->eom = find_text(t, "<|eom_id|>")) >= 0 && !(t->attr[t->eom] & TOK_ATTR_CONTROL))
        t->attr[t->eom] = TOK_ATTR_CONTROL;
    for (size_t k = 0; k < MS_ARRAY_LEN(fim_texts); k++) {
        int32_t id = find_text(t, fim_texts[k]);
        if (id >= 0 && !(t->attr[id] & TOK_ATTR_CONTROL)) t->attr[id] = TOK_ATTR_CONTROL;
    }
    for (size_t k = 0; k < MS_ARRAY_LEN(eog_texts); k++) {
        int32_t id = find_text(t, eog_texts[k]);
        if (id >= 0) {
            t->eog[id] = 1;
            if (!(t->attr[id] & TOK_ATTR_CONTROL)) t->attr[id] = TOK_ATTR_CONTROL;
        }
    }
    if (t->eos >= 0) t->eog[t->eos] = 1;
    if (t->eot >= 0) t->eog[t->eot] = 1;
    if (t->eom >= 0) t->eog[t->eom] = 1;
    for (size_t k = 0; k < MS_ARRAY_LEN(harmony_user_texts); k++) {
        int32_t id = find_text(t, harmony_user_texts[k]);
        if (id >= 0) t->attr[id] = TOK_ATTR_USER;
    }

    size_t n = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (t->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER | TOK_ATTR_UNKNOWN)) n++;
    t->special = malloc((n ? n : 1) * sizeof *t->special);
    if (!t->special) return;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (t->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER | TOK_ATTR_UNKNOWN)) t->special[t->n_special++] = i;
    qsort_r(t->special, t->n_special, sizeof *t->special, cmp_special, t);

    /* per-model strip flags llama.cpp sets by name (absent from GGUF) */
    if (strstr(t->pre, "jina-v2-de") || strstr(t->pre, "jina-v2-es") || strstr(t->pre, "jina-v2-code")) {
        int32_t id = find_text(t, "<mask>");
        if (id >= 0) t->attr[id] |= TOK_ATTR_LSTRIP;
    }
    /* Phi-3: whitespace right of its special tokens is dropped */
    const char *name;
    uint64_t nlen;
    if (ms_gguf_get_str(g, "general.name", &name, &nlen, NULL) == MS_OK) {
        char low[128];
        size_t m = MS_MIN((size_t)nlen, sizeof low - 1);
        for (size_t i = 0; i < m; i++) low[i] = (char)tolower((unsigned char)name[i]);
        low[m] = '\0';
        if (strstr(low, "phi-3") || strstr(low, "phi3")) {
            for (size_t i = 0; i < t->n_special; i++) t->attr[t->special[i]] |= TOK_ATTR_RSTRIP;
            int32_t id = find_text(t, "</s>");
            if (id >= 0) t->attr[id] |= TOK_ATTR_RSTRIP;
            static const char *const keep[] = { "<unk>", "<s>", "<|endoftext|>" };
            for (size_t k = 0; k < MS_ARRAY_LEN(keep); k++)
                if ((id = find_text(t, keep[k])) >= 0) t->attr[id] &= (uint8_t)~TOK_ATTR_RSTRIP;
        }
    }
}

/* tokenizer.hf.* (engine/hf.c writes them for a tokenizer.json): the
 * file's Split regexes, normalizer and decoder steps, Metaspace, the BPE
 * model's byte fallback and unk, and the added tokens with their flags. */
static int hf_str(const MsGgufArray *a, uint64_t i, char **out)
{
    const char *s;
    uint64_t len;
    ms_gguf_arr_str(a, i, &s, &len);
    return (*out = dup_n(s, len)) ? 0 : MS_ENOMEM;
}

/* steps "<key>_op" (strings) with "<key>_a", "<key>_b" (strings) and
 * "<key>_n" (2 integers a step) */
static int load_hf_steps(const MsGguf *g, const char *key, const char *const *names, const int *ops, size_t n_names,
                         TokHfStep **out, size_t *n_out, const char *path, MsError *err)
{
    char k[96];
    MsGgufArray op, a, b, nn;
    snprintf(k, sizeof k, "%s_op", key);
    int rc = ms_gguf_get_arr(g, k, &op, err);
    if (rc == MS_ENOTFOUND) return 0;
    if (rc) return rc;
    snprintf(k, sizeof k, "%s_a", key);
    int r1 = ms_gguf_get_arr(g, k, &a, NULL);
    snprintf(k, sizeof k, "%s_b", key);
    int r2 = ms_gguf_get_arr(g, k, &b, NULL);
    snprintf(k, sizeof k, "%s_n", key);
    int r3 = ms_gguf_get_arr(g, k, &nn, NULL);
    if (r1 || r2 || r3 || op.elem_type != MS_GGUF_STRING || a.elem_type != MS_GGUF_STRING ||
        b.elem_type != MS_GGUF_STRING || nn.elem_type == MS_GGUF_STRING || op.n > 64 || a.n != op.n ||
        b.n != op.n || nn.n != 2 * op.n)
        return ms_error_set(err, MS_EFORMAT, "%s: %s_* must be parallel arrays", path, key);
    if (!op.n) return 0;
    if (!(*out = calloc(op.n, sizeof **out))) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
    for (uint64_t i = 0; i < op.n; i++) {
        TokHfStep *st = &(*out)[i];
        *n_out = i + 1;
        const char *s;
        uint64_t len;
        ms_gguf_arr_str(&op, i, &s, &len);
        st->op = -1;
        for (size_t j = 0; j < n_names; j++)
            if (strlen(names[j]) == len && !memcmp(names[j], s, len)) st->op = ops[j];
        if (st->op < 0) return ms_error_set(err, MS_EFORMAT, "%s: %s step '%.*s' is unknown", path, key, (int)MS_MIN(len, 32), s);
        if (hf_str(&a, i, &st->a) || hf_str(&b, i, &st->b)) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
        st->n1 = (int)ms_gguf_arr_i64(&nn, 2 * i);
        st->n2 = (int)ms_gguf_arr_i64(&nn, 2 * i + 1);
    }
    return 0;
}

static int hf_normalize(const MsTokenizer *t, const char *s, size_t n, TokStr *out);

/* The most a chain of steps can lengthen text, as a factor: a Replace
 * multiplies by at most |content| / |pattern|, NFC by 3 (Unicode's bound
 * for UTF-8), a Prepend by 1 + |prepend| (it is added to every piece
 * between added tokens, which can be one byte long); the decoder's other
 * steps shorten it.  Real files stay under 12 (Prepend U+2581, Replace
 * " " -> U+2581, NFC); chained Replaces whose content holds
 * the pattern grow exponentially, and a 13 KB tokenizer.json made 12 MB of
 * text out of 70 bytes (a fuzz finding), so a chain above
 * TOK_HF_MAX_GROWTH is refused when the tokenizer is built. */
#define TOK_HF_MAX_GROWTH 64.0

static double hf_growth(const TokHfStep *st, size_t n)
{
    double f = 1.0;
    for (size_t k = 0; k < n && f <= TOK_HF_MAX_GROWTH; k++) {
        if (st[k].op == TOK_HF_NFC) {
            f *= 3.0;
        } else if (st[k].op == TOK_HF_PREPEND) {
            f *= 1.0 + (double)strlen(st[k].a);
        } else if (st[k].op == TOK_HF_REPLACE || st[k].op == TOK_HF_D_REPLACE) {
            size_t al = strlen(st[k].a), bl = strlen(st[k].b);
            if (al && bl > al) f *= (double)bl / (double)al;
        }
    }
    return f;
}

/* first byte, then longest first (then file order) */
static int cmp_added(const void *pa, const void *pb, void *ctx)
{
    const MsTokenizer *t = ctx;
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    const TokHfAdded *x = &t->hf_added[a], *y = &t->hf_added[b];
    if ((uint8_t)x->match[0] != (uint8_t)y->match[0]) return (uint8_t)x->match[0] < (uint8_t)y->match[0] ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (a > b) - (a < b);
}

static int load_hf(MsTokenizer *t, const MsGguf *g, const char *path, MsError *err)
{
    MsGgufArray a;
    int rc = ms_gguf_get_arr(g, "tokenizer.hf.pre_regex", &a, err);
    if (rc && rc != MS_ENOTFOUND) return rc;
    if (rc == 0) {
        if (a.elem_type != MS_GGUF_STRING || a.n > 64)
            return ms_error_set(err, MS_EFORMAT, "%s: tokenizer.hf.pre_regex must be up to 64 strings", path);
        if (!(t->hf_rx = calloc(a.n ? a.n : 1, sizeof *t->hf_rx))) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
        for (uint64_t i = 0; i < a.n; i++) {
            if (hf_str(&a, i, &t->hf_rx[i])) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
            t->n_hf_rx = i + 1;
        }
    }
    bool mode = false;
    if ((rc = read_bool(g, "tokenizer.hf.mode", &mode, err))) return rc;
    if (!mode) return 0;
    t->hf = true;
    t->hf_byte_level = true;
    t->hf_unk = -1;
    if ((rc = read_bool(g, "tokenizer.hf.byte_level", &t->hf_byte_level, err)) ||
        (rc = read_bool(g, "tokenizer.hf.byte_fallback", &t->hf_byte_fallback, err)) ||
        (rc = read_bool(g, "tokenizer.hf.fuse_unk", &t->hf_fuse_unk, err)) ||
        (rc = read_id(g, path, "tokenizer.hf.unk_id", true, t->n_vocab, &t->hf_unk, err)))
        return rc;
    static const char *const nn[] = { "NFC", "Prepend", "Replace" };
    static const int no[] = { TOK_HF_NFC, TOK_HF_PREPEND, TOK_HF_REPLACE };
    static const char *const dn[] = { "ByteLevel", "Replace", "ByteFallback", "Fuse", "Strip", "Metaspace" };
    static const int dop[] = { TOK_HF_D_BYTELEVEL, TOK_HF_D_REPLACE, TOK_HF_D_BYTEFALLBACK, TOK_HF_D_FUSE,
                               TOK_HF_D_STRIP, TOK_HF_D_METASPACE };
    if ((rc = load_hf_steps(g, "tokenizer.hf.norm", nn, no, 3, &t->hf_norm, &t->n_hf_norm, path, err)) ||
        (rc = load_hf_steps(g, "tokenizer.hf.dec", dn, dop, 6, &t->hf_dec, &t->n_hf_dec, path, err)))
        return rc;
    for (size_t i = 0; i < t->n_hf_norm; i++)
        if (t->hf_norm[i].op == TOK_HF_REPLACE && !t->hf_norm[i].a[0])
            return ms_error_set(err, MS_EFORMAT, "%s: a Replace normalizer with an empty pattern", path);
    double gn = hf_growth(t->hf_norm, t->n_hf_norm), gd = hf_growth(t->hf_dec, t->n_hf_dec);
    if (gn > TOK_HF_MAX_GROWTH || gd > TOK_HF_MAX_GROWTH)
        return ms_error_set(err, MS_EFORMAT, "%s: the %s steps can make text more than %.0f times longer", path,
                            gn > TOK_HF_MAX_GROWTH ? "normalizer" : "decoder", TOK_HF_MAX_GROWTH);
    const char *s;
    uint64_t len;
    rc = ms_gguf_get_str(g, "tokenizer.hf.metaspace", &s, &len, err);
    if (rc && rc != MS_ENOTFOUND) return rc;
    if (rc == 0) {
        /* one character, as in tokenizer.json: it replaces every space */
        if (!len || len > 4 || (uint64_t)tok_utf8_len((uint8_t)s[0]) != len || !(t->hf_meta = dup_n(s, len)))
            return ms_error_set(err, MS_EFORMAT, "%s: tokenizer.hf.metaspace must be one character", path);
        uint32_t sc = 0;
        rc = ms_gguf_get_u32(g, "tokenizer.hf.metaspace_scheme", &sc, err);
        if (rc && rc != MS_ENOTFOUND) return rc;
        t->hf_meta_scheme = sc <= 2 ? (int)sc : 0;
    }
    MsGgufArray ids, fl;
    rc = ms_gguf_get_arr(g, "tokenizer.hf.added_id", &ids, err);
    if (rc == MS_ENOTFOUND) return 0;
    if (rc) return rc;
    if (ms_gguf_get_arr(g, "tokenizer.hf.added_flags", &fl, err) || ids.elem_type == MS_GGUF_STRING ||
        fl.elem_type == MS_GGUF_STRING || fl.n != ids.n)
        return ms_error_set(err, MS_EFORMAT, "%s: tokenizer.hf.added_id/_flags must be parallel integer arrays", path);
    if (ids.n && !(t->hf_added = calloc(ids.n, sizeof *t->hf_added)))
        return ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
    TokStr nb = { 0 };
    for (uint64_t i = 0; i < ids.n; i++) {
        int64_t id = ms_gguf_arr_i64(&ids, i);
        if (id < 0 || id >= t->n_vocab) continue;
        TokHfAdded *ad = &t->hf_added[t->n_hf_added];
        ad->id = (int32_t)id;
        ad->flags = (int)ms_gguf_arr_i64(&fl, i);
        /* a normalized token is matched in normalized text, in its own
         * normalized form (HF's normalized_cache) */
        nb.n = 0;
        if (ad->flags & TOK_HF_NORMALIZED) rc = hf_normalize(t, tok_text(t, ad->id), t->tok_len[ad->id], &nb);
        else rc = tokstr_append(&nb, tok_text(t, ad->id), t->tok_len[ad->id]);
        if (rc || !(ad->match = dup_n(nb.s ? nb.s : "", nb.n))) {
            free(nb.s);
            return ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
        }
        ad->len = nb.n;
        t->n_hf_added++;
        if (!ad->len) { free(ad->match); t->n_hf_added--; continue; }
        /* HF decodes such a token as its normalized form too */
        if (ad->len != t->tok_len[ad->id] || memcmp(ad->match, tok_text(t, ad->id), ad->len)) {
            if (!t->hf_added_ix && !(t->hf_added_ix = calloc((size_t)t->n_vocab, sizeof *t->hf_added_ix))) {
                free(nb.s);
                return ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
            }
            t->hf_added_ix[ad->id] = (int32_t)t->n_hf_added;
        }
    }
    free(nb.s);
    /* the first-byte index hf_match searches */
    if (!(t->hf_by_byte = malloc((t->n_hf_added ? t->n_hf_added : 1) * sizeof *t->hf_by_byte)))
        return ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
    for (size_t k = 0; k < t->n_hf_added; k++) t->hf_byte_start[(uint8_t)t->hf_added[k].match[0] + 1]++;
    for (int b = 0; b < 256; b++) t->hf_byte_start[b + 1] += t->hf_byte_start[b];
    uint32_t fill[256];
    memcpy(fill, t->hf_byte_start, sizeof fill);
    for (size_t k = 0; k < t->n_hf_added; k++) t->hf_by_byte[fill[(uint8_t)t->hf_added[k].match[0]]++] = (uint32_t)k;
    qsort_r(t->hf_by_byte, t->n_hf_added, sizeof *t->hf_by_byte, cmp_added, t);
    return 0;
}

MsTokenizer *ms_tokenizer_new(const MsGguf *g, MsError *err)
{
    const char *path = ms_gguf_path(g);
    const char *s;
    uint64_t len;
    int rc = ms_gguf_get_str(g, "tokenizer.ggml.model", &s, &len, err);
    if (rc == MS_ENOTFOUND) {
        ms_error_set(err, MS_ENOTFOUND, "%s: no tokenizer in this file (tokenizer.ggml.model missing)", path);
        return NULL;
    }
    if (rc) return NULL;

    MsTokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    t->bos = t->eos = t->eot = t->eom = t->unk = t->sep = t->pad = -1;
    t->model = dup_n(s, len);
    if (!t->model) goto nomem;
    if (strcmp(t->model, "gpt2") == 0) t->kind = MS_TOK_BPE;
    else if (strcmp(t->model, "llama") == 0) t->kind = MS_TOK_SPM;
    else if (strcmp(t->model, "bert") == 0) t->kind = MS_TOK_WPM;
    else {
        ms_error_set(err, MS_EUNSUPPORTED, "%s: unsupported tokenizer model tokenizer.ggml.model = '%s'", path, t->model);
        goto fail;
    }
    rc = ms_gguf_get_str(g, "tokenizer.ggml.pre", &s, &len, err);
    if (rc && rc != MS_ENOTFOUND) goto fail;
    t->pre = rc == MS_ENOTFOUND ? dup_n("default", 7) : dup_n(s, len);
    if (!t->pre) goto nomem;

    if (load_tokens(t, g, path, err)) goto fail;

    /* per-model defaults (GGUF-MOE.md §7.1) */
    int32_t d_bos = -1, d_eos = -1, d_unk = -1, d_sep = -1, d_pad = -1;
    switch (t->kind) {
    case MS_TOK_BPE:
        d_bos = d_eos = 11;
        t->add_bos = false;
        if (load_merges(t, g, path, err)) goto fail;
        if (load_hf(t, g, path, err)) goto fail;
        if (tok_bpe_setup(t, err)) {  /* sets clean_spaces, ignore_merges, add_bos */
            ms_error_prefix(err, "%s: ", path);
            goto fail;
        }
        if ((t->n_hf_rx || t->hf) && read_bool(g, "tokenizer.hf.ignore_merges", &t->ignore_merges, err)) goto fail;
        if (t->hf) {   /* transformers' clean_up_tokenization_spaces */
            t->clean_spaces = false;
            if (read_bool(g, "tokenizer.hf.clean_spaces", &t->clean_spaces, err)) goto fail;
        }
        break;
    case MS_TOK_SPM:
        d_bos = 1, d_eos = 2, d_unk = 0;
        t->add_bos = true;
        t->add_space_prefix = true;
        break;
    case MS_TOK_WPM:
        d_bos = 101, d_unk = 100, d_sep = 102, d_pad = 0;
        t->add_bos = true;
        t->add_sep = true;
        t->clean_spaces = true;
        break;
    }
    int32_t n = t->n_vocab;
    t->bos = d_bos < n ? d_bos : -1;
    t->eos = d_eos < n ? d_eos : -1;
    t->unk = d_unk < n ? d_unk : -1;
    t->sep = d_sep < n ? d_sep : -1;
    t->pad = d_pad < n ? d_pad : -1;
    if (read_id(g, path, "tokenizer.ggml.bos_token_id", true, n, &t->bos, err) ||
        (t->kind == MS_TOK_WPM && read_id(g, path, "tokenizer.ggml.cls_token_id", true, n, &t->bos, err)) ||
        read_id(g, path, "tokenizer.ggml.eos_token_id", true, n, &t->eos, err) ||
        read_id(g, path, "tokenizer.ggml.eot_token_id", true, n, &t->eot, err) ||
        read_id(g, path, "tokenizer.ggml.eom_token_id", true, n, &t->eom, err) ||
        read_id(g, path, "tokenizer.ggml.unknown_token_id", false, n, &t->unk, err) ||
        read_id(g, path, "tokenizer.ggml.seperator_token_id", false, n, &t->sep, err) ||
        read_id(g, path, "tokenizer.ggml.padding_token_id", false, n, &t->pad, err) ||
        read_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos, err) ||
        read_bool(g, "tokenizer.ggml.add_eos_token", &t->add_eos, err) ||
        read_bool(g, "tokenizer.ggml.add_sep_token", &t->add_sep, err) ||
        read_bool(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err))
        goto fail;

    setup_specials(t, g);
    if (!t->special) goto nomem;

    for (int b = 0; b < 256; b++) {
        char hex[8];
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        t->byte_tok[b] = find_text(t, hex);
        if (t->byte_tok[b] < 0 && !t->hf) {   /* HF's byte fallback knows only <0xXX> */
            char raw = (char)b;
            t->byte_tok[b] = tokmap_get(&t->vocab, &raw, 1);
        }
    }
    if (t->kind == MS_TOK_SPM) {
        t->spm_pairs = calloc((size_t)1 << (TOK_SPM_PAIR_BITS - 6), sizeof *t->spm_pairs);
        if (!t->spm_pairs) goto nomem;
        for (int32_t i = 0; i < t->n_vocab; i++) {
            /* characters cut by the same rule the tokenizer applies to text */
            const char *s = tok_text(t, i);
            size_t n = t->tok_len[i], a = 0;
            size_t al = MS_MIN((size_t)tok_utf8_len((uint8_t)s[0]), n);
            while (a + al < n) {
                size_t bl = MS_MIN((size_t)tok_utf8_len((uint8_t)s[a + al]), n - a - al);
                uint64_t h = tok_hash(s + a, al + bl) >> (64 - TOK_SPM_PAIR_BITS);
                t->spm_pairs[h >> 6] |= (uint64_t)1 << (h & 63);
                a += al;
                al = bl;
            }
        }
    }
    return t;

nomem:
    ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
fail:
    ms_tokenizer_free(t);
    return NULL;
}

MsTokKind ms_tokenizer_kind(const MsTokenizer *t) { return t->kind; }
const char *ms_tokenizer_model_name(const MsTokenizer *t) { return t->model; }
const char *ms_tokenizer_pre_name(const MsTokenizer *t) { return t->pre; }
int32_t ms_tokenizer_n_vocab(const MsTokenizer *t) { return t->n_vocab; }
int32_t ms_tokenizer_bos(const MsTokenizer *t) { return t->bos; }
int32_t ms_tokenizer_eos(const MsTokenizer *t) { return t->eos; }
bool ms_tokenizer_add_bos(const MsTokenizer *t) { return t->add_bos && t->bos >= 0; }
bool ms_tokenizer_add_eos(const MsTokenizer *t) { return t->add_eos && t->eos >= 0; }

bool ms_tokenizer_is_eog(const MsTokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && t->eog[id];
}

const char *ms_tokenizer_token_text(const MsTokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab ? tok_text(t, id) : NULL;
}

/* ---- encoding ---- */

typedef struct {
    int32_t id;           /* token, or -1 for raw text */
    size_t off, len;
} Frag;

typedef struct { Frag *v; size_t n, cap; } Frags;

static int frag_push(Frags *f, int32_t id, size_t off, size_t len)
{
    if (f->n == f->cap) {
        size_t c = f->cap ? f->cap * 2 : 16;
        Frag *p = realloc(f->v, c * sizeof *p);
        if (!p) return MS_ENOMEM;
        f->v = p;
        f->cap = c;
    }
    f->v[f->n++] = (Frag){ id, off, len };
    return MS_OK;
}

static bool c_isspace(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Cut user-defined tokens out of the raw text, longest token first, each
 * at every occurrence left to right (llama.cpp's tokenizer_st_partition with
 * parse_special = false: control and unknown tokens stay plain text). */
static int partition(const MsTokenizer *t, const char *text, size_t len, Frags *out)
{
    Frags cur = { 0 }, nxt = { 0 };
    uint8_t *pairs = NULL;
    int rc = MS_OK;
    if (len && (rc = frag_push(&cur, -1, 0, len))) goto done;
    /* Vocabularies can have thousands of user-defined tokens ([PAD123]...):
     * a token containing a byte pair absent from the text cannot occur, so
     * one pass over the text spares most of the searches. */
    bool bytes[256] = { false };
    for (size_t k = 0; k < t->n_special && !pairs; k++)
        if (!(t->attr[t->special[k]] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN)) && len) {
            if (!(pairs = calloc(65536 / 8, 1))) {
                rc = MS_ENOMEM;
                goto done;
            }
            for (size_t i = 0; i < len; i++) {
                bytes[(uint8_t)text[i]] = true;
                if (i + 1 < len) {
                    unsigned pr = (unsigned)(uint8_t)text[i] << 8 | (uint8_t)text[i + 1];
                    pairs[pr >> 3] |= (uint8_t)(1u << (pr & 7));
                }
            }
        }
    for (size_t k = 0; k < t->n_special && pairs; k++) {
        int32_t id = t->special[k];
        if (t->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN)) continue;
        const char *tt = tok_text(t, id);
        size_t tl = t->tok_len[id];
        bool possible = tl > 0 && bytes[(uint8_t)tt[0]];
        for (size_t i = 0; possible && i + 1 < tl; i++) {
            unsigned pr = (unsigned)(uint8_t)tt[i] << 8 | (uint8_t)tt[i + 1];
            possible = pairs[pr >> 3] & (1u << (pr & 7));
        }
        if (!possible) continue;
        nxt.n = 0;
        for (size_t f = 0; f < cur.n; f++) {
            Frag fr = cur.v[f];
            if (fr.id >= 0) {
                if ((rc = frag_push(&nxt, fr.id, 0, 0))) goto done;
                continue;
            }
            size_t base = fr.off, blen = fr.len;
            while (blen > 0) {
                const char *m = memmem(text + base, blen, tt, tl);
                if (!m) {
                    if ((rc = frag_push(&nxt, -1, base, blen))) goto done;
                    break;
                }
                size_t mpos = (size_t)(m - text), left = mpos - base;
                if (t->attr[id] & TOK_ATTR_LSTRIP)
                    while (left > 0 && c_isspace(text[base + left - 1])) left--;
                if (left > 0 && (rc = frag_push(&nxt, -1, base, left))) goto done;
                if ((rc = frag_push(&nxt, id, 0, 0))) goto done;
                size_t roff = mpos + tl, rlen = base + blen - roff;
                if (t->attr[id] & TOK_ATTR_RSTRIP)
                    while (rlen > 0 && c_isspace(text[roff])) roff++, rlen--;
                base = roff;
                blen = rlen;
            }
        }
        Frags tmp = cur;
        cur = nxt;
        nxt = tmp;
    }
done:
    free(pairs);
    free(nxt.v);
    if (rc) {
        free(cur.v);
        return rc;
    }
    *out = cur;
    return MS_OK;
}

/* ---- the tokenizer.json pipeline (Hugging Face's encode) ---- */

/* The normalizer steps on s[0..n) into out (replaced). */
static int hf_normalize(const MsTokenizer *t, const char *s, size_t n, TokStr *out)
{
    TokStr tmp = { 0 };
    out->n = 0;
    int rc = tokstr_append(out, s, n);
    for (size_t k = 0; k < t->n_hf_norm && !rc; k++) {
        const TokHfStep *st = &t->hf_norm[k];
        tmp.n = 0;
        if (st->op == TOK_HF_NFC) {
            size_t nl = 0;
            uint8_t *nfc = u8_normalize(UNINORM_NFC, (const uint8_t *)out->s, out->n, NULL, &nl);
            if (!nfc) continue;   /* invalid UTF-8 passes unchanged */
            out->n = 0;
            rc = tokstr_append(out, (const char *)nfc, nl);
            free(nfc);
            continue;
        }
        if (st->op == TOK_HF_PREPEND) {   /* only a non-empty string */
            if (!out->n) continue;
            rc = tokstr_append(&tmp, st->a, strlen(st->a));
            if (!rc) rc = tokstr_append(&tmp, out->s, out->n);
        } else {   /* Replace: every non-overlapping occurrence, left to right */
            size_t pl = strlen(st->a), cl = strlen(st->b), i = 0;
            rc = tokstr_reserve(&tmp, out->n);
            while (!rc && i < out->n) {
                if (i + pl <= out->n && !memcmp(out->s + i, st->a, pl)) {
                    rc = tokstr_append(&tmp, st->b, cl);
                    i += pl;
                } else {
                    rc = tokstr_append(&tmp, out->s + i, 1);
                    i++;
                }
            }
        }
        if (!rc) {
            TokStr x = *out;
            *out = tmp;
            tmp = x;
        }
    }
    free(tmp.s);
    if (!rc && !out->s) rc = tokstr_reserve(out, 0);
    return rc;
}

/* Rust regex's \w (Unicode) and \s, on one code point */
static bool hf_is_word(ucs4_t c)
{
    return uc_is_property_alphabetic(c) || uc_is_general_category(c, UC_CATEGORY_M) ||
           uc_is_general_category(c, UC_CATEGORY_Nd) || uc_is_general_category(c, UC_CATEGORY_Pc) ||
           uc_is_property_join_control(c);
}

static ucs4_t hf_last_cp(const char *s, size_t n)
{
    ucs4_t c = 0xfffd;
    if (n) u8_prev(&c, (const uint8_t *)s + n, (const uint8_t *)s);
    return c;
}

static ucs4_t hf_first_cp(const char *s, size_t n)
{
    ucs4_t c = 0xfffd;
    if (n) u8_mbtouc(&c, (const uint8_t *)s, n);
    return c;
}

/* Hugging Face's AddedVocabulary::find_matches: the added tokens of one set
 * (normalized or not) found leftmost-longest and non-overlapping, then each
 * match filtered by single_word and widened by lstrip / rstrip.  Raw text
 * pieces get id -1. */
static int hf_match(const MsTokenizer *t, const char *s, size_t n, bool normalized, Frags *out)
{
    out->n = 0;
    size_t start_offset = 0, i = 0;
    while (i < n) {
        const TokHfAdded *bt = NULL;
        uint8_t c0 = (uint8_t)s[i];
        for (uint32_t k = t->hf_byte_start[c0]; k < t->hf_byte_start[c0 + 1] && !bt; k++) {
            const TokHfAdded *a = &t->hf_added[t->hf_by_byte[k]];   /* longest first */
            if (((a->flags & TOK_HF_NORMALIZED) != 0) == normalized && a->len <= n - i && !memcmp(s + i, a->match, a->len))
                bt = a;
        }
        if (!bt) {
            i++;
            continue;
        }
        size_t start = i, stop = i + bt->len;
        i = stop;   /* the search goes on after the match itself */
        if (bt->flags & TOK_HF_SINGLE_WORD) {
            bool start_space = start == 0 || !hf_is_word(hf_last_cp(s, start));
            bool stop_space = stop == n || !hf_is_word(hf_first_cp(s + stop, n - stop));
            if (!start_space || !stop_space) continue;
        }
        if (bt->flags & TOK_HF_LSTRIP) {
            size_t ns = start;
            while (ns > 0) {
                ucs4_t c = 0;
                const uint8_t *p = u8_prev(&c, (const uint8_t *)s + ns, (const uint8_t *)s);
                if (!p || !uc_is_property_white_space(c)) break;
                ns = (size_t)((const char *)p - s);
            }
            start = MS_MAX(ns, start_offset);
        }
        if (bt->flags & TOK_HF_RSTRIP) {
            while (stop < n) {
                ucs4_t c = 0;
                int k = u8_mbtouc(&c, (const uint8_t *)s + stop, n - stop);
                if (k <= 0 || c == 0xfffd || !uc_is_property_white_space(c)) break;
                stop += (size_t)k;
            }
        }
        if (start_offset < start && frag_push(out, -1, start_offset, start - start_offset)) return MS_ENOMEM;
        if (frag_push(out, bt->id, start, stop - start)) return MS_ENOMEM;
        start_offset = stop;
    }
    if (start_offset < n && frag_push(out, -1, start_offset, n - start_offset)) return MS_ENOMEM;
    return MS_OK;
}

/* extract_and_normalize, the pre-tokenizer and the model, as Hugging Face's
 * encode does it: non-normalized added tokens cut from the raw text; each
 * piece between them normalized; normalized added tokens cut from that;
 * Metaspace, the Split regexes and BPE on what remains. */
static int hf_encode(const MsTokenizer *t, const char *text, size_t len, TokIds *ids)
{
    Frags f1 = { 0 }, f2 = { 0 };
    TokStr norm = { 0 }, meta = { 0 };
    TokBpeSession *bs = NULL;
    int rc = hf_match(t, text, len, false, &f1);
    for (size_t i = 0; i < f1.n && !rc; i++) {
        if (f1.v[i].id >= 0) {
            rc = tokids_push(ids, f1.v[i].id);
            continue;
        }
        if ((rc = hf_normalize(t, text + f1.v[i].off, f1.v[i].len, &norm))) break;
        if ((rc = hf_match(t, norm.s, norm.n, true, &f2))) break;
        for (size_t j = 0; j < f2.n && !rc; j++) {
            const Frag *g = &f2.v[j];
            if (g->id >= 0) {
                rc = tokids_push(ids, g->id);
                continue;
            }
            const char *p = norm.s + g->off;
            size_t pl = g->len;
            if (t->hf_meta && pl) {   /* Metaspace: spaces replaced, then maybe a prefix */
                size_t ml = strlen(t->hf_meta);
                meta.n = 0;
                bool starts = pl >= 1 && (p[0] == ' ' || (pl >= ml && !memcmp(p, t->hf_meta, ml)));
                bool first = f1.v[i].off == 0 && g->off == 0;
                if (!starts && (t->hf_meta_scheme == 0 || (t->hf_meta_scheme == 1 && first)))
                    rc = tokstr_append(&meta, t->hf_meta, ml);
                for (size_t k = 0; k < pl && !rc; k++)
                    rc = p[k] == ' ' ? tokstr_append(&meta, t->hf_meta, ml) : tokstr_append(&meta, p + k, 1);
                if (rc) break;
                p = meta.s;
                pl = meta.n;
            }
            if (!pl) continue;
            if (!bs && !(bs = tok_bpe_session_new(t))) {
                rc = MS_ENOMEM;
                break;
            }
            rc = tok_bpe_encode(t, bs, p, pl, ids);
        }
    }
    tok_bpe_session_free(bs);
    free(f1.v);
    free(f2.v);
    free(norm.s);
    free(meta.s);
    return rc;
}

int ms_tokenizer_encode(const MsTokenizer *t, const char *text, size_t len,
                        bool add_special, int32_t **out, MsError *err)
{
    *out = NULL;
    if (!text && len) return ms_error_set(err, MS_EINVAL, "tokenizer: NULL text");
    TokIds ids = { 0 };
    Frags fr = { 0 };
    int rc = MS_OK;
    bool bos = add_special && t->add_bos && t->bos >= 0;
    if (bos && (rc = tokids_push(&ids, t->bos))) goto done;
    if (t->hf) {
        if (!(rc = hf_encode(t, text, len, &ids)) && add_special && t->add_eos && t->eos >= 0)
            rc = tokids_push(&ids, t->eos);
        goto done;
    }
    if ((rc = partition(t, text, len, &fr))) goto done;
    bool prev_special = true;  /* SPM: a leading space goes before the first text */
    TokStr spm = { 0 };
    TokBpeSession *bs = NULL;
    for (size_t i = 0; i < fr.n && !rc; i++) {
        const Frag *f = &fr.v[i];
        if (f->id >= 0) {
            rc = tokids_push(&ids, f->id);
            prev_special = true;
            continue;
        }
        switch (t->kind) {
        case MS_TOK_BPE:
            if (!bs && !(bs = tok_bpe_session_new(t))) {
                rc = MS_ENOMEM;
                break;
            }
            rc = tok_bpe_encode(t, bs, text + f->off, f->len, &ids);
            break;
        case MS_TOK_SPM:
            spm.n = 0;
            if ((t->add_space_prefix && prev_special && tokstr_append(&spm, " ", 1)) ||
                tokstr_append(&spm, text + f->off, f->len)) {
                rc = MS_ENOMEM;
                break;
            }
            rc = tok_spm_encode(t, spm.s, spm.n, &ids);
            break;
        case MS_TOK_WPM:
            rc = tok_wpm_encode(t, text + f->off, f->len, &ids);
            break;
        }
        prev_special = false;
    }
    free(spm.s);
    tok_bpe_session_free(bs);
    if (rc) goto done;
    if (add_special) {
        if (t->kind == MS_TOK_WPM) {
            if (t->add_sep && t->sep >= 0) rc = tokids_push(&ids, t->sep);
        } else if (t->add_eos && t->eos >= 0) {
            rc = tokids_push(&ids, t->eos);
        }
    }
done:
    free(fr.v);
    if (rc) {
        free(ids.v);
        if (rc == MS_ENOMEM) return ms_error_set(err, rc, "tokenizer: out of memory");
        return ms_error_set(err, rc, "tokenizer: pre-tokenizer regex failed to match");
    }
    if (!ids.v) ids.v = malloc(sizeof *ids.v);  /* a valid pointer even for 0 tokens */
    if (!ids.v) return ms_error_set(err, MS_ENOMEM, "tokenizer: out of memory");
    *out = ids.v;
    return (int)ids.n;
}

/* ---- pieces and decoding ---- */

/* Append token id's piece to b (llama.cpp token_to_piece, special = false). */
static int piece_append(const MsTokenizer *t, int32_t id, TokStr *b)
{
    const char *s = tok_text(t, id);
    size_t n = t->tok_len[id];
    uint8_t a = t->attr[id];
    if (a & TOK_ATTR_USER) return tokstr_append(b, s, n);
    if (t->kind == MS_TOK_BPE) {
        if (!(a & TOK_ATTR_NORMAL)) return tokstr_reserve(b, 0);
        /* byte-level: each code point stands for one byte */
        uint32_t *cps = malloc((n + 1) * sizeof *cps);
        if (!cps) return MS_ENOMEM;
        size_t nc = tok_utf8_decode(s, n, cps);
        int rc = tokstr_reserve(b, 0);
        for (size_t i = 0; i < nc && !rc; i++) {
            int byte = tok_cp_to_byte(cps[i]);
            if (byte >= 0) {
                char c = (char)byte;
                rc = tokstr_append(b, &c, 1);
            } else {
                /* what llama.cpp emits for a code point outside the map */
                char u[4], hex[8];
                int k = tok_utf8_encode(cps[i], u);
                rc = tokstr_append(b, "[UNK_BYTE_0x", 12);
                for (int j = 0; j < k && !rc; j++) {
                    snprintf(hex, sizeof hex, "%02x", (uint8_t)u[j]);
                    rc = tokstr_append(b, hex, 2);
                }
                if (!rc) rc = tokstr_append(b, s, n);
                if (!rc) rc = tokstr_append(b, "]", 1);
            }
        }
        free(cps);
        return rc;
    }
    if (a & TOK_ATTR_NORMAL) {
        int rc = tokstr_reserve(b, n);
        for (size_t i = 0; i < n && !rc; i++) {
            if (i + 3 <= n && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                rc = tokstr_append(b, " ", 1);
                i += 2;
            } else {
                rc = tokstr_append(b, s + i, 1);
            }
        }
        return rc;
    }
    if (a & TOK_ATTR_BYTE) {
        /* "<0xXX>" */
        char c = n >= 5 ? (char)strtol(s + 3, NULL, 16) : 0;
        return tokstr_append(b, &c, 1);
    }
    return tokstr_reserve(b, 0);
}

/* Hugging Face's decoder chain over the token strings of ids (control
 * tokens left out, as skip_special_tokens does), joined.  piece: one
 * token shown on its own, so the steps that treat the first token of a
 * text specially (Strip, Metaspace's first-token rule) do not apply. */
typedef struct { TokStr *v; size_t n; } HfToks;

static void hftoks_free(HfToks *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i].s);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* join all of l into one token */
static int hftoks_fuse(HfToks *l, const char *sep)
{
    TokStr all = { 0 };
    int rc = tokstr_reserve(&all, 0);
    for (size_t i = 0; i < l->n && !rc; i++) {
        if (i && sep) rc = tokstr_append(&all, sep, strlen(sep));
        if (!rc) rc = tokstr_append(&all, l->v[i].s, l->v[i].n);
    }
    hftoks_free(l);
    if (rc || !(l->v = calloc(1, sizeof *l->v))) {
        free(all.s);
        return MS_ENOMEM;
    }
    l->v[0] = all;
    l->n = 1;
    return MS_OK;
}

static int hf_replace_into(TokStr *out, const char *s, size_t n, const char *a, const char *b)
{
    size_t al = strlen(a), bl = strlen(b);
    int rc = tokstr_reserve(out, n);
    for (size_t i = 0; i < n && !rc;) {
        if (al && i + al <= n && !memcmp(s + i, a, al)) {
            rc = tokstr_append(out, b, bl);
            i += al;
        } else {
            rc = tokstr_append(out, s + i, 1);
            i++;
        }
    }
    return rc;
}

static int hf_byte_of(const TokStr *x)
{
    if (x->n != 6 || memcmp(x->s, "<0x", 3) || x->s[5] != '>' || !isxdigit((unsigned char)x->s[3]) ||
        !isxdigit((unsigned char)x->s[4]))
        return -1;
    char h[3] = { x->s[3], x->s[4], 0 };
    return (int)strtol(h, NULL, 16);
}

static int hf_decode(const MsTokenizer *t, const int32_t *ids, size_t n, bool piece, TokStr *res)
{
    HfToks l = { calloc(n ? n : 1, sizeof(TokStr)), 0 };
    if (!l.v) return MS_ENOMEM;
    int rc = MS_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab || (t->attr[ids[i]] & TOK_ATTR_CONTROL)) continue;
        TokStr *x = &l.v[l.n++];
        *x = (TokStr){ 0 };
        int32_t ix = t->hf_added_ix ? t->hf_added_ix[ids[i]] : 0;
        if (ix) rc = tokstr_append(x, t->hf_added[ix - 1].match, t->hf_added[ix - 1].len);
        else rc = tokstr_append(x, tok_text(t, ids[i]), t->tok_len[ids[i]]);
        if (!rc) rc = tokstr_reserve(x, 0);
    }
    if (!t->n_hf_dec && !rc) rc = hftoks_fuse(&l, " ");
    for (size_t k = 0; k < t->n_hf_dec && !rc; k++) {
        const TokHfStep *st = &t->hf_dec[k];
        switch (st->op) {
        case TOK_HF_D_BYTELEVEL: {
            /* each token's characters back to bytes; a token with a
             * character outside the map is taken as its own bytes */
            TokStr all = { 0 };
            rc = tokstr_reserve(&all, 0);
            for (size_t i = 0; i < l.n && !rc; i++) {
                uint32_t *cps = malloc((l.v[i].n + 1) * sizeof *cps);
                if (!cps) { rc = MS_ENOMEM; break; }
                size_t nc = tok_utf8_decode(l.v[i].s, l.v[i].n, cps), j = 0;
                size_t at = all.n;
                for (; j < nc && !rc; j++) {
                    int b = tok_cp_to_byte(cps[j]);
                    if (b < 0) break;
                    char c = (char)b;
                    rc = tokstr_append(&all, &c, 1);
                }
                free(cps);
                if (!rc && j < nc) {
                    all.n = at;
                    rc = tokstr_append(&all, l.v[i].s, l.v[i].n);
                }
            }
            hftoks_free(&l);
            if (rc || !(l.v = calloc(1, sizeof *l.v))) { free(all.s); rc = MS_ENOMEM; break; }
            l.v[0] = all;
            l.n = 1;
            break;
        }
        case TOK_HF_D_REPLACE:
        case TOK_HF_D_METASPACE:
            for (size_t i = 0; i < l.n && !rc; i++) {
                TokStr o = { 0 };
                const char *to = st->op == TOK_HF_D_REPLACE ? st->b : " ";
                /* Metaspace: every replacement character of the first
                 * token goes, unless the prepend scheme is never */
                if (st->op == TOK_HF_D_METASPACE && i == 0 && !piece && st->n1 != 2) to = "";
                rc = hf_replace_into(&o, l.v[i].s, l.v[i].n, st->a, to);
                free(l.v[i].s);
                l.v[i] = o;
            }
            break;
        case TOK_HF_D_BYTEFALLBACK: {
            HfToks o = { calloc(l.n + 1, sizeof(TokStr)), 0 };
            TokStr bytes = { 0 };
            if (!o.v) { rc = MS_ENOMEM; break; }
            for (size_t i = 0; i <= l.n && !rc; i++) {
                int b = i < l.n ? hf_byte_of(&l.v[i]) : -1;
                if (b >= 0) {
                    char c = (char)b;
                    rc = tokstr_append(&bytes, &c, 1);
                    continue;
                }
                if (bytes.n) {   /* valid UTF-8 as it is, else U+FFFD a byte */
                    TokStr *x = &o.v[o.n++];
                    *x = (TokStr){ 0 };
                    /* (a piece shown alone keeps its byte, so pieces
                     * streamed one by one still add up to the text) */
                    if (piece || !u8_check((const uint8_t *)bytes.s, bytes.n)) rc = tokstr_append(x, bytes.s, bytes.n);
                    else
                        for (size_t j = 0; j < bytes.n && !rc; j++) rc = tokstr_append(x, "\xef\xbf\xbd", 3);
                    bytes.n = 0;
                }
                if (i < l.n) {
                    o.v[o.n++] = l.v[i];
                    l.v[i] = (TokStr){ 0 };
                }
            }
            free(bytes.s);
            hftoks_free(&l);
            l = o;
            break;
        }
        case TOK_HF_D_FUSE:
            rc = hftoks_fuse(&l, NULL);
            break;
        case TOK_HF_D_STRIP: {
            if (piece) break;
            size_t cl = strlen(st->a);
            for (size_t i = 0; i < l.n && cl; i++) {
                TokStr *x = &l.v[i];
                size_t a = 0, e = x->n;
                for (int j = 0; j < st->n1 && a + cl <= e && !memcmp(x->s + a, st->a, cl); j++) a += cl;
                for (int j = 0; j < st->n2 && e >= a + cl && !memcmp(x->s + e - cl, st->a, cl); j++) e -= cl;
                memmove(x->s, x->s + a, e - a);
                x->n = e - a;
            }
            break;
        }
        }
    }
    if (!rc) rc = hftoks_fuse(&l, NULL);
    if (!rc) {
        *res = l.v[0];
        l.v[0] = (TokStr){ 0 };
    }
    hftoks_free(&l);
    return rc;
}

int ms_tokenizer_piece(const MsTokenizer *t, int32_t id, char *buf, size_t cap)
{
    if (id < 0 || id >= t->n_vocab) return MS_ERANGE;
    TokStr b = { 0 };
    if (t->hf ? hf_decode(t, &id, 1, true, &b) : piece_append(t, id, &b)) {
        free(b.s);
        return MS_ENOMEM;
    }
    if (buf && cap) memcpy(buf, b.s, MS_MIN(cap, b.n));
    int n = (int)b.n;
    free(b.s);
    return n;
}

/* llama.cpp's clean_spaces passes over detokenised text. */
static size_t clean_spaces(char *s, size_t total)
{
    size_t n = total ? 1 : 0;
    for (size_t i = 1; i < total; i++) {  /* " ?", " !", " .", " ," */
        char x = s[i];
        if (s[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ','))
            n--;
        s[n++] = x;
    }
    total = n;
    n = total ? 1 : 0;
    for (size_t i = 1; i < total; i++) {  /* " ' " -> "'" */
        char x = s[i];
        if (x == '\'' && i + 1 < total && s[i - 1] == ' ' && s[i + 1] == ' ') {
            n--;
            s[++i] = '\0';
        }
        s[n++] = x;
    }
    total = n;
    n = total ? 1 : 0;
    for (size_t i = 1; i < total; i++) {  /* " 's", " 'm", " 're", " 've" */
        char x = s[i];
        if (s[i - 1] == ' ' && x == '\'' && i + 1 < total) {
            char x1 = s[i + 1];
            if (x1 == 's' || x1 == 'm') n--;
            else if (i + 2 < total && ((x1 == 'r' && s[i + 2] == 'e') || (x1 == 'v' && s[i + 2] == 'e'))) n--;
        }
        s[n++] = x;
    }
    return n;
}

/* As llama.cpp's llama_detokenize(remove_special = false, unparse_special =
 * false): control tokens give nothing, the first piece loses SentencePiece's
 * prefix space (a leading BOS consumes that removal, as in llama.cpp), and
 * with clean_spaces (byte-level BPE except qwen2/deepseek-style pre values,
 * and WPM) " ." " ," " ?" " !" " 's" ... lose their space.  Ids outside the
 * vocabulary are skipped. */
char *ms_tokenizer_decode(const MsTokenizer *t, const int32_t *ids, size_t n, size_t *len)
{
    TokStr b = { 0 };
    bool remove_space = t->add_space_prefix;
    if (t->hf) {
        if (hf_decode(t, ids, n, false, &b) || tokstr_reserve(&b, 0)) {
            free(b.s);
            return NULL;
        }
        if (t->clean_spaces) b.n = clean_spaces(b.s, b.n);
        b.s[b.n] = '\0';
        if (len) *len = b.n;
        return b.s;
    }
    if (tokstr_reserve(&b, 0)) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) continue;
        size_t at = b.n;
        if (piece_append(t, ids[i], &b)) {
            free(b.s);
            return NULL;
        }
        /* the space SentencePiece put in front of the text */
        if (remove_space && b.n > at && b.s[at] == ' ') {
            memmove(b.s + at, b.s + at + 1, b.n - at - 1);
            b.n--;
        }
        remove_space = false;
    }
    if (t->clean_spaces) b.n = clean_spaces(b.s, b.n);
    b.s[b.n] = '\0';
    if (len) *len = b.n;
    return b.s;
}
