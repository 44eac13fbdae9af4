/* view-load.c — `load`: layer x expert heat map of each expert's share of
 * its layer's selections (viridis), dead experts (no selection) crossed and
 * cold ones (r_e = c_e/M below 0.1 · (selections per token) / E, METHODS
 * §1.1) ringed, and beside it, per layer, bars of the normalised load
 * entropy H / ln E and the Gini coefficient (both 0..1).
 *
 * Data: the stored result of `moescope analyze load` (tables an_load and
 * an_load_experts, read typed through ms_trace_table) when the run has one
 * over every layer and every token that is current (its token count equals
 * the run's): plotting then costs a table read, not a pass over the trace.
 * Otherwise the load is computed from the trace (ms_analyze_load with
 * write = false, nothing written), or with --no-run the view names the
 * command to run.  Both paths give the same numbers (the stored tables are
 * the typed result written out).
 *
 * State: x0/x1 = visible expert window, y0/y1 = visible window of layer rows;
 * sel_layer/sel_expert outline a cell (a whole row or column when only one
 * is set); hover_row/hover_col (row, expert) outline a cell. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"
#include "view-tokgrid.h"

enum { MARK_NONE = 0, MARK_COLD = 1, MARK_DEAD = 2 };

typedef struct {
    int64_t run_id;
    int n_expert, k, n_rows;
    bool stored;                 /* from the stored tables */
    char model[256];
    int *layer;                  /* block of row r */
    int64_t *n_tokens, *n_sel;   /* per row */
    double *ent_norm, *gini, *cv;
    int *n_dead, *n_cold;
    int64_t *count;              /* [row * E + e] */
    float *share;                /* percent of the layer's selections */
    uint8_t *mark;
    double share_max;
    int64_t total_dead, total_cold;
} LoadModel;

static void load_free(void *model)
{
    LoadModel *m = model;
    if (!m) return;
    free(m->layer);
    free(m->n_tokens);
    free(m->n_sel);
    free(m->ent_norm);
    free(m->gini);
    free(m->cv);
    free(m->n_dead);
    free(m->n_cold);
    free(m->count);
    free(m->share);
    free(m->mark);
    free(m);
}

static int alloc_rows(LoadModel *m, int rows, MsError *err)
{
    size_t n = (size_t)rows, c = n * (size_t)m->n_expert;
    m->n_rows = rows;
    m->layer = calloc(n + 1, sizeof *m->layer);
    m->n_tokens = calloc(n + 1, sizeof *m->n_tokens);
    m->n_sel = calloc(n + 1, sizeof *m->n_sel);
    m->ent_norm = calloc(n + 1, sizeof *m->ent_norm);
    m->gini = calloc(n + 1, sizeof *m->gini);
    m->cv = calloc(n + 1, sizeof *m->cv);
    m->n_dead = calloc(n + 1, sizeof *m->n_dead);
    m->n_cold = calloc(n + 1, sizeof *m->n_cold);
    m->count = calloc(c + 1, sizeof *m->count);
    m->share = calloc(c + 1, sizeof *m->share);
    m->mark = calloc(c + 1, 1);
    if (!m->layer || !m->n_tokens || !m->n_sel || !m->ent_norm || !m->gini || !m->cv || !m->n_dead || !m->n_cold ||
        !m->count || !m->share || !m->mark)
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    return 0;
}

static bool layer_wanted(const MsViewParams *p, int layer)
{
    if (p->layer >= 0) return layer == p->layer;
    if (p->layer_lo >= 0 && layer < p->layer_lo) return false;
    if (p->layer_hi >= 0 && layer > p->layer_hi) return false;
    return true;
}

/* Shares, marks and totals from the counts (the same rule as the analysis). */
static void finish(LoadModel *m)
{
    int E = m->n_expert;
    m->share_max = 0;
    m->total_dead = m->total_cold = 0;
    for (int r = 0; r < m->n_rows; r++) {
        int64_t sum = 0;
        for (int e = 0; e < E; e++) sum += m->count[(size_t)r * E + e];
        if (m->n_sel[r] <= 0) m->n_sel[r] = sum;
        double M = (double)m->n_tokens[r], rare = M > 0 ? 0.1 * ((double)m->n_sel[r] / M) / E : 0;
        m->n_dead[r] = m->n_cold[r] = 0;
        for (int e = 0; e < E; e++) {
            size_t i = (size_t)r * E + e;
            int64_t c = m->count[i];
            m->share[i] = sum > 0 ? (float)(100.0 * (double)c / (double)sum) : NAN;
            if (m->share[i] > m->share_max) m->share_max = m->share[i];
            if (c == 0) {
                m->mark[i] = MARK_DEAD;
                m->n_dead[r]++;
            } else if (M > 0 && (double)c / M < rare) {
                m->mark[i] = MARK_COLD;
                m->n_cold[r]++;
            }
        }
        m->total_dead += m->n_dead[r];
        m->total_cold += m->n_cold[r];
    }
}

static int from_result(LoadModel *m, const MsLoadResult *res, const MsViewParams *p, MsError *err)
{
    int rows = 0;
    for (int i = 0; i < res->n_layers; i++) rows += layer_wanted(p, res->layers[i].layer);
    int rc = alloc_rows(m, rows, err);
    if (rc < 0) return rc;
    int r = 0;
    for (int i = 0; i < res->n_layers; i++) {
        const MsLoadLayer *l = &res->layers[i];
        if (!layer_wanted(p, l->layer)) continue;
        m->layer[r] = l->layer;
        m->n_tokens[r] = l->n_tokens;
        m->n_sel[r] = l->n_selections;
        m->ent_norm[r] = l->entropy_norm;
        m->gini[r] = l->gini;
        m->cv[r] = l->cv;
        for (int e = 0; e < m->n_expert; e++) m->count[(size_t)r * m->n_expert + e] = l->counts[e];
        r++;
    }
    return 0;
}

/* Column index by name, −1 if absent. */
static int col_of(const MsColumn *cols, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(cols[i].name, name)) return i;
    return -1;
}

static double num(const MsTraceValue *v)
{
    return v->type == MS_COL_INT ? (double)v->i : v->type == MS_COL_REAL ? v->r : NAN;
}

/* The stored result: 1 = read, 0 = none usable (missing, filtered or
 * stale), < 0 = error. */
static int from_tables(MsTraceDb *db, LoadModel *m, const MsTraceRunInfo *info, const MsViewParams *p, MsError *err)
{
    MsTraceCursor *c = ms_trace_analyses(db, m->run_id, err);
    if (!c) return err && err->code ? err->code : MS_EDB;
    MsTraceAnalysis a;
    int rc, have = 0;
    while ((rc = ms_trace_analyses_next(c, &a, err)) == 1) {
        if (strcmp(a.name, "load") || !a.params) continue;
        /* only the figure's own scope: every layer, every token */
        bool full = strstr(a.params, "\"layer\":null") && strstr(a.params, "\"role\":\"all\"");
        if (!strcmp(a.table, "an_load")) have = full ? have | 1 : have & ~1;
        if (!strcmp(a.table, "an_load_experts")) have = full ? have | 2 : have & ~2;
    }
    ms_trace_cursor_free(c);
    if (rc < 0) return rc;
    if (have != 3) return 0;

    /* per layer */
    c = ms_trace_table(db, "an_load", m->run_id, err);
    if (!c) return err && err->code ? err->code : MS_EDB;
    const MsColumn *cols;
    int nc = ms_trace_table_columns(c, &cols);
    int cl = col_of(cols, nc, "layer"), ct = col_of(cols, nc, "n_tokens"), cen = col_of(cols, nc, "entropy_norm"),
        cg = col_of(cols, nc, "gini"), ccv = col_of(cols, nc, "cv");
    if (cl < 0 || ct < 0 || cen < 0 || cg < 0 || ccv < 0) {
        ms_trace_cursor_free(c);
        return 0;   /* an older layout: compute instead */
    }
    int cap = 16, n = 0;
    struct Lrow { int layer; int64_t nt; double en, gi, cv; } *lr = malloc((size_t)cap * sizeof *lr);
    const MsTraceValue *v;
    while (lr && (rc = ms_trace_table_next(c, &v, err)) == 1) {
        if (v[cl].type != MS_COL_INT || !layer_wanted(p, (int)v[cl].i)) continue;
        if (n == cap) {
            cap *= 2;
            void *q = realloc(lr, (size_t)cap * sizeof *lr);
            if (!q) {
                free(lr);
                lr = NULL;
                break;
            }
            lr = q;
        }
        lr[n++] = (struct Lrow){ (int)v[cl].i, (int64_t)num(&v[ct]), num(&v[cen]), num(&v[cg]), num(&v[ccv]) };
    }
    ms_trace_cursor_free(c);
    if (!lr) return ms_error_set(err, MS_ENOMEM, "out of memory");
    if (rc < 0) {
        free(lr);
        return rc;
    }
    /* stale (the run grew since) or empty: compute instead */
    bool ok = n > 0;
    for (int i = 0; i < n && ok; i++) ok = lr[i].nt == info->n_tokens && lr[i].layer >= 0 && lr[i].layer < MS_TRACE_MAX_LAYER;
    if (!ok || (rc = alloc_rows(m, n, err)) < 0) {
        free(lr);
        return ok ? rc : 0;
    }
    int row_of[MS_TRACE_MAX_LAYER];
    for (int l = 0; l < MS_TRACE_MAX_LAYER; l++) row_of[l] = -1;
    for (int i = 0; i < n; i++) {
        m->layer[i] = lr[i].layer;
        m->n_tokens[i] = lr[i].nt;
        m->ent_norm[i] = lr[i].en;
        m->gini[i] = lr[i].gi;
        m->cv[i] = lr[i].cv;
        row_of[lr[i].layer] = i;
    }
    free(lr);

    /* per expert */
    c = ms_trace_table(db, "an_load_experts", m->run_id, err);
    if (!c) return err && err->code ? err->code : MS_EDB;
    nc = ms_trace_table_columns(c, &cols);
    int xl = col_of(cols, nc, "layer"), xe = col_of(cols, nc, "expert"), xc = col_of(cols, nc, "count");
    if (xl < 0 || xe < 0 || xc < 0) {
        ms_trace_cursor_free(c);
        return 0;
    }
    while ((rc = ms_trace_table_next(c, &v, err)) == 1) {
        if (v[xl].type != MS_COL_INT || v[xe].type != MS_COL_INT || v[xc].type != MS_COL_INT) continue;
        if (v[xl].i < 0 || v[xl].i >= MS_TRACE_MAX_LAYER || v[xe].i < 0 || v[xe].i >= m->n_expert) continue;
        int r = row_of[v[xl].i];
        if (r >= 0) m->count[(size_t)r * m->n_expert + (size_t)v[xe].i] = v[xc].i;
    }
    ms_trace_cursor_free(c);
    return rc < 0 ? rc : 1;
}

static int load_prepare(MsTraceDb *db, const MsViewParams *p, void **out, MsError *err)
{
    *out = NULL;
    MsTraceRunInfo info;
    int64_t run = ms_view_resolve_run(db, p->run, &info, err);
    if (run < 0) return (int)run;
    LoadModel *m = calloc(1, sizeof *m);
    int rc = 0;
    if (!m) {
        rc = ms_error_set(err, MS_ENOMEM, "out of memory");
        goto out;
    }
    m->run_id = run;
    m->n_expert = info.model.n_expert;
    m->k = info.model.n_expert_used;
    snprintf(m->model, sizeof m->model, "%s",
             info.model.name[0] ? info.model.name : info.model.file_name[0] ? info.model.file_name : info.model.arch);
    if (m->n_expert <= 0) {
        rc = ms_error_set(err, MS_EFORMAT, "%s: run %lld's model has no routed experts", ms_trace_path(db),
                          (long long)run);
        goto out;
    }
    if (p->layer >= 0 && (p->layer >= info.model.n_layer || p->layer >= MS_TRACE_MAX_LAYER ||
                          !info.model.is_moe[p->layer])) {
        rc = ms_error_set(err, MS_EINVAL, "%s: block %d of run %lld is not a MoE layer (the model has %d blocks)",
                          ms_trace_path(db), p->layer, (long long)run, info.model.n_layer);
        goto out;
    }
    rc = from_tables(db, m, &info, p, err);
    if (rc == 1) {
        m->stored = true;
    } else if (rc == 0) {
        if (!p->run_missing) {
            rc = ms_error_set(err, MS_ENOTFOUND,
                              "%s: run %lld has no current load analysis over every layer; run `moescope analyze "
                              "load --db %s --run %lld` first (or plot without --no-run)",
                              ms_trace_path(db), (long long)run, ms_trace_path(db), (long long)run);
            goto out;
        }
        MsAnOptions o;
        ms_an_options_default(&o);
        o.run_id = run;
        o.layer = p->layer >= 0 ? p->layer : -1;
        o.write = false;
        o.progress = p->progress;
        o.progress_user = p->progress_user;
        o.cancel = p->cancel;
        MsLoadResult *res = NULL;
        rc = ms_analyze_load(db, &o, &res, err);
        if (rc >= 0) rc = from_result(m, res, p, err);
        ms_load_result_free(res);
    }
    if (rc < 0) goto out;
    if (m->n_rows == 0) {
        rc = ms_error_set(err, MS_EINVAL, "%s: run %lld has no MoE layer in the requested blocks", ms_trace_path(db),
                          (long long)run);
        goto out;
    }
    finish(m);
    *out = m;
    m = NULL;
    rc = 0;
out:
    ms_trace_run_info_clear(&info);
    load_free(m);
    return rc;
}

/* ------------------------------------------------------------- geometry */

static const MsRgb ent_color = { 0.23, 0.46, 0.69 }, gini_color = { 0.88, 0.51, 0.17 };

/* The key under the title: the bar colours and the two marks, flowed into
 * lines across the figure (the panels are too narrow for frame legends). */
enum { KEY_N = 4 };
static const char *const key_label[KEY_N] = { "normalised load entropy H/ln E", "Gini coefficient",
                                              "dead: never chosen", "cold: under 1/10 of the uniform share" };

typedef struct {
    MsPlotFrame fl, fr;          /* left: heat map; right: bars */
    MsPlotColorbar cb;
    MsPlotGeom gl, gr;           /* in figure coordinates (offsets applied) */
    MsPlotGridMap m;
    double top, right_x;         /* below the title and key; where the right panel starts */
    double title_h, sw, key_row_h;
    MsPlotRect key[KEY_N];       /* swatch + label of each key item */
    char title[320];
} LoadFig;

static const char *row_label(void *user, int64_t i, char *buf, size_t size)
{
    const LoadModel *m = user;
    snprintf(buf, size, "%d", i >= 0 && i < m->n_rows ? m->layer[i] : -1);
    return buf;
}

static void window(double s0, double s1, double n, double *lo, double *hi)
{
    *lo = 0;
    *hi = n;
    if (!(s1 > s0) || !isfinite(s0) || !isfinite(s1)) return;
    double a = s0 < 0 ? 0 : s0, b = s1 > n ? n : s1;
    if (b - a < 1e-6) return;
    *lo = a;
    *hi = b;
}

static void offset_geom(MsPlotGeom *g, double dx, double dy)
{
    g->plot.x += dx;
    g->plot.y += dy;
    g->colorbar.x += dx;
    g->colorbar.y += dy;
    g->legend.x += dx;
    g->legend.y += dy;
    for (int i = 0; i < g->n_xticks; i++) g->xticks[i].pos += dx;
    for (int i = 0; i < g->n_yticks; i++) g->yticks[i].pos += dy;
    for (int i = 0; i < g->n_cticks; i++) g->cticks[i].pos += dy;
}

static int load_fig(const LoadModel *m, const MsViewState *s, double W, double H, LoadFig *F, MsError *err)
{
    memset(F, 0, sizeof *F);
    if (s->title) snprintf(F->title, sizeof F->title, "%s", s->title);
    else
        snprintf(F->title, sizeof F->title, "Expert load by layer \xC2\xB7 run %lld, %lld tokens, E = %d, top-%d",
                 (long long)m->run_id, (long long)m->n_tokens[0], m->n_expert, m->k);
    MsPlotText *t = ms_plot_text_new(&s->style);
    if (!t) return ms_error_set(err, MS_ENOMEM, "out of memory");
    MsPlotTextSize sz;
    double pad = ms_plot_text_pad(t);
    F->title_h = ms_plot_text_title(t, NULL, F->title, W, pad);
    double y = ceil(pad + F->title_h + pad * 0.5);
    ms_plot_text_measure(t, MS_PLOT_ROLE_TICK, "0Ag", 0, &sz);
    F->sw = round(sz.height * 0.9);
    F->key_row_h = ceil(sz.height * 1.25);
    double x = pad;
    for (int i = 0; i < KEY_N; i++) {
        ms_plot_text_measure(t, MS_PLOT_ROLE_TICK, key_label[i], W - 2 * pad - F->sw - pad * 0.5, &sz);
        double w = F->sw + pad * 0.5 + sz.width;
        if (x > pad && x + w > W - pad) {
            x = pad;
            y += F->key_row_h;
        }
        F->key[i] = (MsPlotRect){ x, y, w, F->key_row_h };
        x += w + pad * 2;
    }
    F->top = y + F->key_row_h;
    ms_plot_text_free(t);

    double x0, x1, y0, y1;
    window(s->x0, s->x1, m->n_expert, &x0, &x1);
    window(s->y0, s->y1, m->n_rows, &y0, &y1);
    double wr = round(fmin(fmax(W * 0.24, 180), 360));
    if (wr > W * 0.4) wr = round(W * 0.4);
    F->right_x = W - wr;
    double ph = H - F->top;

    F->cb = (MsPlotColorbar){ .scale = { MS_CMAP_VIRIDIS, 0, m->share_max > 0 ? m->share_max : 1 },
                              .title = "share of the layer's selections", .unit = "%" };
    F->fl = (MsPlotFrame){ .style = &s->style, .colorbar = &F->cb };
    F->fl.x = (MsPlotAxis){ .kind = MS_PLOT_AXIS_CATEGORY, .title = "Expert", .lo = x0, .hi = x1,
                            .count = m->n_expert };
    F->fl.y = (MsPlotAxis){ .kind = MS_PLOT_AXIS_CATEGORY, .title = "Layer", .lo = y0, .hi = y1,
                            .count = m->n_rows, .label = row_label, .label_user = (void *)m };
    int rc = ms_plot_layout(&F->fl, F->right_x, ph, &F->gl, err);
    if (rc < 0) return rc;
    F->fr = (MsPlotFrame){ .style = &s->style };
    F->fr.x = (MsPlotAxis){ .kind = MS_PLOT_AXIS_LINEAR, .title = "Balance (0\xE2\x80\x93" "1)", .lo = 0, .hi = 1,
                            .grid = true };
    F->fr.y = (MsPlotAxis){ .kind = MS_PLOT_AXIS_NONE };
    if ((rc = ms_plot_layout(&F->fr, wr, ph, &F->gr, err)) < 0) return rc;
    offset_geom(&F->gl, 0, F->top);
    offset_geom(&F->gr, F->right_x, F->top);
    F->gl.width = F->right_x;
    F->gr.width = wr;
    F->m = ms_plot_grid_map(&F->gl, m->n_rows, m->n_expert);
    return 0;
}

/* Row r's band in the right panel (the same rows as the heat map). */
static void bar_band(const LoadFig *F, int r, double *ya, double *yb)
{
    double u0 = ((double)r - F->m.row0) / (F->m.row1 - F->m.row0), u1 = ((double)r + 1 - F->m.row0) / (F->m.row1 - F->m.row0);
    *ya = F->gr.plot.y + u0 * F->gr.plot.h;
    *yb = F->gr.plot.y + u1 * F->gr.plot.h;
}

/* ------------------------------------------------------------------ draw */

static void draw_mark(cairo_t *cr, const MsPlotRect *c, int mark, MsRgb ink)
{
    double s = fmin(c->w, c->h);
    if (s < 4) return;
    double lw = fmax(1, s * 0.09);
    cairo_save(cr);
    cairo_rectangle(cr, c->x, c->y, c->w, c->h);
    cairo_clip(cr);
    cairo_set_source_rgb(cr, ink.r, ink.g, ink.b);
    cairo_set_line_width(cr, lw);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    double cx = c->x + c->w / 2, cy = c->y + c->h / 2, r = s * 0.32;
    if (mark == MARK_DEAD) {
        cairo_move_to(cr, cx - r, cy - r);
        cairo_line_to(cr, cx + r, cy + r);
        cairo_move_to(cr, cx + r, cy - r);
        cairo_line_to(cr, cx - r, cy + r);
    } else {
        /* a ring: almost nothing */
        cairo_new_sub_path(cr);
        cairo_arc(cr, cx, cy, r * 0.8, 0, 2 * 3.14159265358979323846);
    }
    cairo_stroke(cr);
    cairo_restore(cr);
}

static void outline(cairo_t *cr, double x, double y, double w, double h, double lw)
{
    cairo_rectangle(cr, x, y, w, h);
    cairo_set_line_width(cr, lw + 2);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_stroke_preserve(cr);
    cairo_set_line_width(cr, lw);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_stroke(cr);
}

static int load_draw(cairo_t *cr, double W, double H, const void *model, const MsViewState *s, MsError *err)
{
    const LoadModel *m = model;
    LoadFig *F = malloc(sizeof *F);
    if (!F) return ms_error_set(err, MS_ENOMEM, "out of memory");
    int rc = load_fig(m, s, W, H, F, err);
    if (rc < 0) goto out;
    cairo_save(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_restore(cr);
    /* the two panels: frames laid out at the origin, drawn translated */
    cairo_save(cr);
    cairo_translate(cr, 0, F->top);
    {
        MsPlotGeom g = F->gl;
        offset_geom(&g, 0, -F->top);
        ms_plot_draw_back(cr, &F->fl, &g);
    }
    cairo_restore(cr);
    cairo_save(cr);
    cairo_translate(cr, F->right_x, F->top);
    {
        MsPlotGeom g = F->gr;
        offset_geom(&g, -F->right_x, -F->top);
        ms_plot_draw_back(cr, &F->fr, &g);
    }
    cairo_restore(cr);

    MsPlotHeatmap h = { .rows = m->n_rows, .cols = m->n_expert, .values = m->share, .scale = F->cb.scale };
    if ((rc = ms_plot_heatmap_draw(cr, &F->m, &h, err)) < 0) goto out;
    /* marks on dead and cold cells (visible ones only) */
    int64_t r0 = (int64_t)floor(F->m.row0), r1 = (int64_t)ceil(F->m.row1), c0 = (int64_t)floor(F->m.col0),
            c1 = (int64_t)ceil(F->m.col1);
    for (int64_t r = r0 < 0 ? 0 : r0; r < r1 && r < m->n_rows; r++)
        for (int64_t e = c0 < 0 ? 0 : c0; e < c1 && e < m->n_expert; e++) {
            size_t i = (size_t)r * (size_t)m->n_expert + (size_t)e;
            if (!m->mark[i]) continue;
            MsPlotRect c;
            if (!ms_plot_grid_cell_rect(&F->m, r, e, &c)) continue;
            cairo_save(cr);
            cairo_rectangle(cr, F->m.rect.x, F->m.rect.y, F->m.rect.w, F->m.rect.h);
            cairo_clip(cr);
            draw_mark(cr, &c, m->mark[i], ms_plot_contrast_text(ms_plot_scale_color(&F->cb.scale, m->share[i])));
            cairo_restore(cr);
        }
    /* selection and hover */
    cairo_save(cr);
    cairo_rectangle(cr, F->m.rect.x - 3, F->m.rect.y - 3, F->m.rect.w + 6, F->m.rect.h + 6);
    cairo_clip(cr);
    int sel_row = -1;
    for (int r = 0; r < m->n_rows; r++)
        if (m->layer[r] == s->sel_layer) sel_row = r;
    if (sel_row >= 0 || (s->sel_expert >= 0 && s->sel_expert < m->n_expert)) {
        MsPlotRect a, b;
        int64_t ra = sel_row >= 0 ? sel_row : 0, rb = sel_row >= 0 ? sel_row : m->n_rows - 1;
        int64_t ea = s->sel_expert >= 0 ? s->sel_expert : 0, eb = s->sel_expert >= 0 ? s->sel_expert : m->n_expert - 1;
        ms_plot_grid_cell_rect(&F->m, ra, ea, &a);
        ms_plot_grid_cell_rect(&F->m, rb, eb, &b);
        double x = fmin(a.x, b.x), y = fmin(a.y, b.y);
        outline(cr, x + 1, y + 1, fmax(a.x + a.w, b.x + b.w) - x - 2, fmax(a.y + a.h, b.y + b.h) - y - 2, 2);
    }
    MsPlotRect hc;
    if (s->hover_row >= 0 && s->hover_col >= 0 && ms_plot_grid_cell_rect(&F->m, s->hover_row, s->hover_col, &hc))
        outline(cr, hc.x + 1, hc.y + 1, hc.w - 2, hc.h - 2, 1);
    cairo_restore(cr);

    /* bars */
    cairo_save(cr);
    cairo_rectangle(cr, F->gr.plot.x, F->gr.plot.y, F->gr.plot.w, F->gr.plot.h);
    cairo_clip(cr);
    for (int r = 0; r < m->n_rows; r++) {
        double ya, yb;
        bar_band(F, r, &ya, &yb);
        if (yb < F->gr.plot.y || ya > F->gr.plot.y + F->gr.plot.h) continue;
        double bh = (yb - ya) * 0.8 / 2, y = ya + (yb - ya) * 0.1;
        double v[2] = { m->ent_norm[r], m->gini[r] };
        MsRgb col[2] = { ent_color, gini_color };
        for (int j = 0; j < 2; j++) {
            if (!isfinite(v[j])) continue;
            double w = fmax(0, fmin(1, v[j])) * F->gr.plot.w;
            cairo_set_source_rgb(cr, col[j].r, col[j].g, col[j].b);
            cairo_rectangle(cr, F->gr.plot.x, y + j * bh, w, bh);
            cairo_fill(cr);
        }
        if (r == sel_row) {
            cairo_set_source_rgb(cr, 0, 0, 0);
            cairo_set_line_width(cr, 2);
            cairo_rectangle(cr, F->gr.plot.x + 1, ya + 1, F->gr.plot.w - 2, yb - ya - 2);
            cairo_stroke(cr);
        }
    }
    cairo_restore(cr);

    /* axes, then the marks on the legend's swatches (laid out as msplot does:
     * one column, rows of legend_row_h from the legend's top) */
    cairo_save(cr);
    cairo_translate(cr, 0, F->top);
    {
        MsPlotGeom g = F->gl;
        offset_geom(&g, 0, -F->top);
        ms_plot_draw_axes(cr, &F->fl, &g);
    }
    cairo_restore(cr);
    cairo_save(cr);
    cairo_translate(cr, F->right_x, F->top);
    {
        MsPlotGeom g = F->gr;
        offset_geom(&g, -F->right_x, -F->top);
        ms_plot_draw_axes(cr, &F->fr, &g);
    }
    cairo_restore(cr);
    /* the title over both panels, the key under it */
    MsPlotText *t = ms_plot_text_new(&s->style);
    if (t) {
        double pad = ms_plot_text_pad(t);
        cairo_set_source_rgb(cr, 0.13, 0.13, 0.13);
        ms_plot_text_title(t, cr, F->title, W, pad);
        MsRgb dark = ms_plot_cmap_at(MS_CMAP_VIRIDIS, 0);
        for (int i = 0; i < KEY_N; i++) {
            const MsPlotRect *k = &F->key[i];
            MsPlotRect sw = { k->x, round(k->y + (k->h - F->sw) / 2), F->sw, F->sw };
            MsRgb c = i == 0 ? ent_color : i == 1 ? gini_color : dark;
            cairo_set_source_rgb(cr, c.r, c.g, c.b);
            cairo_rectangle(cr, sw.x, sw.y, sw.w, sw.h);
            cairo_fill(cr);
            if (i >= 2) draw_mark(cr, &sw, i == 2 ? MARK_DEAD : MARK_COLD, ms_plot_contrast_text(dark));
            cairo_set_source_rgb(cr, 0.13, 0.13, 0.13);
            ms_plot_text_draw(t, cr, MS_PLOT_ROLE_TICK, key_label[i], k->w - F->sw - pad * 0.5, k->x + F->sw + pad * 0.5,
                              k->y + k->h / 2, 0, 0.5, 0);
        }
        ms_plot_text_free(t);
    }
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS)
        rc = ms_error_set(err, MS_EINTERNAL, "cairo: %s", cairo_status_to_string(cairo_status(cr)));
out:
    free(F);
    return rc;
}

/* ------------------------------------------------------------------- hit */

static void layer_text(const LoadModel *m, int r, char *buf, size_t size)
{
    snprintf(buf, size,
             "layer %d: %lld tokens, %lld selections\nnormalised entropy %.4f, Gini %.4f, CV %.4f\n"
             "%d dead, %d cold experts\n(%s)",
             m->layer[r], (long long)m->n_tokens[r], (long long)m->n_sel[r], m->ent_norm[r], m->gini[r], m->cv[r],
             m->n_dead[r], m->n_cold[r], m->stored ? "stored result of moescope analyze load" : "computed from the trace");
}

static bool load_hit(const void *model, const MsViewState *s, double W, double H, double x, double y, MsViewHit *out)
{
    const LoadModel *m = model;
    memset(out, 0, sizeof *out);
    out->kind = MS_HIT_NONE;
    out->layer = out->expert = out->prompt = out->pos = -1;
    out->row = out->col = out->item = -1;
    out->value = NAN;
    LoadFig *F = malloc(sizeof *F);
    if (!F) return false;
    bool hit = false;
    if (load_fig(m, s, W, H, F, NULL) < 0) goto out;
    int64_t row, col;
    if (ms_plot_grid_hit(&F->m, x, y, &row, &col)) {
        size_t i = (size_t)row * (size_t)m->n_expert + (size_t)col;
        out->kind = MS_HIT_CELL;
        out->row = row;
        out->col = col;
        out->layer = m->layer[row];
        out->expert = (int)col;
        out->value = m->share[i];
        double M = (double)m->n_tokens[row];
        snprintf(out->text, sizeof out->text,
                 "layer %d, expert E%lld: %lld selections, %.3f %% of the layer's (uniform %.3f %%), "
                 "%.4f per token%s",
                 out->layer, (long long)col, (long long)m->count[i], m->share[i], 100.0 / m->n_expert,
                 M > 0 ? (double)m->count[i] / M : NAN,
                 m->mark[i] == MARK_DEAD   ? "\ndead: never chosen"
                 : m->mark[i] == MARK_COLD ? "\ncold: under 1/10 of the uniform share"
                                           : "");
        hit = true;
    } else if (y >= F->gr.plot.y && y < F->gr.plot.y + F->gr.plot.h &&
               ((x >= F->gr.plot.x && x < F->gr.plot.x + F->gr.plot.w) || (x >= 0 && x < F->m.rect.x))) {
        double u = (y - F->m.rect.y) / F->m.rect.h;
        int r = (int)floor(F->m.row0 + u * (F->m.row1 - F->m.row0));
        if (r < 0 || r >= m->n_rows) goto out;
        out->kind = MS_HIT_LAYER;
        out->row = r;
        out->layer = m->layer[r];
        out->value = m->ent_norm[r];
        layer_text(m, r, out->text, sizeof out->text);
        hit = true;
    }
out:
    free(F);
    return hit;
}

bool ms_view_load_cell_rect(const void *model, const MsViewState *s, double W, double H, int row, int expert,
                            MsPlotRect *out)
{
    LoadFig *F = malloc(sizeof *F);
    bool ok = F && load_fig(model, s, W, H, F, NULL) == 0 && ms_plot_grid_cell_rect(&F->m, row, expert, out);
    free(F);
    return ok;
}

static void load_size(const void *model, double *w, double *h)
{
    const LoadModel *m = model;
    *w = 1400;
    double hh = 200 + 40.0 * m->n_rows;
    *h = hh < 420 ? 420 : hh > 900 ? 900 : hh;
}

const MsViewClass ms_view_load = {
    .name = "load",
    .title = "Expert load",
    .summary = "layer x expert load share with dead and cold experts marked; entropy and Gini per layer",
    .prepare = load_prepare,
    .free_model = load_free,
    .draw = load_draw,
    .hit = load_hit,
    .default_size = load_size,
};
