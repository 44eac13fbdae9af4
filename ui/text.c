/* text.c — Pango text for figures: labels, escaped token pieces, the text log. */
#include "plot-internal.h"

#include <fontconfig/fontconfig.h>
#include <math.h>
#include <pango/pangocairo.h>
#include <stdio.h>
#include <stdlib.h>

#define ESC_KEEP_NEWLINE (1u << 8) /* labels: '\n' breaks the line */

/* ---- escaping ---- */

/* Length of the valid UTF-8 sequence at s[0..n) and its code point, or 0. */
static int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    int len;
    uint32_t v;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3; v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;      /* no overlongs */
        if (c == 0xED) hi = 0x9F;      /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4; v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;      /* <= U+10FFFF */
    } else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        unsigned char b = s[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF)) return 0;
        v = v << 6 | (b & 0x3F);
    }
    *cp = v;
    return len;
}

static bool invisible_format(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9F) || cp == 0xAD || cp == 0x200B || cp == 0x200E || cp == 0x200F ||
           cp == 0x2028 || cp == 0x2029 || (cp >= 0x202A && cp <= 0x202E) || cp == 0x2060 ||
           (cp >= 0x2066 && cp <= 0x2069) || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB) ||
           cp == 0xFFFE || cp == 0xFFFF;
}

char *ms_plot_escape_(const char *bytes, size_t len, unsigned flags, MsPlotSpan_ **spans_out,
                      size_t *n_spans)
{
    const unsigned char *s = (const unsigned char *)bytes;
    if (!s) len = 0;
    char *out = malloc(4 * len + 1);
    MsPlotSpan_ *spans = NULL;
    size_t ns = 0;
    if (!out) return NULL;
    if (spans_out) {
        spans = malloc((len ? len : 1) * sizeof *spans);
        if (!spans) { free(out); return NULL; }
    }
    size_t o = 0, i = 0;
    while (i < len) {
        uint32_t cp;
        int n = utf8_decode(s + i, len - i, &cp);
        size_t start = o;
        bool esc = true;
        if (n == 0) {
            o += (size_t)sprintf(out + o, "\\x%02X", s[i]);
            n = 1;
        } else if (cp == '\\') {
            out[o++] = '\\'; out[o++] = '\\';
        } else if (cp == '\n' && (flags & ESC_KEEP_NEWLINE)) {
            out[o++] = '\n';
            esc = false;
        } else if (cp < 0x20 || cp == 0x7F) {
            if (cp == '\n') { out[o++] = '\\'; out[o++] = 'n'; }
            else if (cp == '\t') { out[o++] = '\\'; out[o++] = 't'; }
            else if (cp == '\r') { out[o++] = '\\'; out[o++] = 'r'; }
            else o += (size_t)sprintf(out + o, "\\x%02X", (unsigned)cp);
        } else if (invisible_format(cp)) {
            o += (size_t)sprintf(out + o, "\\u%04X", (unsigned)cp);
        } else if (cp == ' ' && (flags & MS_PLOT_ESC_SPACE)) {
            memcpy(out + o, "\xE2\x90\xA3", 3); /* U+2423 OPEN BOX */
            o += 3;
        } else {
            memcpy(out + o, s + i, (size_t)n);
            o += (size_t)n;
            esc = false;
        }
        if (esc && spans) {
            if (ns > 0 && spans[ns - 1].end == start) spans[ns - 1].end = o;
            else spans[ns++] = (MsPlotSpan_){start, o};
        }
        i += (size_t)n;
    }
    out[o] = 0;
    if (spans_out) { *spans_out = spans; *n_spans = ns; }
    return out;
}

char *ms_plot_token_escape(const char *bytes, size_t len, unsigned flags)
{
    return ms_plot_escape_(bytes, len, flags & MS_PLOT_ESC_SPACE, NULL, NULL);
}

/* ---- context ---- */

struct MsPlotText {
    PangoContext *ctx;
    PangoLayout *layout;
    PangoFontDescription *desc[MS_PLOT_ROLE_COUNT];
    double size[MS_PLOT_ROLE_COUNT];
    double pad;
};

static const cairo_user_data_key_t log_key;

MsPlotText *ms_plot_text_new(const MsPlotStyle *style)
{
    MsPlotStyle st = style ? *style : (MsPlotStyle){0};
    if (!(st.font_size > 0) || !isfinite(st.font_size)) st.font_size = 12;
    if (!(st.text_scale > 0) || !isfinite(st.text_scale)) st.text_scale = 1;
    if (!st.font_family) st.font_family = MS_PLOT_FONT_SANS;
    if (!st.mono_family) st.mono_family = MS_PLOT_FONT_MONO;
    MsPlotText *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    /* the thread's default font map (owned by Pango) */
    PangoFontMap *fm = pango_cairo_font_map_get_default();
    t->ctx = pango_font_map_create_context(fm);
    cairo_font_options_t *fo = cairo_font_options_create();
    /* unhinted metrics: the same extents on every surface and scale */
    cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
    cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE);
    cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_GRAY);
    pango_cairo_context_set_font_options(t->ctx, fo);
    cairo_font_options_destroy(fo);
    pango_context_set_round_glyph_positions(t->ctx, FALSE);
    t->layout = pango_layout_new(t->ctx);
    static const double rel[MS_PLOT_ROLE_COUNT] = {1.25, 1.0, 0.85, 1.0, 0.8};
    double base = st.font_size * st.text_scale;
    for (int r = 0; r < MS_PLOT_ROLE_COUNT; r++) {
        PangoFontDescription *d = pango_font_description_new();
        pango_font_description_set_family(d, r == MS_PLOT_ROLE_TOKEN ? st.mono_family : st.font_family);
        t->size[r] = base * rel[r];
        pango_font_description_set_absolute_size(d, t->size[r] * PANGO_SCALE);
        if (r == MS_PLOT_ROLE_TITLE) pango_font_description_set_weight(d, PANGO_WEIGHT_BOLD);
        t->desc[r] = d;
    }
    t->pad = base * 0.5;
    return t;
}

void ms_plot_text_free(MsPlotText *t)
{
    if (!t) return;
    for (int r = 0; r < MS_PLOT_ROLE_COUNT; r++)
        if (t->desc[r]) pango_font_description_free(t->desc[r]);
    if (t->layout) g_object_unref(t->layout);
    if (t->ctx) g_object_unref(t->ctx);
    free(t);
}

double ms_plot_text_role_size(const MsPlotText *t, MsPlotRole role)
{
    return (unsigned)role < MS_PLOT_ROLE_COUNT ? t->size[role] : t->size[MS_PLOT_ROLE_LABEL];
}

double ms_plot_text_pad(const MsPlotText *t) { return t->pad; }

/* Put escaped text into the layout; escapes coloured `esc` when attrs wanted. */
static bool setup(MsPlotText *t, MsPlotRole role, const char *bytes, size_t len, unsigned flags,
                  double max_width, const MsRgb *esc)
{
    MsPlotSpan_ *spans = NULL;
    size_t ns = 0;
    if ((unsigned)role >= MS_PLOT_ROLE_COUNT) role = MS_PLOT_ROLE_LABEL;
    char *s = ms_plot_escape_(bytes, len, flags, esc ? &spans : NULL, &ns);
    if (!s) return false;
    pango_layout_set_font_description(t->layout, t->desc[role]);
    pango_layout_set_text(t->layout, s, -1);
    PangoAttrList *al = NULL;
    if (esc && ns > 0) {
        al = pango_attr_list_new();
        for (size_t i = 0; i < ns; i++) {
            PangoAttribute *a = pango_attr_foreground_new((guint16)(esc->r * 65535), (guint16)(esc->g * 65535),
                                                          (guint16)(esc->b * 65535));
            a->start_index = (guint)spans[i].start;
            a->end_index = (guint)spans[i].end;
            pango_attr_list_insert(al, a);
        }
    }
    pango_layout_set_attributes(t->layout, al);
    if (al) pango_attr_list_unref(al);
    if (max_width > 0) {
        pango_layout_set_width(t->layout, (int)(max_width * PANGO_SCALE));
        pango_layout_set_ellipsize(t->layout, PANGO_ELLIPSIZE_END);
    } else {
        pango_layout_set_width(t->layout, -1);
        pango_layout_set_ellipsize(t->layout, PANGO_ELLIPSIZE_NONE);
    }
    free(spans);
    free(s);
    return true;
}

static void extents(MsPlotText *t, PangoRectangle *lg, MsPlotTextSize *out)
{
    pango_layout_get_extents(t->layout, NULL, lg);
    if (out) {
        out->width = (double)lg->width / PANGO_SCALE;
        out->height = (double)lg->height / PANGO_SCALE;
        out->baseline = (double)(pango_layout_get_baseline(t->layout) - lg->y) / PANGO_SCALE;
        out->missing_glyphs = pango_layout_get_unknown_glyphs_count(t->layout);
    }
}

static void measure(MsPlotText *t, MsPlotRole role, const char *bytes, size_t len, unsigned flags,
                    double max_width, MsPlotTextSize *out)
{
    PangoRectangle lg;
    memset(out, 0, sizeof *out);
    if (!setup(t, role, bytes, len, flags, max_width, NULL)) return;
    extents(t, &lg, out);
}

void ms_plot_text_measure(MsPlotText *t, MsPlotRole role, const char *text, double max_width,
                          MsPlotTextSize *out)
{
    measure(t, role, text, text ? strlen(text) : 0, ESC_KEEP_NEWLINE, max_width, out);
}

void ms_plot_token_measure(MsPlotText *t, const char *bytes, size_t len, unsigned flags, double max_width,
                           MsPlotTextSize *out)
{
    measure(t, MS_PLOT_ROLE_TOKEN, bytes, len, flags & MS_PLOT_ESC_SPACE, max_width, out);
}

static void log_item(cairo_t *cr, MsPlotRole role, double size, double x, double y, double w, double h,
                     double base, const char *text)
{
    MsPlotTextLog *log = cairo_get_user_data(cr, &log_key);
    if (!log) return;
    if (log->n == log->cap) {
        size_t cap = log->cap ? 2 * log->cap : 64;
        MsPlotTextItem *it = realloc(log->items, cap * sizeof *it);
        if (!it) return;
        log->items = it;
        log->cap = cap;
    }
    MsPlotTextItem *it = &log->items[log->n];
    double cx[4] = {x, x + w, x, x + w}, cy[4] = {y, y, y + h, y + h};
    it->x0 = it->y0 = INFINITY;
    it->x1 = it->y1 = -INFINITY;
    for (int i = 0; i < 4; i++) {
        cairo_user_to_device(cr, &cx[i], &cy[i]);
        it->x0 = fmin(it->x0, cx[i]);
        it->y0 = fmin(it->y0, cy[i]);
        it->x1 = fmax(it->x1, cx[i]);
        it->y1 = fmax(it->y1, cy[i]);
    }
    it->bx = x;
    it->by = y + base;
    cairo_user_to_device(cr, &it->bx, &it->by);
    double dx = 1, dy = 0, sx = 0, sy = size, wx = w, wy = 0;
    cairo_user_to_device_distance(cr, &dx, &dy);
    cairo_user_to_device_distance(cr, &wx, &wy);
    it->width = hypot(wx, wy);
    cairo_user_to_device_distance(cr, &sx, &sy);
    it->angle = atan2(dy, dx);
    it->size = hypot(sx, sy);
    it->role = role;
    it->text = strdup(text);
    if (it->text) log->n++;
}

/* Draw the prepared layout with its logical box's (ax, ay) point at (x, y). */
static void show(MsPlotText *t, cairo_t *cr, MsPlotRole role, double x, double y, double ax, double ay,
                 double angle)
{
    PangoRectangle lg;
    MsPlotTextSize sz;
    extents(t, &lg, &sz);
    cairo_save(cr);
    cairo_translate(cr, x, y);
    if (angle != 0) cairo_rotate(cr, angle);
    double left = -ax * sz.width;
    double top = ay < 0 ? -sz.baseline : -ay * sz.height;
    cairo_move_to(cr, left - (double)lg.x / PANGO_SCALE, top - (double)lg.y / PANGO_SCALE);
    pango_cairo_update_layout(cr, t->layout);
    pango_cairo_show_layout(cr, t->layout);
    log_item(cr, role, t->size[(unsigned)role < MS_PLOT_ROLE_COUNT ? role : MS_PLOT_ROLE_LABEL], left, top,
             sz.width, sz.height, sz.baseline, pango_layout_get_text(t->layout));
    cairo_restore(cr);
}

void ms_plot_text_draw(MsPlotText *t, cairo_t *cr, MsPlotRole role, const char *text, double max_width,
                       double x, double y, double ax, double ay, double angle)
{
    if (!text || !*text) return;
    if (!setup(t, role, text, strlen(text), ESC_KEEP_NEWLINE, max_width, NULL)) return;
    show(t, cr, role, x, y, ax, ay, angle);
}

double ms_plot_text_title(MsPlotText *t, cairo_t *cr, const char *title, double width, double y)
{
    if (!title || !*title) return 0;
    double maxw = width - 2 * t->pad;
    MsPlotTextSize sz;
    ms_plot_text_measure(t, MS_PLOT_ROLE_TITLE, title, 0, &sz);
    char line[2][512];
    int n = 1;
    snprintf(line[0], sizeof line[0], "%s", title);
    line[1][0] = 0;
    size_t len = strlen(title);
    if (sz.width > maxw && len < sizeof line[0]) {
        size_t best = 0;
        double best_d = INFINITY;
        for (size_t i = 1; i + 1 < len; i++) {
            if (title[i] != ' ') continue;
            double d = fabs((double)i - len / 2.0);
            bool punct = title[i - 1] == ':' || title[i - 1] == ',';
            if (punct) d *= 0.5;
            if (d < best_d || (d == best_d && punct)) best_d = d, best = i;   /* a tie: after the comma */
        }
        if (best) {
            snprintf(line[0], sizeof line[0], "%.*s", (int)best, title);
            snprintf(line[1], sizeof line[1], "%s", title + best + 1);
            n = 2;
        }
    }
    double h = 0;
    for (int k = 0; k < n; k++) {
        ms_plot_text_measure(t, MS_PLOT_ROLE_TITLE, line[k], maxw, &sz);
        if (cr) ms_plot_text_draw(t, cr, MS_PLOT_ROLE_TITLE, line[k], maxw, width / 2, y + h, 0.5, 0, 0);
        h += sz.height;
    }
    return h;
}

/* Append a copy of s[0..n) to the growing array *v; false on OOM. */
static bool push_line(char ***v, size_t *nv, size_t *cap, const char *s, size_t n)
{
    if (*nv == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        char **nvv = realloc(*v, nc * sizeof **v);
        if (!nvv) return false;
        *v = nvv;
        *cap = nc;
    }
    if (!((*v)[*nv] = strndup(s, n))) return false;
    (*nv)++;
    return true;
}

double ms_plot_text_wrapped(MsPlotText *t, cairo_t *cr, MsPlotRole role, const char *text, double max_width,
                            double x, double y)
{
    if (!text || !*text) return 0;
    char **lines = NULL, *line = malloc(strlen(text) + 1);
    size_t nl = 0, cap = 0, ll = 0;
    bool ok = line != NULL;
    /* greedy: a line takes words while it fits; a word wider than a whole
     * line gets one of its own (and ellipsizes there); '\n' breaks a line */
    for (const char *q = text; ok;) {
        size_t n = strcspn(q, " \n"), keep = ll;
        if (ll) line[ll++] = ' ';
        memcpy(line + ll, q, n);
        ll += n;
        line[ll] = '\0';
        MsPlotTextSize sz;
        ms_plot_text_measure(t, role, line, 0, &sz);
        if (sz.width > max_width && keep) {   /* the word starts the next line */
            ok = push_line(&lines, &nl, &cap, line, keep);
            memmove(line, line + keep + 1, ll - keep);   /* the word and its NUL */
            ll -= keep + 1;
        }
        q += n;
        if (ok && *q != ' ') {   /* '\n' or the end */
            ok = push_line(&lines, &nl, &cap, line, ll);
            ll = 0;
        }
        if (!*q) break;
        q++;
    }
    const double lh = ms_plot_text_role_size(t, role) * 1.4;
    const double y0 = y - lh * ((double)nl - 1) / 2.0;
    for (size_t i = 0; i < nl; i++) {
        if (cr) ms_plot_text_draw(t, cr, role, lines[i], max_width, x, y0 + lh * (double)i, 0.5, 0.5, 0);
        free(lines[i]);
    }
    free(lines);
    free(line);
    return lh * (double)nl;
}

static double luminance(MsRgb c) { return 0.2126 * c.r + 0.7152 * c.g + 0.0722 * c.b; }

void ms_plot_token_draw(MsPlotText *t, cairo_t *cr, const char *bytes, size_t len, unsigned flags,
                        double max_width, double x, double y, MsRgb fg)
{
    /* escapes in a blue that reads as notation; on dark text nearly as dark
     * as the text, so it stays readable on the mid-tone boxes of views that
     * draw tokens on colour (viridis' middle) */
    MsRgb esc = luminance(fg) < 0.5 ? (MsRgb){0.06, 0.16, 0.56} : (MsRgb){0.72, 0.82, 1.0};
    if (!setup(t, MS_PLOT_ROLE_TOKEN, bytes, len, flags & MS_PLOT_ESC_SPACE, max_width, &esc)) return;
    cairo_save(cr);
    cairo_set_source_rgb(cr, fg.r, fg.g, fg.b);
    show(t, cr, MS_PLOT_ROLE_TOKEN, x, y, 0, 0, 0);
    cairo_restore(cr);
}

int ms_plot_token_flow(MsPlotText *t, const MsPlotPiece *pieces, size_t n, unsigned flags, double width,
                       double pad, MsPlotRect *rects)
{
    if (n == 0) return 0;
    MsPlotTextSize line;
    measure(t, MS_PLOT_ROLE_TOKEN, "Ag", 2, 0, 0, &line);
    double h = line.height + 2 * pad, x = 0, y = 0;
    int lines = 1;
    for (size_t i = 0; i < n; i++) {
        MsPlotTextSize sz;
        measure(t, MS_PLOT_ROLE_TOKEN, pieces[i].bytes, pieces[i].len, flags & MS_PLOT_ESC_SPACE, 0, &sz);
        double w = sz.width + 2 * pad;
        if (w > width) w = width;
        if (x > 0 && x + w > width) {
            x = 0;
            y += h;
            lines++;
        }
        rects[i] = (MsPlotRect){x, y, w, h};
        x += w;
    }
    return lines;
}

int ms_plot_text_log_attach(cairo_t *cr, MsPlotTextLog *log)
{
    cairo_status_t st = cairo_set_user_data(cr, &log_key, log, NULL);
    return st == CAIRO_STATUS_SUCCESS ? 0 : MS_ENOMEM;
}

void ms_plot_text_log_clear(MsPlotTextLog *log)
{
    if (!log) return;
    for (size_t i = 0; i < log->n; i++) free(log->items[i].text);
    free(log->items);
    log->items = NULL;
    log->n = log->cap = 0;
}

void ms_plot_release_caches(void)
{
    /* drop this thread's default font map (its fontconfig patterns with it) */
    pango_cairo_font_map_set_default(NULL);
    cairo_debug_reset_static_data();
    FcFini();
}
