/* view-sweep.c — `sweep`: the candidates of a sweep ranked by their effect,
 * as horizontal bars of mean KL (left) and Δ perplexity (right), labelled
 * with their set; beside each bar the random controls of the same shape
 * (the same number of experts per layer, docs/experiments.md): a band of
 * their mean ± sample standard deviation and one dot per control, and the
 * candidate's z-score against them.  Data: the tables sweep and
 * sweep_candidate through ms_trace_sweep_rows (--sweep ID, default the
 * newest). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "view-c-common.h"

typedef struct {
    int n_ctl;
    double mean[2], sd[2];        /* of the controls: [0] mean KL, [1] Δppl; NaN with fewer than 2 */
    int first;                    /* index of its first control in ctl[] */
} Shape;

typedef struct {
    const MsSweepRow *row;
    int shape;                    /* −1: no controls of its shape */
} Cand;

typedef struct {
    MsSweepRows rows;             /* owns the strings */
    int n_cand, n_cand_total, n_ctl;
    Cand *cand;                   /* shown candidates, by rank */
    const MsSweepRow **ctl;       /* controls grouped by shape */
    int n_shapes;
    Shape *shape;
    double lo[2], hi[2];          /* x ranges of the two panels */
    char title[300];
} SwModel;

static void sw_free(void *p)
{
    SwModel *m = p;
    if (!m) return;
    ms_trace_sweep_rows_clear(&m->rows);
    free(m->cand);
    free(m->ctl);
    free(m->shape);
    free(m);
}

typedef struct {
    int *count;
} Hist;

static int hist_visit(void *user, const MsInterventionEntry *e)
{
    Hist *h = user;
    if (e->expert >= 0) h->count[e->layer]++;
    return 0;
}

/* A set's shape as text: "layer:count" for each layer it touches ("?" when
 * the text does not parse for this model). */
static void shape_key(const MsSweepRows *r, const char *iv_text, char *key, size_t size)
{
    snprintf(key, size, "?");
    if (r->n_layer <= 0 || r->n_expert <= 0 || r->n_layer > MS_TRACE_MAX_LAYER) return;
    MsIntervention *iv = ms_intervention_new(r->n_layer, r->n_expert);
    int count[MS_TRACE_MAX_LAYER] = { 0 };
    Hist h = { count };
    if (iv && ms_intervention_parse_text(iv, iv_text ? iv_text : "", NULL) == 0 &&
        ms_intervention_list(iv, hist_visit, &h) == 0) {
        size_t o = 0;
        key[0] = 0;
        for (int l = 0; l < r->n_layer && o < size; l++)
            if (count[l]) o += (size_t)snprintf(key + o, size - o, "%d:%d,", l, count[l]);
    }
    ms_intervention_free(iv);
}

static int by_rank(const void *a, const void *b)
{
    const Cand *x = a, *y = b;
    int rx = x->row->rank > 0 ? x->row->rank : 1 << 30, ry = y->row->rank > 0 ? y->row->rank : 1 << 30;
    if (rx != ry) return rx < ry ? -1 : 1;
    return (x->row->cand > y->row->cand) - (x->row->cand < y->row->cand);
}

static double metric(const MsSweepRow *r, int j) { return j == 0 ? r->kl_mean : r->dppl; }

static int sw_prepare(MsTraceDb *db, const MsViewParams *p, void **out, MsError *err)
{
    *out = NULL;
    SwModel *m = calloc(1, sizeof *m);
    if (!m) return ms_error_set(err, MS_ENOMEM, "out of memory");
    int rc = ms_trace_sweep_rows(db, p->sweep, &m->rows, err);
    if (rc < 0) {
        sw_free(m);
        return rc;
    }
    const MsSweepRows *r = &m->rows;
    int n = r->n_rows;
    m->cand = calloc((size_t)(n ? n : 1), sizeof *m->cand);
    m->ctl = calloc((size_t)(n ? n : 1), sizeof *m->ctl);
    m->shape = calloc((size_t)(n ? n : 1), sizeof *m->shape);
    char (*keys)[96] = calloc((size_t)(n ? n : 1), sizeof *keys);
    int *shape_of = calloc((size_t)(n ? n : 1), sizeof *shape_of);
    char (*skey)[96] = calloc((size_t)(n ? n : 1), sizeof *skey);
    if (!m->cand || !m->ctl || !m->shape || !keys || !shape_of || !skey) {
        free(keys);
        free(shape_of);
        free(skey);
        sw_free(m);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    /* shapes of every set; the shapes that have controls */
    for (int i = 0; i < n; i++) {
        shape_key(r, r->rows[i].interventions, keys[i], sizeof keys[i]);
        shape_of[i] = -1;
        if (strcmp(r->rows[i].kind, "control")) continue;
        int s = 0;
        while (s < m->n_shapes && strcmp(skey[s], keys[i])) s++;
        if (s == m->n_shapes) snprintf(skey[m->n_shapes++], sizeof skey[0], "%s", keys[i]);
        shape_of[i] = s;
        m->shape[s].n_ctl++;
    }
    int o = 0;
    for (int s = 0; s < m->n_shapes; s++) {
        m->shape[s].first = o;
        o += m->shape[s].n_ctl;
        m->shape[s].n_ctl = 0;
    }
    for (int i = 0; i < n; i++) {
        if (shape_of[i] < 0) continue;
        Shape *sh = &m->shape[shape_of[i]];
        m->ctl[sh->first + sh->n_ctl++] = &r->rows[i];
        m->n_ctl++;
    }
    /* mean and sample standard deviation, as the z-scores were computed */
    for (int s = 0; s < m->n_shapes; s++) {
        Shape *sh = &m->shape[s];
        for (int j = 0; j < 2; j++) {
            double s1 = 0, s2 = 0;
            int k = 0;
            for (int c = 0; c < sh->n_ctl; c++) {
                double v = metric(m->ctl[sh->first + c], j);
                if (isnan(v)) continue;
                s1 += v;
                s2 += v * v;
                k++;
            }
            sh->mean[j] = k ? s1 / k : NAN;
            sh->sd[j] = k >= 2 ? sqrt(fmax(0.0, (s2 - k * sh->mean[j] * sh->mean[j]) / (k - 1))) : NAN;
        }
    }
    for (int i = 0; i < n; i++) {
        if (!strcmp(r->rows[i].kind, "control")) continue;
        int s = 0;
        while (s < m->n_shapes && strcmp(skey[s], keys[i])) s++;
        m->cand[m->n_cand++] = (Cand){ &r->rows[i], s < m->n_shapes ? s : -1 };
    }
    free(keys);
    free(shape_of);
    free(skey);
    m->n_cand_total = m->n_cand;
    if (m->n_cand == 0) {
        rc = ms_error_set(err, MS_ENOTFOUND, "%s: sweep %lld has no candidate", ms_trace_path(db), (long long)r->sweep_id);
        sw_free(m);
        return rc;
    }
    qsort(m->cand, (size_t)m->n_cand, sizeof *m->cand, by_rank);
    int top = p->top > 0 ? p->top : 40;
    if (m->n_cand > top) m->n_cand = top;
    /* x ranges: from 0 (or below) to the largest value, controls' bands included */
    for (int j = 0; j < 2; j++) {
        double lo = 0, hi = 0;
        for (int i = 0; i < m->n_cand; i++) {
            const Cand *c = &m->cand[i];
            double v = metric(c->row, j);
            if (isfinite(v)) lo = fmin(lo, v), hi = fmax(hi, v);
            if (c->shape < 0) continue;
            const Shape *sh = &m->shape[c->shape];
            for (int k = 0; k < sh->n_ctl; k++) {
                double u = metric(m->ctl[sh->first + k], j);
                if (isfinite(u)) lo = fmin(lo, u), hi = fmax(hi, u);
            }
            if (isfinite(sh->mean[j]) && isfinite(sh->sd[j]))
                lo = fmin(lo, j == 0 ? fmax(0, sh->mean[j] - sh->sd[j]) : sh->mean[j] - sh->sd[j]),
                hi = fmax(hi, sh->mean[j] + sh->sd[j]);
        }
        if (!(hi > lo)) hi = lo + 1;
        double span = hi - lo;
        /* a column at the right for the z-scores */
        m->lo[j] = lo < 0 ? lo - span * 0.04 : 0;
        m->hi[j] = hi + span * 0.04 + (hi - m->lo[j]) * 0.2;
    }
    char more[64] = "";
    if (m->n_cand < m->n_cand_total) snprintf(more, sizeof more, ", top %d of %d", m->n_cand, m->n_cand_total);
    snprintf(m->title, sizeof m->title, "Sweep %lld: %d candidate sets ranked by mean KL, against %d random controls%s",
             (long long)r->sweep_id, m->n_cand_total, m->n_ctl, more);
    *out = m;
    return 0;
}

/* ------------------------------------------------------------ geometry */

typedef struct {
    double title_h, key_y, key_h;
    VcKey keys[4];
    int n_keys;
    MsPlotRect panel[2];
    MsPlotFrame f[2];
    MsPlotGeom g[2];
    MsPlotGridMap map[2];
} SwLayout;

static const MsRgb BAR = { 0.27, 0.47, 0.75 }, BAND = { 0.86, 0.86, 0.86 }, DOT = { 0.25, 0.25, 0.25 };

static const char *cand_label(void *user, int64_t i, char *buf, size_t size)
{
    const SwModel *m = user;
    (void)buf;
    (void)size;
    return i >= 0 && i < m->n_cand ? m->cand[i].row->label : "";
}

static int sw_layout(const SwModel *m, const MsViewState *s, double w, double h, SwLayout *L, MsError *err)
{
    memset(L, 0, sizeof *L);
    L->title_h = vc_title_band(NULL, &s->style, s->title ? s->title : m->title, w);
    int nk = 0;
    L->keys[nk++] = (VcKey){ "candidate", BAR, 2 };
    if (m->n_ctl > 0) {
        L->keys[nk++] = (VcKey){ "random controls of the same shape: mean \xC2\xB1 sd", BAND, 0 };
        L->keys[nk++] = (VcKey){ "one control", DOT, 1 };
        /* z is NaN where the controls do not vary (e.g. a few short
         * prompts on which no control expert is ever chosen): say so
         * instead of keying numbers that are not drawn */
        bool any_z = false;
        for (int i = 0; i < m->n_cand && !any_z; i++)
            any_z = isfinite(m->cand[i].row->z_kl) || isfinite(m->cand[i].row->z_dppl);
        L->keys[nk++] = (VcKey){ any_z ? "z: z-score against them" : "no z-scores: the controls do not vary", VC_INK, -1 };
    }
    L->n_keys = nk;
    MsPlotText *t = ms_plot_text_new(&s->style);
    if (!t) return ms_error_set(err, MS_ENOMEM, "out of memory");
    double pad = ms_plot_text_pad(t);
    L->key_y = L->title_h + pad * 0.4;
    L->key_h = vc_key_line(NULL, t, L->keys, nk, 0, 0, w - 2 * pad);
    ms_plot_text_free(t);
    double top = ceil(L->key_y + L->key_h);
    double lw = round(w * 0.56);
    L->panel[0] = (MsPlotRect){ 0, top, lw, h - top };
    L->panel[1] = (MsPlotRect){ lw, top, w - lw, h - top };
    double y0 = 0, y1 = m->n_cand;
    vc_window(&y0, &y1, s->y0, s->y1, 1);
    static const char *const xt[2] = { "Mean KL (nats)", "\xCE\x94 perplexity" };
    for (int j = 0; j < 2; j++) {
        L->f[j] = (MsPlotFrame){
            .x = { .kind = MS_PLOT_AXIS_LINEAR, .title = xt[j], .lo = m->lo[j], .hi = m->hi[j], .grid = true },
            .y = j == 0 ? (MsPlotAxis){ .kind = MS_PLOT_AXIS_CATEGORY, .title = "Candidate set (rank order)", .lo = y0,
                                        .hi = y1, .count = m->n_cand, .label = cand_label, .label_user = (void *)m,
                                        .label_share = 0.4 }   /* the sets are what the figure is about */
                        : (MsPlotAxis){ .kind = MS_PLOT_AXIS_NONE, .lo = y0, .hi = y1, .flip = true },
            .style = &s->style,
        };
        int rc = ms_plot_layout(&L->f[j], L->panel[j].w, L->panel[j].h, &L->g[j], err);
        if (rc < 0) return rc;
        L->map[j] = ms_plot_grid_map(&L->g[j], m->n_cand, 1);
        L->map[j].col0 = 0;
        L->map[j].col1 = 1;
    }
    return 0;
}

static int sw_draw(cairo_t *cr, double w, double h, const void *model, const MsViewState *s, MsError *err)
{
    const SwModel *m = model;
    SwLayout L;
    int rc = sw_layout(m, s, w, h, &L, err);
    if (rc < 0) return rc;
    cairo_save(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_restore(cr);
    vc_title_band(cr, &s->style, s->title ? s->title : m->title, w);
    MsPlotText *t = ms_plot_text_new(&s->style);
    if (!t) return ms_error_set(err, MS_ENOMEM, "out of memory");
    double pad = ms_plot_text_pad(t);
    vc_key_line(cr, t, L.keys, L.n_keys, pad, L.key_y, w - 2 * pad);
    for (int j = 0; j < 2; j++) {
        const MsPlotGeom *g = &L.g[j];
        cairo_save(cr);
        cairo_translate(cr, L.panel[j].x, L.panel[j].y);
        ms_plot_draw_back(cr, &L.f[j], g);
        cairo_save(cr);
        cairo_rectangle(cr, g->plot.x, g->plot.y, g->plot.w, g->plot.h);
        cairo_clip(cr);
        int64_t r0 = (int64_t)floor(L.map[j].row0), r1 = (int64_t)ceil(L.map[j].row1);
        double x0 = ms_plot_x_to_px(g, 0);
        for (int64_t i = MS_MAX(r0, 0); i < MS_MIN(r1, m->n_cand); i++) {
            const Cand *c = &m->cand[i];
            MsPlotRect row;
            ms_plot_grid_cell_rect(&L.map[j], i, 0, &row);
            double cy = row.y + row.h / 2;
            if (s->hover_row == i) {
                cairo_set_source_rgb(cr, 1.0, 0.97, 0.80);
                cairo_rectangle(cr, g->plot.x, row.y, g->plot.w, row.h);
                cairo_fill(cr);
            }
            if (c->shape >= 0) {
                const Shape *sh = &m->shape[c->shape];
                if (isfinite(sh->mean[j]) && isfinite(sh->sd[j])) {
                    /* KL is never negative: its band stops at 0 */
                    double lo = sh->mean[j] - sh->sd[j];
                    if (j == 0) lo = fmax(lo, 0);
                    double a = ms_plot_x_to_px(g, lo), b = ms_plot_x_to_px(g, sh->mean[j] + sh->sd[j]);
                    cairo_set_source_rgb(cr, BAND.r, BAND.g, BAND.b);
                    cairo_rectangle(cr, fmin(a, b), row.y + row.h * 0.08, fmax(fabs(b - a), 1), row.h * 0.84);
                    cairo_fill(cr);
                    double mx = round(ms_plot_x_to_px(g, sh->mean[j])) + 0.5;
                    cairo_set_source_rgb(cr, 0.55, 0.55, 0.55);
                    cairo_set_line_width(cr, 1);
                    cairo_move_to(cr, mx, row.y + row.h * 0.08);
                    cairo_line_to(cr, mx, row.y + row.h * 0.92);
                    cairo_stroke(cr);
                }
            }
            double v = metric(c->row, j);
            if (isfinite(v)) {
                double xv = ms_plot_x_to_px(g, v);
                double bh = fmax(1, row.h * 0.5);
                cairo_set_source_rgb(cr, BAR.r, BAR.g, BAR.b);
                cairo_rectangle(cr, fmin(x0, xv), cy - bh / 2, fmax(fabs(xv - x0), 1), bh);
                cairo_fill(cr);
            }
            if (c->shape >= 0) {
                const Shape *sh = &m->shape[c->shape];
                double rad = fmax(1.5, fmin(row.h * 0.16, pad * 0.5));
                for (int k = 0; k < sh->n_ctl; k++) {
                    double u = metric(m->ctl[sh->first + k], j);
                    if (!isfinite(u)) continue;
                    double jy = ((k % 5) - 2) * row.h * 0.1;   /* a fixed jitter so equal values stay apart */
                    cairo_new_sub_path(cr);
                    cairo_arc(cr, ms_plot_x_to_px(g, u), cy + jy, rad, 0, 2 * M_PI);
                }
                cairo_set_source_rgb(cr, DOT.r, DOT.g, DOT.b);
                cairo_set_line_width(cr, 1.2);
                cairo_stroke(cr);
            }
            /* the z-score, in the column at the right */
            double z = j == 0 ? c->row->z_kl : c->row->z_dppl;
            MsPlotTextSize sz;
            ms_plot_text_measure(t, MS_PLOT_ROLE_NOTE, "z 00.0", 0, &sz);
            if (isfinite(z) && isfinite(v) && row.h >= sz.height * 0.9) {
                char buf[48], num[32];
                vc_fmt_num(num, sizeof num, z, fabs(z) < 10 ? 2 : 1);
                snprintf(buf, sizeof buf, "z %s", num);
                MsPlotTextSize zs;
                ms_plot_text_measure(t, MS_PLOT_ROLE_NOTE, buf, 0, &zs);
                double xr = g->plot.x + g->plot.w - pad * 0.4;
                cairo_set_source_rgb(cr, 1, 1, 1);
                cairo_rectangle(cr, xr - zs.width - pad * 0.2, cy - zs.height / 2, zs.width + pad * 0.3, zs.height);
                cairo_fill(cr);
                cairo_set_source_rgb(cr, VC_INK.r, VC_INK.g, VC_INK.b);
                ms_plot_text_draw(t, cr, MS_PLOT_ROLE_NOTE, buf, 0, xr, cy, 1, 0.5, 0);
            }
        }
        /* zero line */
        cairo_set_source_rgb(cr, VC_MUTED.r, VC_MUTED.g, VC_MUTED.b);
        cairo_set_line_width(cr, 1);
        cairo_move_to(cr, round(x0) + 0.5, g->plot.y);
        cairo_line_to(cr, round(x0) + 0.5, g->plot.y + g->plot.h);
        cairo_stroke(cr);
        cairo_restore(cr);
        ms_plot_draw_axes(cr, &L.f[j], g);
        cairo_restore(cr);
    }
    ms_plot_text_free(t);
    return 0;
}

static bool sw_hit(const void *model, const MsViewState *s, double w, double h, double x, double y, MsViewHit *out)
{
    const SwModel *m = model;
    memset(out, 0, sizeof *out);
    out->layer = out->expert = out->prompt = out->pos = -1;
    out->row = out->col = out->item = -1;
    out->value = NAN;
    SwLayout L;
    if (sw_layout(m, s, w, h, &L, NULL) < 0) return false;
    for (int j = 0; j < 2; j++) {
        int64_t r, c;
        if (!ms_plot_grid_hit(&L.map[j], x - L.panel[j].x, y - L.panel[j].y, &r, &c)) continue;
        const Cand *cd = &m->cand[r];
        const MsSweepRow *q = cd->row;
        out->kind = MS_HIT_ITEM;
        out->row = r;
        out->col = j;
        out->item = q->cand;
        out->value = metric(q, j);
        int n = snprintf(out->text, sizeof out->text,
                         "rank %d: %s (%d expert%s)\nmean KL %.4g nats (z %.2f), \xCE\x94ppl %+.4g (z %.2f)\n"
                         "top-1 agreement %.4f, expert set changed %.4f", q->rank, q->label, q->n_experts,
                         q->n_experts == 1 ? "" : "s", q->kl_mean, q->z_kl, q->dppl, q->z_dppl, q->top1_agreement,
                         q->changed_share);
        if (cd->shape >= 0) {
            const Shape *sh = &m->shape[cd->shape];
            snprintf(out->text + n, sizeof out->text - (size_t)n,
                     "\n%d controls of its shape: mean KL %.4g \xC2\xB1 %.4g, \xCE\x94ppl %+.4g \xC2\xB1 %.4g", sh->n_ctl,
                     sh->mean[0], sh->sd[0], sh->mean[1], sh->sd[1]);
        }
        return true;
    }
    return false;
}

static void sw_size(const void *model, double *w, double *h)
{
    const SwModel *m = model;
    *w = 1200;
    *h = fmin(1400, fmax(520, 170 + 26.0 * m->n_cand));
}

const MsViewClass ms_view_sweep = {
    .name = "sweep",
    .title = "Sweep",
    .summary = "candidate sets ranked by mean KL and perplexity change, beside the random controls (--sweep ID)",
    .prepare = sw_prepare,
    .free_model = sw_free,
    .draw = sw_draw,
    .hit = sw_hit,
    .default_size = sw_size,
};
