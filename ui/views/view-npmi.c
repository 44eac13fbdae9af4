/* view-npmi.c — `npmi`: the experts most associated with each class (nPMI,
 * METHODS §5) as a class × (block, expert) heat map with the values written
 * in the cells, on the diverging map centred on 0 over nPMI's range [−1, 1].
 * Columns are each class's --top experts in class order, so the strongest
 * associations form a diagonal; a class's own picks are outlined.  Data: the
 * stored table an_npmi of the run when its class scheme is the one asked
 * for, else ms_analyze_npmi (not written) with --classes (default text). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"
#include "view-c-common.h"

typedef struct {
    int layer, expert, cls;
    double npmi;
    int64_t count, n_x, n_y, N;
} NpRow;

typedef struct {
    int64_t run;
    char by[128];
    int top;
    int n_classes;
    char **classes;          /* shown classes (those with rows) */
    int n_cols;
    int *col_layer, *col_expert;
    float *v;                /* n_classes × n_cols; NaN: no row (below min support) */
    int64_t *cnt;            /* n_classes × n_cols × 4: count, n_x, n_y, N */
    bool *pick;              /* the class's own top picks */
    bool any_missing;
    char title[256], ytitle[160];
} NpModel;

static void np_free(void *p)
{
    NpModel *m = p;
    if (!m) return;
    for (int i = 0; i < m->n_classes; i++) free(m->classes[i]);
    free(m->classes);
    free(m->col_layer);
    free(m->col_expert);
    free(m->v);
    free(m->cnt);
    free(m->pick);
    free(m);
}

/* Rows and class names gathered from either source. */
typedef struct {
    NpRow *r;
    int64_t n, cap;
    char **names;
    int n_names, cap_names;
} Rows;

static void rows_clear(Rows *x)
{
    for (int i = 0; i < x->n_names; i++) free(x->names[i]);
    free(x->names);
    free(x->r);
    memset(x, 0, sizeof *x);
}

static int class_index(Rows *x, const char *name)
{
    for (int i = x->n_names - 1; i >= 0; i--)
        if (!strcmp(x->names[i], name)) return i;
    if (x->n_names == x->cap_names) {
        int nc = x->cap_names ? 2 * x->cap_names : 16;
        char **nn = realloc(x->names, (size_t)nc * sizeof *nn);
        if (!nn) return MS_ENOMEM;
        x->names = nn;
        x->cap_names = nc;
    }
    if (!(x->names[x->n_names] = strdup(name))) return MS_ENOMEM;
    return x->n_names++;
}

static int rows_add(Rows *x, const NpRow *r)
{
    if (x->n == x->cap) {
        int64_t nc = x->cap ? 2 * x->cap : 256;
        NpRow *nr = realloc(x->r, (size_t)nc * sizeof *nr);
        if (!nr) return MS_ENOMEM;
        x->r = nr;
        x->cap = nc;
    }
    x->r[x->n++] = *r;
    return 0;
}

static int from_result(Rows *x, const MsNpmiResult *res, MsError *err)
{
    for (int c = 0; c < res->n_classes; c++)
        if (class_index(x, res->classes[c]) < 0) return ms_error_set(err, MS_ENOMEM, "out of memory");
    for (int64_t i = 0; i < res->n_rows; i++) {
        const MsNpmiRow *r = &res->rows[i];
        NpRow q = { r->layer, r->expert, r->cls, r->npmi, r->count, r->n_x, r->n_y, r->N };
        if (rows_add(x, &q) < 0) return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    return 0;
}

static int from_table(Rows *x, MsTraceDb *db, int64_t run, const char *cmd, MsError *err)
{
    static const char *const need[] = { "layer", "expert", "class", "npmi", "count", "n_x", "n_y", "N" };
    int ix[8];
    MsTraceCursor *c = vc_table_open(db, "an_npmi", run, need, 8, ix, cmd, err);
    if (!c) return err && err->code ? err->code : MS_EDB;
    const MsTraceValue *v;
    int rc;
    while ((rc = ms_trace_table_next(c, &v, err)) == 1) {
        const MsTraceValue *cl = &v[ix[2]];
        int k = class_index(x, cl->type == MS_COL_TEXT && cl->s ? cl->s : "");
        if (k < 0) {
            rc = ms_error_set(err, MS_ENOMEM, "out of memory");
            break;
        }
        NpRow q = { (int)vc_val_int(&v[ix[0]], -1), (int)vc_val_int(&v[ix[1]], -1), k, vc_val_real(&v[ix[3]]),
                    vc_val_int(&v[ix[4]], 0), vc_val_int(&v[ix[5]], 0), vc_val_int(&v[ix[6]], 0),
                    vc_val_int(&v[ix[7]], 0) };
        if (rows_add(x, &q) < 0) {
            rc = ms_error_set(err, MS_ENOMEM, "out of memory");
            break;
        }
    }
    ms_trace_cursor_free(c);
    return rc < 0 ? rc : 0;
}

/* nPMI descending, then larger n_xy, then lower (layer, expert): the
 * module's own ranking (docs/analysis.md). */
static int rank_cmp(const void *pa, const void *pb)
{
    const NpRow *a = pa, *b = pb;
    if (a->cls != b->cls) return a->cls < b->cls ? -1 : 1;
    bool na = isnan(a->npmi), nb = isnan(b->npmi);
    if (na != nb) return na ? 1 : -1;
    if (!na && a->npmi != b->npmi) return a->npmi > b->npmi ? -1 : 1;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    if (a->layer != b->layer) return a->layer < b->layer ? -1 : 1;
    return (a->expert > b->expert) - (a->expert < b->expert);
}

/* The stored params' class scheme ("by"), or "" when not recorded. */
static void params_by(const char *params, char *by, size_t size)
{
    *by = 0;
    json_t *j = params ? json_loads(params, 0, NULL) : NULL;
    const char *s = j ? json_string_value(json_object_get(j, "by")) : NULL;
    if (s) snprintf(by, size, "%s", s);
    json_decref(j);
}

static void describe_scheme(NpModel *m)
{
    const char *by = m->by;
    if (!strcmp(by, "text")) {
        snprintf(m->ytitle, sizeof m->ytitle, "Token-text class");
    } else if (!strcmp(by, "token")) {
        snprintf(m->ytitle, sizeof m->ytitle, "Token id");
    } else if (!strncmp(by, "label:", 6)) {
        snprintf(m->ytitle, sizeof m->ytitle, "Prompt label '%s'", by + 6);
    } else if (!strncmp(by, "pos", 3)) {
        snprintf(m->ytitle, sizeof m->ytitle, "Position bucket%s%s%s", by[3] == ':' ? " (" : "",
                 by[3] == ':' ? by + 4 : "", by[3] == ':' ? " tokens)" : "");
    } else {
        snprintf(m->ytitle, sizeof m->ytitle, "Class (%s)", by);
    }
    char what[200];
    snprintf(what, sizeof what, "%s", m->ytitle);
    what[0] = (char)(what[0] >= 'A' && what[0] <= 'Z' ? what[0] + 32 : what[0]);
    snprintf(m->title, sizeof m->title, "nPMI: top %d experts per %s (run %lld)", m->top, what, (long long)m->run);
}

static bool row_ok(const NpRow *r, int n_names, int n_layer, int E)
{
    return r->cls >= 0 && r->cls < n_names && r->layer >= 0 && r->layer < n_layer && r->expert >= 0 && r->expert < E;
}

/* Classes with rows become the heat map's rows (in class order); each
 * class's first `top` ranked rows are its picks, and the picks' experts the
 * columns, in order of first appearance. */
static int build(NpModel *m, Rows *x, int n_layer, int E, MsError *err)
{
    qsort(x->r, (size_t)x->n, sizeof *x->r, rank_cmp);
    int K = x->n_names;
    int *row_of = malloc((size_t)(K ? K : 1) * sizeof *row_of);
    int *col_of = malloc((size_t)n_layer * (size_t)E * sizeof *col_of);
    int *pk_row = malloc((size_t)(K ? K : 1) * (size_t)m->top * sizeof *pk_row);
    int *pk_col = malloc((size_t)(K ? K : 1) * (size_t)m->top * sizeof *pk_col);
    m->classes = calloc((size_t)(K ? K : 1), sizeof *m->classes);
    m->col_layer = malloc((size_t)(K ? K : 1) * (size_t)m->top * sizeof *m->col_layer);
    m->col_expert = malloc((size_t)(K ? K : 1) * (size_t)m->top * sizeof *m->col_expert);
    int rc = row_of && col_of && pk_row && pk_col && m->classes && m->col_layer && m->col_expert
                 ? 0 : ms_error_set(err, MS_ENOMEM, "out of memory");
    int n_pick = 0;
    if (!rc) {
        for (int c = 0; c < K; c++) row_of[c] = -1;
        for (size_t i = 0; i < (size_t)n_layer * (size_t)E; i++) col_of[i] = -1;
        int cls = -1, k = 0;
        for (int64_t i = 0; i < x->n; i++) {
            const NpRow *r = &x->r[i];
            if (!row_ok(r, K, n_layer, E)) continue;
            if (r->cls != cls) {
                cls = r->cls;
                k = 0;
                row_of[cls] = m->n_classes;
                m->classes[m->n_classes++] = x->names[cls];
                x->names[cls] = NULL;
            }
            if (k >= m->top || isnan(r->npmi)) continue;
            k++;
            int *slot = &col_of[(size_t)r->layer * E + r->expert];
            if (*slot < 0) {
                *slot = m->n_cols;
                m->col_layer[m->n_cols] = r->layer;
                m->col_expert[m->n_cols++] = r->expert;
            }
            pk_row[n_pick] = row_of[cls];
            pk_col[n_pick++] = *slot;
        }
    }
    size_t cells = (size_t)(m->n_classes ? m->n_classes : 1) * (size_t)(m->n_cols ? m->n_cols : 1);
    if (!rc) {
        m->v = malloc(cells * sizeof *m->v);
        m->cnt = calloc(cells * 4, sizeof *m->cnt);
        m->pick = calloc(cells, sizeof *m->pick);
        if (!m->v || !m->cnt || !m->pick) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    if (!rc) {
        for (size_t i = 0; i < cells; i++) m->v[i] = NAN;
        for (int64_t i = 0; i < x->n; i++) {
            const NpRow *r = &x->r[i];
            if (!row_ok(r, K, n_layer, E) || row_of[r->cls] < 0) continue;
            int col = col_of[(size_t)r->layer * E + r->expert];
            if (col < 0) continue;
            size_t q = (size_t)row_of[r->cls] * m->n_cols + (size_t)col;
            m->v[q] = (float)r->npmi;
            m->cnt[q * 4] = r->count;
            m->cnt[q * 4 + 1] = r->n_x;
            m->cnt[q * 4 + 2] = r->n_y;
            m->cnt[q * 4 + 3] = r->N;
        }
        for (int i = 0; i < n_pick; i++) m->pick[(size_t)pk_row[i] * m->n_cols + pk_col[i]] = true;
        for (size_t i = 0; i < (size_t)m->n_classes * (size_t)m->n_cols; i++)
            if (isnan(m->v[i])) m->any_missing = true;
    }
    free(row_of);
    free(col_of);
    free(pk_row);
    free(pk_col);
    return rc;
}

/* Keep the columns of blocks lo..hi. */
static void keep_layers(NpModel *m, int lo, int hi)
{
    int n = m->n_cols, w = 0;
    for (int c = 0; c < n; c++) {
        if (m->col_layer[c] < lo || m->col_layer[c] > hi) continue;
        m->col_layer[w] = m->col_layer[c];
        m->col_expert[w] = m->col_expert[c];
        for (int r = 0; r < m->n_classes; r++) {   /* within each row, old stride */
            size_t a = (size_t)r * n + c, b = (size_t)r * n + w;
            m->v[b] = m->v[a];
            memmove(&m->cnt[b * 4], &m->cnt[a * 4], 4 * sizeof *m->cnt);
            m->pick[b] = m->pick[a];
        }
        w++;
    }
    for (int r = 0; r < m->n_classes; r++) {       /* then the new stride */
        memmove(&m->v[(size_t)r * w], &m->v[(size_t)r * n], (size_t)w * sizeof *m->v);
        memmove(&m->cnt[(size_t)r * w * 4], &m->cnt[(size_t)r * n * 4], (size_t)w * 4 * sizeof *m->cnt);
        memmove(&m->pick[(size_t)r * w], &m->pick[(size_t)r * n], (size_t)w * sizeof *m->pick);
    }
    m->n_cols = w;
    m->any_missing = false;
    for (size_t i = 0; i < (size_t)m->n_classes * (size_t)w; i++)
        if (isnan(m->v[i])) m->any_missing = true;
}

static int np_prepare(MsTraceDb *db, const MsViewParams *p, void **out, MsError *err)
{
    *out = NULL;
    MsTraceRunInfo ri;
    int rc = vc_run_info(db, p->run, &ri, err);
    if (rc < 0) return rc;
    int64_t run = ri.run_id;
    int n_layer = ri.model.n_layer, E = ri.model.n_expert;
    ms_trace_run_info_clear(&ri);
    NpModel *m = calloc(1, sizeof *m);
    if (!m) return ms_error_set(err, MS_ENOMEM, "out of memory");
    m->run = run;
    m->top = p->top > 0 ? p->top : 3;
    const char *want = p->classes && *p->classes ? p->classes : NULL;
    if (want) {
        MsNpmiBy kind;
        const char *label;
        int bucket;
        if (ms_npmi_parse_by(want, &kind, &label, &bucket, NULL) < 0) {
            np_free(m);
            return ms_error_set(err, MS_EINVAL, "--classes must be text, token, label:NAME or pos[:B] (got '%s')", want);
        }
    }
    char *params = NULL, stored_by[128] = "", extra[200] = "", cmd[1400];
    int st = vc_find_stored(db, run, "npmi", "an_npmi", &params, err);
    if (st == 1) params_by(params, stored_by, sizeof stored_by);
    free(params);
    if (want) snprintf(extra, sizeof extra, "--by %s", want);
    vc_analyze_cmd(cmd, sizeof cmd, db, "npmi", run, extra);
    Rows x = { 0 };
    if (st < 0) {
        rc = st;
    } else if (st == 1 && (!want || !strcmp(want, stored_by))) {
        snprintf(m->by, sizeof m->by, "%s", *stored_by ? stored_by : "text");
        rc = from_table(&x, db, run, cmd, err);
    } else if (!p->run_missing) {
        rc = st == 1 ? ms_error_set(err, MS_ENOTFOUND,
                                    "%s: the stored npmi result of run %lld has classes '%s', not '%s'; run `%s` first "
                                    "(or plot without --no-run)", ms_trace_path(db), (long long)run, stored_by, want, cmd)
                     : ms_error_set(err, MS_ENOTFOUND,
                                    "%s: run %lld has no npmi result; run `%s` first (or plot without --no-run)",
                                    ms_trace_path(db), (long long)run, cmd);
    } else {
        MsAnOptions o;
        ms_an_options_default(&o);
        o.run_id = run;
        o.write = false;
        o.by = want ? want : "text";
        o.progress = p->progress;
        o.progress_user = p->progress_user;
        o.cancel = p->cancel;
        snprintf(m->by, sizeof m->by, "%s", o.by);
        MsNpmiResult *r = NULL;
        rc = ms_analyze_npmi(db, &o, &r, err);
        if (rc >= 0) rc = from_result(&x, r, err);
        ms_npmi_result_free(r);
    }
    if (rc >= 0) rc = build(m, &x, MS_MAX(n_layer, 1), MS_MAX(E, 1), err);
    rows_clear(&x);
    /* --layers: only columns of those blocks */
    int lo = p->layer_lo, hi = p->layer_hi;
    if (lo < 0 && p->layer >= 0) lo = hi = p->layer;
    if (rc >= 0 && lo >= 0) keep_layers(m, lo, hi);
    if (rc >= 0 && (m->n_classes == 0 || m->n_cols == 0))
        rc = ms_error_set(err, MS_ENOTFOUND, "%s: run %lld: no (class, expert) pair of --by %s reaches the minimum "
                          "support%s", ms_trace_path(db), (long long)run, m->by, lo >= 0 ? " in those blocks" : "");
    if (rc < 0) {
        np_free(m);
        return rc;
    }
    describe_scheme(m);
    *out = m;
    return 0;
}

/* ------------------------------------------------------------ geometry */

typedef struct {
    MsPlotFrame f;
    MsPlotColorbar cb;
    MsPlotLegendItem li[2];
    MsPlotLegend lg;
    char pick_label[64];
    MsPlotGeom g;
    MsPlotGridMap map;
} NpLayout;

static const char *class_label(void *user, int64_t i, char *buf, size_t size)
{
    const NpModel *m = user;
    (void)buf;
    (void)size;
    return i >= 0 && i < m->n_classes ? m->classes[i] : "";
}

static const char *col_label(void *user, int64_t i, char *buf, size_t size)
{
    const NpModel *m = user;
    if (i < 0 || i >= m->n_cols) return "";
    snprintf(buf, size, "%d:%d", m->col_layer[i], m->col_expert[i]);
    return buf;
}

static int np_layout(const NpModel *m, const MsViewState *s, double w, double h, NpLayout *L, MsError *err)
{
    memset(L, 0, sizeof *L);
    L->cb = (MsPlotColorbar){ .scale = { MS_CMAP_BALANCE, -1, 1 }, .title = "nPMI", .show_missing = m->any_missing };
    snprintf(L->pick_label, sizeof L->pick_label, "class's top %d", m->top);
    L->li[0] = (MsPlotLegendItem){ L->pick_label, VC_INK };
    /* grey cells are pairs the analysis left out, not nPMI 0: say why */
    L->li[1] = (MsPlotLegendItem){ "n/a: below min. support", ms_plot_cmap_missing(MS_CMAP_BALANCE) };
    L->lg = (MsPlotLegend){ NULL, L->li, m->any_missing ? 2 : 1 };
    double x0 = 0, x1 = m->n_cols, y0 = 0, y1 = m->n_classes;
    vc_window(&x0, &x1, s->x0, s->x1, 1);
    vc_window(&y0, &y1, s->y0, s->y1, 1);
    L->f = (MsPlotFrame){
        .title = s->title ? s->title : m->title,
        .x = { .kind = MS_PLOT_AXIS_CATEGORY, .title = "Expert (block:expert)", .lo = x0, .hi = x1,
               .count = m->n_cols, .label = col_label, .label_user = (void *)m },
        .y = { .kind = MS_PLOT_AXIS_CATEGORY, .title = m->ytitle, .lo = y0, .hi = y1, .count = m->n_classes,
               .label = class_label, .label_user = (void *)m },
        .colorbar = &L->cb,
        .legend = &L->lg,
        .style = &s->style,
    };
    int rc = ms_plot_layout(&L->f, w, h, &L->g, err);
    if (rc < 0) return rc;
    L->map = ms_plot_grid_map(&L->g, m->n_classes, m->n_cols);
    return 0;
}

static int np_draw(cairo_t *cr, double w, double h, const void *model, const MsViewState *s, MsError *err)
{
    const NpModel *m = model;
    NpLayout L;
    int rc = np_layout(m, s, w, h, &L, err);
    if (rc < 0) return rc;
    ms_plot_draw_back(cr, &L.f, &L.g);
    MsPlotHeatmap hm = { .rows = m->n_classes, .cols = m->n_cols, .values = m->v, .scale = L.cb.scale };
    if ((rc = ms_plot_heatmap_draw(cr, &L.map, &hm, err)) < 0) return rc;
    MsPlotText *t = ms_plot_text_new(&s->style);
    if (!t) return ms_error_set(err, MS_ENOMEM, "out of memory");
    cairo_save(cr);
    cairo_rectangle(cr, L.g.plot.x, L.g.plot.y, L.g.plot.w, L.g.plot.h);
    cairo_clip(cr);
    /* visible cells only: bounded by the plot's pixels, not by the data */
    int64_t r0 = (int64_t)floor(L.map.row0), r1 = (int64_t)ceil(L.map.row1);
    int64_t c0 = (int64_t)floor(L.map.col0), c1 = (int64_t)ceil(L.map.col1);
    double cw = L.map.rect.w / (L.map.col1 - L.map.col0), ch = L.map.rect.h / (L.map.row1 - L.map.row0);
    double lw = fmax(1.5, round(ms_plot_text_pad(t) * 0.3));
    /* one text size for every cell: the tick size if the widest value fits, else the note size */
    MsPlotRole role = MS_PLOT_ROLE_TICK;
    MsPlotTextSize sz;
    ms_plot_text_measure(t, role, "\xE2\x88\x92" "0.00", 0, &sz);
    double room_w = cw - 2 * lw - ms_plot_text_pad(t) * 0.6, room_h = ch - 2 * lw;
    if (sz.width > room_w || sz.height > room_h) {
        role = MS_PLOT_ROLE_NOTE;
        ms_plot_text_measure(t, role, "\xE2\x88\x92" "0.00", 0, &sz);
    }
    bool text = sz.width <= room_w && sz.height <= room_h;
    for (int64_t r = MS_MAX(r0, 0); r < MS_MIN(r1, m->n_classes); r++)
        for (int64_t c = MS_MAX(c0, 0); c < MS_MIN(c1, m->n_cols); c++) {
            size_t q = (size_t)r * m->n_cols + (size_t)c;
            MsPlotRect cell;
            if (!ms_plot_grid_cell_rect(&L.map, r, c, &cell)) continue;
            if (m->pick[q] && cw >= 4 && ch >= 4) vc_outline(cr, &cell, lw, VC_INK);
            if (text && !isnan(m->v[q])) {
                char buf[32];
                vc_fmt_num(buf, sizeof buf, m->v[q], 2);
                MsPlotRect in = { cell.x + lw, cell.y + lw, cell.w - 2 * lw, cell.h - 2 * lw };
                vc_cell_text(cr, t, role, buf, &in, ms_plot_scale_color(&L.cb.scale, m->v[q]));
            }
        }
    if (s->hover_row >= 0 && s->hover_row < m->n_classes && s->hover_col >= 0 && s->hover_col < m->n_cols) {
        MsPlotRect cell;
        if (ms_plot_grid_cell_rect(&L.map, s->hover_row, s->hover_col, &cell)) vc_outline(cr, &cell, lw + 1, VC_HIGHLIGHT);
    }
    if (s->sel_layer >= 0 && s->sel_expert >= 0)
        for (int c = 0; c < m->n_cols; c++)
            if (m->col_layer[c] == s->sel_layer && m->col_expert[c] == s->sel_expert) {
                MsPlotRect top, bot;
                ms_plot_grid_cell_rect(&L.map, 0, c, &top);
                ms_plot_grid_cell_rect(&L.map, m->n_classes - 1, c, &bot);
                double y0 = fmin(top.y, bot.y), y1 = fmax(top.y + top.h, bot.y + bot.h);
                MsPlotRect col = { top.x, y0, top.w, y1 - y0 };
                vc_outline(cr, &col, lw + 1, VC_HIGHLIGHT);
            }
    cairo_restore(cr);
    ms_plot_draw_axes(cr, &L.f, &L.g);
    ms_plot_text_free(t);
    return 0;
}

static bool np_hit(const void *model, const MsViewState *s, double w, double h, double x, double y, MsViewHit *out)
{
    const NpModel *m = model;
    memset(out, 0, sizeof *out);
    out->layer = out->expert = out->prompt = out->pos = -1;
    out->row = out->col = out->item = -1;
    out->value = NAN;
    NpLayout L;
    int64_t r, c;
    if (np_layout(m, s, w, h, &L, NULL) < 0 || !ms_plot_grid_hit(&L.map, x, y, &r, &c)) return false;
    size_t q = (size_t)r * m->n_cols + (size_t)c;
    out->kind = MS_HIT_CELL;
    out->row = r;
    out->col = c;
    out->layer = m->col_layer[c];
    out->expert = m->col_expert[c];
    out->value = m->v[q];
    if (isnan(m->v[q]))
        snprintf(out->text, sizeof out->text, "class %s, block %d expert %d: below the minimum support (no row)",
                 m->classes[r], out->layer, out->expert);
    else
        snprintf(out->text, sizeof out->text,
                 "class %s, block %d expert %d: nPMI %.4f\nn_xy %lld, n_x %lld, n_y %lld, N %lld%s", m->classes[r],
                 out->layer, out->expert, m->v[q], (long long)m->cnt[q * 4], (long long)m->cnt[q * 4 + 1],
                 (long long)m->cnt[q * 4 + 2], (long long)m->cnt[q * 4 + 3],
                 m->pick[q] ? "\none of the class's top experts" : "");
    return true;
}

static void np_size(const void *model, double *w, double *h)
{
    const NpModel *m = model;
    *w = fmin(1800, fmax(1000, 320 + 52.0 * m->n_cols));
    *h = fmin(1200, fmax(520, 220 + 48.0 * m->n_classes));
}

const MsViewClass ms_view_npmi = {
    .name = "npmi",
    .title = "nPMI of experts and classes",
    .summary = "top experts per class (--classes, --top) as a class x expert heat map of nPMI values",
    .prepare = np_prepare,
    .free_model = np_free,
    .draw = np_draw,
    .hit = np_hit,
    .default_size = np_size,
};
