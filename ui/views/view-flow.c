/* view-flow.c — `flow`: how tokens move between experts through
 * consecutive MoE layers, as a Sankey-style diagram.  Columns are MoE
 * layers; a node is an expert, its height the number of tokens whose top-1
 * (first-ranked) expert it is there; a band from expert i at layer l to
 * expert j at the next MoE layer carries the tokens with top-1 i at l and
 * top-1 j there — the ExFlow top-1 transition counts (METHODS §2.1), so
 * every token follows one path and bands conserve tokens.  Only the --top
 * largest transitions of each layer pair are drawn; only experts that
 * carry a drawn band get a node, the rest of a layer's tokens form one
 * grey "other" node, and each gap says what share of the pair's tokens its
 * bands carry.  Readable with 64+ experts.
 *
 * Data: the trace itself (a scan of the packed routing: rank-0 expert of
 * every token and MoE layer); no stored analysis is needed, so --no-run
 * changes nothing.  tests/test-views-b.c checks the counts against
 * ms_analyze_affinity --variant top1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "view-b.h"

static void flow_free(void *model)
{
    VbFlow *f = model;
    if (!f) return;
    free(f->layer);
    free(f->load);
    free(f->colsum);
    free(f->T);
    free(f->pair_total);
    free(f->pair_shown);
    free(f->pair_n);
    free(f->bands);
    free(f->shown);
    free(f->n_shown);
    free(f->other);
    free(f->n_other);
    free(f->legend_e);
    free(f);
}

/* --------------------------------------------------------------- prepare */

/* Counts of one scanning thread. */
typedef struct {
    int E, n_cols, slot0;    /* slot0: first MoE slot shown */
    double *load, *T;        /* n_cols × E, (n_cols − 1) × E × E */
    int64_t n_tokens;
} Feed;

static int feed(void *user, const VbToken *t, MsError *err)
{
    (void)err;
    Feed *f = user;
    int E = f->E, prev = -1;
    bool any = false;
    for (int c = 0; c < f->n_cols; c++) {
        int s = f->slot0 + c, e = t->n[s] > 0 ? t->ids[(size_t)s * t->stride] : -1;
        if (e >= 0) {
            f->load[(size_t)c * E + e] += 1;
            any = true;
            if (c > 0 && prev >= 0) f->T[((size_t)(c - 1) * E + prev) * E + e] += 1;
        }
        prev = e;
    }
    if (any) f->n_tokens++;
    return 0;
}

static int band_cmp(const void *pa, const void *pb)
{
    const VbBand *a = pa, *b = pb;
    if (a->p != b->p) return a->p < b->p ? -1 : 1;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    if (a->i != b->i) return a->i < b->i ? -1 : 1;
    return (a->j > b->j) - (a->j < b->j);
}

/* The top bands of each pair, the nodes they need, the "other" nodes. */
static int select_bands(VbFlow *f)
{
    int E = f->E, np = f->n_cols - 1;
    size_t EE = (size_t)E * E;
    f->bands = malloc(sizeof *f->bands * ((size_t)np * f->top + 1));
    VbBand *cand = malloc(sizeof *cand * (EE ? EE : 1));
    if (!f->bands || !cand) {
        free(cand);
        return MS_ENOMEM;
    }
    for (int p = 0; p < np; p++) {
        const double *T = f->T + (size_t)p * EE;
        size_t n = 0;
        double tot = 0;
        for (size_t q = 0; q < EE; q++)
            if (T[q] > 0) {
                cand[n++] = (VbBand){ p, (int)(q / E), (int)(q % E), T[q] };
                tot += T[q];
            }
        qsort(cand, n, sizeof *cand, band_cmp);
        size_t keep = n < (size_t)f->top ? n : (size_t)f->top;
        double shown = 0;
        for (size_t b = 0; b < keep; b++) {
            f->bands[f->n_bands++] = cand[b];
            shown += cand[b].count;
            f->shown[(size_t)p * E + cand[b].i] = true;
            f->shown[(size_t)(p + 1) * E + cand[b].j] = true;
        }
        f->pair_total[p] = tot;
        f->pair_shown[p] = shown;
        f->pair_n[p] = (int64_t)n;
    }
    free(cand);
    bool *any = calloc((size_t)E, sizeof *any);
    f->legend_e = malloc(sizeof *f->legend_e * (size_t)E);
    if (!any || !f->legend_e) {
        free(any);
        return MS_ENOMEM;
    }
    for (int c = 0; c < f->n_cols; c++)
        for (int e = 0; e < E; e++) {
            double l = f->load[(size_t)c * E + e];
            if (f->shown[(size_t)c * E + e]) {
                f->n_shown[c]++;
                any[e] = true;
            } else if (l > 0) {
                f->other[c] += l;
                f->n_other[c]++;
            }
        }
    for (int e = 0; e < E; e++)
        if (any[e]) f->legend_e[f->n_legend++] = e;
    free(any);
    return 0;
}

static int prepare(MsTraceDb *db, const MsViewParams *p, void **model, MsError *err)
{
    *model = NULL;
    if (p->order && strcmp(p->order, "id") && strcmp(p->order, "load"))
        return ms_error_set(err, MS_EINVAL, "--order: flow orders the experts of a layer by id or load (got '%s')",
                            p->order);
    MsTraceRunInfo ri;
    int rc = vb_run(db, p->run, &ri, err);
    if (rc < 0) return rc;
    int layers[MS_TRACE_MAX_LAYER], nl = vb_moe_layers(&ri, layers), s0 = -1, s1 = -1;
    for (int s = 0; s < nl; s++) {
        if (p->layer_lo >= 0 && layers[s] < p->layer_lo) continue;
        if (p->layer_hi >= 0 && layers[s] > p->layer_hi) continue;
        if (s0 < 0) s0 = s;
        s1 = s;
    }
    VbFlow *f = NULL;
    if (s0 < 0 || s1 <= s0) {
        rc = ms_error_set(err, MS_EINVAL, "%s: run %lld: flow needs two MoE layers%s (the model's MoE layers: %d of %d blocks)",
                          ms_trace_path(db), (long long)ri.run_id, p->layer_lo >= 0 ? " in --layers" : "", nl,
                          ri.model.n_layer);
    } else if (!(f = calloc(1, sizeof *f))) {
        rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    if (rc >= 0) {
        int nc = s1 - s0 + 1, E = ri.model.n_expert;
        size_t EE = (size_t)E * E;
        f->run = ri.run_id;
        f->E = E;
        f->n_cols = nc;
        f->top = p->top > 0 ? p->top : 12;
        f->by_load = p->order && !strcmp(p->order, "load");
        f->layer = malloc(sizeof *f->layer * nc);
        f->load = calloc((size_t)nc * E, sizeof *f->load);
        f->colsum = calloc((size_t)nc, sizeof *f->colsum);
        f->T = calloc((size_t)(nc - 1) * EE, sizeof *f->T);
        f->pair_total = calloc((size_t)nc, sizeof(double));
        f->pair_shown = calloc((size_t)nc, sizeof(double));
        f->pair_n = calloc((size_t)nc, sizeof(int64_t));
        f->shown = calloc((size_t)nc * E, sizeof *f->shown);
        f->n_shown = calloc((size_t)nc, sizeof(int));
        f->other = calloc((size_t)nc, sizeof(double));
        f->n_other = calloc((size_t)nc, sizeof(int));
        if (!f->layer || !f->load || !f->colsum || !f->T || !f->pair_total || !f->pair_shown || !f->pair_n ||
            !f->shown || !f->n_shown || !f->other || !f->n_other)
            rc = ms_error_set(err, MS_ENOMEM, "out of memory (flow over %d layers, E = %d)", nc, E);
    }
    if (rc >= 0) {
        for (int c = 0; c < f->n_cols; c++) f->layer[c] = layers[s0 + c];
        bool want[MS_TRACE_MAX_LAYER] = { false };
        for (int s = s0; s <= s1; s++) want[s] = true;
        /* two threads over the two halves of the run, summed */
        size_t nl = (size_t)f->n_cols * f->E, nt = (size_t)(f->n_cols - 1) * f->E * f->E;
        Feed d0 = { f->E, f->n_cols, s0, f->load, f->T, 0 };
        Feed d1 = { f->E, f->n_cols, s0, calloc(nl, sizeof(double)), calloc(nt, sizeof(double)), 0 };
        bool split = false;
        if (!d1.load || !d1.T) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
        else rc = vb_scan_split(db, &ri, want, feed, &d0, &d1, &split, 1 << 16, p->progress, p->progress_user, p->cancel,
                                "flow", err);
        if (rc >= 0 && split) {
            for (size_t i = 0; i < nl; i++) f->load[i] += d1.load[i];
            for (size_t i = 0; i < nt; i++) f->T[i] += d1.T[i];
        }
        f->n_tokens = d0.n_tokens + d1.n_tokens;
        free(d1.load);
        free(d1.T);
    }
    if (rc >= 0) {
        for (int c = 0; c < f->n_cols; c++)
            for (int e = 0; e < f->E; e++) f->colsum[c] += f->load[(size_t)c * f->E + e];
        if (f->n_tokens == 0) rc = ms_error_set(err, MS_ENOTFOUND, "%s: run %lld has no routing in these layers",
                                                ms_trace_path(db), (long long)ri.run_id);
    }
    if (rc >= 0 && select_bands(f) < 0) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    ms_trace_run_info_clear(&ri);
    if (rc < 0) {
        flow_free(f);
        return rc;
    }
    *model = f;
    return 0;
}

/* ---------------------------------------------------------------- layout */

typedef struct {
    MsPlotRect r;
    int c, e;           /* column, expert (−1: other) */
    double in_y, out_y; /* next free attachment point of incoming / outgoing bands */
} Node;

typedef struct {
    double x0, x1, y0a, y0b, y1a, y1b;   /* left end [y0a, y0b], right end [y1a, y1b] */
} Ribbon;

typedef struct {
    MsPlotFrame f;
    MsPlotGeom g;
    MsPlotLegend lg;
    MsPlotLegendItem *items;
    char (*labels)[24];
    char title[256], xt[64], yt[160];
    double pad, node_w, text_h;
    int n_nodes;
    Node *nodes;
    int *node_of;       /* n_cols × E → node index, −1 */
    int *other_of;      /* n_cols → node index of "other", −1 */
    Ribbon *rib;        /* per band */
} FlowGeom;

static void geom_free(FlowGeom *fg)
{
    free(fg->items);
    free(fg->labels);
    free(fg->nodes);
    free(fg->node_of);
    free(fg->other_of);
    free(fg->rib);
}

static const char *col_label(void *user, int64_t i, char *buf, size_t size)
{
    const VbFlow *f = user;
    if (i < 0 || i >= f->n_cols) return NULL;
    snprintf(buf, size, "L%d", f->layer[i]);
    return buf;
}

static double rank_of(const VbFlow *f, int c, int e)
{
    return f->by_load ? -f->load[(size_t)c * f->E + e] : e;
}

static int flow_layout(const VbFlow *f, const MsViewState *s, double W, double H, FlowGeom *fg, MsError *err)
{
    memset(fg, 0, sizeof *fg);
    int E = f->E, nc = f->n_cols;
    if (s && s->title) snprintf(fg->title, sizeof fg->title, "%s", s->title);
    else snprintf(fg->title, sizeof fg->title, "Routing flow: top-1 expert paths, layers %d\xE2\x80\x93%d", f->layer[0],
                  f->layer[nc - 1]);
    snprintf(fg->xt, sizeof fg->xt, "MoE layer");
    snprintf(fg->yt, sizeof fg->yt, "Tokens by top-1 expert (height \xE2\x88\x9D tokens)");
    fg->items = malloc(sizeof *fg->items * (size_t)(f->n_legend + 1));
    fg->labels = malloc(sizeof *fg->labels * (size_t)(f->n_legend + 1));
    fg->nodes = malloc(sizeof *fg->nodes * ((size_t)nc * (E + 1)));
    fg->node_of = malloc(sizeof *fg->node_of * (size_t)nc * E);
    fg->other_of = malloc(sizeof *fg->other_of * (size_t)nc);
    fg->rib = malloc(sizeof *fg->rib * (size_t)(f->n_bands + 1));
    if (!fg->items || !fg->labels || !fg->nodes || !fg->node_of || !fg->other_of || !fg->rib) {
        geom_free(fg);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    for (int i = 0; i < f->n_legend; i++) {
        snprintf(fg->labels[i], sizeof fg->labels[i], "E%d", f->legend_e[i]);
        fg->items[i] = (MsPlotLegendItem){ fg->labels[i], ms_plot_category_color(f->legend_e[i]) };
    }
    int nli = f->n_legend;
    bool any_other = false;
    for (int c = 0; c < nc; c++) any_other |= f->n_other[c] > 0;
    if (any_other) {
        snprintf(fg->labels[nli], sizeof fg->labels[nli], "other experts");
        fg->items[nli] = (MsPlotLegendItem){ fg->labels[nli], ms_plot_missing_color() };
        nli++;
    }
    fg->lg = (MsPlotLegend){ "Expert (top-1)", fg->items, (size_t)nli };
    fg->f = (MsPlotFrame){
        .title = fg->title,
        .x = { .kind = MS_PLOT_AXIS_CATEGORY, .title = fg->xt, .lo = 0, .hi = nc, .count = nc, .label = col_label,
               .label_user = (void *)f },
        .y = { .kind = MS_PLOT_AXIS_NONE, .title = fg->yt, .lo = 0, .hi = 1 },
        .legend = &fg->lg,
        .style = s ? &s->style : NULL,
    };
    if (s && s->x1 > s->x0) {
        fg->f.x.lo = fmax(-0.5, s->x0);
        fg->f.x.hi = fmin(nc + 0.5, s->x1);
    }
    int rc = ms_plot_layout(&fg->f, W, H, &fg->g, err);
    if (rc < 0) {
        geom_free(fg);
        return rc;
    }
    MsPlotText *t = ms_plot_text_new(s ? &s->style : NULL);
    if (!t) {
        geom_free(fg);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    MsPlotTextSize sz;
    ms_plot_text_measure(t, MS_PLOT_ROLE_NOTE, "0Ag", 0, &sz);
    fg->text_h = sz.height;
    fg->pad = ms_plot_text_pad(t);
    ms_plot_text_free(t);

    /* vertical scale: the fullest column fills the plot height less its gaps
     * (a strip at the bottom keeps the coverage notes) */
    const MsPlotRect *pr = &fg->g.plot;
    double gap = fmax(2, round(fg->pad * 0.5)), top = pr->y + fg->pad * 0.5;
    double bottom = pr->y + pr->h - fg->text_h - fg->pad * 0.6;
    int max_nodes = 1;
    double max_sum = 0;
    for (int c = 0; c < nc; c++) {
        int nn = f->n_shown[c] + (f->n_other[c] > 0);
        if (nn > max_nodes) max_nodes = nn;
        if (f->colsum[c] > max_sum) max_sum = f->colsum[c];
    }
    double avail = bottom - top - gap * (max_nodes - 1);
    if (avail < max_nodes) avail = max_nodes;   /* a very small figure: nodes overlap their gaps */
    double k = max_sum > 0 ? avail / max_sum : 0;
    double colw = pr->w / (fg->f.x.hi - fg->f.x.lo) * 1.0;
    fg->node_w = fmin(fmax(4, round(fg->pad * 1.2)), fmax(2, colw * 0.25));
    /* nodes: shown experts in id (or load) order, "other" last */
    int order[4096 + 1];
    int *ord = E <= 4096 ? order : malloc(sizeof(int) * (size_t)E);
    if (!ord) {
        geom_free(fg);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    for (int c = 0; c < nc; c++) {
        fg->other_of[c] = -1;
        int n = 0;
        for (int e = 0; e < E; e++) {
            fg->node_of[(size_t)c * E + e] = -1;
            if (f->shown[(size_t)c * E + e]) ord[n++] = e;
        }
        /* insertion sort by rank (n is small: at most 2 x top) */
        for (int a = 1; a < n; a++) {
            int v = ord[a], b = a;
            while (b > 0 && rank_of(f, c, ord[b - 1]) > rank_of(f, c, v)) {
                ord[b] = ord[b - 1];
                b--;
            }
            ord[b] = v;
        }
        double x = ms_plot_x_to_px(&fg->g, c + 0.5) - fg->node_w / 2, y = top;
        for (int a = 0; a <= n; a++) {
            int e = a < n ? ord[a] : -1;
            double v = a < n ? f->load[(size_t)c * E + e] : f->other[c];
            if (a == n && f->n_other[c] == 0) break;
            double h = fmax(1, v * k);
            Node *nd = &fg->nodes[fg->n_nodes];
            *nd = (Node){ { x, y, fg->node_w, h }, c, e, y, y };
            if (e >= 0) fg->node_of[(size_t)c * E + e] = fg->n_nodes;
            else fg->other_of[c] = fg->n_nodes;
            fg->n_nodes++;
            y += h + gap;
        }
    }
    if (ord != order) free(ord);
    /* bands: outgoing stacked by target position, incoming by source position */
    int nb = f->n_bands;
    int *bi = malloc(sizeof(int) * (size_t)(nb + 1));
    if (!bi) {
        geom_free(fg);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int b = 0; b < nb; b++) bi[b] = b;
        /* pass 0: sort by (source node, target y); pass 1: (target node, source y) */
        for (int a = 1; a < nb; a++) {
            int v = bi[a], q = a;
            for (; q > 0; q--) {
                const VbBand *x = &f->bands[bi[q - 1]], *y = &f->bands[v];
                int xs = fg->node_of[(size_t)x->p * E + x->i], xt = fg->node_of[(size_t)(x->p + 1) * E + x->j];
                int ys = fg->node_of[(size_t)y->p * E + y->i], yt = fg->node_of[(size_t)(y->p + 1) * E + y->j];
                int k1 = pass ? xt : xs, k2 = pass ? yt : ys, o1 = pass ? xs : xt, o2 = pass ? ys : yt;
                if (k1 < k2 || (k1 == k2 && o1 <= o2)) break;
                bi[q] = bi[q - 1];
            }
            bi[q] = v;
        }
        for (int a = 0; a < nb; a++) {
            const VbBand *bd = &f->bands[bi[a]];
            Ribbon *r = &fg->rib[bi[a]];
            double h = bd->count * k;
            if (pass == 0) {
                Node *src = &fg->nodes[fg->node_of[(size_t)bd->p * E + bd->i]];
                r->x0 = src->r.x + src->r.w;
                r->y0a = src->out_y;
                r->y0b = src->out_y + h;
                src->out_y += h;
            } else {
                Node *dst = &fg->nodes[fg->node_of[(size_t)(bd->p + 1) * E + bd->j]];
                r->x1 = dst->r.x;
                r->y1a = dst->in_y;
                r->y1b = dst->in_y + h;
                dst->in_y += h;
            }
        }
    }
    free(bi);
    return 0;
}

/* ------------------------------------------------------------------ draw */

static void ribbon_path(cairo_t *cr, const Ribbon *r)
{
    double xm = (r->x0 + r->x1) / 2;
    cairo_move_to(cr, r->x0, r->y0a);
    cairo_curve_to(cr, xm, r->y0a, xm, r->y1a, r->x1, r->y1a);
    cairo_line_to(cr, r->x1, r->y1b);
    cairo_curve_to(cr, xm, r->y1b, xm, r->y0b, r->x0, r->y0b);
    cairo_close_path(cr);
}

static bool node_selected(const MsViewState *s, int layer, int e)
{
    return s && s->sel_expert >= 0 && e == s->sel_expert && (s->sel_layer < 0 || s->sel_layer == layer);
}

static int flow_draw(cairo_t *cr, double width, double height, const void *model, const MsViewState *s, MsError *err)
{
    const VbFlow *f = model;
    FlowGeom fg;
    int rc = flow_layout(f, s, width, height, &fg, err);
    if (rc < 0) return rc;
    ms_plot_draw_back(cr, &fg.f, &fg.g);
    MsPlotText *t = ms_plot_text_new(s ? &s->style : NULL);
    if (!t) {
        geom_free(&fg);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    cairo_save(cr);
    cairo_rectangle(cr, fg.g.plot.x, fg.g.plot.y, fg.g.plot.w, fg.g.plot.h);
    cairo_clip(cr);
    bool sel = s && s->sel_expert >= 0;
    /* bands: the largest first, so small ones stay visible on top */
    for (int b = 0; b < f->n_bands; b++) {
        const VbBand *bd = &f->bands[b];
        MsRgb c = ms_plot_category_color(bd->i);
        bool on = node_selected(s, f->layer[bd->p], bd->i) || node_selected(s, f->layer[bd->p + 1], bd->j);
        double a = !sel ? 0.45 : on ? 0.8 : 0.12;
        cairo_set_source_rgba(cr, c.r, c.g, c.b, a);
        ribbon_path(cr, &fg.rib[b]);
        cairo_fill(cr);
    }
    /* nodes and their labels */
    for (int n = 0; n < fg.n_nodes; n++) {
        const Node *nd = &fg.nodes[n];
        MsRgb c = nd->e >= 0 ? ms_plot_category_color(nd->e) : ms_plot_missing_color();
        cairo_set_source_rgb(cr, c.r, c.g, c.b);
        cairo_rectangle(cr, nd->r.x, nd->r.y, nd->r.w, nd->r.h);
        cairo_fill(cr);
        if (nd->e >= 0 && node_selected(s, f->layer[nd->c], nd->e)) {
            cairo_set_source_rgb(cr, 0, 0, 0);
            cairo_set_line_width(cr, 2);
            cairo_rectangle(cr, nd->r.x - 1, nd->r.y - 1, nd->r.w + 2, nd->r.h + 2);
            cairo_stroke(cr);
        }
        if (nd->r.h < fg.text_h) continue;   /* labels never overlap their neighbours */
        char buf[64];
        if (nd->e >= 0) snprintf(buf, sizeof buf, "E%d", nd->e);
        else snprintf(buf, sizeof buf, "other (%d)", f->n_other[nd->c]);
        MsPlotTextSize sz;
        ms_plot_text_measure(t, MS_PLOT_ROLE_NOTE, buf, 0, &sz);
        bool right = nd->c < f->n_cols - 1 || f->n_cols == 1;
        double tx = right ? nd->r.x + nd->r.w + fg.pad * 0.3 : nd->r.x - fg.pad * 0.3 - sz.width;
        double ty = nd->r.y + nd->r.h / 2;
        cairo_set_source_rgba(cr, 1, 1, 1, 0.75);
        cairo_rectangle(cr, tx - 1, ty - sz.height / 2, sz.width + 2, sz.height);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.13, 0.13, 0.13);
        ms_plot_text_draw(t, cr, MS_PLOT_ROLE_NOTE, buf, 0, tx, ty, 0, 0.5, 0);
    }
    /* what each gap's bands carry */
    for (int p = 0; p + 1 < f->n_cols; p++) {
        if (!(f->pair_total[p] > 0)) continue;
        char buf[64];
        snprintf(buf, sizeof buf, "%.0f %% shown", 100 * f->pair_shown[p] / f->pair_total[p]);
        double x = ms_plot_x_to_px(&fg.g, p + 1.0);
        MsPlotTextSize sz;
        ms_plot_text_measure(t, MS_PLOT_ROLE_NOTE, buf, 0, &sz);
        double gapw = ms_plot_x_to_px(&fg.g, p + 1.5) - ms_plot_x_to_px(&fg.g, p + 0.5) - fg.node_w - fg.pad * 0.4;
        if (sz.width > gapw) {
            snprintf(buf, sizeof buf, "%.0f%%", 100 * f->pair_shown[p] / f->pair_total[p]);
            ms_plot_text_measure(t, MS_PLOT_ROLE_NOTE, buf, 0, &sz);
            if (sz.width > gapw) continue;
        }
        cairo_set_source_rgb(cr, 0.42, 0.42, 0.42);
        ms_plot_text_draw(t, cr, MS_PLOT_ROLE_NOTE, buf, 0, x, fg.g.plot.y + fg.g.plot.h - fg.pad * 0.3, 0.5, 1, 0);
    }
    cairo_restore(cr);
    ms_plot_text_free(t);
    ms_plot_draw_axes(cr, &fg.f, &fg.g);
    geom_free(&fg);
    return 0;
}

/* ------------------------------------------------------------------- hit */

/* Is (x, y) inside ribbon r?  Both edges are cubic Béziers with the same
 * x(t) = x0 + (x1 − x0)(1.5t − 1.5t² + t³), monotone in t. */
static bool ribbon_hit(const Ribbon *r, double x, double y)
{
    if (!(x >= r->x0 && x <= r->x1) || r->x1 <= r->x0) return false;
    double u = (x - r->x0) / (r->x1 - r->x0), lo = 0, hi = 1;
    for (int it = 0; it < 40; it++) {
        double t = (lo + hi) / 2, v = 1.5 * t - 1.5 * t * t + t * t * t;
        if (v < u) lo = t;
        else hi = t;
    }
    double t = (lo + hi) / 2, sm = 3 * t * t - 2 * t * t * t;
    double ya = r->y0a + (r->y1a - r->y0a) * sm, yb = r->y0b + (r->y1b - r->y0b) * sm;
    return y >= ya - 0.5 && y <= yb + 0.5;
}

static bool flow_hit(const void *model, const MsViewState *s, double width, double height, double x, double y,
                     MsViewHit *out)
{
    const VbFlow *f = model;
    memset(out, 0, sizeof *out);
    out->layer = out->expert = out->prompt = out->pos = -1;
    out->row = out->col = out->item = -1;
    out->value = NAN;
    FlowGeom fg;
    if (flow_layout(f, s, width, height, &fg, NULL) < 0) return false;
    bool found = false;
    char a[48], b[48];
    for (int n = 0; n < fg.n_nodes && !found; n++) {
        const Node *nd = &fg.nodes[n];
        MsPlotRect r = nd->r;
        if (r.h < 3) r.y -= (3 - r.h) / 2, r.h = 3;   /* thin nodes stay hittable */
        if (!ms_plot_rect_contains(&r, x, y)) continue;
        int c = nd->c, L = f->layer[c];
        double v = nd->e >= 0 ? f->load[(size_t)c * f->E + nd->e] : f->other[c];
        vb_fmt_count(v, a, sizeof a);
        out->kind = MS_HIT_EXPERT;
        out->layer = L;
        out->expert = nd->e;
        out->col = c;
        out->value = v;
        double pct = f->colsum[c] > 0 ? 100 * v / f->colsum[c] : 0;
        if (nd->e >= 0)
            snprintf(out->text, sizeof out->text, "L%d E%d: top-1 expert of %s tokens (%.1f %% of the layer)", L, nd->e,
                     a, pct);
        else
            snprintf(out->text, sizeof out->text, "L%d, %d other experts (no band drawn): %s tokens (%.1f %%)", L,
                     f->n_other[c], a, pct);
        found = true;
    }
    for (int bidx = f->n_bands - 1; bidx >= 0 && !found; bidx--) {
        if (!ribbon_hit(&fg.rib[bidx], x, y)) continue;
        const VbBand *bd = &f->bands[bidx];
        double src = f->load[(size_t)bd->p * f->E + bd->i];
        vb_fmt_count(bd->count, a, sizeof a);
        out->kind = MS_HIT_ITEM;
        out->item = bidx;
        out->layer = f->layer[bd->p];
        out->expert = bd->i;
        out->row = bd->i;
        out->col = bd->j;
        out->value = bd->count;
        snprintf(out->text, sizeof out->text, "L%d E%d \xE2\x86\x92 L%d E%d: %s tokens (%.0f %%)", f->layer[bd->p],
                 bd->i, f->layer[bd->p + 1], bd->j, a, src > 0 ? 100 * bd->count / src : 0);
        found = true;
    }
    if (!found && ms_plot_rect_contains(&fg.g.plot, x, y)) {
        /* a gap: what its bands leave out */
        double v = ms_plot_px_to_x(&fg.g, x) - 0.5;
        int p = (int)floor(v);
        if (p >= 0 && p + 1 < f->n_cols && f->pair_total[p] > 0) {
            vb_fmt_count(f->pair_total[p], a, sizeof a);
            vb_fmt_count((double)(f->pair_n[p] - MS_MIN(f->pair_n[p], f->top)), b, sizeof b);
            out->kind = MS_HIT_LAYER;
            out->layer = f->layer[p];
            out->value = f->pair_shown[p] / f->pair_total[p];
            snprintf(out->text, sizeof out->text,
                     "L%d \xE2\x86\x92 L%d: the %d bands drawn carry %.1f %% of %s tokens; %s smaller transitions are not drawn",
                     f->layer[p], f->layer[p + 1], (int)MS_MIN(f->pair_n[p], f->top), 100 * out->value, a, b);
            found = true;
        }
    }
    geom_free(&fg);
    return found;
}

static void flow_default_size(const void *model, double *width, double *height)
{
    const VbFlow *f = model;
    *width = fmin(2400, fmax(900, 200 + 110.0 * f->n_cols));
    *height = 760;
}

const MsViewClass ms_view_flow = {
    .name = "flow",
    .title = "Routing flow across layers",
    .summary = "Sankey diagram of the most frequent top-1 expert transitions between layers",
    .prepare = prepare,
    .free_model = flow_free,
    .draw = flow_draw,
    .hit = flow_hit,
    .default_size = flow_default_size,
};
