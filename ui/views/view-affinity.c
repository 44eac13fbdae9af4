/* view-affinity.c — `affinity`: inter-layer expert affinity (METHODS §2)
 * of one MoE layer pair l → l+d as an E×E heat map of Q (top-k
 * membership, row-normalised: row i is where the tokens of expert i at l
 * go at l+d), or with --color-by lift of log2 Q/q(j); rows and columns in
 * one id, load or cluster order (the same permutation on both axes, so the
 * diagonal stays "same expert id"), the largest transitions listed beside.
 *
 * Data: the stored tables an_affinity_cells / an_affinity when `moescope
 * analyze affinity` has run (whatever its --distance: the figure names the
 * pair), else the analysis library's accumulator for the pair l → next MoE
 * layer over a scan of the packed routing (the numbers of
 * ms_analyze_affinity, tests/test-views-b.c checks it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"
#include "results.h"
#include "view-matrix.h"

/* n_i = C/P, q_j = Q/lift: the row and column loads the tooltips quote,
 * derived the same way from stored and computed cells. */
static void derive_loads(VbMatrix *m)
{
    int E = m->E;
    for (int i = 0; i < E; i++)
        for (int j = 0; j < E; j++) {
            size_t q = (size_t)i * E + j;
            if (!isfinite(m->load_r[i]) && m->P[q] > 0) m->load_r[i] = round(m->count[q] / m->P[q]);
            if (!isfinite(m->share_c[j]) && m->lift[q] > 0 && isfinite(m->lift[q])) m->share_c[j] = m->Q[q] / m->lift[q];
        }
    /* rows never selected: n_i = 0 (their Q row is undefined) */
    for (int i = 0; i < E; i++) {
        bool any = false;
        for (int j = 0; j < E; j++) any |= m->count[(size_t)i * E + j] > 0;
        if (!any && !isfinite(m->load_r[i])) m->load_r[i] = 0;
    }
}

/* Stored cells of the pair starting at `from`: 1 found, 0 not, < 0 error. */
static int read_stored(MsTraceDb *db, int64_t run, int from, VbMatrix *m, MsError *err)
{
    static const char *const cols[] = { "from_layer", "to_layer", "i", "j", "C", "P", "Q", "lift" };
    int ix[8];
    MsTraceCursor *c = vb_table_open(db, run, "an_affinity_cells", "affinity", cols, 8, ix, err);
    if (!c) return err && err->code ? err->code : MS_EDB;
    int E = m->E, rc, to = -1;
    int64_t rows = 0;
    const MsTraceValue *v;
    while ((rc = ms_trace_table_next(c, &v, err)) == 1) {
        if (vb_num(&v[ix[0]]) != from) continue;
        double t = vb_num(&v[ix[1]]), i = vb_num(&v[ix[2]]), j = vb_num(&v[ix[3]]);
        if (to < 0 && t > from) to = (int)t;
        if (t != to) continue;
        if (!(i >= 0 && i < E && j >= 0 && j < E)) {
            rc = ms_error_set(err, MS_EFORMAT, "%s: an_affinity_cells: row (%d -> %d, i %g, j %g) outside the %d experts",
                              ms_trace_path(db), from, to, i, j, E);
            break;
        }
        size_t q = (size_t)i * E + (size_t)j;
        m->count[q] = vb_num(&v[ix[4]]);
        m->P[q] = vb_num(&v[ix[5]]);
        m->Q[q] = vb_num(&v[ix[6]]);
        m->lift[q] = vb_num(&v[ix[7]]);
        rows++;
    }
    ms_trace_cursor_free(c);
    if (rc < 0 || rows == 0) return rc < 0 ? rc : 0;
    m->to = to;
    /* tokens behind the pair, from the summary table when it is there too */
    char *params = NULL;
    if (vb_stored(db, run, "an_affinity", &params, NULL) == 1) {
        static const char *const pc[] = { "from_layer", "to_layer", "n_tokens" };
        int px[3];
        MsTraceCursor *s = vb_table_open(db, run, "an_affinity", "affinity", pc, 3, px, NULL);
        while (s && ms_trace_table_next(s, &v, NULL) == 1)
            if (vb_num(&v[px[0]]) == from && vb_num(&v[px[1]]) == to) m->n_tokens = (int64_t)vb_num(&v[px[2]]);
        ms_trace_cursor_free(s);
    }
    free(params);
    derive_loads(m);
    return 1;
}

typedef struct {
    MsAffAcc *acc;
    int a, b;
} Feed;

static int feed(void *user, const VbToken *t, MsError *err)
{
    Feed *f = user;
    int rc = ms_aff_acc_add(f->acc, t->ids + (size_t)f->a * t->stride, NULL, t->n[f->a],
                            t->ids + (size_t)f->b * t->stride, NULL, t->n[f->b]);
    return rc < 0 ? ms_error_set(err, rc, "affinity: expert id out of range") : 0;
}

static int compute(MsTraceDb *db, const MsTraceRunInfo *ri, int slot, const MsViewParams *p, VbMatrix *m,
                   MsError *err)
{
    bool want[MS_TRACE_MAX_LAYER] = { false };
    want[slot] = want[slot + 1] = true;
    Feed f = { ms_aff_acc_new(m->E), slot, slot + 1 };
    if (!f.acc) return ms_error_set(err, MS_ENOMEM, "out of memory");
    int rc = vb_scan(db, ri, want, NULL, 0, 0, feed, &f, p->progress, p->progress_user, p->cancel, "affinity", err);
    MsAffinityResult *r = NULL;
    if (rc >= 0) {
        MsAnHead h = { ri->run_id, m->from, ri->model.n_layer, m->E };
        r = ms_affinity_result_build(&h, MS_AN_ROLE_ALL, 1, MS_AFF_TOPK, 1, &f.acc, &m->from, &m->to, 1);
        if (!r) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    if (r) {
        const MsAffPair *pr = &r->pairs[0];
        size_t EE = (size_t)m->E * m->E;
        for (size_t q = 0; q < EE; q++) {
            m->count[q] = pr->C[q];
            m->P[q] = pr->P[q];
            m->Q[q] = pr->Q[q];
            m->lift[q] = pr->lift[q];
        }
        for (int e = 0; e < m->E; e++) m->load_r[e] = pr->n[e];
        m->n_tokens = pr->n_tokens;
        derive_loads(m);
    }
    ms_affinity_result_free(r);
    ms_aff_acc_free(f.acc);
    return rc;
}

static int prepare(MsTraceDb *db, const MsViewParams *p, void **model, MsError *err)
{
    *model = NULL;
    MsTraceRunInfo ri;
    int rc = vb_run(db, p->run, &ri, err);
    if (rc < 0) return rc;
    VbMetric metric;
    VbMatrix *m = NULL;
    int layers[MS_TRACE_MAX_LAYER], nl = vb_moe_layers(&ri, layers);
    int slot = 0, from = vb_pick_layer(db, &ri, p->layer, &slot, err);
    if (from < 0) rc = from;
    else if (slot + 1 >= nl)
        rc = ms_error_set(err, MS_EINVAL, "%s: run %lld: layer %d is the last MoE layer; affinity shows a pair "
                          "l -> next MoE layer (choose --layer %d..%d)", ms_trace_path(db), (long long)ri.run_id,
                          from, layers[0], nl >= 2 ? layers[nl - 2] : layers[0]);
    if (rc >= 0) rc = vb_matrix_metric(VB_MAT_AFF, p->color_by, &metric, err);
    if (rc >= 0 && !(m = vb_matrix_new(VB_MAT_AFF, metric, ri.model.n_expert, err))) rc = err ? err->code : MS_ENOMEM;
    if (rc >= 0) {
        m->run = ri.run_id;
        m->from = from;
        m->to = layers[slot + 1];
        m->distance = 1;
        char *params = NULL;
        int st = vb_stored(db, ri.run_id, "an_affinity_cells", &params, err);
        int64_t pl, d;
        if (st == 1 && vb_param_int(params, "layer", &pl) && pl != from) st = 0;   /* another layer only */
        if (st == 1) {
            vb_param_str(params, "role", m->role, sizeof m->role);
            if (vb_param_int(params, "distance", &d)) m->distance = (int)d;
        }
        free(params);
        if (st == 1) st = read_stored(db, ri.run_id, from, m, err);
        if (st < 0) rc = st;
        else if (st == 1) m->stored = true;
        else if (!p->run_missing)
            rc = vb_not_stored(db, ri.run_id, "affinity analysis of this layer", "moescope analyze affinity", err);
        else {
            m->distance = 1;
            snprintf(m->role, sizeof m->role, "all");
            rc = compute(db, &ri, slot, p, m, err);
        }
    }
    if (rc >= 0) rc = vb_matrix_finish(m, p->order, p->top, err);
    ms_trace_run_info_clear(&ri);
    if (rc < 0) {
        vb_matrix_free(m);
        return rc;
    }
    *model = m;
    return 0;
}

const MsViewClass ms_view_affinity = {
    .name = "affinity",
    .title = "Inter-layer expert affinity",
    .summary = "experts at layer l x experts at the next MoE layer: where tokens go (Q)",
    .colors = MS_VIEW_COLOR_BIT(MS_VIEW_COLOR_LIFT),
    .prepare = prepare,
    .free_model = vb_matrix_free,
    .draw = vb_matrix_draw,
    .hit = vb_matrix_hit,
    .default_size = vb_matrix_default_size,
};
