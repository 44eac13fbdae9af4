/* tok-wpm.c — WordPiece (tokenizer.ggml.model "bert") as llama.cpp's
 * llm_tokenizer_wpm: each code point is replaced by the first code point of
 * its canonical decomposition (which drops accents), lower-cased; text is
 * split on whitespace, and punctuation, ASCII symbols and CJK ideographs
 * become one-character words; control characters are dropped.  Each word,
 * prefixed with the phantom space "▁" (the converter stores word-initial
 * pieces as "▁piece" and "##piece" as "piece"), is cut greedily into the
 * longest vocabulary matches; a word with an unmatched rest becomes [UNK]. */
#include "tok-internal.h"

#include <stdlib.h>
#include <string.h>

#include <unicase.h>
#include <unictype.h>
#include <uninorm.h>

static uint32_t nfd_first(uint32_t cp)
{
    ucs4_t d[UC_DECOMPOSITION_MAX_LENGTH];
    /* full canonical decomposition starts with the decomposition of the
     * first element of each one-level mapping */
    for (int depth = 0; depth < 8 && cp < 0x110000; depth++) {
        if (uc_canonical_decomposition(cp, d) <= 0) break;
        cp = d[0];
    }
    return cp;
}

static bool is_cjk(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) ||
           (c >= 0x2B920 && c <= 0x2CEAF) ||  /* sic: HF's range, as llama.cpp */
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static int wpm_word(const MsTokenizer *t, const char *w, size_t wl, TokIds *out, TokStr *buf)
{
    if (wl == 0) return MS_OK;
    buf->n = 0;
    if (tokstr_append(buf, "\xe2\x96\x81", 3) || tokstr_append(buf, w, wl)) return MS_ENOMEM;
    const char *s = buf->s;
    size_t n = buf->n, before = out->n;
    for (size_t i = 0; i < n; i++) {
        bool match = false;
        size_t jmax = MS_MIN(n, i + t->max_token_len + 1);
        for (size_t j = jmax; j > i; j--) {
            int32_t id = tokmap_get(&t->vocab, s + i, j - i);
            if (id >= 0) {
                if (tokids_push(out, id)) return MS_ENOMEM;
                match = true;
                i = j - 1;
                break;
            }
        }
        if (!match) {  /* discard the word's pieces */
            out->n = before;
            break;
        }
    }
    if (out->n == before && t->unk >= 0 && tokids_push(out, t->unk)) return MS_ENOMEM;
    return MS_OK;
}

int tok_wpm_encode(const MsTokenizer *t, const char *text, size_t len, TokIds *out)
{
    uint32_t *cps = malloc((len + 1) * sizeof *cps);
    TokStr word = { 0 }, buf = { 0 };
    int rc = MS_OK;
    if (!cps) return MS_ENOMEM;
    size_t n = tok_utf8_decode(text, len, cps);
    const uint32_t split_mask = UC_CATEGORY_MASK_P;
    const uint32_t ctrl_mask = UC_CATEGORY_MASK_Cc | UC_CATEGORY_MASK_Cf | UC_CATEGORY_MASK_Co | UC_CATEGORY_MASK_Cs;
    for (size_t i = 0; i < n && !rc; i++) {
        uint32_t cp = cps[i];
        if (cp >= 0x80) cp = nfd_first(cp);
        if (tok_is_whitespace(cp)) {
            rc = wpm_word(t, word.s, word.n, out, &buf);
            word.n = 0;
            continue;
        }
        if (cp == 0 || cp == 0xFFFD || (cp >= 0xD800 && cp <= 0xDFFF)) continue; /* Cs is control */
        bool valid = cp < 0x110000;
        if (valid && uc_is_general_category_withtable(cp, ctrl_mask)) continue;
        char u[4];
        int k = tok_utf8_encode(valid ? uc_tolower(cp) : cp, u);
        bool alone = valid && (uc_is_general_category_withtable(cp, split_mask) ||
                               (cp < 0x7F && uc_is_general_category_withtable(cp, UC_CATEGORY_MASK_S)) ||
                               is_cjk(cp));
        if (alone) {
            if ((rc = wpm_word(t, word.s, word.n, out, &buf))) break;
            if ((rc = wpm_word(t, u, (size_t)k, out, &buf))) break;
            word.n = 0;
        } else if (tokstr_append(&word, u, (size_t)k)) {
            rc = MS_ENOMEM;
        }
    }
    if (!rc) rc = wpm_word(t, word.s, word.n, out, &buf);
    free(cps);
    free(word.s);
    free(buf.s);
    return rc;
}
