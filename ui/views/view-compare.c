/* view-compare.c — `compare`: what an intervention changed on one prompt of
 * an experiment (docs/experiments.md).  Three panels:
 *   1. per-position KL(baseline ‖ intervened) of the teacher-forced sequence
 *      (prompt, then the baseline's continuation) as a viridis strip with the
 *      token pieces written in the cells where they fit, and below it the
 *      positions whose greedy choices differ;
 *   2. the two continuations (the baseline's and the intervened model's own)
 *      as word strips, words only in one of them marked (ms_word_diff, the
 *      diff `moescope compare` prints);
 *   3. the routing shift per MoE layer: share of positions whose selected
 *      expert set changed and the mean Jaccard overlap, for this prompt, with
 *      the value over all prompts of the pair marked on each bar.
 * Data: ms_compare_report (jobs/) and ms_trace_compare_positions, token
 * pieces from the baseline's trace.  --run R is the intervened run (default
 * the newest one), --baseline its parent by default. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs.h"
#include "view-c-common.h"

typedef struct {
    int64_t run, baseline;
    int prompt, n_prompts;
    bool has_dist;
    /* the strip */
    int n_pos, n_prompt_tokens, first_div;
    float *kl;                  /* n_pos, NaN unknown */
    int32_t *differ;            /* n_pos: 1 greedy choices differ, 0 agree, −1 unknown */
    float *lp_b, *lp_r;
    int32_t *top_b, *top_r, *tok;
    char *pieces;               /* token pieces, concatenated */
    size_t *off;                /* n_pos + 1 */
    MsPlotColorScale scale;
    bool kl_missing;
    /* greedy choices' pieces: sorted ids */
    int n_dict;
    int32_t *dict_id;
    size_t *dict_off;           /* n_dict + 1 into dict_buf */
    char *dict_buf;
    /* continuations */
    char *text_b, *text_r;
    MsDiffPiece *diff;
    int n_diff;
    /* routing shift */
    int n_layers;
    int *layer;
    double *changed, *jaccard, *changed_all, *jaccard_all;
    /* summary */
    double kl_mean, kl_max, agree, ppl_b, ppl_r;
    char title[512], summary[512];
} CmpModel;

static void cmp_free(void *p)
{
    CmpModel *m = p;
    if (!m) return;
    free(m->kl);
    free(m->differ);
    free(m->lp_b);
    free(m->lp_r);
    free(m->top_b);
    free(m->top_r);
    free(m->tok);
    free(m->pieces);
    free(m->off);
    free(m->dict_id);
    free(m->dict_off);
    free(m->dict_buf);
    free(m->text_b);
    free(m->text_r);
    free(m->diff);
    free(m->layer);
    free(m->changed);
    free(m->jaccard);
    free(m->changed_all);
    free(m->jaccard_all);
    free(m);
}

/* The newest run of kind "intervened". */
static int newest_intervened(MsTraceDb *db, int64_t *run, MsError *err)
{
    int64_t *ids = NULL;
    int n = 0, rc = ms_trace_runs(db, &ids, &n, err);
    *run = 0;
    for (int i = n - 1; rc >= 0 && i >= 0 && !*run; i--) {
        MsTraceRunInfo ri;
        if ((rc = ms_trace_run_info(db, ids[i], &ri, err)) < 0) break;
        if (ri.kind && !strcmp(ri.kind, "intervened")) *run = ri.run_id;
        ms_trace_run_info_clear(&ri);
    }
    free(ids);
    if (rc < 0) return rc;
    if (!*run)
        return ms_error_set(err, MS_ENOTFOUND,
                            "%s: no intervened run (make an experiment: `moescope experiment MODEL --prompts FILE --db "
                            "%s --silence L:E`), or give --run and --baseline", ms_trace_path(db), ms_trace_path(db));
    return 0;
}

static int cmp_id(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Pieces of the greedy choices that the baseline's trace holds anywhere
 * (the sequence itself first, then the run's other tokens when the run is
 * small enough to scan quickly). */
static int build_dict(CmpModel *m, MsTraceDb *db, int64_t run_tokens, MsError *err)
{
    int n = 0;
    int32_t *ids = malloc((size_t)(2 * m->n_pos + 1) * sizeof *ids);
    if (!ids) return ms_error_set(err, MS_ENOMEM, "out of memory");
    for (int p = 0; p < m->n_pos; p++) {
        if (m->top_b[p] >= 0) ids[n++] = m->top_b[p];
        if (m->top_r[p] >= 0) ids[n++] = m->top_r[p];
    }
    qsort(ids, (size_t)n, sizeof *ids, cmp_id);
    int u = 0;
    for (int i = 0; i < n; i++)
        if (u == 0 || ids[u - 1] != ids[i]) ids[u++] = ids[i];
    m->n_dict = u;
    m->dict_id = ids;
    size_t *len = calloc((size_t)u + 1, sizeof *len);
    char **tmp = calloc((size_t)u + 1, sizeof *tmp);
    int rc = len && tmp ? 0 : ms_error_set(err, MS_ENOMEM, "out of memory"), found = 0;
    /* this sequence */
    for (int p = 0; !rc && p < m->n_pos; p++) {
        int32_t *hit = bsearch(&m->tok[p], ids, (size_t)u, sizeof *ids, cmp_id);
        if (!hit || tmp[hit - ids]) continue;
        size_t k = (size_t)(hit - ids), l = m->off[p + 1] - m->off[p];
        if (!(tmp[k] = malloc(l + 1))) { rc = ms_error_set(err, MS_ENOMEM, "out of memory"); break; }
        memcpy(tmp[k], m->pieces + m->off[p], l);
        len[k] = l;
        found++;
    }
    /* the rest of the baseline's run, if it is small */
    if (!rc && found < u && run_tokens <= 300000) {
        MsTraceCursor *c = ms_trace_tokens(db, m->baseline, 0, err);
        if (!c) rc = err && err->code ? err->code : MS_EDB;
        MsTraceToken tk;
        int r;
        while (!rc && found < u && (r = ms_trace_tokens_next(c, &tk, err)) == 1) {
            int32_t *hit = bsearch(&tk.token_id, ids, (size_t)u, sizeof *ids, cmp_id);
            if (!hit || tmp[hit - ids]) continue;
            size_t k = (size_t)(hit - ids);
            if (!(tmp[k] = malloc(tk.piece_len + 1))) { rc = ms_error_set(err, MS_ENOMEM, "out of memory"); break; }
            memcpy(tmp[k], tk.piece, tk.piece_len);
            len[k] = tk.piece_len;
            found++;
        }
        if (!rc && r < 0) rc = r;
        ms_trace_cursor_free(c);
    }
    size_t total = 0;
    for (int i = 0; !rc && i < u; i++) total += tmp[i] ? len[i] : 0;
    if (!rc) {
        m->dict_off = malloc(((size_t)u + 1) * sizeof *m->dict_off);
        m->dict_buf = malloc(total + 1);
        if (!m->dict_off || !m->dict_buf) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    size_t o = 0;
    for (int i = 0; !rc && i < u; i++) {
        m->dict_off[i] = o;
        if (tmp[i]) memcpy(m->dict_buf + o, tmp[i], len[i]), o += len[i];
        else m->dict_off[i] = (size_t)-1;   /* unknown piece */
    }
    if (!rc) m->dict_off[u] = o;
    for (int i = 0; tmp && i < u; i++) free(tmp[i]);
    free(tmp);
    free(len);
    return rc;
}

static int read_tokens(CmpModel *m, MsTraceDb *db, int64_t prompt_id, MsError *err)
{
    MsTraceCursor *c = ms_trace_tokens(db, m->baseline, prompt_id, err);
    if (!c) return err && err->code ? err->code : MS_EDB;
    size_t cap = 256, used = 0;
    m->pieces = malloc(cap);
    m->off = calloc((size_t)m->n_pos + 1, sizeof *m->off);
    m->tok = malloc((size_t)(m->n_pos ? m->n_pos : 1) * sizeof *m->tok);
    int rc = m->pieces && m->off && m->tok ? 0 : ms_error_set(err, MS_ENOMEM, "out of memory"), r = 0, p = 0;
    MsTraceToken tk;
    while (!rc && p < m->n_pos && (r = ms_trace_tokens_next(c, &tk, err)) == 1) {
        if (tk.pos != p) continue;
        if (used + tk.piece_len + 1 > cap) {
            while (used + tk.piece_len + 1 > cap) cap *= 2;
            char *np = realloc(m->pieces, cap);
            if (!np) { rc = ms_error_set(err, MS_ENOMEM, "out of memory"); break; }
            m->pieces = np;
        }
        memcpy(m->pieces + used, tk.piece, tk.piece_len);
        used += tk.piece_len;
        m->tok[p] = tk.token_id;
        m->off[++p] = used;
    }
    if (!rc && r < 0) rc = r;
    ms_trace_cursor_free(c);
    for (; !rc && p < m->n_pos; p++) {   /* a sequence longer than its trace: no piece */
        m->tok[p] = -1;
        m->off[p + 1] = used;
    }
    return rc;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

static int cmp_prepare(MsTraceDb *db, const MsViewParams *p, void **out, MsError *err)
{
    *out = NULL;
    int64_t run = p->run, base = p->baseline;
    int rc = 0;
    if (!run && (rc = newest_intervened(db, &run, err)) < 0) return rc;
    MsTraceRunInfo ri;
    if ((rc = vc_run_info(db, run, &ri, err)) < 0) return rc;
    if (!base) base = ri.parent_run_id;
    char ivtext[200];
    snprintf(ivtext, sizeof ivtext, "%s", ri.interventions && *ri.interventions ? ri.interventions : "no intervention");
    ms_trace_run_info_clear(&ri);
    if (!base)
        return ms_error_set(err, MS_ENOTFOUND, "%s: run %lld has no parent run to compare with; give --baseline R, "
                            "or store a pair (moescope experiment; in the workbench Interventions, Run on all prompts)",
                            ms_trace_path(db), (long long)run);
    MsTraceRunInfo bi;
    if ((rc = vc_run_info(db, base, &bi, err)) < 0) return rc;
    int64_t base_tokens = bi.n_tokens;
    ms_trace_run_info_clear(&bi);

    MsCompareReport rep;
    if ((rc = ms_compare_report(db, base, run, &rep, err)) < 0) return rc;
    const MsCompareRows *w = &rep.rows;
    int pi = -1;
    for (int i = 0; i < w->n_prompts; i++)
        if (w->prompts[i].index == p->prompt) pi = i;
    if (pi < 0) {
        rc = ms_error_set(err, MS_ENOTFOUND, "%s: prompt %d is not in the comparison of run %lld with baseline %lld "
                          "(%d prompts, indices %d to %d)", ms_trace_path(db), p->prompt, (long long)run,
                          (long long)base, w->n_prompts, w->n_prompts ? w->prompts[0].index : 0,
                          w->n_prompts ? w->prompts[w->n_prompts - 1].index : 0);
        ms_compare_report_clear(&rep);
        return rc;
    }
    const MsComparePrompt *cp = &w->prompts[pi];
    CmpModel *m = calloc(1, sizeof *m);
    if (!m) {
        ms_compare_report_clear(&rep);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    m->run = run;
    m->baseline = base;
    m->prompt = p->prompt;
    m->n_prompts = w->n_prompts;
    m->has_dist = rep.has_distributions;
    m->n_prompt_tokens = cp->n_prompt_tokens;
    m->first_div = cp->first_divergence;

    /* positions */
    MsComparePos *pos = NULL;
    int n_rows = 0;
    if (m->has_dist && run != base) rc = ms_trace_compare_positions(db, run, p->prompt, &pos, &n_rows, err);
    m->n_pos = MS_MAX(cp->n_tokens, n_rows);
    size_t np = (size_t)(m->n_pos ? m->n_pos : 1);
    m->kl = malloc(np * sizeof *m->kl);
    m->differ = malloc(np * sizeof *m->differ);
    m->lp_b = malloc(np * sizeof *m->lp_b);
    m->lp_r = malloc(np * sizeof *m->lp_r);
    m->top_b = malloc(np * sizeof *m->top_b);
    m->top_r = malloc(np * sizeof *m->top_r);
    if (!rc && (!m->kl || !m->differ || !m->lp_b || !m->lp_r || !m->top_b || !m->top_r))
        rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < m->n_pos; i++) {
        bool self = m->has_dist && run == base;   /* a run against itself: nothing differs */
        m->kl[i] = self ? 0.0f : NAN;
        m->differ[i] = self ? 0 : -1;
        m->lp_b[i] = m->lp_r[i] = NAN;
        m->top_b[i] = m->top_r[i] = -1;
    }
    for (int i = 0; !rc && i < n_rows; i++) {
        int q = pos[i].pos;
        if (q < 0 || q >= m->n_pos) continue;
        m->kl[q] = pos[i].kl;
        m->lp_b[q] = pos[i].lp_baseline;
        m->lp_r[q] = pos[i].lp_run;
        m->top_b[q] = pos[i].top1_baseline;
        m->top_r[q] = pos[i].top1_run;
        m->differ[q] = pos[i].top1_baseline != pos[i].top1_run;
    }
    free(pos);
    if (!rc) {
        int64_t pid = ms_trace_prompt_lookup(db, base, p->prompt, err);
        if (pid < 0) rc = (int)pid;
        else if (pid == 0)
            rc = ms_error_set(err, MS_ENOTFOUND, "%s: run %lld has no prompt %d", ms_trace_path(db), (long long)base,
                              p->prompt);
        else rc = read_tokens(m, db, pid, err);
    }
    if (!rc) {
        /* lp_b / lp_r from the traces where the comparison has no rows */
        double hi = 0;
        for (int i = 0; i < m->n_pos; i++) {
            if (isnan(m->kl[i])) m->kl_missing = true;
            else hi = fmax(hi, m->kl[i]);
        }
        m->scale = (MsPlotColorScale){ MS_CMAP_VIRIDIS, 0, hi > 0 ? hi : 1 };
        rc = build_dict(m, db, base_tokens, err);
    }
    /* continuations */
    if (!rc) {
        m->text_b = dup_or_empty(cp->text_baseline);
        m->text_r = dup_or_empty(cp->text_run);
        if (!m->text_b || !m->text_r || ms_word_diff(m->text_b, m->text_r, &m->diff, &m->n_diff) < 0)
            rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    /* routing shift */
    if (!rc) {
        int nl = w->n_layers;
        size_t n = (size_t)(nl ? nl : 1);
        m->layer = malloc(n * sizeof *m->layer);
        m->changed = malloc(n * sizeof *m->changed);
        m->jaccard = malloc(n * sizeof *m->jaccard);
        m->changed_all = malloc(n * sizeof *m->changed_all);
        m->jaccard_all = malloc(n * sizeof *m->jaccard_all);
        if (!m->layer || !m->changed || !m->jaccard || !m->changed_all || !m->jaccard_all)
            rc = ms_error_set(err, MS_ENOMEM, "out of memory");
        for (int l = 0; !rc && l < nl; l++) {
            const MsCompareLayer *a = &w->prompt_layers[(size_t)pi * nl + l], *t = &w->layers[l];
            int lo = p->layer_lo >= 0 ? p->layer_lo : p->layer, hi = p->layer_lo >= 0 ? p->layer_hi : p->layer;
            if (lo >= 0 && (t->layer < lo || t->layer > hi)) continue;
            int k = m->n_layers++;
            m->layer[k] = t->layer;
            m->changed[k] = a->n_pos ? (double)a->n_changed / a->n_pos : NAN;
            m->jaccard[k] = a->n_pos ? a->jaccard_sum / a->n_pos : NAN;
            m->changed_all[k] = t->n_pos ? (double)t->n_changed / t->n_pos : NAN;
            m->jaccard_all[k] = t->n_pos ? t->jaccard_sum / t->n_pos : NAN;
        }
        if (!rc && m->n_layers == 0)
            rc = ms_error_set(err, MS_ENOTFOUND, "%s: the comparison of run %lld has no MoE layer%s", ms_trace_path(db),
                              (long long)run, p->layer_lo >= 0 || p->layer >= 0 ? " in the blocks asked for" : "");
    }
    if (!rc) {
        m->kl_mean = cp->kl_mean;
        m->kl_max = cp->kl_max;
        m->agree = m->has_dist && cp->n_tokens ? (double)cp->top1_agree / cp->n_tokens : NAN;
        m->ppl_b = cp->n_scored ? exp(cp->nll_baseline / cp->n_scored) : NAN;
        m->ppl_r = cp->n_scored ? exp(cp->nll_run / cp->n_scored) : NAN;
        snprintf(m->title, sizeof m->title, "Baseline vs intervened: run %lld (%s) against run %lld, prompt %d",
                 (long long)run, ivtext, (long long)base, p->prompt);
        char div[64];
        if (m->first_div >= 0) snprintf(div, sizeof div, "first divergent greedy token at position %d", m->first_div);
        else snprintf(div, sizeof div, "no divergence");
        if (m->has_dist)
            snprintf(m->summary, sizeof m->summary,
                     "KL mean %.4g, max %.4g nats \xC2\xB7 greedy choices agree at %.1f %% of %d positions \xC2\xB7 %s "
                     "\xC2\xB7 perplexity %.3g \xE2\x86\x92 %.3g", m->kl_mean, m->kl_max, 100 * m->agree, m->n_pos, div,
                     m->ppl_b, m->ppl_r);
        else
            snprintf(m->summary, sizeof m->summary,
                     "runs not made together by `moescope experiment`: no KL or greedy choices (common prefix of %d "
                     "tokens) \xC2\xB7 %s \xC2\xB7 perplexity %.3g \xE2\x86\x92 %.3g", m->n_pos, div, m->ppl_b, m->ppl_r);
    }
    ms_compare_report_clear(&rep);
    if (rc < 0) {
        cmp_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* ------------------------------------------------------------ geometry */

static int flow_strip(const CmpModel *m, int k, MsPlotText *t, const MsPlotRect *r, double line_h, cairo_t *cr,
                      double hx, double hy, int *lines_used);

/* The strip's y axis has 4 items: the KL row spans items 0-2, the greedy
 * flags item 3 (a thinner row under it). */
enum { ROW_KL = 0, ROW_TOP1 = 3, STRIP_ITEMS = 4 };

typedef struct {
    double title_h, summary_y, summary_lh;
    char summary[2][512];            /* the summary line, split in two at a " · " when it does not fit */
    MsPlotRect pa, pb, pc;           /* the three panels (figure coordinates) */
    /* panel A: the strip */
    MsPlotFrame fa;
    MsPlotColorbar cb;
    MsPlotLegendItem la[1];
    MsPlotLegend lga;
    MsPlotGeom ga;
    MsPlotGridMap ma;
    /* panel B: continuations (local to pb) */
    double b_head_h, b_label_w, b_line_h;
    MsPlotRect b_strip[2];
    /* panel C: routing shift */
    MsPlotFrame fc;
    MsPlotLegendItem lc[3];
    MsPlotLegend lgc;
    MsPlotGeom gc;
} CmpLayout;

static const char *strip_row_label(void *user, int64_t i, char *buf, size_t size)
{
    (void)user;
    (void)buf;
    (void)size;
    return i == 1 ? "KL" : i == ROW_TOP1 ? "top-1" : "";
}

static const char *layer_label(void *user, int64_t i, char *buf, size_t size)
{
    const CmpModel *m = user;
    snprintf(buf, size, "%d", i >= 0 && i < m->n_layers ? m->layer[i] : -1);
    return buf;
}

/* the workbench's Apply marks words with the same tints (ui/workbench/wb-text.c) */
static const MsRgb TINT_B = { 0.74, 0.83, 0.95 }, TINT_R = { 0.98, 0.78, 0.74 };
static const MsRgb BAR_CHANGED = { 0.80, 0.28, 0.22 }, BAR_JACCARD = { 0.27, 0.47, 0.75 };

static int cmp_layout(const CmpModel *m, const MsViewState *s, double w, double h, CmpLayout *L, MsError *err)
{
    memset(L, 0, sizeof *L);
    MsPlotText *t = ms_plot_text_new(&s->style);
    if (!t) return ms_error_set(err, MS_ENOMEM, "out of memory");
    double pad = ms_plot_text_pad(t);
    L->title_h = vc_title_band(NULL, &s->style, s->title ? s->title : m->title, w);
    MsPlotTextSize sz;
    snprintf(L->summary[0], sizeof L->summary[0], "%s", m->summary);
    ms_plot_text_measure(t, MS_PLOT_ROLE_NOTE, m->summary, 0, &sz);
    L->summary_lh = sz.height;
    int n_lines = 1;
    if (sz.width > w - 2 * pad) {
        /* two lines, broken at the separator nearest the middle (still ellipsized if a half is too wide) */
        static const char sep[] = " \xC2\xB7 ";
        size_t len = strlen(m->summary), best = 0;
        for (const char *q = strstr(m->summary, sep); q; q = strstr(q + 1, sep)) {
            size_t at = (size_t)(q - m->summary);
            if (!best || fabs((double)at - len / 2.0) < fabs((double)best - len / 2.0)) best = at;
        }
        if (best) {
            snprintf(L->summary[0], sizeof L->summary[0], "%.*s", (int)best, m->summary);
            snprintf(L->summary[1], sizeof L->summary[1], "%s", m->summary + best + strlen(sep));
            n_lines = 2;
        }
    }
    L->summary_y = L->title_h + pad * 0.4;
    double top = ceil(L->summary_y + n_lines * L->summary_lh + pad * 0.2);
    ms_plot_token_measure(t, "Ag", 2, 0, 0, &sz);
    L->b_line_h = ceil(sz.height + pad * 0.4);
    ms_plot_text_free(t);
    double rest = h - top;
    if (rest < 150) return ms_error_set(err, MS_EINVAL, "figure %gx%g is too small for the compare view", w, h);

    /* A: laid out once at a nominal height for its left edge, which the strips of B share */
    L->cb = (MsPlotColorbar){ .scale = m->scale, .title = "KL", .unit = "nats", .show_missing = m->kl_missing };
    /* marked where the choice is made: the token it picks is one position later */
    L->la[0] = (MsPlotLegendItem){ "greedy next token differs", VC_HIGHLIGHT };
    L->lga = (MsPlotLegend){ NULL, L->la, 1 };
    double x0 = 0, x1 = MS_MAX(m->n_pos, 1);
    vc_window(&x0, &x1, s->x0, s->x1, 1);
    L->fa = (MsPlotFrame){
        .x = { .kind = MS_PLOT_AXIS_CATEGORY, .title = "Token position (prompt | continuation)", .lo = x0, .hi = x1,
               .count = MS_MAX(m->n_pos, 1) },
        .y = { .kind = MS_PLOT_AXIS_CATEGORY, .lo = 0, .hi = STRIP_ITEMS, .count = STRIP_ITEMS,
               .label = strip_row_label },
        .colorbar = &L->cb,
        .legend = &L->lga,
        .style = &s->style,
    };
    int rc = ms_plot_layout(&L->fa, w, round(rest * 0.4), &L->ga, err);
    if (rc < 0) return rc;

    /* B: a heading line, then the two strips (1 to 4 lines each) with their labels at the left */
    t = ms_plot_text_new(&s->style);
    if (!t) return ms_error_set(err, MS_ENOMEM, "out of memory");
    ms_plot_text_measure(t, MS_PLOT_ROLE_LABEL, "Continuations", 0, &sz);
    L->b_head_h = ceil(sz.height + pad * 0.6);
    double lw1, lw2;
    ms_plot_text_measure(t, MS_PLOT_ROLE_TICK, "baseline", 0, &sz);
    lw1 = sz.width;
    ms_plot_text_measure(t, MS_PLOT_ROLE_TICK, "intervened", 0, &sz);
    lw2 = sz.width;
    L->b_label_w = ceil(fmax(lw1, lw2) + pad * 1.5);
    double sx = fmax(L->ga.plot.x, L->b_label_w + pad), sw = fmax(10, w - sx - pad), hb = L->b_head_h;
    for (int k = 0; k < 2; k++) {
        MsPlotRect probe = { sx, 0, sw, 1e6 };
        int lines = 1;
        flow_strip(m, k, t, &probe, L->b_line_h, NULL, -1e9, -1e9, &lines);
        lines = lines < 1 ? 1 : lines > 4 ? 4 : lines;
        L->b_strip[k] = (MsPlotRect){ sx, hb, sw, lines * L->b_line_h };
        hb += lines * L->b_line_h + pad * 0.4;
    }
    ms_plot_text_free(t);
    hb = ceil(hb + pad * 0.6);
    if (rest - hb < 150) return ms_error_set(err, MS_EINVAL, "figure %gx%g is too small for the compare view", w, h);
    double ha = round((rest - hb) * 0.45);
    L->pa = (MsPlotRect){ 0, top, w, ha };
    L->pb = (MsPlotRect){ 0, top + ha, w, hb };
    L->pc = (MsPlotRect){ 0, top + ha + hb, w, h - (top + ha + hb) };
    if ((rc = ms_plot_layout(&L->fa, L->pa.w, L->pa.h, &L->ga, err)) < 0) return rc;
    L->ma = ms_plot_grid_map(&L->ga, STRIP_ITEMS, m->n_pos);

    /* C */
    L->lc[0] = (MsPlotLegendItem){ "set changed", BAR_CHANGED };
    L->lc[1] = (MsPlotLegendItem){ "Jaccard overlap", BAR_JACCARD };
    L->lc[2] = (MsPlotLegendItem){ "all prompts", VC_INK };
    L->lgc = (MsPlotLegend){ "Routing shift", L->lc, 3 };
    L->fc = (MsPlotFrame){
        .x = { .kind = MS_PLOT_AXIS_CATEGORY, .title = "Layer (block)", .lo = 0, .hi = m->n_layers, .count = m->n_layers,
               .label = layer_label, .label_user = (void *)m },
        .y = { .kind = MS_PLOT_AXIS_LINEAR, .title = "Share / overlap", .lo = 0, .hi = 1, .grid = true },
        .legend = &L->lgc,
        .style = &s->style,
    };
    return ms_plot_layout(&L->fc, L->pc.w, L->pc.h, &L->gc, err);
}

/* ------------------------------------------------------- word strips */

static bool is_sp(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Lay out strip k (0 baseline, 1 intervened) word by word in rect r:
 * draws when cr is non-NULL; returns the diff piece under (hx, hy) (−1). */
static int flow_strip(const CmpModel *m, int k, MsPlotText *t, const MsPlotRect *r, double line_h, cairo_t *cr,
                      double hx, double hy, int *lines_used)
{
    double pad = ms_plot_text_pad(t), wp = pad * 0.15;
    int max_lines = (int)floor(r->h / line_h);
    if (max_lines < 1) max_lines = 1;
    MsPlotTextSize ell;
    ms_plot_text_measure(t, MS_PLOT_ROLE_TOKEN, "\xE2\x80\xA6", 0, &ell);
    double x = 0;
    int line = 0, hit = -1;
    bool any = false;
    for (int i = 0; i < m->n_diff; i++) {
        const MsDiffPiece *d = &m->diff[i];
        if (d->op == (k == 0 ? MS_DIFF_INS : MS_DIFF_DEL)) continue;
        bool mark = d->op != MS_DIFF_SAME;
        for (size_t a = 0; a < d->len;) {
            size_t b = a;
            while (b < d->len && !is_sp(d->text[b])) b++;
            while (b < d->len && is_sp(d->text[b])) b++;
            MsPlotTextSize sz;
            ms_plot_token_measure(t, d->text + a, b - a, 0, 0, &sz);
            double wd = sz.width + 2 * wp;
            bool last = line == max_lines - 1;
            if (x > 0 && x + wd > r->w - (last ? ell.width : 0)) {
                if (last) {
                    if (cr) {
                        cairo_set_source_rgb(cr, VC_MUTED.r, VC_MUTED.g, VC_MUTED.b);
                        ms_plot_text_draw(t, cr, MS_PLOT_ROLE_TOKEN, "\xE2\x80\xA6", 0, r->x + x, r->y + line * line_h,
                                          0, 0, 0);
                    }
                    if (lines_used) *lines_used = line + 1;
                    return hit;
                }
                x = 0;
                line++;
            }
            if (wd > r->w) wd = r->w;
            MsPlotRect box = { r->x + x, r->y + line * line_h, wd, line_h };
            if (cr) {
                if (mark) {
                    MsRgb tint = k == 0 ? TINT_B : TINT_R;
                    cairo_set_source_rgb(cr, tint.r, tint.g, tint.b);
                    cairo_rectangle(cr, box.x, box.y + 1, box.w, box.h - 2);
                    cairo_fill(cr);
                }
                ms_plot_token_draw(t, cr, d->text + a, b - a, 0, wd - 2 * wp, box.x + wp, box.y + pad * 0.2, VC_INK);
            } else if (ms_plot_rect_contains(&box, hx, hy)) {
                hit = i;
            }
            x += wd;
            any = true;
            a = b;
        }
    }
    if (!any && cr) {
        cairo_set_source_rgb(cr, VC_MUTED.r, VC_MUTED.g, VC_MUTED.b);
        ms_plot_text_draw(t, cr, MS_PLOT_ROLE_NOTE, "(no continuation)", 0, r->x, r->y + line_h / 2, 0, 0.5, 0);
    }
    if (lines_used) *lines_used = line + 1;
    return hit;
}

/* ---------------------------------------------------------------- bars */

/* Bar rectangles of layer i: changed (j = 0) and Jaccard (j = 1). */
static MsPlotRect bar_rect(const CmpLayout *L, int i, int j, double v)
{
    double xa = ms_plot_x_to_px(&L->gc, i + 0.14 + 0.36 * j), xb = ms_plot_x_to_px(&L->gc, i + 0.14 + 0.36 * (j + 1));
    double y0 = ms_plot_y_to_px(&L->gc, 0), y1 = ms_plot_y_to_px(&L->gc, isnan(v) ? 0 : fmin(fmax(v, 0), 1));
    return (MsPlotRect){ fmin(xa, xb), fmin(y0, y1), fabs(xb - xa), fabs(y1 - y0) };
}

/* ----------------------------------------------------------------- draw */

static void piece_of(const CmpModel *m, int p, const char **bytes, size_t *len)
{
    *bytes = m->pieces + m->off[p];
    *len = m->off[p + 1] - m->off[p];
}

static int cmp_draw(cairo_t *cr, double w, double h, const void *model, const MsViewState *s, MsError *err)
{
    const CmpModel *m = model;
    CmpLayout L;
    int rc = cmp_layout(m, s, w, h, &L, err);
    if (rc < 0) return rc;
    cairo_save(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_restore(cr);
    vc_title_band(cr, &s->style, s->title ? s->title : m->title, w);
    MsPlotText *t = ms_plot_text_new(&s->style);
    if (!t) return ms_error_set(err, MS_ENOMEM, "out of memory");
    double pad = ms_plot_text_pad(t);
    cairo_set_source_rgb(cr, VC_MUTED.r, VC_MUTED.g, VC_MUTED.b);
    for (int k = 0; k < 2 && L.summary[k][0]; k++)
        ms_plot_text_draw(t, cr, MS_PLOT_ROLE_NOTE, L.summary[k], w - 2 * pad, w / 2, L.summary_y + k * L.summary_lh,
                          0.5, 0, 0);

    /* A: the strip */
    cairo_save(cr);
    cairo_translate(cr, L.pa.x, L.pa.y);
    ms_plot_draw_back(cr, &L.fa, &L.ga);
    MsPlotGridMap row = L.ma;   /* one row each: KL values, then the greedy flags */
    row.rows = 1;
    row.row0 = 0;
    row.row1 = 1;
    row.rect.h = round(L.ma.rect.h * ROW_TOP1 / STRIP_ITEMS);
    MsPlotHeatmap hk = { .rows = 1, .cols = m->n_pos, .values = m->kl, .scale = m->scale, .agg = MS_PLOT_AGG_PEAK };
    if (m->n_pos > 0 && (rc = ms_plot_heatmap_draw(cr, &row, &hk, err)) < 0) goto fail;
    MsRgb pal[2] = { { 0.95, 0.95, 0.95 }, VC_HIGHLIGHT };
    row.rect.y += row.rect.h;
    row.rect.h = L.ma.rect.h - row.rect.h;
    MsPlotHeatmap hd = { .rows = 1, .cols = m->n_pos, .categories = m->differ, .palette = pal, .n_palette = 2 };
    if (m->n_pos > 0 && (rc = ms_plot_heatmap_draw(cr, &row, &hd, err)) < 0) goto fail;
    {
        /* pieces written upright in the KL cells where a line of text fits across */
        cairo_save(cr);
        cairo_rectangle(cr, L.ga.plot.x, L.ga.plot.y, L.ga.plot.w, L.ga.plot.h);
        cairo_clip(cr);
        MsPlotTextSize sz;
        ms_plot_token_measure(t, "Ag", 2, 0, 0, &sz);
        double cw = L.ma.rect.w / (L.ma.col1 - L.ma.col0), kh = round(L.ma.rect.h * ROW_TOP1 / STRIP_ITEMS);
        if (cw >= sz.height && kh >= sz.height * 1.5) {
            int64_t c0 = (int64_t)floor(L.ma.col0), c1 = (int64_t)ceil(L.ma.col1);
            for (int64_t c = MS_MAX(c0, 0); c < MS_MIN(c1, m->n_pos); c++) {
                MsPlotRect cell;
                ms_plot_grid_cell_rect(&L.ma, ROW_KL, c, &cell);
                cell.h = kh;
                const char *bytes;
                size_t len;
                piece_of(m, (int)c, &bytes, &len);
                if (!len) continue;
                MsRgb bg = isnan(m->kl[c]) ? ms_plot_cmap_missing(MS_CMAP_VIRIDIS) : ms_plot_scale_color(&m->scale, m->kl[c]);
                cairo_save(cr);
                cairo_translate(cr, cell.x + cell.w / 2 - sz.height / 2, cell.y + cell.h - pad * 0.4);
                cairo_rotate(cr, -M_PI / 2);
                ms_plot_token_draw(t, cr, bytes, len, MS_PLOT_ESC_SPACE, cell.h - pad * 0.8, 0, 0,
                                   ms_plot_contrast_text(bg));
                cairo_restore(cr);
            }
        }
        /* where the continuation starts */
        if (m->n_prompt_tokens > 0 && m->n_prompt_tokens < m->n_pos) {
            double x = round(ms_plot_x_to_px(&L.ga, m->n_prompt_tokens));
            double dash[2] = { 4, 3 };
            cairo_set_source_rgb(cr, 1, 1, 1);
            cairo_set_line_width(cr, 3);
            cairo_move_to(cr, x, L.ga.plot.y);
            cairo_line_to(cr, x, L.ga.plot.y + L.ga.plot.h);
            cairo_stroke(cr);
            cairo_set_source_rgb(cr, VC_INK.r, VC_INK.g, VC_INK.b);
            cairo_set_line_width(cr, 1.5);
            cairo_set_dash(cr, dash, 2, 0);
            cairo_move_to(cr, x, L.ga.plot.y);
            cairo_line_to(cr, x, L.ga.plot.y + L.ga.plot.h);
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
        }
        if (s->hover_col >= 0 && s->hover_col < m->n_pos) {
            MsPlotRect cell;
            if (ms_plot_grid_cell_rect(&L.ma, ROW_KL, s->hover_col, &cell)) {
                cell.h = L.ma.rect.h;
                vc_outline(cr, &cell, 2, VC_HIGHLIGHT);
            }
        }
        cairo_restore(cr);
    }
    ms_plot_draw_axes(cr, &L.fa, &L.ga);
    cairo_restore(cr);

    /* B: continuations */
    cairo_save(cr);
    cairo_translate(cr, L.pb.x, L.pb.y);
    {
        cairo_set_source_rgb(cr, VC_INK.r, VC_INK.g, VC_INK.b);
        ms_plot_text_draw(t, cr, MS_PLOT_ROLE_LABEL, "Continuations", 0, pad, 0, 0, 0, 0);
        MsPlotTextSize sz;
        ms_plot_text_measure(t, MS_PLOT_ROLE_LABEL, "Continuations", 0, &sz);
        /* key: the two marks */
        double kx = pad + sz.width + pad * 2, sw = sz.height * 0.7;
        const char *keys[2] = { "only in the baseline's", "only in the intervened model's (word diff)" };
        MsRgb tints[2] = { TINT_B, TINT_R };
        for (int k = 0; k < 2; k++) {
            cairo_set_source_rgb(cr, tints[k].r, tints[k].g, tints[k].b);
            cairo_rectangle(cr, kx, round(sz.height / 2 - sw / 2), sw, sw);
            cairo_fill(cr);
            cairo_set_source_rgb(cr, VC_INK.r, VC_INK.g, VC_INK.b);
            MsPlotTextSize ks;
            ms_plot_text_measure(t, MS_PLOT_ROLE_TICK, keys[k], 0, &ks);
            ms_plot_text_draw(t, cr, MS_PLOT_ROLE_TICK, keys[k], 0, kx + sw + pad * 0.4, sz.height / 2, 0, 0.5, 0);
            kx += sw + pad * 0.4 + ks.width + pad * 1.5;
        }
        const char *labels[2] = { "baseline", "intervened" };
        for (int k = 0; k < 2; k++) {
            cairo_set_source_rgb(cr, VC_INK.r, VC_INK.g, VC_INK.b);
            ms_plot_text_draw(t, cr, MS_PLOT_ROLE_TICK, labels[k], 0, L.b_strip[k].x - pad * 0.8,
                              L.b_strip[k].y + L.b_line_h / 2, 1, 0.5, 0);
            flow_strip(m, k, t, &L.b_strip[k], L.b_line_h, cr, 0, 0, NULL);
        }
    }
    cairo_restore(cr);

    /* C: routing shift */
    cairo_save(cr);
    cairo_translate(cr, L.pc.x, L.pc.y);
    ms_plot_draw_back(cr, &L.fc, &L.gc);
    cairo_save(cr);
    cairo_rectangle(cr, L.gc.plot.x, L.gc.plot.y, L.gc.plot.w, L.gc.plot.h);
    cairo_clip(cr);
    for (int i = 0; i < m->n_layers; i++) {
        if (s->sel_layer >= 0 && m->layer[i] == s->sel_layer) {
            double xa = ms_plot_x_to_px(&L.gc, i), xb = ms_plot_x_to_px(&L.gc, i + 1);
            cairo_set_source_rgb(cr, 0.93, 0.93, 0.86);
            cairo_rectangle(cr, fmin(xa, xb), L.gc.plot.y, fabs(xb - xa), L.gc.plot.h);
            cairo_fill(cr);
        }
        const double v[2] = { m->changed[i], m->jaccard[i] }, all[2] = { m->changed_all[i], m->jaccard_all[i] };
        const MsRgb col[2] = { BAR_CHANGED, BAR_JACCARD };
        for (int j = 0; j < 2; j++) {
            MsPlotRect b = bar_rect(&L, i, j, v[j]);
            cairo_set_source_rgb(cr, col[j].r, col[j].g, col[j].b);
            cairo_rectangle(cr, b.x, b.y, b.w, b.h);
            cairo_fill(cr);
            if (!isnan(all[j])) {
                double y = round(ms_plot_y_to_px(&L.gc, fmin(fmax(all[j], 0), 1)));
                cairo_set_source_rgb(cr, VC_INK.r, VC_INK.g, VC_INK.b);
                cairo_set_line_width(cr, 2);
                cairo_move_to(cr, b.x - 2, y);
                cairo_line_to(cr, b.x + b.w + 2, y);
                cairo_stroke(cr);
            }
        }
    }
    cairo_restore(cr);
    ms_plot_draw_axes(cr, &L.fc, &L.gc);
    cairo_restore(cr);
    ms_plot_text_free(t);
    return 0;
fail:
    cairo_restore(cr);
    ms_plot_text_free(t);
    return rc;
}

/* ------------------------------------------------------------------ hit */

/* "«piece»" of a greedy choice, or "id N" when the trace never saw it. */
static void choice_text(const CmpModel *m, int32_t id, char *buf, size_t size)
{
    if (id < 0) {
        snprintf(buf, size, "?");
        return;
    }
    int32_t *k = bsearch(&id, m->dict_id, (size_t)m->n_dict, sizeof *m->dict_id, cmp_id);
    size_t i = k ? (size_t)(k - m->dict_id) : 0;
    if (!k || m->dict_off[i] == (size_t)-1) {
        snprintf(buf, size, "id %d", id);
        return;
    }
    size_t end = i + 1;
    while (end < (size_t)m->n_dict && m->dict_off[end] == (size_t)-1) end++;
    size_t len = m->dict_off[end] - m->dict_off[i];
    char *e = ms_plot_token_escape(m->dict_buf + m->dict_off[i], len, MS_PLOT_ESC_SPACE);
    snprintf(buf, size, "\xC2\xAB%s\xC2\xBB", e ? e : "?");
    free(e);
}

static void piece_text(const CmpModel *m, int p, char *buf, size_t size)
{
    const char *bytes;
    size_t len;
    piece_of(m, p, &bytes, &len);
    char *e = ms_plot_token_escape(bytes, len, MS_PLOT_ESC_SPACE);
    snprintf(buf, size, "\xC2\xAB%s\xC2\xBB", e ? e : "?");
    free(e);
}

static bool cmp_hit(const void *model, const MsViewState *s, double w, double h, double x, double y, MsViewHit *out)
{
    const CmpModel *m = model;
    memset(out, 0, sizeof *out);
    out->layer = out->expert = out->prompt = out->pos = -1;
    out->row = out->col = out->item = -1;
    out->value = NAN;
    CmpLayout L;
    if (cmp_layout(m, s, w, h, &L, NULL) < 0) return false;
    int64_t r, c;
    if (ms_plot_grid_hit(&L.ma, x - L.pa.x, y - L.pa.y, &r, &c)) {
        int p = (int)c;
        char here[200], next[200], gb[200], gr[200];
        piece_text(m, p, here, sizeof here);
        if (p + 1 < m->n_pos) piece_text(m, p + 1, next, sizeof next);
        else snprintf(next, sizeof next, "(end)");
        choice_text(m, m->top_b[p], gb, sizeof gb);
        choice_text(m, m->top_r[p], gr, sizeof gr);
        out->kind = MS_HIT_TOKEN;
        out->prompt = m->prompt;
        out->pos = p;
        out->row = r < ROW_TOP1 ? ROW_KL : ROW_TOP1;
        out->col = c;
        out->value = m->kl[p];
        int n = snprintf(out->text, sizeof out->text, "position %d %s (%s), next token %s", p, here,
                         p < m->n_prompt_tokens ? "prompt" : "continuation", next);
        if (isnan(m->kl[p]))
            snprintf(out->text + n, sizeof out->text - (size_t)n, "\nno KL: the runs were not compared position by position");
        else
            snprintf(out->text + n, sizeof out->text - (size_t)n,
                     "\nKL(baseline \xE2\x80\x96 intervened) %.4g nats\nlog p(next): baseline %.4f, intervened %.4f"
                     "\ngreedy choice: baseline %s, intervened %s%s", m->kl[p], m->lp_b[p], m->lp_r[p], gb, gr,
                     m->differ[p] == 1 ? " (differ)" : "");
        return true;
    }
    /* B */
    MsPlotText *t = ms_plot_text_new(&s->style);
    for (int k = 0; t && k < 2; k++) {
        int i = flow_strip(m, k, t, &L.b_strip[k], L.b_line_h, NULL, x - L.pb.x, y - L.pb.y, NULL);
        if (i < 0) continue;
        const MsDiffPiece *d = &m->diff[i];
        char *e = ms_plot_token_escape(d->text, d->len, 0);
        out->kind = MS_HIT_ITEM;
        out->item = i;
        out->prompt = m->prompt;
        snprintf(out->text, sizeof out->text, "%s: \xC2\xAB%s\xC2\xBB", d->op == MS_DIFF_SAME ? "in both continuations"
                 : d->op == MS_DIFF_DEL ? "only in the baseline's continuation" : "only in the intervened model's continuation",
                 e ? e : "?");
        free(e);
        ms_plot_text_free(t);
        return true;
    }
    ms_plot_text_free(t);
    /* C */
    double lx = x - L.pc.x, ly = y - L.pc.y;
    if (ms_plot_rect_contains(&L.gc.plot, lx, ly)) {
        double v = ms_plot_px_to_x(&L.gc, lx);
        int i = (int)floor(v);
        if (i >= 0 && i < m->n_layers) {
            out->kind = MS_HIT_LAYER;
            out->layer = m->layer[i];
            out->item = i;
            double f = v - i;
            out->value = f < 0.5 ? m->changed[i] : m->jaccard[i];
            snprintf(out->text, sizeof out->text,
                     "block %d: expert set changed at %.1f %% of positions (all %d prompts: %.1f %%)\n"
                     "mean Jaccard overlap %.3f (all prompts: %.3f)", m->layer[i], 100 * m->changed[i], m->n_prompts,
                     100 * m->changed_all[i], m->jaccard[i], m->jaccard_all[i]);
            return true;
        }
    }
    return false;
}

static void cmp_size(const void *model, double *w, double *h)
{
    (void)model;
    *w = 1200;
    *h = 820;
}

const MsViewClass ms_view_compare = {
    .name = "compare",
    .title = "Baseline vs intervened",
    .summary = "an experiment's prompt: per-token KL strip, the two continuations (word diff), routing shift per layer",
    .prepare = cmp_prepare,
    .free_model = cmp_free,
    .draw = cmp_draw,
    .hit = cmp_hit,
    .default_size = cmp_size,
};
