/* wb-apply.c — the Apply request and its result figures (wb-apply.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ms-plot.h"
#include "wb-apply.h"
#include "wb-text.h"

int wb_apply_request(WbApplyRequest *r, const WbGrid *g, int prompt, const char *text, size_t len, int n_gen,
                     MsError *err)
{
    memset(r, 0, sizeof *r);
    if (prompt < 0 || !text)
        return ms_error_set(err, MS_EINVAL, "Apply: choose a prompt in the prompt list first");
    if (len == 0) return ms_error_set(err, MS_EINVAL, "Apply: prompt #%d is empty", prompt);
    r->text = malloc(len + 1);
    r->iv = ms_intervention_copy(wb_grid_intervention(g));
    if (!r->text || !r->iv) {
        wb_apply_request_clear(r);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    memcpy(r->text, text, len);
    r->text[len] = '\0';
    r->len = len;
    r->prompt = prompt;
    ms_compare_options_init(&r->opts);
    r->opts.n_gen = n_gen < 1 ? 1 : n_gen > WB_APPLY_MAX_GEN ? WB_APPLY_MAX_GEN : n_gen;
    return 0;
}

void wb_apply_request_clear(WbApplyRequest *r)
{
    if (!r) return;
    free(r->text);
    ms_intervention_free(r->iv);
    memset(r, 0, sizeof *r);
}

int wb_apply_run(const WbApplyRequest *r, const MsModel *m, const MsCancel *cancel, MsPromptCompare *out,
                 MsError *err)
{
    MsCompareOptions o = r->opts;
    o.cancel = cancel;
    return ms_compare_prompt(&o, m, r->iv, r->text, r->len, out, err);
}

/* ------------------------------------------------------------- figure */

void wb_apply_fig_free(WbApplyFig *f)
{
    if (!f) return;
    for (int p = 0; p < f->n_pos; p++) {
        if (f->piece) free(f->piece[p]);
        if (f->top1_base) free(f->top1_base[p]);
        if (f->top1_run) free(f->top1_run[p]);
    }
    free(f->piece);
    free(f->top1_base);
    free(f->top1_run);
    free(f->kl);
    free(f->layers);
    free(f->shift);
    free(f->exp_base);
    free(f->exp_run);
    free(f);
}

static char *piece_of(const MsTokenizer *tok, int32_t id)
{
    if (id < 0) return strdup("—");
    char buf[256];
    int n = ms_tokenizer_piece(tok, id, buf, sizeof buf);
    if (n < 0) n = 0;
    if (n > (int)sizeof buf) n = (int)sizeof buf;
    return ms_plot_token_escape(buf, (size_t)n, MS_PLOT_ESC_SPACE);
}

/* Experts a position used at a layer (its first n_used), sorted, into out[k]. */
static int used_set(const MsRouteLayer *rl, int p, int32_t *out)
{
    if (p >= rl->n_pos) return 0;
    int n = rl->n_used ? rl->n_used[p] : rl->k;
    const int32_t *e = rl->experts + (size_t)p * rl->k;
    int m = 0;
    for (int i = 0; i < n && i < rl->k; i++)
        if (e[i] >= 0) out[m++] = e[i];
    return m;
}

static double jaccard(const int32_t *a, int na, const int32_t *b, int nb)
{
    int inter = 0;
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            if (a[i] == b[j]) {
                inter++;
                break;
            }
    int uni = na + nb - inter;
    return uni ? (double)inter / uni : 1.0;
}

int wb_apply_fig_build(const MsPromptCompare *c, const MsModel *m, WbApplyFig **out, MsError *err)
{
    *out = NULL;
    WbApplyFig *f = calloc(1, sizeof *f);
    if (!f) return ms_error_set(err, MS_ENOMEM, "out of memory");
    const MsTokenizer *tok = ms_model_tokenizer(m);
    int n = f->n_pos = c->n_tokens;
    f->n_prompt = c->n_prompt;
    f->n_layers = c->n_layers;
    f->first_divergence = c->summary.first_divergence;
    int k = 1;
    for (int i = 0; i < c->n_layers; i++) {
        MsRouteLayer rl;
        if (ms_route_capture_layer(c->routing_baseline, c->layers[i].layer, &rl) && rl.k > k) k = rl.k;
        if (ms_route_capture_layer(c->routing_run, c->layers[i].layer, &rl) && rl.k > k) k = rl.k;
    }
    f->k = k;
    size_t nl = (size_t)(f->n_layers ? f->n_layers : 1), np = (size_t)(n ? n : 1);
    f->kl = calloc(np, sizeof *f->kl);
    f->layers = calloc(nl, sizeof *f->layers);
    f->shift = malloc(nl * np * sizeof *f->shift);
    f->exp_base = malloc(nl * np * (size_t)k * sizeof *f->exp_base);
    f->exp_run = malloc(nl * np * (size_t)k * sizeof *f->exp_run);
    f->piece = calloc(np, sizeof *f->piece);
    f->top1_base = calloc(np, sizeof *f->top1_base);
    f->top1_run = calloc(np, sizeof *f->top1_run);
    if (!f->kl || !f->layers || !f->shift || !f->exp_base || !f->exp_run || !f->piece || !f->top1_base ||
        !f->top1_run)
        goto oom;
    double sum = 0;
    for (int p = 0; p < n; p++) {
        float kl = c->pos[p].kl;
        f->kl[p] = kl;
        if (isfinite(kl)) {
            sum += kl;
            if (kl > f->kl_max) f->kl_max = kl;
        }
        if (!(f->piece[p] = piece_of(tok, c->tokens[p])) || !(f->top1_base[p] = piece_of(tok, c->pos[p].top1_baseline)) ||
            !(f->top1_run[p] = piece_of(tok, c->pos[p].top1_run)))
            goto oom;
    }
    f->kl_mean = n ? sum / n : 0;
    int32_t *a = malloc((size_t)k * sizeof *a), *b = malloc((size_t)k * sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        goto oom;
    }
    for (int i = 0; i < f->n_layers; i++) {
        int L = f->layers[i] = c->layers[i].layer;
        MsRouteLayer rb, ri;
        bool hb = ms_route_capture_layer(c->routing_baseline, L, &rb);
        bool hi = ms_route_capture_layer(c->routing_run, L, &ri);
        for (int p = 0; p < n; p++) {
            int na = hb ? used_set(&rb, p, a) : 0, nb = hi ? used_set(&ri, p, b) : 0;
            int32_t *eb = f->exp_base + ((size_t)i * np + p) * k, *er = f->exp_run + ((size_t)i * np + p) * k;
            for (int j = 0; j < k; j++) {
                eb[j] = j < na ? a[j] : -1;
                er[j] = j < nb ? b[j] : -1;
            }
            float s = na && nb ? (float)(1.0 - jaccard(a, na, b, nb)) : NAN;
            f->shift[(size_t)i * np + p] = s;
            if (s > 0) f->changed++;
        }
    }
    free(a);
    free(b);
    int ins = 0, del = 0;
    free(wb_diff_markup(c->text_baseline, c->text_run, 1, &ins));
    free(wb_diff_markup(c->text_baseline, c->text_run, 0, &del));
    f->words_changed = ins > del ? ins : del;
    *out = f;
    return 0;
oom:
    wb_apply_fig_free(f);
    return ms_error_set(err, MS_ENOMEM, "out of memory");
}

void wb_apply_summary(const WbApplyFig *f, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "KL mean %.4g nats · max %.3g", f->kl_mean, f->kl_max);
    if (n < size) {
        if (f->first_divergence >= 0)
            /* first_divergence is the position of the first differing greedy token, chosen one position before */
            n += (size_t)snprintf(buf + n, size - n, " · greedy choice first differs after token %d",
                                  f->first_divergence - 1);
        else
            n += (size_t)snprintf(buf + n, size - n, " · greedy choices agree everywhere");
    }
    if (n < size)
        n += (size_t)snprintf(buf + n, size - n, " · routing changed at %d of %d (layer, token) pairs", f->changed,
                              f->n_layers * f->n_pos);
    if (n < size)
        snprintf(buf + n, size - n, " · %d word%s", f->words_changed, f->words_changed == 1 ? " differs" : "s differ");
}

/* ---- the KL strip ---- */

static void kl_fr(const WbApplyFig *f, MsPlotFrame *fr, const MsPlotStyle *style)
{
    double hi = f->kl_max > 0 ? f->kl_max * 1.05 : 1e-3;
    *fr = (MsPlotFrame){
        .title = "Per-token KL(baseline ‖ intervened)",
        .x = { .kind = MS_PLOT_AXIS_LINEAR, .title = "Token position", .lo = 0, .hi = f->n_pos > 0 ? f->n_pos : 1 },
        .y = { .kind = MS_PLOT_AXIS_LINEAR, .title = "KL", .unit = "nats", .lo = 0, .hi = hi, .grid = true },
        .style = style,
    };
}

int wb_apply_draw_kl(cairo_t *cr, double w, double h, const WbApplyFig *f, int hover_pos, MsError *err)
{
    MsPlotGeom g;
    MsPlotFrame fr;
    static const MsPlotStyle style = { .font_size = 11 };
    kl_fr(f, &fr, &style);
    double hi = fr.y.hi;
    int rc = ms_plot_layout(&fr, w, h, &g, err);
    if (rc < 0) return rc;
    ms_plot_draw_back(cr, &fr, &g);
    cairo_save(cr);
    cairo_rectangle(cr, g.plot.x, g.plot.y, g.plot.w, g.plot.h);
    cairo_clip(cr);
    /* the continuation starts at the prompt's last token */
    double xb = ms_plot_x_to_px(&g, f->n_prompt);
    cairo_set_source_rgba(cr, 0.2, 0.4, 0.9, 0.07);
    cairo_rectangle(cr, xb, g.plot.y, g.plot.x + g.plot.w - xb, g.plot.h);
    cairo_fill(cr);
    double y0 = ms_plot_y_to_px(&g, 0);
    for (int p = 0; p < f->n_pos; p++) {
        if (!isfinite(f->kl[p])) continue;
        double x0 = ms_plot_x_to_px(&g, p), x1 = ms_plot_x_to_px(&g, p + 1), y = ms_plot_y_to_px(&g, f->kl[p]);
        MsRgb c = ms_plot_cmap_value(MS_CMAP_VIRIDIS, f->kl[p], 0, hi);
        cairo_set_source_rgb(cr, c.r, c.g, c.b);
        double gap = x1 - x0 > 4 ? 1 : 0;
        cairo_rectangle(cr, x0 + gap, y, x1 - x0 - gap, y0 - y);
        cairo_fill(cr);
    }
    if (hover_pos >= 0 && hover_pos < f->n_pos) {
        double x0 = ms_plot_x_to_px(&g, hover_pos), x1 = ms_plot_x_to_px(&g, hover_pos + 1);
        cairo_set_source_rgb(cr, 0.95, 0.45, 0.05);
        cairo_set_line_width(cr, 2);
        cairo_rectangle(cr, x0, g.plot.y + 1, x1 - x0, g.plot.h - 2);
        cairo_stroke(cr);
    }
    cairo_set_source_rgb(cr, 0.2, 0.3, 0.7);
    cairo_set_line_width(cr, 1);
    cairo_move_to(cr, round(xb) + 0.5, g.plot.y);
    cairo_line_to(cr, round(xb) + 0.5, g.plot.y + g.plot.h);
    cairo_stroke(cr);
    cairo_restore(cr);
    ms_plot_draw_axes(cr, &fr, &g);
    return 0;
}

bool wb_apply_hit_kl(const WbApplyFig *f, double w, double h, double x, double y, int *pos, char *text, size_t size)
{
    MsPlotGeom g;
    MsPlotFrame fr;
    static const MsPlotStyle style = { .font_size = 11 };
    kl_fr(f, &fr, &style);
    if (ms_plot_layout(&fr, w, h, &g, NULL) < 0 || !ms_plot_rect_contains(&g.plot, x, y)) return false;
    int p = (int)floor(ms_plot_px_to_x(&g, x));
    if (p < 0 || p >= f->n_pos) return false;
    *pos = p;
    if (text)
        snprintf(text, size, "token %d “%s” (%s) · KL %.4g nats · next token: baseline “%s”, intervened “%s”", p,
                 f->piece[p], p < f->n_prompt ? "prompt" : "continuation", f->kl[p], f->top1_base[p],
                 f->top1_run[p]);
    return true;
}

/* ---- the routing shift ---- */

static const char *layer_label(void *user, int64_t i, char *buf, size_t size)
{
    const WbApplyFig *f = user;
    snprintf(buf, size, "L%d", i >= 0 && i < f->n_layers ? f->layers[i] : (int)i);
    return buf;
}

static void shift_frame(const WbApplyFig *f, MsPlotFrame *fr, MsPlotColorbar *cb, const MsPlotStyle *style)
{
    *cb = (MsPlotColorbar){ .scale = { MS_CMAP_VIRIDIS, 0, 1 }, .title = "1 − Jaccard", .show_missing = false };
    *fr = (MsPlotFrame){
        .title = "Routing shift (selected experts, baseline vs intervened)",
        .x = { .kind = MS_PLOT_AXIS_LINEAR, .title = "Token position", .lo = 0, .hi = f->n_pos > 0 ? f->n_pos : 1 },
        .y = { .kind = MS_PLOT_AXIS_CATEGORY, .title = "Layer", .lo = 0, .hi = f->n_layers > 0 ? f->n_layers : 1,
               .count = f->n_layers > 0 ? f->n_layers : 1, .label = layer_label, .label_user = (void *)f },
        .colorbar = cb,
        .style = style,
    };
}

int wb_apply_draw_shift(cairo_t *cr, double w, double h, const WbApplyFig *f, int hover_layer, int hover_pos,
                        MsError *err)
{
    MsPlotFrame fr;
    MsPlotColorbar cb;
    static const MsPlotStyle style = { .font_size = 11 };
    shift_frame(f, &fr, &cb, &style);
    MsPlotGeom g;
    int rc = ms_plot_layout(&fr, w, h, &g, err);
    if (rc < 0) return rc;
    ms_plot_draw_back(cr, &fr, &g);
    if (f->n_layers > 0 && f->n_pos > 0) {
        MsPlotGridMap m = ms_plot_grid_map(&g, f->n_layers, f->n_pos);
        MsPlotHeatmap hm = { .rows = f->n_layers, .cols = f->n_pos, .values = f->shift, .scale = cb.scale,
                             .agg = MS_PLOT_AGG_PEAK };
        rc = ms_plot_heatmap_draw(cr, &m, &hm, err);
        if (rc < 0) return rc;
        MsPlotRect r;
        if (hover_layer >= 0 && hover_pos >= 0 && ms_plot_grid_cell_rect(&m, hover_layer, hover_pos, &r)) {
            cairo_set_source_rgb(cr, 0.95, 0.45, 0.05);
            cairo_set_line_width(cr, 2);
            cairo_rectangle(cr, r.x, r.y, r.w, r.h);
            cairo_stroke(cr);
        }
    }
    ms_plot_draw_axes(cr, &fr, &g);
    return 0;
}

static void fmt_set(const int32_t *e, int k, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int j = 0; j < k && e[j] >= 0 && n < size; j++) n += (size_t)snprintf(buf + n, size - n, j ? ", %d" : "%d", e[j]);
    if (!buf[0]) snprintf(buf, size, "none");
}

bool wb_apply_hit_shift(const WbApplyFig *f, double w, double h, double x, double y, int *layer, int *pos, char *text,
                        size_t size)
{
    MsPlotFrame fr;
    MsPlotColorbar cb;
    static const MsPlotStyle style = { .font_size = 11 };
    shift_frame(f, &fr, &cb, &style);
    MsPlotGeom g;
    if (f->n_layers < 1 || f->n_pos < 1 || ms_plot_layout(&fr, w, h, &g, NULL) < 0) return false;
    MsPlotGridMap m = ms_plot_grid_map(&g, f->n_layers, f->n_pos);
    int64_t r, c;
    if (!ms_plot_grid_hit(&m, x, y, &r, &c)) return false;
    *layer = (int)r;
    *pos = (int)c;
    if (text) {
        size_t np = (size_t)f->n_pos;
        char a[128], b[128];
        fmt_set(f->exp_base + ((size_t)r * np + (size_t)c) * f->k, f->k, a, sizeof a);
        fmt_set(f->exp_run + ((size_t)r * np + (size_t)c) * f->k, f->k, b, sizeof b);
        float s = f->shift[(size_t)r * np + (size_t)c];
        snprintf(text, size, "layer %d, token %d “%s”: baseline experts %s → intervened %s (1 − Jaccard %.2f)",
                 f->layers[r], (int)c, f->piece[c], a, b, s);
    }
    return true;
}
