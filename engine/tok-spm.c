/* tok-spm.c — SentencePiece-style tokenization (tokenizer.ggml.model
 * "llama") as llama.cpp's llm_tokenizer_spm does it: spaces become "▁"
 * (with a leading "▁" when add_space_prefix), the text is cut into UTF-8
 * characters, adjacent pairs whose concatenation is a token are merged,
 * highest score first (leftmost on ties), and whatever is not a token in the
 * end falls back to <0xXX> byte tokens. */
#include "tok-internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *text;
    TokSym *sym;
    TokHeap heap;
} SpmScratch;

static int spm_try_add(const MsTokenizer *t, SpmScratch *w, int32_t l, int32_t r)
{
    if (l < 0 || r < 0) return MS_OK;
    const TokSym *a = &w->sym[l], *b = &w->sym[r];
    /* a and b are adjacent, so their texts are contiguous */
    int32_t id = tokmap_get(&t->vocab, w->text + a->off, a->n + b->n);
    if (id < 0) return MS_OK;
    TokBigram g = { .key = -(double)t->scores[id], .left = l, .right = r, .size = a->n + b->n };
    return tokheap_push(&w->heap, g);
}

/* Tokenize one already escaped fragment. */
static int spm_fragment(const MsTokenizer *t, const char *text, size_t len, TokIds *out)
{
    SpmScratch w = { .text = text };
    int rc = MS_OK;
    size_t n = 0;
    w.sym = malloc((len ? len : 1) * sizeof *w.sym);
    if (!w.sym) return MS_ENOMEM;
    for (size_t off = 0; off < len; n++) {
        size_t cl = MS_MIN((size_t)tok_utf8_len((uint8_t)text[off]), len - off);
        w.sym[n] = (TokSym){ .prev = (int32_t)n - 1, .off = (uint32_t)off, .n = (uint32_t)cl };
        off += cl;
        w.sym[n].next = off == len ? -1 : (int32_t)n + 1;
    }
    for (size_t seg = 0, end; seg < n; seg = end) {
        /* a segment ends where no token can span two neighbouring characters */
        for (end = seg + 1; end < n; end++)
            if (!tok_spm_pair_maybe(t, text + w.sym[end - 1].off, w.sym[end - 1].n + w.sym[end].n)) break;
        for (size_t i = seg + 1; i < end; i++)
            if ((rc = spm_try_add(t, &w, (int32_t)i - 1, (int32_t)i))) goto done;
        while (w.heap.n) {
            TokBigram g = tokheap_pop(&w.heap);
            TokSym *a = &w.sym[g.left], *b = &w.sym[g.right];
            if (a->n == 0 || b->n == 0 || a->n + b->n != g.size) continue;
            a->n += b->n;
            b->n = 0;
            a->next = b->next;
            if (b->next >= 0) w.sym[b->next].prev = g.left;
            /* pairs reaching into a neighbouring segment are never tokens */
            if ((rc = spm_try_add(t, &w, a->prev, g.left)) || (rc = spm_try_add(t, &w, g.left, a->next)))
                goto done;
        }
    }
    /* Every merged symbol is a token (a pair is queued only if it is one), so
     * llama.cpp's re-segmentation through its reverse-merge table reduces to
     * the byte fallback for single characters that are not tokens. */
    for (int32_t i = n ? 0 : -1; i != -1; i = w.sym[i].next) {
        const TokSym *s = &w.sym[i];
        int32_t id = tokmap_get(&t->vocab, text + s->off, s->n);
        if (id >= 0) {
            if ((rc = tokids_push(out, id))) goto done;
            continue;
        }
        for (uint32_t j = 0; j < s->n; j++) {
            id = t->byte_tok[(uint8_t)text[s->off + j]];
            if (id < 0) id = t->unk;  /* llama.cpp would throw here */
            if (id >= 0 && (rc = tokids_push(out, id))) goto done;
        }
    }
done:
    free(w.sym);
    free(w.heap.v);
    return rc;
}

int tok_spm_encode(const MsTokenizer *t, const char *text, size_t len, TokIds *out)
{
    /* text already carries the optional leading space; escape ' ' -> U+2581 */
    TokStr esc = { 0 };
    size_t n_sp = 0;
    for (size_t i = 0; i < len; i++) n_sp += text[i] == ' ';
    if (tokstr_reserve(&esc, len + 2 * n_sp)) return MS_ENOMEM;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(esc.s + esc.n, "\xe2\x96\x81", 3);
            esc.n += 3;
        } else {
            esc.s[esc.n++] = text[i];
        }
    }
    int rc = spm_fragment(t, esc.s, esc.n, out);
    free(esc.s);
    return rc;
}
