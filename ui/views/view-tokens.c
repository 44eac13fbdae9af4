/* view-tokens.c — `tokens`: a prompt's text as a strip of token pieces that
 * wraps like text (a piece holding a newline ends its line), each piece on
 * a box coloured by the chosen layer's top-1 expert (with a legend of the
 * experts present) or by its routing entropy at that layer (viridis, with a
 * colour bar).  Pieces are escaped as msplot shows tokens: control
 * characters and invalid bytes as escapes, every script and emoji as is.
 * The number at the left of each line is the position of its first token.
 *
 * Widths: each distinct piece is measured once when the model is prepared
 * (at a 12-unit monospace font) and scaled to the style's token size when
 * drawn (unhinted metrics scale linearly), so the flow of a long prompt is
 * arithmetic, not text measurement, on every frame.
 *
 * State: y0/y1 = the visible window of lines (the first visible line is
 * floor(y0); as many lines as fit are shown; x0/x1 are not used);
 * hover_col = a token position to outline; sel_layer/sel_expert underline
 * the tokens whose selected set at that layer holds the expert (sel_layer
 * −1: the coloured layer). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "view-tokgrid.h"

typedef struct {
    MsTokGrid *g;
    int row;                     /* the coloured layer's row */
    MsViewColorBy color_by;      /* prepared default */
    size_t n_present;
    MsPlotLegendItem *items;
    char (*names)[24];
} TokModel;

static void tok_free(void *model)
{
    TokModel *m = model;
    if (!m) return;
    ms_tokgrid_free(m->g);
    free(m->items);
    free(m->names);
    free(m);
}

static int tok_prepare(MsTraceDb *db, const MsViewParams *p, void **out, MsError *err)
{
    *out = NULL;
    MsViewColorBy c = p->color_by ? p->color_by : MS_VIEW_COLOR_EXPERT;
    if (c != MS_VIEW_COLOR_EXPERT && c != MS_VIEW_COLOR_ENTROPY)
        return ms_error_set(err, MS_EINVAL, "tokens: --color-by must be expert or entropy (got %s)",
                            ms_view_color_name(c));
    MsTokGrid *g = NULL;
    unsigned flags = MS_TOKGRID_WIDTHS | (c == MS_VIEW_COLOR_ENTROPY ? MS_TOKGRID_PROBS | MS_TOKGRID_WENTROPY : 0);
    int rc = ms_tokgrid_prepare(db, p, flags, &g, err);
    if (rc < 0) return rc;
    int row = 0;
    if (p->layer >= 0) {
        row = p->layer < MS_TRACE_MAX_LAYER ? g->layer_row[p->layer] : -1;
        if (row < 0) {
            rc = ms_error_set(err, MS_EINVAL, "%s: block %d of run %lld is not a shown MoE layer (MoE blocks %d-%d)",
                              ms_trace_path(db), p->layer, (long long)g->run_id, g->row_layer[0],
                              g->row_layer[g->n_rows - 1]);
            ms_tokgrid_free(g);
            return rc;
        }
    }
    if (c == MS_VIEW_COLOR_ENTROPY && !g->has_weights && !g->p_entropy) {
        rc = ms_error_set(err, MS_EINVAL, "%s: run %lld has no gate weights or router probabilities for "
                          "--color-by entropy", ms_trace_path(db), (long long)g->run_id);
        ms_tokgrid_free(g);
        return rc;
    }
    TokModel *m = calloc(1, sizeof *m);
    if (!m) {
        ms_tokgrid_free(g);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    m->g = g;
    m->row = row;
    m->color_by = c;
    /* legend: experts that are top-1 at this layer, with their token counts */
    int E = g->n_expert > 0 ? g->n_expert : 1;
    const int32_t *top = g->top1 + (size_t)row * (size_t)g->n_tok;
    for (int i = 0; i < g->n_tok; i++)
        if (top[i] >= E) E = top[i] + 1;
    int *cnt = calloc((size_t)E, sizeof *cnt);
    if (!cnt) goto oom;
    for (int i = 0; i < g->n_tok; i++)
        if (top[i] >= 0) cnt[top[i]]++;
    for (int e = 0; e < E; e++) m->n_present += cnt[e] > 0;
    m->items = calloc(m->n_present + 1, sizeof *m->items);
    m->names = calloc(m->n_present + 1, sizeof *m->names);
    if (!m->items || !m->names) {
        free(cnt);
        goto oom;
    }
    size_t k = 0;
    for (int e = 0; e < E; e++)
        if (cnt[e]) {
            snprintf(m->names[k], sizeof m->names[k], "E%d (%d)", e, cnt[e]);
            m->items[k] = (MsPlotLegendItem){ m->names[k], ms_plot_category_color(e) };
            k++;
        }
    free(cnt);
    *out = m;
    return 0;
oom:
    tok_free(m);
    return ms_error_set(err, MS_ENOMEM, "out of memory");
}

/* ------------------------------------------------------------- geometry */

typedef struct {
    MsPlotFrame f;
    MsPlotColorbar cb;
    MsPlotLegend lg;
    char title[320], cb_title[64], lg_title[64];
    MsPlotGeom g;
    MsViewColorBy c;
    const float *ent;            /* entropy mode: the values (NULL: none) */
    bool ent_probs;
    double scale;                /* token size / 12 (the measuring size) */
    double pad, line_h, box_h, min_w, text_h;
    double gutter;               /* left column of line-start positions */
    MsPlotRect text;             /* where pieces flow */
    double note_h;
    int first_line, n_fit, n_lines;
} TokFig;

/* Flow: calls fn for every token with its box; stops when fn returns true.
 * Lines are counted from 0; boxes are relative to F->text's top-left with
 * y = line * line_h.  Returns the number of lines. */
typedef bool (*FlowFn)(void *user, int pos, int line, double x, double w);

static int flow(const TokModel *tm, const TokFig *F, FlowFn fn, void *user)
{
    const MsTokGrid *g = tm->g;
    double x = 0, avail = F->text.w;
    int line = 0;
    bool brk = false;
    for (int p = 0; p < g->n_tok; p++) {
        double w = g->piece_w[p] * F->scale + 2 * F->pad;
        if (w < F->min_w) w = F->min_w;
        if (w > avail) w = avail;
        if (brk || (x > 0 && x + w > avail)) {
            line++;
            x = 0;
        }
        if (fn && fn(user, p, line, x, w)) return line + 1;
        x += w;
        const char *b = g->pieces + g->piece_off[p];
        brk = memchr(b, '\n', (size_t)(g->piece_off[p + 1] - g->piece_off[p])) != NULL;
    }
    return line + 1;
}

static int tok_fig_at(const TokModel *tm, const MsViewState *s, double W, double H, TokFig *F, MsError *err)
{
    const MsTokGrid *g = tm->g;
    memset(F, 0, sizeof *F);
    F->c = s->color_by == MS_VIEW_COLOR_ENTROPY || s->color_by == MS_VIEW_COLOR_EXPERT ? s->color_by : tm->color_by;
    int layer = g->row_layer[tm->row];
    if (F->c == MS_VIEW_COLOR_ENTROPY) {
        /* NULL when not prepared for entropy: the boxes show n/a grey */
        F->ent = ms_tokgrid_entropy(g, &F->ent_probs);
        F->cb.scale = (MsPlotColorScale){ MS_CMAP_VIRIDIS, 0,
                                          F->ent_probs ? log(g->n_expert > 1 ? g->n_expert : 2)
                                                       : log(g->kmax > 1 ? g->kmax : 2) };
        snprintf(F->cb_title, sizeof F->cb_title, "%s at layer %d",
                 F->ent_probs || !F->ent ? "routing entropy" : "top-k weight entropy", layer);
        F->cb.title = F->cb_title;
        F->cb.unit = "nats";
        F->cb.show_missing = true;
        F->f.colorbar = &F->cb;
    } else {
        snprintf(F->lg_title, sizeof F->lg_title, "Top-1 expert (tokens)");
        F->lg = (MsPlotLegend){ .title = F->lg_title, .items = tm->items, .n = tm->n_present };
        F->f.legend = &F->lg;
    }
    if (s->title) snprintf(F->title, sizeof F->title, "%s", s->title);
    else
        snprintf(F->title, sizeof F->title, "Prompt %d by %s at layer %d \xC2\xB7 run %lld, %d tokens",
                 g->prompt_index,
                 F->c == MS_VIEW_COLOR_ENTROPY ? (F->ent_probs || !F->ent ? "routing entropy" : "top-k weight entropy")
                                               : "top-1 expert",
                 layer, (long long)g->run_id, g->n_tok);
    F->f.title = F->title;
    F->f.style = &s->style;
    F->f.x = (MsPlotAxis){ .kind = MS_PLOT_AXIS_NONE };
    F->f.y = (MsPlotAxis){ .kind = MS_PLOT_AXIS_NONE, .title = "Line start (token position)" };
    int rc = ms_plot_layout(&F->f, W, H, &F->g, err);
    if (rc < 0) return rc;

    MsPlotText *t = ms_plot_text_new(&s->style);
    if (!t) return ms_error_set(err, MS_ENOMEM, "out of memory");
    double tsize = ms_plot_text_role_size(t, MS_PLOT_ROLE_TOKEN);
    MsPlotTextSize sz;
    ms_plot_token_measure(t, "Ag", 2, 0, 0, &sz);
    F->scale = tsize / 12.0;
    F->pad = round(tsize * 0.25 * 4) / 4;
    F->text_h = sz.height;
    F->box_h = ceil(sz.height + 2 * F->pad * 0.6);
    F->line_h = F->box_h + ceil(tsize * 0.35);
    F->min_w = tsize * 0.6;
    char buf[32];
    snprintf(buf, sizeof buf, "%d", g->n_tok > 0 ? g->n_tok - 1 : 0);
    ms_plot_text_measure(t, MS_PLOT_ROLE_TICK, buf, 0, &sz);
    F->gutter = ceil(sz.width + ms_plot_text_pad(t) * 1.5);
    ms_plot_text_measure(t, MS_PLOT_ROLE_NOTE, "0Ag", 0, &sz);
    F->note_h = ceil(sz.height + ms_plot_text_pad(t) * 0.6);
    double ip = ms_plot_text_pad(t) * 0.6;
    ms_plot_text_free(t);
    const MsPlotRect *p = &F->g.plot;
    F->text = (MsPlotRect){ p->x + F->gutter + ip, p->y + ip, p->w - F->gutter - 2 * ip, p->h - 2 * ip - F->note_h };
    if (F->text.w < 4 * tsize || F->text.h < F->line_h)
        return ms_error_set(err, MS_EINVAL, "figure %gx%g is too small for the token text", W, H);
    F->n_lines = flow(tm, F, NULL, NULL);
    F->n_fit = (int)floor((F->text.h + (F->line_h - F->box_h)) / F->line_h);
    if (F->n_fit < 1) F->n_fit = 1;
    F->first_line = 0;
    if (s->y1 > s->y0 && isfinite(s->y0)) F->first_line = (int)floor(s->y0);
    if (F->first_line > F->n_lines - F->n_fit) F->first_line = F->n_lines - F->n_fit;
    if (F->first_line < 0) F->first_line = 0;
    return 0;
}

/* The figure laid out at height h fits: every line of text, the whole key
 * as at full height (legend entries and columns), a colour bar at least
 * cb_h tall whose title (drawn along the plot's height) still fits. */
static bool tok_fits(const TokModel *tm, const MsViewState *s, double W, double h, TokFig *F, size_t shown, int cols,
                     double cb_h, double cb_title_w)
{
    if (tok_fig_at(tm, s, W, h, F, NULL) < 0 || F->n_lines > F->n_fit) return false;
    if (F->f.legend) return F->g.legend_shown == shown && F->g.legend_cols == cols;
    return F->g.colorbar.h >= cb_h && cb_title_w <= F->g.plot.h;
}

/* The figure at W x H, its frame ending below the last line when the text
 * needs less height than that (a short prompt in a tall window would
 * otherwise sit in a large empty box), though never shorter than its key. */
static int tok_fig(const TokModel *tm, const MsViewState *s, double W, double H, TokFig *F, MsError *err)
{
    int rc = tok_fig_at(tm, s, W, H, F, err);
    if (rc < 0) return rc;
    double spare = F->text.h + (F->line_h - F->box_h) - F->n_lines * F->line_h;
    if (spare < F->line_h || F->n_lines > F->n_fit) return 0;
    size_t shown = F->g.legend_shown;
    int cols = F->g.legend_cols;
    double cb_h = fmin(F->g.colorbar.h, 100), cb_title_w = 0;
    if (F->f.colorbar) {
        /* measured once, not at every height tried below */
        MsPlotText *t = ms_plot_text_new(&s->style);
        if (!t) return 0;
        char buf[160];
        snprintf(buf, sizeof buf, "%s (%s)", F->cb.title, F->cb.unit);
        MsPlotTextSize sz;
        ms_plot_text_measure(t, MS_PLOT_ROLE_LABEL, buf, 0, &sz);
        ms_plot_text_free(t);
        cb_title_w = sz.width;
    }
    /* bisect between the height the text alone needs and H (F points into
     * itself, so each try lays it out again) */
    double lo = floor(H - spare), hi = H;
    if (tok_fits(tm, s, W, lo, F, shown, cols, cb_h, cb_title_w)) return 0;
    while (hi - lo > 2) {
        double mid = floor((lo + hi) / 2);
        if (tok_fits(tm, s, W, mid, F, shown, cols, cb_h, cb_title_w)) hi = mid;
        else lo = mid;
    }
    if (hi < H && tok_fits(tm, s, W, hi, F, shown, cols, cb_h, cb_title_w)) return 0;
    return tok_fig_at(tm, s, W, H, F, err);
}

static MsRgb box_color(const TokModel *tm, const TokFig *F, int pos)
{
    size_t i = (size_t)tm->row * (size_t)tm->g->n_tok + (size_t)pos;
    if (F->c == MS_VIEW_COLOR_ENTROPY) {
        double v = F->ent ? F->ent[i] : NAN;
        return isfinite(v) ? ms_plot_scale_color(&F->cb.scale, v) : ms_plot_missing_color();
    }
    int32_t e = tm->g->top1[i];
    return e >= 0 ? ms_plot_category_color(e) : ms_plot_missing_color();
}

/* ------------------------------------------------------------------ draw */

typedef struct {
    const TokModel *tm;
    const TokFig *F;
    const MsViewState *s;
    cairo_t *cr;
    MsPlotText *t;
    int last_line;               /* line whose start label was drawn */
    int sel_row;
} DrawCtx;

static bool draw_one(void *user, int pos, int line, double x, double w)
{
    DrawCtx *d = user;
    const TokFig *F = d->F;
    const MsTokGrid *g = d->tm->g;
    if (line < F->first_line) return false;
    if (line >= F->first_line + F->n_fit) return true;
    cairo_t *cr = d->cr;
    double bx = F->text.x + x, by = F->text.y + (line - F->first_line) * F->line_h;
    if (line != d->last_line) {
        char buf[32];
        snprintf(buf, sizeof buf, "%d", pos);
        cairo_set_source_rgb(cr, 0.42, 0.42, 0.42);
        ms_plot_text_draw(d->t, cr, MS_PLOT_ROLE_TICK, buf, 0, F->g.plot.x + F->gutter - ms_plot_text_pad(d->t) * 0.5,
                          by + F->box_h / 2, 1, 0.5, 0);
        d->last_line = line;
    }
    MsRgb bg = box_color(d->tm, F, pos);
    /* 1-unit white gaps between boxes show the token boundaries */
    cairo_set_source_rgb(cr, bg.r, bg.g, bg.b);
    cairo_rectangle(cr, bx + 0.5, by, w - 1, F->box_h);
    cairo_fill(cr);
    const char *b = g->pieces + g->piece_off[pos];
    size_t len = (size_t)(g->piece_off[pos + 1] - g->piece_off[pos]);
    /* one line of one font: every piece has the line's height; only a piece
     * capped at the line's width needs ellipsizing */
    double natural = g->piece_w[pos] * F->scale + 2 * F->pad;
    ms_plot_token_draw(d->t, cr, b, len, 0, natural > w + 0.5 ? w - 2 * F->pad : 0, bx + F->pad,
                       by + (F->box_h - F->text_h) / 2, ms_plot_contrast_text(bg));
    if (g->generated[pos]) {
        /* generated: a dotted outline */
        double dash[2] = { 2, 2 };
        cairo_save(cr);
        cairo_set_dash(cr, dash, 2, 0);
        cairo_set_line_width(cr, 1);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        cairo_rectangle(cr, bx + 1, by + 0.5, w - 2, F->box_h - 1);
        cairo_stroke(cr);
        cairo_restore(cr);
    }
    if (d->sel_row >= 0 && d->s->sel_expert >= 0 && ms_tokgrid_selects(g, d->sel_row, pos, d->s->sel_expert)) {
        double uh = fmax(2, round(F->scale * 2.5));
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_rectangle(cr, bx + 0.5, by + F->box_h + 1, w - 1, uh);
        cairo_fill(cr);
    }
    if (d->s->hover_col == pos) {
        cairo_save(cr);
        cairo_set_line_width(cr, 2);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_rectangle(cr, bx, by - 1, w, F->box_h + 2);
        cairo_stroke(cr);
        cairo_restore(cr);
    }
    return false;
}

static int tok_draw(cairo_t *cr, double W, double H, const void *model, const MsViewState *s, MsError *err)
{
    const TokModel *tm = model;
    const MsTokGrid *g = tm->g;
    TokFig *F = malloc(sizeof *F);
    if (!F) return ms_error_set(err, MS_ENOMEM, "out of memory");
    int rc = tok_fig(tm, s, W, H, F, err);
    if (rc < 0) goto out;
    cairo_save(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);   /* below a shortened frame too */
    cairo_rectangle(cr, 0, 0, W, H);
    cairo_fill(cr);
    cairo_restore(cr);
    ms_plot_draw_back(cr, &F->f, &F->g);
    DrawCtx d = { tm, F, s, cr, ms_plot_text_new(&s->style), -1, -1 };
    if (!d.t) {
        rc = ms_error_set(err, MS_ENOMEM, "out of memory");
        goto out;
    }
    if (s->sel_expert >= 0) {
        int l = s->sel_layer >= 0 ? s->sel_layer : g->row_layer[tm->row];
        d.sel_row = l < MS_TRACE_MAX_LAYER ? g->layer_row[l] : -1;
    }
    cairo_save(cr);
    cairo_rectangle(cr, F->g.plot.x, F->g.plot.y, F->g.plot.w, F->g.plot.h);
    cairo_clip(cr);
    flow(tm, F, draw_one, &d);
    /* the note: what is shown, what the marks mean */
    char note[400];
    int n = 0, last = F->first_line + F->n_fit;
    if (last > F->n_lines) last = F->n_lines;
    if (F->n_lines > F->n_fit)
        n += snprintf(note + n, sizeof note - (size_t)n, "Lines %d\xE2\x80\x93%d of %d.  ", F->first_line + 1, last,
                      F->n_lines);
    if (g->n_prompt_tok < g->n_tok)
        n += snprintf(note + n, sizeof note - (size_t)n, "Dotted outline: generated tokens.  ");
    if (d.sel_row >= 0)
        n += snprintf(note + n, sizeof note - (size_t)n, "Underlined: routed to E%d at layer %d.  ", s->sel_expert,
                      g->row_layer[d.sel_row]);
    if (n == 0)
        snprintf(note, sizeof note,
                 "Each box is one token; newlines, control characters and invalid bytes show as blue escape codes.");
    cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
    ms_plot_text_draw(d.t, cr, MS_PLOT_ROLE_NOTE, note, F->text.w, F->text.x,
                      F->g.plot.y + F->g.plot.h - F->note_h * 0.5 - ms_plot_text_pad(d.t) * 0.3, 0, 0.5, 0);
    cairo_restore(cr);
    ms_plot_text_free(d.t);
    ms_plot_draw_axes(cr, &F->f, &F->g);
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS)
        rc = ms_error_set(err, MS_EINTERNAL, "cairo: %s", cairo_status_to_string(cairo_status(cr)));
out:
    free(F);
    return rc;
}

/* ------------------------------------------------------------------- hit */

typedef struct {
    const TokFig *F;
    double x, y;
    int pos;
} HitCtx;

static bool hit_one(void *user, int pos, int line, double x, double w)
{
    HitCtx *h = user;
    const TokFig *F = h->F;
    if (line < F->first_line) return false;
    if (line >= F->first_line + F->n_fit) return true;
    double bx = F->text.x + x, by = F->text.y + (line - F->first_line) * F->line_h;
    if (h->x >= bx && h->x < bx + w && h->y >= by && h->y < by + F->box_h) {
        h->pos = pos;
        return true;
    }
    return by > h->y + F->line_h;
}

static bool tok_hit(const void *model, const MsViewState *s, double W, double H, double x, double y, MsViewHit *out)
{
    const TokModel *tm = model;
    const MsTokGrid *g = tm->g;
    memset(out, 0, sizeof *out);
    out->kind = MS_HIT_NONE;
    out->layer = out->expert = out->prompt = out->pos = -1;
    out->row = out->col = out->item = -1;
    out->value = NAN;
    TokFig *F = malloc(sizeof *F);
    if (!F) return false;
    bool hit = false;
    if (tok_fig(tm, s, W, H, F, NULL) < 0) goto out;
    HitCtx h = { F, x, y, -1 };
    flow(tm, F, hit_one, &h);
    if (h.pos < 0) goto out;
    size_t i = (size_t)tm->row * (size_t)g->n_tok + (size_t)h.pos;
    out->kind = MS_HIT_TOKEN;
    out->prompt = g->prompt_index;
    out->pos = h.pos;
    out->col = h.pos;
    out->row = tm->row;
    out->layer = g->row_layer[tm->row];
    out->expert = g->top1[i];
    char v[96];
    if (F->c == MS_VIEW_COLOR_ENTROPY) {
        out->value = F->ent ? F->ent[i] : NAN;
        if (isfinite(out->value))
            snprintf(v, sizeof v, "%s %.3f nats", F->ent_probs ? "routing entropy" : "top-k weight entropy", out->value);
        else snprintf(v, sizeof v, "entropy n/a");
    } else {
        out->value = out->expert;
        if (out->expert >= 0) snprintf(v, sizeof v, "top-1 expert E%d", out->expert);
        else snprintf(v, sizeof v, "no routing");
    }
    char tok[sizeof out->text];
    ms_tokgrid_token_text(g, h.pos, tok, sizeof tok);
    snprintf(out->text, sizeof out->text, "layer %d: %s\n", out->layer, v);
    ms_view_append(out->text, sizeof out->text, tok);
    hit = true;
out:
    free(F);
    return hit;
}

typedef struct {
    const TokFig *F;
    int pos;
    MsPlotRect *out;
    bool found;
} BoxCtx;

static bool box_one(void *user, int pos, int line, double x, double w)
{
    BoxCtx *b = user;
    if (pos != b->pos) return false;
    const TokFig *F = b->F;
    if (line >= F->first_line && line < F->first_line + F->n_fit) {
        *b->out = (MsPlotRect){ F->text.x + x, F->text.y + (line - F->first_line) * F->line_h, w, F->box_h };
        b->found = true;
    }
    return true;
}

bool ms_view_tokens_box(const void *model, const MsViewState *s, double W, double H, int pos, MsPlotRect *out)
{
    TokFig *F = malloc(sizeof *F);
    BoxCtx b = { F, pos, out, false };
    if (F && tok_fig(model, s, W, H, F, NULL) == 0) flow(model, F, box_one, &b);
    free(F);
    return b.found;
}

/* Tall enough for the whole text at 1200 wide (up to 4000). */
static void tok_size(const void *model, double *w, double *h)
{
    const TokModel *tm = model;
    *w = 1200;
    *h = 700;
    MsViewState s;
    ms_view_state_init(&s);
    TokFig *F = malloc(sizeof *F);
    if (!F) return;
    double H = 4000;
    for (int pass = 0; pass < 3; pass++) {
        if (tok_fig_at(tm, &s, *w, H, F, NULL) < 0) break;
        double need = F->n_lines * F->line_h;
        double nh = ceil(H - F->text.h + need);
        if (nh < 300) nh = 300;
        if (nh > 4000) nh = 4000;
        if (fabs(nh - H) < 1) break;
        H = nh;
    }
    *h = H;
    free(F);
}

const MsViewClass ms_view_tokens = {
    .name = "tokens",
    .title = "Token strip",
    .summary = "a prompt's text as token pieces coloured by top-1 expert or entropy at one layer",
    .colors = MS_VIEW_COLOR_BIT(MS_VIEW_COLOR_EXPERT) | MS_VIEW_COLOR_BIT(MS_VIEW_COLOR_ENTROPY),
    .prepare = tok_prepare,
    .free_model = tok_free,
    .draw = tok_draw,
    .hit = tok_hit,
    .default_size = tok_size,
};
