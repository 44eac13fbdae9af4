/* view-consistency.c — `consistency`: local routing consistency (METHODS
 * §3) as two panels, SRP against the segment length m and SCH against the
 * layer cache size C, one curve per MoE layer (coloured by depth) and the
 * model level in black.  The SRP panel draws each layer's "always active"
 * reference 2r/(1+r) (r: the layer's activation frequency, METHODS §3.1),
 * on or under which no SRP can lie; METHODS defines no such reference for
 * SCH, whose panel marks C = k (ρ = 1) instead.
 *
 * Data: the stored tables an_consistency (+ an_consistency_experts for r)
 * when `moescope analyze consistency` has run, whatever grid it used.
 * Otherwise the view computes layer-level values with the analysis
 * library's accumulator over a scan of the packed routing: SRP at m = 4,
 * 16, 64, 256 and SCH at m = 16 for C in 1..E (E <= 16) or C = 1, k/2, k,
 * 3k/2, 2k, 3k, 4k, E/2, E; the simulations are far more work than a
 * drawing, so a run of more than 100,000 tokens is estimated from every
 * n-th prompt and the figure says so (SRP and SCH are means over windows
 * and sequences; the METHODS reference itself subsamples sequences for
 * SCH).  `moescope analyze consistency` computes the full result. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "results.h"
#include "view-b.h"

enum { VB_CONS_BUDGET = 100000, VB_CONS_SCH_M = 16 };

static void cons_free(void *model)
{
    VbCons *c = model;
    if (!c) return;
    free(c->layer);
    free(c->m);
    free(c->C);
    free(c->srp);
    free(c->rho);
    free(c->act);
    free(c->sch);
    free(c->model_srp);
    free(c->model_sch);
    free(c);
}

static int cons_alloc(VbCons *c)
{
    size_t lm = (size_t)c->n_lay * c->n_m, lc = (size_t)c->n_lay * c->n_c;
    c->srp = malloc(sizeof(double) * (lm + 1));
    c->rho = malloc(sizeof(double) * (lm + 1));
    c->act = malloc(sizeof(double) * (lm + 1));
    c->sch = malloc(sizeof(double) * (lc + 1));
    c->model_srp = malloc(sizeof(double) * ((size_t)c->n_m + 1));
    c->model_sch = malloc(sizeof(double) * ((size_t)c->n_c + 1));
    if (!c->srp || !c->rho || !c->act || !c->sch || !c->model_srp || !c->model_sch) return MS_ENOMEM;
    for (size_t i = 0; i < lm; i++) c->srp[i] = c->rho[i] = c->act[i] = NAN;
    for (size_t i = 0; i < lc; i++) c->sch[i] = NAN;
    for (int i = 0; i < c->n_m; i++) c->model_srp[i] = NAN;
    for (int i = 0; i < c->n_c; i++) c->model_sch[i] = NAN;
    return 0;
}

static int index_of(const int *v, int n, int x)
{
    for (int i = 0; i < n; i++)
        if (v[i] == x) return i;
    return -1;
}

/* The m the SCH panel shows: 16 (the paper's headline) if present, else the
 * nearest to it on a log scale. */
static int pick_sch_m(const int *m, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (fabs(log((double)m[i] / VB_CONS_SCH_M)) < fabs(log((double)m[best] / VB_CONS_SCH_M))) best = i;
    return best;
}

static int int_cmp(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* ------------------------------------------------------------- stored */

static int read_stored(MsTraceDb *db, const MsTraceRunInfo *ri, const char *params, VbCons *c, MsError *err)
{
    int ms[4 * MS_AN_MAX_LIST], cs[4 * MS_AN_MAX_LIST];
    int nm = vb_param_ints(params, "segments", ms, 4 * MS_AN_MAX_LIST);
    int nc = vb_param_ints(params, "cache", cs, 4 * MS_AN_MAX_LIST);
    char start[16] = "";
    vb_param_str(params, "sch_start", start, sizeof start);
    c->cold = !strcmp(start, "cold");
    static const char *const cols[] = { "layer", "m", "C", "srp", "rho_hat", "sch" };
    int ix[6], rc;
    MsTraceCursor *cur = vb_table_open(db, ri->run_id, "an_consistency", "consistency", cols, 6, ix, err);
    if (!cur) return err && err->code ? err->code : MS_EDB;
    /* the grid: from the params, or (older rows without them) from the rows */
    bool from_rows = nm < 1 || nc < 1;
    if (from_rows) nm = nc = 0;
    bool seen_layer[MS_TRACE_MAX_LAYER] = { false };
    const MsTraceValue *v;
    while ((rc = ms_trace_table_next(cur, &v, err)) == 1) {
        double L = vb_num(&v[ix[0]]), m = vb_num(&v[ix[1]]), C = vb_num(&v[ix[2]]);
        if (isfinite(L) && L >= 0 && L < MS_TRACE_MAX_LAYER) seen_layer[(int)L] = true;
        if (from_rows && isfinite(m) && index_of(ms, nm, (int)m) < 0 && nm < 4 * MS_AN_MAX_LIST) ms[nm++] = (int)m;
        if (from_rows && isfinite(C) && index_of(cs, nc, (int)C) < 0 && nc < 4 * MS_AN_MAX_LIST) cs[nc++] = (int)C;
    }
    ms_trace_cursor_free(cur);
    if (rc < 0) return rc;
    qsort(ms, (size_t)nm, sizeof(int), int_cmp);
    qsort(cs, (size_t)nc, sizeof(int), int_cmp);
    int layers[MS_TRACE_MAX_LAYER], nl = vb_moe_layers(ri, layers);
    c->layer = malloc(sizeof(int) * (size_t)(nl + 1));
    c->m = malloc(sizeof(int) * (size_t)(nm + 1));
    c->C = malloc(sizeof(int) * (size_t)(nc + 1));
    if (!c->layer || !c->m || !c->C) return ms_error_set(err, MS_ENOMEM, "out of memory");
    for (int s = 0; s < nl; s++)
        if (seen_layer[layers[s]]) c->layer[c->n_lay++] = layers[s];
    memcpy(c->m, ms, sizeof(int) * (size_t)nm);
    memcpy(c->C, cs, sizeof(int) * (size_t)nc);
    c->n_m = nm;
    c->n_c = nc;
    if (nm < 1 || nc < 1 || c->n_lay < 1) return 0;
    if (cons_alloc(c) < 0) return ms_error_set(err, MS_ENOMEM, "out of memory");
    int sm = pick_sch_m(c->m, nm);
    c->sch_m = c->m[sm];
    if (!(cur = vb_table_open(db, ri->run_id, "an_consistency", "consistency", cols, 6, ix, err)))
        return err && err->code ? err->code : MS_EDB;
    while ((rc = ms_trace_table_next(cur, &v, err)) == 1) {
        double L = vb_num(&v[ix[0]]);
        int mi = index_of(c->m, nm, (int)vb_num(&v[ix[1]])), ci = index_of(c->C, nc, (int)vb_num(&v[ix[2]]));
        if (mi < 0 || ci < 0) continue;
        double srp = vb_num(&v[ix[3]]), rho = vb_num(&v[ix[4]]), sch = vb_num(&v[ix[5]]);
        if (isnan(L)) {   /* the model level */
            c->has_model = true;
            c->model_srp[mi] = srp;
            if (mi == sm) c->model_sch[ci] = sch;
            continue;
        }
        int li = index_of(c->layer, c->n_lay, (int)L);
        if (li < 0) continue;
        c->srp[(size_t)li * nm + mi] = srp;
        c->rho[(size_t)li * nm + mi] = rho;
        if (mi == sm) c->sch[(size_t)li * nc + ci] = sch;
    }
    ms_trace_cursor_free(cur);
    if (rc < 0) return rc;
    /* r of a layer: the pooled activation frequency = the mean of its experts' */
    char *p2 = NULL;
    if (vb_stored(db, ri->run_id, "an_consistency_experts", &p2, NULL) == 1) {
        static const char *const ec[] = { "layer", "m", "act_r" };
        int ex[3];
        MsTraceCursor *e = vb_table_open(db, ri->run_id, "an_consistency_experts", "consistency", ec, 3, ex, NULL);
        size_t lm = (size_t)c->n_lay * nm;
        double *sum = calloc(lm + 1, sizeof(double));
        int64_t *cnt = calloc(lm + 1, sizeof(int64_t));
        while (e && sum && cnt && ms_trace_table_next(e, &v, NULL) == 1) {
            int li = index_of(c->layer, c->n_lay, (int)vb_num(&v[ex[0]])), mi = index_of(c->m, nm, (int)vb_num(&v[ex[1]]));
            double a = vb_num(&v[ex[2]]);
            if (li < 0 || mi < 0 || !isfinite(a)) continue;
            sum[(size_t)li * nm + mi] += a;
            cnt[(size_t)li * nm + mi]++;
        }
        for (size_t i = 0; sum && cnt && i < lm; i++)
            if (cnt[i] > 0) c->act[i] = sum[i] / (double)cnt[i];
        free(sum);
        free(cnt);
        ms_trace_cursor_free(e);
    }
    free(p2);
    return 1;
}

/* ------------------------------------------------------------ computed */

typedef struct {
    MsConsAcc *srp_acc, *sch_acc;
    int S, k;                /* slots, ids per slot */
    int T, cap;
    int32_t *ids;            /* T × S × k */
    int *n;                  /* T × S */
    int64_t pid;
} Seq;

static int seq_flush(Seq *q)
{
    if (q->T == 0) return 0;
    int rc = ms_cons_acc_add_seq(q->srp_acc, MS_CONS_LAYERS, 0, q->ids, q->n, q->T);
    if (rc >= 0) rc = ms_cons_acc_add_seq(q->sch_acc, MS_CONS_LAYERS, 0, q->ids, q->n, q->T);
    q->T = 0;
    return rc;
}

static int seq_feed(void *user, const VbToken *t, MsError *err)
{
    Seq *q = user;
    int rc = 0;
    if (q->T > 0 && t->prompt_id != q->pid) rc = seq_flush(q);
    if (rc < 0) return rc == MS_ECANCELLED ? ms_error_set(err, rc, "cancelled") : ms_error_set(err, rc, "consistency: %s", ms_strerror(rc));
    q->pid = t->prompt_id;
    if (q->T == q->cap) {
        int cap = q->cap ? q->cap * 2 : 512;
        int32_t *ids = realloc(q->ids, sizeof *ids * (size_t)cap * q->S * q->k);
        if (ids) q->ids = ids;
        int *n = realloc(q->n, sizeof *n * (size_t)cap * q->S);
        if (n) q->n = n;
        if (!ids || !n) return ms_error_set(err, MS_ENOMEM, "out of memory");
        q->cap = cap;
    }
    int32_t *row = q->ids + (size_t)q->T * q->S * q->k;
    int *nr = q->n + (size_t)q->T * q->S;
    for (int s = 0; s < q->S; s++) {
        int n = t->n[s] < q->k ? t->n[s] : q->k;
        for (int j = 0; j < q->k; j++) row[(size_t)s * q->k + j] = j < n ? t->ids[(size_t)s * t->stride + j] : -1;
        nr[s] = n;
    }
    q->T++;
    return 0;
}

static int compute(MsTraceDb *db, const MsTraceRunInfo *ri, const MsViewParams *p, VbCons *c, MsError *err)
{
    int layers[MS_TRACE_MAX_LAYER], nl = vb_moe_layers(ri, layers), E = ri->model.n_expert;
    int k = ri->model.n_expert_used;
    if (nl < 1 || E < 1 || k < 1 || k > E)
        return ms_error_set(err, MS_EFORMAT, "%s: run %lld: model shape E=%d k=%d unusable", ms_trace_path(db),
                            (long long)ri->run_id, E, k);
    /* as the analysis: a top-k override may select up to E experts */
    int kk = ri->interventions && strstr(ri->interventions, "top-k") ? E : k;
    static const int segs[] = { 4, 16, 64, 256 };
    int cs[64], nc = 0;
    if (E <= 16) {
        for (int i = 1; i <= E; i++) cs[nc++] = i;
    } else {
        int want[] = { 1, k / 2, k, 3 * k / 2, 2 * k, 3 * k, 4 * k, E / 2, E };
        for (size_t i = 0; i < MS_ARRAY_LEN(want); i++)
            if (want[i] >= 1 && want[i] <= E && index_of(cs, nc, want[i]) < 0) cs[nc++] = want[i];
        qsort(cs, (size_t)nc, sizeof(int), int_cmp);
    }
    c->n_lay = nl;
    c->n_m = (int)MS_ARRAY_LEN(segs);
    c->n_c = nc;
    c->layer = malloc(sizeof(int) * (size_t)nl);
    c->m = malloc(sizeof segs);
    c->C = malloc(sizeof(int) * (size_t)nc);
    if (!c->layer || !c->m || !c->C || cons_alloc(c) < 0) return ms_error_set(err, MS_ENOMEM, "out of memory");
    memcpy(c->layer, layers, sizeof(int) * (size_t)nl);
    memcpy(c->m, segs, sizeof segs);
    memcpy(c->C, cs, sizeof(int) * (size_t)nc);
    int sm = index_of(c->m, c->n_m, VB_CONS_SCH_M);
    c->sch_m = VB_CONS_SCH_M;

    /* the prompts: all, or every step-th when the run is large */
    MsTraceCursor *pc = ms_trace_prompts(db, ri->run_id, err);
    if (!pc) return err && err->code ? err->code : MS_EDB;
    int64_t *pids = NULL, ntok = 0;
    int np = 0, cap = 0, rc;
    MsTracePrompt pr;
    c->step = ri->n_tokens > VB_CONS_BUDGET ? (int)((ri->n_tokens + VB_CONS_BUDGET - 1) / VB_CONS_BUDGET) : 1;
    while ((rc = ms_trace_prompts_next(pc, &pr, err)) == 1) {
        if (c->n_prompts++ % c->step) continue;
        if (np == cap) {
            cap = cap ? cap * 2 : 256;
            int64_t *a = realloc(pids, sizeof *a * (size_t)cap);
            if (!a) {
                rc = ms_error_set(err, MS_ENOMEM, "out of memory");
                break;
            }
            pids = a;
        }
        pids[np++] = pr.prompt_id;
        ntok += pr.n_tokens;
    }
    ms_trace_cursor_free(pc);
    c->n_used = np;
    int one_c = 1;
    Seq q = { 0 };
    q.S = nl;
    q.k = kk;
    q.pid = -1;
    if (rc >= 0) {
        q.srp_acc = ms_cons_acc_new(nl, E, kk, 0, nl, c->m, c->n_m, &one_c, 1, false, false);
        q.sch_acc = ms_cons_acc_new(nl, E, kk, 0, nl, &c->sch_m, 1, c->C, c->n_c, false, false);
        if (!q.srp_acc || !q.sch_acc) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    if (rc >= 0) {
        ms_cons_acc_set_cancel(q.srp_acc, p->cancel);
        ms_cons_acc_set_cancel(q.sch_acc, p->cancel);
        rc = vb_scan(db, ri, NULL, c->step > 1 ? pids : NULL, np, ntok, seq_feed, &q, p->progress, p->progress_user,
                     p->cancel, "consistency", err);
        if (rc >= 0 && (rc = seq_flush(&q)) < 0)
            rc = rc == MS_ECANCELLED ? ms_error_set(err, rc, "cancelled") : ms_error_set(err, rc, "consistency: %s", ms_strerror(rc));
    }
    MsConsistencyResult *a = NULL, *b = NULL;
    if (rc >= 0) {
        MsAnHead h = { ri->run_id, -1, ri->model.n_layer, E };
        a = ms_cons_acc_result(q.srp_acc, &h, MS_AN_ROLE_ALL, layers);
        b = ms_cons_acc_result(q.sch_acc, &h, MS_AN_ROLE_ALL, layers);
        if (!a || !b) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    if (rc >= 0) {
        for (int l = 0; l < nl; l++) {
            for (int mi = 0; mi < c->n_m; mi++) {
                c->srp[(size_t)l * c->n_m + mi] = a->layers[l].srp[mi];
                c->rho[(size_t)l * c->n_m + mi] = a->layers[l].rho_hat[mi];
                c->act[(size_t)l * c->n_m + mi] = a->layers[l].act_r[mi];
            }
            for (int ci = 0; ci < c->n_c; ci++) c->sch[(size_t)l * c->n_c + ci] = b->layers[l].sch[ci];
        }
        (void)sm;
    }
    ms_consistency_result_free(a);
    ms_consistency_result_free(b);
    ms_cons_acc_free(q.srp_acc);
    ms_cons_acc_free(q.sch_acc);
    free(q.ids);
    free(q.n);
    free(pids);
    return rc < 0 ? rc : 0;
}

static int prepare(MsTraceDb *db, const MsViewParams *p, void **model, MsError *err)
{
    *model = NULL;
    MsTraceRunInfo ri;
    int rc = vb_run(db, p->run, &ri, err);
    if (rc < 0) return rc;
    VbCons *c = calloc(1, sizeof *c);
    if (!c) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    if (rc >= 0) {
        c->run = ri.run_id;
        c->E = ri.model.n_expert;
        c->k = ri.model.n_expert_used;
        c->step = 1;
        char *params = NULL;
        int st = vb_stored(db, ri.run_id, "an_consistency", &params, err);
        if (st == 1) st = read_stored(db, &ri, params, c, err);
        free(params);
        if (st < 0) {
            rc = st;
        } else if (st == 1) {
            c->stored = true;
        } else if (!p->run_missing) {
            rc = vb_not_stored(db, ri.run_id, "consistency analysis", "moescope analyze consistency", err);
        } else {
            /* start over from a clean model (a stored table without rows may have filled parts) */
            VbCons keep = { .run = c->run, .E = c->E, .k = c->k, .step = 1 };
            free(c->layer);
            free(c->m);
            free(c->C);
            free(c->srp);
            free(c->rho);
            free(c->act);
            free(c->sch);
            free(c->model_srp);
            free(c->model_sch);
            *c = keep;
            rc = compute(db, &ri, p, c, err);
        }
    }
    /* keep only the layers the user asked for */
    if (rc >= 0 && (p->layer >= 0 || p->layer_lo >= 0)) {
        int lo = p->layer >= 0 ? p->layer : p->layer_lo, hi = p->layer >= 0 ? p->layer : p->layer_hi;
        int w = 0;
        for (int l = 0; l < c->n_lay; l++) {
            if (c->layer[l] < lo || (hi >= 0 && c->layer[l] > hi)) continue;
            c->layer[w] = c->layer[l];
            memmove(c->srp + (size_t)w * c->n_m, c->srp + (size_t)l * c->n_m, sizeof(double) * c->n_m);
            memmove(c->rho + (size_t)w * c->n_m, c->rho + (size_t)l * c->n_m, sizeof(double) * c->n_m);
            memmove(c->act + (size_t)w * c->n_m, c->act + (size_t)l * c->n_m, sizeof(double) * c->n_m);
            memmove(c->sch + (size_t)w * c->n_c, c->sch + (size_t)l * c->n_c, sizeof(double) * c->n_c);
            w++;
        }
        c->n_lay = w;
        if (w == 0) rc = ms_error_set(err, MS_EINVAL, "%s: run %lld: no MoE layer with consistency values in %d..%d",
                                      ms_trace_path(db), (long long)ri.run_id, lo, hi);
    }
    if (rc >= 0 && (c->n_lay < 1 || c->n_m < 1 || c->n_c < 1))
        rc = ms_error_set(err, MS_ENOTFOUND, "%s: run %lld: the consistency analysis has no layer values",
                          ms_trace_path(db), (long long)ri.run_id);
    ms_trace_run_info_clear(&ri);
    if (rc < 0) {
        cons_free(c);
        return rc;
    }
    *model = c;
    return 0;
}

/* ---------------------------------------------------------------- layout */

typedef struct {
    MsPlotFrame f[2];
    MsPlotGeom g[2];
    double dx[2], dy;           /* panel offsets */
    MsPlotLegend lg;
    MsPlotLegendItem *items;
    char (*labels)[32];
    char title[256], note[256], pt[2][160], xt[2][96], yt[2][64];
    double pad, legend_title_h, title_h;
    int n_items;                /* layers, then model, then the reference */
} ConsGeom;

static void cgeom_free(ConsGeom *cg)
{
    free(cg->items);
    free(cg->labels);
}

static const char *m_label(void *user, int64_t i, char *buf, size_t size)
{
    const VbCons *c = user;
    if (i < 0 || i >= c->n_m) return NULL;
    snprintf(buf, size, "%d", c->m[i]);
    return buf;
}

/* Colour of layer index li: viridis by depth (its bright yellow end left out). */
static MsRgb layer_color(const VbCons *c, int li)
{
    double t = c->n_lay > 1 ? 0.88 * li / (c->n_lay - 1) : 0.4;
    return ms_plot_cmap_at(MS_CMAP_VIRIDIS, t);
}

static bool has_ref(const VbCons *c)
{
    for (size_t i = 0; i < (size_t)c->n_lay * c->n_m; i++)
        if (isfinite(c->act[i])) return true;
    return false;
}

static int cons_layout(const VbCons *c, const MsViewState *s, double W, double H, ConsGeom *cg, MsError *err)
{
    memset(cg, 0, sizeof *cg);
    int n = c->n_lay + 2;
    cg->items = malloc(sizeof *cg->items * (size_t)n);
    cg->labels = malloc(sizeof *cg->labels * (size_t)n);
    if (!cg->items || !cg->labels) {
        cgeom_free(cg);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    for (int l = 0; l < c->n_lay; l++) {
        snprintf(cg->labels[l], sizeof cg->labels[l], "layer %d", c->layer[l]);
        cg->items[cg->n_items++] = (MsPlotLegendItem){ cg->labels[l], layer_color(c, l) };
    }
    if (c->has_model) {
        snprintf(cg->labels[cg->n_items], sizeof cg->labels[0], "model");
        cg->items[cg->n_items] = (MsPlotLegendItem){ cg->labels[cg->n_items], { 0, 0, 0 } };
        cg->n_items++;
    }
    if (has_ref(c)) {
        snprintf(cg->labels[cg->n_items], sizeof cg->labels[0], "2r/(1+r)");
        cg->items[cg->n_items] = (MsPlotLegendItem){ cg->labels[cg->n_items], { 0.6, 0.6, 0.6 } };
        cg->n_items++;
    }
    cg->lg = (MsPlotLegend){ "Layer", cg->items, (size_t)cg->n_items };
    if (s && s->title) snprintf(cg->title, sizeof cg->title, "%s", s->title);
    else if (c->step > 1)
        snprintf(cg->title, sizeof cg->title, "Local routing consistency (estimated from %d of %d prompts)", c->n_used,
                 c->n_prompts);
    else snprintf(cg->title, sizeof cg->title, "Local routing consistency");
    if (c->stored && (c->n_m < 2 || c->n_c < 2))
        snprintf(cg->note, sizeof cg->note,
                 "The stored analysis has %d segment length%s and %d cache size%s: `moescope analyze consistency` "
                 "without --segments and --cache computes the full grid",
                 c->n_m, c->n_m == 1 ? "" : "s", c->n_c, c->n_c == 1 ? "" : "s");
    {
        /* segment lengths no prompt reaches have no SRP: say so rather than
           leave their columns silently empty */
        char miss[96] = "";
        int n_miss = 0;
        for (int mi = 0; mi < c->n_m; mi++) {
            bool any = false;
            for (int l = 0; l < c->n_lay && !any; l++) any = isfinite(c->srp[(size_t)l * c->n_m + mi]);
            if (!any && strlen(miss) + 16 < sizeof miss)
                snprintf(miss + strlen(miss), sizeof miss - strlen(miss), "%s%d", n_miss++ ? ", " : "", c->m[mi]);
        }
        if (n_miss) {
            size_t at = strlen(cg->note);
            snprintf(cg->note + at, sizeof cg->note - at, "%sNo SRP at m = %s: no prompt%s has that many tokens",
                     at ? ". " : "", miss, c->step > 1 ? " read" : "");
        }
    }
    snprintf(cg->pt[0], sizeof cg->pt[0], "SRP: segment routing best performance");
    snprintf(cg->pt[1], sizeof cg->pt[1], "SCH: segment cache best hit rate (m = %d%s)", c->sch_m, c->cold ? ", cold" : "");
    snprintf(cg->xt[0], sizeof cg->xt[0], "Segment length m (tokens)");
    snprintf(cg->xt[1], sizeof cg->xt[1], "Layer cache size C (experts; k = %d)", c->k);
    snprintf(cg->yt[0], sizeof cg->yt[0], "SRP (best F1)");
    snprintf(cg->yt[1], sizeof cg->yt[1], "SCH (hit rate)");
    const MsPlotStyle *st = s ? &s->style : NULL;
    double cmax = c->C[c->n_c - 1] * 1.04;   /* room for the last point's marker */
    cg->f[0] = (MsPlotFrame){
        .title = cg->pt[0],
        .x = { .kind = MS_PLOT_AXIS_CATEGORY, .title = cg->xt[0], .lo = 0, .hi = c->n_m, .count = c->n_m,
               .label = m_label, .label_user = (void *)c },
        .y = { .kind = MS_PLOT_AXIS_LINEAR, .title = cg->yt[0], .lo = 0, .hi = 1, .grid = true },
        .style = st,
    };
    cg->f[1] = (MsPlotFrame){
        .title = cg->pt[1],
        .x = { .kind = MS_PLOT_AXIS_LINEAR, .title = cg->xt[1], .lo = 0, .hi = cmax > 0 ? cmax : 1, .grid = true },
        .y = { .kind = MS_PLOT_AXIS_LINEAR, .title = cg->yt[1], .lo = 0, .hi = 1, .grid = true },
        .legend = &cg->lg,
        .style = st,
    };
    MsPlotText *t = ms_plot_text_new(st);
    if (!t) {
        cgeom_free(cg);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    MsPlotTextSize sz;
    cg->pad = ms_plot_text_pad(t);
    cg->title_h = ms_plot_text_title(t, NULL, cg->title, W, cg->pad);
    cg->dy = ceil(cg->title_h + cg->pad);
    if (*cg->note) {
        ms_plot_text_measure(t, MS_PLOT_ROLE_NOTE, cg->note, W - 2 * cg->pad, &sz);
        cg->dy = ceil(cg->dy + sz.height + cg->pad * 0.3);
    }
    /* panel titles too wide for a narrow figure: the short forms */
    ms_plot_text_measure(t, MS_PLOT_ROLE_TITLE, cg->pt[1], 0, &sz);
    double wide = sz.width;
    ms_plot_text_measure(t, MS_PLOT_ROLE_TITLE, cg->pt[0], 0, &sz);
    if (fmax(wide, sz.width) > W * 0.44 - 2 * cg->pad) {
        snprintf(cg->pt[0], sizeof cg->pt[0], "SRP vs segment length");
        snprintf(cg->pt[1], sizeof cg->pt[1], "SCH vs cache size (m = %d%s)", c->sch_m, c->cold ? ", cold" : "");
    }
    ms_plot_text_measure(t, MS_PLOT_ROLE_LABEL, cg->lg.title, 0, &sz);
    cg->legend_title_h = sz.height + cg->pad * 0.3;
    ms_plot_text_free(t);
    double ph = H - cg->dy;
    /* equal plot widths: the right panel also holds the legend */
    double w0 = floor(W * 0.44);
    int rc = 0;
    for (int it = 0; it < 3 && rc == 0; it++) {
        if ((rc = ms_plot_layout(&cg->f[0], w0, ph, &cg->g[0], err)) < 0) break;
        if ((rc = ms_plot_layout(&cg->f[1], W - w0, ph, &cg->g[1], err)) < 0) break;
        double diff = cg->g[1].plot.w - cg->g[0].plot.w;
        if (fabs(diff) < 2) break;
        w0 = floor(w0 + diff / 2);
        if (w0 < W * 0.2 || w0 > W * 0.8) break;
    }
    if (rc < 0) {
        cgeom_free(cg);
        return rc;
    }
    cg->dx[0] = 0;
    cg->dx[1] = w0;
    return 0;
}

/* ------------------------------------------------------------------ draw */

static double px_x(const VbCons *c, const MsPlotGeom *g, int panel, int i)
{
    return panel == 0 ? ms_plot_x_to_px(g, i + 0.5) : ms_plot_x_to_px(g, c->C[i]);
}

/* markers: 0 none, 1 dots, 2 short horizontal dashes (the reference) */
static void curve(cairo_t *cr, const VbCons *c, const MsPlotGeom *g, int panel, const double *y, int n, MsRgb col,
                  double lw, double alpha, bool dashed, int markers)
{
    cairo_set_source_rgba(cr, col.r, col.g, col.b, alpha);
    cairo_set_line_width(cr, lw);
    if (dashed) {
        double d[2] = { lw * 3, lw * 2.5 };
        cairo_set_dash(cr, d, 2, 0);
    }
    bool pen = false;
    for (int i = 0; i < n; i++) {
        if (!isfinite(y[i])) {
            pen = false;
            continue;
        }
        double X = px_x(c, g, panel, i), Y = ms_plot_y_to_px(g, y[i]);
        if (pen) cairo_line_to(cr, X, Y);
        else cairo_move_to(cr, X, Y);
        pen = true;
    }
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    for (int i = 0; markers && i < n; i++) {
        if (!isfinite(y[i])) continue;
        double X = px_x(c, g, panel, i), Y = ms_plot_y_to_px(g, y[i]);
        if (markers == 1) {
            cairo_arc(cr, X, Y, lw * 1.6, 0, 2 * M_PI);
            cairo_fill(cr);
        } else {
            cairo_move_to(cr, X - lw * 5, Y);
            cairo_line_to(cr, X + lw * 5, Y);
            cairo_stroke(cr);
        }
    }
}

static bool layer_on(const VbCons *c, const MsViewState *s, int li)
{
    return !s || s->sel_layer < 0 || s->sel_layer == c->layer[li];
}

static int cons_draw(cairo_t *cr, double width, double height, const void *model, const MsViewState *s, MsError *err)
{
    const VbCons *c = model;
    ConsGeom cg;
    int rc = cons_layout(c, s, width, height, &cg, err);
    if (rc < 0) return rc;
    cairo_save(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    double lw = fmax(1.5, cg.pad / 3.5);
    bool sel = s && s->sel_layer >= 0 && index_of(c->layer, c->n_lay, s->sel_layer) >= 0;
    double *ref = malloc(sizeof(double) * (size_t)(c->n_m + 1));
    for (int p = 0; p < 2; p++) {
        const MsPlotGeom *g = &cg.g[p];
        cairo_save(cr);
        cairo_translate(cr, cg.dx[p], cg.dy);
        ms_plot_draw_back(cr, &cg.f[p], g);
        cairo_save(cr);
        cairo_rectangle(cr, g->plot.x, g->plot.y, g->plot.w, g->plot.h);
        cairo_clip(cr);
        if (p == 1 && c->k <= c->C[c->n_c - 1]) {   /* C = k: a cache of one token's experts (ρ = 1) */
            double x = round(ms_plot_x_to_px(g, c->k)) + 0.5, d[2] = { 2, 3 };
            cairo_set_source_rgb(cr, 0.55, 0.55, 0.55);
            cairo_set_line_width(cr, 1);
            cairo_set_dash(cr, d, 2, 0);
            cairo_move_to(cr, x, g->plot.y);
            cairo_line_to(cr, x, g->plot.y + g->plot.h);
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
            MsPlotText *t = ms_plot_text_new(s ? &s->style : NULL);
            if (t) {
                char buf[32];
                snprintf(buf, sizeof buf, "C = k = %d", c->k);
                ms_plot_text_draw(t, cr, MS_PLOT_ROLE_NOTE, buf, 0, x + cg.pad * 0.4,
                                  g->plot.y + g->plot.h - cg.pad * 0.4, 0, 1, 0);
                ms_plot_text_free(t);
            }
        }
        if (c->has_model) {   /* under the layers: it summarises them */
            const double *y = p == 0 ? c->model_srp : c->model_sch;
            curve(cr, c, g, p, y, p == 0 ? c->n_m : c->n_c, (MsRgb){ 0, 0, 0 }, lw * 1.6, sel ? 0.3 : 1, false, 1);
        }
        for (int li = 0; li < c->n_lay; li++) {
            bool on = layer_on(c, s, li);
            if (sel && on) continue;   /* drawn last, on top */
            if (p == 0 && ref) {
                for (int i = 0; i < c->n_m; i++) {
                    double r = c->act[(size_t)li * c->n_m + i];
                    ref[i] = 2 * r / (1 + r);
                }
                curve(cr, c, g, 0, ref, c->n_m, (MsRgb){ 0.6, 0.6, 0.6 }, lw * 0.6, sel ? 0.3 : 0.9, true, 2);
            }
            const double *y = p == 0 ? c->srp + (size_t)li * c->n_m : c->sch + (size_t)li * c->n_c;
            curve(cr, c, g, p, y, p == 0 ? c->n_m : c->n_c, layer_color(c, li), lw, sel ? 0.25 : 0.9, false, 1);
        }
        for (int li = 0; sel && li < c->n_lay; li++) {
            if (!layer_on(c, s, li)) continue;
            if (p == 0 && ref) {
                for (int i = 0; i < c->n_m; i++) {
                    double r = c->act[(size_t)li * c->n_m + i];
                    ref[i] = 2 * r / (1 + r);
                }
                curve(cr, c, g, 0, ref, c->n_m, (MsRgb){ 0.45, 0.45, 0.45 }, lw * 0.8, 1, true, 2);
            }
            const double *y = p == 0 ? c->srp + (size_t)li * c->n_m : c->sch + (size_t)li * c->n_c;
            curve(cr, c, g, p, y, p == 0 ? c->n_m : c->n_c, layer_color(c, li), lw * 1.8, 1, false, 1);
        }
        cairo_restore(cr);
        ms_plot_draw_axes(cr, &cg.f[p], g);
        cairo_restore(cr);
    }
    free(ref);
    cairo_restore(cr);
    vb_draw_title(cr, s ? &s->style : NULL, cg.title, width);
    if (*cg.note) {
        MsPlotText *t = ms_plot_text_new(s ? &s->style : NULL);
        if (t) {
            cairo_set_source_rgb(cr, 0.42, 0.42, 0.42);
            ms_plot_text_draw(t, cr, MS_PLOT_ROLE_NOTE, cg.note, width - 2 * cg.pad, width / 2,
                              cg.pad + cg.title_h + cg.pad * 0.3, 0.5, 0, 0);
            ms_plot_text_free(t);
        }
    }
    cgeom_free(&cg);
    return 0;
}

/* ------------------------------------------------------------------- hit */

static bool cons_hit(const void *model, const MsViewState *s, double width, double height, double x, double y,
                     MsViewHit *out)
{
    const VbCons *c = model;
    memset(out, 0, sizeof *out);
    out->layer = out->expert = out->prompt = out->pos = -1;
    out->row = out->col = out->item = -1;
    out->value = NAN;
    ConsGeom cg;
    if (cons_layout(c, s, width, height, &cg, NULL) < 0) return false;
    bool found = false;
    double radius = fmax(6, cg.pad * 0.8);
    for (int p = 0; p < 2 && !found; p++) {
        const MsPlotGeom *g = &cg.g[p];
        double px = x - cg.dx[p], py = y - cg.dy;
        if (!ms_plot_rect_contains(&g->plot, px, py)) continue;
        /* the nearest point of any curve (the model level counts as layer −1);
         * on ties the one drawn on top: the model first, then the layers,
         * a selected layer last */
        double best = radius;
        int bl = -2, bi = -1, brank = -1;
        int n = p == 0 ? c->n_m : c->n_c;
        for (int li = -1; li < c->n_lay; li++) {
            if (li < 0 && !c->has_model) continue;
            const double *v = li < 0 ? (p == 0 ? c->model_srp : c->model_sch)
                                     : p == 0 ? c->srp + (size_t)li * c->n_m : c->sch + (size_t)li * c->n_c;
            int rank = li < 0 ? 0 : s && s->sel_layer == c->layer[li] ? c->n_lay + 1 : li + 1;
            for (int i = 0; i < n; i++) {
                if (!isfinite(v[i])) continue;
                double d = hypot(px_x(c, g, p, i) - px, ms_plot_y_to_px(g, v[i]) - py);
                if (d < best || (d == best && rank > brank)) {
                    best = d;
                    bl = li;
                    bi = i;
                    brank = rank;
                }
            }
        }
        if (bi < 0) continue;
        found = true;
        out->kind = MS_HIT_LAYER;
        out->layer = bl >= 0 ? c->layer[bl] : -1;
        out->row = p;
        out->col = p == 0 ? c->m[bi] : c->C[bi];
        out->item = bi;
        char who[32];
        if (bl >= 0) snprintf(who, sizeof who, "L%d", c->layer[bl]);
        else snprintf(who, sizeof who, "model");
        if (p == 0) {
            double v = bl >= 0 ? c->srp[(size_t)bl * c->n_m + bi] : c->model_srp[bi];
            out->value = v;
            if (bl >= 0) {
                double r = c->act[(size_t)bl * c->n_m + bi];
                snprintf(out->text, sizeof out->text, "%s, m = %d: SRP %.3f (\xCF\x81\xCC\x82 %.2f; always active %.3f, r = %.3f)",
                         who, c->m[bi], v, c->rho[(size_t)bl * c->n_m + bi], 2 * r / (1 + r), r);
            } else {
                snprintf(out->text, sizeof out->text, "%s, m = %d: SRP %.3f", who, c->m[bi], v);
            }
        } else {
            double v = bl >= 0 ? c->sch[(size_t)bl * c->n_c + bi] : c->model_sch[bi];
            out->value = v;
            snprintf(out->text, sizeof out->text, "%s, C = %d (\xCF\x81 = %.3g), m = %d: SCH %.3f", who, c->C[bi],
                     (double)c->C[bi] / c->k, c->sch_m, v);
        }
    }
    /* legend entries: the layer */
    const MsPlotGeom *g = &cg.g[1];
    double px = x - cg.dx[1], py = y - cg.dy;
    if (!found && g->legend.w > 0 && ms_plot_rect_contains(&g->legend, px, py)) {
        double y0 = g->legend.y + cg.legend_title_h;
        int rows = (int)floor((g->legend.y + g->legend.h - y0) / g->legend_row_h);
        if (rows < 1) rows = 1;
        int col = (int)floor((px - g->legend.x) / g->legend_col_w), row = (int)floor((py - y0) / g->legend_row_h);
        int i = col * rows + row;
        if (py >= y0 && row < rows && i >= 0 && (size_t)i < g->legend_shown && i < c->n_lay) {
            found = true;
            out->kind = MS_HIT_LAYER;
            out->layer = c->layer[i];
            out->item = i;
            snprintf(out->text, sizeof out->text, "layer %d", c->layer[i]);
        }
    }
    cgeom_free(&cg);
    return found;
}

static void cons_default_size(const void *model, double *width, double *height)
{
    (void)model;
    *width = 1300;
    *height = 620;
}

const MsViewClass ms_view_consistency = {
    .name = "consistency",
    .title = "Local routing consistency",
    .summary = "SRP against segment length and SCH against cache size, one curve per layer",
    .prepare = prepare,
    .free_model = cons_free,
    .draw = cons_draw,
    .hit = cons_hit,
    .default_size = cons_default_size,
};
