/* view-coactivation.c — `coactivation`: the E×E co-activation matrix of
 * one MoE layer (METHODS §1.1) as a heat map, coloured by log2 lift by
 * default (--color-by jaccard for the Jaccard index), rows and columns in
 * id, load or cluster order, the strongest pairs listed beside it.
 *
 * Why lift: N_ij·M / (N_i·N_j) compares a pair with what independent
 * experts of the same loads would give, so busy experts do not light up
 * every row (Jaccard and raw counts grow with load), and its log is signed:
 * red pairs go together more often than chance, blue ones avoid each other,
 * white is independence — the structure a router has learned.
 *
 * Data: the stored table an_coactivation when `moescope analyze
 * coactivation` has run for the layer, else the analysis library's
 * accumulator over a scan of the packed routing (the same counts as
 * ms_analyze_coactivation, tests/test-views-b.c checks it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"
#include "results.h"
#include "view-matrix.h"

/* Stored rows of the layer: 1 when found, 0 when the table has none. */
static int read_stored(MsTraceDb *db, int64_t run, int layer, VbMatrix *m, MsError *err)
{
    static const char *const cols[] = { "layer", "i", "j", "n_ij", "coact", "jaccard", "lift" };
    int ix[7];
    MsTraceCursor *c = vb_table_open(db, run, "an_coactivation", "coactivation", cols, 7, ix, err);
    if (!c) return err && err->code ? err->code : MS_EDB;
    int E = m->E, rc;
    int64_t rows = 0;
    double *coact = calloc((size_t)E * E, sizeof(double));
    if (!coact) {
        ms_trace_cursor_free(c);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    const MsTraceValue *v;
    while ((rc = ms_trace_table_next(c, &v, err)) == 1) {
        if (vb_num(&v[ix[0]]) != layer) continue;
        double i = vb_num(&v[ix[1]]), j = vb_num(&v[ix[2]]);
        if (!(i >= 0 && i < E && j >= 0 && j < E) || i == j) {
            rc = ms_error_set(err, MS_EFORMAT, "%s: an_coactivation: row (layer %d, i %g, j %g) outside the %d experts",
                              ms_trace_path(db), layer, i, j, E);
            break;
        }
        size_t q = (size_t)i * E + (size_t)j;
        m->count[q] = vb_num(&v[ix[3]]);
        coact[q] = vb_num(&v[ix[4]]);
        m->jaccard[q] = vb_num(&v[ix[5]]);
        m->lift[q] = vb_num(&v[ix[6]]);
        rows++;
    }
    ms_trace_cursor_free(c);
    if (rc < 0 || rows == 0) {
        free(coact);
        return rc < 0 ? rc : 0;
    }
    /* the table keeps pairs i != j only: N_i = n_ij / coact_ij (any pair
     * with coact > 0 gives it exactly), M = lift·N_i·N_j / n_ij */
    for (int i = 0; i < E; i++)
        for (int j = 0; j < E && !isfinite(m->load_r[i]); j++) {
            size_t q = (size_t)i * E + j;
            if (i != j && coact[q] > 0 && m->count[q] > 0) m->load_r[i] = round(m->count[q] / coact[q]);
        }
    for (int i = 0; i < E && m->n_tokens < 0; i++)
        for (int j = 0; j < E; j++) {
            size_t q = (size_t)i * E + j;
            if (i != j && m->count[q] > 0 && isfinite(m->load_r[i]) && isfinite(m->load_r[j]) && m->lift[q] > 0) {
                m->n_tokens = llround(m->lift[q] * m->load_r[i] * m->load_r[j] / m->count[q]);
                break;
            }
        }
    for (int i = 0; i < E; i++) {
        m->count[(size_t)i * E + i] = m->load_r[i];
        m->jaccard[(size_t)i * E + i] = isfinite(m->load_r[i]) && m->load_r[i] > 0 ? 1 : NAN;
        m->lift[(size_t)i * E + i] = m->n_tokens > 0 && m->load_r[i] > 0 ? (double)m->n_tokens / m->load_r[i] : NAN;
    }
    free(coact);
    return 1;
}

typedef struct {
    MsCoactAcc *acc;
    int slot;
} Feed;

static int feed(void *user, const VbToken *t, MsError *err)
{
    Feed *f = user;
    int rc = ms_coact_acc_add(f->acc, t->ids + (size_t)f->slot * t->stride, t->n[f->slot]);
    return rc < 0 ? ms_error_set(err, rc, "coactivation: expert id out of range") : 0;
}

static int compute(MsTraceDb *db, const MsTraceRunInfo *ri, int layer, int slot, const MsViewParams *p, VbMatrix *m,
                   MsError *err)
{
    bool want[MS_TRACE_MAX_LAYER] = { false };
    want[slot] = true;
    Feed f = { ms_coact_acc_new(m->E), slot };
    if (!f.acc) return ms_error_set(err, MS_ENOMEM, "out of memory");
    int rc = vb_scan(db, ri, want, NULL, 0, 0, feed, &f, p->progress, p->progress_user, p->cancel, "coactivation", err);
    MsCoactivationResult *r = NULL;
    if (rc >= 0) {
        MsAnHead h = { ri->run_id, layer, ri->model.n_layer, m->E };
        r = ms_coactivation_result_build(&h, MS_AN_ROLE_ALL, &f.acc, &layer, 1);
        if (!r) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    if (r) {
        const MsCoactLayer *l = &r->layers[0];
        size_t EE = (size_t)m->E * m->E;
        for (size_t q = 0; q < EE; q++) {
            m->count[q] = (double)l->N[q];
            m->jaccard[q] = l->jaccard[q];
            m->lift[q] = l->lift[q];
        }
        for (int e = 0; e < m->E; e++) m->load_r[e] = (double)l->N[(size_t)e * m->E + e];
        m->n_tokens = l->n_tokens;
    }
    ms_coactivation_result_free(r);
    ms_coact_acc_free(f.acc);
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
    int slot = 0, layer = vb_pick_layer(db, &ri, p->layer, &slot, err);
    if (layer < 0) rc = layer;
    if (rc >= 0) rc = vb_matrix_metric(VB_MAT_COACT, p->color_by, &metric, err);
    if (rc >= 0 && !(m = vb_matrix_new(VB_MAT_COACT, metric, ri.model.n_expert, err))) rc = err ? err->code : MS_ENOMEM;
    if (rc >= 0) {
        m->run = ri.run_id;
        m->from = m->to = layer;
        char *params = NULL;
        int st = vb_stored(db, ri.run_id, "an_coactivation", &params, err);
        int64_t pl;
        if (st == 1 && vb_param_int(params, "layer", &pl) && pl != layer) st = 0;   /* another layer only */
        if (st == 1) vb_param_str(params, "role", m->role, sizeof m->role);
        free(params);
        if (st == 1) st = read_stored(db, ri.run_id, layer, m, err);
        if (st < 0) rc = st;
        else if (st == 1) m->stored = true;
        else if (!p->run_missing)
            rc = vb_not_stored(db, ri.run_id, "coactivation analysis of this layer", "moescope analyze coactivation", err);
        else
            rc = compute(db, &ri, layer, slot, p, m, err);
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

const MsViewClass ms_view_coactivation = {
    .name = "coactivation",
    .title = "Expert co-activation",
    .summary = "one layer's experts x experts: how often two are selected together (lift)",
    .colors = MS_VIEW_COLOR_BIT(MS_VIEW_COLOR_LIFT) | MS_VIEW_COLOR_BIT(MS_VIEW_COLOR_JACCARD),
    .prepare = prepare,
    .free_model = vb_matrix_free,
    .draw = vb_matrix_draw,
    .hit = vb_matrix_hit,
    .default_size = vb_matrix_default_size,
};
