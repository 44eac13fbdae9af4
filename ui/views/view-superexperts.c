/* view-superexperts.c — `superexperts`: the largest down-projection output
 * of every expert (a_{l,e}, METHODS §4) as a layer × expert heat map on a
 * log scale, the flagged super experts outlined and labelled with the output
 * channel of their maximum.  Data: the stored tables an_superexperts_all and
 * an_superexperts of the run, or ms_analyze_superexperts (not written) when
 * they are missing.  Needs a run traced with --stats. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"
#include "view-c-common.h"

typedef struct {
    int layer, expert, row;
    double value;
    int64_t n_routed;
    int prompt, pos, channel;   /* −1 = unknown */
} SeItem;

typedef struct {
    int64_t run;
    int rows, E;
    int *layer;          /* block of each row */
    double *a;           /* rows × E, 0 = never routed */
    float *logv;         /* rows × E, log10 a (NaN: never routed) */
    bool *is_se;
    int n_se;
    SeItem *se;          /* by value, descending */
    MsPlotColorScale scale;
    bool any_missing;
    int layer_cut;       /* blocks >= this are not candidates (the rule's layer cut), −1 = unknown */
    char cut_label[96];
    char title[256];
} SeModel;

static void se_free(void *p)
{
    SeModel *m = p;
    if (!m) return;
    free(m->layer);
    free(m->a);
    free(m->logv);
    free(m->is_se);
    free(m->se);
    free(m);
}

static int se_alloc(SeModel *m, int rows, int E, int n_se, MsError *err)
{
    m->rows = rows;
    m->E = E;
    size_t n = (size_t)(rows > 0 ? rows : 1) * (size_t)(E > 0 ? E : 1);
    m->layer = calloc((size_t)(rows > 0 ? rows : 1), sizeof *m->layer);
    m->a = calloc(n, sizeof *m->a);
    m->logv = calloc(n, sizeof *m->logv);
    m->is_se = calloc(n, sizeof *m->is_se);
    m->se = calloc((size_t)(n_se > 0 ? n_se : 1), sizeof *m->se);
    if (!m->layer || !m->a || !m->logv || !m->is_se || !m->se) return ms_error_set(err, MS_ENOMEM, "out of memory");
    return 0;
}

static int from_result(SeModel *m, const MsSuperExpertsResult *r, MsError *err)
{
    int rc = se_alloc(m, r->n_slots, r->head.n_expert, r->n_se, err);
    if (rc < 0) return rc;
    memcpy(m->layer, r->slot_layer, (size_t)r->n_slots * sizeof *m->layer);
    size_t n = (size_t)r->n_slots * (size_t)r->head.n_expert;
    memcpy(m->a, r->a, n * sizeof *m->a);
    memcpy(m->is_se, r->is_se, n * sizeof *m->is_se);
    for (int i = 0; i < r->n_se; i++) {
        const MsSuperExpert *s = &r->se[i];
        m->se[i] = (SeItem){ s->layer, s->expert, -1, s->value, s->n_routed, s->prompt, s->pos, s->channel };
    }
    m->n_se = r->n_se;
    return 0;
}

static int cmp_int(const void *a, const void *b) { return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b); }

/* The stored tables: an_superexperts_all (the heat map, is_se) and, when
 * there are super experts, an_superexperts (their evidence and channel). */
static int from_tables(SeModel *m, MsTraceDb *db, int64_t run, int E, const char *cmd, MsError *err)
{
    static const char *const need_all[] = { "layer", "expert", "a", "is_se" };
    int ix[8];
    /* pass 1: the layers present */
    MsTraceCursor *c = vc_table_open(db, "an_superexperts_all", run, need_all, 4, ix, cmd, err);
    if (!c) return err && err->code ? err->code : MS_EDB;
    int layers[MS_TRACE_MAX_LAYER], nl = 0, rc;
    bool seen[MS_TRACE_MAX_LAYER] = { false };
    const MsTraceValue *v;
    while ((rc = ms_trace_table_next(c, &v, err)) == 1) {
        int64_t l = vc_val_int(&v[ix[0]], -1), e = vc_val_int(&v[ix[1]], -1);
        if (l < 0 || l >= MS_TRACE_MAX_LAYER || e < 0 || e >= E) {
            rc = ms_error_set(err, MS_EFORMAT, "%s: result table 'an_superexperts_all' has a row for layer %lld expert "
                              "%lld, outside the model (%d experts); run `%s` again", ms_trace_path(db), (long long)l,
                              (long long)e, E, cmd);
            break;
        }
        if (!seen[l]) {
            seen[l] = true;
            layers[nl++] = (int)l;
        }
    }
    ms_trace_cursor_free(c);
    if (rc < 0) return rc;
    qsort(layers, (size_t)nl, sizeof *layers, cmp_int);
    int row_of[MS_TRACE_MAX_LAYER];
    for (int i = 0; i < nl; i++) row_of[layers[i]] = i;

    /* the super experts */
    int n_se = 0;
    SeItem *se = NULL;
    int st = vc_find_stored(db, run, "superexperts", "an_superexperts", NULL, err);
    if (st < 0) return st;
    if (st == 1) {
        static const char *const need_se[] = { "layer", "expert", "value", "n_routed", "prompt", "pos", "channel" };
        if (!(c = vc_table_open(db, "an_superexperts", run, need_se, 7, ix + 0, cmd, err))) return err && err->code ? err->code : MS_EDB;
        int cap = 0;
        while ((rc = ms_trace_table_next(c, &v, err)) == 1) {
            if (n_se == cap) {
                cap = cap ? 2 * cap : 16;
                SeItem *ns = realloc(se, (size_t)cap * sizeof *ns);
                if (!ns) { rc = ms_error_set(err, MS_ENOMEM, "out of memory"); break; }
                se = ns;
            }
            se[n_se++] = (SeItem){ (int)vc_val_int(&v[ix[0]], -1), (int)vc_val_int(&v[ix[1]], -1), -1,
                                   vc_val_real(&v[ix[2]]), vc_val_int(&v[ix[3]], 0), (int)vc_val_int(&v[ix[4]], -1),
                                   (int)vc_val_int(&v[ix[5]], -1), (int)vc_val_int(&v[ix[6]], -1) };
        }
        ms_trace_cursor_free(c);
        if (rc < 0) {
            free(se);
            return rc;
        }
    }
    if ((rc = se_alloc(m, nl, E, n_se, err)) < 0) {
        free(se);
        return rc;
    }
    if (n_se) memcpy(m->se, se, (size_t)n_se * sizeof *se);
    free(se);
    m->n_se = n_se;
    memcpy(m->layer, layers, (size_t)nl * sizeof *layers);

    /* pass 2: the values */
    if (!(c = vc_table_open(db, "an_superexperts_all", run, need_all, 4, ix, cmd, err))) return err && err->code ? err->code : MS_EDB;
    while ((rc = ms_trace_table_next(c, &v, err)) == 1) {
        int l = (int)vc_val_int(&v[ix[0]], -1), e = (int)vc_val_int(&v[ix[1]], -1);
        if (l < 0 || l >= MS_TRACE_MAX_LAYER || !seen[l] || e < 0 || e >= E) continue;
        size_t q = (size_t)row_of[l] * (size_t)E + (size_t)e;
        double a = vc_val_real(&v[ix[2]]);
        m->a[q] = isfinite(a) ? a : 0;
        m->is_se[q] = vc_val_int(&v[ix[3]], 0) != 0;
    }
    ms_trace_cursor_free(c);
    return rc < 0 ? rc : 0;
}

/* Keep the rows of blocks lo..hi. */
static int keep_layers(SeModel *m, int lo, int hi, MsTraceDb *db, MsError *err)
{
    int w = 0;
    for (int r = 0; r < m->rows; r++) {
        if (m->layer[r] < lo || m->layer[r] > hi) continue;
        if (w != r) {
            m->layer[w] = m->layer[r];
            memmove(m->a + (size_t)w * m->E, m->a + (size_t)r * m->E, (size_t)m->E * sizeof *m->a);
            memmove(m->is_se + (size_t)w * m->E, m->is_se + (size_t)r * m->E, (size_t)m->E * sizeof *m->is_se);
        }
        w++;
    }
    if (w == 0)
        return ms_error_set(err, MS_ENOTFOUND, "%s: run %lld has no MoE layer in blocks %d-%d", ms_trace_path(db),
                            (long long)m->run, lo, hi);
    m->rows = w;
    int k = 0;
    for (int i = 0; i < m->n_se; i++)
        if (m->se[i].layer >= lo && m->se[i].layer <= hi) m->se[k++] = m->se[i];
    m->n_se = k;
    return 0;
}

static void finish(SeModel *m)
{
    double lo = INFINITY, hi = -INFINITY;
    size_t n = (size_t)m->rows * (size_t)m->E;
    for (size_t i = 0; i < n; i++) {
        if (m->a[i] > 0 && isfinite(m->a[i])) {
            double l = log10(m->a[i]);
            m->logv[i] = (float)l;
            lo = fmin(lo, l);
            hi = fmax(hi, l);
        } else {
            m->logv[i] = NAN;
            m->any_missing = true;
        }
    }
    if (!(hi >= lo)) lo = 0, hi = 1;
    m->scale = (MsPlotColorScale){ MS_CMAP_VIRIDIS, lo, hi };
    /* each super expert's row; flags come from is_se (an SE outside the rows is dropped) */
    int k = 0;
    for (int i = 0; i < m->n_se; i++) {
        for (int r = 0; r < m->rows; r++)
            if (m->layer[r] == m->se[i].layer) m->se[i].row = r;
        if (m->se[i].row >= 0 && m->se[i].expert >= 0 && m->se[i].expert < m->E) {
            m->is_se[(size_t)m->se[i].row * m->E + m->se[i].expert] = true;
            m->se[k++] = m->se[i];
        }
    }
    m->n_se = k;
}

/* The layer cut of a stored result: round(include_layers x n_layer), half to
 * even as the analysis computes it (analysis/superexperts.c); −1 when the
 * params do not say. */
static int stored_cut(const char *params, int n_layer)
{
    const char *k = params ? strstr(params, "\"include_layers\":") : NULL;
    if (!k || n_layer <= 0) return -1;
    char *e;
    double f = strtod(k + strlen("\"include_layers\":"), &e);
    if (e == k || !(f > 0 && f <= 1)) return -1;
    return (int)ms_round_half_even(f * n_layer);
}

static int se_prepare(MsTraceDb *db, const MsViewParams *p, void **out, MsError *err)
{
    *out = NULL;
    MsTraceRunInfo ri;
    int rc = vc_run_info(db, p->run, &ri, err);
    if (rc < 0) return rc;
    int64_t run = ri.run_id;
    int E = ri.model.n_expert, n_layer = ri.model.n_layer;
    bool stats = ri.has_stats;
    ms_trace_run_info_clear(&ri);
    if (!stats)
        return ms_error_set(err, MS_ENOTFOUND,
                            "%s: run %lld was traced without --stats; the superexperts view needs the expert output "
                            "stats (`moescope trace MODEL --prompts FILE --db %s --stats`)",
                            ms_trace_path(db), (long long)run, ms_trace_path(db));
    SeModel *m = calloc(1, sizeof *m);
    if (!m) return ms_error_set(err, MS_ENOMEM, "out of memory");
    m->run = run;
    char cmd[1200];
    vc_analyze_cmd(cmd, sizeof cmd, db, "superexperts", run, NULL);
    char *params = NULL;
    m->layer_cut = -1;
    int st = vc_find_stored(db, run, "superexperts", "an_superexperts_all", &params, err);
    if (st == 1) m->layer_cut = stored_cut(params, n_layer);
    free(params);
    if (st < 0) {
        rc = st;
    } else if (st == 1) {
        rc = from_tables(m, db, run, E, cmd, err);
    } else if (!p->run_missing) {
        rc = ms_error_set(err, MS_ENOTFOUND, "%s: run %lld has no superexperts result; run `%s` first (or plot without --no-run)",
                          ms_trace_path(db), (long long)run, cmd);
    } else {
        MsAnOptions o;
        ms_an_options_default(&o);
        o.run_id = run;
        o.write = false;
        o.progress = p->progress;
        o.progress_user = p->progress_user;
        o.cancel = p->cancel;
        MsSuperExpertsResult *r = NULL;
        rc = ms_analyze_superexperts(db, &o, &r, err);
        if (rc >= 0) rc = from_result(m, r, err);
        if (rc >= 0) m->layer_cut = r->info.layer_cut;
        ms_superexperts_result_free(r);
    }
    int lo = p->layer_lo, hi = p->layer_hi;
    if (lo < 0 && p->layer >= 0) lo = hi = p->layer;
    if (rc >= 0 && lo >= 0) rc = keep_layers(m, lo, hi, db, err);
    if (rc >= 0 && m->rows == 0)
        rc = ms_error_set(err, MS_ENOTFOUND, "%s: run %lld has no MoE layer to show", ms_trace_path(db), (long long)run);
    if (rc < 0) {
        se_free(m);
        return rc;
    }
    finish(m);
    /* say so when shown blocks are outside the rule's layer range (drawn, never
     * flagged: the rule considers blocks below round(include_layers x layers)) */
    if (m->layer_cut >= 0 && m->layer[m->rows - 1] >= m->layer_cut)
        snprintf(m->cut_label, sizeof m->cut_label, "blocks \xE2\x89\xA5 %d excluded", m->layer_cut);
    snprintf(m->title, sizeof m->title, "Super experts: max |down-proj output| per expert (run %lld)", (long long)run);
    *out = m;
    return 0;
}

/* ------------------------------------------------------------ geometry */

typedef struct {
    MsPlotFrame f;
    MsPlotColorbar cb;
    MsPlotLegendItem li[2];
    MsPlotLegend lg;
    MsPlotGeom g;
    MsPlotGridMap map;
} SeLayout;

static const char *row_label(void *user, int64_t i, char *buf, size_t size)
{
    const SeModel *m = user;
    snprintf(buf, size, "%d", i >= 0 && i < m->rows ? m->layer[i] : -1);
    return buf;
}

static int se_layout(const SeModel *m, const MsViewState *s, double w, double h, SeLayout *L, MsError *err)
{
    memset(L, 0, sizeof *L);
    L->cb = (MsPlotColorbar){ .scale = m->scale, .title = "log\xE2\x82\x81\xE2\x82\x80 max |down-proj output|",
                              .show_missing = m->any_missing };
    int n = 0;
    if (m->n_se > 0) L->li[n++] = (MsPlotLegendItem){ "super expert", VC_HIGHLIGHT };
    if (m->cut_label[0]) L->li[n++] = (MsPlotLegendItem){ m->cut_label, VC_MUTED };
    L->lg = (MsPlotLegend){ NULL, L->li, n };
    double x0 = 0, x1 = m->E, y0 = 0, y1 = m->rows;
    vc_window(&x0, &x1, s->x0, s->x1, 1);
    vc_window(&y0, &y1, s->y0, s->y1, 1);
    L->f = (MsPlotFrame){
        .title = s->title ? s->title : m->title,
        .x = { .kind = MS_PLOT_AXIS_CATEGORY, .title = "Expert", .lo = x0, .hi = x1, .count = m->E },
        .y = { .kind = MS_PLOT_AXIS_CATEGORY, .title = "Layer (block)", .lo = y0, .hi = y1, .count = m->rows,
               .label = row_label, .label_user = (void *)m },
        .colorbar = &L->cb,
        .legend = n > 0 ? &L->lg : NULL,
        .style = &s->style,
    };
    int rc = ms_plot_layout(&L->f, w, h, &L->g, err);
    if (rc < 0) return rc;
    L->map = ms_plot_grid_map(&L->g, m->rows, m->E);
    return 0;
}

/* Where super expert i's channel label goes: inside its cell when it fits
 * (*inside), else in a box above (or below) the cell within the plot.
 * false when the cell is not in view. */
static bool label_box(const SeModel *m, const SeLayout *L, MsPlotText *t, int i, char *text, size_t size,
                      MsPlotRect *box, bool *inside)
{
    const SeItem *x = &m->se[i];
    MsPlotRect c;
    if (!ms_plot_grid_cell_rect(&L->map, x->row, x->expert, &c)) return false;
    const MsPlotRect *p = &L->g.plot;
    if (c.x + c.w <= p->x || c.x >= p->x + p->w || c.y + c.h <= p->y || c.y >= p->y + p->h) return false;
    /* "channel N" inside the cell when it fits, else "ch N" in a box beside it */
    MsPlotTextSize sz;
    double pad = ms_plot_text_pad(t);
    if (x->channel >= 0) snprintf(text, size, "channel %d", x->channel);
    else snprintf(text, size, "channel ?");
    ms_plot_text_measure(t, MS_PLOT_ROLE_NOTE, text, 0, &sz);
    if (sz.width + 2 * pad <= c.w && sz.height + 0.4 * pad <= c.h) {
        *box = c;
        *inside = true;
        return true;
    }
    if (x->channel >= 0) snprintf(text, size, "ch %d", x->channel);
    else snprintf(text, size, "ch ?");
    ms_plot_text_measure(t, MS_PLOT_ROLE_NOTE, text, 0, &sz);
    *inside = false;
    double bw = ceil(sz.width + pad), bh = ceil(sz.height + 0.4 * pad);
    double bx = fmin(fmax(c.x + c.w / 2 - bw / 2, p->x), p->x + p->w - bw);
    double by = c.y - bh - 2;
    if (by < p->y) by = c.y + c.h + 2;
    if (by + bh > p->y + p->h) by = fmax(p->y, c.y + c.h / 2 - bh / 2);
    *box = (MsPlotRect){ bx, by, bw, bh };
    return true;
}

static int se_draw(cairo_t *cr, double w, double h, const void *model, const MsViewState *s, MsError *err)
{
    const SeModel *m = model;
    SeLayout L;
    int rc = se_layout(m, s, w, h, &L, err);
    if (rc < 0) return rc;
    ms_plot_draw_back(cr, &L.f, &L.g);
    MsPlotHeatmap hm = { .rows = m->rows, .cols = m->E, .values = m->logv, .scale = m->scale, .agg = MS_PLOT_AGG_PEAK };
    if ((rc = ms_plot_heatmap_draw(cr, &L.map, &hm, err)) < 0) return rc;
    cairo_save(cr);
    cairo_rectangle(cr, L.g.plot.x, L.g.plot.y, L.g.plot.w, L.g.plot.h);
    cairo_clip(cr);
    MsPlotText *t = ms_plot_text_new(&s->style);
    if (!t) {
        cairo_restore(cr);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    double lw = fmax(2, round(ms_plot_text_pad(t) * 0.5));
    /* the blocks the rule leaves out, washed in the legend's grey: drawn, never flagged */
    if (m->cut_label[0]) {
        cairo_set_source_rgba(cr, VC_MUTED.r, VC_MUTED.g, VC_MUTED.b, 0.7);
        for (int r = 0; r < m->rows; r++) {
            if (m->layer[r] < m->layer_cut) continue;
            for (int e = 0; e < m->E; e++) {
                MsPlotRect c;
                if (ms_plot_grid_cell_rect(&L.map, r, e, &c)) cairo_rectangle(cr, c.x, c.y, c.w, c.h);
            }
        }
        cairo_fill(cr);
    }
    for (int i = 0; i < m->n_se; i++) {
        MsPlotRect c;
        if (ms_plot_grid_cell_rect(&L.map, m->se[i].row, m->se[i].expert, &c)) {
            vc_outline(cr, &c, lw + 2, (MsRgb){ 1, 1, 1 });
            vc_outline(cr, &c, lw, VC_HIGHLIGHT);
        }
    }
    /* linked selection and hover */
    for (int r = 0; r < m->rows; r++) {
        if (s->sel_layer >= 0 && m->layer[r] == s->sel_layer && s->sel_expert >= 0 && s->sel_expert < m->E) {
            MsPlotRect c;
            if (ms_plot_grid_cell_rect(&L.map, r, s->sel_expert, &c)) vc_outline(cr, &c, lw, VC_INK);
        }
    }
    if (s->hover_row >= 0 && s->hover_row < m->rows && s->hover_col >= 0 && s->hover_col < m->E) {
        MsPlotRect c;
        if (ms_plot_grid_cell_rect(&L.map, s->hover_row, s->hover_col, &c)) vc_outline(cr, &c, 1.5, VC_INK);
    }
    /* channel labels */
    for (int i = 0; i < m->n_se; i++) {
        char text[64];
        MsPlotRect b;
        bool inside;
        if (!label_box(m, &L, t, i, text, sizeof text, &b, &inside)) continue;
        if (inside) {
            size_t q = (size_t)m->se[i].row * m->E + m->se[i].expert;
            MsRgb bg = ms_plot_scale_color(&m->scale, m->logv[q]);
            MsRgb fg = ms_plot_contrast_text(bg);
            cairo_set_source_rgb(cr, fg.r, fg.g, fg.b);
            ms_plot_text_draw(t, cr, MS_PLOT_ROLE_NOTE, text, 0, b.x + b.w / 2, b.y + b.h / 2, 0.5, 0.5, 0);
        } else {
            cairo_set_source_rgb(cr, 1, 1, 1);
            cairo_rectangle(cr, b.x, b.y, b.w, b.h);
            cairo_fill(cr);
            cairo_set_source_rgb(cr, VC_HIGHLIGHT.r, VC_HIGHLIGHT.g, VC_HIGHLIGHT.b);
            cairo_set_line_width(cr, 1);
            cairo_rectangle(cr, b.x + 0.5, b.y + 0.5, b.w - 1, b.h - 1);
            cairo_stroke(cr);
            cairo_set_source_rgb(cr, VC_INK.r, VC_INK.g, VC_INK.b);
            ms_plot_text_draw(t, cr, MS_PLOT_ROLE_NOTE, text, 0, b.x + b.w / 2, b.y + b.h / 2, 0.5, 0.5, 0);
        }
    }
    cairo_restore(cr);
    ms_plot_draw_axes(cr, &L.f, &L.g);
    ms_plot_text_free(t);
    return 0;
}

static void describe(const SeModel *m, int r, int e, MsViewHit *out)
{
    size_t q = (size_t)r * m->E + e;
    double a = m->a[q];
    int n = a > 0 ? snprintf(out->text, sizeof out->text, "block %d, expert %d: max |down-proj output| %.4g", m->layer[r],
                             e, a)
                  : snprintf(out->text, sizeof out->text, "block %d, expert %d: never routed", m->layer[r], e);
    for (int i = 0; i < m->n_se; i++) {
        const SeItem *x = &m->se[i];
        if (x->row != r || x->expert != e) continue;
        char ch[32];
        if (x->channel >= 0) snprintf(ch, sizeof ch, "%d", x->channel);
        else snprintf(ch, sizeof ch, "not stored");
        snprintf(out->text + n, sizeof out->text - (size_t)n,
                 "\nsuper expert #%d: output channel %s, routed %lld times, max at prompt %d position %d", i + 1, ch,
                 (long long)x->n_routed, x->prompt, x->pos);
        return;
    }
    if (m->is_se[q]) snprintf(out->text + n, sizeof out->text - (size_t)n, "\nsuper expert");
    else if (m->layer_cut >= 0 && m->layer[r] >= m->layer_cut && n > 0 && (size_t)n < sizeof out->text)
        snprintf(out->text + n, sizeof out->text - (size_t)n,
                 "\nnot a candidate: the rule considers blocks below %d only", m->layer_cut);
}

static bool se_hit(const void *model, const MsViewState *s, double w, double h, double x, double y, MsViewHit *out)
{
    const SeModel *m = model;
    memset(out, 0, sizeof *out);
    out->kind = MS_HIT_NONE;
    out->layer = out->expert = out->prompt = out->pos = -1;
    out->row = out->col = out->item = -1;
    out->value = NAN;
    SeLayout L;
    if (se_layout(m, s, w, h, &L, NULL) < 0) return false;
    MsPlotText *t = ms_plot_text_new(&s->style);
    int r = -1, e = -1;
    for (int i = m->n_se - 1; t && i >= 0; i--) {
        char text[64];
        MsPlotRect b;
        bool inside;
        if (label_box(m, &L, t, i, text, sizeof text, &b, &inside) && !inside && ms_plot_rect_contains(&b, x, y)) {
            r = m->se[i].row;
            e = m->se[i].expert;
            out->kind = MS_HIT_EXPERT;
            out->item = i;
            break;
        }
    }
    ms_plot_text_free(t);
    if (r < 0) {
        int64_t rr, cc;
        if (!ms_plot_grid_hit(&L.map, x, y, &rr, &cc)) return false;
        r = (int)rr;
        e = (int)cc;
        out->kind = MS_HIT_CELL;
    }
    out->row = r;
    out->col = e;
    out->layer = m->layer[r];
    out->expert = e;
    out->value = m->a[(size_t)r * m->E + e];
    describe(m, r, e, out);
    return true;
}

static void se_size(const void *model, double *w, double *h)
{
    const SeModel *m = model;
    *w = fmin(1600, fmax(1000, 300 + 28.0 * m->E));
    *h = fmin(1100, fmax(560, 240 + 64.0 * m->rows));
}

const MsViewClass ms_view_superexperts = {
    .name = "superexperts",
    .title = "Super experts",
    .summary = "max down-projection output per layer and expert, super experts outlined with their channel (--stats)",
    .prepare = se_prepare,
    .free_model = se_free,
    .draw = se_draw,
    .hit = se_hit,
    .default_size = se_size,
};
