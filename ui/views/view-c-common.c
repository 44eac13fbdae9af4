/* view-c-common.c — helpers of the superexperts, npmi, compare and sweep
 * views (view-c-common.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "view-c-common.h"

int vc_run_info(MsTraceDb *db, int64_t want, MsTraceRunInfo *ri, MsError *err)
{
    memset(ri, 0, sizeof *ri);
    if (want > 0) {
        int rc = ms_trace_run_info(db, want, ri, err);
        if (rc == MS_ENOTFOUND) return ms_error_set(err, rc, "%s: no run %lld", ms_trace_path(db), (long long)want);
        return rc;
    }
    int64_t *ids = NULL;
    int n = 0, rc = ms_trace_runs(db, &ids, &n, err);
    if (rc < 0) return rc;
    for (int i = n - 1; i >= 0; i--) {
        if ((rc = ms_trace_run_info(db, ids[i], ri, err)) < 0) break;
        if (ri->n_prompts > 0) {
            free(ids);
            return 0;
        }
        ms_trace_run_info_clear(ri);
    }
    free(ids);
    if (rc < 0) return rc;
    return ms_error_set(err, MS_ENOTFOUND, "%s: no run with committed prompts (trace one with `moescope trace`)",
                        ms_trace_path(db));
}

void vc_analyze_cmd(char *buf, size_t size, MsTraceDb *db, const char *name, int64_t run, const char *extra)
{
    const char *path = ms_trace_path(db);
    bool quote = strpbrk(path, " \t'\"$;&|<>()*?") != NULL;
    snprintf(buf, size, "moescope analyze %s --db %s%s%s --run %lld%s%s", name, quote ? "'" : "", path,
             quote ? "'" : "", (long long)run, extra && *extra ? " " : "", extra ? extra : "");
}

int vc_find_stored(MsTraceDb *db, int64_t run, const char *name, const char *table, char **params, MsError *err)
{
    if (params) *params = NULL;
    MsTraceCursor *c = ms_trace_analyses(db, run, err);
    if (!c) return err && err->code ? err->code : MS_EDB;
    MsTraceAnalysis a;
    int rc, found = 0;
    while ((rc = ms_trace_analyses_next(c, &a, err)) == 1) {
        if (a.run_id != run || strcmp(a.name, name) || strcmp(a.table, table)) continue;
        found = 1;   /* the registry lists each table once: its latest write */
        if (params) {
            free(*params);
            *params = a.params ? strdup(a.params) : NULL;
            if (a.params && !*params) {
                rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", ms_trace_path(db));
                break;
            }
        }
    }
    ms_trace_cursor_free(c);
    if (rc < 0) {
        if (params) {
            free(*params);
            *params = NULL;
        }
        return rc;
    }
    return found;
}

MsTraceCursor *vc_table_open(MsTraceDb *db, const char *table, int64_t run, const char *const *need, int n_need,
                             int *idx, const char *cmd, MsError *err)
{
    MsError e = { 0 };
    MsTraceCursor *c = ms_trace_table(db, table, run, &e);
    if (!c) {
        ms_error_set(err, e.code ? e.code : MS_EDB, "%s; run `%s` again", e.msg, cmd);
        return NULL;
    }
    const MsColumn *cols;
    int nc = ms_trace_table_columns(c, &cols);
    for (int i = 0; i < n_need; i++) {
        idx[i] = -1;
        for (int j = 0; j < nc; j++)
            if (!strcmp(cols[j].name, need[i])) idx[i] = j;
        if (idx[i] < 0) {
            ms_trace_cursor_free(c);
            ms_error_set(err, MS_EFORMAT,
                         "%s: result table '%s' has no column '%s' (written by an older moescope?); run `%s` again",
                         ms_trace_path(db), table, need[i], cmd);
            return NULL;
        }
    }
    return c;
}

double vc_val_real(const MsTraceValue *v)
{
    if (v->type == MS_COL_REAL) return v->r;
    if (v->type == MS_COL_INT) return (double)v->i;
    return NAN;
}

int64_t vc_val_int(const MsTraceValue *v, int64_t dflt)
{
    if (v->type == MS_COL_INT) return v->i;
    if (v->type == MS_COL_REAL && isfinite(v->r)) return (int64_t)v->r;
    return dflt;
}

void vc_fmt_num(char *buf, size_t size, double v, int decimals)
{
    if (isnan(v)) {
        snprintf(buf, size, "n/a");
        return;
    }
    char num[64];
    snprintf(num, sizeof num, "%.*f", decimals, fabs(v));
    /* "-0.00" is zero: no sign */
    bool neg = v < 0 && strspn(num, "0.") != strlen(num);
    snprintf(buf, size, "%s%s", neg ? "\xE2\x88\x92" : "", num);
}

double vc_title_band(cairo_t *cr, const MsPlotStyle *style, const char *title, double width)
{
    if (!title || !*title) return 0;
    MsPlotText *t = ms_plot_text_new(style);
    if (!t) return 0;
    double pad = ms_plot_text_pad(t);
    if (cr) {
        cairo_save(cr);
        cairo_set_source_rgb(cr, VC_INK.r, VC_INK.g, VC_INK.b);
    }
    double h = ms_plot_text_title(t, cr, title, width, pad);
    if (cr) cairo_restore(cr);
    ms_plot_text_free(t);
    return ceil(pad + h);
}

double vc_key_line(cairo_t *cr, MsPlotText *t, const VcKey *keys, int n, double x, double y, double max_w)
{
    MsPlotTextSize sz;
    ms_plot_text_measure(t, MS_PLOT_ROLE_TICK, "Ag", 0, &sz);
    double pad = ms_plot_text_pad(t), sw = round(sz.height * 0.75), line_h = ceil(sz.height * 1.15);
    double cx = x, cy = y + sz.height / 2;
    int lines = 1;
    for (int i = 0; i < n; i++) {
        const VcKey *k = &keys[i];
        double kw = k->kind < 0 ? 0 : (k->kind == 2 ? sw * 1.6 : sw) + pad * 0.4;
        MsPlotTextSize ls;
        ms_plot_text_measure(t, MS_PLOT_ROLE_TICK, k->label, 0, &ls);
        if (cx > x && cx + kw + ls.width > x + max_w) {
            cx = x;
            cy += line_h;
            lines++;
        }
        if (cr && k->kind >= 0) {
            cairo_set_source_rgb(cr, k->color.r, k->color.g, k->color.b);
            cairo_new_path(cr);
            if (k->kind == 1) {
                cairo_set_line_width(cr, 1.5);
                cairo_arc(cr, cx + sw / 2, cy, sw * 0.35, 0, 2 * M_PI);
                cairo_stroke(cr);
            } else if (k->kind == 2) {
                cairo_rectangle(cr, cx, round(cy - sw * 0.3), sw * 1.6, round(sw * 0.6));
                cairo_fill(cr);
            } else {
                cairo_rectangle(cr, cx, round(cy - sw / 2), sw, sw);
                cairo_fill(cr);
            }
        }
        cx += kw;
        if (cr) {
            cairo_set_source_rgb(cr, VC_INK.r, VC_INK.g, VC_INK.b);
            ms_plot_text_draw(t, cr, MS_PLOT_ROLE_TICK, k->label, max_w, cx, cy, 0, 0.5, 0);
        }
        cx += ls.width + pad * 1.6;
    }
    return (lines - 1) * line_h + ceil(sz.height);
}

bool vc_cell_text(cairo_t *cr, MsPlotText *t, MsPlotRole role, const char *text, const MsPlotRect *r, MsRgb bg)
{
    MsPlotTextSize sz;
    ms_plot_text_measure(t, role, text, 0, &sz);
    double m = ms_plot_text_pad(t) * 0.3;
    if (sz.width + 2 * m > r->w || sz.height > r->h) return false;
    MsRgb fg = ms_plot_contrast_text(bg);
    cairo_save(cr);
    cairo_set_source_rgb(cr, fg.r, fg.g, fg.b);
    ms_plot_text_draw(t, cr, role, text, 0, r->x + r->w / 2, r->y + r->h / 2, 0.5, 0.5, 0);
    cairo_restore(cr);
    return true;
}

void vc_outline(cairo_t *cr, const MsPlotRect *r, double lw, MsRgb c)
{
    if (r->w <= lw || r->h <= lw) lw = fmax(1, fmin(r->w, r->h) / 3);
    cairo_save(cr);
    cairo_set_source_rgb(cr, c.r, c.g, c.b);
    cairo_set_line_width(cr, lw);
    cairo_rectangle(cr, r->x + lw / 2, r->y + lw / 2, r->w - lw, r->h - lw);
    cairo_stroke(cr);
    cairo_restore(cr);
}

void vc_window(double *lo, double *hi, double w0, double w1, double min_span)
{
    if (!(w1 > w0) || !isfinite(w0) || !isfinite(w1)) return;
    double a = fmax(*lo, w0), b = fmin(*hi, w1);
    if (b - a < min_span) {
        double c = (a + b) / 2;
        a = fmax(*lo, c - min_span / 2);
        b = fmin(*hi, a + min_span);
        a = fmax(*lo, b - min_span);
    }
    if (b > a) {
        *lo = a;
        *hi = b;
    }
}
