/* view-heatmap.c — `heatmap`: token x layer for one prompt, each cell the
 * token's top-1 expert (categorical), routing entropy, top-1 gate weight or
 * residual max |h| after the block.
 *
 * Zoom and pan: MsViewState.x0/x1 is the visible token window and y0/y1 the
 * visible window of layer rows (row r = the r-th shown MoE block), both in
 * cell units and fractional while panning.  When more tokens are visible
 * than the plot has pixels, ms_plot_heatmap_draw aggregates the columns of
 * a pixel (the most frequent expert, the mean value, the peak |h|): no token
 * is skipped.  When the columns are wide enough to read, a strip above the
 * grid shows each token's piece.  Linked selection (sel_layer, sel_expert):
 * at that layer (every layer when sel_layer is −1) the cells whose selected
 * set holds the expert are outlined and the others dimmed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "view-tokgrid.h"

typedef struct {
    MsTokGrid *g;
    MsViewColorBy color_by;      /* prepared default */
    size_t n_present;            /* experts that are top-1 somewhere */
    MsPlotLegendItem *items;
    char (*names)[16];
} HeatModel;

static void heat_free(void *model)
{
    HeatModel *m = model;
    if (!m) return;
    ms_tokgrid_free(m->g);
    free(m->items);
    free(m->names);
    free(m);
}

static int heat_prepare(MsTraceDb *db, const MsViewParams *p, void **out, MsError *err)
{
    *out = NULL;
    MsViewColorBy c = p->color_by ? p->color_by : MS_VIEW_COLOR_EXPERT;
    if (c != MS_VIEW_COLOR_EXPERT && c != MS_VIEW_COLOR_ENTROPY && c != MS_VIEW_COLOR_WEIGHT &&
        c != MS_VIEW_COLOR_HIDDEN)
        return ms_error_set(err, MS_EINVAL, "heatmap: --color-by must be expert, entropy, weight or hidden (got %s)",
                            ms_view_color_name(c));
    MsTokGrid *g = NULL;
    unsigned flags = 0;   /* entropy (a log per weight) only when shown */
    if (c == MS_VIEW_COLOR_ENTROPY) flags |= MS_TOKGRID_PROBS | MS_TOKGRID_WENTROPY;
    int rc = ms_tokgrid_prepare(db, p, flags, &g, err);
    if (rc < 0) return rc;
    if (c == MS_VIEW_COLOR_HIDDEN && !g->has_stats) {
        rc = ms_error_set(err, MS_EINVAL, "%s: run %lld has no residual stats for --color-by hidden "
                          "(trace with --stats)", ms_trace_path(db), (long long)g->run_id);
        ms_tokgrid_free(g);
        return rc;
    }
    if ((c == MS_VIEW_COLOR_WEIGHT || c == MS_VIEW_COLOR_ENTROPY) && !g->has_weights && !g->p_entropy) {
        rc = ms_error_set(err, MS_EINVAL, "%s: run %lld has no gate weights or router probabilities for "
                          "--color-by %s", ms_trace_path(db), (long long)g->run_id, ms_view_color_name(c));
        ms_tokgrid_free(g);
        return rc;
    }
    HeatModel *m = calloc(1, sizeof *m);
    if (!m) {
        ms_tokgrid_free(g);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    m->g = g;
    m->color_by = c;
    /* legend: the experts that are top-1 anywhere in the grid, by id */
    int E = g->n_expert > 0 ? g->n_expert : 1;
    for (size_t i = 0; i < (size_t)g->n_rows * (size_t)g->n_tok; i++)
        if (g->top1[i] >= E) E = g->top1[i] + 1;
    uint8_t *seen = calloc((size_t)E, 1);
    if (!seen) goto oom;
    for (size_t i = 0; i < (size_t)g->n_rows * (size_t)g->n_tok; i++)
        if (g->top1[i] >= 0) seen[g->top1[i]] = 1;
    for (int e = 0; e < E; e++) m->n_present += seen[e];
    m->items = calloc(m->n_present + 1, sizeof *m->items);
    m->names = calloc(m->n_present + 1, sizeof *m->names);
    if (!m->items || !m->names) {
        free(seen);
        goto oom;
    }
    size_t k = 0;
    for (int e = 0; e < E; e++)
        if (seen[e]) {
            snprintf(m->names[k], sizeof m->names[k], "E%d", e);
            m->items[k] = (MsPlotLegendItem){ m->names[k], ms_plot_category_color(e) };
            k++;
        }
    free(seen);
    *out = m;
    return 0;
oom:
    heat_free(m);
    return ms_error_set(err, MS_ENOMEM, "out of memory");
}

/* ------------------------------------------------------------- geometry */

typedef struct {
    MsPlotFrame f;
    MsPlotColorbar cb;
    MsPlotLegend lg;
    char title[320], cb_title[96];
    MsPlotGeom g;
    MsPlotGridMap m;             /* the layer rows (below the strip) */
    MsViewColorBy c;
    const float *values;         /* NULL: categories (expert) */
    bool ent_probs;
    const char *note;            /* why the grid is empty in this mode, or NULL */
    bool strip;                  /* token pieces above the grid */
    MsPlotRect strip_r;
    double token_size;
} HeatFig;

static const char *row_label(void *user, int64_t i, char *buf, size_t size)
{
    const MsTokGrid *g = user;
    snprintf(buf, size, "%d", i >= 0 && i < g->n_rows ? g->row_layer[i] : -1);
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

static int heat_fig(const HeatModel *hm, const MsViewState *s, double W, double H, HeatFig *F, MsError *err)
{
    const MsTokGrid *g = hm->g;
    memset(F, 0, sizeof *F);
    /* a colouring this view does not draw (another view's) keeps the prepared one */
    F->c = s->color_by == MS_VIEW_COLOR_EXPERT || s->color_by == MS_VIEW_COLOR_ENTROPY ||
                   s->color_by == MS_VIEW_COLOR_WEIGHT || s->color_by == MS_VIEW_COLOR_HIDDEN
               ? s->color_by
               : hm->color_by;
    double x0, x1, y0, y1;
    window(s->x0, s->x1, g->n_tok, &x0, &x1);
    window(s->y0, s->y1, g->n_rows, &y0, &y1);
    const char *what = "Top-1 expert";
    switch (F->c) {
    case MS_VIEW_COLOR_ENTROPY:
        F->values = ms_tokgrid_entropy(g, &F->ent_probs);
        what = F->ent_probs || !F->values ? "Routing entropy" : "Entropy of the top-k weights";
        F->cb.scale = (MsPlotColorScale){ MS_CMAP_VIRIDIS, 0,
                                          F->ent_probs ? log(g->n_expert > 1 ? g->n_expert : 2)
                                                       : log(g->kmax > 1 ? g->kmax : 2) };
        snprintf(F->cb_title, sizeof F->cb_title, "%s", F->ent_probs || !F->values ? "routing entropy"
                                                                                   : "top-k weight entropy");
        F->cb.unit = "nats";
        if (!F->values)
            F->note = g->has_weights || g->has_probs ? "Entropy is computed when the view is prepared for it "
                                                       "(colour by entropy)."
                                                     : "This run has no router probabilities or gate weights.";
        break;
    case MS_VIEW_COLOR_WEIGHT:
        F->values = g->has_weights ? g->top1_w : NULL;
        what = "Top-1 gate weight";
        F->cb.scale = (MsPlotColorScale){ MS_CMAP_VIRIDIS, 0, g->max_top1_w > 0 ? g->max_top1_w : 1 };
        snprintf(F->cb_title, sizeof F->cb_title, "top-1 gate weight");
        if (!F->values) F->note = "This run has no gate weights.";
        break;
    case MS_VIEW_COLOR_HIDDEN:
        F->values = g->hidden;
        what = "Residual max |h|";
        F->cb.scale = (MsPlotColorScale){ MS_CMAP_VIRIDIS, 0, g->max_hidden > 0 ? g->max_hidden : 1 };
        snprintf(F->cb_title, sizeof F->cb_title, "max |h| after the block");
        if (!F->values) F->note = "This run has no residual statistics (trace with --stats).";
        break;
    default:
        break;
    }
    if (s->title) snprintf(F->title, sizeof F->title, "%s", s->title);
    else
        snprintf(F->title, sizeof F->title, "%s by token and layer \xC2\xB7 prompt %d (%d tokens), run %lld",
                 what, g->prompt_index, g->n_tok, (long long)g->run_id);
    F->f.title = F->title;
    F->f.style = &s->style;
    F->f.x = (MsPlotAxis){ .kind = MS_PLOT_AXIS_CATEGORY, .title = "Token position", .lo = x0, .hi = x1,
                           .count = g->n_tok };
    F->f.y = (MsPlotAxis){ .kind = MS_PLOT_AXIS_CATEGORY, .title = "Layer", .lo = y0, .hi = y1,
                           .count = g->n_rows, .label = row_label, .label_user = (void *)g };
    if (F->c == MS_VIEW_COLOR_EXPERT) {
        F->lg = (MsPlotLegend){ .title = "Top-1 expert", .items = hm->items, .n = hm->n_present };
        F->f.legend = &F->lg;
    } else {
        F->cb.title = F->cb_title;
        F->cb.show_missing = true;
        F->f.colorbar = &F->cb;
    }
    int rc = ms_plot_layout(&F->f, W, H, &F->g, err);
    if (rc < 0) return rc;
    /* token strip: when a column is wide enough for a few characters and
     * the grid keeps most of its height */
    MsPlotText *t = ms_plot_text_new(&s->style);
    if (!t) return ms_error_set(err, MS_ENOMEM, "out of memory");
    F->token_size = ms_plot_text_role_size(t, MS_PLOT_ROLE_TOKEN);
    MsPlotTextSize sz;
    ms_plot_token_measure(t, "Ag", 2, 0, 0, &sz);
    double pad = ms_plot_text_pad(t);
    ms_plot_text_free(t);
    double cell_w = F->g.plot.w / (x1 - x0), strip_h = ceil(sz.height + pad);
    if (cell_w >= 1.8 * F->token_size && F->g.plot.h - strip_h >= 2 * strip_h) {
        F->strip = true;
        F->strip_r = (MsPlotRect){ F->g.plot.x, F->g.plot.y, F->g.plot.w, strip_h };
        F->g.plot.y += strip_h;
        F->g.plot.h -= strip_h;
        for (int i = 0; i < F->g.n_yticks; i++)
            F->g.yticks[i].pos = ms_plot_y_to_px(&F->g, F->g.yticks[i].value + 0.5);
    }
    F->m = ms_plot_grid_map(&F->g, g->n_rows, g->n_tok);
    return 0;
}

/* ------------------------------------------------------------------ draw */

/* Selection overlay for one row: pixel columns [a, b) of the plot, each
 * marked when one of its tokens selects the expert. */
static void draw_selection_row(cairo_t *cr, const HeatFig *F, const MsTokGrid *g, int row, int e, uint8_t *mark,
                               int npx)
{
    MsPlotRect cell;
    ms_plot_grid_cell_rect(&F->m, row, 0, &cell);
    double ya = fmax(cell.y, F->m.rect.y), yb = fmin(cell.y + cell.h, F->m.rect.y + F->m.rect.h);
    if (yb <= ya) return;
    memset(mark, 0, (size_t)npx);
    ms_tokgrid_mark_selects(g, row, e, (int64_t)floor(F->m.col0), (int64_t)ceil(F->m.col1), F->m.col0,
                            F->m.rect.w / (F->m.col1 - F->m.col0), mark, npx);
    cairo_save(cr);
    cairo_rectangle(cr, F->m.rect.x, ya, F->m.rect.w, yb - ya);
    cairo_clip(cr);
    /* dim the others */
    cairo_set_source_rgba(cr, 1, 1, 1, 0.72);
    for (int i = 0; i < npx;) {
        int j = i;
        while (j < npx && mark[j] == mark[i]) j++;
        if (!mark[i]) cairo_rectangle(cr, F->m.rect.x + i, ya, j - i, yb - ya);
        i = j;
    }
    cairo_fill(cr);
    /* outline the matches */
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1.5);
    for (int i = 0; i < npx;) {
        int j = i;
        while (j < npx && mark[j] == mark[i]) j++;
        if (mark[i]) cairo_rectangle(cr, F->m.rect.x + i + 0.75, ya + 0.75, j - i - 1.5, yb - ya - 1.5);
        i = j;
    }
    cairo_stroke(cr);
    cairo_restore(cr);
}

static void draw_strip(cairo_t *cr, const HeatFig *F, const MsTokGrid *g, const MsViewState *s)
{
    const MsPlotRect *r = &F->strip_r;
    cairo_save(cr);
    cairo_rectangle(cr, r->x, r->y, r->w, r->h);
    cairo_clip(cr);
    cairo_set_source_rgb(cr, 0.965, 0.965, 0.965);
    cairo_paint(cr);
    MsPlotText *t = ms_plot_text_new(&s->style);
    if (t) {
        double px_per_tok = r->w / (F->m.col1 - F->m.col0);
        int64_t t0 = (int64_t)floor(F->m.col0), t1 = (int64_t)ceil(F->m.col1);
        if (t0 < 0) t0 = 0;
        if (t1 > g->n_tok) t1 = g->n_tok;
        for (int64_t p = t0; p < t1; p++) {
            double xa = r->x + ((double)p - F->m.col0) * px_per_tok;
            const char *b = g->pieces + g->piece_off[p];
            size_t len = (size_t)(g->piece_off[p + 1] - g->piece_off[p]);
            if (g->generated[p]) {
                cairo_set_source_rgb(cr, 0.90, 0.90, 0.90);
                cairo_rectangle(cr, xa, r->y, px_per_tok, r->h);
                cairo_fill(cr);
            }
            MsPlotTextSize sz;
            double maxw = px_per_tok - 2;
            ms_plot_token_measure(t, b, len, MS_PLOT_ESC_SPACE, maxw, &sz);
            ms_plot_token_draw(t, cr, b, len, MS_PLOT_ESC_SPACE, maxw, xa + (px_per_tok - sz.width) / 2,
                               r->y + (r->h - sz.height) / 2, (MsRgb){ 0.13, 0.13, 0.13 });
            /* a hairline between tokens */
            cairo_set_source_rgb(cr, 0.80, 0.80, 0.80);
            cairo_rectangle(cr, xa + px_per_tok - 0.5, r->y, 1, r->h);
            cairo_fill(cr);
        }
        ms_plot_text_free(t);
    }
    cairo_restore(cr);
}

static int heat_draw(cairo_t *cr, double W, double H, const void *model, const MsViewState *s, MsError *err)
{
    const HeatModel *hm = model;
    const MsTokGrid *g = hm->g;
    HeatFig *F = malloc(sizeof *F);
    if (!F) return ms_error_set(err, MS_ENOMEM, "out of memory");
    int rc = heat_fig(hm, s, W, H, F, err);
    if (rc < 0) goto out;
    ms_plot_draw_back(cr, &F->f, &F->g);
    MsPlotHeatmap h = { .rows = g->n_rows, .cols = g->n_tok };
    if (F->c == MS_VIEW_COLOR_EXPERT) {
        h.categories = g->top1;
    } else if (F->values) {
        h.values = F->values;
        h.scale = F->cb.scale;
        h.agg = F->c == MS_VIEW_COLOR_HIDDEN ? MS_PLOT_AGG_PEAK : MS_PLOT_AGG_MEAN;
    }
    if (h.values || h.categories) {
        if ((rc = ms_plot_heatmap_draw(cr, &F->m, &h, err)) < 0) goto out;
    } else {
        MsRgb miss = ms_plot_missing_color();
        cairo_set_source_rgb(cr, miss.r, miss.g, miss.b);
        cairo_rectangle(cr, F->m.rect.x, F->m.rect.y, F->m.rect.w, F->m.rect.h);
        cairo_fill(cr);
    }
    /* where generation starts */
    if (g->n_prompt_tok > 0 && g->n_prompt_tok < g->n_tok && g->n_prompt_tok > F->m.col0 &&
        g->n_prompt_tok < F->m.col1) {
        double x = F->m.rect.x + ((double)g->n_prompt_tok - F->m.col0) / (F->m.col1 - F->m.col0) * F->m.rect.w;
        cairo_save(cr);
        double dash[2] = { 4, 3 };
        cairo_set_dash(cr, dash, 2, 0);
        cairo_set_line_width(cr, 1.5);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, x, F->m.rect.y);
        cairo_line_to(cr, x, F->m.rect.y + F->m.rect.h);
        cairo_stroke(cr);
        cairo_restore(cr);
    }
    /* linked selection */
    if (s->sel_expert >= 0) {
        int npx = (int)ceil(F->m.rect.w);
        uint8_t *mark = malloc((size_t)npx + 1);
        if (!mark) {
            rc = ms_error_set(err, MS_ENOMEM, "out of memory");
            goto out;
        }
        for (int r = 0; r < g->n_rows; r++)
            if (s->sel_layer < 0 || g->row_layer[r] == s->sel_layer)
                draw_selection_row(cr, F, g, r, s->sel_expert, mark, npx);
        free(mark);
    } else if (s->sel_layer >= 0 && s->sel_layer < MS_TRACE_MAX_LAYER && g->layer_row[s->sel_layer] >= 0) {
        MsPlotRect c;
        ms_plot_grid_cell_rect(&F->m, g->layer_row[s->sel_layer], 0, &c);
        cairo_save(cr);
        cairo_rectangle(cr, F->m.rect.x, F->m.rect.y, F->m.rect.w, F->m.rect.h);
        cairo_clip(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_set_line_width(cr, 2);
        cairo_rectangle(cr, F->m.rect.x + 1, c.y + 1, F->m.rect.w - 2, c.h - 2);
        cairo_stroke(cr);
        cairo_restore(cr);
    }
    /* hovered cell */
    MsPlotRect hc;
    if (s->hover_row >= 0 && s->hover_col >= 0 && ms_plot_grid_cell_rect(&F->m, s->hover_row, s->hover_col, &hc)) {
        cairo_save(cr);
        cairo_rectangle(cr, F->m.rect.x, F->m.rect.y, F->m.rect.w, F->m.rect.h);
        cairo_clip(cr);
        double w = fmax(hc.w, 3);
        cairo_rectangle(cr, hc.x + hc.w / 2 - w / 2, hc.y, w, hc.h);
        cairo_set_line_width(cr, 3);
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_stroke_preserve(cr);
        cairo_set_line_width(cr, 1.5);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_stroke(cr);
        cairo_restore(cr);
    }
    if (F->strip) draw_strip(cr, F, g, s);
    if (F->note) {
        MsPlotText *t = ms_plot_text_new(&s->style);
        if (t) {
            cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
            ms_plot_text_draw(t, cr, MS_PLOT_ROLE_LABEL, F->note, F->m.rect.w - 8, F->m.rect.x + F->m.rect.w / 2,
                              F->m.rect.y + F->m.rect.h / 2, 0.5, 0.5, 0);
            ms_plot_text_free(t);
        }
    }
    ms_plot_draw_axes(cr, &F->f, &F->g);
    if (F->strip) {
        /* the strip's frame continues the plot's */
        cairo_save(cr);
        cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
        cairo_set_line_width(cr, 1);
        cairo_rectangle(cr, F->strip_r.x - 0.5, F->strip_r.y - 0.5, F->strip_r.w + 1, F->strip_r.h + 1);
        cairo_stroke(cr);
        cairo_restore(cr);
    }
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS)
        rc = ms_error_set(err, MS_EINTERNAL, "cairo: %s", cairo_status_to_string(cairo_status(cr)));
out:
    free(F);
    return rc;
}

/* ------------------------------------------------------------------- hit */

static void describe_value(const HeatFig *F, const MsTokGrid *g, int row, int pos, char *buf, size_t size)
{
    double v = ms_tokgrid_value(g, F->c, row, pos);
    switch (F->c) {
    case MS_VIEW_COLOR_ENTROPY:
        if (isfinite(v))
            snprintf(buf, size, "%s %.3f nats", F->ent_probs ? "routing entropy" : "top-k weight entropy", v);
        else snprintf(buf, size, "entropy n/a");
        break;
    case MS_VIEW_COLOR_WEIGHT:
        if (isfinite(v)) snprintf(buf, size, "top-1 weight %.4f", v);
        else snprintf(buf, size, "top-1 weight n/a");
        break;
    case MS_VIEW_COLOR_HIDDEN:
        if (isfinite(v)) snprintf(buf, size, "max |h| %.4g", v);
        else snprintf(buf, size, "max |h| n/a");
        break;
    default:
        if (v >= 0) snprintf(buf, size, "top-1 expert E%d", (int)v);
        else snprintf(buf, size, "no routing");
        break;
    }
}

static bool heat_hit(const void *model, const MsViewState *s, double W, double H, double x, double y, MsViewHit *out)
{
    const HeatModel *hm = model;
    const MsTokGrid *g = hm->g;
    memset(out, 0, sizeof *out);
    out->kind = MS_HIT_NONE;
    out->layer = out->expert = out->prompt = out->pos = -1;
    out->row = out->col = out->item = -1;
    out->value = NAN;
    HeatFig *F = malloc(sizeof *F);
    if (!F) return false;
    bool hit = false;
    if (heat_fig(hm, s, W, H, F, NULL) < 0) goto out;
    int64_t row, col;
    if (F->strip && ms_plot_rect_contains(&F->strip_r, x, y)) {
        double c = F->m.col0 + (x - F->strip_r.x) / F->strip_r.w * (F->m.col1 - F->m.col0);
        int pos = (int)floor(c);
        if (pos < 0 || pos >= g->n_tok) goto out;
        out->kind = MS_HIT_TOKEN;
        out->prompt = g->prompt_index;
        out->pos = pos;
        out->col = pos;
        ms_tokgrid_token_text(g, pos, out->text, sizeof out->text);
        hit = true;
    } else if (ms_plot_grid_hit(&F->m, x, y, &row, &col)) {
        out->kind = MS_HIT_CELL;
        out->row = row;
        out->col = col;
        out->layer = g->row_layer[row];
        out->prompt = g->prompt_index;
        out->pos = (int)col;
        out->expert = g->top1[(size_t)row * (size_t)g->n_tok + (size_t)col];
        out->value = ms_tokgrid_value(g, F->c, (int)row, (int)col);
        char v[128], tok[sizeof out->text];
        describe_value(F, g, (int)row, (int)col, v, sizeof v);
        ms_tokgrid_token_text(g, (int)col, tok, sizeof tok);
        /* a pixel column of a zoomed-out grid stands for several tokens */
        double per_px = (F->m.col1 - F->m.col0) / F->m.rect.w;
        char span[96] = "";
        if (per_px > 1) {
            int64_t a = (int64_t)floor(F->m.col0 + floor((x - F->m.rect.x)) * per_px);
            int64_t b = (int64_t)ceil(F->m.col0 + (floor(x - F->m.rect.x) + 1) * per_px) - 1;
            if (a < 0) a = 0;
            if (b >= g->n_tok) b = g->n_tok - 1;
            snprintf(span, sizeof span, " (this pixel column shows tokens %lld\xE2\x80\x93%lld)", (long long)a,
                     (long long)b);
        }
        snprintf(out->text, sizeof out->text, "layer %d, token %lld: %s%s\n", out->layer, (long long)col, v, span);
        ms_view_append(out->text, sizeof out->text, tok);
        hit = true;
    } else if (x < F->m.rect.x && x >= 0 && y >= F->m.rect.y && y < F->m.rect.y + F->m.rect.h) {
        double r = F->m.row0 + (y - F->m.rect.y) / F->m.rect.h * (F->m.row1 - F->m.row0);
        int ri = (int)floor(r);
        if (ri < 0 || ri >= g->n_rows) goto out;
        out->kind = MS_HIT_LAYER;
        out->row = ri;
        out->layer = g->row_layer[ri];
        snprintf(out->text, sizeof out->text, "layer %d", out->layer);
        hit = true;
    }
out:
    free(F);
    return hit;
}

bool ms_view_heatmap_cell_rect(const void *model, const MsViewState *s, double W, double H, int row, int pos,
                               MsPlotRect *out)
{
    HeatFig *F = malloc(sizeof *F);
    bool ok = F && heat_fig(model, s, W, H, F, NULL) == 0;
    if (ok && row < 0) {
        /* the token strip */
        ok = F->strip;
        if (ok) {
            double px = F->strip_r.w / (F->m.col1 - F->m.col0);
            *out = (MsPlotRect){ F->strip_r.x + (pos - F->m.col0) * px, F->strip_r.y, px, F->strip_r.h };
        }
    } else if (ok) {
        ok = ms_plot_grid_cell_rect(&F->m, row, pos, out);
    }
    free(F);
    return ok;
}

/* Zoom and pan: tokens on x, layer rows on y, both in cell units; the
 * plot is the grid below the token strip (F->g.plot after heat_fig). */
static bool heat_frame(const void *model, const MsViewState *s, double W, double H, MsViewFrame *out)
{
    const HeatModel *hm = model;
    const MsTokGrid *g = hm->g;
    if (g->n_tok <= 0 || g->n_rows <= 0) return false;
    HeatFig *F = malloc(sizeof *F);
    bool ok = F && heat_fig(hm, s, W, H, F, NULL) == 0 && F->g.plot.w > 0 && F->g.plot.h > 0;
    if (ok) {
        *out = ms_view_frame_from_geom(&F->g, 0, g->n_tok, 0, g->n_rows);
        /* a few tokens and one layer are the closest worth looking */
        out->min_dx = g->n_tok < 8 ? g->n_tok : 8;
        out->min_dy = 1;
    }
    free(F);
    return ok;
}

static void heat_size(const void *model, double *w, double *h)
{
    const HeatModel *hm = model;
    *w = 1400;
    double hh = 260 + 44.0 * hm->g->n_rows;
    *h = hh < 420 ? 420 : hh > 900 ? 900 : hh;
}

const MsViewClass ms_view_heatmap = {
    .name = "heatmap",
    .title = "Token \xC3\x97 layer heat map",
    .summary = "token x layer for one prompt: top-1 expert, entropy, top-1 weight or max |h|",
    .colors = MS_VIEW_COLOR_BIT(MS_VIEW_COLOR_EXPERT) | MS_VIEW_COLOR_BIT(MS_VIEW_COLOR_ENTROPY) | MS_VIEW_COLOR_BIT(MS_VIEW_COLOR_WEIGHT) |
              MS_VIEW_COLOR_BIT(MS_VIEW_COLOR_HIDDEN),
    .prepare = heat_prepare,
    .free_model = heat_free,
    .draw = heat_draw,
    .hit = heat_hit,
    .default_size = heat_size,
    .frame = heat_frame,
};
