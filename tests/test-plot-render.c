/* test-plot-render.c — ui/ drawing checked on pixels and files: heat-map
 * colours at known cells, hit tests against the drawn pixels, pixel-bucket
 * aggregation, PNG/SVG/PDF output (read back by cairo, an XML parser and
 * poppler's pdftoppm), output errors, token text of every script, and figure
 * layouts from 400x300 to 4000x3000 with nothing clipped or overlapping. */
#include "mtest.h"
#include "plotcheck.h"
#include "ms-plot.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>

/* ---- helpers ---- */

/* Pixels that are not (near) white in a region. */
static long ink(cairo_surface_t *s, int x0, int y0, int x1, int y1)
{
    long n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            if (pc_chan_diff(pc_pixel(s, x, y), 0xffffff) > 60) n++;
    return n;
}

static bool file_exists(const char *p) { return access(p, F_OK) == 0; }

/* Entries of a directory (for "no temporary file left behind"). */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    if (!d) return -1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* ---- the demo figure: a small heat map with a frame and a token ---- */

#define DR 3
#define DC 4
#define TOKEN "na\xc3\xafve \xe4\xb8\xad\xe6\x96\x87\n"
#define TOKEN_ESC "na\xc3\xafve \xe4\xb8\xad\xe6\x96\x87\\n"

typedef struct {
    float v[DR * DC];
    MsPlotFrame f;
    MsPlotColorbar cb;
    bool token;
} Demo;

static const char *layer_label(void *user, int64_t i, char *buf, size_t size)
{
    (void)user;
    snprintf(buf, size, "L%lld", (long long)i);
    return buf;
}

static void demo_init(Demo *d)
{
    memset(d, 0, sizeof *d);
    for (int i = 0; i < DR * DC; i++) d->v[i] = (float)i;
    d->v[1 * DC + 2] = NAN;
    d->cb = (MsPlotColorbar){.scale = {MS_CMAP_VIRIDIS, 0, 11}, .title = "load fraction", .show_missing = true};
    d->f = (MsPlotFrame){
        .title = "Expert load",
        .x = {.kind = MS_PLOT_AXIS_CATEGORY, .title = "Token position", .lo = 0, .hi = DC, .count = DC},
        .y = {.kind = MS_PLOT_AXIS_CATEGORY, .title = "Layer", .lo = 0, .hi = DR, .count = DR, .label = layer_label},
        .colorbar = &d->cb,
    };
    d->token = true;
}

static uint32_t demo_expect(const Demo *d, int r, int c) { return pc_rgb24(ms_plot_scale_color(&d->cb.scale, d->v[r * DC + c])); }

static int demo_draw(void *user, cairo_t *cr, double w, double h, MsError *err)
{
    Demo *d = user;
    MsPlotGeom g;
    int rc = ms_plot_layout(&d->f, w, h, &g, err);
    if (rc < 0) return rc;
    ms_plot_draw_back(cr, &d->f, &g);
    MsPlotGridMap m = ms_plot_grid_map(&g, DR, DC);
    MsPlotHeatmap hm = {.rows = DR, .cols = DC, .values = d->v, .scale = d->cb.scale};
    if ((rc = ms_plot_heatmap_draw(cr, &m, &hm, err)) < 0) return rc;
    ms_plot_draw_axes(cr, &d->f, &g);
    if (d->token) {
        MsPlotText *t = ms_plot_text_new(NULL);
        ms_plot_token_draw(t, cr, TOKEN, strlen(TOKEN), 0, 0, g.plot.x + 4, g.plot.y + 4, (MsRgb){1, 1, 1});
        ms_plot_text_free(t);
    }
    return 0;
}

static int fail_draw(void *user, cairo_t *cr, double w, double h, MsError *err)
{
    (void)user; (void)cr; (void)w; (void)h;
    return ms_error_set(err, MS_EINVAL, "view has no data");
}

/* Check every cell centre of the demo heat map in image s (drawn at w x h, scale). */
static void probe_cells(const char *what, cairo_surface_t *s, Demo *d, double w, double h, double scale, int tol)
{
    MsPlotGeom g;
    MsError err = {0};
    ms_plot_layout(&d->f, w, h, &g, &err);
    MsPlotGridMap m = ms_plot_grid_map(&g, DR, DC);
    int bad = 0, worst = 0;
    for (int r = 0; r < DR; r++)
        for (int c = 0; c < DC; c++) {
            MsPlotRect cr;
            ms_plot_grid_cell_rect(&m, r, c, &cr);
            int px = (int)floor((cr.x + cr.w * 0.75) * scale), py = (int)floor((cr.y + cr.h * 0.75) * scale);
            uint32_t want = isnan(d->v[r * DC + c]) ? pc_rgb24(ms_plot_cmap_missing(MS_CMAP_VIRIDIS)) : demo_expect(d, r, c);
            int diff = pc_chan_diff(pc_pixel(s, px, py), want);
            worst = diff > worst ? diff : worst;
            if (diff > tol) {
                bad++;
                mt_diag("%s: cell (%d,%d) at %d,%d is %06x, want %06x", what, r, c, px, py, pc_pixel(s, px, py), want);
            }
        }
    MT_CHECK(bad == 0, "%s: all %d cells (one NaN) have their colour (worst channel diff %d)", what, DR * DC, worst);
}

static void test_probes_and_hits(void)
{
    static const double sizes[2][3] = {{400, 300, 1}, {700, 450, 2}};
    for (int k = 0; k < 2; k++) {
        double w = sizes[k][0], h = sizes[k][1], sc = sizes[k][2];
        Demo d;
        demo_init(&d);
        d.token = false;
        MsError err = {0};
        cairo_surface_t *s = ms_plot_render_image(w, h, sc, demo_draw, &d, &err);
        MT_CHECK(s && cairo_image_surface_get_width(s) == (int)(w * sc), "render %gx%g at scale %g: %s", w, h, sc,
                 s ? "ok" : err.msg);
        if (!s) continue;
        char what[64];
        snprintf(what, sizeof what, "%gx%g@%g", w, h, sc);
        probe_cells(what, s, &d, w, h, sc, 1);

        /* hit testing returns the cell drawn at the point */
        MsPlotGeom g;
        ms_plot_layout(&d.f, w, h, &g, &err);
        MsPlotGridMap m = ms_plot_grid_map(&g, DR, DC);
        uint64_t rnd = 7;
        int tried = 0, agree = 0;
        for (int i = 0; i < 2000; i++) {
            rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
            double x = g.plot.x + (double)(rnd >> 40) / (1 << 24) * g.plot.w;
            rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
            double y = g.plot.y + (double)(rnd >> 40) / (1 << 24) * g.plot.h;
            int64_t r, c;
            if (!ms_plot_grid_hit(&m, x, y, &r, &c)) continue;
            MsPlotRect cr;
            ms_plot_grid_cell_rect(&m, r, c, &cr);
            /* stay off the cell edges, where a device pixel straddles two cells */
            if (x - cr.x < 1.5 || cr.x + cr.w - x < 1.5 || y - cr.y < 1.5 || cr.y + cr.h - y < 1.5) continue;
            tried++;
            uint32_t want = isnan(d.v[r * DC + c]) ? pc_rgb24(ms_plot_cmap_missing(MS_CMAP_VIRIDIS)) : demo_expect(&d, (int)r, (int)c);
            if (pc_chan_diff(pc_pixel(s, (int)(x * sc), (int)(y * sc)), want) <= 1) agree++;
        }
        MT_CHECK(tried > 1000 && agree == tried, "%s: the cell hit at %d random points is the cell drawn there (%d agree)",
                 what, tried, agree);
        int64_t r, c;
        MT_CHECK(!ms_plot_grid_hit(&m, g.plot.x - 1, g.plot.y + 5, &r, &c) &&
                 !ms_plot_grid_hit(&m, g.colorbar.x + 2, g.colorbar.y + 2, &r, &c), "%s: no cell outside the plot area", what);
        if (k == 1) {
            char path[512];
            snprintf(path, sizeof path, "%s/heatmap-probe.png", mt_tmpdir());
            cairo_surface_write_to_png(s, path);
        }
        cairo_surface_destroy(s);
    }
}

/* ---- aggregation ---- */

typedef struct {
    MsPlotGridMap m;
    MsPlotHeatmap h;
} Raw;

static int raw_draw(void *user, cairo_t *cr, double w, double h, MsError *err)
{
    Raw *r = user;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    r->m.rect = (MsPlotRect){0, 0, w, h};
    return ms_plot_heatmap_draw(cr, &r->m, &r->h, err);
}

/* Every pixel of an image equals want (within tol). */
static bool all_pixels(cairo_surface_t *s, uint32_t want, int tol, int *bad_x)
{
    for (int y = 0; y < cairo_image_surface_get_height(s); y++)
        for (int x = 0; x < cairo_image_surface_get_width(s); x++)
            if (pc_chan_diff(pc_pixel(s, x, y), want) > tol) {
                *bad_x = x;
                return false;
            }
    return true;
}

static cairo_surface_t *raw_render(Raw *r, double w, double h)
{
    MsError err = {0};
    cairo_surface_t *s = ms_plot_render_image(w, h, 1, raw_draw, r, &err);
    if (!s) mt_diag("render failed: %s", err.msg);
    return s;
}

static void test_aggregation(void)
{
    const int64_t n = 20000;
    float *v = malloc((size_t)(2 * n) * sizeof *v);
    int32_t *ids = malloc((size_t)(2 * n) * sizeof *ids);
    MsPlotColorScale sc = {MS_CMAP_VIRIDIS, 0, 1};
    int bad = -1;

    for (int64_t i = 0; i < 2 * n; i++) v[i] = (float)(i % 2);
    Raw r = {.m = {.rows = 2, .cols = n, .row0 = 0, .row1 = 2, .col0 = 0, .col1 = (double)n},
             .h = {.rows = 2, .cols = n, .values = v, .scale = sc}};
    cairo_surface_t *s = raw_render(&r, 400, 40);
    MT_CHECK(s && all_pixels(s, pc_rgb24(ms_plot_cmap_at(MS_CMAP_VIRIDIS, 0.5)), 1, &bad),
             "20000 alternating 0/1 columns in 400 px: every pixel is the mean colour (0.5), not a skipped sample (bad x %d)", bad);
    cairo_surface_destroy(s);

    /* a single spike: PEAK keeps it, in the bucket that holds its column */
    for (int64_t i = 0; i < 2 * n; i++) v[i] = 0;
    v[12345] = 1;
    r.h.agg = MS_PLOT_AGG_PEAK;
    s = raw_render(&r, 400, 40);
    int spike_px = (int)(12345 * 400 / n);
    uint32_t hi = pc_rgb24(ms_plot_cmap_at(MS_CMAP_VIRIDIS, 1)), lo = pc_rgb24(ms_plot_cmap_at(MS_CMAP_VIRIDIS, 0));
    int n_hi = 0;
    for (int x = 0; s && x < 400; x++) n_hi += pc_chan_diff(pc_pixel(s, x, 5), hi) <= 1;
    MT_CHECK(s && n_hi == 1 && pc_chan_diff(pc_pixel(s, spike_px, 5), hi) <= 1 && pc_chan_diff(pc_pixel(s, spike_px, 25), lo) <= 1,
             "PEAK: one spike among 20000 columns shows in exactly its pixel (x %d) and row", spike_px);
    cairo_surface_destroy(s);
    r.h.agg = MS_PLOT_AGG_MEAN;
    s = raw_render(&r, 400, 40);
    MT_CHECK(s && pc_chan_diff(pc_pixel(s, spike_px, 5), lo) > 0 && pc_chan_diff(pc_pixel(s, spike_px, 5), hi) > 30,
             "MEAN: the spike's bucket shows its mean (1/50), between the ends");
    cairo_surface_destroy(s);

    /* NaN: ignored in a mean; a bucket of only NaN is missing */
    for (int64_t i = 0; i < 2 * n; i++) v[i] = (i % 2) ? NAN : 1.0f;
    for (int64_t i = n; i < 2 * n; i++) v[i] = NAN;
    s = raw_render(&r, 400, 40);
    MT_CHECK(s && pc_chan_diff(pc_pixel(s, 200, 5), hi) <= 1 &&
             pc_chan_diff(pc_pixel(s, 200, 30), pc_rgb24(ms_plot_cmap_missing(MS_CMAP_VIRIDIS))) <= 1,
             "NaN cells are left out of the mean; an all-NaN bucket is the missing grey");
    cairo_surface_destroy(s);

    /* categories: the mode, ties to the smaller id, ids beyond the counting table */
    for (int64_t i = 0; i < n; i++) ids[i] = (i % 3 == 2) ? 5 : 3;
    for (int64_t i = n; i < 2 * n; i++) ids[i] = (i % 2) ? 9 : 2;
    Raw rc = {.m = r.m, .h = {.rows = 2, .cols = n, .categories = ids}};
    s = raw_render(&rc, 400, 40);
    bad = -1;
    bool row0 = true, row1 = true;
    for (int x = 0; s && x < 400; x++) {
        if (pc_chan_diff(pc_pixel(s, x, 5), pc_rgb24(ms_plot_category_color(3))) > 0) row0 = false;
        if (pc_chan_diff(pc_pixel(s, x, 30), pc_rgb24(ms_plot_category_color(2))) > 0) row1 = false;
    }
    MT_CHECK(s && row0, "categories 3,3,5 repeated: every pixel shows the mode, expert 3");
    MT_CHECK(s && row1, "categories 2,9 alternating (a tie): the smaller id, 2");
    cairo_surface_destroy(s);
    for (int64_t i = 0; i < n; i++) ids[i] = (i % 3 == 2) ? 5 : 70000;
    s = raw_render(&rc, 400, 40);
    row0 = true;
    for (int x = 0; s && x < 400; x++)
        if (pc_chan_diff(pc_pixel(s, x, 5), pc_rgb24(ms_plot_category_color(70000))) > 0) row0 = false;
    MT_CHECK(s && row0, "large ids (70000) aggregate too");
    cairo_surface_destroy(s);
    MsRgb pal[4] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {0, 0, 0}};
    for (int64_t i = 0; i < 2 * n; i++) ids[i] = i < n ? 1 : -1;
    rc.h.palette = pal;
    rc.h.n_palette = 4;
    s = raw_render(&rc, 400, 40);
    MT_CHECK(s && pc_chan_diff(pc_pixel(s, 10, 5), 0x00ff00) == 0 &&
             pc_chan_diff(pc_pixel(s, 10, 30), pc_rgb24(ms_plot_missing_color())) == 0, "a given palette is used; id < 0 is missing");
    cairo_surface_destroy(s);

    /* rows aggregate like columns */
    for (int64_t i = 0; i < 2 * n; i++) v[i] = (float)((i / 2) % 2);
    Raw rr = {.m = {.rows = n, .cols = 2, .row0 = 0, .row1 = (double)n, .col0 = 0, .col1 = 2},
              .h = {.rows = n, .cols = 2, .values = v, .scale = sc}};
    s = raw_render(&rr, 40, 400);
    MT_CHECK(s && all_pixels(s, pc_rgb24(ms_plot_cmap_at(MS_CMAP_VIRIDIS, 0.5)), 1, &bad),
             "20000 alternating rows in 400 px: the mean colour everywhere");
    cairo_surface_destroy(s);

    /* a zoomed window shows exactly its columns */
    for (int64_t i = 0; i < 1000; i++) v[i] = (float)i;
    Raw rz = {.m = {.rows = 1, .cols = 1000, .row0 = 0, .row1 = 1, .col0 = 100, .col1 = 200},
              .h = {.rows = 1, .cols = 1000, .values = v, .scale = {MS_CMAP_VIRIDIS, 0, 999}}};
    s = raw_render(&rz, 400, 20);
    bool zoom_ok = s != NULL;
    for (int x = 2; s && x < 400; x += 4)
        if (pc_chan_diff(pc_pixel(s, x, 10), pc_rgb24(ms_plot_cmap_value(MS_CMAP_VIRIDIS, 100 + x / 4, 0, 999))) > 1) {
            zoom_ok = false;
            mt_diag("zoom: x %d shows %06x", x, pc_pixel(s, x, 10));
            break;
        }
    MT_CHECK(zoom_ok, "window [100,200) of 1000 columns at 4 px per cell: pixel x shows column 100 + x/4");
    cairo_surface_destroy(s);
    /* panned by half a cell, and flipped */
    rz.m.col0 = 100.5;
    rz.m.col1 = 200.5;
    s = raw_render(&rz, 400, 20);
    zoom_ok = s != NULL;
    for (int x = 1; s && x < 400; x += 4)
        if (pc_chan_diff(pc_pixel(s, x, 10), pc_rgb24(ms_plot_cmap_value(MS_CMAP_VIRIDIS, 100 + x / 4, 0, 999))) > 1 ||
            pc_chan_diff(pc_pixel(s, x + 2, 10), pc_rgb24(ms_plot_cmap_value(MS_CMAP_VIRIDIS, 101 + x / 4, 0, 999))) > 1) {
            zoom_ok = false;
            mt_diag("pan: x %d shows %06x", x, pc_pixel(s, x, 10));
            break;
        }
    MT_CHECK(zoom_ok, "window [100.5,200.5): the first pixels show the second half of column 100, the rest follow");
    cairo_surface_destroy(s);
    rz.m.col0 = 100;
    rz.m.col1 = 200;
    rz.m.flip_cols = true;
    s = raw_render(&rz, 400, 20);
    zoom_ok = s != NULL;
    for (int x = 2; s && x < 400; x += 4) {
        int64_t hr, hc;
        if (pc_chan_diff(pc_pixel(s, x, 10), pc_rgb24(ms_plot_cmap_value(MS_CMAP_VIRIDIS, 199 - x / 4, 0, 999))) > 1 ||
            !ms_plot_grid_hit(&rz.m, x + 0.5, 10, &hr, &hc) || hc != 199 - x / 4) {
            zoom_ok = false;
            mt_diag("flip: x %d shows %06x", x, pc_pixel(s, x, 10));
            break;
        }
    }
    MT_CHECK(zoom_ok, "flipped columns: pixel x shows (and hits) column 199 - x/4");
    cairo_surface_destroy(s);

    MsError err = {0};
    Raw none = {.m = r.m, .h = {.rows = 2, .cols = n}};
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 10, 10);
    cairo_t *cr = cairo_create(img);
    MT_CHECK(ms_plot_heatmap_draw(cr, &none.m, &none.h, &err) == MS_EINVAL && strstr(err.msg, "no data"),
             "heat map without data: MS_EINVAL (%s)", err.msg);
    none.h.values = v;
    none.h.rows = -1;
    MT_CHECK(ms_plot_heatmap_draw(cr, &none.m, &none.h, &err) == MS_EINVAL, "negative size: MS_EINVAL (%s)", err.msg);
    cairo_destroy(cr);
    cairo_surface_destroy(img);
    free(v);
    free(ids);
}

/* ---- file output ---- */

static bool run_ok(const char *cmd)
{
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void test_outputs(void)
{
    static const double sizes[2][3] = {{400, 300, 1}, {1400, 900, 2}};
    const char *tmp = mt_tmpdir();
    bool have_pdftoppm = run_ok("command -v pdftoppm >/dev/null 2>&1");
    bool have_python = run_ok("command -v python3 >/dev/null 2>&1");
    MT_CHECK(have_pdftoppm, "pdftoppm is installed (poppler-utils, tools/install-deps.sh)");
    MT_CHECK(have_python, "python3 is installed (XML check of the SVG)");
    char script[512];
    snprintf(script, sizeof script, "%s/svgtext.py", tmp);
    FILE *f = fopen(script, "w");
    fputs("import sys, xml.etree.ElementTree as ET\n"
          "root = ET.parse(sys.argv[1]).getroot()\n"
          "ns = '{http://www.w3.org/2000/svg}'\n"
          "assert root.tag == ns + 'svg', root.tag\n"
          "out = open(sys.argv[2], 'w', encoding='utf-8')\n"
          "for e in root.iter(ns + 'text'):\n"
          "    out.write((e.text or '') + '\\n')\n"
          "imgs = list(root.iter(ns + 'image'))\n"
          "crisp = [i for i in imgs if 'pixelated' in i.get('style', '')]\n"
          "maxw = max([int(float(i.get('width', '0'))) for i in imgs] + [0])\n"
          "out.write('IMAGES %d CRISP %d MAXW %d\\n' % (len(imgs), len(crisp), maxw))\n", f);
    fclose(f);

    for (int k = 0; k < 2; k++) {
        double w = sizes[k][0], h = sizes[k][1], sc = sizes[k][2];
        int W = (int)(w * sc), H = (int)(h * sc);
        Demo d;
        demo_init(&d);
        char path[512], cmd[2048], out[512];
        MsError err = {0};

        snprintf(path, sizeof path, "%s/fig-%d.png", tmp, k);
        int rc = ms_plot_render_file(path, w, h, sc, demo_draw, &d, &err);
        size_t len = 0;
        char *data = pc_read_file(path, &len);
        MT_CHECK(rc == 0 && data && len > 8 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0, "PNG %dx%d: written with the PNG signature (%s)",
                 W, H, rc ? err.msg : "ok");
        free(data);
        cairo_surface_t *s = cairo_image_surface_create_from_png(path);
        MT_CHECK(cairo_surface_status(s) == CAIRO_STATUS_SUCCESS && cairo_image_surface_get_width(s) == W &&
                 cairo_image_surface_get_height(s) == H, "PNG %dx%d: cairo reads it back at its size", W, H);
        if (cairo_surface_status(s) == CAIRO_STATUS_SUCCESS) {
            MT_CHECK(ink(s, 0, 0, W, H) > W * H / 10, "PNG %dx%d: has a drawing", W, H);
            char what[64];
            snprintf(what, sizeof what, "PNG file %dx%d", W, H);
            probe_cells(what, s, &d, w, h, sc, 1);
        }
        cairo_surface_destroy(s);

        snprintf(path, sizeof path, "%s/fig-%d.svg", tmp, k);
        rc = ms_plot_render_file(path, w, h, sc, demo_draw, &d, &err);
        data = pc_read_file(path, &len);
        MT_CHECK(rc == 0 && data && strncmp(data, "<?xml", 5) == 0, "SVG %dx%d: written, starts with <?xml (%s)", W, H,
                 rc ? err.msg : "ok");
        free(data);
        snprintf(out, sizeof out, "%s/svg-%d.txt", tmp, k);
        snprintf(cmd, sizeof cmd, "python3 '%s' '%s' '%s'", script, path, out);
        bool parsed = have_python && run_ok(cmd);
        char *words = parsed ? pc_read_file(out, NULL) : NULL;
        MT_CHECK(parsed && words, "SVG %dx%d: parses as XML with an <svg> root", W, H);
        if (words) {
            MT_CHECK(strstr(words, "Expert load") && strstr(words, "Token position") && strstr(words, "Layer") &&
                     strstr(words, "load fraction") && strstr(words, "\nL2\n"),
                     "SVG %dx%d: holds the title, axis titles, colour-bar title and a tick label as text", W, H);
            MT_CHECK(strstr(words, TOKEN_ESC) != NULL, "SVG %dx%d: holds the token piece, escaped (\"%s\")", W, H, TOKEN_ESC);
            const char *im = strstr(words, "IMAGES ");
            int n_img = -1, n_crisp = -2, maxw = 0;
            if (im) sscanf(im, "IMAGES %d CRISP %d MAXW %d", &n_img, &n_crisp, &maxw);
            MT_CHECK(n_img >= 1 && n_crisp == n_img, "SVG %dx%d: the heat map is an embedded image marked for scaling without smoothing (%d of %d)",
                     W, H, n_crisp, n_img);
            MT_CHECK(maxw >= W / 2, "SVG %dx%d: its %d columns are blown up to whole-pixel blocks (%d px wide) so smoothing viewers stay sharp",
                     W, H, DC, maxw);
        }
        free(words);

        snprintf(path, sizeof path, "%s/fig-%d.pdf", tmp, k);
        rc = ms_plot_render_file(path, w, h, sc, demo_draw, &d, &err);
        data = pc_read_file(path, &len);
        MT_CHECK(rc == 0 && data && strncmp(data, "%PDF-", 5) == 0, "PDF %dx%d: written, starts with %%PDF- (%s)", W, H,
                 rc ? err.msg : "ok");
        free(data);
        snprintf(out, sizeof out, "%s/pdf-%d", tmp, k);
        snprintf(cmd, sizeof cmd, "pdftoppm -png -r 72 -singlefile '%s' '%s' 2>&1", path, out);
        bool conv = have_pdftoppm && run_ok(cmd);
        strcat(out, ".png");
        s = conv ? cairo_image_surface_create_from_png(out) : NULL;
        bool read = s && cairo_surface_status(s) == CAIRO_STATUS_SUCCESS;
        MT_CHECK(conv && read && abs(cairo_image_surface_get_width(s) - W) <= 1 && abs(cairo_image_surface_get_height(s) - H) <= 1,
                 "PDF %dx%d: pdftoppm converts it to a PNG of the page size", W, H);
        if (read) {
            char what[64];
            snprintf(what, sizeof what, "PDF via pdftoppm %dx%d", W, H);
            probe_cells(what, s, &d, w, h, sc, 3);
        }
        if (s) cairo_surface_destroy(s);
    }
}

static void test_output_errors(void)
{
    const char *tmp = mt_tmpdir();
    char dir[512], path[1024];
    Demo d;
    demo_init(&d);
    MsError err = {0};
    snprintf(dir, sizeof dir, "%s/errs", tmp);
    mkdir(dir, 0755);

    snprintf(path, sizeof path, "%s/fig.bmp", dir);
    MT_CHECK(ms_plot_render_file(path, 400, 300, 1, demo_draw, &d, &err) == MS_EINVAL && strstr(err.msg, "'.bmp'") &&
             strstr(err.msg, path) && !strchr(err.msg, '\n'), "unknown extension: one-line error naming the file and '.bmp' (%s)", err.msg);
    snprintf(path, sizeof path, "%s/figure", dir);
    MT_CHECK(ms_plot_render_file(path, 400, 300, 1, demo_draw, &d, &err) == MS_EINVAL && strstr(err.msg, "no file extension"),
             "no extension: %s", err.msg);
    MT_CHECK(ms_plot_format_from_path("a/b.PDF", NULL) == MS_PLOT_PDF && ms_plot_format_from_path("x.Svg", NULL) == MS_PLOT_SVG &&
             ms_plot_format_from_path(".png", NULL) < 0, "format by extension, any case; a bare dot-file is not one");
    snprintf(path, sizeof path, "%s/fig.png", dir);
    static const double bad_sizes[][3] = {{0, 300, 1}, {-5, 300, 1}, {400, NAN, 1}, {20001, 300, 1}, {400, 300, 0},
                                          {400, 300, INFINITY}, {15000, 15000, 1}, {12000, 100, 2}};
    for (size_t i = 0; i < MS_ARRAY_LEN(bad_sizes); i++) {
        int rc = ms_plot_render_file(path, bad_sizes[i][0], bad_sizes[i][1], bad_sizes[i][2], demo_draw, &d, &err);
        MT_CHECK(rc == MS_EINVAL && !file_exists(path) && !strchr(err.msg, '\n'), "absurd size %gx%g@%g rejected: %s",
                 bad_sizes[i][0], bad_sizes[i][1], bad_sizes[i][2], err.msg);
    }
    MT_CHECK(ms_plot_check_size(MS_PLOT_PDF, 15000, 15000, 1, NULL) == 0 && ms_plot_check_size(MS_PLOT_PNG, 20000, 300, 1, NULL) == 0,
             "large vector pages and 20000 px sides are allowed");

    snprintf(path, sizeof path, "%s/missing-dir/fig.png", dir);
    MT_CHECK(ms_plot_render_file(path, 400, 300, 1, demo_draw, &d, &err) == MS_EIO && strstr(err.msg, path) &&
             strstr(err.msg, "No such file"), "missing directory: %s", err.msg);
    char notdir[600];
    snprintf(notdir, sizeof notdir, "%s/plain-file", dir);
    FILE *f = fopen(notdir, "w");
    fputs("x", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/fig.svg", notdir);
    MT_CHECK(ms_plot_render_file(path, 400, 300, 1, demo_draw, &d, &err) == MS_EIO && strstr(err.msg, "Not a directory"),
             "parent is a file: %s", err.msg);
    snprintf(path, sizeof path, "%s/adir.png", dir);
    mkdir(path, 0755);
    int before = dir_entries(dir);
    MT_CHECK(ms_plot_render_file(path, 400, 300, 1, demo_draw, &d, &err) == MS_EIO && strstr(err.msg, path) &&
             dir_entries(dir) == before, "target is a directory: error, no temporary file left (%s)", err.msg);

    /* a failing draw leaves an existing file untouched and no temporary file */
    snprintf(path, sizeof path, "%s/keep.pdf", dir);
    f = fopen(path, "w");
    fputs("old contents", f);
    fclose(f);
    before = dir_entries(dir);
    int rc = ms_plot_render_file(path, 400, 300, 1, fail_draw, &d, &err);
    char *data = pc_read_file(path, NULL);
    MT_CHECK(rc == MS_EINVAL && strstr(err.msg, "view has no data") && strstr(err.msg, path) && data &&
             strcmp(data, "old contents") == 0 && dir_entries(dir) == before,
             "draw error: reported with the file name, old file kept, nothing left behind (%s)", err.msg);
    free(data);
    static const char *ext[3] = {"png", "svg", "pdf"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/new.%s", dir, ext[i]);
        rc = ms_plot_render_file(path, 400, 300, 1, fail_draw, &d, &err);
        MT_CHECK(rc < 0 && !file_exists(path) && dir_entries(dir) == before, "draw error on .%s: no partial file", ext[i]);
    }
    /* too small a figure is a clear error, not a crash */
    snprintf(path, sizeof path, "%s/tiny.png", dir);
    rc = ms_plot_render_file(path, 60, 40, 1, demo_draw, &d, &err);
    MT_CHECK(rc == MS_EINVAL && strstr(err.msg, "too small") && !file_exists(path), "60x40 figure: %s", err.msg);
    /* a successful write replaces the old file and has the umask's mode */
    snprintf(path, sizeof path, "%s/keep.pdf", dir);
    mode_t old_mask = umask(022);
    rc = ms_plot_render_file(path, 400, 300, 1, demo_draw, &d, &err);
    umask(old_mask);
    struct stat st;
    memset(&st, 0, sizeof st);
    bool have_st = stat(path, &st) == 0;
    data = pc_read_file(path, NULL);
    MT_CHECK(rc == 0 && data && strncmp(data, "%PDF-", 5) == 0 && have_st && (st.st_mode & 0777) == 0644 &&
             dir_entries(dir) == before, "a good render replaces the old file (mode %o), nothing else left", st.st_mode & 0777);
    free(data);
}

/* ---- text ---- */

static int token_draw_fn(void *user, cairo_t *cr, double w, double h, MsError *err)
{
    const char *piece = user;
    (void)w; (void)h; (void)err;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    MsPlotText *t = ms_plot_text_new(NULL);
    ms_plot_token_draw(t, cr, piece, strlen(piece), 0, 0, 10, 10, (MsRgb){0, 0, 0});
    ms_plot_text_free(t);
    return 0;
}

static void test_tokens(void)
{
    /* emoji, CJK, a combining mark, a control character, an invalid byte */
    const char *piece = "\xf0\x9f\x98\x80" "\xe5\xad\x97" "e\xcc\x81" "\x07" "\xff";
    const char *want = "\xf0\x9f\x98\x80" "\xe5\xad\x97" "e\xcc\x81" "\\x07" "\\xFF";
    char *e = ms_plot_token_escape(piece, strlen(piece), 0);
    MT_CHECK(e && strcmp(e, want) == 0, "token with emoji, CJK, combining mark, BEL and 0xFF escapes to \"%s\"", e ? e : "");
    free(e);
    MsPlotText *t = ms_plot_text_new(NULL);
    MsPlotTextSize sz;
    ms_plot_token_measure(t, piece, strlen(piece), 0, 0, &sz);
    MT_CHECK(sz.width > 20 && sz.height > 8 && sz.missing_glyphs == 0, "it measures %.1fx%.1f with no missing glyph (%d)",
             sz.width, sz.height, sz.missing_glyphs);

    MsError err = {0};
    cairo_surface_t *s = ms_plot_render_image(300, 60, 1, token_draw_fn, (void *)piece, &err);
    MT_CHECK(s && ink(s, 0, 0, 300, 60) > 100, "the drawing has ink (%ld px)", s ? ink(s, 0, 0, 300, 60) : 0);
    if (s) {
        char path[512];
        snprintf(path, sizeof path, "%s/token.png", mt_tmpdir());
        cairo_surface_write_to_png(s, path);
        cairo_surface_destroy(s);
    }
    /* every part alone, and a few more scripts: drawn, none without a font */
    static const struct { const char *name, *text, *pkg; } parts[] = {
        {"emoji", "\xf0\x9f\x98\x80", "fonts-noto-color-emoji"},
        {"CJK", "\xe5\xad\x97\xe6\xbc\xa2", "fonts-noto-cjk"},
        {"Japanese kana", "\xe3\x81\x8b\xe3\x81\xaa", "fonts-noto-cjk"},
        {"Korean", "\xed\x95\x9c\xea\xb8\x80", "fonts-noto-cjk"},
        {"Arabic", "\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7", "fonts-noto-core"},
        {"Devanagari", "\xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d\xe0\xa4\xa4\xe0\xa5\x87", "fonts-noto-core"},
        {"Thai", "\xe0\xb8\xaa\xe0\xb8\xa7\xe0\xb8\xb1\xe0\xb8\xaa", "fonts-noto-core"},
        {"lone combining mark", "\xcc\x81", "fonts-dejavu-core"},
        {"control", "\x07", "fonts-dejavu-core"},
        {"invalid byte", "\xff", "fonts-dejavu-core"},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(parts); i++) {
        ms_plot_token_measure(t, parts[i].text, strlen(parts[i].text), 0, 0, &sz);
        s = ms_plot_render_image(200, 50, 1, token_draw_fn, (void *)parts[i].text, &err);
        long n = s ? ink(s, 0, 0, 200, 50) : 0;
        MT_CHECK(sz.missing_glyphs == 0 && n > 10, "%s: drawn with a real font (%ld px of ink, %d missing glyphs; needs %s)",
                 parts[i].name, n, sz.missing_glyphs, parts[i].pkg);
        if (i == 0 && s) {
            /* colour emoji: some strongly coloured pixels */
            int coloured = 0;
            for (int y = 0; y < 50; y++)
                for (int x = 0; x < 200; x++) {
                    uint32_t p = pc_pixel(s, x, y);
                    int r = (int)(p >> 16 & 255), g = (int)(p >> 8 & 255), b = (int)(p & 255);
                    if (abs(r - b) > 80 || abs(g - b) > 80) coloured++;
                }
            MT_CHECK(coloured > 20, "emoji is drawn in colour (%d coloured px)", coloured);
        }
        if (s) cairo_surface_destroy(s);
    }
    /* the text log sees what was drawn */
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 300, 60);
    cairo_t *cr = cairo_create(img);
    MsPlotTextLog log = {0};
    ms_plot_text_log_attach(cr, &log);
    cairo_scale(cr, 2, 2);
    ms_plot_token_draw(t, cr, piece, strlen(piece), 0, 0, 5, 5, (MsRgb){0, 0, 0});
    MT_CHECK(log.n == 1 && strcmp(log.items[0].text, want) == 0 && fabs(log.items[0].x0 - 10) < 0.01 &&
             fabs(log.items[0].size - 2 * ms_plot_text_role_size(t, MS_PLOT_ROLE_TOKEN)) < 0.01,
             "text log: escaped text, device position and size");
    ms_plot_text_log_attach(cr, NULL);
    ms_plot_text_log_clear(&log);
    cairo_destroy(cr);
    cairo_surface_destroy(img);

    /* ellipsizing respects the width */
    const char *long_piece = "a very long token piece that cannot fit";
    ms_plot_token_measure(t, long_piece, strlen(long_piece), 0, 60, &sz);
    MT_CHECK(sz.width <= 60.01, "max_width 60 ellipsizes a long piece to %.1f", sz.width);

    /* flow layout and rectangle hits */
    MsPlotPiece pcs[12];
    static const char *words[12] = {"The", " quick", " brown", " fox", "\n", " jumps", " \xe4\xb8\xad", "\xf0\x9f\x98\x80",
                                    " over", "\xff\xfe", " the", " dog"};
    for (int i = 0; i < 12; i++) pcs[i] = (MsPlotPiece){words[i], strlen(words[i])};
    MsPlotRect rects[12];
    int lines = ms_plot_token_flow(t, pcs, 12, MS_PLOT_ESC_SPACE, 160, 2, rects);
    bool inside = true, disjoint = true, hits = true;
    for (int i = 0; i < 12; i++) {
        if (rects[i].x < 0 || rects[i].x + rects[i].w > 160.001 || rects[i].w <= 4) inside = false;
        for (int j = 0; j < i; j++)
            if (rects[i].x < rects[j].x + rects[j].w - 1e-9 && rects[j].x < rects[i].x + rects[i].w - 1e-9 &&
                rects[i].y < rects[j].y + rects[j].h - 1e-9 && rects[j].y < rects[i].y + rects[i].h - 1e-9)
                disjoint = false;
        if (ms_plot_rect_hit(rects, 12, rects[i].x + rects[i].w / 2, rects[i].y + rects[i].h / 2) != i) hits = false;
    }
    MT_CHECK(lines >= 2 && inside && disjoint, "12 pieces flow into %d lines of 160, boxes inside and disjoint", lines);
    MT_CHECK(hits, "the piece under each box centre is that piece");
    MT_CHECK(ms_plot_token_flow(t, pcs, 12, 0, 10000, 2, rects) == 1 && ms_plot_token_flow(t, pcs, 0, 0, 100, 2, rects) == 0,
             "a wide line holds them all; no pieces, no lines");
    ms_plot_text_free(t);
}

/* ---- layout: nothing clipped, nothing overlapping ---- */

static const char *expert_label(void *user, int64_t i, char *buf, size_t size)
{
    (void)user;
    snprintf(buf, size, "expert %lld", (long long)i);
    return buf;
}

typedef struct {
    MsPlotFrame f;
    MsPlotColorbar cb;
    MsPlotLegend lg;
    MsPlotLegendItem items[64];
    char names[64][16];
    MsPlotGeom g;
    MsPlotStyle style;
} Busy;

static int busy_draw(void *user, cairo_t *cr, double w, double h, MsError *err)
{
    Busy *b = user;
    int rc = ms_plot_layout(&b->f, w, h, &b->g, err);
    if (rc < 0) return rc;
    ms_plot_draw_back(cr, &b->f, &b->g);
    ms_plot_draw_axes(cr, &b->f, &b->g);
    return 0;
}

static bool overlap(const MsPlotTextItem *a, const MsPlotTextItem *b)
{
    return a->x0 < b->x1 - 0.5 && b->x0 < a->x1 - 0.5 && a->y0 < b->y1 - 0.5 && b->y0 < a->y1 - 0.5;
}

static void check_busy(Busy *b, double w, double h, const char *what)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)w, (int)h);
    cairo_t *cr = cairo_create(s);
    MsPlotTextLog log = {0};
    MsError err = {0};
    ms_plot_text_log_attach(cr, &log);
    int rc = busy_draw(b, cr, w, h, &err);
    MT_CHECK(rc == 0, "%s %gx%g: laid out (%s)", what, w, h, rc ? err.msg : "ok");
    if (rc != 0) goto done;
    const MsPlotGeom *g = &b->g;
    int clipped = 0, in_plot = 0, overlaps = 0, more = 0;
    for (size_t i = 0; i < log.n; i++) {
        const MsPlotTextItem *it = &log.items[i];
        if (it->x0 < -0.5 || it->y0 < -0.5 || it->x1 > w + 0.5 || it->y1 > h + 0.5) {
            clipped++;
            mt_diag("clipped: \"%s\" at %.1f,%.1f-%.1f,%.1f", it->text, it->x0, it->y0, it->x1, it->y1);
        }
        if (it->x0 < g->plot.x + g->plot.w - 0.5 && it->x1 > g->plot.x + 0.5 && it->y0 < g->plot.y + g->plot.h - 0.5 &&
            it->y1 > g->plot.y + 0.5) {
            in_plot++;
            mt_diag("over the plot: \"%s\"", it->text);
        }
        for (size_t j = 0; j < i; j++)
            if (overlap(it, &log.items[j])) {
                overlaps++;
                if (overlaps < 4) mt_diag("overlap: \"%s\" and \"%s\"", it->text, log.items[j].text);
            }
        if (strncmp(it->text, "+", 1) == 0 && strstr(it->text, " more")) more = atoi(it->text + 1);
    }
    MT_CHECK(clipped == 0, "%s %gx%g: all %zu texts inside the figure", what, w, h, log.n);
    MT_CHECK(in_plot == 0, "%s %gx%g: no text over the plot area", what, w, h);
    MT_CHECK(overlaps == 0, "%s %gx%g: no two texts overlap", what, w, h);
    MT_CHECK(g->n_xticks >= 2 && g->n_yticks >= 2 && g->n_cticks >= 2, "%s %gx%g: ticks on both axes and the colour bar (%d, %d, %d)",
             what, w, h, g->n_xticks, g->n_yticks, g->n_cticks);
    if (b->f.legend)
        MT_CHECK(g->legend_shown + (size_t)more == b->f.legend->n && (more > 0) == (g->legend_shown < b->f.legend->n),
                 "%s %gx%g: legend shows %zu entries and \"+%d more\" for the rest", what, w, h, g->legend_shown, more);
    MT_CHECK(g->plot.w > w * 0.3 && g->plot.h > h * 0.3, "%s %gx%g: the plot keeps a fair share (%.0fx%.0f)", what, w, h,
             g->plot.w, g->plot.h);
    if (w == 1400 && b->style.text_scale == 0) {
        char path[512];
        snprintf(path, sizeof path, "%s/busy-%s.png", mt_tmpdir(), what);
        cairo_surface_write_to_png(s, path);
    }
done:
    ms_plot_text_log_attach(cr, NULL);
    ms_plot_text_log_clear(&log);
    cairo_destroy(cr);
    cairo_surface_destroy(s);
}

static void test_layouts(void)
{
    static const double sizes[4][2] = {{400, 300}, {640, 480}, {1400, 900}, {4000, 3000}};
    Busy *b = calloc(1, sizeof *b);
    for (int i = 0; i < 64; i++) {
        snprintf(b->names[i], sizeof b->names[i], "E%d", i);
        b->items[i] = (MsPlotLegendItem){b->names[i], ms_plot_category_color(i)};
    }
    b->lg = (MsPlotLegend){.title = "Experts", .items = b->items, .n = 64};
    b->cb = (MsPlotColorbar){.scale = {MS_CMAP_BALANCE, -0.37, 0.21}, .title = "risk difference", .unit = "pp",
                             .show_missing = true};
    b->f = (MsPlotFrame){
        .title = "Per-token routing weights of every expert in layer 12 (a long title)",
        .x = {.kind = MS_PLOT_AXIS_CATEGORY, .title = "Token position", .lo = 0, .hi = 100000, .count = 100000, .grid = true},
        .y = {.kind = MS_PLOT_AXIS_CATEGORY, .title = "Expert", .lo = 0, .hi = 64, .count = 64, .label = expert_label},
        .colorbar = &b->cb,
        .legend = &b->lg,
        .style = &b->style,
    };
    for (int k = 0; k < 4; k++) check_busy(b, sizes[k][0], sizes[k][1], "category");
    b->style.text_scale = 2;
    check_busy(b, 4000, 3000, "category-text-x2");
    b->style.text_scale = 0;

    /* linear axes, zoomed category window, no legend */
    b->f.x = (MsPlotAxis){.kind = MS_PLOT_AXIS_LINEAR, .title = "Cache size relative to the number of active experts per token and layer",
                          .unit = "\xcf\x81", .lo = 0, .hi = 4, .grid = true};
    b->f.y = (MsPlotAxis){.kind = MS_PLOT_AXIS_LINEAR, .title = "SCH", .lo = -1234.5, .hi = 98765.4321, .grid = true};
    b->f.legend = NULL;
    for (int k = 0; k < 4; k++) check_busy(b, sizes[k][0], sizes[k][1], "linear");
    b->f.x = (MsPlotAxis){.kind = MS_PLOT_AXIS_CATEGORY, .title = "Expert", .lo = 17.25, .hi = 41.5, .count = 64, .label = expert_label};
    check_busy(b, 640, 480, "zoomed");
    bool thin = b->g.n_xticks >= 2;
    for (int i = 1; i < b->g.n_xticks; i++) {
        double step = b->g.xticks[i].value - b->g.xticks[i - 1].value;
        if (step != b->g.xticks[1].value - b->g.xticks[0].value) thin = false;
    }
    MT_CHECK(thin && b->g.xticks[0].value >= 17 && b->g.xticks[b->g.n_xticks - 1].value <= 41,
             "zoomed category axis: evenly thinned ticks inside the window (%d ticks, first %g)", b->g.n_xticks, b->g.xticks[0].value);

    /* thinning of 100000 tokens: 1-2-5 steps, labels on multiples */
    b->f.x = (MsPlotAxis){.kind = MS_PLOT_AXIS_CATEGORY, .title = "Token", .lo = 0, .hi = 100000, .count = 100000};
    MsError err = {0};
    ms_plot_layout(&b->f, 1400, 900, &b->g, &err);
    double st = b->g.xticks[1].value - b->g.xticks[0].value;
    double m = st / pow(10, floor(log10(st)));
    MT_CHECK(b->g.n_xticks >= 4 && b->g.n_xticks < 30 && (m == 1 || m == 2 || m == 5),
             "100000 tokens: %d ticks every %g items", b->g.n_xticks, st);
    MT_CHECK(b->g.xticks[0].label[0] == '0' && fabs(b->g.xticks[0].pos - b->g.plot.x - b->g.plot.w / 200000) < 1e-6,
             "category tick sits at its item's centre");
    b->f.x.lo = 10;
    b->f.x.hi = 10;
    MT_CHECK(ms_plot_layout(&b->f, 1400, 900, &b->g, &err) == MS_EINVAL && strstr(err.msg, "x axis"),
             "empty axis range: %s", err.msg);
    MsPlotFrame plain = {.x = {.kind = MS_PLOT_AXIS_NONE}, .y = {.kind = MS_PLOT_AXIS_NONE}};
    MT_CHECK(ms_plot_layout(&plain, 300, 200, &b->g, &err) == 0 && b->g.plot.w > 250 && b->g.plot.h > 150,
             "a frame without axes leaves the plot almost the whole figure");
    MsPlotText *t = ms_plot_text_new(NULL);
    MT_CHECK(ms_plot_text_role_size(t, MS_PLOT_ROLE_TICK) >= 10 && ms_plot_text_role_size(t, MS_PLOT_ROLE_LABEL) >= 12,
             "default text sizes are readable (tick %.1f, label %.1f)", ms_plot_text_role_size(t, MS_PLOT_ROLE_TICK),
             ms_plot_text_role_size(t, MS_PLOT_ROLE_LABEL));
    ms_plot_text_free(t);
    free(b);
}

/* A title too wide for its figure goes on two lines, broken near the middle
 * (after the comma here), centred, with nothing ellipsized; one that fits
 * stays on one line; the measured height is what is drawn. */
static void test_title(void)
{
    const char *title = "Expert load by layer \xC2\xB7 run 1, 821 tokens, E = 16, top-2";
    MsPlotText *t = ms_plot_text_new(NULL);
    MsPlotTextSize one;
    ms_plot_text_measure(t, MS_PLOT_ROLE_TITLE, title, 0, &one);
    const double widths[2] = { one.width * 0.75, one.width + 4 * ms_plot_text_pad(t) };
    for (int k = 0; k < 2; k++) {
        double W = widths[k];
        cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)ceil(W), 200);
        cairo_t *cr = cairo_create(img);
        MsPlotTextLog log = { 0 };
        ms_plot_text_log_attach(cr, &log);
        double h_measured = ms_plot_text_title(t, NULL, title, W, 5);
        double h = ms_plot_text_title(t, cr, title, W, 5);
        ms_plot_text_log_attach(cr, NULL);
        char joined[256] = "";
        bool inside = true, centred = true;
        for (size_t i = 0; i < log.n; i++) {
            const MsPlotTextItem *it = &log.items[i];
            snprintf(joined + strlen(joined), sizeof joined - strlen(joined), "%s%s", i ? " " : "", it->text);
            inside = inside && it->x0 >= -0.5 && it->x1 <= W + 0.5;
            centred = centred && fabs((it->x0 + it->x1) / 2 - W / 2) < 1;
        }
        if (k == 0) {
            MT_CHECK(log.n == 2 && strcmp(joined, title) == 0 && log.items[1].y0 >= log.items[0].y1 - 0.5 &&
                         strcmp(log.items[1].text, "821 tokens, E = 16, top-2") == 0,
                     "a title at 3/4 of its width: two lines broken after the comma, whole ('%s' in %zu)", joined, log.n);
        } else {
            MT_CHECK(log.n == 1 && strcmp(joined, title) == 0, "a title that fits: one line, whole");
        }
        MT_CHECK(inside && centred, "width %.0f: the title's lines are centred and inside", W);
        MT_CHECK(h == h_measured && h > 0 && log.n > 0 && fabs(log.items[log.n - 1].y1 - (5 + h)) < 1,
                 "width %.0f: the measured height (%.1f) is the height drawn", W, h);
        ms_plot_text_log_clear(&log);
        cairo_destroy(cr);
        cairo_surface_destroy(img);
    }
    ms_plot_text_free(t);
}

/* A message wider than its area (the workbench's empty-state hint, which
 * names a command to run) is drawn whole in centred lines that fit, no word
 * lost to an ellipsis; '\n' breaks a line; a word wider than the area gets a
 * line of its own; the returned height spans the lines drawn. */
static void test_wrapped(void)
{
    const char *msg = "Nothing to show yet in Sweep: no sweep stored (`moescope sweep ... --db "
                      "/tmp/a-long-directory/traces/trace-20261205-152127.db` stores one)\nsecond paragraph";
    MsPlotText *t = ms_plot_text_new(NULL);
    const double W = 420, H = 300;
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)W, (int)H);
    cairo_t *cr = cairo_create(img);
    MsPlotTextLog log = { 0 };
    ms_plot_text_log_attach(cr, &log);
    double h_measured = ms_plot_text_wrapped(t, NULL, MS_PLOT_ROLE_LABEL, msg, W, W / 2, H / 2);
    double h = ms_plot_text_wrapped(t, cr, MS_PLOT_ROLE_LABEL, msg, W, W / 2, H / 2);
    ms_plot_text_log_attach(cr, NULL);
    char joined[512] = "";
    bool inside = true, centred = true, ordered = true, ellipsis = false;
    for (size_t i = 0; i < log.n; i++) {
        const MsPlotTextItem *it = &log.items[i];
        snprintf(joined + strlen(joined), sizeof joined - strlen(joined), "%s%s",
                 i == 0 ? "" : !strcmp(it->text, "second paragraph") ? "\n" : " ", it->text);
        inside = inside && it->x0 >= -0.5 && it->x1 <= W + 0.5;
        centred = centred && fabs((it->x0 + it->x1) / 2 - W / 2) < 1;
        ordered = ordered && (i == 0 || it->y0 >= log.items[i - 1].y1 - 0.5);
        ellipsis = ellipsis || strstr(it->text, "\xE2\x80\xA6");
    }
    MT_CHECK(log.n >= 3 && !strcmp(joined, msg) && !ellipsis,
             "a long hint is drawn whole on %zu lines, nothing ellipsized ('%s')", log.n, joined);
    MT_CHECK(inside && centred && ordered, "its lines fit the width, are centred and follow each other");
    MT_CHECK(h == h_measured && h > 0 && fabs((log.items[0].y0 + log.items[log.n - 1].y1) / 2 - H / 2) < 3,
             "the measured height (%.1f) is drawn and the block is centred on y", h);
    ms_plot_text_log_clear(&log);
    /* a word wider than the area: a line of its own, ellipsized there */
    ms_plot_text_log_attach(cr, &log);
    ms_plot_text_wrapped(t, cr, MS_PLOT_ROLE_LABEL, "see /a/path/far/wider/than/the/eighty/units/we/have here", 80, 40, 50);
    ms_plot_text_log_attach(cr, NULL);
    MT_CHECK(log.n == 3 && !strcmp(log.items[0].text, "see") && !strcmp(log.items[2].text, "here") &&
                 log.items[1].x1 - log.items[1].x0 <= 80.5,
             "a word wider than the line is alone on its line and kept inside (%zu lines)", log.n);
    ms_plot_text_log_clear(&log);
    MT_CHECK(ms_plot_text_wrapped(t, cr, MS_PLOT_ROLE_LABEL, "", W, 0, 0) == 0, "empty text: nothing, height 0");
    cairo_destroy(cr);
    cairo_surface_destroy(img);
    ms_plot_text_free(t);
}

int main(void)
{
    test_probes_and_hits();
    test_wrapped();
    test_aggregation();
    test_outputs();
    test_output_errors();
    test_tokens();
    test_title();
    test_layouts();
    if (getenv("MS_KEEP_TMP")) mt_diag("images kept in %s", mt_tmpdir());
    ms_plot_release_caches();
    return mt_done();
}
