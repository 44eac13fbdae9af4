/* frame.c — figure frame: layout from text extents, nice ticks, axes, colour
 * bar and legend.  Layout is a pure function of the frame and the size. */
#include "plot-internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const MsRgb ink = {0.13, 0.13, 0.13}, axis_ink = {0.35, 0.35, 0.35}, grid_ink = {0.88, 0.88, 0.88},
                   muted = {0.42, 0.42, 0.42};

/* ---- ticks ---- */

static int decimals_for(double step)
{
    for (int d = 0; d < 12; d++) {
        double s = step * pow(10, d);
        if (fabs(s - round(s)) < 1e-6 * fmax(1, s)) return d;
    }
    return 12;
}

void ms_plot_format_tick_(double v, double step, char *buf, size_t size)
{
    double av = fabs(v);
    if (av < fabs(step) * 1e-9) v = av = 0;
    int d = decimals_for(fabs(step));
    char num[64];
    if (av != 0 && (av >= 1e7 || d > 6)) {
        int sig = 1 + (int)ceil(log10(av / fabs(step)) - 1e-9);
        snprintf(num, sizeof num, "%.*g", sig < 1 ? 1 : sig > 10 ? 10 : sig, av);
    } else {
        snprintf(num, sizeof num, "%.*f", d, av);
    }
    /* U+2212 MINUS SIGN, as typography wants */
    snprintf(buf, size, "%s%s", v < 0 ? "\xE2\x88\x92" : "", num);
}

int ms_plot_nice_ticks(double lo, double hi, int max_ticks, double *values, double *step)
{
    static const double mult[4] = {1, 2, 2.5, 5};
    if (!(hi > lo) || !isfinite(lo) || !isfinite(hi) || max_ticks < 1) {
        *step = 0;
        return 0;
    }
    if (max_ticks > MS_PLOT_MAX_TICKS) max_ticks = MS_PLOT_MAX_TICKS;
    double range = hi - lo, eps = range * 1e-9;
    double base = pow(10, floor(log10(range / max_ticks)));
    for (int e = 0; e < 40; e++) {
        for (int k = 0; k < 4; k++) {
            double s = mult[k] * base * pow(10, e);
            double first = ceil((lo - eps) / s), last = floor((hi + eps) / s);
            double n = last - first + 1;
            if (n <= max_ticks) {
                int cnt = 0;
                for (double i = first; i <= last && cnt < max_ticks; i++) {
                    double v = i * s;
                    values[cnt++] = fabs(v) < eps ? 0 : v;
                }
                *step = s;
                return cnt;
            }
        }
    }
    *step = 0;
    return 0;
}

/* Copy a label into a tick, shortened at a character boundary. */
static void set_label(char *dst, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n < MS_PLOT_TICK_LABEL_MAX) {
        memcpy(dst, src ? src : "", n + 1);
        return;
    }
    size_t cut = MS_PLOT_TICK_LABEL_MAX - 4;
    while (cut > 0 && ((unsigned char)src[cut] & 0xC0) == 0x80) cut--;
    memcpy(dst, src, cut);
    memcpy(dst + cut, "\xE2\x80\xA6", 4); /* U+2026 and NUL */
}

static const char *item_label(const MsPlotAxis *a, int64_t i, char *buf, size_t size)
{
    const char *s = NULL;
    if (a->label) s = a->label(a->label_user, i, buf, size);
    if (!s) {
        snprintf(buf, size, "%lld", (long long)i);
        s = buf;
    }
    return s;
}

/* Smallest of 1, 2, 5, 10, 20, 50, ... that is >= x. */
static int64_t step125(double x)
{
    int64_t s = 1;
    static const int m[3] = {1, 2, 5};
    for (int64_t p = 1; p < INT64_MAX / 10; p *= 10)
        for (int k = 0; k < 3; k++) {
            s = m[k] * p;
            if ((double)s >= x) return s;
        }
    return s;
}

typedef struct {
    MsPlotText *t;
    double pad, tick_len, tick_h, label_h, tick_size;
    double cat_label_max;   /* width cap of a category tick label */
    double width;
} Ctx;

/* The width cap of axis a's category labels: its own share of the frame's
 * width where it asks for one (a figure whose labels are its content) */
static double cat_max(const Ctx *c, const MsPlotAxis *a)
{
    return a->label_share > 0 ? fmax(c->tick_size * 4, c->width * a->label_share) : c->cat_label_max;
}

/* Category ticks over [lo, hi) at every `step`-th item; labels measured. */
static int cat_ticks(Ctx *c, const MsPlotAxis *a, double lo, double hi, int64_t step, MsPlotTick *ticks,
                     double *max_w)
{
    int64_t first = (int64_t)ceil(lo - 0.5), last = (int64_t)floor(hi - 0.5);
    if (first < 0) first = 0;
    if (last > a->count - 1) last = a->count - 1;
    int64_t i0 = (first + step - 1) / step * step;
    int n = 0;
    *max_w = 0;
    char buf[256];
    for (int64_t i = i0; i <= last && n < MS_PLOT_MAX_TICKS; i += step) {
        MsPlotTick *tk = &ticks[n++];
        tk->value = (double)i;
        set_label(tk->label, item_label(a, i, buf, sizeof buf));
        MsPlotTextSize sz;
        ms_plot_text_measure(c->t, MS_PLOT_ROLE_TICK, tk->label, cat_max(c, a), &sz);
        if (sz.width > *max_w) *max_w = sz.width;
    }
    return n;
}

static int lin_ticks(Ctx *c, double lo, double hi, int max_ticks, MsPlotTick *ticks, double *max_w)
{
    double v[MS_PLOT_MAX_TICKS], step;
    int n = ms_plot_nice_ticks(lo, hi, max_ticks, v, &step);
    *max_w = 0;
    for (int i = 0; i < n; i++) {
        ticks[i].value = v[i];
        ms_plot_format_tick_(v[i], step, ticks[i].label, sizeof ticks[i].label);
        MsPlotTextSize sz;
        ms_plot_text_measure(c->t, MS_PLOT_ROLE_TICK, ticks[i].label, 0, &sz);
        if (sz.width > *max_w) *max_w = sz.width;
    }
    return n;
}

/* At most this many linear ticks along a vertical length: about one per
 * 3.5 label heights, never more than 11 (a scale, not a ruler). */
static int vertical_max(const Ctx *c, double len)
{
    int n = (int)floor(len / (c->tick_h * 3.5)) + 1;
    return n < 2 ? 2 : n > 11 ? 11 : n;
}

/* y-like ticks (label height is what limits density). */
static int vertical_ticks(Ctx *c, const MsPlotAxis *a, double lo, double hi, double len, MsPlotTick *ticks,
                          double *max_w)
{
    *max_w = 0;
    if (a->kind == MS_PLOT_AXIS_LINEAR) {
        return lin_ticks(c, lo, hi, vertical_max(c, len), ticks, max_w);
    }
    if (a->kind == MS_PLOT_AXIS_CATEGORY) {
        double cell = len / (hi - lo);
        int64_t step = step125(c->tick_h * 1.15 / cell);
        while ((hi - lo) / (double)step > MS_PLOT_MAX_TICKS) step = step125((double)step + 1);
        return cat_ticks(c, a, lo, hi, step, ticks, max_w);
    }
    return 0;
}

/* x ticks: thin out until the widest label fits its spacing. */
static int horizontal_ticks(Ctx *c, const MsPlotAxis *a, double len, MsPlotTick *ticks, double *max_w)
{
    *max_w = 0;
    double gap = c->tick_size * 1.2;
    if (a->kind == MS_PLOT_AXIS_LINEAR) {
        int max_ticks = (int)floor(len / (c->tick_size * 4)) + 1;
        if (max_ticks > 12) max_ticks = 12;
        for (;;) {
            int n = lin_ticks(c, a->lo, a->hi, max_ticks, ticks, max_w);
            if (n <= 2 || max_ticks <= 2) return n;
            double spacing = len * (ticks[1].value - ticks[0].value) / (a->hi - a->lo);
            if (spacing >= *max_w + gap) return n;
            max_ticks = n - 1;
        }
    }
    if (a->kind == MS_PLOT_AXIS_CATEGORY) {
        double cell = len / (a->hi - a->lo);
        int64_t step = step125((c->tick_size * 0.6 + gap) / cell);
        for (;;) {
            while ((a->hi - a->lo) / (double)step > MS_PLOT_MAX_TICKS) step = step125((double)step + 1);
            int n = cat_ticks(c, a, a->lo, a->hi, step, ticks, max_w);
            if (n <= 1 || (double)step * cell >= *max_w + gap) return n;
            step = step125((double)step + 1);
        }
    }
    return 0;
}

static bool axis_ok(const MsPlotAxis *a) { return a->kind == MS_PLOT_AXIS_NONE || (isfinite(a->lo) && isfinite(a->hi) && a->hi > a->lo); }

static void axis_title(const MsPlotAxis *a, char *buf, size_t size)
{
    if (a->title && a->unit && *a->unit) snprintf(buf, size, "%s (%s)", a->title, a->unit);
    else snprintf(buf, size, "%s", a->title ? a->title : "");
}

static void cbar_title(const MsPlotColorbar *cb, char *buf, size_t size)
{
    if (cb->title && cb->unit && *cb->unit) snprintf(buf, size, "%s (%s)", cb->title, cb->unit);
    else snprintf(buf, size, "%s", cb->title ? cb->title : "");
}

static void ctx_init(Ctx *c, MsPlotText *t, double width)
{
    MsPlotTextSize sz;
    c->t = t;
    c->pad = ms_plot_text_pad(t);
    c->tick_size = ms_plot_text_role_size(t, MS_PLOT_ROLE_TICK);
    c->tick_len = c->pad * 0.7;
    ms_plot_text_measure(t, MS_PLOT_ROLE_TICK, "0Ag", 0, &sz);
    c->tick_h = sz.height;
    ms_plot_text_measure(t, MS_PLOT_ROLE_LABEL, "0Ag", 0, &sz);
    c->label_h = sz.height;
    c->cat_label_max = fmin(c->tick_size * 14, fmax(c->tick_size * 4, width * 0.22));
    c->width = width;
}

/* Colour-bar range as displayed (diverging maps symmetric around 0). */
static void cbar_range(const MsPlotColorbar *cb, double *lo, double *hi)
{
    *lo = fmin(cb->scale.lo, cb->scale.hi);
    *hi = fmax(cb->scale.lo, cb->scale.hi);
    if (ms_plot_cmap_is_diverging(cb->scale.map)) {
        double m = fmax(fabs(*lo), fabs(*hi));
        *lo = -m;
        *hi = m;
    }
    if (!(*hi > *lo)) {
        double m = fabs(*lo) > 0 ? fabs(*lo) * 0.5 : 0.5;
        *lo -= m;
        *hi += m;
    }
}

static int layout(Ctx *c, const MsPlotFrame *f, double W, double H, MsPlotGeom *g, MsError *err)
{
    MsPlotTextSize sz;
    char buf[512];
    const MsPlotAxis *ax = &f->x, *ay = &f->y;
    double pad = c->pad;

    memset(g, 0, sizeof *g);
    g->width = W;
    g->height = H;
    g->x_lo = ax->kind == MS_PLOT_AXIS_NONE && !(ax->hi > ax->lo) ? 0 : ax->lo;
    g->x_hi = ax->kind == MS_PLOT_AXIS_NONE && !(ax->hi > ax->lo) ? 1 : ax->hi;
    g->y_lo = ay->kind == MS_PLOT_AXIS_NONE && !(ay->hi > ay->lo) ? 0 : ay->lo;
    g->y_hi = ay->kind == MS_PLOT_AXIS_NONE && !(ay->hi > ay->lo) ? 1 : ay->hi;
    g->x_flip = ax->flip;
    g->y_down = (ay->kind == MS_PLOT_AXIS_CATEGORY) != ay->flip;

    /* vertical margins: independent of tick choice */
    double top = pad;
    if (f->title && *f->title) {
        top += ms_plot_text_title(c->t, NULL, f->title, W, pad) + pad;
    }
    top = fmax(top, pad + c->tick_h * 0.6);
    double bottom = pad;
    if (ax->kind != MS_PLOT_AXIS_NONE) bottom += c->tick_len + pad * 0.3 + c->tick_h;
    axis_title(ax, buf, sizeof buf);
    if (*buf) bottom += pad * 0.5 + c->label_h;
    bottom = fmax(bottom, pad + c->tick_h * 0.6);
    double top_px = ceil(top), bottom_px = floor(H - bottom);
    double plot_h = bottom_px - top_px;
    if (plot_h < c->tick_h * 2) {
        return ms_error_set(err, MS_EINVAL, "figure %gx%g is too small for its text (plot area %.0f high)", W,
                            H, plot_h);
    }

    /* y ticks and left margin */
    double ylw;
    g->n_yticks = vertical_ticks(c, ay, g->y_lo, g->y_hi, plot_h, g->yticks, &ylw);
    g->ylabel_w = ylw;
    double left = pad;
    axis_title(ay, buf, sizeof buf);
    if (*buf) left += c->label_h + pad * 0.5;
    if (ay->kind != MS_PLOT_AXIS_NONE) left += ylw + c->tick_len + pad * 0.3;

    /* colour bar */
    double right = pad;
    double cb_w = 0, cb_block = 0, cb_h = 0;
    if (f->colorbar) {
        double lo, hi, clw;
        cbar_range(f->colorbar, &lo, &hi);
        cb_w = round(c->tick_h * 1.1);
        cb_h = plot_h - (f->colorbar->show_missing ? cb_w + pad : 0);
        if (cb_h < c->tick_h * 2) cb_h = plot_h;
        g->n_cticks = lin_ticks(c, lo, hi, vertical_max(c, cb_h), g->cticks, &clw);
        if (f->colorbar->show_missing) {
            ms_plot_text_measure(c->t, MS_PLOT_ROLE_TICK, "n/a", 0, &sz);
            clw = fmax(clw, sz.width);
        }
        cb_block = pad * 1.5 + cb_w + c->tick_len + pad * 0.3 + clw;
        cbar_title(f->colorbar, buf, sizeof buf);
        if (*buf) cb_block += pad * 0.5 + c->label_h;
        right += cb_block;
    }

    /* legend */
    double lg_block = 0, lg_title_h = 0;
    const MsPlotLegend *lg = f->legend;
    if (lg && lg->n > 0) {
        double row_h = ceil(c->tick_h * 1.2), sw = c->tick_h * 0.8;
        if (lg->title && *lg->title) {
            ms_plot_text_measure(c->t, MS_PLOT_ROLE_LABEL, lg->title, 0, &sz);
            lg_title_h = sz.height + pad * 0.3;
        }
        double cap_w = fmax(W * 0.3, sw + pad * 2 + c->tick_size * 3);
        double lab_max = fmin(c->tick_size * 12, cap_w - sw - pad * 1.5);
        double lw = 0;
        for (size_t i = 0; i < lg->n; i++) {
            ms_plot_text_measure(c->t, MS_PLOT_ROLE_TICK, lg->items[i].label, lab_max, &sz);
            lw = fmax(lw, sz.width);
        }
        int rows = (int)floor((plot_h - lg_title_h) / row_h);
        if (rows < 1) rows = 1;
        double col_w = 0;
        int cols = 0;
        size_t cap = 0;
        for (int pass = 0; pass < 2; pass++) {
            col_w = ceil(sw + pad * 0.5 + lw + pad);
            cols = (int)((lg->n + (size_t)rows - 1) / (size_t)rows);
            int max_cols = (int)floor(cap_w / col_w);
            if (max_cols < 1) max_cols = 1;
            if (cols > max_cols) cols = max_cols;
            cap = (size_t)rows * (size_t)cols;
            if (lg->n <= cap) break;
            /* not all fit: the "+N more" line needs its width too */
            snprintf(buf, sizeof buf, "+%zu more", lg->n);
            ms_plot_text_measure(c->t, MS_PLOT_ROLE_TICK, buf, 0, &sz);
            lw = fmax(lw, fmin(sz.width, lab_max + sw));
        }
        g->legend_shown = lg->n <= cap ? lg->n : cap - 1;
        g->legend_cols = cols;
        g->legend_row_h = row_h;
        g->legend_col_w = col_w;
        double title_w = 0;
        if (lg_title_h > 0) {
            ms_plot_text_measure(c->t, MS_PLOT_ROLE_LABEL, lg->title, cap_w, &sz);
            title_w = sz.width;
        }
        lg_block = pad * 1.5 + fmax(cols * col_w, title_w);
        right += lg_block;
    }

    /* x ticks; widen the side margins when end labels overhang the figure */
    double left_px = ceil(left), right_px = floor(W - right);
    double xlw = 0;
    for (int pass = 0; pass < 3; pass++) {
        double plot_w = right_px - left_px;
        if (plot_w < c->tick_size * 3) {
            return ms_error_set(err, MS_EINVAL,
                                "figure %gx%g is too small for its text (plot area %.0f wide)", W, H, plot_w);
        }
        g->plot = (MsPlotRect){left_px, top_px, plot_w, plot_h};
        g->n_xticks = horizontal_ticks(c, ax, plot_w, g->xticks, &xlw);
        if (g->n_xticks == 0) break;
        double need_l = 0, need_r = 0;
        for (int i = 0; i < g->n_xticks; i++) {
            double v = g->xticks[i].value + (ax->kind == MS_PLOT_AXIS_CATEGORY ? 0.5 : 0);
            double p = ms_plot_x_to_px(g, v);
            ms_plot_text_measure(c->t, MS_PLOT_ROLE_TICK, g->xticks[i].label, cat_max(c, ax), &sz);
            need_l = fmax(need_l, pad - (p - sz.width / 2));
            need_r = fmax(need_r, p + sz.width / 2 - (W - pad));
        }
        if (need_l <= 0 && need_r <= 0) break;
        left_px += ceil(fmax(need_l, 0));
        right_px -= ceil(fmax(need_r, 0));
    }
    g->xlabel_w = xlw;

    /* final positions */
    for (int i = 0; i < g->n_xticks; i++)
        g->xticks[i].pos = ms_plot_x_to_px(g, g->xticks[i].value + (ax->kind == MS_PLOT_AXIS_CATEGORY ? 0.5 : 0));
    for (int i = 0; i < g->n_yticks; i++)
        g->yticks[i].pos = ms_plot_y_to_px(g, g->yticks[i].value + (ay->kind == MS_PLOT_AXIS_CATEGORY ? 0.5 : 0));
    double xr = g->plot.x + g->plot.w;
    if (f->colorbar) {
        g->colorbar = (MsPlotRect){xr + round(pad * 1.5), g->plot.y, cb_w, round(cb_h)};
        double lo, hi;
        cbar_range(f->colorbar, &lo, &hi);
        for (int i = 0; i < g->n_cticks; i++)
            g->cticks[i].pos = g->colorbar.y + g->colorbar.h * (1 - (g->cticks[i].value - lo) / (hi - lo));
        xr += cb_block;
    }
    if (lg_block > 0) {
        g->legend = (MsPlotRect){xr + round(pad * 1.5), g->plot.y, lg_block - pad * 1.5, g->plot.h};
    }
    return 0;
}

int ms_plot_layout(const MsPlotFrame *f, double width, double height, MsPlotGeom *g, MsError *err)
{
    if (!(width > 0) || !(height > 0) || !isfinite(width) || !isfinite(height))
        return ms_error_set(err, MS_EINVAL, "figure size %gx%g: both sides must be > 0", width, height);
    if (!axis_ok(&f->x) || !axis_ok(&f->y))
        return ms_error_set(err, MS_EINVAL, "%s axis range [%g, %g] is empty or not finite",
                            axis_ok(&f->x) ? "y" : "x", axis_ok(&f->x) ? f->y.lo : f->x.lo,
                            axis_ok(&f->x) ? f->y.hi : f->x.hi);
    if (f->colorbar && (!isfinite(f->colorbar->scale.lo) || !isfinite(f->colorbar->scale.hi)))
        return ms_error_set(err, MS_EINVAL, "colour bar range [%g, %g] is not finite", f->colorbar->scale.lo,
                            f->colorbar->scale.hi);
    MsPlotText *t = ms_plot_text_new(f->style);
    if (!t) return ms_error_set(err, MS_ENOMEM, "out of memory laying out a figure");
    Ctx c;
    ctx_init(&c, t, width);
    int rc = layout(&c, f, width, height, g, err);
    ms_plot_text_free(t);
    return rc;
}

double ms_plot_x_to_px(const MsPlotGeom *g, double v)
{
    double u = (v - g->x_lo) / (g->x_hi - g->x_lo);
    return g->plot.x + (g->x_flip ? 1 - u : u) * g->plot.w;
}

double ms_plot_y_to_px(const MsPlotGeom *g, double v)
{
    double u = (v - g->y_lo) / (g->y_hi - g->y_lo);
    return g->plot.y + (g->y_down ? u : 1 - u) * g->plot.h;
}

double ms_plot_px_to_x(const MsPlotGeom *g, double px)
{
    double u = (px - g->plot.x) / g->plot.w;
    if (g->x_flip) u = 1 - u;
    return g->x_lo + u * (g->x_hi - g->x_lo);
}

double ms_plot_px_to_y(const MsPlotGeom *g, double py)
{
    double u = (py - g->plot.y) / g->plot.h;
    if (!g->y_down) u = 1 - u;
    return g->y_lo + u * (g->y_hi - g->y_lo);
}

/* ---- drawing ---- */

static void set_rgb(cairo_t *cr, MsRgb c) { cairo_set_source_rgb(cr, c.r, c.g, c.b); }

/* Line width of one device pixel-ish unit scaled with the text. */
static double line_w(const Ctx *c) { return fmax(1.0, round(c->pad / 6.0)); }

void ms_plot_draw_back(cairo_t *cr, const MsPlotFrame *f, const MsPlotGeom *g)
{
    cairo_save(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_rectangle(cr, 0, 0, g->width, g->height);
    cairo_fill(cr);
    MsPlotText *t = ms_plot_text_new(f->style);
    if (t) {
        Ctx c;
        ctx_init(&c, t, g->width);
        double lw = line_w(&c), off = fmod(lw, 2) / 2;
        set_rgb(cr, grid_ink);
        cairo_set_line_width(cr, lw);
        if (f->x.grid)
            for (int i = 0; i < g->n_xticks; i++) {
                double x = round(g->xticks[i].pos) + off;
                cairo_move_to(cr, x, g->plot.y);
                cairo_line_to(cr, x, g->plot.y + g->plot.h);
            }
        if (f->y.grid)
            for (int i = 0; i < g->n_yticks; i++) {
                double y = round(g->yticks[i].pos) + off;
                cairo_move_to(cr, g->plot.x, y);
                cairo_line_to(cr, g->plot.x + g->plot.w, y);
            }
        cairo_stroke(cr);
        ms_plot_text_free(t);
    }
    cairo_restore(cr);
}

static void draw_colorbar(cairo_t *cr, Ctx *c, const MsPlotColorbar *cb, const MsPlotGeom *g)
{
    const MsPlotRect *r = &g->colorbar;
    char buf[512];
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 256);
    if (cairo_surface_status(img) == CAIRO_STATUS_SUCCESS) {
        uint32_t lut[256];
        ms_plot_cmap_lut_(cb->scale.map, lut, 256);
        cairo_surface_flush(img);
        unsigned char *data = cairo_image_surface_get_data(img);
        int stride = cairo_image_surface_get_stride(img);
        for (int i = 0; i < 256; i++) *(uint32_t *)(data + (size_t)i * stride) = lut[255 - i];
        cairo_surface_mark_dirty(img);
        cairo_save(cr);
        cairo_rectangle(cr, r->x, r->y, r->w, r->h);
        cairo_clip(cr);
        cairo_translate(cr, r->x, r->y);
        cairo_scale(cr, r->w, r->h / 256.0);
        cairo_set_source_surface(cr, img, 0, 0);
        cairo_pattern_set_extend(cairo_get_source(cr), CAIRO_EXTEND_PAD);
        cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_BILINEAR);
        cairo_paint(cr);
        cairo_restore(cr);
    }
    cairo_surface_destroy(img);
    double lw = line_w(c), off = fmod(lw, 2) / 2;
    cairo_set_line_width(cr, lw);
    set_rgb(cr, axis_ink);
    cairo_rectangle(cr, r->x - off, r->y - off, r->w + 2 * off, r->h + 2 * off);
    cairo_stroke(cr);
    double xr = r->x + r->w, lab_w = 0;
    for (int i = 0; i < g->n_cticks; i++) {
        double y = round(g->cticks[i].pos) + off;
        set_rgb(cr, axis_ink);
        cairo_move_to(cr, xr, y);
        cairo_line_to(cr, xr + c->tick_len, y);
        cairo_stroke(cr);
        set_rgb(cr, ink);
        ms_plot_text_draw(c->t, cr, MS_PLOT_ROLE_TICK, g->cticks[i].label, 0, xr + c->tick_len + c->pad * 0.3,
                          g->cticks[i].pos, 0, 0.5, 0);
        MsPlotTextSize sz;
        ms_plot_text_measure(c->t, MS_PLOT_ROLE_TICK, g->cticks[i].label, 0, &sz);
        lab_w = fmax(lab_w, sz.width);
    }
    if (cb->show_missing) {
        MsRgb m = ms_plot_cmap_missing(cb->scale.map);
        double y = g->plot.y + g->plot.h - r->w;
        set_rgb(cr, m);
        cairo_rectangle(cr, r->x, y, r->w, r->w);
        cairo_fill(cr);
        set_rgb(cr, axis_ink);
        cairo_rectangle(cr, r->x - off, y - off, r->w + 2 * off, r->w + 2 * off);
        cairo_stroke(cr);
        set_rgb(cr, ink);
        ms_plot_text_draw(c->t, cr, MS_PLOT_ROLE_TICK, "n/a", 0, xr + c->tick_len + c->pad * 0.3, y + r->w / 2, 0,
                          0.5, 0);
        MsPlotTextSize sz;
        ms_plot_text_measure(c->t, MS_PLOT_ROLE_TICK, "n/a", 0, &sz);
        lab_w = fmax(lab_w, sz.width);
    }
    cbar_title(cb, buf, sizeof buf);
    if (*buf) {
        set_rgb(cr, ink);
        double x = xr + c->tick_len + c->pad * 0.3 + lab_w + c->pad * 0.5;
        ms_plot_text_draw(c->t, cr, MS_PLOT_ROLE_LABEL, buf, g->plot.h, x, r->y + r->h / 2, 0.5, 0,
                          -3.14159265358979323846 / 2);
    }
}

static void draw_legend(cairo_t *cr, Ctx *c, const MsPlotLegend *lg, const MsPlotGeom *g)
{
    const MsPlotRect *r = &g->legend;
    double y0 = r->y, sw = c->tick_h * 0.8;
    MsPlotTextSize sz;
    if (lg->title && *lg->title) {
        set_rgb(cr, ink);
        ms_plot_text_draw(c->t, cr, MS_PLOT_ROLE_LABEL, lg->title, r->w, r->x, y0, 0, 0, 0);
        ms_plot_text_measure(c->t, MS_PLOT_ROLE_LABEL, lg->title, r->w, &sz);
        y0 += sz.height + c->pad * 0.3;
    }
    int rows = (int)floor((r->y + r->h - y0) / g->legend_row_h);
    if (rows < 1) rows = 1;
    double lab_max = g->legend_col_w - sw - c->pad * 1.5;
    size_t total = g->legend_shown + (g->legend_shown < lg->n ? 1 : 0);
    for (size_t i = 0; i < total; i++) {
        double x = r->x + (double)(i / (size_t)rows) * g->legend_col_w;
        double y = y0 + (double)(i % (size_t)rows) * g->legend_row_h;
        double cy = y + g->legend_row_h / 2;
        if (i < g->legend_shown) {
            set_rgb(cr, lg->items[i].color);
            cairo_rectangle(cr, x, round(cy - sw / 2), sw, sw);
            cairo_fill(cr);
            set_rgb(cr, ink);
            ms_plot_text_draw(c->t, cr, MS_PLOT_ROLE_TICK, lg->items[i].label, lab_max, x + sw + c->pad * 0.5, cy,
                              0, 0.5, 0);
        } else {
            char buf[64];
            snprintf(buf, sizeof buf, "+%zu more", lg->n - g->legend_shown);
            set_rgb(cr, muted);
            ms_plot_text_draw(c->t, cr, MS_PLOT_ROLE_TICK, buf, lab_max + sw, x, cy, 0, 0.5, 0);
        }
    }
}

void ms_plot_draw_axes(cairo_t *cr, const MsPlotFrame *f, const MsPlotGeom *g)
{
    MsPlotText *t = ms_plot_text_new(f->style);
    if (!t) return;
    Ctx c;
    ctx_init(&c, t, g->width);
    char buf[512];
    const MsPlotRect *p = &g->plot;
    double lw = line_w(&c), off = fmod(lw, 2) / 2;
    cairo_save(cr);
    cairo_set_line_width(cr, lw);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
    set_rgb(cr, axis_ink);
    cairo_rectangle(cr, p->x - off, p->y - off, p->w + 2 * off, p->h + 2 * off);
    cairo_stroke(cr);
    double yb = p->y + p->h;
    for (int i = 0; i < g->n_xticks; i++) {
        double x = round(g->xticks[i].pos) + off;
        cairo_move_to(cr, x, yb);
        cairo_line_to(cr, x, yb + c.tick_len);
    }
    for (int i = 0; i < g->n_yticks; i++) {
        double y = round(g->yticks[i].pos) + off;
        cairo_move_to(cr, p->x, y);
        cairo_line_to(cr, p->x - c.tick_len, y);
    }
    cairo_stroke(cr);
    set_rgb(cr, ink);
    for (int i = 0; i < g->n_xticks; i++)
        ms_plot_text_draw(t, cr, MS_PLOT_ROLE_TICK, g->xticks[i].label, cat_max(&c, &f->x), g->xticks[i].pos,
                          yb + c.tick_len + c.pad * 0.3, 0.5, 0, 0);
    for (int i = 0; i < g->n_yticks; i++)
        ms_plot_text_draw(t, cr, MS_PLOT_ROLE_TICK, g->yticks[i].label, cat_max(&c, &f->y),
                          p->x - c.tick_len - c.pad * 0.3, g->yticks[i].pos, 1, 0.5, 0);
    axis_title(&f->x, buf, sizeof buf);
    if (*buf) {
        double y = yb + (f->x.kind != MS_PLOT_AXIS_NONE ? c.tick_len + c.pad * 0.3 + c.tick_h : 0) + c.pad * 0.5;
        /* centred under the plot, but shifted to stay inside the figure */
        MsPlotTextSize sz;
        double maxw = g->width - 2 * c.pad;
        ms_plot_text_measure(t, MS_PLOT_ROLE_LABEL, buf, maxw, &sz);
        double cx = fmin(fmax(p->x + p->w / 2, c.pad + sz.width / 2), g->width - c.pad - sz.width / 2);
        ms_plot_text_draw(t, cr, MS_PLOT_ROLE_LABEL, buf, maxw, cx, y, 0.5, 0, 0);
    }
    axis_title(&f->y, buf, sizeof buf);
    if (*buf) {
        double x = p->x - (f->y.kind != MS_PLOT_AXIS_NONE ? c.tick_len + c.pad * 0.3 + g->ylabel_w : 0) - c.pad * 0.5;
        ms_plot_text_draw(t, cr, MS_PLOT_ROLE_LABEL, buf, p->h, x, p->y + p->h / 2, 0.5, 1,
                          -3.14159265358979323846 / 2);
    }
    if (f->title && *f->title)
        ms_plot_text_title(t, cr, f->title, g->width, c.pad);
    if (f->colorbar && g->colorbar.w > 0) draw_colorbar(cr, &c, f->colorbar, g);
    if (f->legend && g->legend.w > 0) draw_legend(cr, &c, f->legend, g);
    cairo_restore(cr);
    ms_plot_text_free(t);
}
