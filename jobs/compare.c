/* compare.c — the report of what changed between two runs, and a
 * word-level diff of two texts (jobs.h: ms_compare_report, ms_word_diff). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "job-internal.h"

void ms_compare_report_clear(MsCompareReport *r)
{
    if (!r) return;
    ms_trace_compare_rows_clear(&r->rows);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------- rows from two traces */

typedef struct {
    int n, cap;
    int32_t *id;
    float *lp;
    bool *gen;
    char **piece;
} Toks;

static void toks_free(Toks *t)
{
    for (int i = 0; i < t->n; i++) free(t->piece[i]);
    free(t->id);
    free(t->lp);
    free(t->gen);
    free(t->piece);
    memset(t, 0, sizeof *t);
}

static int read_tokens(MsTraceDb *db, int64_t run, int64_t pid, Toks *t, MsError *err)
{
    memset(t, 0, sizeof *t);
    MsTraceCursor *c = ms_trace_tokens(db, run, pid, err);
    if (!c) return err ? err->code : MS_EDB;
    MsTraceToken tk;
    int rc;
    while ((rc = ms_trace_tokens_next(c, &tk, err)) == 1) {
        if (t->n == t->cap) {
            int nc = t->cap ? 2 * t->cap : 64;
            int32_t *id = realloc(t->id, (size_t)nc * sizeof *id);
            if (id) t->id = id;
            float *lp = realloc(t->lp, (size_t)nc * sizeof *lp);
            if (lp) t->lp = lp;
            bool *g = realloc(t->gen, (size_t)nc * sizeof *g);
            if (g) t->gen = g;
            char **pc = realloc(t->piece, (size_t)nc * sizeof *pc);
            if (pc) t->piece = pc;
            if (!id || !lp || !g || !pc) { rc = MS_ENOMEM; break; }
            t->cap = nc;
        }
        char *p = malloc(tk.piece_len + 1);
        if (!p) { rc = MS_ENOMEM; break; }
        memcpy(p, tk.piece, tk.piece_len);
        p[tk.piece_len] = 0;
        t->id[t->n] = tk.token_id;
        t->lp[t->n] = tk.logprob;
        t->gen[t->n] = tk.is_generated;
        t->piece[t->n++] = p;
    }
    ms_trace_cursor_free(c);
    if (rc == MS_ENOMEM) return ms_error_set(err, rc, "out of memory");
    return rc < 0 ? rc : 0;
}

/* generated pieces joined, and their ids */
static int generated(const Toks *t, char **text, int32_t **ids, int *n)
{
    size_t len = 0;
    int k = 0;
    for (int i = 0; i < t->n; i++)
        if (t->gen[i]) len += strlen(t->piece[i]), k++;
    *text = malloc(len + 1);
    *ids = malloc((size_t)(k ? k : 1) * sizeof **ids);
    if (!*text || !*ids) return MS_ENOMEM;
    len = 0;
    *n = 0;
    for (int i = 0; i < t->n; i++) {
        if (!t->gen[i]) continue;
        size_t l = strlen(t->piece[i]);
        memcpy(*text + len, t->piece[i], l);
        len += l;
        (*ids)[(*n)++] = t->id[i];
    }
    (*text)[len] = 0;
    char *clean = ms_job_utf8(*text, len);
    if (!clean) return MS_ENOMEM;
    free(*text);
    *text = clean;
    return 0;
}

/* Routing rows of one prompt read one (pos, layer) group at a time. */
typedef struct {
    MsTraceCursor *c;
    MsTraceRoute buf[512];
    int n, i;
    bool end;
    int32_t pos, layer, k;
    int32_t ids[256];
} Groups;

/* 1 = a group in g (pos, layer, ids[k]), 0 = end, < 0 = MS_E* */
static int next_group(Groups *g, MsError *err)
{
    g->k = 0;
    for (;;) {
        if (g->i == g->n && !g->end) {
            g->n = ms_trace_routing_next(g->c, g->buf, 512, err);
            g->i = 0;
            if (g->n < 0) return g->n;
            if (g->n == 0) g->end = true;
        }
        if (g->i == g->n) return g->k > 0;
        const MsTraceRoute *r = &g->buf[g->i];
        if (g->k > 0 && (r->pos != g->pos || r->layer != g->layer)) return 1;
        if (g->k == 0) {
            g->pos = r->pos;
            g->layer = r->layer;
        }
        if (g->k < 256) g->ids[g->k++] = r->expert;
        g->i++;
    }
}

static void set_shift(const int32_t *a, int ka, const int32_t *b, int kb, MsCompareLayer *c)
{
    int inter = 0;
    for (int i = 0; i < ka; i++)
        for (int j = 0; j < kb; j++)
            if (a[i] == b[j]) { inter++; break; }
    int uni = ka + kb - inter;
    c->n_pos++;
    c->n_changed += inter != ka || inter != kb;
    c->jaccard_sum += uni > 0 ? (double)inter / uni : 1.0;
}

/* Routing shift per MoE layer over positions < n_pos (both cursors come in
 * (pos, layer) order). */
static int shift_from_traces(MsTraceDb *db, const MsTraceRunInfo *ib, const MsTraceRunInfo *ir, int64_t pb, int64_t pr,
                             int n_pos, MsCompareLayer *lay, MsError *err)
{
    int slot_of[MS_TRACE_MAX_LAYER], ns = 0;
    for (int l = 0; l < MS_TRACE_MAX_LAYER; l++) {
        slot_of[l] = l < ib->model.n_layer && ib->model.is_moe[l] ? ns : -1;
        if (slot_of[l] >= 0) lay[ns++].layer = l;
    }
    Groups *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    int rc = a && b ? 0 : ms_error_set(err, MS_ENOMEM, "out of memory");
    if (!rc && !(a->c = ms_trace_routing(db, ib->run_id, pb, err))) rc = err ? err->code : MS_EDB;
    if (!rc && !(b->c = ms_trace_routing(db, ir->run_id, pr, err))) rc = err ? err->code : MS_EDB;
    int ra = rc ? rc : next_group(a, err), rb = rc ? rc : next_group(b, err);
    while (ra == 1 && rb == 1) {
        int64_t ka = (int64_t)a->pos * MS_TRACE_MAX_LAYER + a->layer, kb = (int64_t)b->pos * MS_TRACE_MAX_LAYER + b->layer;
        if (ka == kb) {
            if (a->pos < n_pos && a->layer >= 0 && a->layer < MS_TRACE_MAX_LAYER && slot_of[a->layer] >= 0)
                set_shift(a->ids, a->k, b->ids, b->k, &lay[slot_of[a->layer]]);
            ra = next_group(a, err);
            rb = next_group(b, err);
        } else if (ka < kb) {
            ra = next_group(a, err);
        } else {
            rb = next_group(b, err);
        }
    }
    if (!rc) rc = ra < 0 ? ra : rb < 0 ? rb : 0;
    if (a) ms_trace_cursor_free(a->c);
    if (b) ms_trace_cursor_free(b->c);
    free(a);
    free(b);
    return rc;
}

/* One prompt index present in both runs. */
static int prompt_from_traces(MsTraceDb *db, const MsTraceRunInfo *ib, const MsTraceRunInfo *ir, int idx,
                              int64_t pb, int64_t pr, bool self, MsComparePrompt *out, MsCompareLayer *lay,
                              MsError *err)
{
    Toks a = { 0 }, b = { 0 };
    int rc = read_tokens(db, ib->run_id, pb, &a, err);
    if (!rc) rc = read_tokens(db, ir->run_id, pr, &b, err);
    int c = 0;
    while (!rc && c < a.n && c < b.n && a.id[c] == b.id[c]) c++;
    memset(out, 0, sizeof *out);
    out->index = idx;
    out->n_tokens = c;
    for (int t = 0; t < a.n && !a.gen[t]; t++) out->n_prompt_tokens++;
    out->first_divergence = c < MS_MAX(a.n, b.n) ? c : -1;
    out->kl_mean = self ? 0 : NAN;
    out->kl_max = self ? 0 : NAN;
    out->top1_agree = self ? c : 0;
    for (int t = 1; t < c; t++)
        if (!isnan(a.lp[t]) && !isnan(b.lp[t])) {
            out->nll_baseline -= a.lp[t];
            out->nll_run -= b.lp[t];
            out->n_scored++;
        }
    if (!rc) rc = shift_from_traces(db, ib, ir, pb, pr, c, lay, err);
    char *ta = NULL, *tb = NULL;
    int32_t *ida = NULL, *idb = NULL;
    if (!rc && (generated(&a, &ta, &ida, &out->n_tokens_baseline) || generated(&b, &tb, &idb, &out->n_tokens_run)))
        rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    out->text_baseline = ta;
    out->text_run = tb;
    out->tokens_baseline = ida;
    out->tokens_run = idb;
    toks_free(&a);
    toks_free(&b);
    return rc;
}

static int rows_from_traces(MsTraceDb *db, const MsTraceRunInfo *ib, const MsTraceRunInfo *ir, MsCompareRows *out,
                            MsError *err)
{
    memset(out, 0, sizeof *out);
    out->run_id = ir->run_id;
    out->baseline_run_id = ib->run_id;
    int n_slot = ib->model.n_moe_layers;
    int cap = (int)MS_MAX(ib->n_prompts, 1);
    out->prompts = calloc((size_t)cap, sizeof *out->prompts);
    out->prompt_layers = calloc((size_t)cap * (size_t)MS_MAX(n_slot, 1), sizeof *out->prompt_layers);
    out->layers = calloc((size_t)MS_MAX(n_slot, 1), sizeof *out->layers);
    if (!out->prompts || !out->prompt_layers || !out->layers) return ms_error_set(err, MS_ENOMEM, "out of memory");
    out->n_layers = n_slot;
    MsTraceCursor *c = ms_trace_prompts(db, ib->run_id, err);
    if (!c) return err ? err->code : MS_EDB;
    MsTracePrompt p;
    int rc;
    while ((rc = ms_trace_prompts_next(c, &p, err)) == 1 && out->n_prompts < cap) {
        MsTracePromptInfo q;
        rc = ms_trace_prompt_get(db, ir->run_id, p.index, &q, err);
        if (rc == MS_ENOTFOUND) continue;   /* not (yet) in the other run */
        if (rc < 0) break;
        bool same = q.text_len == p.text_len && !memcmp(q.text, p.text, p.text_len);
        int64_t qid = q.prompt_id;
        ms_trace_prompt_info_clear(&q);
        if (!same) {
            rc = ms_error_set(err, MS_EINVAL, "runs %lld and %lld are of different prompt sets (prompt %d differs)",
                              (long long)ib->run_id, (long long)ir->run_id, p.index);
            break;
        }
        MsCompareLayer *lay = out->prompt_layers + (size_t)out->n_prompts * n_slot;
        rc = prompt_from_traces(db, ib, ir, p.index, p.prompt_id, qid, ib->run_id == ir->run_id,
                                &out->prompts[out->n_prompts], lay, err);
        out->n_prompts++;
        if (rc < 0) break;
        for (int s = 0; s < n_slot; s++) {
            out->layers[s].layer = lay[s].layer;
            out->layers[s].n_pos += lay[s].n_pos;
            out->layers[s].n_changed += lay[s].n_changed;
            out->layers[s].jaccard_sum += lay[s].jaccard_sum;
        }
    }
    ms_trace_cursor_free(c);
    if (rc >= 0 && out->n_prompts == 0)
        rc = ms_error_set(err, MS_ENOTFOUND, "runs %lld and %lld have no prompt in common", (long long)ib->run_id,
                          (long long)ir->run_id);
    return rc < 0 ? rc : 0;
}

/* ----------------------------------------------------------------- report */

static void aggregate(MsCompareReport *r)
{
    const MsCompareRows *w = &r->rows;
    double kl = 0, nll_b = 0, nll_r = 0, div = 0;
    int64_t agree = 0, scored = 0;
    r->kl_max = 0;
    r->n_prompts = w->n_prompts;
    for (int i = 0; i < w->n_prompts; i++) {
        const MsComparePrompt *p = &w->prompts[i];
        r->n_positions += p->n_tokens;
        if (p->n_tokens > 0) kl += p->kl_mean * p->n_tokens;
        if (p->kl_max > r->kl_max || isnan(p->kl_max)) r->kl_max = p->kl_max;
        agree += p->top1_agree;
        nll_b += p->nll_baseline;
        nll_r += p->nll_run;
        scored += p->n_scored;
        if (p->first_divergence >= 0) {
            div += p->first_divergence;
            r->n_diverged++;
        }
    }
    double n = (double)r->n_positions;
    r->kl_mean = r->has_distributions && n > 0 ? kl / n : NAN;
    if (!r->has_distributions) r->kl_max = NAN;
    r->top1_agreement = r->has_distributions && n > 0 ? (double)agree / n : NAN;
    r->ppl_baseline = scored ? exp(nll_b / (double)scored) : NAN;
    r->ppl_run = scored ? exp(nll_r / (double)scored) : NAN;
    r->dlogprob_mean = scored ? (nll_b - nll_r) / (double)scored : NAN;
    r->first_divergence_mean = r->n_diverged ? div / r->n_diverged : NAN;
}

int ms_compare_report(MsTraceDb *db, int64_t baseline_run, int64_t run, MsCompareReport *out, MsError *err)
{
    memset(out, 0, sizeof *out);
    out->baseline_run = baseline_run;
    out->run = run;
    MsTraceRunInfo ib, ir;
    int rc = ms_trace_run_info(db, baseline_run, &ib, err);
    if (rc < 0) return rc;
    if ((rc = ms_trace_run_info(db, run, &ir, err)) < 0) {
        ms_trace_run_info_clear(&ib);
        return rc;
    }
    if (ib.model_id != ir.model_id) {
        rc = ms_error_set(err, MS_EINVAL, "runs %lld and %lld are of different models (%s, %s)", (long long)baseline_run,
                          (long long)run, ib.model.file_name, ir.model.file_name);
    } else {
        rc = ms_trace_compare_rows(db, run, baseline_run, &out->rows, err);
        if (rc == 0) {
            out->has_distributions = true;
        } else if (rc == MS_ENOTFOUND) {
            rc = rows_from_traces(db, &ib, &ir, &out->rows, err);
            out->has_distributions = baseline_run == run;
        }
    }
    ms_trace_run_info_clear(&ib);
    ms_trace_run_info_clear(&ir);
    if (rc < 0) {
        ms_compare_report_clear(out);
        return rc;
    }
    aggregate(out);
    return 0;
}

/* -------------------------------------------------------------- word diff */

typedef struct {
    const char *p;
    size_t n;
} Word;

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* words with their trailing whitespace (leading whitespace is a word) */
static int split_words(const char *s, Word **out)
{
    size_t len = strlen(s), cap = 16;
    int n = 0;
    Word *w = malloc(cap * sizeof *w);
    for (size_t i = 0; w && i < len;) {
        size_t j = i;
        while (j < len && !is_space(s[j])) j++;
        while (j < len && is_space(s[j])) j++;
        if ((size_t)n == cap) {
            Word *nw = realloc(w, (cap *= 2) * sizeof *nw);
            if (!nw) { free(w); return -1; }
            w = nw;
        }
        w[n++] = (Word){ s + i, j - i };
        i = j;
    }
    *out = w;
    return w ? n : -1;
}

static bool word_eq(Word a, Word b)
{
    /* compare without the trailing whitespace */
    while (a.n && is_space(a.p[a.n - 1])) a.n--;
    while (b.n && is_space(b.p[b.n - 1])) b.n--;
    return a.n == b.n && !memcmp(a.p, b.p, a.n);
}

int ms_word_diff(const char *a, const char *b, MsDiffPiece **out, int *n_out)
{
    *out = NULL;
    *n_out = 0;
    Word *wa = NULL, *wb = NULL;
    int na = split_words(a ? a : "", &wa), nb = split_words(b ? b : "", &wb);
    MsDiffPiece *d = na >= 0 && nb >= 0 ? malloc((size_t)(na + nb + 1) * sizeof *d) : NULL;
    if (!d) {
        free(wa);
        free(wb);
        return MS_ENOMEM;
    }
    /* common prefix and suffix, then an LCS table over the middle (a plain
     * delete + insert when the middle is too large for one) */
    int pre = 0, suf = 0, nd = 0;
    while (pre < na && pre < nb && word_eq(wa[pre], wb[pre])) pre++;
    while (suf < na - pre && suf < nb - pre && word_eq(wa[na - 1 - suf], wb[nb - 1 - suf])) suf++;
    for (int i = 0; i < pre; i++) d[nd++] = (MsDiffPiece){ MS_DIFF_SAME, wb[i].p, wb[i].n };
    int ma = na - pre - suf, mb = nb - pre - suf;
    int *L = (int64_t)(ma + 1) * (mb + 1) <= 4000000 ? calloc((size_t)(ma + 1) * (size_t)(mb + 1), sizeof *L) : NULL;
    if (L) {
        for (int i = ma - 1; i >= 0; i--)
            for (int j = mb - 1; j >= 0; j--)
                L[i * (mb + 1) + j] = word_eq(wa[pre + i], wb[pre + j]) ? L[(i + 1) * (mb + 1) + j + 1] + 1
                                      : MS_MAX(L[(i + 1) * (mb + 1) + j], L[i * (mb + 1) + j + 1]);
        int i = 0, j = 0;
        while (i < ma || j < mb) {
            if (i < ma && j < mb && word_eq(wa[pre + i], wb[pre + j])) {
                d[nd++] = (MsDiffPiece){ MS_DIFF_SAME, wb[pre + j].p, wb[pre + j].n };
                i++, j++;
            } else if (i < ma && (j == mb || L[(i + 1) * (mb + 1) + j] >= L[i * (mb + 1) + j + 1])) {
                d[nd++] = (MsDiffPiece){ MS_DIFF_DEL, wa[pre + i].p, wa[pre + i].n };   /* deletions first, as git */
                i++;
            } else {
                d[nd++] = (MsDiffPiece){ MS_DIFF_INS, wb[pre + j].p, wb[pre + j].n };
                j++;
            }
        }
        free(L);
    } else {
        for (int i = 0; i < ma; i++) d[nd++] = (MsDiffPiece){ MS_DIFF_DEL, wa[pre + i].p, wa[pre + i].n };
        for (int j = 0; j < mb; j++) d[nd++] = (MsDiffPiece){ MS_DIFF_INS, wb[pre + j].p, wb[pre + j].n };
    }
    for (int i = nb - suf; i < nb; i++) d[nd++] = (MsDiffPiece){ MS_DIFF_SAME, wb[i].p, wb[i].n };
    /* one piece per run of words with the same op (they are adjacent in their text) */
    int m = 0;
    for (int i = 0; i < nd; i++) {
        if (m > 0 && d[m - 1].op == d[i].op && d[m - 1].text + d[m - 1].len == d[i].text) d[m - 1].len += d[i].len;
        else d[m++] = d[i];
    }
    nd = m;
    free(wa);
    free(wb);
    *out = d;
    *n_out = nd;
    return 0;
}
