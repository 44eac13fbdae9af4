/* test-views-c.c — the views superexperts, npmi, compare and sweep
 * (ui/views/) on small traces this test makes with the moescope binary:
 *   - a synth model with a planted super expert (--plant-super 1:3:IDS,
 *     traced with --stats): the flagged cell is the top of the colour map,
 *     outlined, labelled with the planted channel (60) in the SVG;
 *   - a planted route (--plant-route digit:2:5): the npmi cell (digit, 2:5)
 *     is nPMI 1, the darkest red of the diverging map, its value written;
 *   - an experiment (--silence 1:3) and a sweep with random controls: the KL
 *     strip's cells have the colour of their KL, the greedy row marks exactly
 *     the differing positions, block 0's routing is unchanged; sweep bars are
 *     ranked and as long as their mean KL, ms_trace_sweep_rows equals what
 *     `moescope sweep --format json` printed.
 * Every view renders to PNG, SVG (parsed as XML, its text checked) and PDF
 * (read back with pdftoppm and probed) at two sizes; texts stay inside the
 * figure without overlapping; hit tests return the cell drawn at the point
 * (every cell is probed where the hit test finds it). */
#include "mtest.h"
#include "plotcheck.h"
#include "ms-view.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <sys/wait.h>

static const char *M;        /* the moescope binary */
static const char *T;        /* scratch directory */
static bool have_pdftoppm, have_python;

/* ------------------------------------------------------------ helpers */

static bool sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        mt_diag("command failed: %s", cmd);
        return false;
    }
    return true;
}

static uint32_t pixel(cairo_surface_t *s, double sc, double x, double y)
{
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    int px = (int)floor(x * sc), py = (int)floor(y * sc);
    if (px < 0 || py < 0 || px >= w || py >= h) return 0;
    const unsigned char *d = cairo_image_surface_get_data(s);
    return *(const uint32_t *)(d + (size_t)py * (size_t)cairo_image_surface_get_stride(s) + (size_t)px * 4) & 0xffffff;
}

/* A tooltip on one line, for TAP messages (one use per message: the
 * buffer is static). */
static const char *oneline(const char *text)
{
    static char buf[1100];
    size_t n = strnlen(text, sizeof buf - 1);   /* truncated on purpose */
    memcpy(buf, text, n);
    buf[n] = '\0';
    for (char *c = buf; *c; c++)
        if (*c == '\n') *c = '|';
    return buf;
}

/* ------------------------------------------------------------ views */

typedef struct {
    const MsViewClass *v;
    void *model;
    MsViewState st;
} View;

static bool view_open(View *r, const char *name, const char *db, const MsViewParams *p)
{
    memset(r, 0, sizeof *r);
    ms_view_state_init(&r->st);
    r->v = ms_view_find(name);
    MsError err = {0};
    MsTraceDb *d = ms_trace_open(db, MS_TRACE_READ, &err);
    int rc = d ? r->v->prepare(d, p, &r->model, &err) : err.code;
    ms_trace_close(d);
    MT_CHECK(r->v && rc == 0 && r->model, "%s: prepared from %s (%s)", name, strrchr(db, '/') + 1, rc ? err.msg : "ok");
    return rc == 0;
}

static void view_close(View *r)
{
    if (r->model) r->v->free_model(r->model);
    r->model = NULL;
}

static bool hit(View *r, double w, double h, double x, double y, MsViewHit *out)
{
    return r->v->hit(r->model, &r->st, w, h, x, y, out);
}

typedef bool (*HitPred)(const MsViewHit *h, void *user);

/* A point whose hit satisfies pred: a vertical and a horizontal line
 * through the figure, then a coarse grid (hit tests lay the figure out each
 * time, so they are not free). */
static bool find_point(View *r, double w, double h, HitPred pred, void *user, double *px, double *py)
{
    MsViewHit hh;
    *px = *py = -1;
    for (double y = 1; y < h; y += 3)
        if (hit(r, w, h, w * 0.45, y, &hh) && pred(&hh, user)) {
            *px = w * 0.45;
            *py = y;
            return true;
        }
    for (double x = 1; x < w; x += 3)
        if (hit(r, w, h, x, h * 0.5, &hh) && pred(&hh, user)) {
            *px = x;
            *py = h * 0.5;
            return true;
        }
    for (double y = 4; y < h; y += 12)
        for (double x = 4; x < w; x += 12)
            if (hit(r, w, h, x, y, &hh) && pred(&hh, user)) {
                *px = x;
                *py = y;
                return true;
            }
    return false;
}

typedef struct {
    MsHitKind kind;
    int64_t row, col, item;
} Same;

static bool same_pred(const MsViewHit *h, void *user)
{
    const Same *s = user;
    return h->kind == s->kind && h->row == s->row && h->col == s->col && h->item == s->item;
}

/* The extent of the item hit at (x, y): bisection to 1/8 unit each way. */
static void bounds(View *r, double w, double h, double x, double y, double *x0, double *x1, double *y0, double *y1)
{
    MsViewHit hh;
    hit(r, w, h, x, y, &hh);
    Same s = {hh.kind, hh.row, hh.col, hh.item};
    double lim[4] = {0, w, 0, h};
    double *out[4] = {x0, x1, y0, y1};
    for (int k = 0; k < 4; k++) {
        double in = k < 2 ? x : y, away = lim[k];
        for (int i = 0; i < 30 && fabs(in - away) > 0.125; i++) {
            double mid = (in + away) / 2;
            bool same = k < 2 ? hit(r, w, h, mid, y, &hh) && same_pred(&hh, &s) : hit(r, w, h, x, mid, &hh) && same_pred(&hh, &s);
            if (same) in = mid;
            else away = mid;
        }
        *out[k] = in;
    }
}

static bool any_cell(const MsViewHit *h, void *user)
{
    (void)user;
    return h->kind == MS_HIT_CELL;
}

/* A heat-map cell satisfying pred: locate one cell, then visit the grid
 * cell by cell (one hit test each). */
static bool find_cell(View *r, double w, double h, HitPred pred, void *user, double *px, double *py)
{
    double x, y, x0, x1, y0, y1;
    if (!find_point(r, w, h, any_cell, NULL, &x, &y)) return false;
    bounds(r, w, h, x, y, &x0, &x1, &y0, &y1);
    MsViewHit hh;
    hit(r, w, h, x, y, &hh);
    double cw = x1 - x0, ch = y1 - y0, gx = x0 - hh.col * cw, gy = y0 - hh.row * ch;
    for (double cy = gy + ch / 2; cy < h; cy += ch)
        for (double cx = gx + cw / 2; cx < w; cx += cw)
            if (hit(r, w, h, cx, cy, &hh) && pred(&hh, user)) {
                *px = cx;
                *py = cy;
                return true;
            }
    return false;
}

/* ------------------------------------------------------------ files */

static bool svg_words(const char *svg, char **words)
{
    char script[600], out[700];
    snprintf(script, sizeof script, "%s/svgtext.py", T);
    snprintf(out, sizeof out, "%s.txt", svg);
    if (access(script, F_OK) != 0) {
        FILE *f = fopen(script, "w");
        fputs("import sys, xml.etree.ElementTree as ET\n"
              "root = ET.parse(sys.argv[1]).getroot()\n"
              "ns = '{http://www.w3.org/2000/svg}'\n"
              "assert root.tag == ns + 'svg', root.tag\n"
              "out = open(sys.argv[2], 'w', encoding='utf-8')\n"
              "for e in root.iter(ns + 'text'):\n"
              "    out.write((e.text or '') + '\\n')\n", f);
        fclose(f);
    }
    *words = NULL;
    if (!have_python || !sh("python3 '%s' '%s' '%s'", script, svg, out)) return false;
    *words = pc_read_file(out, NULL);
    return *words != NULL;
}

typedef void (*ProbeFn)(View *r, cairo_surface_t *s, double w, double h, double sc, int tol, const char *what);

/* PNG, SVG and PDF at two sizes; probe the PNG and the PDF raster; the SVG
 * holds every string of `texts` (NULL-terminated; "a|b" = either; a leading
 * '!' = at the larger size only). */
static void check_files(View *r, const char *name, const char *const *texts, ProbeFn probe)
{
    static const double sizes[2][3] = {{1000, 650, 1}, {640, 420, 2}};
    for (int k = 0; k < 2; k++) {
        double w = sizes[k][0], h = sizes[k][1], sc = sizes[k][2];
        int W = (int)(w * sc), H = (int)(h * sc);
        char path[600], what[200];
        MsError err = {0};

        snprintf(path, sizeof path, "%s/%s-%d.png", T, name, k);
        int rc = ms_view_render_file(r->v, r->model, &r->st, path, w, h, sc, &err);
        size_t len = 0;
        char *data = pc_read_file(path, &len);
        cairo_surface_t *s = cairo_image_surface_create_from_png(path);
        MT_CHECK(rc == 0 && data && len > 8 && !memcmp(data, "\x89PNG\r\n\x1a\n", 8) &&
                 cairo_surface_status(s) == CAIRO_STATUS_SUCCESS && cairo_image_surface_get_width(s) == W &&
                 cairo_image_surface_get_height(s) == H,
                 "%s PNG %dx%d: written and read back at its size (%s)", name, W, H, rc ? err.msg : "ok");
        free(data);
        if (cairo_surface_status(s) == CAIRO_STATUS_SUCCESS) {
            snprintf(what, sizeof what, "%s PNG %dx%d", name, W, H);
            probe(r, s, w, h, sc, 1, what);
        }
        cairo_surface_destroy(s);

        snprintf(path, sizeof path, "%s/%s-%d.svg", T, name, k);
        rc = ms_view_render_file(r->v, r->model, &r->st, path, w, h, sc, &err);
        char *words = NULL;
        bool parsed = rc == 0 && svg_words(path, &words);
        MT_CHECK(parsed, "%s SVG %dx%d: written, parses as XML with an <svg> root (%s)", name, W, H, rc ? err.msg : "ok");
        if (words) {
            int missing = 0;
            for (const char *const *t = texts; *t; t++) {
                char alt[256];
                if (**t == '!' && k > 0) continue;   /* only at the larger size (cell texts, every tick label) */
                snprintf(alt, sizeof alt, "%s", *t + (**t == '!'));
                bool found = false;
                for (char *a = strtok(alt, "|"); a && !found; a = strtok(NULL, "|")) found = strstr(words, a) != NULL;
                if (!found) {
                    missing++;
                    mt_diag("%s SVG %dx%d: no text '%s'", name, W, H, *t);
                }
            }
            MT_CHECK(missing == 0, "%s SVG %dx%d: holds the title, axis titles and the expected labels", name, W, H);
        }
        free(words);

        snprintf(path, sizeof path, "%s/%s-%d.pdf", T, name, k);
        rc = ms_view_render_file(r->v, r->model, &r->st, path, w, h, sc, &err);
        data = pc_read_file(path, &len);
        MT_CHECK(rc == 0 && data && !strncmp(data, "%PDF-", 5), "%s PDF %dx%d: written (%s)", name, W, H, rc ? err.msg : "ok");
        free(data);
        char out[600];
        snprintf(out, sizeof out, "%s/%s-%d-pdf", T, name, k);
        bool conv = have_pdftoppm && sh("pdftoppm -png -r 72 -singlefile '%s' '%s' 2>&1", path, out);
        strcat(out, ".png");
        s = conv ? cairo_image_surface_create_from_png(out) : NULL;
        bool ok = s && cairo_surface_status(s) == CAIRO_STATUS_SUCCESS;
        MT_CHECK(ok && abs(cairo_image_surface_get_width(s) - W) <= 1 && abs(cairo_image_surface_get_height(s) - H) <= 1,
                 "%s PDF %dx%d: pdftoppm renders it at the page size", name, W, H);
        if (ok) {
            snprintf(what, sizeof what, "%s PDF via pdftoppm %dx%d", name, W, H);
            probe(r, s, w, h, sc, 3, what);
        }
        if (s) cairo_surface_destroy(s);
    }
}

static bool overlap(const MsPlotTextItem *a, const MsPlotTextItem *b)
{
    return a->x0 < b->x1 - 0.5 && b->x0 < a->x1 - 0.5 && a->y0 < b->y1 - 0.5 && b->y0 < a->y1 - 0.5;
}

/* Texts inside the figure and not overlapping, at 1400x900 and 640x420. */
static void check_layout(View *r, const char *name)
{
    static const double sizes[2][2] = {{1400, 900}, {640, 420}};
    for (int k = 0; k < 2; k++) {
        double w = sizes[k][0], h = sizes[k][1];
        cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)w, (int)h);
        cairo_t *cr = cairo_create(s);
        MsPlotTextLog log = {0};
        MsError err = {0};
        ms_plot_text_log_attach(cr, &log);
        int rc = r->v->draw(cr, w, h, r->model, &r->st, &err);
        int clipped = 0, overlaps = 0;
        for (size_t i = 0; rc == 0 && i < log.n; i++) {
            const MsPlotTextItem *it = &log.items[i];
            if (it->x0 < -0.5 || it->y0 < -0.5 || it->x1 > w + 0.5 || it->y1 > h + 0.5) {
                clipped++;
                mt_diag("%s %gx%g: clipped \"%s\" at %.1f,%.1f-%.1f,%.1f", name, w, h, it->text, it->x0, it->y0, it->x1,
                        it->y1);
            }
            for (size_t j = 0; j < i; j++)
                if (overlap(it, &log.items[j]) && overlaps++ < 4)
                    mt_diag("%s %gx%g: \"%s\" overlaps \"%s\"", name, w, h, it->text, log.items[j].text);
        }
        MT_CHECK(rc == 0 && log.n > 5 && clipped == 0 && overlaps == 0,
                 "%s %gx%g: %zu texts, all inside the figure, none overlapping (%s)", name, w, h, log.n,
                 rc ? err.msg : "ok");
        ms_plot_text_log_attach(cr, NULL);
        ms_plot_text_log_clear(&log);
        cairo_destroy(cr);
        cairo_surface_destroy(s);
    }
}

/* ------------------------------------------------------- superexperts */

static bool is_cell(const MsViewHit *h, void *user)
{
    const int *le = user;
    return h->kind == MS_HIT_CELL && h->layer == le[0] && h->expert == le[1];
}

static double se_lo, se_hi;   /* the log10 range of the map, from the hit values */

static void probe_superexperts(View *r, cairo_surface_t *s, double w, double h, double sc, int tol, const char *what)
{
    double x, y, x0, x1, y0, y1;
    if (!MT_CHECK(find_point(r, w, h, any_cell, NULL, &x, &y), "%s: the hit test finds a cell", what)) return;
    bounds(r, w, h, x, y, &x0, &x1, &y0, &y1);
    double cw = x1 - x0, ch = y1 - y0;
    MsViewHit hh;
    hit(r, w, h, x, y, &hh);
    /* the grid's top left: rows are blocks 0..3, columns experts 0..7 */
    double gx = x0 - hh.col * cw, gy = y0 - hh.row * ch;
    /* every cell: the hit at its centre is that cell; its colour is its value's */
    int bad = 0, n = 0, missing = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (int pass = 0; pass < 2; pass++)
        for (int row = 0; row < 4; row++)
            for (int e = 0; e < 8; e++) {
                double cx = gx + (e + 0.5) * cw, cy = gy + (row + 0.5) * ch;
                if (!hit(r, w, h, cx, cy, &hh) || hh.kind != MS_HIT_CELL || hh.layer != row || hh.expert != e) {
                    if (pass == 0) {
                        bad++;
                        mt_diag("%s: no cell (%d, %d) at %.1f,%.1f", what, row, e, cx, cy);
                    }
                    continue;
                }
                if (pass == 0) {
                    if (hh.value > 0) lo = fmin(lo, log10(hh.value)), hi = fmax(hi, log10(hh.value));
                    if (row == 1 && e == 3)
                        MT_CHECK(strstr(hh.text, "super expert #1") && strstr(hh.text, "output channel 60"),
                                 "%s: the tooltip of (1, 3) says super expert #1, output channel 60 (%s)", what, oneline(hh.text));
                    continue;
                }
                MsPlotColorScale sc_ = {MS_CMAP_VIRIDIS, lo, hi};
                MsRgb c = hh.value > 0 ? ms_plot_scale_color(&sc_, log10(hh.value)) : ms_plot_cmap_missing(MS_CMAP_VIRIDIS);
                /* block 3 is past the rule's layers (round(0.75 x 4) = 3): washed in the legend's grey at 70 % */
                if (row >= 3) c = (MsRgb){0.3 * c.r + 0.7 * 0.42, 0.3 * c.g + 0.7 * 0.42, 0.3 * c.b + 0.7 * 0.42};
                uint32_t want = pc_rgb24(c);
                missing += !(hh.value > 0);
                double px = cx - cw * 0.3, py = cy - ch * 0.3;   /* off the outline and the label */
                uint32_t got = pixel(s, sc, px, py);
                n++;
                if (pc_chan_diff(got, want) > tol) {
                    bad++;
                    mt_diag("%s: cell (%d, %d) value %g is %06x, want %06x", what, row, e, hh.value, got, want);
                }
            }
    se_lo = lo;
    se_hi = hi;
    MT_CHECK(bad == 0 && n == 32, "%s: 32 cells hit where drawn, each in the viridis colour of log10 of its value, "
             "block 3 washed grey as the legend's 'excluded' (%d never routed)",
             what, missing);
    double sx = gx + 3 * cw, sy = gy + 1 * ch;
    uint32_t top = pixel(s, sc, sx + cw * 0.2, sy + ch * 0.2), edge = pixel(s, sc, sx + 0.6 / sc, sy + ch / 2);
    MT_CHECK(pc_chan_diff(top, pc_rgb24(ms_plot_cmap_at(MS_CMAP_VIRIDIS, 1))) <= tol,
             "%s: the planted super expert (1, 3) is the top of the map (%06x)", what, top);
    MT_CHECK(pc_chan_diff(edge, pc_rgb24((MsRgb){0.85, 0.10, 0.10})) <= tol + 2, "%s: and outlined in red (%06x)", what, edge);
}

static void test_superexperts(const char *db)
{
    MsViewParams p;
    ms_view_params_init(&p);
    View r;
    if (!view_open(&r, "superexperts", db, &p)) return;
    static const char *const texts[] = {"Super experts", "Layer (block)", "Expert", "log\xE2\x82\x81\xE2\x82\x80 max |down-proj output|",
                                        "channel 60|ch 60", "super expert",
                                        "blocks \xE2\x89\xA5 3 excluded", NULL};
    check_files(&r, "superexperts", texts, probe_superexperts);
    MT_CHECK(se_hi - se_lo > 1, "superexperts: the planted maximum is over 10x the smallest (log range %.2f)", se_hi - se_lo);
    check_layout(&r, "superexperts");
    MsViewHit hh;
    MT_CHECK(!hit(&r, 1000, 650, 2, 2, &hh) && hh.kind == MS_HIT_NONE, "superexperts: nothing is hit in the corner");
    /* 4 blocks: the rule considers blocks below round(0.75 x 4) = 3 only */
    int le3[2] = {3, 3};
    double x3, y3;
    bool got3 = find_cell(&r, 1000, 650, is_cell, le3, &x3, &y3) && hit(&r, 1000, 650, x3, y3, &hh);
    MT_CHECK(got3 && strstr(hh.text, "not a candidate: the rule considers blocks below 3 only"),
             "superexperts: a block-3 cell says it is outside the rule's layers (%s)", got3 ? oneline(hh.text) : "no cell");
    /* the stored tables give the same figure as the computation */
    char copy[600], a[600], b[600];
    snprintf(copy, sizeof copy, "%s/se-stored.db", T);
    snprintf(a, sizeof a, "%s/se-computed.png", T);
    snprintf(b, sizeof b, "%s/se-stored.png", T);
    MsError err = {0};
    ms_view_render_file(r.v, r.model, &r.st, a, 800, 500, 1, &err);
    view_close(&r);
    if (sh("cp '%s' '%s' && '%s' analyze superexperts --db '%s' >/dev/null", db, copy, M, copy) &&
        view_open(&r, "superexperts", copy, &p)) {
        ms_view_render_file(r.v, r.model, &r.st, b, 800, 500, 1, &err);
        size_t la, lb;
        char *da = pc_read_file(a, &la), *dbb = pc_read_file(b, &lb);
        MT_CHECK(da && dbb && la == lb && !memcmp(da, dbb, la), "superexperts: from the stored tables, the same figure byte for byte");
        free(da);
        free(dbb);
        view_close(&r);
    }
    /* --layers 1-1: one row, still flagged */
    p.layer_lo = p.layer_hi = 1;
    if (view_open(&r, "superexperts", db, &p)) {
        int le[2] = {1, 3};
        double x, y;
        MT_CHECK(find_cell(&r, 800, 400, is_cell, le, &x, &y), "superexperts --layers 1-1: the planted cell is there");
        int other = 0, cells = 0;
        MsViewHit hh;
        for (double yy = 0; yy < 400; yy += 4)
            if (hit(&r, 800, 400, x, yy, &hh) && hh.kind == MS_HIT_CELL) cells++, other += hh.layer != 1;
        MT_CHECK(cells > 10 && other == 0, "superexperts --layers 1-1: block 1 is the only row");
        view_close(&r);
    }
}

/* -------------------------------------------------------------- npmi */

static bool is_digit_cell(const MsViewHit *h, void *user)
{
    (void)user;
    return h->kind == MS_HIT_CELL && h->layer == 2 && h->expert == 5 && strstr(h->text, "class digit,");
}

static void probe_npmi(View *r, cairo_surface_t *s, double w, double h, double sc, int tol, const char *what)
{
    double x, y, x0, x1, y0, y1;
    if (!MT_CHECK(find_point(r, w, h, any_cell, NULL, &x, &y), "%s: the hit test finds a cell", what)) return;
    bounds(r, w, h, x, y, &x0, &x1, &y0, &y1);
    double cw = x1 - x0, ch = y1 - y0;
    MsViewHit hh;
    hit(r, w, h, x, y, &hh);
    double gx = x0 - hh.col * cw, gy = y0 - hh.row * ch;
    /* every cell is hit where drawn and has the colour of its nPMI */
    int n = 0, bad = 0, digit = 0;
    for (int row = 0; row < 64; row++) {
        double cy = gy + (row + 0.5) * ch;
        if (cy >= h || !hit(r, w, h, gx + cw / 2, cy, &hh) || hh.kind != MS_HIT_CELL) break;
        for (int col = 0; col < 256; col++) {
            double cx = gx + (col + 0.5) * cw;
            if (cx >= w || !hit(r, w, h, cx, cy, &hh) || hh.kind != MS_HIT_CELL) break;
            n++;
            if (hh.row != row || hh.col != col) {
                bad++;
                mt_diag("%s: cell (%d, %d) hit as (%lld, %lld)", what, row, col, (long long)hh.row, (long long)hh.col);
            }
            uint32_t want = isnan(hh.value) ? pc_rgb24(ms_plot_cmap_missing(MS_CMAP_BALANCE))
                                            : pc_rgb24(ms_plot_cmap_signed(MS_CMAP_BALANCE, hh.value, 1));
            uint32_t at = pixel(s, sc, cx - cw * 0.3, cy - ch * 0.3);
            if (pc_chan_diff(at, want) > tol) {
                bad++;
                mt_diag("%s: %s: %06x, want %06x", what, oneline(hh.text), at, want);
            }
            if (is_digit_cell(&hh, NULL)) {
                digit++;
                MT_CHECK(hh.value == 1 && strstr(hh.text, "nPMI 1.0000") &&
                             pc_chan_diff(at, pc_rgb24(ms_plot_cmap_signed(MS_CMAP_BALANCE, 1, 1))) <= tol,
                         "%s: (digit, 2:5) has nPMI 1, drawn in the map's strongest red (%06x; %s)", what, at, oneline(hh.text));
            }
        }
    }
    MT_CHECK(n >= 8 && bad == 0 && digit == 1, "%s: %d cells hit where drawn, each in the colour of its nPMI", what, n);
}

static void test_npmi(const char *db)
{
    MsViewParams p;
    ms_view_params_init(&p);
    p.classes = "text";
    View r;
    if (!view_open(&r, "npmi", db, &p)) return;
    static const char *const texts[] = {"nPMI", "Token-text class", "Expert (block:expert)", "digit", "!2:5", "!1.00", NULL};
    check_files(&r, "npmi", texts, probe_npmi);
    check_layout(&r, "npmi");
    view_close(&r);
    p.top = 1;
    p.classes = NULL;
    if (view_open(&r, "npmi", db, &p)) {
        double x, y;
        MT_CHECK(find_cell(&r, 900, 500, is_digit_cell, NULL, &x, &y), "npmi --top 1: the digit row's one expert is 2:5");
        view_close(&r);
    }
}

/* ----------------------------------------------------------- compare */

static bool is_kl(const MsViewHit *h, void *user)
{
    (void)user;
    return h->kind == MS_HIT_TOKEN && h->row == 0;
}

static bool is_layer0(const MsViewHit *h, void *user)
{
    (void)user;
    return h->kind == MS_HIT_LAYER && h->layer == 0;
}

static bool is_layer1(const MsViewHit *h, void *user)
{
    (void)user;
    return h->kind == MS_HIT_LAYER && h->layer == 1;
}

static void probe_compare(View *r, cairo_surface_t *s, double w, double h, double sc, int tol, const char *what)
{
    double x, y, x0, x1, y0, y1;
    if (!MT_CHECK(find_point(r, w, h, is_kl, NULL, &x, &y), "%s: the hit test finds the KL strip", what)) return;
    bounds(r, w, h, x, y, &x0, &x1, &y0, &y1);
    MsViewHit hh;
    hit(r, w, h, x, y, &hh);
    double cw = x1 - x0, top = y0;
    x0 -= hh.pos * cw;   /* position 0 */
    /* pass 1: the positions and the largest KL; pass 2: colours */
    double kmax = 0;
    int n = 0, bad = 0, differ = 0, agree = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int p = 0; p < 4096; p++) {
            double cx = x0 + (p + 0.5) * cw;
            if (cx >= w || !hit(r, w, h, cx, top + 1, &hh) || hh.kind != MS_HIT_TOKEN) break;
            if (hh.pos != p) {
                bad++;
                mt_diag("%s: position %d hit as %d", what, p, hh.pos);
                break;
            }
            if (pass == 0) {
                kmax = fmax(kmax, hh.value);
                n++;
                continue;
            }
            MsPlotColorScale scale = {MS_CMAP_VIRIDIS, 0, kmax > 0 ? kmax : 1};
            uint32_t want = pc_rgb24(ms_plot_scale_color(&scale, hh.value)), got = pixel(s, sc, cx, top + 1);
            if (pc_chan_diff(got, want) > tol) {
                bad++;
                mt_diag("%s: position %d KL %g is %06x, want %06x", what, p, hh.value, got, want);
            }
            /* the greedy row, at the bottom of the strip */
            MsViewHit gh;
            double gy = y1 + (y1 - y0) / 6;   /* the greedy row: a third of the KL row's height below it */
            bool in_row = hit(r, w, h, cx, gy, &gh) && gh.kind == MS_HIT_TOKEN && gh.pos == p && gh.row == 3;
            bool d = strstr(hh.text, "(differ)") != NULL;
            uint32_t g = pixel(s, sc, cx, gy), gw = d ? pc_rgb24((MsRgb){0.85, 0.10, 0.10}) : pc_rgb24((MsRgb){0.95, 0.95, 0.95});
            if (!in_row || pc_chan_diff(g, gw) > tol) {
                bad++;
                mt_diag("%s: greedy row at position %d: %s %06x, want %06x", what, p, in_row ? "hit" : "no hit", g, gw);
            }
            differ += d;
            agree += !d;
            if (p == 3 && !strstr(hh.text, "KL(baseline \xE2\x80\x96 intervened)")) bad++;
        }
    MT_CHECK(n > 20 && bad == 0, "%s: %d positions hit where drawn, KL in viridis, greedy row red exactly where the choices differ (%d) and grey elsewhere (%d)",
             what, n, differ, agree);
    MT_CHECK(differ > 0, "%s: silencing 1:3 changes some greedy choices", what);
    /* routing shift: block 0 is upstream of the intervention */
    double lx, ly;
    if (find_point(r, w, h, is_layer0, NULL, &lx, &ly)) {
        hit(r, w, h, lx, ly, &hh);
        MT_CHECK(strstr(hh.text, "changed at 0.0 % of positions") != NULL, "%s: block 0's expert set never changes (%s)", what, oneline(hh.text));
    } else {
        MT_CHECK(false, "%s: the routing-shift panel has block 0", what);
    }
    if (find_point(r, w, h, is_layer1, NULL, &lx, &ly)) {
        hit(r, w, h, lx, ly, &hh);
        MT_CHECK(!strstr(hh.text, "changed at 0.0 %"), "%s: block 1's does (%s)", what, oneline(hh.text));
    }
}

static void test_compare(const char *db)
{
    MsViewParams p;
    ms_view_params_init(&p);
    View r;
    if (!view_open(&r, "compare", db, &p)) return;
    /* a piece of the prompt as the strip writes it (spaces as U+2423) */
    char piece[256] = "";
    MsError err = {0};
    MsTraceDb *d = ms_trace_open(db, MS_TRACE_READ, &err);
    MsTraceCursor *c = d ? ms_trace_tokens(d, 1, ms_trace_prompt_lookup(d, 1, 0, &err), &err) : NULL;
    MsTraceToken tk;
    for (int i = 0; c && ms_trace_tokens_next(c, &tk, &err) == 1;)
        if (tk.pos == 2 && i++ == 0) {
            char *e = ms_plot_token_escape(tk.piece, tk.piece_len, MS_PLOT_ESC_SPACE);
            snprintf(piece, sizeof piece, "%s", e ? e : "");
            free(e);
        }
    ms_trace_cursor_free(c);
    ms_trace_close(d);
    const char *texts[] = {"Baseline vs intervened", "silence 1:3", "Token position", "KL (nats)", "Continuations",
                           "baseline", "intervened", "Layer (block)", "Share / overlap", piece, NULL};
    memmove(piece + 1, piece, strlen(piece) + 1);
    piece[0] = '!';
    check_files(&r, "compare", texts, probe_compare);
    check_layout(&r, "compare");
    view_close(&r);
    p.prompt = 3;
    p.run = 2;
    p.baseline = 1;
    if (view_open(&r, "compare", db, &p)) {
        MsViewHit hh;
        double x, y;
        MT_CHECK(find_point(&r, 900, 600, is_kl, NULL, &x, &y) && hit(&r, 900, 600, x, y, &hh) && hh.prompt == 3,
                 "compare --prompt 3 --run 2 --baseline 1: the strip is prompt 3's");
        view_close(&r);
    }
}

/* ------------------------------------------------------------- sweep */

static json_t *sweep_json;

static bool is_row(const MsViewHit *h, void *user)
{
    (void)user;
    return h->kind == MS_HIT_ITEM && h->row == 0 && h->col == 0;
}

static void probe_sweep(View *r, cairo_surface_t *s, double w, double h, double sc, int tol, const char *what)
{
    (void)tol;
    double x, y, x0, x1, y0, y1;
    if (!MT_CHECK(find_point(r, w, h, is_row, NULL, &x, &y), "%s: the hit test finds the first row", what)) return;
    bounds(r, w, h, x, y, &x0, &x1, &y0, &y1);
    double rh = y1 - y0;
    uint32_t bar = pc_rgb24((MsRgb){0.27, 0.47, 0.75});
    MsViewHit hh;
    int rows = 0, bad = 0;
    double len1 = 0, kl1 = 0, zero = -1;
    for (int i = 0; i < 64; i++) {
        double cy = y0 + (i + 0.5) * rh;
        if (cy >= h || !hit(r, w, h, x, cy, &hh) || hh.kind != MS_HIT_ITEM) break;
        rows++;
        char want[64];
        snprintf(want, sizeof want, "rank %d: ", i + 1);
        if (strncmp(hh.text, want, strlen(want))) {
            bad++;
            mt_diag("%s: row %d is '%s'", what, i, oneline(hh.text));
        }
        /* the bar: the run of bar-coloured pixels along the row's centre line */
        int first = -1, last = -1;
        for (int px = (int)(x0 * sc); px < (int)(x1 * sc); px++)
            if (pc_chan_diff(pixel(s, 1, px, cy * sc), bar) <= 3) {
                if (first < 0) first = px;
                last = px;
            }
        if (i == 0) {
            zero = first;
            len1 = last - first + 1;
            kl1 = hh.value;
        } else if (kl1 > 0 && last >= 0) {
            double len = last - zero + 1, exp_len = len1 * hh.value / kl1;
            if (fabs(len - exp_len) > 2.5 * sc) {
                bad++;
                mt_diag("%s: row %d bar %.0f px, want %.1f (KL %g of %g)", what, i, len, exp_len, hh.value, kl1);
            }
        }
    }
    size_t n_cand = 0, i;
    json_t *row;
    json_array_foreach(json_object_get(sweep_json, "sets"), i, row)
        n_cand += !strcmp(json_string_value(json_object_get(row, "kind")), "candidate");
    MT_CHECK(rows == (int)n_cand && bad == 0 && len1 > 10 * sc,
             "%s: %d rows in rank order, each hit where drawn, bars as long as their mean KL", what, rows);
}

static void test_sweep(const char *db)
{
    /* the reader against what the sweep printed */
    MsError err = {0};
    MsTraceDb *d = ms_trace_open(db, MS_TRACE_READ, &err);
    MsSweepRows sr;
    int rc = d ? ms_trace_sweep_rows(d, 0, &sr, &err) : err.code;
    json_t *rows = json_object_get(sweep_json, "sets");
    int same = 0;
    size_t i;
    json_t *row;
    if (rc == 0)
        json_array_foreach(rows, i, row) {
            if ((int)i >= sr.n_rows) break;
            const MsSweepRow *q = &sr.rows[i];
            double kl = json_number_value(json_object_get(row, "kl_mean")), z = json_number_value(json_object_get(row, "z_kl"));
            json_t *jr = json_object_get(row, "rank");
            bool ok = !strcmp(q->label, json_string_value(json_object_get(row, "label"))) &&
                      !strcmp(q->kind, json_string_value(json_object_get(row, "kind"))) && q->kl_mean == kl &&
                      (json_is_null(json_object_get(row, "z_kl")) ? isnan(q->z_kl) : q->z_kl == z) &&
                      q->rank == (json_is_integer(jr) ? (int)json_integer_value(jr) : 0);
            same += ok;
            if (!ok) mt_diag("sweep row %zu differs: %s", i, q->label);
        }
    MT_CHECK(rc == 0 && sr.n_rows == (int)json_array_size(rows) && same == sr.n_rows && sr.sweep_id == 1 && sr.n_layer == 4 &&
                 sr.n_expert == 8,
             "ms_trace_sweep_rows: the %d rows `moescope sweep --format json` printed, field for field (%s)", sr.n_rows,
             rc ? err.msg : "ok");
    if (rc == 0) ms_trace_sweep_rows_clear(&sr);
    MT_CHECK(ms_trace_sweep_rows(d, 5, &sr, &err) == MS_ENOTFOUND && strstr(err.msg, "no sweep 5"),
             "ms_trace_sweep_rows of a missing sweep: MS_ENOTFOUND (%s)", err.msg);
    ms_trace_close(d);

    MsViewParams p;
    ms_view_params_init(&p);
    View r;
    if (!view_open(&r, "sweep", db, &p)) return;
    static const char *const texts[] = {"Sweep 1", "Mean KL (nats)", "\xCE\x94 perplexity", "Candidate set", "silence 1:0",
                                        "silence 1:7", "random controls", "z ", NULL};
    check_files(&r, "sweep", texts, probe_sweep);
    check_layout(&r, "sweep");
    view_close(&r);
    /* controls that do not vary give no z-scores (NULL in the table): the
     * key says so instead of naming numbers that are not drawn */
    char nz[600], svg[600];
    snprintf(nz, sizeof nz, "%s/nz.db", T);
    snprintf(svg, sizeof svg, "%s/nz.svg", T);
    char *words = NULL;
    if (have_python &&
        sh("python3 -c \"import shutil, sqlite3, sys; shutil.copy(sys.argv[1], sys.argv[2]); c = sqlite3.connect(sys.argv[2]); "
           "c.execute('UPDATE sweep_candidate SET z_kl = NULL, z_dppl = NULL'); c.commit()\" '%s' '%s'", db, nz) &&
        view_open(&r, "sweep", nz, &p)) {
        MsError e2 = {0};
        bool drawn = ms_view_render_file(r.v, r.model, &r.st, svg, 1000, 650, 1, &e2) == 0 && svg_words(svg, &words);
        MT_CHECK(drawn && strstr(words, "no z-scores: the controls do not vary") && !strstr(words, "z: z-score") &&
                     !strstr(words, "z 1") && !strstr(words, "z \xE2\x88\x92"),
                 "sweep without z-scores: the key says the controls do not vary, and no z is drawn (%s)",
                 drawn ? "drawn" : e2.msg);
        free(words);
        view_close(&r);
    }
    /* a set of four experts (as --from-analysis ... --top 4 ends with) is
     * named whole in a figure as wide as the workbench's view area */
    char lg[600];
    snprintf(lg, sizeof lg, "%s/lg.db", T);
    if (have_python &&
        sh("python3 -c \"import shutil, sqlite3, sys; shutil.copy(sys.argv[1], sys.argv[2]); c = sqlite3.connect(sys.argv[2]); "
           "c.execute(\\\"UPDATE sweep_candidate SET label = 'silence 1:5 2:11 2:10 0:13' WHERE rank = 1\\\"); c.commit()\" "
           "'%s' '%s'", db, lg) &&
        view_open(&r, "sweep", lg, &p)) {
        cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 690, 520);
        cairo_t *cr = cairo_create(s);
        MsPlotTextLog log = {0};
        MsError e2 = {0};
        ms_plot_text_log_attach(cr, &log);
        int rc = r.v->draw(cr, 690, 520, r.model, &r.st, &e2);
        ms_plot_text_log_attach(cr, NULL);
        /* the log has each text whole, with the width drawn: an
         * ellipsized label is narrower than the text itself */
        MsPlotText *pt = ms_plot_text_new(&r.st.style);
        double drawn = -1, natural = 0;
        for (size_t i = 0; i < log.n; i++)
            if (!strcmp(log.items[i].text, "silence 1:5 2:11 2:10 0:13")) {
                MsPlotTextSize sz;
                ms_plot_text_measure(pt, log.items[i].role, log.items[i].text, 0, &sz);
                drawn = log.items[i].width;
                natural = sz.width;
            }
        ms_plot_text_free(pt);
        MT_CHECK(rc == 0 && drawn >= natural - 0.5 && natural > 0,
                 "sweep 690x520: a set of four experts is named whole (%.1f of its %.1f px drawn) (%s)", drawn,
                 natural, rc ? e2.msg : "drawn");
        ms_plot_text_log_clear(&log);
        cairo_destroy(cr);
        cairo_surface_destroy(s);
        view_close(&r);
    }
    p.top = 3;
    if (view_open(&r, "sweep", db, &p)) {
        MsViewHit hh;
        int n = 0;
        for (double y = 0; y < 500; y += 2)
            if (hit(&r, 900, 500, 300, y, &hh) && hh.kind == MS_HIT_ITEM && hh.row + 1 > n) n = (int)hh.row + 1;
        MT_CHECK(n == 3, "sweep --top 3: three rows (%d)", n);
        view_close(&r);
    }
}

/* ------------------------------------------------------------- setup */

int main(void)
{
    M = getenv("MOESCOPE");
    if (!M || access(M, X_OK) != 0) mt_skip_all("MOESCOPE does not name the moescope binary");
    T = mt_tmpdir();
    have_pdftoppm = system("command -v pdftoppm >/dev/null 2>&1") == 0;
    have_python = system("command -v python3 >/dev/null 2>&1") == 0;
    MT_CHECK(have_pdftoppm && have_python, "pdftoppm and python3 are installed (poppler-utils, tools/install-deps.sh)");

    const char *shape = "--arch olmoe --layers 4 --embd 64 --heads 4 --experts 8 --used 2 --ff 32 --vocab 512 --type F32";
    char prompts[600], ids[256] = "";
    snprintf(prompts, sizeof prompts, "%s/p.txt", T);
    FILE *f = fopen(prompts, "w");
    fputs("The year 2024 had 366 days and the price rose to 19.99 dollars.\n"
          "Call 555-0142 before 9:30 or write to 12 Main Street.\n"
          "def mean(values): return sum(values) / len(values)\n"
          "The students walked along the river past the old mill.\n"
          "for i in range(10): print(i, i + 1, i + 2)\n"
          "In 1987 the 3 bridges carried 45000 cars, 12 buses and 7 trains a day.\n", f);
    fclose(f);
    bool ok = sh("'%s' synth %s '%s/plain.gguf' >/dev/null", M, shape, T);
    /* the planted super expert runs on "The" and "river" (as tests/planted.sh) */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' tokenize --no-bos '%s/plain.gguf' -- 'The river' | awk '{print $1 \",\" $NF}'", M, T);
    FILE *pp = ok ? popen(cmd, "r") : NULL;
    if (pp) {
        if (!fgets(ids, sizeof ids, pp)) ids[0] = 0;
        ids[strcspn(ids, "\n")] = 0;
        pclose(pp);
    }
    ok = ok && *ids && sh("'%s' synth %s --plant-super 1:3:%s '%s/super.gguf' >/dev/null", M, shape, ids, T) &&
         sh("'%s' trace '%s/super.gguf' --prompts '%s' --db '%s/se.db' --stats -t 1 >/dev/null", M, T, prompts, T) &&
         sh("'%s' synth %s --plant-route digit:2:5 '%s/route.gguf' >/dev/null", M, shape, T) &&
         sh("'%s' trace '%s/route.gguf' --prompts '%s' --db '%s/route.db' -t 1 >/dev/null", M, T, prompts, T) &&
         sh("'%s' experiment '%s/plain.gguf' --prompts '%s' --db '%s/exp.db' --silence 1:3 --gen 6 -t 1 >/dev/null", M, T,
            prompts, T) &&
         sh("'%s' sweep '%s/plain.gguf' --prompts '%s' --db '%s/exp.db' --silence-each 1 --random-controls 4 --seed 3 "
            "--format json -t 1 >'%s/sweep.json'", M, T, prompts, T, T);
    if (!MT_CHECK(ok, "test traces made: planted super expert (--stats), planted route, experiment, sweep")) return mt_done();
    char path[600];
    snprintf(path, sizeof path, "%s/sweep.json", T);
    sweep_json = json_load_file(path, 0, NULL);

    snprintf(path, sizeof path, "%s/se.db", T);
    test_superexperts(path);
    snprintf(path, sizeof path, "%s/route.db", T);
    test_npmi(path);
    snprintf(path, sizeof path, "%s/exp.db", T);
    test_compare(path);
    test_sweep(path);

    json_decref(sweep_json);
    if (getenv("MS_KEEP_TMP")) mt_diag("images kept in %s", T);
    ms_plot_release_caches();
    return mt_done();
}
